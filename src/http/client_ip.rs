//! The client's IP address: the socket peer, or — only when that peer is a trusted
//! reverse proxy — the right-most address in `X-Forwarded-For` that is not itself a
//! trusted proxy. A client cannot forge its address by sending the header directly.

use std::net::IpAddr;

use poem::{FromRequest, Request, RequestBody};

use crate::error::AppError;
use crate::state::AppState;

/// The address rate limits and logs attribute a request to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Resolves the client address from the peer and the forwarded chain. Addresses are
/// compared in canonical form: an IPv4 peer of a dual-stack listener (`::ffff:a.b.c.d`)
/// is `a.b.c.d`, for the trust check and for rate-limit keys alike.
pub fn resolve(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    if !trusted(&peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

impl<'a> FromRequest<'a> for ClientIp {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip())
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("request without a peer address")))?;
        let trusted = req
            .data::<AppState>()
            .map(|s| s.settings.server.trusted_proxies.as_slice())
            .unwrap_or_default();
        // Every X-Forwarded-For line, in order: a proxy may append its own line after
        // one the client forged.
        let lines: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let forwarded = (!lines.is_empty()).then(|| lines.join(","));
        Ok(ClientIp(resolve(peer, forwarded.as_deref(), trusted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_may_forward() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        // untrusted peer: the header is ignored
        assert_eq!(
            resolve(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // trusted peer: right-most untrusted hop
        assert_eq!(
            resolve(ip("10.0.0.1"), Some("1.2.3.4, 198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), Some("1.2.3.4, 10.0.0.2"), &trusted),
            ip("1.2.3.4")
        );
        // garbage in the chain stops the walk
        assert_eq!(
            resolve(ip("10.0.0.1"), Some("1.2.3.4, nonsense"), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(resolve(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        // IPv4 through a dual-stack listener: canonical, and trusted as IPv4
        assert_eq!(
            resolve(ip("::ffff:10.0.0.1"), Some("::ffff:1.2.3.4"), &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(resolve(ip("::ffff:127.0.0.2"), None, &[]), ip("127.0.0.2"));
    }
}

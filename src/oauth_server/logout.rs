//! Logout at the OpenID Provider.
//!
//! - **RP-Initiated Logout 1.0**: what an end-session request may ask — whose
//!   `id_token_hint` it carries (one of ours, for that client), and whether its
//!   `post_logout_redirect_uri` is one the client registered (§2, §3).
//! - **Back-Channel Logout 1.0**: when OP sessions end, every client they signed into
//!   that registered a `backchannel_logout_uri` is sent a signed logout token (§2.4),
//!   off the user's request, with a timeout and a bounded number of retries (§2.7).
//! - **Front-Channel Logout 1.0**: the signed-out page loads, in an iframe, the
//!   `frontchannel_logout_uri` of every client the ended OP session signed into, with
//!   `iss` and `sid` (§2, §4); only a logout at `/oauth/logout` has a page to do it on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{op_sid, AuthorizationServer, Client, OAuthRepo};
use crate::crypto::random_token;
use crate::error::AppResult;
use crate::session::SessionsEnded;

use crate::providers::logout::BACKCHANNEL_EVENT;

/// Attempts per logout token, and the wait before each retry.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(300), Duration::from_secs(1)];

/// How long a client's back-channel endpoint may take to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many earlier OP sessions a browser session carries (their apps hear of its end).
const MAX_CARRIED: usize = 20;

/// How long a logout token is valid (§2.4: "short").
const LOGOUT_TOKEN_TTL: i64 = 120;

/// A checked end-session request.
#[derive(Debug, Default)]
pub struct EndSession {
    /// The client, named by `client_id` or the hint's `aud`.
    pub client: Option<Client>,
    /// Where to send the browser afterwards (with `state`), when the client registered
    /// `post_logout_redirect_uri` and nothing in the request contradicts it.
    pub redirect: Option<String>,
    /// The hint's user and OP session, when the hint is one of ours for that client.
    pub hint: Option<(String, Option<String>)>,
}

impl EndSession {
    /// Whether the hint names the OP session `sid` of `user_id` (then no confirmation is
    /// needed: the app that asked is the one the user is signed in to).
    pub fn names(&self, user_id: &str, sid: &str) -> bool {
        // A hint without a sid (an older token) cannot say which session: ask.
        matches!(&self.hint, Some((sub, Some(hint_sid))) if sub == user_id && hint_sid == sid)
    }
}

/// A logout token to deliver.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogoutTarget {
    pub client_id: String,
    pub user_id: String,
    pub sid: Option<String>,
    pub backchannel_logout_uri: String,
    /// 1: the client needs a `sid`; a token without one is not sent.
    pub backchannel_logout_session_required: i64,
    pub id_token_signed_response_alg: Option<String>,
}

impl AuthorizationServer {
    /// RP-Initiated Logout §2–§3: the hint checked (our signature, our issuer, expired or
    /// not), the client (`client_id` and the hint's `aud` must agree), and the redirect
    /// (registered for that client, exactly).
    pub async fn check_end_session(&self, p: &BTreeMap<String, String>) -> AppResult<EndSession> {
        let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let mut out = EndSession::default();
        let hinted = match get("id_token_hint") {
            Some(t) => match self.keys().await?.verify_own(t, self.issuer()) {
                Some(claims) => Some(claims),
                None => {
                    tracing::warn!("end-session request with an id_token_hint not ours");
                    return Ok(out);
                }
            },
            None => None,
        };
        let aud = hinted.as_ref().and_then(|c| match &c["aud"] {
            Value::String(a) => Some(a.clone()),
            Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        });
        let client_id = match (get("client_id"), aud.as_deref()) {
            (Some(c), Some(a)) if c != a => {
                tracing::warn!("end-session request whose client_id and hint disagree");
                return Ok(out);
            }
            (Some(c), _) | (None, Some(c)) => Some(c.to_owned()),
            (None, None) => None,
        };
        if let Some(id) = &client_id {
            out.client = self.repo.find_client(id).await?;
        }
        if let (Some(claims), Some(_)) = (&hinted, &out.client) {
            if let Some(sub) = claims["sub"].as_str() {
                let sid = claims["sid"].as_str().map(str::to_owned);
                out.hint = Some((sub.to_owned(), sid));
            }
        }
        if let (Some(uri), Some(client)) = (get("post_logout_redirect_uri"), &out.client) {
            if client.post_logout_redirect_uris().any(|u| u == uri) {
                let mut url = oauth2::url::Url::parse(uri).ok();
                if let (Some(u), Some(state)) = (url.as_mut(), get("state")) {
                    u.query_pairs_mut().append_pair("state", state);
                }
                out.redirect = url.map(|u| u.to_string());
            } else {
                tracing::warn!(client = %client.client_id, "post_logout_redirect_uri not registered");
            }
        }
        Ok(out)
    }

    /// `{prefix}opcarry:{handle}`: the OP sessions a browser session took over.
    fn carried_key(&self, handle: &str) -> String {
        format!("{}opcarry:{handle}", self.settings.redis.prefix)
    }

    /// Front-Channel Logout §2 and §4: the URLs the signed-out page of the OP session
    /// `handle` loads, one per client and session it signed into, each with `iss` and
    /// `sid` (this OP always sends both: `frontchannel_logout_session_supported`).
    pub async fn frontchannel_logout_urls(&self, handle: &str) -> AppResult<Vec<String>> {
        // The session's own first: it is never cut by the query's bound.
        let mut sids = vec![op_sid(handle)];
        sids.extend(self.carried(handle).await);
        let mut urls = Vec::new();
        for (uri, sid) in self.repo.frontchannel_targets(&sids).await? {
            let Ok(mut url) = oauth2::url::Url::parse(&uri) else {
                continue;
            };
            url.query_pairs_mut()
                .append_pair("iss", self.issuer())
                .append_pair("sid", &sid);
            urls.push(url.to_string());
        }
        Ok(urls)
    }

    async fn carried(&self, handle: &str) -> Vec<String> {
        match self.store.get(&self.carried_key(handle)).await {
            Ok(Some(v)) => String::from_utf8_lossy(&v)
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The same user's new browser session replaces `old`: the apps `old` (and what it
    /// took over) signed into hear of it when `new` ends, under the `sid` they know.
    pub async fn carry_over(&self, old: &str, new: &str) -> AppResult<()> {
        let mut sids = self.carried(old).await;
        sids.push(op_sid(old));
        // Each once, newest last, and a bounded list: a browser that signs in again and
        // again carries only its latest sessions' apps.
        let mut seen = std::collections::HashSet::new();
        let mut unique: Vec<String> = sids
            .into_iter()
            .rev()
            .filter(|s| seen.insert(s.clone()))
            .take(MAX_CARRIED)
            .collect();
        unique.reverse();
        let sids = unique;
        let ttl = self.settings.session.absolute_timeout;
        self.store
            .put(&self.carried_key(new), sids.join("\n").as_bytes(), ttl)
            .await?;
        Ok(())
    }

    /// Back-Channel Logout §2.5: tells every client that the ended OP sessions signed
    /// into. Runs in the background; failures are logged, never raised.
    pub fn sessions_ended(self: &Arc<Self>, handles: &[String]) {
        let handles = handles.to_vec();
        let server = Arc::clone(self);
        self.background.spawn_tracked(&self.deliveries, async move {
            let mut sids = Vec::new();
            for h in &handles {
                sids.push(op_sid(h));
                sids.extend(server.carried(h).await);
            }
            match server.repo.logout_targets_of_sessions(&sids).await {
                Ok(targets) => server.deliver_all(targets),
                Err(e) => tracing::warn!(error = %e, "back-channel logout: clients not found"),
            }
        });
    }

    /// A user disconnected `client_id`: it is told to end that user's sessions there.
    pub fn client_deauthorized(self: &Arc<Self>, user_id: &str, client_id: &str) {
        let (user_id, client_id) = (user_id.to_owned(), client_id.to_owned());
        let server = Arc::clone(self);
        self.background.spawn_tracked(&self.deliveries, async move {
            match server
                .repo
                .logout_targets_of_user(&user_id, &client_id)
                .await
            {
                Ok(targets) => server.deliver_all(targets),
                Err(e) => tracing::warn!(error = %e, "back-channel logout: clients not found"),
            }
        });
    }

    fn deliver_all(self: &Arc<Self>, targets: Vec<LogoutTarget>) {
        for target in targets {
            if target.sid.is_none() && target.backchannel_logout_session_required != 0 {
                tracing::warn!(client = %target.client_id, "logout without a sid not sent: the client requires one");
                continue;
            }
            let server = Arc::clone(self);
            self.background.spawn_tracked(
                &self.deliveries,
                async move { server.deliver(target).await },
            );
        }
    }

    /// At the end of the process's life (a stopping server, the `sessions end` command):
    /// waits, up to `limit`, for the logout tokens under way to be delivered or given
    /// up. Whether they all were. Logouts after this are still sent, but not waited for.
    pub async fn finish_deliveries(&self, limit: Duration) -> bool {
        self.deliveries.close();
        tokio::time::timeout(limit, self.deliveries.wait())
            .await
            .is_ok()
    }

    /// The logout token of §2.4: `iss`, `aud`, `iat`, `exp`, `jti`, `sub`, `sid` when
    /// known, the back-channel event, and never a `nonce`; typed `logout+jwt`.
    pub async fn logout_token(&self, t: &LogoutTarget) -> AppResult<String> {
        let at = self.clock.now();
        let mut claims = json!({
            "iss": self.issuer(),
            "aud": t.client_id,
            "iat": at,
            "exp": at + LOGOUT_TOKEN_TTL,
            "jti": random_token(),
            "sub": t.user_id,
            "events": { BACKCHANNEL_EVENT: {} },
        });
        if let Some(sid) = &t.sid {
            claims["sid"] = json!(sid);
        }
        let alg = t
            .id_token_signed_response_alg
            .as_deref()
            .and_then(super::SigningAlg::parse)
            .unwrap_or(super::SigningAlg::Rs256);
        self.keys().await?.sign_typed(alg, "logout+jwt", &claims)
    }

    /// Posts one logout token (§2.5), retrying what may pass later (no answer, 5xx);
    /// a 4xx is the client refusing it, and final.
    async fn deliver(&self, t: LogoutTarget) {
        let token = match self.logout_token(&t).await {
            Ok(token) => token,
            Err(e) => {
                tracing::warn!(client = %t.client_id, error = %e, "logout token not signed");
                return;
            }
        };
        for attempt in 0..=RETRY_DELAYS.len() {
            if attempt > 0 {
                tokio::time::sleep(RETRY_DELAYS[attempt - 1]).await;
            }
            let sent = self
                .http
                .request(reqwest::Method::POST, &t.backchannel_logout_uri)
                .timeout(DELIVERY_TIMEOUT)
                .form(&[("logout_token", token.as_str())])
                .send()
                .await;
            match sent.map(|r| r.status()) {
                Ok(s) if s.is_success() => {
                    tracing::info!(client = %t.client_id, "back-channel logout delivered");
                    return;
                }
                Ok(s) if s.is_client_error() => {
                    tracing::warn!(client = %t.client_id, status = s.as_u16(), "back-channel logout refused by the client");
                    return;
                }
                Ok(s) => {
                    tracing::warn!(client = %t.client_id, status = s.as_u16(), attempt, "back-channel logout failed")
                }
                Err(e) => {
                    tracing::warn!(client = %t.client_id, error = %e, attempt, "back-channel logout unreachable")
                }
            }
        }
        tracing::warn!(client = %t.client_id, "back-channel logout given up");
    }
}

impl OAuthRepo {
    /// Front-Channel Logout: `(frontchannel_logout_uri, sid)` of the clients these OP
    /// sessions signed into.
    async fn frontchannel_targets(&self, sids: &[String]) -> AppResult<Vec<(String, String)>> {
        // A browser session carries a handful of OP sessions, never hundreds.
        let sids = &sids[..sids.len().min(100)];
        self.rows_of_sessions(
            "SELECT DISTINCT c.frontchannel_logout_uri, g.sid \
             FROM oauth_grants g JOIN oauth_clients c ON c.client_id = g.client_id \
             WHERE g.sid IN ({sids}) AND c.frontchannel_logout_uri IS NOT NULL \
             ORDER BY c.frontchannel_logout_uri, g.sid",
            sids,
        )
        .await
    }
}

/// The session manager's listener: ended browser sessions are ended OP sessions.
pub struct BackChannel(pub Arc<AuthorizationServer>);

impl SessionsEnded for BackChannel {
    fn ended(&self, handles: &[String]) {
        self.0.sessions_ended(handles);
    }
}

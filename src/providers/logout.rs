//! OpenID Back-Channel Logout 1.0 at the relying party: a provider's logout token,
//! checked as §2.6 asks before any session is touched.

use serde_json::Value;

use super::oauth::OAuthProvider;
use super::ProviderHttp;

/// The `events` member that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old a logout token may be (its `iat`, beyond the provider's leeway): a delivery
/// is retried for minutes at most.
const MAX_AGE_SECS: i64 = 600;

/// Whom a valid logout token signs out.
#[derive(Debug)]
pub struct LogoutClaims {
    pub sub: Option<String>,
    pub sid: Option<String>,
    /// The token's id (§2.6 step 7: a replay is refused).
    pub jti: String,
}

impl OAuthProvider {
    /// §2.6: the signature against the provider's JWKS, `iss`, `aud` (our client id),
    /// `iat` neither in the future nor old, the back-channel event, `sub` and/or
    /// `sid`, no `nonce`, a `jti`. The error says which, for the log.
    pub async fn logout_claims(
        &self,
        http: &ProviderHttp,
        token: &str,
    ) -> Result<LogoutClaims, String> {
        let oidc = self
            .oidc
            .as_ref()
            .ok_or("this provider is not an OpenID provider")?;
        let discovery = oidc.discovery(http).await.map_err(|e| e.to_string())?;
        let claims = oidc
            .verified(
                http,
                &discovery,
                token,
                &self.config.client_id,
                &["iat", "iss", "aud", "jti"],
            )
            .await
            .map_err(|e| e.to_string())?;
        let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
        if iat < self.clock.now() - MAX_AGE_SECS - self.config.leeway.as_secs() as i64 {
            return Err("iat is too old".into());
        }
        if !claims
            .get("events")
            .and_then(|e| e.get(BACKCHANNEL_EVENT))
            .is_some_and(Value::is_object)
        {
            return Err("no back-channel logout event".into());
        }
        if claims.get("nonce").is_some() {
            return Err("a logout token must not have a nonce".into());
        }
        let text = |k: &str| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (sub, sid) = (text("sub"), text("sid"));
        if sub.is_none() && sid.is_none() {
            return Err("neither sub nor sid".into());
        }
        let jti = text("jti").ok_or("no jti")?;
        Ok(LogoutClaims { sub, sid, jti })
    }

    /// Front-Channel Logout 1.0 §3: whether the request's `iss` is this provider's issuer
    /// (the `sid` it names is then looked up among this provider's sessions only). An
    /// error when the provider's discovery cannot be had right now.
    pub async fn is_issuer(&self, http: &ProviderHttp, iss: &str) -> Result<bool, String> {
        let Some(oidc) = self.oidc.as_ref() else {
            return Ok(false);
        };
        let discovery = oidc.discovery(http).await.map_err(|e| e.to_string())?;
        Ok(discovery.issuer == iss)
    }

    /// OpenID RP-Initiated Logout §2: where the browser continues its sign-out — the
    /// provider's `end_session_endpoint` with `id_token_hint` (when kept), `client_id`,
    /// `post_logout_redirect_uri` and `state`. `None` when the provider has none, is
    /// told not to (`end_session = false`), or cannot be asked right now (the sign-out
    /// here is complete either way).
    pub async fn end_session_url(
        &self,
        http: &ProviderHttp,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
        state: &str,
    ) -> Option<String> {
        let oidc = self.oidc.as_ref().filter(|_| self.config.end_session)?;
        let discovery = match oidc.discovery(http).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(provider = %self.config.id, error = %e, "end-session endpoint unknown; signed out here only");
                return None;
            }
        };
        let mut url = oauth2::url::Url::parse(discovery.end_session_endpoint.as_deref()?).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", &self.config.client_id);
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
            q.append_pair("state", state);
        }
        Some(url.to_string())
    }
}

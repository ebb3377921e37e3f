//! Sign-in with an OAuth2/OIDC provider through the BFF: the start (a pending flow bound
//! to this browser, then the provider's authorization URL) and the callback (state taken
//! once, code exchanged, profile read, session created). Every failure of the callback
//! sends the browser to the error page with a NextAuth error code; the detail goes to the
//! log only.

use poem::Request;

use crate::bff::redirect::RedirectTarget;
use crate::error::{AppError, AppResult};
use crate::http::client_ip::ClientIp;
use crate::providers::{PendingFlow, Provider};
use crate::session::cookie;
use crate::startup::AppState;

/// What the provider sent back to `/api/auth/callback/{id}`.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// RFC 9207: the issuer that answered (checked when present).
    pub iss: Option<String>,
}

/// Where a sign-in went: the next URL, and the cookie to set with it.
pub struct Outcome {
    pub url: String,
    pub cookie: Option<String>,
}

/// A binding cookie value is ours only if it looks like one (43 base64url characters).
fn binding_value(raw: Option<&str>) -> Option<&str> {
    raw.filter(|v| {
        v.len() == 43
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

impl AppState {
    fn oauth_error_url(&self, code: &str, provider: &str) -> String {
        format!(
            "{}/api/auth/error?error={code}&provider={provider}",
            self.settings.public_url()
        )
    }

    /// Starts a sign-in: counts it against the per-IP limit, stores the pending flow
    /// (state, PKCE verifier, nonce, callbackUrl, browser binding) and answers the
    /// provider's authorization URL with the binding cookie to set.
    pub(crate) async fn start_oauth(
        &self,
        req: &Request,
        ip: ClientIp,
        provider: &Provider,
        callback: Option<&str>,
    ) -> AppResult<Outcome> {
        self.accounts
            .consume(
                "oauth_signin_ip",
                &crate::ratelimit::ip_key(ip.0),
                self.settings.rate_limit.oauth_signin_per_ip,
            )
            .await?;
        let authorization = provider.authorize(&self.providers.http).await.map_err(|e| {
            tracing::warn!(provider = %provider.config.id, error = %e, "sign-in could not start");
            AppError::Unavailable("identity provider")
        })?;
        // One binding per browser, reused: two tabs signing in at once both succeed.
        let binding = binding_value(cookie::read(req.headers(), self.cookies.flow_name()))
            .map_or_else(crate::crypto::random_token, str::to_owned);
        let flow = PendingFlow {
            provider: provider.config.id.clone(),
            verifier: authorization.verifier,
            nonce: authorization.nonce,
            callback: RedirectTarget::resolve(callback, &self.settings).into_string(),
            binding: crate::crypto::sha256_hex(&binding),
            created_at: crate::clock::now(),
        };
        self.providers
            .flows
            .put(&authorization.state, &flow)
            .await?;
        Ok(Outcome {
            url: authorization.url,
            cookie: Some(self.cookies.flow(&binding)),
        })
    }

    /// The provider's redirect back. Always answers a redirect: to the saved
    /// `callbackUrl` with a new session cookie, or to the error page.
    pub(crate) async fn finish_oauth(
        &self,
        req: &Request,
        ip: ClientIp,
        provider: &Provider,
        params: CallbackParams,
    ) -> Outcome {
        let id = &provider.config.id;
        let fail = |code: &str| Outcome {
            url: self.oauth_error_url(code, id),
            cookie: None,
        };
        // The state is taken (and so spent) before anything else is looked at.
        let flow = match params.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(state) => match self.providers.flows.take(state).await {
                Ok(flow) => flow,
                Err(e) => {
                    tracing::warn!(provider = %id, error = %e, "sign-in state store unavailable");
                    return fail("Unavailable");
                }
            },
        };
        if let Some(error) = params.error.as_deref() {
            let error: String = error.chars().take(64).collect();
            tracing::info!(provider = %id, error = %error, "the provider returned an error");
            return fail(if error == "access_denied" {
                "AccessDenied"
            } else {
                "OAuthCallback"
            });
        }
        let Some(flow) = flow.filter(|f| f.provider == *id) else {
            tracing::warn!(provider = %id, "callback with an unknown, expired, replayed or missing state");
            return fail("OAuthCallback");
        };
        if !flow.bound_to(binding_value(cookie::read(
            req.headers(),
            self.cookies.flow_name(),
        ))) {
            tracing::warn!(provider = %id, "callback in a browser that did not start this sign-in");
            return fail("OAuthCallback");
        }
        if let (Some(iss), false) = (params.iss.as_deref(), provider.config.issuer.is_empty()) {
            if iss.trim_end_matches('/') != provider.config.issuer.trim_end_matches('/') {
                tracing::warn!(provider = %id, "callback from another issuer (RFC 9207)");
                return fail("OAuthCallback");
            }
        }
        let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
            tracing::warn!(provider = %id, "callback without a code");
            return fail("OAuthCallback");
        };
        let signed = match provider.finish(&self.providers.http, code, &flow).await {
            Ok(signed) => signed,
            Err(e) => {
                tracing::warn!(provider = %id, error = %e, "sign-in failed");
                self.metrics.count(
                    "sessiongate_oauth_signins_total",
                    format!("provider=\"{id}\",outcome=\"failed\""),
                );
                return fail("OAuthCallback");
            }
        };
        match self.new_session(req, ip, signed, id).await {
            Ok(cookie) => {
                self.metrics.count(
                    "sessiongate_oauth_signins_total",
                    format!("provider=\"{id}\",outcome=\"ok\""),
                );
                Outcome {
                    url: flow.callback,
                    cookie: Some(cookie),
                }
            }
            Err(e) => {
                tracing::warn!(provider = %id, error = %e, "session could not be created");
                fail("Unavailable")
            }
        }
    }
}

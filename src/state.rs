//! What every handler can reach: the services, built once by [`crate::startup`]. Plain
//! fields — behaviour lives in the services themselves, never here.

use std::sync::Arc;

use crate::accounts::passkeys::Passkeys;
use crate::accounts::AccountService;
use crate::apispecs::ApiSpecs;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Database;
use crate::oauth_server::AuthorizationServer;
use crate::providers::Providers;
use crate::session::cookie::CookiePolicy;
use crate::session::csrf::Csrf;
use crate::session::refresh::Refresher;
use crate::session::SessionManager;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;

/// The application's services, shared: cloning it (every request does) is one reference
/// count, whatever the services are.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services, as plain fields.
pub struct Services {
    pub settings: Arc<Settings>,
    pub db: Database,
    /// Sessions, flows, locks and counters (Redis or memory).
    pub store: Store,
    /// The bundled users: registration, sign-in, tokens, passwords.
    pub accounts: Arc<AccountService>,
    /// The bundled accounts' passkeys.
    pub passkeys: Arc<Passkeys>,
    pub metrics: Arc<Metrics>,
    pub sessions: Arc<SessionManager>,
    /// Keeps sessions' upstream tokens fresh.
    pub refresher: Arc<Refresher>,
    pub cookies: CookiePolicy,
    pub csrf: Csrf,
    /// Every way to sign in, and the sign-ins in progress.
    pub providers: Arc<Providers>,
    /// The bundled authorization server (`/oauth`), when enabled.
    pub oauth: Option<Arc<AuthorizationServer>>,
    /// The time services decide by (a test's own, in tests).
    pub clock: Clock,
    /// The proxied upstreams' OpenAPI documents, rewritten for the session cookie.
    pub specs: Arc<ApiSpecs>,
}

impl AppState {
    /// Revokes a session's upstream tokens at its provider (best effort: a provider
    /// that is down is logged, and the sign-out goes on).
    pub async fn revoke_tokens(&self, session: &crate::session::Session) {
        if let Some(provider) = self.providers.get(&session.provider) {
            provider.revoke(&self.providers.http, &session.tokens).await;
        }
    }

    /// Ends a browser session as sign-out does: its tokens revoked, then the session
    /// deleted (and so, for a session of the authorization server, its apps told).
    pub async fn end_session(
        &self,
        id: &crate::session::SessionId,
        session: &crate::session::Session,
    ) -> crate::error::AppResult<()> {
        self.revoke_tokens(session).await;
        self.sessions.destroy(id, session).await
    }
}

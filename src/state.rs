//! What every handler can reach: the services, built once by [`crate::startup`]. Plain
//! fields — behaviour lives in the services themselves, never here.

use std::sync::Arc;

use crate::accounts::AccountService;
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

/// The application's services. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Database,
    /// Sessions, flows, locks and counters (Redis or memory).
    pub store: Store,
    /// The bundled users: registration, sign-in, tokens, passwords.
    pub accounts: Arc<AccountService>,
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
}

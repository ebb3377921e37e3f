//! The provider registry: every way a user signs in — username and password (the
//! credentials provider: the bundled `/v1` users or a remote backend), and OAuth2/OIDC
//! providers ("Sign in with 42", GitHub, Google, any OIDC issuer, "Sign in with
//! sessiongate") — behind one [`Provider`] for refresh, revocation and profile. Nothing
//! outside this module tells providers apart by their id.

pub mod config;
pub mod credentials;
pub mod fetch;
pub mod flow;
pub mod logout;
pub mod oauth;
pub mod oidc;
pub mod presets;
pub mod profile;
pub mod schema;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::clock::Clock;
use crate::error::AppResult;
use crate::session::refresh::{RefreshError, TokenSource};
use crate::session::{SessionUser, TokenSet};

pub use config::{ClientAuth, Kind, ProfileMapping, ProviderConfig};
pub use credentials::Credentials;
pub use fetch::ProviderHttp;
pub use flow::{FlowStore, PendingFlow};
pub use oauth::{Failure, OAuthProvider};

/// Provider id of username/password sign-in (`[providers.credentials]`; the config
/// names it as the default provider of a route).
pub const CREDENTIALS: &str = crate::config::DEFAULT_ROUTE_PROVIDER;

/// Provider id of "Sign in with sessiongate" (this server's own `/oauth`, by OIDC).
pub const SELF_PROVIDER: &str = "sessiongate";

/// A successful sign-in: who, and the tokens to keep in the vault.
#[derive(Debug)]
pub struct SignedIn {
    pub user: SessionUser,
    pub tokens: TokenSet,
    /// An OpenID sign-in's OP session and id_token (for logout).
    pub oidc: Option<OidcSignIn>,
}

/// What an OpenID sign-in leaves for logout: the provider's OP session (`sid`, when the
/// id_token has one) and the id_token itself (the end-session hint).
pub struct OidcSignIn {
    pub sid: Option<String>,
    pub id_token: String,
}

impl std::fmt::Debug for OidcSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSignIn")
            .field("sid", &self.sid)
            .field("id_token", &"<redacted>")
            .finish()
    }
}

/// One way to sign in.
#[allow(clippy::large_enum_variant)] // one of each, built once, held behind an Arc
pub enum Provider {
    Credentials(Credentials),
    OAuth(OAuthProvider),
}

impl Provider {
    pub fn id(&self) -> &str {
        match self {
            Self::Credentials(_) => CREDENTIALS,
            Self::OAuth(p) => &p.config.id,
        }
    }

    /// The name on sign-in buttons.
    pub fn name(&self) -> &str {
        match self {
            Self::Credentials(c) => c.name(),
            Self::OAuth(p) => &p.config.name,
        }
    }

    /// NextAuth's provider `type`: `credentials`, or `oauth` for OAuth2 and OIDC.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Credentials(_) => "credentials",
            Self::OAuth(_) => "oauth",
        }
    }

    /// Where the provider's sign-in comes back to.
    pub fn callback_url(&self, public_url: &str) -> String {
        match self {
            Self::Credentials(_) => format!("{public_url}/api/auth/callback/{CREDENTIALS}"),
            Self::OAuth(p) => p.redirect_uri.clone(),
        }
    }

    /// Whether its user ids are this server's own accounts (the bundled credentials
    /// backend, "Sign in with sessiongate"): their sessions are indexed by account.
    pub fn owns_accounts(&self) -> bool {
        match self {
            Self::Credentials(c) => c.is_bundled(),
            Self::OAuth(p) => p.config.accounts,
        }
    }

    /// Whether its sessions are signed in to the bundled users with `/v1` tokens (what
    /// the authorization server accepts as its own sign-in).
    pub fn is_bundled_password(&self) -> bool {
        matches!(self, Self::Credentials(c) if c.is_bundled())
    }

    /// New tokens for `tokens` (RFC 6749 §6: a rejection ends the sign-in; anything else
    /// is worth retrying later).
    pub async fn refresh(
        &self,
        http: &ProviderHttp,
        tokens: &TokenSet,
    ) -> Result<TokenSet, RefreshError> {
        match self {
            Self::Credentials(c) => c.refresh(tokens).await,
            Self::OAuth(p) => p.refresh(http, tokens).await,
        }
    }

    /// Ends the provider's side of a sign-in, best effort (sign-out).
    pub async fn revoke(&self, http: &ProviderHttp, tokens: &TokenSet) {
        match self {
            Self::Credentials(c) => c.logout(tokens).await,
            Self::OAuth(p) => p.revoke(http, tokens).await,
        }
    }

    /// The current profile behind `tokens`, where the provider can say (the session's
    /// `update()`); `None`: keep the one from the sign-in.
    pub async fn profile(&self, tokens: &TokenSet) -> AppResult<Option<SessionUser>> {
        match self {
            Self::Credentials(c) => c.profile(tokens).await.map(Some),
            Self::OAuth(_) => Ok(None),
        }
    }
}

/// The enabled providers (the credentials provider first, then the OAuth ones in
/// configuration order), the pending-flow store, and the one (capped) client every
/// provider request goes through.
pub struct Providers {
    list: Vec<Arc<Provider>>,
    pub flows: FlowStore,
    pub http: ProviderHttp,
}

impl Providers {
    pub fn new(
        credentials: Credentials,
        configs: Vec<ProviderConfig>,
        public_url: &str,
        flows: FlowStore,
        http: ProviderHttp,
        clock: Clock,
    ) -> Self {
        let mut list = vec![Arc::new(Provider::Credentials(credentials))];
        list.extend(configs.into_iter().map(|c| {
            Arc::new(Provider::OAuth(OAuthProvider::new(
                c,
                public_url,
                clock.clone(),
            )))
        }));
        Self { list, flows, http }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.id() == id)
    }

    /// Every provider, the credentials one first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.list.iter()
    }

    /// The username/password provider (always there).
    pub fn credentials(&self) -> &Credentials {
        self.list
            .iter()
            .find_map(|p| match p.as_ref() {
                Provider::Credentials(c) => Some(c),
                Provider::OAuth(_) => None,
            })
            .unwrap_or_else(|| unreachable!("the registry always holds the credentials provider"))
    }

    /// The OAuth2/OIDC provider `id`.
    pub fn oauth(&self, id: &str) -> Option<&OAuthProvider> {
        match self.get(id)?.as_ref() {
            Provider::OAuth(p) => Some(p),
            Provider::Credentials(_) => None,
        }
    }

    /// The ids of the providers whose users are this server's own accounts.
    pub fn account_providers(&self) -> Vec<String> {
        self.iter()
            .filter(|p| p.owns_accounts())
            .map(|p| p.id().to_owned())
            .collect()
    }
}

/// The session refresher's source of new tokens: the session's own provider. A provider
/// removed from the configuration keeps its sessions, as an outage would.
impl TokenSource for Providers {
    fn refresh<'a>(
        &'a self,
        provider: &'a str,
        tokens: &'a TokenSet,
    ) -> Pin<Box<dyn Future<Output = Result<TokenSet, RefreshError>> + Send + 'a>> {
        Box::pin(async move {
            match self.get(provider) {
                Some(p) => p.refresh(&self.http, tokens).await,
                None => Err(RefreshError::Unavailable),
            }
        })
    }
}

/// Whether "Sign in with sessiongate" (the BFF as a client of its own `/oauth`) is on: the
/// authorization server serves the bundled users, and no provider table takes the id.
pub fn self_provider_enabled(settings: &crate::config::Settings) -> bool {
    settings.oauth.enabled
        && settings.oauth.self_provider
        && settings.providers.credentials.is_bundled()
        && !settings.providers.others.contains_key(SELF_PROVIDER)
}

/// The id of every provider `settings` enables — the credentials provider, each enabled
/// `[providers.*]` table, "Sign in with sessiongate" when it is on — and every problem of
/// the provider tables, one line each (a broken table enables nothing).
pub fn configured_ids(settings: &crate::config::Settings) -> (Vec<String>, Vec<String>) {
    let mut ids = vec![CREDENTIALS.to_owned()];
    let problems = match config::parse_all(&settings.providers.others) {
        Ok(enabled) => {
            ids.extend(enabled.into_iter().map(|p| p.id));
            Vec::new()
        }
        Err(problems) => problems,
    };
    if self_provider_enabled(settings) {
        ids.push(SELF_PROVIDER.to_owned());
    }
    (ids, problems)
}

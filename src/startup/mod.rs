//! Building the application from settings, binding before serving, and running until a
//! shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::accounts::jwt::JwtKeys;
use crate::accounts::passkeys::Passkeys;
use crate::accounts::AccountService;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Database;
use crate::mail::Mailer;
use crate::oauth_server::{client_record, AuthorizationServer, NewClient, OAuthRepo};
use crate::providers::{Credentials, FlowStore, Providers, SELF_PROVIDER};
use crate::ratelimit::RateLimiter;
use crate::session::cookie::CookiePolicy;
use crate::session::csrf::Csrf;
use crate::session::refresh::{Refresher, TokenSource};
use crate::session::SessionManager;
use crate::state::{AppState, Services};
use crate::telemetry::metrics::Metrics;
use crate::users::passkeys::PasskeyRepo;
use crate::users::UserRepo;

pub mod admin;
mod dependencies;
mod secrets;

/// Builds every service from `settings`: connects to the database (applying migrations),
/// prepares the store, the providers, the authorization server.
pub async fn build_state(settings: Settings, clock: Clock) -> anyhow::Result<AppState> {
    let db = Database::connect(&settings).await?;
    let db_ready = dependencies::database_at_start(&db).await?;

    let store = dependencies::store_at_start(&settings).await?;
    let production = secrets::production(&settings, store.is_shared());
    secrets::warn_about_cookie_mode(&settings);
    let secret = secrets::jwt_secret(&settings, production)?;
    let jwt = JwtKeys::new(&secret, settings.public_url());
    let limiter = RateLimiter::new(store.clone(), &settings.redis.prefix);
    let mailer = Mailer::from_settings(&settings.mail)?;
    let keyring = secrets::session_keys(&settings, production)?;
    let cookies = CookiePolicy {
        secure: settings.session.cookie_secure,
        max_age: settings.session.absolute_timeout,
    };
    // The client for identity providers and a remote credentials backend (the proxy has
    // its own, `proxy::client`). Each caller bounds its own wait; a stalled connection
    // fails after `proxy.timeout` without a byte.
    let http = reqwest::Client::builder()
        .connect_timeout(settings.proxy.connect_timeout)
        .read_timeout(settings.proxy.timeout)
        .pool_max_idle_per_host(256)
        .redirect(reqwest::redirect::Policy::none())
        // Some providers (GitHub) refuse requests without one.
        .user_agent(concat!("sessiongate/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let specs = Arc::new(crate::apispecs::ApiSpecs::new(
        &settings,
        cookies.session_name(),
        http.clone(),
    ));
    specs.keep_fresh(&crate::background::Background::current());
    let settings = Arc::new(settings);
    let accounts = AccountService::new(
        UserRepo::new(db.pool.clone()),
        jwt,
        Arc::clone(&settings),
        limiter,
        mailer,
    );
    let credentials = Credentials::new(
        &settings.providers.credentials,
        Arc::clone(&accounts),
        http.clone(),
        clock.clone(),
    );
    let mut configs = crate::providers::config::parse_all(&settings.providers.others)
        .map_err(|lines| anyhow::anyhow!(lines.join("\n")))?;
    let mut own_clients = Vec::new();
    if crate::providers::self_provider_enabled(&settings) {
        let secret = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            keyring.derive(b"oauth self-provider client secret"),
        );
        let (client, provider) = self_provider(&settings, secret)?;
        own_clients.push(client);
        configs.push(provider);
    }
    let oauth = if settings.oauth.enabled && credentials.is_bundled() {
        let server = Arc::new(AuthorizationServer::new(
            OAuthRepo::new(db.pool.clone()),
            UserRepo::new(db.pool.clone()),
            Arc::clone(&settings),
            clock.clone(),
            crate::providers::ProviderHttp::new(http.clone()),
            store.clone(),
            own_clients,
        )?);
        Some(server)
    } else {
        if settings.oauth.enabled {
            tracing::warn!(
                "oauth.enabled, but the credentials backend is remote: the authorization \
                 server serves bundled users only and stays off"
            );
        }
        None
    };
    match db_ready {
        true => dependencies::prepare_database(&db, oauth.as_deref()).await?,
        false => {
            tokio::spawn(dependencies::wait_for_database(db.clone(), oauth.clone()));
        }
    }
    let providers = Arc::new(Providers::new(
        credentials,
        configs,
        settings.public_url(),
        FlowStore::new(
            store.clone(),
            &settings.redis.prefix,
            keyring.clone(),
            clock.clone(),
        ),
        crate::providers::ProviderHttp::new(http),
        clock.clone(),
    ));
    let sessions = Arc::new(
        SessionManager::new(
            store.clone(),
            keyring.clone(),
            &settings.redis.prefix,
            settings.session.idle_timeout,
            settings.session.absolute_timeout,
            settings.session.cache_ttl,
        )
        .with_account_providers(providers.account_providers())
        .with_clock(clock.clone()),
    );
    sessions.watch_ended();
    // Keys of the first layout move to the hash-tagged one before any request reads them
    // (one SCAN pass; nothing to do on a Cluster, in memory, or the second time).
    match tokio::time::timeout(Duration::from_secs(30), sessions.upgrade_layout()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "session keys of the first layout not moved (next start tries again)")
        }
        Err(_) => tracing::warn!(
            "moving session keys of the first layout timed out (next start tries again)"
        ),
    }
    if let Some(server) = &oauth {
        // Ended browser sessions are ended OP sessions: their apps are told.
        sessions.on_end(Arc::new(crate::oauth_server::logout::BackChannel(
            Arc::clone(server),
        )));
    }
    let metrics = Arc::new(Metrics::default());
    let refresher = Arc::new(Refresher::new(
        Arc::clone(&sessions),
        Arc::clone(&providers) as Arc<dyn TokenSource>,
        Arc::clone(&metrics),
        settings.proxy.refresh_skew,
        settings.proxy.lock_timeout,
        clock.clone(),
    ));
    let passkeys = Arc::new(Passkeys::new(
        &settings,
        PasskeyRepo::new(db.pool.clone()),
        Arc::clone(&accounts),
        store.clone(),
        keyring.clone(),
        clock.clone(),
    ));
    Ok(AppState::new(Services {
        oauth,
        providers,
        settings,
        db,
        store,
        passkeys,
        accounts,
        metrics,
        sessions,
        refresher,
        csrf: Csrf::new(keyring.derive(b"csrf"), cookies.clone()),
        cookies,
        clock,
        specs,
    }))
}

/// The client record of the BFF at its own authorization server, and the OIDC provider
/// that signs in through it ("Sign in with sessiongate").
fn self_provider(
    settings: &Settings,
    secret: String,
) -> anyhow::Result<(
    crate::oauth_server::Client,
    crate::providers::ProviderConfig,
)> {
    use crate::providers::{ClientAuth, Kind, ProviderConfig};
    let issuer = settings.public_url().to_owned();
    crate::providers::config::check_endpoint(&issuer).map_err(|e| {
        anyhow::anyhow!("oauth.self_provider needs server.public_url usable as an issuer: {e}")
    })?;
    let redirect = vec![format!("{issuer}/api/auth/callback/{SELF_PROVIDER}")];
    // Signing out at the authorization server ends the BFF sessions it started.
    let backchannel = format!("{issuer}/api/auth/backchannel-logout/{SELF_PROVIDER}");
    let after_logout = vec![format!("{issuer}/api/auth/signout/callback")];
    let (client, _) = client_record(&NewClient {
        client_id: Some(SELF_PROVIDER),
        secret: Some(&secret),
        backchannel_logout_uri: Some(&backchannel),
        post_logout_redirect_uris: &after_logout,
        ..NewClient::basic("this site", &redirect, "openid profile email", false)
    })
    .map_err(|e| anyhow::anyhow!("oauth.self_provider: {e}"))?;
    let provider = ProviderConfig {
        id: SELF_PROVIDER.into(),
        name: "sessiongate".into(),
        kind: Kind::Oidc,
        client_id: SELF_PROVIDER.into(),
        client_secret: crate::crypto::Secret::new(secret),
        issuer,
        authorize_url: String::new(),
        token_url: String::new(),
        profile_url: String::new(),
        revocation_url: String::new(),
        scope: "openid profile email".into(),
        client_auth: ClientAuth::Basic,
        leeway: crate::providers::config::DEFAULT_LEEWAY,
        accounts: true,
        trust_email: false,
        end_session: true,
        // Its own logouts reach it by back-channel, signed.
        frontchannel_logout: false,
        profile: crate::providers::config::default_mapping(Kind::Oidc),
    };
    Ok((client, provider))
}

/// A bound, ready-to-serve application.
pub struct Application {
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
    state: AppState,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

async fn bind(
    key: &str,
    addr: SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {key} = {addr}"))?;
    let bound = listener
        .local_addr()
        .context("listener has no local address")?;
    Ok((listener, bound))
}

impl Application {
    /// Binds `server.listen` and `server.metrics_listen` (port 0 picks a free port), then
    /// builds the state.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`] with a clock of the caller's (tests move it forward).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let problems = crate::preflight::check(&settings);
        if !problems.is_empty() {
            anyhow::bail!("{}", problems.join("\n"));
        }
        let (listener, addr) = bind("server.listen", settings.server.listen).await?;
        let (metrics_listener, metrics_addr) = match settings
            .metrics_addr()
            .map_err(|e| anyhow::anyhow!("server.metrics_listen: {e}"))?
        {
            // The public service must not fail for want of its operators' endpoint (two
            // instances on one host share the default port): said loudly, then off.
            Some(at) => match bind("server.metrics_listen", at).await {
                Ok((l, a)) => (Some(l), Some(a)),
                Err(e) => {
                    tracing::warn!(
                        "{e:#}: /metrics is off for this process (set server.metrics_listen \
                         to a free address, or to \"\" to turn it off)"
                    );
                    (None, None)
                }
            },
            None => (None, None),
        };
        let state = build_state(settings, clock).await?;
        Ok(Self {
            listener,
            metrics_listener,
            state,
            addr,
            metrics_addr,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, if anywhere.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to
    /// `server.shutdown_grace`).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let s = &self.state.settings.server;
        let limits = crate::http::server::Limits {
            header_timeout: s.header_timeout,
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections,
            shutdown_grace: s.shutdown_grace,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // When the signal came: the grace covers the requests and then the logouts.
        let signalled = Arc::new(std::sync::OnceLock::new());
        let signalled_at = Arc::clone(&signalled);
        let metrics = Arc::clone(&self.state.metrics);
        let routes_state = self.state.clone();
        let public = crate::http::server::serve_workers(
            self.listener,
            self.state.settings.workers(),
            move || crate::routes::build(routes_state.clone()),
            limits,
            Some(metrics),
            async move {
                shutdown.await;
                let _ = signalled_at.set(std::time::Instant::now());
                stop.send_replace(true);
            },
        );
        let operators = async {
            match self.metrics_listener {
                Some(listener) => {
                    let mut stopped = stopped;
                    crate::http::server::serve(
                        listener,
                        crate::routes::metrics(self.state.clone()),
                        limits,
                        None,
                        async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        },
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let (public, operators) = tokio::join!(public, operators);
        if let Some(server) = &self.state.oauth {
            let spent = signalled.get().map_or(Duration::ZERO, |at| at.elapsed());
            let left = s.shutdown_grace.saturating_sub(spent);
            if !server.finish_deliveries(left).await {
                tracing::warn!("back-channel logouts still under way at shutdown were dropped");
            }
        }
        public.context("server failed")?;
        operators.context("metrics server failed")
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

//! The database and Redis at start. One that is down is said at once, naming where and
//! why, and waited for: the server serves, `/readyz` reports it, and a retry every 5 s
//! picks it up. One that is misconfigured (no such database, a refused password) stops
//! the start with what to do.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
use crate::db::Database;
use crate::oauth_server::AuthorizationServer;
use crate::store::{Store, Unusable};

/// How often a dependency that was down at start is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Applies the migrations; `false` when the database is down (and so waited for).
pub(super) async fn database_at_start(db: &Database) -> anyhow::Result<bool> {
    match db.migrate().await {
        Ok(()) => {
            tracing::info!(backend = ?db.backend, "database ready");
            Ok(true)
        }
        Err(e) if e.is_transient() => {
            tracing::error!("{e}; retrying every 5 s (/readyz reports it)");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// What start-up writes to a migrated database (the authorization server's clients and
/// signing keys); then the database is ready (`/readyz`).
pub(super) async fn prepare_database(
    db: &Database,
    oauth: Option<&AuthorizationServer>,
) -> anyhow::Result<()> {
    if let Some(server) = oauth {
        server
            .prepare()
            .await
            .map_err(|e| anyhow::anyhow!("the authorization server's start-up writes: {e}"))?;
    }
    db.mark_ready();
    Ok(())
}

/// Retries the migrations and the start-up writes every 5 s until the database answers.
pub(super) async fn wait_for_database(db: Database, oauth: Option<Arc<AuthorizationServer>>) {
    loop {
        tokio::time::sleep(RETRY).await;
        if let Err(e) = db.migrate().await {
            match e.is_transient() {
                true => tracing::warn!("{e}; retrying in 5 s"),
                false => tracing::error!("{e}"),
            }
            continue;
        }
        if let Err(e) = prepare_database(&db, oauth.as_deref()).await {
            tracing::warn!("{e:#}; retrying in 5 s");
            continue;
        }
        tracing::info!(backend = ?db.backend, "database ready");
        return;
    }
}

/// The store `[redis]` names (memory when it names none, with a warning). A Redis that
/// does not answer is said at once and watched until it does; the store reconnects by
/// itself.
pub(super) async fn store_at_start(settings: &Settings) -> anyhow::Result<Store> {
    let Some(target) = settings.redis.target() else {
        tracing::warn!(
            "redis.url is empty: sessions, OAuth state and rate limits live in process \
             memory (one instance only, lost on restart)"
        );
        return Ok(Store::memory());
    };
    let ca = match settings.redis.ca_file.as_str() {
        "" => None,
        path => Some(std::fs::read(path).with_context(|| format!("redis.ca_file: {path}"))?),
    };
    let store = Store::connect(&target, settings.redis.timeout, ca).context("[redis]")?;
    let at = target.describe();
    match store.probe().await {
        Ok(()) => {}
        Err(Unusable::Refused(cause)) => anyhow::bail!(
            "redis at {at} refused sessiongate ({cause}): check the user and password in \
             redis.url (or the cluster's or sentinels' URLs)"
        ),
        Err(Unusable::Down(cause)) => {
            tracing::error!(
                "redis at {at} cannot be reached ({cause}); is it running, and is redis.url \
                 right? Sessions and sign-ins answer 503 until it does (retrying every 5 s; \
                 /readyz reports it)"
            );
            watch_redis(store.clone(), at);
        }
    }
    Ok(store)
}

/// Says once when a Redis that was down at start answers (the store reconnects by
/// itself; this only tells the operator).
fn watch_redis(store: Store, at: String) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RETRY).await;
            if store.ping().await.is_ok() {
                tracing::info!("redis at {at} answers");
                return;
            }
        }
    });
}

//! The users database: one sqlx `Any` pool that is PostgreSQL in production and a SQLite
//! file by default. The schema in `migrations/` is portable SQL, so one set of queries
//! serves both backends and no business function branches on the backend.

use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyQueryResult};
use sqlx::AnyPool;

use crate::config::Settings;
use crate::error::AppResult;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which engine the pool talks to (for logs and readiness only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A connected, migrated database.
#[derive(Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// `sqlite://data/x.db` → makes sure `data/` exists and the file may be created.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if !path.is_empty() && path != ":memory:" {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating database directory {}", dir.display()))?;
            }
        }
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

impl Database {
    /// Connects to `settings.database` (SQLite under `./data/` when unset).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Self::connect_url(
            &settings.database_url(),
            settings.database.max_connections,
            settings.database.acquire_timeout,
        )
        .await
    }

    pub async fn connect_url(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, prepare_sqlite_url(url)?)
        } else {
            (Backend::Postgres, url.to_owned())
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect(&url)
            .await
            .with_context(|| format!("connecting to the {backend:?} database"))?;
        Ok(Self { pool, backend })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let _: AnyQueryResult = sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The shape of every single-use credential here — a refresh token rotated in either
/// token family (RFC 6819 §5.2.2.3), an authorization code, a password-reset token: a
/// conditional `UPDATE` that claims one row while it is still usable, then, only if it
/// claimed it, the writes that follow from it, in one transaction. Of two concurrent
/// uses one claims the row; the other gets `None` and nothing is written for it.
///
/// (On SQLite the transaction's first statement is that write, so it takes the write
/// lock at once instead of upgrading a stale read snapshot: no `SQLITE_BUSY_SNAPSHOT`.)
pub async fn claim_then<'q, T, F>(
    pool: &AnyPool,
    claim: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    then: impl FnOnce(Tx) -> F,
) -> AppResult<Option<T>>
where
    F: std::future::Future<Output = AppResult<(Tx, T)>>,
{
    let mut tx = pool.begin().await?;
    if claim.execute(&mut *tx).await?.rows_affected() != 1 {
        return Ok(None);
    }
    let (tx, out) = then(tx).await?;
    tx.commit().await?;
    Ok(Some(out))
}

/// A transaction on the users database.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

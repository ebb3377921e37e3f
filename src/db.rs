//! The users database: one sqlx `Any` pool that is PostgreSQL in production and a SQLite
//! file by default. The schema in `migrations/` is portable SQL, so one set of queries
//! serves both backends and no business function branches on the backend.

use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyQueryResult};
use sqlx::AnyPool;

use crate::config::Settings;
use crate::crypto::location_of;
use crate::error::AppResult;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which engine the pool talks to (for logs and readiness only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The users database: a pool that connects on demand (so the server starts, and says
/// why it is not ready, while the database is down).
#[derive(Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub backend: Backend,
    /// `host:port/name` (or the SQLite path), for messages: never the password.
    location: String,
    /// The URL, to ask a direct connection why the pool cannot connect.
    url: crate::crypto::Secret,
    /// Whether the server may use it: migrated, and what start-up writes there written
    /// (a database down at start becomes ready later).
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Why the database cannot be used, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Nothing answers (refused, unreachable, timed out): worth retrying.
    #[error("the database at {location} cannot be reached ({cause}); is it running, and is database.url right?")]
    Unreachable { location: String, cause: String },
    /// The server answers, but the database does not exist.
    #[error("the database at {location} does not exist: create it (e.g. `createdb {name}`), or run `sessiongate migrate --create-database`")]
    Missing { location: String, name: String },
    /// The server refused the user or password.
    #[error("the database at {location} refused the user or password in database.url ({cause})")]
    Refused { location: String, cause: String },
    #[error("the database at {location}: {cause}")]
    Other { location: String, cause: String },
}

impl DbError {
    /// Whether waiting may fix it (the database is down, not misconfigured).
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Unreachable { .. })
    }
}

/// The database name of a PostgreSQL URL.
fn name_of(location: &str) -> String {
    location.rsplit_once('/').map_or("", |(_, n)| n).to_owned()
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
            .connect_lazy(&url)
            .with_context(|| format!("database.url: not a usable {backend:?} URL"))?;
        Ok(Self {
            pool,
            backend,
            location: location_of(&url),
            url: crate::crypto::Secret::new(url),
            ready: Default::default(),
        })
    }

    /// What went wrong, said so that it can be fixed.
    fn explain(&self, err: &sqlx::Error) -> DbError {
        let location = self.location.clone();
        let cause = match err {
            sqlx::Error::Migrate(m) => match m.as_ref() {
                sqlx::migrate::MigrateError::Execute(e) => return self.explain(e),
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        let code = match err {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        match (err, code.as_deref()) {
            (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed, _) => {
                DbError::Unreachable { location, cause }
            }
            // PostgreSQL: cannot_connect_now (starting up, recovering), too_many_connections,
            // admin_shutdown: it will answer, later.
            (_, Some("57P03" | "53300" | "57P01")) => DbError::Unreachable { location, cause },
            // PostgreSQL: invalid_catalog_name.
            (_, Some("3D000")) => DbError::Missing {
                name: name_of(&location),
                location,
            },
            // PostgreSQL: invalid_password, invalid_authorization_specification.
            (_, Some("28P01" | "28000")) => DbError::Refused { location, cause },
            _ => DbError::Other { location, cause },
        }
    }

    /// Applies pending migrations (and so proves the database is there).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match MIGRATOR.run(&self.pool).await {
            Ok(()) => Ok(()),
            // The pool only says it timed out: one direct connection says why.
            Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::PoolTimedOut)) => {
                Err(self.diagnose().await)
            }
            Err(e) => Err(self.explain(&sqlx::Error::Migrate(Box::new(e)))),
        }
    }

    /// Why a connection cannot be made, from one direct attempt.
    async fn diagnose(&self) -> DbError {
        use sqlx::Connection;
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::AnyConnection::connect(self.url.expose()),
        )
        .await;
        match attempt {
            Ok(Err(e)) => self.explain(&e),
            Ok(Ok(_)) | Err(_) => self.explain(&sqlx::Error::PoolTimedOut),
        }
    }

    /// Creates the PostgreSQL database of `database.url` if it does not exist (`sessiongate
    /// migrate --create-database`); SQLite files are created anyway.
    pub async fn create_if_missing(url: &str) -> anyhow::Result<bool> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            return Ok(false);
        }
        let location = location_of(url);
        let name = name_of(&location);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            anyhow::bail!("database.url: `{name}` is not a database name this command creates");
        }
        // The same server, user and options (`?sslmode=…`, `?host=…`), database `postgres`.
        let (path, query) = url
            .split_once('?')
            .map_or((url, None), |(p, q)| (p, Some(q)));
        let (base, _) = path
            .rsplit_once('/')
            .context("database.url has no database name")?;
        let admin = match query {
            Some(q) => format!("{base}/postgres?{q}"),
            None => format!("{base}/postgres"),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin)
            .await
            .with_context(|| format!("connecting to {} to create `{name}`", location_of(&admin)))?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_optional(&pool)
            .await?;
        if exists.is_some() {
            return Ok(false);
        }
        match sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&pool)
            .await
        {
            Ok(_) => Ok(true),
            // duplicate_database: another instance created it meanwhile.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
            Err(e) => Err(anyhow::Error::new(e).context(format!("creating the database `{name}`"))),
        }
    }

    /// Start-up is done with the database (see [`Database::ping`]).
    pub fn mark_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    /// A cheap round trip, for `/readyz`: ready once [`Database::mark_ready`] and answering.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        if !self.ready.load(std::sync::atomic::Ordering::Acquire) {
            return Err(sqlx::Error::PoolTimedOut);
        }
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

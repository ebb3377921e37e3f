//! Token refresh that never races.
//!
//! Exactly one refresh per session at a time, across every instance:
//! 1. an in-process single flight keyed by session (waiters queue on one mutex);
//! 2. the store's lock on the session (`SET NX PX` in Redis, released only by its owner).
//!
//! After each step the session is re-read from the store (never the cache): if someone
//! else refreshed meanwhile, their tokens are used and no second refresh happens. New
//! tokens are written with compare-and-set before anyone uses them, so a rotated
//! refresh token is never lost and an older token set never overwrites a newer one.
//! `invalid_grant` ends the session (401 `session_expired`); a provider that is down
//! keeps it (503 `refresh_unavailable`). Where new tokens come from is a
//! [`TokenSource`]: the provider registry.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

use crate::clock::Clock;
use crate::error::{AppError, AppResult};
use crate::session::{Session, SessionId, SessionManager, TokenSet};
use crate::telemetry::metrics::Metrics;

/// Why a refresh did not produce tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshError {
    /// The provider refused the refresh token (`invalid_grant`): the sign-in is over.
    Rejected,
    /// The provider could not be reached or failed: try again later.
    Unavailable,
}

/// Where new tokens come from: the session's provider (by id).
pub trait TokenSource: Send + Sync {
    fn refresh<'a>(
        &'a self,
        provider: &'a str,
        tokens: &'a TokenSet,
    ) -> Pin<Box<dyn Future<Output = Result<TokenSet, RefreshError>> + Send + 'a>>;
}

/// Per-session mutexes of this process.
#[derive(Default)]
struct SingleFlight {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SingleFlight {
    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Forget mutexes nobody holds any more, so the map stays small.
        if map.len() > 1024 {
            map.retain(|_, m| Arc::strong_count(m) > 1);
        }
        map.entry(key.to_owned()).or_default().clone()
    }
}

/// Whether the access token must be refreshed before use: it expires within `skew` of
/// `now`.
pub fn due(tokens: &TokenSet, skew: Duration, now: i64) -> bool {
    tokens
        .expires_at
        .is_some_and(|at| at - now <= skew.as_secs() as i64)
}

/// Keeps sessions' access tokens fresh (see the module doc).
pub struct Refresher {
    sessions: Arc<SessionManager>,
    source: Arc<dyn TokenSource>,
    metrics: Arc<Metrics>,
    flights: SingleFlight,
    /// Refresh this long before expiry (`proxy.refresh_skew`).
    skew: Duration,
    /// Longest a refresh may hold the session's lock (`proxy.lock_timeout`).
    lock_ttl: Duration,
    clock: Clock,
    /// Where a refresh runs: it must finish even when its request's worker stops.
    background: crate::background::Background,
}

impl Refresher {
    pub fn new(
        sessions: Arc<SessionManager>,
        source: Arc<dyn TokenSource>,
        metrics: Arc<Metrics>,
        skew: Duration,
        lock_ttl: Duration,
        clock: Clock,
    ) -> Self {
        Self {
            sessions,
            source,
            metrics,
            flights: SingleFlight::default(),
            skew,
            lock_ttl,
            clock,
            background: crate::background::Background::current(),
        }
    }

    /// The session as the store holds it now (never the cache); gone is
    /// `session_expired`.
    async fn stored(&self, id: &SessionId) -> AppResult<Session> {
        self.sessions
            .fresh(id)
            .await?
            .ok_or(AppError::SessionExpired)
    }

    /// The session with a usable access token: `session` itself when its token is fresh,
    /// otherwise after the (single) refresh. `stale_token`, when given, forces a refresh
    /// unless the session's token already differs from it (an upstream said it is
    /// invalid).
    ///
    /// "Needs a refresh" always means *still the access token this request started
    /// with*: once anyone has replaced it, waiters take the new one instead of
    /// refreshing again.
    pub async fn fresh(
        self: &Arc<Self>,
        id: &SessionId,
        session: Arc<Session>,
        stale_token: Option<&str>,
    ) -> AppResult<Arc<Session>> {
        let skew = self.skew;
        let forced = stale_token.is_some();
        if !(forced || due(&session.tokens, skew, self.clock.now()))
            || stale_token.is_some_and(|t| t != session.tokens.access_token)
        {
            return Ok(session);
        }
        let started_with = session.tokens.access_token.clone();
        let clock = self.clock.clone();
        let needs = move |s: &Session| {
            s.tokens.access_token == started_with && (forced || due(&s.tokens, skew, clock.now()))
        };

        // The locked part runs in its own task, which nothing cancels: neither a browser
        // that gives up on its request nor this request's own wait limit may stop a
        // refresh between the provider's rotation and the store write. The request waits
        // at most half the lock's lifetime; the refresh finishes (and is stored)
        // regardless.
        let budget = self.lock_ttl / 2;
        let (this, id) = (Arc::clone(self), id.clone());
        // In the request's span: the refresh is part of its trace.
        let task = self.background.spawn(crate::request_id::carried(
            async move { this.single_flight(&id, &needs).await }.in_current_span(),
        ));
        match tokio::time::timeout(budget, task).await {
            Ok(joined) => joined
                .map_err(|e| AppError::Internal(anyhow::anyhow!("refresh task failed: {e}")))?
                .map(Arc::new),
            Err(_) => {
                tracing::warn!(
                    budget_ms = budget.as_millis() as u64,
                    "token refresh still running; this request stops waiting"
                );
                Err(AppError::RefreshUnavailable)
            }
        }
    }

    async fn single_flight(
        &self,
        id: &SessionId,
        needs: &(impl Fn(&Session) -> bool + Sync),
    ) -> AppResult<Session> {
        let local = self.flights.lock_for(&self.sessions.key(id));
        let wait_started = Instant::now();
        let _flight = local.lock().await;
        if wait_started.elapsed() > Duration::from_millis(1) {
            self.metrics.count(
                "sessiongate_refresh_lock_waits_total",
                "scope=\"process\"".into(),
            );
        }
        let current = self.stored(id).await?;
        if !needs(&current) {
            return Ok(current);
        }

        // Across instances: the store's lock on this session.
        let owner = crate::crypto::random_token();
        let deadline = Instant::now() + self.lock_ttl;
        let mut waited = false;
        while !self.sessions.try_lock(id, &owner, self.lock_ttl).await? {
            if !waited {
                self.metrics.count(
                    "sessiongate_refresh_lock_waits_total",
                    "scope=\"cluster\"".into(),
                );
                waited = true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let current = self.stored(id).await?;
            if !needs(&current) {
                return Ok(current);
            }
            if Instant::now() > deadline {
                return Err(AppError::RefreshUnavailable);
            }
        }

        let result = self.locked(id, needs).await;
        if let Err(e) = self.sessions.unlock(id, &owner).await {
            tracing::warn!(error = %e, "refresh lock not released (it expires by itself)");
        }
        result
    }

    /// The refresh itself, with the lock held.
    async fn locked(
        &self,
        id: &SessionId,
        needs: &impl Fn(&Session) -> bool,
    ) -> AppResult<Session> {
        let current = self.stored(id).await?;
        if !needs(&current) {
            return Ok(current);
        }
        if current.tokens.refresh_token.is_none() {
            self.sessions.destroy(id, &current).await?;
            return Err(AppError::SessionExpired);
        }
        let used = current.tokens.refresh_token.clone();
        match self.ask_provider(&current).await {
            // Stored with compare-and-set, and only over the token set that was used: a
            // newer set (from anyone) is never replaced by this one.
            Ok(tokens) => self
                .sessions
                .update(id, |s| {
                    if s.tokens.refresh_token == used {
                        s.tokens = tokens.clone();
                    }
                })
                .await?
                .ok_or(AppError::SessionExpired),
            Err(RefreshError::Rejected) => {
                self.sessions.destroy(id, &current).await?;
                Err(AppError::SessionExpired)
            }
            Err(RefreshError::Unavailable) => Err(AppError::RefreshUnavailable),
        }
    }

    /// Asks the session's provider for new tokens, bounded well inside the lock's
    /// lifetime, so the lock cannot expire under a slow provider and let a second
    /// instance refresh with a token this one may have spent.
    async fn ask_provider(&self, session: &Session) -> Result<TokenSet, RefreshError> {
        let started = Instant::now();
        let limit = self.lock_ttl * 3 / 4;
        let span = tracing::info_span!(target: "otel", "refresh", provider = %session.provider);
        let result = tokio::time::timeout(
            limit,
            self.source.refresh(&session.provider, &session.tokens),
        )
        .instrument(span)
        .await
        .unwrap_or(Err(RefreshError::Unavailable));
        let outcome = match result {
            Ok(_) => "ok",
            Err(RefreshError::Rejected) => "rejected",
            Err(RefreshError::Unavailable) => "unavailable",
        };
        self.metrics.count(
            "sessiongate_token_refreshes_total",
            format!("provider=\"{}\",outcome=\"{outcome}\"", session.provider),
        );
        tracing::info!(provider = %session.provider, outcome, ms = started.elapsed().as_millis() as u64, "token refresh");
        result
    }
}

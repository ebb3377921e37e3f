//! `sessiongate sessions end --user NAME`: an administrator ends every sign-in of a
//! bundled account at once — its browser sessions (on every instance, through the store),
//! its API sign-ins (`/v1` refresh tokens) and what the authorization server issued for
//! it — and every app those sessions signed into is told (Back-Channel Logout), before
//! the command returns.

use std::time::Duration;

use crate::clock::Clock;
use crate::config::Settings;

/// How long the command waits for the apps to be told (three tries of five seconds, and
/// the pauses between them).
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

/// What `sessions end` did.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub user_id: String,
    pub username: String,
    /// Browser sessions ended (their apps told).
    pub sessions: usize,
    /// `/v1` sign-ins whose refresh tokens were revoked.
    pub api_sign_ins: u64,
    /// Whether every logout token was delivered or given up within the wait.
    pub apps_told: bool,
}

/// Ends every sign-in of the account whose id, username or email is `who`.
pub async fn end_user_sessions(mut settings: Settings, who: &str) -> anyhow::Result<Ended> {
    // This command registers no client: a running server's (and its derived secrets)
    // stay as they are.
    settings.oauth.clients.clear();
    settings.oauth.self_provider = false;
    let state = super::build_state(settings, Clock::system()).await?;
    if !state.store.is_shared() {
        anyhow::bail!(
            "redis.url is empty: the server's sessions live in its own memory, out of this \
             command's reach (set redis.url as the server has it)"
        );
    }
    let repo = &state.accounts.repo;
    let user = match repo.find_by_id(who).await? {
        Some(user) => user,
        None => repo
            .find_for_login(&who.trim().to_lowercase())
            .await?
            .map(|(user, _)| user)
            .ok_or_else(|| {
                anyhow::anyhow!("no account `{who}` (give its id, username or email)")
            })?,
    };
    let sessions = state.sessions.revoke_account(&user.id).await?;
    let api_sign_ins = repo.revoke_families_of(&user.id).await?;
    let mut apps_told = true;
    if let Some(server) = &state.oauth {
        server.repo.revoke_user(&user.id).await?;
        apps_told = server.finish_deliveries(DELIVERY_WAIT).await;
    }
    tracing::info!(user = %user.id, sessions, api_sign_ins, "every sign-in of the account ended by an administrator");
    Ok(Ended {
        user_id: user.id,
        username: user.username,
        sessions,
        api_sign_ins,
        apps_told,
    })
}

//! The authorization server's administration from the command line: registering,
//! listing and removing clients (`sessiongate clients …`), and rotating the id_token
//! signing key (`sessiongate rotate-signing-key`).

use clap::Subcommand;

use super::{client_record, keys, NewClient, OAuthRepo};
use crate::config::Settings;

/// `sessiongate clients …`.
#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register a client and print its id and secret (the secret is shown only once).
    #[command(
        after_help = "Example:\n  sessiongate clients add --name \"Prescription Manager\" \\\n    --redirect-uri https://app.example.com/callback --scopes \"openid profile\""
    )]
    Add {
        /// Name shown on the consent page.
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uri: Vec<String>,
        /// A public client (no secret; PKCE required), e.g. an SPA or a mobile app.
        #[arg(long)]
        public: bool,
        /// Space-separated scopes it may ask for.
        #[arg(long, default_value = "openid profile email user")]
        scopes: String,
        /// An exact URI the client may be sent to after logout (repeat for several).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uri: Vec<String>,
        /// Where logout tokens are posted when a user's session ends (back-channel).
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// The client needs `sid` in its logout tokens.
        #[arg(long)]
        backchannel_logout_session_required: bool,
        /// How its id_tokens are signed: RS256 (default) or ES256.
        #[arg(long = "id-token-alg")]
        id_token_alg: Option<String>,
        /// Its authorization requests must be pushed to /oauth/par first (RFC 9126).
        #[arg(long)]
        require_par: bool,
        /// A page of the client's that the signed-out page loads in an iframe with `iss`
        /// and `sid` (front-channel logout); on the origin of a redirect URI.
        #[arg(long)]
        frontchannel_logout_uri: Option<String>,
        /// Print `{"client_id": …, "client_secret": …}`.
        #[arg(long)]
        json: bool,
    },
    /// List the registered clients.
    #[command(after_help = "Example:\n  sessiongate clients list --json")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a client and everything issued to it.
    #[command(after_help = "Example:\n  sessiongate clients remove sg-abc123")]
    Remove { client_id: String },
}

/// The database's authorization-server tables (migrated first).
async fn repo(settings: &Settings) -> anyhow::Result<OAuthRepo> {
    let db = crate::db::Database::connect(settings).await?;
    db.migrate().await?;
    Ok(OAuthRepo::new(db.pool))
}

/// Runs a `clients` command, printing what it did.
pub async fn clients(settings: &Settings, action: ClientsCommand) -> anyhow::Result<()> {
    let repo = repo(settings).await?;
    match action {
        ClientsCommand::Add {
            name,
            redirect_uri,
            public,
            scopes,
            post_logout_redirect_uri,
            backchannel_logout_uri,
            backchannel_logout_session_required,
            id_token_alg,
            require_par,
            frontchannel_logout_uri,
            json,
        } => {
            let (client, secret) = client_record(&NewClient {
                post_logout_redirect_uris: &post_logout_redirect_uri,
                backchannel_logout_uri: backchannel_logout_uri.as_deref(),
                backchannel_logout_session_required,
                id_token_signed_response_alg: id_token_alg.as_deref(),
                require_pushed_authorization_requests: require_par,
                frontchannel_logout_uri: frontchannel_logout_uri.as_deref(),
                ..NewClient::basic(&name, &redirect_uri, &scopes, public)
            })
            .map_err(|e| anyhow::anyhow!(e))?;
            repo.insert_client(&client).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"client_id": client.client_id, "client_secret": secret})
                );
            } else {
                println!("client_id:     {}", client.client_id);
                match secret {
                    Some(s) => println!("client_secret: {s}   (shown once: store it now)"),
                    None => println!("public client: no secret; PKCE (S256) is required"),
                }
            }
        }
        ClientsCommand::List { json } => {
            let all = repo.list_clients().await?;
            if json {
                let list: Vec<_> = all
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "client_id": c.client_id, "name": c.name, "public": c.is_public(),
                            "redirect_uris": c.redirect_uris().collect::<Vec<_>>(),
                            "post_logout_redirect_uris": c.post_logout_redirect_uris().collect::<Vec<_>>(),
                            "backchannel_logout_uri": c.backchannel_logout_uri,
                            "frontchannel_logout_uri": c.frontchannel_logout_uri,
                            "id_token_signed_response_alg": c.id_token_alg().name(),
                            "scopes": c.scopes,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for c in &all {
                    let kind = if c.is_public() {
                        "public"
                    } else {
                        "confidential"
                    };
                    let uris: Vec<&str> = c.redirect_uris().collect();
                    println!("{}\t{}\t{kind}\t{}", c.client_id, c.name, uris.join(" "));
                }
            }
        }
        ClientsCommand::Remove { client_id } => {
            if !repo.remove_client(&client_id).await? {
                anyhow::bail!("no client `{client_id}`");
            }
            println!("removed {client_id}");
        }
    }
    Ok(())
}

/// Starts signing id_tokens with new keys, one per algorithm (the previous ones stay in
/// the JWKS); their ids.
pub async fn rotate_signing_key(settings: &Settings) -> anyhow::Result<Vec<String>> {
    Ok(keys::rotate(&repo(settings).await?).await?)
}

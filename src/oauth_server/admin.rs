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
            json,
        } => {
            let (client, secret) = client_record(&NewClient {
                client_id: None,
                secret: None,
                name: &name,
                redirect_uris: &redirect_uri,
                scopes: &scopes,
                public,
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

/// Starts signing id_tokens with a new key (the previous one stays in the JWKS); its id.
pub async fn rotate_signing_key(settings: &Settings) -> anyhow::Result<String> {
    Ok(keys::rotate(&repo(settings).await?).await?)
}

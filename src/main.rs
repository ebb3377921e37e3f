//! The `sessiongate` command: parse the CLI, load configuration, start tracing, hand over.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sessiongate::config::Settings;
use sessiongate::startup::{shutdown_signal, Application};

#[derive(Parser)]
#[command(
    version,
    about = "Backend-for-frontend session proxy with a bundled auth API"
)]
struct Cli {
    /// Configuration file layered over the embedded defaults (then SESSIONGATE_* env vars).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the OpenAPI document.
    Openapi,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a fresh base64 256-bit key for `session.keys` or `auth.jwt_secret`.
    Keygen,
    /// Manage the clients of the bundled authorization server (`/oauth`).
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Start signing id_tokens with a new key; the previous one stays in the JWKS.
    /// Running servers pick it up when restarted.
    RotateSigningKey,
}

#[derive(Subcommand)]
enum ClientsAction {
    /// Register a client and print its id and secret (the secret is shown only once).
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
        /// Space-separated scopes it may ask for (default: openid profile email user).
        #[arg(long, default_value = "")]
        scopes: String,
        /// Print `{"client_id": …, "client_secret": …}`.
        #[arg(long)]
        json: bool,
    },
    /// List the registered clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a client and everything issued to it.
    Remove { client_id: String },
}

async fn oauth_repo(settings: &Settings) -> anyhow::Result<sessiongate::oauth::OAuthRepo> {
    let db = sessiongate::db::Database::connect(settings).await?;
    db.migrate().await?;
    Ok(sessiongate::oauth::OAuthRepo::new(db.pool))
}

async fn clients(settings: &Settings, action: ClientsAction) -> anyhow::Result<()> {
    let repo = oauth_repo(settings).await?;
    match action {
        ClientsAction::Add {
            name,
            redirect_uri,
            public,
            scopes,
            json,
        } => {
            let (client, secret) =
                sessiongate::oauth::client_record(&sessiongate::oauth::NewClient {
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
        ClientsAction::List { json } => {
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
        ClientsAction::Remove { client_id } => {
            if !repo.remove_client(&client_id).await? {
                anyhow::bail!("no client `{client_id}`");
            }
            println!("removed {client_id}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", sessiongate::v1::spec_json());
            ExitCode::SUCCESS
        }
        Command::Keygen => {
            println!("{}", sessiongate::crypto::generate_key());
            ExitCode::SUCCESS
        }
        command => {
            let settings = match sessiongate::preflight::load(cli.config.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    for line in e.0.lines() {
                        eprintln!("sessiongate: invalid configuration: {line}");
                    }
                    return ExitCode::from(2);
                }
            };
            sessiongate::telemetry::init(&settings.log);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sessiongate: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(async move {
                match command {
                    Command::Migrate => {
                        let db = sessiongate::db::Database::connect(&settings).await?;
                        db.migrate().await?;
                        tracing::info!("migrations applied");
                        Ok(())
                    }
                    Command::Clients { action } => clients(&settings, action).await,
                    Command::RotateSigningKey => {
                        let repo = oauth_repo(&settings).await?;
                        let kid = sessiongate::oauth::keys::rotate(&repo).await?;
                        println!("{kid}");
                        Ok(())
                    }
                    _ => {
                        let app = Application::build(settings).await?;
                        tracing::info!("listening on http://{} (API docs at /docs)", app.addr());
                        app.run_until(shutdown_signal()).await
                    }
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("sessiongate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

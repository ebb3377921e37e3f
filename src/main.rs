//! The `sessiongate` command: parse the CLI, load configuration, start tracing, hand over.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sessiongate::oauth_server::admin::{self, ClientsCommand};
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
        action: ClientsCommand,
    },
    /// Start signing id_tokens with a new key; the previous one stays in the JWKS.
    /// Running servers pick it up when restarted.
    RotateSigningKey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", sessiongate::openapi::spec_json());
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
                    Command::Clients { action } => admin::clients(&settings, action).await,
                    Command::RotateSigningKey => {
                        let kid = admin::rotate_signing_key(&settings).await?;
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

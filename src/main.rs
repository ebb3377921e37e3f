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
    #[command(
        after_help = "Examples:\n  sessiongate serve\n  sessiongate --config prod.toml serve\n  SESSIONGATE_SERVER__LISTEN=0.0.0.0:8080 sessiongate"
    )]
    Serve,
    /// Print the OpenAPI document.
    #[command(after_help = "Example:\n  sessiongate openapi > openapi.json")]
    Openapi,
    /// Apply database migrations and exit.
    #[command(
        after_help = "Examples:\n  sessiongate migrate\n  SESSIONGATE_DATABASE__URL=postgres://app@db/sessiongate sessiongate migrate --create-database"
    )]
    Migrate {
        /// First create the PostgreSQL database of `database.url` if it does not exist.
        #[arg(long)]
        create_database: bool,
    },
    /// Print a fresh base64 256-bit key for `session.keys` or `auth.jwt_secret`.
    #[command(
        after_help = "Example:\n  export SESSIONGATE_SESSION__KEYS=\"[\\\"$(sessiongate keygen)\\\"]\""
    )]
    Keygen,
    /// Manage the clients of the bundled authorization server (`/oauth`).
    Clients {
        #[command(subcommand)]
        action: ClientsCommand,
    },
    /// End every sign-in of a bundled account (an administrator's revocation).
    Sessions {
        #[command(subcommand)]
        action: SessionsCommand,
    },
    /// Start signing id_tokens with a new key; the previous one stays in the JWKS.
    /// Running servers use it within a minute.
    #[command(after_help = "Example:\n  sessiongate rotate-signing-key")]
    RotateSigningKey,
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// End the account's browser sessions on every instance, revoke its API sign-ins
    /// and what the authorization server issued for it, and tell the apps it signed
    /// into (back-channel logout) before returning.
    #[command(
        after_help = "Examples:\n  sessiongate sessions end --user alice\n  sessiongate --config prod.toml sessions end --user alice@example.com"
    )]
    End {
        /// The account's id, username or email.
        #[arg(long)]
        user: String,
    },
}

/// Prints `text` to stdout; a reader that went away (`| head`) is not an error.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("sessiongate: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => print_out(&sessiongate::openapi::spec_json()),
        Command::Keygen => print_out(&format!("{}\n", sessiongate::crypto::generate_key())),
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
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("sessiongate: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            sessiongate::telemetry::init_with_traces(
                &settings.log,
                Some((&settings.telemetry, runtime.handle())),
            );
            let result = runtime.block_on(async move {
                match command {
                    Command::Migrate { create_database } => {
                        if create_database
                            && sessiongate::db::Database::create_if_missing(
                                &settings.database_url(),
                            )
                            .await?
                        {
                            tracing::info!("database created");
                        }
                        let db = sessiongate::db::Database::connect(&settings).await?;
                        db.migrate().await?;
                        tracing::info!("migrations applied");
                        Ok(())
                    }
                    Command::Clients { action } => admin::clients(&settings, action).await,
                    Command::Sessions {
                        action: SessionsCommand::End { user },
                    } => {
                        let ended =
                            sessiongate::startup::admin::end_user_sessions(settings, &user).await?;
                        println!(
                            "{} ({}): {} browser session(s) ended, {} API sign-in(s) revoked{}",
                            ended.username,
                            ended.user_id,
                            ended.sessions,
                            ended.api_sign_ins,
                            if ended.apps_told {
                                ""
                            } else {
                                "; some apps could not be told yet (see the log)"
                            }
                        );
                        Ok(())
                    }
                    Command::RotateSigningKey => {
                        for kid in admin::rotate_signing_key(&settings).await? {
                            println!("{kid}");
                        }
                        Ok(())
                    }
                    _ => {
                        let app = Application::build(settings).await?;
                        tracing::info!("listening on http://{} (API docs at /docs)", app.addr());
                        app.run_until(shutdown_signal()).await
                    }
                }
            });
            // The spans still batched go out while the runtime still runs.
            sessiongate::telemetry::otlp::flush();
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Once, on stderr (where the log goes too).
                    eprintln!("sessiongate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

//! The `switchboard` command line: parse, load the configuration, dispatch. Each command is a
//! module; they use the library's public API like any other client would.

mod chat;
mod serve;
mod signals;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, FlagOverrides, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Chat and call-signaling server"
)]
struct Cli {
    /// TOML configuration file [env: SWITCHBOARD_CONFIG]
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL [env: SWITCHBOARD_DATABASE_URL] [default: sqlite://switchboard.db]
    #[arg(long, global = true)]
    database: Option<String>,
    /// Log format [env: SWITCHBOARD_LOG_FORMAT] [default: text]
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage chats.
    #[command(subcommand)]
    Chat(chat::ChatCommand),
    /// Inspect stored signals (the guide's test_signal_flow.py).
    Signals(signals::SignalsArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve(args) => args.listen,
        _ => None,
    };
    let config = match Config::load(
        cli.config.as_deref(),
        FlagOverrides {
            listen,
            database_url: cli.database.clone(),
            log_format: cli.log_format,
        },
    ) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(config, args).await,
            Command::User(command) => user::run(config, command).await,
            Command::Chat(command) => chat::run(config, command).await,
            Command::Signals(args) => signals::run(config, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the store and the accounts service for a one-shot command.
async fn open(
    config: &Config,
) -> anyhow::Result<(
    std::sync::Arc<dyn crate::store::Store>,
    crate::auth::Accounts,
)> {
    use anyhow::Context;
    let store = crate::store::connect(
        &config.database_url,
        crate::store::StoreOptions {
            max_connections: 2,
            sqlite_wal_limit: config.sqlite_wal_limit,
        },
    )
    .await
    .with_context(|| format!("cannot open the database {}", config.database_url))?;
    let accounts = crate::auth::Accounts::new(
        store.clone(),
        std::sync::Arc::new(crate::clock::SystemClock),
        config.session_ttl,
        config.open_registration,
    );
    Ok((store, accounts))
}

/// A readable password for accounts created without one (printed once).
fn generated_password() -> String {
    crate::auth::random_token()[..16].to_owned()
}

/// The user with this name, or an error that says so.
async fn find_user(
    store: &dyn crate::store::Store,
    name: &str,
) -> anyhow::Result<crate::store::User> {
    let name = crate::domain::Username::parse(name)?;
    store
        .users_by_username(&[name.as_str().to_owned()])
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no user named {:?}", name.as_str()))
}

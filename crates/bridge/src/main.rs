//! The `dbbridge` command line: `serve` (stdio or WebSocket) and `demo`.
//! This is the only place that prints to stdout outside the protocol writer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::filter::LevelFilter;

use dbbridge::state::{Bridge, BridgeConfig};
use dbbridge::transport::DEFAULT_MAX_MESSAGE_BYTES;
use dbbridge::{demo, handlers, logging, parent, redact, secrets, server, shutdown, transport};

#[derive(Parser)]
#[command(
    name = "dbbridge",
    version,
    about = "The backend of a desktop database client: JSON-RPC over stdio or WebSocket."
)]
struct Cli {
    /// Where saved connections, backups, logs and the secret file live
    /// (default: the platform data dir + `dbbridge`).
    #[arg(long, env = "DBBRIDGE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Log level of the log files; warnings and errors also go to stderr.
    #[arg(long, env = "DBBRIDGE_LOG", global = true, default_value = "info")]
    log_level: LogLevel,
    /// Where secrets are kept: the OS keychain, the encrypted file in the data
    /// dir, or the keychain when one answers (auto).
    #[arg(
        long,
        env = "DBBRIDGE_SECRET_BACKEND",
        global = true,
        default_value = "auto"
    )]
    secret_backend: secrets::BackendChoice,
    /// A folder holding pg_dump/pg_restore/psql, looked in before PATH and
    /// the usual install folders (repeatable).
    #[arg(
        long,
        env = "DBBRIDGE_PG_BIN_DIR",
        global = true,
        value_delimiter = ':'
    )]
    pg_bin_dir: Vec<PathBuf>,
    /// A folder holding mariadb-dump/mysqldump and mariadb/mysql, looked in
    /// before PATH and the usual install folders (repeatable).
    #[arg(
        long,
        env = "DBBRIDGE_MYSQL_BIN_DIR",
        global = true,
        value_delimiter = ':'
    )]
    mysql_bin_dir: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the JSON-RPC protocol on stdio (default) or WebSocket.
    Serve(ServeArgs),
    /// Run a complete session against a built-in SQLite sample and show what a front end sees.
    Demo(demo::DemoArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Serve WebSocket on this address (e.g. 127.0.0.1:0) instead of stdio.
    #[arg(long)]
    ws: Option<SocketAddr>,
    /// The WebSocket token clients must present (default: generated per launch).
    #[arg(long, env = "DBBRIDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// An Origin allowed to connect over WebSocket (repeatable).
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// A Host name (without port) allowed besides 127.0.0.1, [::1] and
    /// localhost (repeatable): the DNS-rebinding guard.
    #[arg(long = "allow-host")]
    allow_host: Vec<String>,
    /// The largest message accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dbbridge: {}", redact::scrub(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let data_dir = match cli.data_dir {
        Some(dir) => dir,
        None => dirs::data_dir()
            .context("no platform data dir; pass --data-dir")?
            .join("dbbridge"),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    logging::init(&data_dir.join("logs"), cli.log_level.into())
        .context("opening the log directory")?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %data_dir.display(), "dbbridge starting");

    let config = BridgeConfig {
        data_dir,
        test_hooks: std::env::var("DBBRIDGE_TEST_HOOKS").is_ok_and(|v| v == "1"),
        secret_backend: cli.secret_backend,
        secret_key: std::env::var("DBBRIDGE_SECRET_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .map(secrecy::SecretString::from),
        pg_bin_dirs: cli.pg_bin_dir,
        mysql_bin_dirs: cli.mysql_bin_dir,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args, config)),
        Command::Demo(args) => runtime.block_on(demo::run(args, config)),
    };
    // stdin is read on a blocking thread that cannot be interrupted; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    tracing::info!("dbbridge stopped");
    result
}

async fn serve(args: ServeArgs, config: BridgeConfig) -> Result<()> {
    // The composition root: the shared state, and the router over it.
    let router = Arc::new(handlers::router(config.test_hooks));
    let bridge = Bridge::start(config).await?;
    let shutdown = bridge.shutdown.clone();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { shutdown.trigger(shutdown::Shutdown::signal().await) }
    });

    match args.ws {
        None => {
            let (connection, writer) = transport::stdio::start(args.max_message_bytes)?;
            let served = tokio::spawn(server::serve_connection(
                bridge.clone(),
                router.clone(),
                connection,
            ));
            tokio::select! {
                // EOF on stdin: the parent is gone.
                _ = served => shutdown.trigger("stdin closed"),
                // A parent that died without closing our stdin.
                why = parent::gone() => shutdown.trigger(why),
                _ = shutdown.token.cancelled() => {}
            }
            bridge.stop().await;
            drop(bridge);
            if !writer
                .drained(Duration::from_secs(5), Duration::from_secs(1))
                .await
            {
                tracing::warn!(
                    "stdout did not drain: the reader took nothing for 1 s, or 5 s passed"
                );
            }
        }
        Some(addr) => {
            let token = args.token.unwrap_or_else(generate_token);
            let options = transport::ws::WsOptions {
                token: token.clone(),
                allowed_origins: args.allow_origin,
                allowed_hosts: args.allow_host,
                max_message_bytes: args.max_message_bytes,
            };
            let on_connection: transport::ws::OnConnection = {
                let bridge = bridge.clone();
                Arc::new(move |connection| {
                    bridge.shutdown.tracker.spawn(server::serve_connection(
                        bridge.clone(),
                        router.clone(),
                        connection,
                    ));
                })
            };
            let (local, serving) = transport::ws::bind(
                addr,
                options,
                on_connection,
                shutdown.token.clone(),
                bridge.shutdown.tracker.clone(),
            )
            .await
            .with_context(|| format!("binding {addr}"))?;
            tracing::info!(%local, "websocket transport listening");
            print_listening(local, &token);
            let served = tokio::spawn(serving);
            shutdown.token.cancelled().await;
            bridge.stop().await;
            let _ = tokio::time::timeout(Duration::from_secs(5), served).await;
        }
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_listening(local: SocketAddr, token: &str) {
    // The one line a front end reads to find the bridge (PROTOCOL.md).
    println!(
        "{}",
        serde_json::json!({ "listening": format!("ws://{local}"), "token": token })
    );
}

fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

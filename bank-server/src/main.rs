//! `bank-server serve`: flags, then the library. Prints
//! `bank-server listening on http://ADDR` on stdout once it accepts connections.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bank-server", version, about = "The PAYSIM bank: website, JSON API, token authentication and ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bank (creates the database and its master key file on first run).
    Serve {
        /// SQLite database file. Its master key is read from BANK_MASTER_KEY (64 hex digits)
        /// or the file <DB>.master-key beside it (created, mode 0600, when missing).
        #[arg(long, default_value = "bank.sqlite3", env = "BANK_DB")]
        db: PathBuf,
        /// Address to listen on; port 0 picks a free port (printed on the readiness line).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The URL people and bridges use; its origin is the verifier id that codes are bound
        /// to. Default: http://<listen address>.
        #[arg(long)]
        public_url: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Serve { db, listen, public_url } = cli.command;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let public_url = public_url.unwrap_or_else(|| format!("http://{addr}"));
    // Opening, checking and migrating the database is blocking SQLite work: a blocking
    // thread does it, never the async worker.
    let opened = {
        let (db, public_url) = (db.clone(), public_url.clone());
        tokio::task::spawn_blocking(move || {
            bank_server::AppState::open(&db, &public_url, bank_server::clock::Clock::system())
        })
        .await
        .context("the start-up thread failed")?
    };
    let state = opened.with_context(|| format!("cannot open the bank database {}", db.display()))?;
    tracing::info!(db = %db.display(), verifier_id = %state.cfg.auth.verifier_id, "bank ready");
    let mut out = std::io::stdout().lock();
    writeln!(out, "bank-server listening on http://{addr}")?;
    out.flush()?;
    drop(out);
    bank_server::serve(listener, state, shutdown_signal()).await.context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

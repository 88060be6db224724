//! `bank-server serve`: flags, then the library. Prints `bank-server listening on http://ADDR`
//! (or `https://ADDR` with TLS) as the first line on stdout once it accepts connections.

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
    /// Run the bank (creates the database, mode 0600, and its master key file on first run).
    Serve {
        /// SQLite database file (and its -wal and -shm): created 0600; one that group or
        /// others can read is refused.
        #[arg(long, default_value = "bank.sqlite3", env = "BANK_DB")]
        db: PathBuf,
        /// The master key file (64 hex digits, mode 0600; created when missing). Keep it
        /// apart from the database's directory. Or set BANK_MASTER_KEY (64 hex digits).
        #[arg(long, value_name = "FILE", env = "BANK_MASTER_KEY_FILE")]
        master_key: Option<PathBuf>,
        /// Keep the master key in <DB>.master-key beside the database (demos and tests only:
        /// one copy of the directory then carries both the sealed keys and their key).
        #[arg(long)]
        master_key_beside_db: bool,
        /// Address to listen on; port 0 picks a free port (printed on the readiness line).
        /// Plain HTTP only on a loopback address; any other needs TLS and --public-url https://.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The URL people and bridges use; its origin is the verifier id that codes are bound
        /// to. Default (loopback only): http://<listen address>, or https:// with TLS.
        #[arg(long)]
        public_url: Option<String>,
        /// Serve HTTPS with this certificate chain (PEM, the server's certificate first).
        #[arg(long, value_name = "FILE", env = "BANK_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM, mode 0600).
        #[arg(long, value_name = "FILE", env = "BANK_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Start on a database that is behind its commit mark (<DB>.running: its -wal was
        /// removed, or an older copy was put in place), accepting that the batches committed
        /// after it are lost (docs/bank.md, "Storage faults"). Without it such a start is refused.
        #[arg(long)]
        accept_lost_commits: bool,
        /// Whether OATH tokens (YubiKey, Nitrokey 3, any YKOATH credential) may confirm
        /// transfers: `allow` (the default) or `deny` (they still log in; a transfer then gets
        /// `token_kind_not_allowed`).
        #[arg(long, value_name = "allow|deny", env = "BANK_OATH_TRANSFERS")]
        oath_transfers: Option<bank_server::OathTransfers>,
        /// The customers' signing service that the "Sign with my card" button calls and the
        /// pages' CSP allows: http://127.0.0.1:PORT (or [::1], localhost), or `off`. Default:
        /// BANK_SIGNING_SERVICE, else reader-bridge serve's default http://127.0.0.1:7480.
        #[arg(long, value_name = "URL|off")]
        signing_service: Option<String>,
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
    let Command::Serve {
        db,
        master_key,
        master_key_beside_db,
        listen,
        public_url,
        tls_cert,
        tls_key,
        accept_lost_commits,
        oath_transfers,
        signing_service,
    } = cli.command;
    let signing_service = signing_service
        .map(|s| bank_server::SigningService::parse(&s).map_err(|e| anyhow::anyhow!("--signing-service: {e}")))
        .transpose()?;
    // Everything that can be refused is checked before the port is taken.
    let tls = match (&tls_cert, &tls_key) {
        (Some(cert), Some(key)) => Some(bank_server::tls::server_config(cert, key)?),
        _ => None,
    };
    bank_server::binding::public_url(listen, public_url.as_deref(), tls.is_some())?;
    let key_source = bank_server::master_key::KeySource::choose(master_key, master_key_beside_db)?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let public_url = bank_server::binding::public_url(addr, public_url.as_deref(), tls.is_some())?;
    // Taking the commit mark, then opening, checking and migrating the database, is
    // blocking work: a blocking thread does it, never the async worker.
    let opened = {
        let (db, public_url) = (db.clone(), public_url.clone());
        tokio::task::spawn_blocking(move || {
            let running = bank_server::running::Running::start(&db, accept_lost_commits)?;
            let mut cfg = bank_server::Config::new(&public_url)?.with_env()?;
            if let Some(choice) = oath_transfers {
                cfg.oath_transfers = choice;
            }
            if let Some(service) = signing_service {
                cfg.signing_service = service;
            }
            let state =
                bank_server::AppState::open_with_key_and(&db, &key_source, cfg, bank_server::clock::Clock::system())?;
            anyhow::Ok((running, state))
        })
        .await
        .context("the start-up thread failed")?
    };
    let (running, state) = opened.with_context(|| format!("cannot open the bank database {}", db.display()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shutdown = shutdown_signal().context("cannot watch for the stop signals")?;
    tracing::info!(db = %db.display(), verifier_id = %state.cfg.auth.verifier_id, %scheme, "bank ready");
    let mut out = std::io::stdout().lock();
    writeln!(out, "bank-server listening on {scheme}://{addr}")?;
    out.flush()?;
    drop(out);
    // Expired challenges are deleted while the bank is idle, not by the requests.
    let housekeeper = tokio::spawn(state.clone().housekeeper());
    match tls {
        Some(tls) => bank_server::serve_tls(listener, state, tls, shutdown).await,
        None => bank_server::serve(listener, state, shutdown).await,
    }
    .context("server failed")?;
    housekeeper.abort();
    // Every request has been answered: copy the whole WAL into the database file, so that the
    // file alone holds everything (a copy of it is a full backup). The commit mark stays.
    let checkpointed = tokio::task::spawn_blocking({
        let db = db.clone();
        move || bank_server::db::checkpoint_all(&db)
    })
    .await
    .context("the stopping thread failed")?;
    if let Err(e) = checkpointed {
        tracing::warn!(error = %e, "the final checkpoint failed; the next start replays the -wal");
    }
    drop(running);
    tracing::info!("stopped");
    Ok(())
}

/// The stop signals (SIGTERM, SIGINT), registered now: a signal that arrives after the
/// readiness line and before the server is polled still stops it cleanly.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

//! `bank-tools`: the operator CLI. Each command group is a module under `cmd/`; `main` parses
//! the flags, runs the command, and prints the whole error chain with a non-zero exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "bank-tools",
    version,
    about = "PAYSIM operator tools: cards, users, tokens, accounts and the audit log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and personalize cards.
    #[command(subcommand)]
    Card(cmd::card::CardCommand),
    /// Customers.
    #[command(subcommand)]
    User(cmd::user::UserCommand),
    /// Tokens (personalized cards) at the bank: enroll, list, export, import, unlock, revoke.
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
    /// OATH keys (YubiKey, Nitrokey 3, any YKOATH card) as bank tokens: enroll.
    #[command(subcommand)]
    Oath(cmd::oath::OathCommand),
    /// Accounts: open, fund, list.
    #[command(subcommand)]
    Account(cmd::account::AccountCommand),
    /// The audit log and the books.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// TLS files for the bank: a local CA and a server certificate.
    #[command(subcommand)]
    Tls(cmd::tls::TlsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Card(c) => cmd::card::run(c),
        Command::User(c) => cmd::user::run(c),
        Command::Token(c) => cmd::token::run(c),
        Command::Oath(c) => cmd::oath::run(c),
        Command::Account(c) => cmd::account::run(c),
        Command::Audit(c) => cmd::audit::run(c),
        Command::Tls(c) => cmd::tls::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank-tools: error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `outer: cause: ...`. Several of the library errors name their
/// cause in their own text (batch lines print them alone), so a cause whose text is already
/// shown is skipped: each cause appears once.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

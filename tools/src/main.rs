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
    /// Tokens (personalized cards) at the bank: enroll, list, unlock, revoke.
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
    /// Accounts: open, fund, list.
    #[command(subcommand)]
    Account(cmd::account::AccountCommand),
    /// The audit log and the books.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Card(c) => cmd::card::run(c),
        Command::User(c) => cmd::user::run(c),
        Command::Token(c) => cmd::token::run(c),
        Command::Account(c) => cmd::account::run(c),
        Command::Audit(c) => cmd::audit::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank-tools: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

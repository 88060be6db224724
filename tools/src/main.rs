//! `bank-tools`: the operator CLI. Each command group is a module under `cmd/`; `main` parses
//! the flags, runs the command, and prints the whole error chain with a non-zero exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "bank-tools",
    version,
    about = "PAYSIM operator tools: cards, and later users, accounts and tokens"
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Card(c) => cmd::card::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank-tools: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `bank-tools`: the operator CLI. Each command group is a module under `cmd/`; `main` parses
//! the flags, runs the command, and prints the whole error chain with a non-zero exit.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "bank-tools",
    version,
    about = "PAYSIM operator tools: cards, users, tokens, accounts and the audit log"
)]
struct Cli {
    /// Where the bank's database and master key are: for the commands on the bank (user,
    /// token, oath, account, audit), given before or after the command's name.
    #[command(flatten, next_help_heading = "Bank database options (user, token, oath, account, audit)")]
    db: cmd::bank_db::DbArgs,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    #[command(hide = true)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command into --dir.
    #[command(hide = true)]
    Man {
        /// Write bank-tools.1 and bank-tools-COMMAND.1 (and deeper) into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let db = &cli.db;
    let result = match cli.command {
        Command::Card(c) => cmd::card::run(c),
        Command::User(c) => cmd::user::run(c, db),
        Command::Token(c) => cmd::token::run(c, db),
        Command::Oath(c) => cmd::oath::run(c, db),
        Command::Account(c) => cmd::account::run(c, db),
        Command::Audit(c) => cmd::audit::run(c, db),
        Command::Tls(c) => cmd::tls::run(c),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "bank-tools", &mut std::io::stdout().lock());
            Ok(())
        }
        Command::Man { dir } => man(dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank-tools: error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `man`: the top page on standard output, or one page per command (and subcommand) in `dir`.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let cmd = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page).context("cannot render the man page")?;
            std::io::Write::write_all(&mut std::io::stdout().lock(), &page)
                .context("cannot write to standard output")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible command, as `["account", "list"]`, depth first.
    fn commands(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            commands(sub, path, out);
            path.pop();
        }
    }

    fn all_commands() -> Vec<Vec<String>> {
        let mut out = Vec::new();
        commands(&Cli::command(), &mut Vec::new(), &mut out);
        out
    }

    #[test]
    fn every_flag_is_described() {
        let mut todo = vec![Cli::command()];
        todo[0].build();
        while let Some(cmd) = todo.pop() {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(!help.trim().is_empty(), "`{} --{id}` has no description", cmd.get_name());
            }
            todo.extend(cmd.get_subcommands().cloned());
        }
    }

    #[test]
    fn the_man_pages_and_bash_completion_name_every_command() {
        let cmds = all_commands();
        assert!(cmds.len() > 20, "{cmds:?}");
        let mut bash = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "bank-tools", &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        let dir = tempfile::tempdir().unwrap();
        man(Some(dir.path())).unwrap();
        for c in &cmds {
            let last = c.last().unwrap();
            // The completion's case for a command is `PARENT,NAME)`.
            assert!(bash.contains(&format!(",{last})")), "bash completion lacks {c:?}");
            // Each command has its page, and its parent's page (the top page for a group)
            // points at it.
            let roff = |parts: &[String]| format!("bank\\-tools\\-{}", parts.join("-").replace('-', "\\-"));
            let page = dir.path().join(format!("bank-tools-{}.1", c.join("-")));
            assert!(page.exists(), "no man page {}", page.display());
            let parent = match c.len() {
                1 => dir.path().join("bank-tools.1"),
                _ => dir.path().join(format!("bank-tools-{}.1", c[..c.len() - 1].join("-"))),
            };
            let text = std::fs::read_to_string(&parent).unwrap();
            assert!(text.contains(&format!("{}(1)", roff(c))), "{} does not list {c:?}", parent.display());
        }
    }

    #[test]
    fn database_flags_go_before_or_after_the_command() {
        for args in [
            &["bank-tools", "--db", "x.db", "--master-key-beside-db", "account", "list", "--user", "a"][..],
            &["bank-tools", "account", "list", "--user", "a", "--db", "x.db", "--master-key-beside-db"][..],
            &["bank-tools", "account", "--db", "x.db", "list", "--master-key-beside-db", "--user", "a"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.db.db, std::path::Path::new("x.db"), "{args:?}");
            assert!(cli.db.key.master_key_beside_db, "{args:?}");
        }
    }

    #[test]
    fn a_missing_pin_does_not_point_at_the_argv_flags() {
        let e = Cli::try_parse_from(["bank-tools", "card", "personalize"]).err().unwrap().to_string();
        assert!(e.contains("--reader <NAME>"), "{e}");
        assert!(!e.contains("--pin <") && !e.contains("--puk <"), "{e}");
    }
}

//! `bank-tools audit ...`

use anyhow::{bail, Context};
use clap::Subcommand;

use tools::bank::show_amount;

use super::bank_db::DbArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash-chained audit log; name the first bad row and exit non-zero if the chain
    /// is broken. Write down the head hash: a later run that prints another head for the same
    /// rows means the log was rewritten.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check the books: every entry balanced, balances equal their postings, no overdraft,
    /// customers' total per currency equal to what was funded. Non-zero exit on a problem.
    Books {
        #[command(flatten)]
        db: DbArgs,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { db } => {
            let path = db.path()?;
            let report = bank_server::ops::verify_audit(path).context("cannot read the audit log")?;
            match report.first_bad {
                None => {
                    println!("audit log intact: {} rows, head hash {}", report.rows, report.head_hex);
                    Ok(())
                }
                Some(bad) => bail!(
                    "audit log BROKEN at row {}: {} ({} rows before it are intact, last good hash {})",
                    bad.id,
                    bad.problem,
                    report.rows,
                    report.head_hex
                ),
            }
        }
        AuditCommand::Books { db } => {
            let path = db.path()?;
            let books = bank_server::ops::check_books(path).context("cannot read the books")?;
            for (currency, total) in &books.customer_totals {
                let funded = books.funded.iter().find(|(c, _)| c == currency).map_or(0, |(_, f)| *f);
                // The books check reads what is stored, whatever it is: a currency the table
                // does not know is shown in minor units rather than stopping the report.
                let show = |minor: i64| match paysim_wire::Currency::parse_typed(currency) {
                    Ok(c) => show_amount(minor, c),
                    Err(_) => format!("{minor} minor units"),
                };
                println!("{currency}: customers hold {}, funded {}", show(*total), show(funded));
            }
            if books.problems.is_empty() {
                println!("books balance");
                Ok(())
            } else {
                for p in &books.problems {
                    println!("problem: {p}");
                }
                bail!("the books do NOT balance: {} problem(s)", books.problems.len())
            }
        }
    }
}

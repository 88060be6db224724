//! `bank-tools audit ...`

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;

use tools::bank::show_amount;

use super::bank_db::DbArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log, whose rows are chained with an HMAC under a key derived from the
    /// master key; name the first bad row and exit non-zero if the chain is broken. With
    /// --checkpoint, also check that the log still holds that checkpoint's head at its row
    /// count (a deleted tail is found only this way).
    Verify {
        #[command(flatten)]
        db: DbArgs,
        /// A file written by `audit checkpoint` (of this bank: another bank's is refused).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Verify the log, then write its signed head (time, row count, last link, MAC'd under a
    /// key derived from the master key) to FILE. Keep the file away from the bank's host; a
    /// later `audit verify --checkpoint FILE` finds rows deleted from the tail since.
    Checkpoint {
        #[command(flatten)]
        db: DbArgs,
        /// Where to write the checkpoint (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
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
        AuditCommand::Verify { db, checkpoint } => {
            let path = db.path()?;
            let (report, found) = match &checkpoint {
                None => (bank_server::ops::verify_audit(path).context("cannot read the audit log")?, None),
                Some(file) => {
                    let cp = bank_server::ops::load_checkpoint(file)?;
                    let (report, found) =
                        bank_server::ops::verify_audit_checkpoint(path, &cp).context("cannot read the audit log")?;
                    (report, Some((cp, found)))
                }
            };
            if let Some(bad) = &report.first_bad {
                bail!(
                    "audit log BROKEN at row {}: {} ({} rows before it are intact, last good hash {})",
                    bad.id,
                    bad.problem,
                    report.rows,
                    report.head_hex
                );
            }
            println!("audit log intact: {} rows, head hash {}", report.rows, report.head_hex);
            if !report.is_keyed() {
                println!(
                    "warning: all {} rows use the old unkeyed chain, which the key does not protect yet; the next \
                     event starts the keyed one (if any event happened since the upgrade, the log was rewritten)",
                    report.rows
                );
            }
            match found {
                None => Ok(()),
                Some((cp, Ok(()))) => {
                    println!(
                        "checkpoint fits: row {} still has head {} (checkpoint made at {})",
                        cp.rows, cp.head, cp.at
                    );
                    Ok(())
                }
                Some((_, Err(e))) => bail!("audit log does NOT match the checkpoint: {e}"),
            }
        }
        AuditCommand::Checkpoint { db, out } => {
            let path = db.path()?;
            let cp = bank_server::ops::audit_checkpoint(path).context("cannot make a checkpoint")?;
            let text = serde_json::to_string_pretty(&cp)? + "\n";
            let mut f =
                std::fs::OpenOptions::new().write(true).create_new(true).open(&out).with_context(|| {
                    format!("cannot create {} (an existing file is never overwritten)", out.display())
                })?;
            std::io::Write::write_all(&mut f, text.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("checkpoint written to {}: {} rows, head {}", out.display(), cp.rows, cp.head);
            Ok(())
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

//! `bank-tools audit ...`

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde::Serialize;

use tools::bank::show_amount;

use super::bank_db::DbArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log, whose rows are chained with an HMAC under a key derived from the
    /// master key; name the first bad row and exit non-zero if the chain is broken. With
    /// --checkpoint, also check that the log still holds that checkpoint's head at its row
    /// count (a deleted tail is found only this way).
    Verify {
        /// A file written by `audit checkpoint` (of this bank: another bank's is refused).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Print the result as one JSON object (fields in docs/tools.md); the exit code is the same.
        #[arg(long)]
        json: bool,
    },
    /// Verify the log, then write its signed head (time, row count, last link, MAC'd under a
    /// key derived from the master key) to FILE. Keep the file away from the bank's host; a
    /// later `audit verify --checkpoint FILE` finds rows deleted from the tail since.
    Checkpoint {
        /// Where to write the checkpoint (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check the books: every entry balanced, balances equal their postings, no overdraft,
    /// customers' total per currency equal to what was funded. Non-zero exit on a problem.
    Books {
        /// Print the result as one JSON object (fields in docs/tools.md); the exit code is the same.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: AuditCommand, db: &DbArgs) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { checkpoint, json } => {
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
            if json {
                return verify_json(&report, found.as_ref());
            }
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
        AuditCommand::Checkpoint { out } => {
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
        AuditCommand::Books { json } => {
            let path = db.path()?;
            let books = bank_server::ops::check_books(path).context("cannot read the books")?;
            if json {
                return books_json(&books);
            }
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

/// `audit verify --json`: one object on one line.
#[derive(Serialize)]
struct VerifyJson<'a> {
    /// No row breaks the chain (and, with --checkpoint, the checkpoint fits).
    intact: bool,
    /// Rows checked and found in order.
    rows: u64,
    /// The link of the last good row, hex.
    head: &'a str,
    /// False while every row uses the old unkeyed chain.
    keyed: bool,
    /// The first row that breaks the chain, or null.
    first_bad: Option<BadRowJson<'a>>,
    /// With --checkpoint: whether the log still holds its head; null without.
    checkpoint: Option<CheckpointJson>,
}

#[derive(Serialize)]
struct BadRowJson<'a> {
    row: i64,
    problem: &'a str,
}

#[derive(Serialize)]
struct CheckpointJson {
    fits: bool,
    rows: u64,
    head: String,
    /// When it was made, Unix seconds.
    at: i64,
    /// Why it does not fit, or null.
    problem: Option<String>,
}

type Found = (bank_server::audit::Checkpoint, Result<(), bank_server::audit::CheckpointError>);

fn verify_json(report: &bank_server::audit::AuditReport, found: Option<&Found>) -> anyhow::Result<()> {
    let checkpoint = found.map(|(cp, fit)| CheckpointJson {
        fits: fit.is_ok(),
        rows: cp.rows,
        head: cp.head.clone(),
        at: cp.at,
        problem: fit.as_ref().err().map(ToString::to_string),
    });
    let out = VerifyJson {
        intact: report.first_bad.is_none() && checkpoint.as_ref().is_none_or(|c| c.fits),
        rows: report.rows,
        head: &report.head_hex,
        keyed: report.is_keyed(),
        first_bad: report.first_bad.as_ref().map(|b| BadRowJson { row: b.id, problem: b.problem }),
        checkpoint,
    };
    println!("{}", serde_json::to_string(&out)?);
    if out.intact {
        Ok(())
    } else {
        bail!("the audit log is NOT intact (see the JSON on standard output)")
    }
}

/// `audit books --json`: one object on one line.
#[derive(Serialize)]
struct BooksJson<'a> {
    balanced: bool,
    currencies: Vec<CurrencyJson<'a>>,
    problems: &'a [String],
}

#[derive(Serialize)]
struct CurrencyJson<'a> {
    currency: &'a str,
    /// What the customers hold, in minor units.
    customers_minor: i64,
    /// What was funded, in minor units (equal to customers_minor when the books balance).
    funded_minor: i64,
}

fn books_json(books: &bank_server::ledger::Books) -> anyhow::Result<()> {
    let currencies = books
        .customer_totals
        .iter()
        .map(|(currency, total)| CurrencyJson {
            currency,
            customers_minor: *total,
            funded_minor: books.funded.iter().find(|(c, _)| c == currency).map_or(0, |(_, f)| *f),
        })
        .collect();
    let out = BooksJson { balanced: books.problems.is_empty(), currencies, problems: &books.problems };
    println!("{}", serde_json::to_string(&out)?);
    if out.balanced {
        Ok(())
    } else {
        bail!("the books do NOT balance: {} problem(s)", books.problems.len())
    }
}

//! The books' invariants, checked on demand (`bank-tools audit books`, tests): every journal
//! entry sums to zero, each balance equals its postings, no customer below zero, and the
//! customers' total per currency equals what was funded.

use crate::db::Cached;
use rusqlite::Transaction;

use super::LedgerError;

/// The books' invariants, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Books {
    /// Per currency: the customers' total balance.
    pub customer_totals: Vec<(String, i64)>,
    /// Per currency: everything funded so far (what the customers' total must equal).
    pub funded: Vec<(String, i64)>,
    /// Human-readable violations; empty when the books are sound.
    pub problems: Vec<String>,
}

/// Checks: every journal entry sums to zero; each balance equals its postings; no customer
/// balance below zero; customers' total per currency equals what was funded.
pub fn check_books(tx: &Transaction<'_>) -> Result<Books, LedgerError> {
    let mut problems = Vec::new();
    let mut stmt =
        tx.prepare("SELECT journal_id, sum(amount) FROM postings GROUP BY journal_id HAVING sum(amount) <> 0")?;
    for r in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (j, s) = r?;
        problems.push(format!("journal entry {j} does not balance (sum {s})"));
    }
    let mut stmt = tx.prepare(
        "SELECT a.number, a.balance, coalesce((SELECT sum(p.amount) FROM postings p WHERE p.account_id = a.id), 0)
         FROM accounts a",
    )?;
    for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
        let (n, b, s) = r?;
        if b != s {
            problems.push(format!("account {n}: balance {b} but postings sum to {s}"));
        }
    }
    let neg: i64 = tx.row("SELECT count(*) FROM accounts WHERE kind = 'customer' AND balance < 0", [], |r| r.get(0))?;
    if neg > 0 {
        problems.push(format!("{neg} customer accounts below zero"));
    }
    let totals = |sql: &str| -> Result<Vec<(String, i64)>, LedgerError> {
        let mut stmt = tx.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let customer_totals = totals(
        "SELECT currency, sum(balance) FROM accounts WHERE kind = 'customer' GROUP BY currency ORDER BY currency",
    )?;
    let funded = totals(
        "SELECT currency, -sum(balance) FROM accounts WHERE kind = 'funding' GROUP BY currency ORDER BY currency",
    )?;
    for (cur, total) in &customer_totals {
        let f = funded.iter().find(|(c, _)| c == cur).map(|(_, v)| *v).unwrap_or(0);
        if f != *total {
            problems.push(format!("{cur}: customers hold {total} but {f} was funded"));
        }
    }
    Ok(Books { customer_totals, funded, problems })
}

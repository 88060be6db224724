//! The ledger: accounts in one currency each, double-entry postings, transfers with client
//! chosen ids (idempotency), and funding, the only way money enters.
//!
//! Amounts are integer minor units. Every function takes a `&Transaction` so that the website
//! can execute a transfer in the same `BEGIN IMMEDIATE` transaction that checks its code.

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use crate::audit;

/// Largest amount of one transfer or funding, in minor units.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;
/// Largest balance an account may reach by funding (keeps every sum inside i64).
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000_000;

/// Currencies the bank keeps, with their ISO 4217 minor-unit exponent.
pub const CURRENCIES: &[(&str, u32)] = &[("EUR", 2), ("USD", 2), ("GBP", 2), ("CHF", 2), ("JPY", 0)];

/// The minor-unit exponent of a supported currency.
pub fn exponent(currency: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(c, _)| *c == currency).map(|(_, e)| *e)
}

/// Writes `minor` in major units: `format_amount(1234, "EUR") == "12.34"`.
pub fn format_amount(minor: i64, currency: &str) -> String {
    let e = exponent(currency).unwrap_or(0);
    if e == 0 {
        return minor.to_string();
    }
    let div = 10i64.pow(e);
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    let d = div.unsigned_abs();
    format!("{sign}{}.{:0width$}", m / d, m % d, width = e as usize)
}

/// Parses a decimal amount in major units ("12.34", "12", "0.5") into minor units for the
/// currency; refuses more decimals than the currency has, signs, and zero.
pub fn parse_amount(text: &str, currency: &str) -> Option<u64> {
    let e = exponent(currency)?;
    let text = text.trim();
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int.is_empty() || int.len() > 16 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > e as usize || !frac.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && frac.is_empty()) {
        return None;
    }
    let mut v: u64 = int.parse().ok()?;
    v = v.checked_mul(10u64.pow(e))?;
    let mut f: u64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    f = f.checked_mul(10u64.pow(e - u32::try_from(frac.len()).ok()?))?;
    let v = v.checked_add(f)?;
    (1..=MAX_AMOUNT).contains(&v).then_some(v)
}

pub fn valid_account_number(n: &str) -> bool {
    (1..=34).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// A client transfer id: 1-64 URL-safe characters.
pub fn valid_transfer_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("account number must be 1-34 characters of A-Z 0-9 -")]
    InvalidAccountNumber,
    #[error("account {0:?} already exists")]
    AccountExists(String),
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error("source and payee are the same account")]
    SameAccount,
    #[error("currency {0:?} is not one the bank keeps (EUR, USD, GBP, CHF, JPY)")]
    UnsupportedCurrency(String),
    #[error("the currency does not match the accounts' currency")]
    CurrencyMismatch,
    #[error("amount must be 1..={MAX_AMOUNT} minor units")]
    InvalidAmount,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("this transfer id was already used with different fields")]
    TransferIdConflict,
    #[error("transfer id must be 1-64 characters of A-Z a-z 0-9 . _ ~ -")]
    InvalidTransferId,
    #[error("funding would take the balance, or the total of its currency, above the bank's limit")]
    BalanceLimit,
    #[error("unknown user id {0}")]
    UnknownUser(i64),
}

/// An account as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub number: String,
    pub currency: String,
    pub exponent: u32,
    pub balance_minor: i64,
}

/// What a client asks to transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    pub transfer_id: String,
    pub from: String,
    pub to: String,
    pub amount_minor: u64,
    pub currency: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Executed,
    Rejected,
}

impl Status {
    fn parse(s: &str) -> Status {
        match s {
            "executed" => Status::Executed,
            "rejected" => Status::Rejected,
            _ => Status::Pending,
        }
    }
}

/// A transfer as stored. `row_id` is internal (it names the challenge's purpose).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    #[serde(skip)]
    pub row_id: i64,
    pub transfer_id: String,
    pub from: String,
    pub to: String,
    pub amount_minor: u64,
    pub currency: String,
    pub status: Status,
    pub reason: Option<String>,
    pub direction: &'static str,
    pub created_at: i64,
    pub executed_at: Option<i64>,
}

/// Result of asking for a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// New or still pending: it needs the card's code.
    Pending(Transfer),
    /// The same id and fields were already executed: the original result.
    Executed(Transfer),
    /// The same id and fields were already refused for lack of funds.
    Rejected(Transfer),
}

struct AccountRow {
    id: i64,
    user_id: Option<i64>,
    kind: String,
    currency: String,
    balance: i64,
}

fn account_by_number(tx: &Transaction<'_>, number: &str) -> Result<Option<AccountRow>, LedgerError> {
    Ok(tx
        .query_row("SELECT id, user_id, kind, currency, balance FROM accounts WHERE number = ?1", [number], |r| {
            Ok(AccountRow {
                id: r.get(0)?,
                user_id: r.get(1)?,
                kind: r.get(2)?,
                currency: r.get(3)?,
                balance: r.get(4)?,
            })
        })
        .optional()?)
}

/// Opens a customer account for `user_id`.
pub fn open_account(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    number: &str,
    currency: &str,
    actor: &str,
) -> Result<(), LedgerError> {
    if !valid_account_number(number) || number.starts_with("FUNDING-") {
        return Err(LedgerError::InvalidAccountNumber);
    }
    if exponent(currency).is_none() {
        return Err(LedgerError::UnsupportedCurrency(currency.to_owned()));
    }
    if account_by_number(tx, number)?.is_some() {
        return Err(LedgerError::AccountExists(number.to_owned()));
    }
    // The user is auth's: its table is not read here. The foreign key (foreign_keys=ON is
    // checked at start) refuses an id that names no user.
    tx.execute(
        "INSERT INTO accounts (number, kind, user_id, currency, balance, created_at) VALUES (?1, 'customer', ?2, ?3, 0, ?4)",
        params![number, user_id, currency, now],
    )
    .map_err(|e| match e.sqlite_error().map(|f| f.extended_code) {
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => LedgerError::UnknownUser(user_id),
        _ => LedgerError::Sql(e),
    })?;
    audit::append(
        tx,
        now,
        "account_opened",
        actor,
        json!({ "account": number, "currency": currency, "user_id": user_id }),
    )?;
    Ok(())
}

fn funding_account(tx: &Transaction<'_>, now: i64, currency: &str) -> Result<i64, LedgerError> {
    let number = format!("FUNDING-{currency}");
    if let Some(a) = account_by_number(tx, &number)? {
        return Ok(a.id);
    }
    tx.execute(
        "INSERT INTO accounts (number, kind, user_id, currency, balance, created_at) VALUES (?1, 'funding', NULL, ?2, 0, ?3)",
        params![number, currency, now],
    )?;
    Ok(tx.last_insert_rowid())
}

fn post(tx: &Transaction<'_>, journal_id: i64, account_id: i64, amount: i64) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO postings (journal_id, account_id, amount) VALUES (?1, ?2, ?3)",
        params![journal_id, account_id, amount],
    )?;
    tx.execute("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", params![amount, account_id])?;
    Ok(())
}

/// Puts money into a customer account from the bank's funding account of its currency.
/// Returns the new balance. This is the only way the customers' total changes.
pub fn fund(
    tx: &Transaction<'_>,
    now: i64,
    number: &str,
    amount_minor: u64,
    memo: &str,
    actor: &str,
) -> Result<i64, LedgerError> {
    if !(1..=MAX_AMOUNT).contains(&amount_minor) {
        return Err(LedgerError::InvalidAmount);
    }
    let amount = i64::try_from(amount_minor).map_err(|_| LedgerError::InvalidAmount)?;
    let acc = account_by_number(tx, number)?
        .filter(|a| a.kind == "customer")
        .ok_or_else(|| LedgerError::UnknownAccount(number.to_owned()))?;
    if acc.balance.checked_add(amount).is_none_or(|b| b > MAX_BALANCE) {
        return Err(LedgerError::BalanceLimit);
    }
    let source = funding_account(tx, now, &acc.currency)?;
    // The funding account holds minus everything ever funded in this currency, which is the
    // customers' total: capping it keeps every balance and every sum within i64 (SQLite would
    // otherwise turn an overflowing sum into a float).
    let outstanding: i64 = tx.query_row("SELECT balance FROM accounts WHERE id = ?1", [source], |r| r.get(0))?;
    if outstanding.checked_sub(amount).is_none_or(|b| b < -MAX_BALANCE) {
        return Err(LedgerError::BalanceLimit);
    }
    tx.execute(
        "INSERT INTO journal (kind, transfer_id, currency, memo, at) VALUES ('funding', NULL, ?1, ?2, ?3)",
        params![acc.currency, memo, now],
    )?;
    let j = tx.last_insert_rowid();
    post(tx, j, source, -amount)?;
    post(tx, j, acc.id, amount)?;
    audit::append(
        tx,
        now,
        "funding",
        actor,
        json!({ "account": number, "amount_minor": amount_minor, "currency": acc.currency, "memo": memo, "journal": j }),
    )?;
    Ok(acc.balance + amount)
}

/// A customer account by number, with its owner's user id.
pub fn account(tx: &Transaction<'_>, number: &str) -> Result<Option<(Account, i64)>, LedgerError> {
    Ok(account_by_number(tx, number)?.filter(|a| a.kind == "customer").and_then(|a| {
        let owner = a.user_id?;
        let exponent = exponent(&a.currency).unwrap_or(0);
        Some((Account { number: number.to_owned(), currency: a.currency, exponent, balance_minor: a.balance }, owner))
    }))
}

/// The user's accounts.
pub fn accounts_of(tx: &Transaction<'_>, user_id: i64) -> Result<Vec<Account>, LedgerError> {
    let mut stmt = tx.prepare(
        "SELECT number, currency, balance FROM accounts WHERE user_id = ?1 AND kind = 'customer' ORDER BY number",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        let currency: String = r.get(1)?;
        Ok(Account {
            number: r.get(0)?,
            exponent: exponent(&currency).unwrap_or(0),
            currency,
            balance_minor: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const TRANSFER_SELECT: &str =
    "SELECT t.id, t.client_id, fa.number, ta.number, t.amount, t.currency, t.status, t.reason,
        t.created_at, t.executed_at, t.user_id
 FROM transfers t JOIN accounts fa ON fa.id = t.from_account JOIN accounts ta ON ta.id = t.to_account";

fn transfer_from_row(r: &rusqlite::Row<'_>, viewer: i64) -> rusqlite::Result<Transfer> {
    let status: String = r.get(6)?;
    let owner: i64 = r.get(10)?;
    Ok(Transfer {
        row_id: r.get(0)?,
        transfer_id: r.get(1)?,
        from: r.get(2)?,
        to: r.get(3)?,
        amount_minor: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        currency: r.get(5)?,
        status: Status::parse(&status),
        reason: r.get(7)?,
        direction: if owner == viewer { "out" } else { "in" },
        created_at: r.get(8)?,
        executed_at: r.get(9)?,
    })
}

/// The transfer `transfer_id` created by `user_id`, if any.
pub fn transfer(tx: &Transaction<'_>, user_id: i64, transfer_id: &str) -> Result<Option<Transfer>, LedgerError> {
    let sql = format!("{TRANSFER_SELECT} WHERE t.user_id = ?1 AND t.client_id = ?2");
    Ok(tx.query_row(&sql, params![user_id, transfer_id], |r| transfer_from_row(r, user_id)).optional()?)
}

/// The user's history, newest first: everything they created, and executed transfers into
/// their accounts.
pub fn history(tx: &Transaction<'_>, user_id: i64, limit: u32) -> Result<Vec<Transfer>, LedgerError> {
    let sql = format!(
        "{TRANSFER_SELECT} WHERE t.user_id = ?1 OR (t.status = 'executed' AND ta.user_id = ?1)
         ORDER BY t.id DESC LIMIT ?2"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map(params![user_id, limit], |r| transfer_from_row(r, user_id))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records a transfer request as pending, after checking it; or, for a transfer id the user
/// already used, returns what happened to it (same fields) or refuses (different fields).
pub fn create_transfer(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    req: &NewTransfer,
    actor: &str,
) -> Result<Created, LedgerError> {
    if !valid_transfer_id(&req.transfer_id) {
        return Err(LedgerError::InvalidTransferId);
    }
    if let Some(t) = transfer(tx, user_id, &req.transfer_id)? {
        if t.from != req.from || t.to != req.to || t.amount_minor != req.amount_minor || t.currency != req.currency {
            return Err(LedgerError::TransferIdConflict);
        }
        return Ok(match t.status {
            Status::Pending => Created::Pending(t),
            Status::Executed => Created::Executed(t),
            Status::Rejected => Created::Rejected(t),
        });
    }
    if exponent(&req.currency).is_none() {
        return Err(LedgerError::UnsupportedCurrency(req.currency.clone()));
    }
    if !(1..=MAX_AMOUNT).contains(&req.amount_minor) {
        return Err(LedgerError::InvalidAmount);
    }
    let from = account_by_number(tx, &req.from)?
        .filter(|a| a.kind == "customer" && a.user_id == Some(user_id))
        .ok_or_else(|| LedgerError::UnknownAccount(req.from.clone()))?;
    let to = account_by_number(tx, &req.to)?
        .filter(|a| a.kind == "customer")
        .ok_or_else(|| LedgerError::UnknownAccount(req.to.clone()))?;
    if from.id == to.id {
        return Err(LedgerError::SameAccount);
    }
    if from.currency != req.currency || to.currency != req.currency {
        return Err(LedgerError::CurrencyMismatch);
    }
    let amount = i64::try_from(req.amount_minor).map_err(|_| LedgerError::InvalidAmount)?;
    if from.balance < amount {
        return Err(LedgerError::InsufficientFunds);
    }
    tx.execute(
        "INSERT INTO transfers (user_id, client_id, from_account, to_account, amount, currency, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)",
        params![user_id, req.transfer_id, from.id, to.id, amount, req.currency, now],
    )?;
    audit::append(
        tx,
        now,
        "transfer_created",
        actor,
        json!({ "transfer_id": req.transfer_id, "from": req.from, "to": req.to, "amount_minor": req.amount_minor, "currency": req.currency }),
    )?;
    let t = transfer(tx, user_id, &req.transfer_id)?.ok_or_else(|| LedgerError::UnknownAccount(req.from.clone()))?;
    Ok(Created::Pending(t))
}

/// Executes a pending transfer whose code was just verified (same transaction): balanced
/// postings, or `rejected` for lack of funds. An already final transfer is returned as it is.
pub fn execute_transfer(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    transfer_id: &str,
    actor: &str,
) -> Result<Transfer, LedgerError> {
    let t = transfer(tx, user_id, transfer_id)?.ok_or_else(|| LedgerError::UnknownAccount(transfer_id.to_owned()))?;
    if t.status != Status::Pending {
        return Ok(t);
    }
    let amount = i64::try_from(t.amount_minor).map_err(|_| LedgerError::InvalidAmount)?;
    let (from_id, to_id): (i64, i64) =
        tx.query_row("SELECT from_account, to_account FROM transfers WHERE id = ?1", [t.row_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let balance: i64 = tx.query_row("SELECT balance FROM accounts WHERE id = ?1", [from_id], |r| r.get(0))?;
    let detail = json!({ "transfer_id": t.transfer_id, "from": t.from, "to": t.to, "amount_minor": t.amount_minor, "currency": t.currency });
    if balance < amount {
        tx.execute(
            "UPDATE transfers SET status = 'rejected', reason = 'insufficient_funds', executed_at = ?1 WHERE id = ?2",
            params![now, t.row_id],
        )?;
        audit::append(
            tx,
            now,
            "transfer_rejected",
            actor,
            json!({ "transfer": detail, "reason": "insufficient_funds" }),
        )?;
    } else {
        tx.execute(
            "INSERT INTO journal (kind, transfer_id, currency, memo, at) VALUES ('transfer', ?1, ?2, '', ?3)",
            params![t.row_id, t.currency, now],
        )?;
        let j = tx.last_insert_rowid();
        post(tx, j, from_id, -amount)?;
        post(tx, j, to_id, amount)?;
        tx.execute("UPDATE transfers SET status = 'executed', executed_at = ?1 WHERE id = ?2", params![now, t.row_id])?;
        audit::append(tx, now, "transfer_executed", actor, json!({ "transfer": detail, "journal": j }))?;
    }
    transfer(tx, user_id, transfer_id)?.ok_or_else(|| LedgerError::UnknownAccount(transfer_id.to_owned()))
}

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
    let neg: i64 =
        tx.query_row("SELECT count(*) FROM accounts WHERE kind = 'customer' AND balance < 0", [], |r| r.get(0))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A fresh database with every migration applied (the directory lives as long as it).
    fn migrated_db() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let mut c = crate::db::open_connection(&path).unwrap();
        crate::db::migrate(&mut c, &path).unwrap();
        (dir, c)
    }

    /// Users alice (id 1) and bob (id 2) with the EUR accounts ACC-A and ACC-B.
    fn alice_and_bob_in_eur(tx: &Transaction<'_>) {
        crate::auth::add_user(tx, 0, "alice", "operator").unwrap();
        crate::auth::add_user(tx, 0, "bob", "operator").unwrap();
        open_account(tx, 0, 1, "ACC-A", "EUR", "operator").unwrap();
        open_account(tx, 0, 2, "ACC-B", "EUR", "operator").unwrap();
    }

    #[test]
    fn amounts_parse_by_exponent() {
        assert_eq!(parse_amount("12.34", "EUR"), Some(1234));
        assert_eq!(parse_amount("12.3", "EUR"), Some(1230));
        assert_eq!(parse_amount("12", "EUR"), Some(1200));
        assert_eq!(parse_amount("0.01", "USD"), Some(1));
        assert_eq!(parse_amount("12.345", "EUR"), None);
        assert_eq!(parse_amount("12.34", "JPY"), None);
        assert_eq!(parse_amount("1234", "JPY"), Some(1234));
        for bad in ["", "-1", "+1", "1.", ".5", "1,00", "0", "0.00", "1e3", "99999999999999999"] {
            assert_eq!(parse_amount(bad, "EUR"), None, "{bad}");
        }
        assert_eq!(parse_amount("1", "XXX"), None);
        assert_eq!(format_amount(1234, "EUR"), "12.34");
        assert_eq!(format_amount(5, "EUR"), "0.05");
        assert_eq!(format_amount(-5, "EUR"), "-0.05");
        assert_eq!(format_amount(1234, "JPY"), "1234");
    }

    #[test]
    fn an_account_for_an_unknown_user_id_is_refused() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        let e = open_account(&tx, 0, 42, "ACC-X", "EUR", "operator").unwrap_err();
        assert!(matches!(e, LedgerError::UnknownUser(42)), "{e:?}");
        let n: i64 = tx.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn funding_is_capped_per_currency_not_only_per_account() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        open_account(&tx, 0, 2, "ACC-B-USD", "USD", "operator").unwrap();
        fund(&tx, 0, "ACC-A", 100, "seed", "operator").unwrap();
        // As if the EUR customers already held all but 50 minor units of the limit, spread
        // over accounts each far below its own limit.
        tx.execute("UPDATE accounts SET balance = ?1 WHERE number = 'FUNDING-EUR'", [-(MAX_BALANCE - 50)]).unwrap();
        let e = fund(&tx, 0, "ACC-B", 51, "too much", "operator").unwrap_err();
        assert!(matches!(e, LedgerError::BalanceLimit), "{e:?}");
        assert_eq!(fund(&tx, 0, "ACC-B", 50, "up to the limit", "operator").unwrap(), 50);
        // Another currency has its own total.
        assert_eq!(fund(&tx, 0, "ACC-B-USD", 51, "usd", "operator").unwrap(), 51);
    }

    #[test]
    fn history_is_append_only() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        fund(&tx, 0, "ACC-A", 1000, "opening", "operator").unwrap();
        let req = NewTransfer {
            transfer_id: "t1".into(),
            from: "ACC-A".into(),
            to: "ACC-B".into(),
            amount_minor: 300,
            currency: "EUR".into(),
        };
        create_transfer(&tx, 0, 1, &req, "user:alice").unwrap();
        assert_eq!(execute_transfer(&tx, 1, 1, "t1", "user:alice").unwrap().status, Status::Executed);
        tx.commit().unwrap();
        for sql in [
            "UPDATE postings SET amount = amount * 2",
            "DELETE FROM postings",
            "UPDATE journal SET memo = 'x'",
            "DELETE FROM journal",
            "DELETE FROM transfers",
            "UPDATE transfers SET status = 'pending'",
            "UPDATE transfers SET amount = 1",
        ] {
            let e = c.execute(sql, []).unwrap_err().to_string();
            assert!(e.contains("append-only") || e.contains("only moves from pending"), "{sql}: {e}");
        }
        // A second execution of the same transfer moves nothing.
        let tx = c.transaction().unwrap();
        assert_eq!(execute_transfer(&tx, 2, 1, "t1", "user:alice").unwrap().status, Status::Executed);
        let books = check_books(&tx).unwrap();
        assert!(books.problems.is_empty(), "{:?}", books.problems);
        let b: i64 = tx.query_row("SELECT balance FROM accounts WHERE number = 'ACC-B'", [], |r| r.get(0)).unwrap();
        assert_eq!(b, 300);
    }

    #[test]
    fn identifiers() {
        assert!(valid_account_number("ACC-ALICE-EUR"));
        assert!(!valid_account_number("acc"));
        assert!(!valid_account_number(""));
        assert!(valid_transfer_id("b7f6c1e0-1234_x.y~z"));
        assert!(!valid_transfer_id("a/b"));
        assert!(!valid_transfer_id(&"a".repeat(65)));
    }
}

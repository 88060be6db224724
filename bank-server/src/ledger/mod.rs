//! The ledger: customer accounts in one currency each, double-entry postings, transfers with
//! client-chosen ids (a retry never pays twice), and funding, the only way money enters.
//!
//! Amounts are integer minor units ([`paysim_wire::Currency`] knows the exponents). What goes
//! in and out are the wire types ([`AccountNumber`], [`TransferId`], [`paysim_wire::api::Transfer`] with its
//! `TransferStatus` and `Direction`); the table rows stay in here. Every function takes a
//! `&Transaction`, so a transfer executes in the same `BEGIN IMMEDIATE` transaction that checks
//! its code.
//!
//! - [`accounts`]: opening and reading customer accounts.
//! - [`funding`]: money in, from the bank's per-currency funding account.
//! - [`transfers`]: asking for, reading and executing transfers.
//! - [`books`]: the invariants, checked on demand.
//! - [`vop`]: verification of payee, the comparison of a payee's name with the account's.

pub mod accounts;
pub mod books;
pub mod funding;
pub mod transfers;
pub mod vop;

use crate::db::Cached;
use paysim_wire::api::TransferStatus;
use paysim_wire::{AccountNumber, Currency, TransferId, MAX_AMOUNT};
use rusqlite::{params, Transaction};

pub use accounts::{account, accounts_of, open_account};
pub use books::{check_books, Books};
pub use funding::fund;
pub use transfers::{
    create_transfer, end_transfer, execute_transfer, extend_pending, history, payee_check, transfer, Ending, PendingCap,
};

/// Largest balance an account may reach by funding (keeps every sum inside i64).
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000_000;

/// The prefix of the bank's own funding accounts (`FUNDING-EUR`): never a customer's.
pub const FUNDING_PREFIX: &str = "FUNDING-";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("account numbers beginning with {FUNDING_PREFIX} are the bank's own")]
    InvalidAccountNumber,
    #[error("account {0:?} already exists")]
    AccountExists(AccountNumber),
    #[error("unknown account {0:?}")]
    UnknownAccount(AccountNumber),
    #[error("unknown transfer {0:?}")]
    UnknownTransfer(TransferId),
    #[error("source and payee are the same account")]
    SameAccount,
    #[error("currency \"{0}\" is not one the bank keeps ({list})", list = paysim_wire::money::KEPT_BY_BANK.join(", "))]
    UnsupportedCurrency(Currency),
    #[error("the currency does not match the accounts' currency")]
    CurrencyMismatch,
    /// No such customer account, or one in another currency: one refusal for both (the true
    /// reason is in the audit log).
    #[error("the payee cannot take this transfer: check the account number and the currency")]
    PayeeNotAccepted,
    #[error("{0} transfers are already waiting for confirmation: confirm them, or wait, before asking for another")]
    TooManyPending(u32),
    #[error("amount must be 1..={MAX_AMOUNT} minor units")]
    InvalidAmount,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("this transfer id was already used with different fields")]
    TransferIdConflict,
    #[error("funding would take the balance, or the total of its currency, above the bank's limit")]
    BalanceLimit,
    #[error("unknown user id {0}")]
    UnknownUser(i64),
}

/// An amount of one transfer or funding, as the signed integer the tables hold.
fn checked_amount(amount_minor: u64) -> Result<i64, LedgerError> {
    if !(1..=MAX_AMOUNT).contains(&amount_minor) {
        return Err(LedgerError::InvalidAmount);
    }
    i64::try_from(amount_minor).map_err(|_| LedgerError::InvalidAmount)
}

/// One posting of a journal entry, and the account's running balance with it.
fn post(tx: &Transaction<'_>, journal_id: i64, account_id: i64, amount: i64) -> Result<(), LedgerError> {
    tx.exec(
        "INSERT INTO postings (journal_id, account_id, amount) VALUES (?1, ?2, ?3)",
        params![journal_id, account_id, amount],
    )?;
    tx.exec("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", params![amount, account_id])?;
    Ok(())
}

/// A stored status; anything else is refused.
fn status_from_text(text: &str) -> Option<TransferStatus> {
    TransferStatus::ALL.into_iter().find(|s| s.as_str() == text)
}

#[cfg(test)]
pub(crate) mod test_db {
    use super::*;

    /// A fresh database with every migration applied (the directory lives as long as it).
    pub fn migrated_db() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite3");
        let mut c = crate::db::open_connection(&path).unwrap();
        crate::db::migrate(&mut c, &path).unwrap();
        // Audit rows need a scope; each test runs on a thread of its own, which this one
        // stays in until the thread ends.
        std::mem::forget(crate::audit::test_scope());
        (dir, c)
    }

    pub fn n(s: &str) -> AccountNumber {
        s.parse().unwrap()
    }

    pub fn eur() -> Currency {
        "EUR".parse().unwrap()
    }

    /// Users alice (id 1) and bob (id 2) with the EUR accounts ACC-A and ACC-B.
    pub fn alice_and_bob_in_eur(tx: &Transaction<'_>) {
        crate::auth::add_user(tx, 0, &"alice".parse().unwrap(), "operator").unwrap();
        crate::auth::add_user(tx, 0, &"bob".parse().unwrap(), "operator").unwrap();
        open_account(tx, 0, 1, &n("ACC-A"), eur(), Some(&"Alice Example".parse().unwrap()), "operator").unwrap();
        open_account(tx, 0, 2, &n("ACC-B"), eur(), Some(&"Bob Example".parse().unwrap()), "operator").unwrap();
    }
}

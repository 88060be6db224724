//! Operator functions (the `bank-tools` CLI wraps them). Each opens the database itself
//! (creating and migrating it when missing) and runs in one `BEGIN IMMEDIATE` transaction, so
//! it is safe while the server runs (WAL; writers wait up to 10 s for each other). Each change
//! is written to the audit log with the actor `operator`.

use std::path::Path;

use paysim_otp::ChainKey;
use zeroize::Zeroizing;

use crate::audit::AuditReport;
use crate::auth::{self, AuthError, TokenInfo};
use crate::clock::Clock;
use crate::db::{self, Db, DbError};
use crate::ledger::{self, Account, Books, LedgerError};
use crate::master_key::{KeyError, MasterKey};

const OPERATOR: &str = "operator";

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("token file {path}: {problem}")]
    TokenFile { path: String, problem: String },
}

/// The personalization output of `bank-tools card personalize --out FILE`:
/// `{"format":"paysim-token-v1","serial":"PSIM-00000001","seed_hex":"<64 hex>","counter":0}`.
/// `Debug` never shows the seed.
#[derive(Debug, Clone)]
pub struct TokenFile {
    pub serial: String,
    /// The chain seed `ck_0`.
    pub seed: ChainKey,
    /// The card's next counter when the file was written (normally 0).
    pub counter: u64,
}

/// The format tag of a token file.
pub const TOKEN_FILE_FORMAT: &str = "paysim-token-v1";

/// Reads and checks a personalization output file.
pub fn load_token_file(path: &Path) -> Result<TokenFile, OpsError> {
    let bad = |problem: &str| OpsError::TokenFile { path: path.display().to_string(), problem: problem.to_owned() };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?);
    parse_token_file(&text).map_err(bad)
}

/// The token file's fields as written, borrowed from the (zeroized) file text so that the seed's
/// hex digits are never copied into memory that is not wiped.
#[derive(serde::Deserialize)]
struct RawTokenFile<'a> {
    format: Option<&'a str>,
    serial: Option<&'a str>,
    seed_hex: Option<&'a str>,
    counter: Option<u64>,
}

/// Parses the text of a token file; the error says what is wrong, never a secret.
pub fn parse_token_file(text: &str) -> Result<TokenFile, &'static str> {
    let v: RawTokenFile<'_> = serde_json::from_str(text).map_err(|_| {
        "not valid JSON of the token format (strings without escapes, `counter` a non-negative integer)"
    })?;
    if v.format != Some(TOKEN_FILE_FORMAT) {
        return Err("`format` must be \"paysim-token-v1\"");
    }
    let serial = v.serial.ok_or("`serial` is missing")?;
    if !auth::valid_serial(serial) {
        return Err("`serial` must be 1-16 characters of A-Z 0-9 -");
    }
    let seed_hex = v.seed_hex.ok_or("`seed_hex` is missing")?;
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(seed_hex, seed.as_mut()).map_err(|_| "`seed_hex` must be 64 hex digits")?;
    let counter = v.counter.ok_or("`counter` must be a non-negative integer")?;
    Ok(TokenFile { serial: serial.to_owned(), seed: ChainKey::from_bytes(*seed), counter })
}

fn open(db_path: &Path) -> Result<Db, OpsError> {
    Ok(Db::open(db_path)?)
}

fn write<T>(
    db_path: &Path,
    f: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T, OpsError>,
) -> Result<T, OpsError> {
    let db = open(db_path)?;
    let now = Clock::system().now();
    db.run_blocking(|c| db::immediate(c, |tx| f(tx, now)))
}

/// Adds a user (1-32 characters of a-z 0-9 . _ -).
pub fn add_user(db_path: &Path, name: &str) -> Result<(), OpsError> {
    write(db_path, |tx, now| Ok(auth::add_user(tx, now, name, OPERATOR).map(|_| ())?))
}

/// Enrolls a token for an existing user: `seed` is `ck_0`, `counter` the card's next counter.
/// The chain key is sealed under the master key (`BANK_MASTER_KEY` or the key file beside the
/// database, created if missing).
pub fn enroll_token(db_path: &Path, serial: &str, seed: &ChainKey, counter: u64, user: &str) -> Result<(), OpsError> {
    let key = MasterKey::load_or_create(db_path)?;
    let e = auth::Enrollment { user, serial, ck0: seed, counter };
    write(db_path, |tx, now| Ok(auth::enroll_token(tx, now, &key, &e, OPERATOR)?))
}

/// [`enroll_token`] from a personalization output file; returns its serial.
pub fn enroll_token_file(db_path: &Path, file: &Path, user: &str) -> Result<String, OpsError> {
    let t = load_token_file(file)?;
    enroll_token(db_path, &t.serial, &t.seed, t.counter, user)?;
    Ok(t.serial)
}

/// Opens an account (1-34 characters of A-Z 0-9 -) in a supported currency for a user.
pub fn open_account(db_path: &Path, user: &str, number: &str, currency: &str) -> Result<(), OpsError> {
    write(db_path, |tx, now| {
        let uid = auth::user_id(tx, user)?.ok_or_else(|| AuthError::UnknownUser(user.to_owned()))?;
        Ok(ledger::open_account(tx, now, uid, number, currency, OPERATOR)?)
    })
}

/// Funds an account with `amount_minor` (> 0) minor units; returns the new balance.
pub fn fund(db_path: &Path, account: &str, amount_minor: u64, reason: &str) -> Result<i64, OpsError> {
    write(db_path, |tx, now| Ok(ledger::fund(tx, now, account, amount_minor, reason, OPERATOR)?))
}

/// Clears a token's lock and failure counts.
pub fn unlock_token(db_path: &Path, serial: &str) -> Result<(), OpsError> {
    write(db_path, |tx, now| Ok(auth::unlock_token(tx, now, serial, OPERATOR)?))
}

/// Revokes a token for good, and ends its user's sessions (API and website) in the same
/// transaction: whoever logged in with a lost card is out at once.
pub fn revoke_token(db_path: &Path, serial: &str) -> Result<(), OpsError> {
    write(db_path, |tx, now| {
        let user_id = auth::revoke_token(tx, now, serial, OPERATOR)?;
        crate::website::session::end_all_for_user(tx, now, user_id, "token_revoked", OPERATOR)?;
        Ok(())
    })
}

/// All tokens with their state (no key material).
pub fn list_tokens(db_path: &Path) -> Result<Vec<TokenInfo>, OpsError> {
    let db = open(db_path)?;
    let now = Clock::system().now();
    db.run_blocking(|c| db::read(c, |tx| Ok(auth::list_tokens(tx, now)?)))
}

/// A user's accounts and balances.
pub fn accounts(db_path: &Path, user: &str) -> Result<Vec<Account>, OpsError> {
    let db = open(db_path)?;
    db.run_blocking(|c| {
        db::read(c, |tx| {
            let uid = auth::user_id(tx, user)?.ok_or_else(|| AuthError::UnknownUser(user.to_owned()))?;
            Ok(ledger::accounts_of(tx, uid)?)
        })
    })
}

/// One customer account by number, with its owner's name; `None` if there is none.
pub fn account(db_path: &Path, number: &str) -> Result<Option<(Account, String)>, OpsError> {
    let db = open(db_path)?;
    db.run_blocking(|c| {
        db::read(c, |tx| {
            let Some((account, owner)) = ledger::account(tx, number)? else {
                return Ok(None);
            };
            let name = auth::user_name(tx, owner)?.unwrap_or_default();
            Ok(Some((account, name)))
        })
    })
}

/// The latest `limit` audit events, newest first.
pub fn recent_audit(db_path: &Path, limit: u32) -> Result<Vec<crate::audit::Event>, OpsError> {
    let db = open(db_path)?;
    db.run_blocking(|c| db::read(c, |tx| Ok(crate::audit::recent(tx, limit)?)))
}

/// Walks the audit chain; the report names the first bad row, if any.
pub fn verify_audit(db_path: &Path) -> Result<AuditReport, OpsError> {
    let db = open(db_path)?;
    db.run_blocking(|c| db::read(c, |tx| Ok(crate::audit::verify(tx)?)))
}

/// Checks the books (balanced entries, balances = postings, no overdraft, totals = funding).
pub fn check_books(db_path: &Path) -> Result<Books, OpsError> {
    let db = open(db_path)?;
    db.run_blocking(|c| db::read(c, |tx| Ok(ledger::check_books(tx)?)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn operator_functions_refuse_bad_input_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ops.sqlite3");
        add_user(&db, "alice").unwrap();
        assert!(matches!(add_user(&db, "alice"), Err(OpsError::Auth(AuthError::UserExists(_)))));
        assert!(matches!(add_user(&db, "Alice!"), Err(OpsError::Auth(AuthError::InvalidUserName))));
        let seed = ChainKey::from_bytes([1; 32]);
        assert!(matches!(enroll_token(&db, "PSIM-1", &seed, 0, "bob"), Err(OpsError::Auth(AuthError::UnknownUser(_)))));
        enroll_token(&db, "PSIM-1", &seed, 0, "alice").unwrap();
        assert!(matches!(
            enroll_token(&db, "PSIM-1", &seed, 0, "alice"),
            Err(OpsError::Auth(AuthError::DuplicateSerial(_)))
        ));
        assert!(matches!(
            enroll_token(&db, "PSIM-2", &seed, 0, "alice"),
            Err(OpsError::Auth(AuthError::ActiveTokenExists { .. }))
        ));
        assert!(matches!(enroll_token(&db, "psim", &seed, 0, "alice"), Err(OpsError::Auth(AuthError::InvalidSerial))));
        revoke_token(&db, "PSIM-1").unwrap();
        enroll_token(&db, "PSIM-2", &seed, 5, "alice").unwrap();
        assert!(matches!(unlock_token(&db, "PSIM-9"), Err(OpsError::Auth(AuthError::UnknownToken(_)))));
        assert!(matches!(unlock_token(&db, "PSIM-1"), Err(OpsError::Auth(AuthError::TokenRevoked(_)))));
        let tokens = list_tokens(&db).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!((tokens[1].serial.as_str(), tokens[1].next_counter), ("PSIM-2", 5));

        open_account(&db, "alice", "ACC-A", "EUR").unwrap();
        assert!(matches!(
            open_account(&db, "alice", "ACC-A", "EUR"),
            Err(OpsError::Ledger(LedgerError::AccountExists(_)))
        ));
        assert!(matches!(
            open_account(&db, "alice", "ACC-B", "XYZ"),
            Err(OpsError::Ledger(LedgerError::UnsupportedCurrency(_)))
        ));
        assert!(matches!(
            open_account(&db, "alice", "FUNDING-EUR", "EUR"),
            Err(OpsError::Ledger(LedgerError::InvalidAccountNumber))
        ));
        assert!(matches!(open_account(&db, "nobody", "ACC-C", "EUR"), Err(OpsError::Auth(AuthError::UnknownUser(_)))));
        assert_eq!(fund(&db, "ACC-A", 250, "test").unwrap(), 250);
        assert!(matches!(fund(&db, "ACC-A", 0, "test"), Err(OpsError::Ledger(LedgerError::InvalidAmount))));
        assert!(matches!(fund(&db, "ACC-Z", 1, "test"), Err(OpsError::Ledger(LedgerError::UnknownAccount(_)))));
        let (acc, owner) = account(&db, "ACC-A").unwrap().unwrap();
        assert_eq!((acc.balance_minor, acc.currency.as_str(), owner.as_str()), (250, "EUR", "alice"));
        assert!(account(&db, "FUNDING-EUR").unwrap().is_none());
        let books = check_books(&db).unwrap();
        assert!(books.problems.is_empty(), "{:?}", books.problems);
        assert_eq!(books.customer_totals, vec![("EUR".to_owned(), 250)]);
        assert!(verify_audit(&db).unwrap().is_intact());
        let recent = recent_audit(&db, 1).unwrap();
        assert_eq!(recent[0].kind, "funding");
        // A secret never reaches an error message.
        let e = enroll_token(&db, "PSIM-2", &seed, 0, "alice").unwrap_err().to_string();
        assert!(!e.contains("0101"), "{e}");
    }

    #[test]
    fn token_files_parse_and_refuse_garbage() {
        let ok = format!(
            r#"{{"format":"paysim-token-v1","serial":"PSIM-00000001","seed_hex":"{}","counter":0}}"#,
            "ab".repeat(32)
        );
        let t = parse_token_file(&ok).unwrap();
        assert_eq!(t.serial, "PSIM-00000001");
        assert_eq!(t.seed.expose(), &[0xab; 32]);
        assert!(!format!("{t:?}").to_lowercase().contains("abab"));
        for bad in [
            "",
            "{}",
            r#"{"format":"other","serial":"A","seed_hex":"00","counter":0}"#,
            &ok.replace("PSIM-00000001", "psim"),
            &ok.replace(&"ab".repeat(32), "abcd"),
            &ok.replace("\"counter\":0", "\"counter\":-1"),
        ] {
            assert!(parse_token_file(bad).is_err(), "{bad}");
        }
    }
}

//! Operator functions (the `bank-tools` CLI wraps them). Each opens the database itself
//! (creating and migrating it when missing) and runs in one `BEGIN IMMEDIATE` transaction, so
//! it is safe while the server runs (WAL; writers wait up to 10 s for each other). Each change
//! is written to the audit log with the actor `operator`.
//!
//! They take text as an operator typed it and parse it into the wire types here, at the edge;
//! what joins two roles goes through [`crate::usecase`].

use std::path::Path;

use paysim_otp::{ChainKey, TxVersion};
use paysim_wire::api::Account;
use paysim_wire::{AccountNumber, CardSerial, Currency, CurrencyError, IdError, PayeeName, TokenFile, UserName};
use zeroize::Zeroizing;

use crate::audit::{AuditKeys, AuditReport, Checkpoint, CheckpointError, Scope};
use crate::auth::{self, AuthError, TokenInfo};
use crate::clock::Clock;
use crate::db::{self, Db, DbError};
use crate::ledger::{self, Books, LedgerError};
use crate::master_key::{KeyError, KeySource, MasterKey};
use crate::session::SessionError;
use crate::usecase::{self, UseCaseError};

const OPERATOR: &str = "operator";

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Running(#[from] crate::running::RunError),
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The master key is needed (to seal, or to chain the audit log) and no usable source
    /// was named.
    #[error("{0}")]
    NoKey(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A name, serial or account number that does not follow its rule.
    #[error(transparent)]
    Invalid(#[from] IdError),
    #[error(transparent)]
    Currency(#[from] CurrencyError),
    #[error("token file {path}: {problem}")]
    TokenFile { path: String, problem: String },
    /// What a use case refused that no operator function asks for (a session, a code).
    #[error(transparent)]
    UseCase(UseCaseError),
    /// The audit chain is broken: no checkpoint of it is made.
    #[error("the audit log is broken at row {id}: {problem}; no checkpoint was made")]
    AuditBroken { id: i64, problem: &'static str },
    #[error("checkpoint file {path}: {problem}")]
    CheckpointFile { path: String, problem: String },
}

impl From<UseCaseError> for OpsError {
    fn from(e: UseCaseError) -> Self {
        match e {
            UseCaseError::Auth(e) => OpsError::Auth(e),
            UseCaseError::Ledger(e) => OpsError::Ledger(e),
            UseCaseError::Session(e) => OpsError::Session(e),
            UseCaseError::Sql(e) => OpsError::Sql(e),
            other => OpsError::UseCase(other),
        }
    }
}

/// Reads and checks a personalization output file ([`TokenFile`]).
pub fn load_token_file(path: &Path) -> Result<TokenFile, OpsError> {
    let bad = |problem: &str| OpsError::TokenFile { path: path.display().to_string(), problem: problem.to_owned() };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?);
    TokenFile::parse(&text).map_err(bad)
}

fn open(db_path: &Path) -> Result<Db, OpsError> {
    // A database behind its commit mark has lost acknowledged work: say so before using it.
    crate::running::check_for_operator(db_path)?;
    Ok(Db::open(db_path)?)
}

/// Where the operator functions find the master key (the audit log's keys come from it), as
/// [`use_key_source`] set it; `Err` holds why the operator's choice was refused.
static KEY_SOURCE: std::sync::OnceLock<Result<KeySource, String>> = std::sync::OnceLock::new();

/// Tells the operator functions of this process where the master key is, once (`bank-tools`
/// does, from its `--master-key` / `--master-key-beside-db` / `BANK_MASTER_KEY` choice). A
/// refused choice (none, or several) is kept, and every function that needs the key answers
/// with it, so a command that needs no key (a listing) still runs. Not called (tests,
/// embedders): `BANK_MASTER_KEY`, else the file beside the database
/// ([`KeySource::env_or_beside_db`]).
pub fn use_key_source(choice: Result<KeySource, KeyError>) {
    let _ = KEY_SOURCE.set(choice.map_err(|e| e.to_string()));
}

fn key_source() -> Result<KeySource, OpsError> {
    match KEY_SOURCE.get() {
        None => Ok(KeySource::env_or_beside_db()),
        Some(Ok(source)) => Ok(source.clone()),
        Some(Err(why)) => Err(OpsError::NoKey(why.clone())),
    }
}

/// The audit log's keys, from the master key of the database at `db_path`.
fn audit_keys(db_path: &Path) -> Result<AuditKeys, OpsError> {
    Ok(AuditKeys::derive(&MasterKey::load(&key_source()?, db_path)?))
}

/// One `BEGIN IMMEDIATE` unit of work, its audit rows chained under the database's key (no
/// client address: the operator).
fn write<T>(
    db_path: &Path,
    f: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T, OpsError>,
) -> Result<T, OpsError> {
    let keys = std::sync::Arc::new(audit_keys(db_path)?);
    let db = open(db_path)?;
    let now = Clock::system().now();
    db.run_blocking(|c| {
        let _scope = Scope::new(keys, None).enter();
        db::immediate(c, |tx| f(tx, now))
    })
}

fn read<T>(db_path: &Path, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, OpsError>) -> Result<T, OpsError> {
    let db = open(db_path)?;
    db.run_blocking(|c| db::read(c, f))
}

/// Adds a user (1-32 characters of a-z 0-9 . _ -).
pub fn add_user(db_path: &Path, name: &str) -> Result<(), OpsError> {
    let name: UserName = name.parse()?;
    write(db_path, |tx, now| Ok(auth::add_user(tx, now, &name, OPERATOR).map(|_| ())?))
}

/// Enrolls a token for an existing user: `seed` is `ck_0`, `counter` the card's next counter.
/// The chain key is sealed under the master key from `key` (a key file is created if missing).
///
/// `tx_version` is the transaction-context version the card announced (the token file's
/// `tx_version`): a version-1 token logs in but cannot confirm transfers.
#[allow(clippy::too_many_arguments)]
pub fn enroll_token_with_key(
    db_path: &Path,
    key: &KeySource,
    serial: &str,
    seed: &ChainKey,
    counter: u64,
    tx_version: TxVersion,
    user: &str,
) -> Result<(), OpsError> {
    let serial: CardSerial = serial.parse()?;
    let user: UserName = user.parse()?;
    let key = MasterKey::load(key, db_path)?;
    let e = auth::Enrollment { user: &user, serial: &serial, ck0: seed, counter, tx_version };
    write(db_path, |tx, now| Ok(auth::enroll_token(tx, now, &key, &e, OPERATOR)?))
}

/// Enrolls an OATH token for an existing user: `key` is the HMAC key written to the card's
/// credential, sealed under the master key from `source`; `serial` names it at the bank.
pub fn enroll_oath_token_with_key(
    db_path: &Path,
    source: &KeySource,
    serial: &str,
    key: &paysim_otp::OathKey,
    user: &str,
) -> Result<(), OpsError> {
    let serial: CardSerial = serial.parse()?;
    let user: UserName = user.parse()?;
    let master = MasterKey::load(source, db_path)?;
    let e = auth::OathEnrollment { user: &user, serial: &serial, key };
    write(db_path, |tx, now| Ok(auth::enroll_oath_token(tx, now, &master, &e, OPERATOR)?))
}

/// Checks, before a card is written, that an OATH token could be enrolled: the user exists and
/// has no active token, and the serial is free. Changes nothing.
pub fn check_oath_enrollment(db_path: &Path, serial: &str, user: &str) -> Result<(), OpsError> {
    let serial: CardSerial = serial.parse()?;
    let user: UserName = user.parse()?;
    read(db_path, |tx| {
        auth::user_id(tx, &user)?.ok_or_else(|| AuthError::UnknownUser(user.clone()))?;
        let tokens = auth::list_tokens(tx, 0)?;
        if tokens.iter().any(|t| t.serial == serial) {
            return Err(AuthError::DuplicateSerial(serial.clone()).into());
        }
        if let Some(active) = tokens.into_iter().find(|t| t.user == user && t.status == auth::TokenStatus::Active) {
            return Err(AuthError::ActiveTokenExists { user: user.clone(), serial: active.serial }.into());
        }
        Ok(())
    })
}

/// [`enroll_token_with_key`] of a current card (context version 2) with the key as tests get
/// it ([`MasterKey::load_or_create`]: `BANK_MASTER_KEY`, else the key file beside the database).
pub fn enroll_token(db_path: &Path, serial: &str, seed: &ChainKey, counter: u64, user: &str) -> Result<(), OpsError> {
    enroll_token_version(db_path, serial, seed, counter, TxVersion::V2, user)
}

/// [`enroll_token`] of a card that announced `tx_version` (tests of old cards use `V1`).
pub fn enroll_token_version(
    db_path: &Path,
    serial: &str,
    seed: &ChainKey,
    counter: u64,
    tx_version: TxVersion,
    user: &str,
) -> Result<(), OpsError> {
    enroll_token_with_key(db_path, &KeySource::env_or_beside_db(), serial, seed, counter, tx_version, user)
}

/// [`enroll_token`] from a personalization output file, with the file's context version;
/// returns its serial.
pub fn enroll_token_file(db_path: &Path, file: &Path, user: &str) -> Result<CardSerial, OpsError> {
    let t = load_token_file(file)?;
    enroll_token_version(db_path, t.serial.as_str(), &t.seed, t.counter, t.tx_version, user)?;
    Ok(t.serial)
}

/// Opens an account (1-34 characters of A-Z 0-9 -) in a currency the bank keeps for a user,
/// in the holder's name `holder` (trimmed, 1-70 characters; verification of payee compares
/// payees' names with it, and answers `unavailable` for an account opened without one).
pub fn open_account(
    db_path: &Path,
    user: &str,
    number: &str,
    currency: &str,
    holder: Option<&str>,
) -> Result<(), OpsError> {
    let user: UserName = user.parse()?;
    let number: AccountNumber = number.parse()?;
    let currency: Currency = currency.parse()?;
    let holder: Option<PayeeName> = holder.map(str::parse).transpose()?;
    write(db_path, |tx, now| Ok(usecase::open_account(tx, now, &user, &number, currency, holder.as_ref(), OPERATOR)?))
}

/// Funds an account with `amount_minor` (> 0) minor units; returns the new balance.
pub fn fund(db_path: &Path, account: &str, amount_minor: u64, reason: &str) -> Result<i64, OpsError> {
    let account: AccountNumber = account.parse()?;
    write(db_path, |tx, now| Ok(ledger::fund(tx, now, &account, amount_minor, reason, OPERATOR)?))
}

/// Clears a token's lock and failure counts.
pub fn unlock_token(db_path: &Path, serial: &str) -> Result<(), OpsError> {
    let serial: CardSerial = serial.parse()?;
    write(db_path, |tx, now| Ok(auth::unlock_token(tx, now, &serial, OPERATOR)?))
}

/// Revokes a token for good, and ends its user's sessions (API and website) in the same
/// transaction: whoever logged in with a lost card is out at once.
pub fn revoke_token(db_path: &Path, serial: &str) -> Result<(), OpsError> {
    let serial: CardSerial = serial.parse()?;
    write(db_path, |tx, now| Ok(usecase::revoke_token(tx, now, &serial, OPERATOR).map(|_| ())?))
}

/// All tokens with their state (no key material).
pub fn list_tokens(db_path: &Path) -> Result<Vec<TokenInfo>, OpsError> {
    let now = Clock::system().now();
    read(db_path, |tx| Ok(auth::list_tokens(tx, now)?))
}

/// Opens the secret of `user`'s active token for a PSKC export (`bank-tools token export`),
/// with the master key from `source`; audited as `token_exported`.
pub fn export_token_with_key(db_path: &Path, source: &KeySource, user: &str) -> Result<auth::ExportedToken, OpsError> {
    let user: UserName = user.parse()?;
    let master = MasterKey::load(source, db_path)?;
    write(db_path, |tx, now| Ok(auth::export_token(tx, now, &master, &user, OPERATOR)?))
}

/// A token to import: its user, its serial and its secret as the export carried it.
#[derive(Debug)]
pub struct ImportToken {
    pub user: String,
    pub serial: String,
    pub secret: auth::TokenSecret,
}

/// Enrolls imported tokens (`bank-tools token import`), all in one transaction: either every
/// token of the file is enrolled or none is.
pub fn import_tokens_with_key(db_path: &Path, source: &KeySource, tokens: &[ImportToken]) -> Result<(), OpsError> {
    let parsed = tokens
        .iter()
        .map(|t| Ok((t.user.parse::<UserName>()?, t.serial.parse::<CardSerial>()?, &t.secret)))
        .collect::<Result<Vec<_>, OpsError>>()?;
    let master = MasterKey::load(source, db_path)?;
    write(db_path, |tx, now| {
        for (user, serial, secret) in &parsed {
            auth::import_token(tx, now, &master, user, serial, secret, OPERATOR)?;
        }
        Ok(())
    })
}

/// A user's accounts and balances.
pub fn accounts(db_path: &Path, user: &str) -> Result<Vec<Account>, OpsError> {
    let user: UserName = user.parse()?;
    read(db_path, |tx| Ok(usecase::accounts_of_user(tx, &user)?))
}

/// One customer account by number, with its owner's name; `None` if there is none.
pub fn account(db_path: &Path, number: &str) -> Result<Option<(Account, UserName)>, OpsError> {
    let number: AccountNumber = number.parse()?;
    read(db_path, |tx| Ok(usecase::account_with_owner(tx, &number)?))
}

/// The latest `limit` audit events, newest first.
pub fn recent_audit(db_path: &Path, limit: u32) -> Result<Vec<crate::audit::Event>, OpsError> {
    read(db_path, |tx| Ok(crate::audit::recent(tx, limit)?))
}

/// Walks the audit chain under the database's key; the report names the first bad row, if any.
pub fn verify_audit(db_path: &Path) -> Result<AuditReport, OpsError> {
    let keys = audit_keys(db_path)?;
    read(db_path, |tx| Ok(crate::audit::verify(tx, &keys)?))
}

/// Verifies the chain and returns its signed head (now, row count, last link), to be kept
/// away from the bank's host. Refused when the chain is broken.
pub fn audit_checkpoint(db_path: &Path) -> Result<Checkpoint, OpsError> {
    let keys = audit_keys(db_path)?;
    let now = Clock::system().now();
    read(db_path, |tx| {
        let report = crate::audit::verify(tx, &keys)?;
        if let Some(bad) = report.first_bad {
            return Err(OpsError::AuditBroken { id: bad.id, problem: bad.problem });
        }
        Ok(crate::audit::checkpoint(&keys, &report, now))
    })
}

/// Reads a checkpoint file written by `bank-tools audit checkpoint`.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, OpsError> {
    let bad = |problem: String| OpsError::CheckpointFile { path: path.display().to_string(), problem };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|_| bad(format!("not a {} file", crate::audit::CHECKPOINT_FORMAT)))
}

/// Verifies the chain and checks that it still holds the checkpoint's head at its row count:
/// the report, and what is wrong with the checkpoint (if anything).
pub fn verify_audit_checkpoint(
    db_path: &Path,
    cp: &Checkpoint,
) -> Result<(AuditReport, Result<(), CheckpointError>), OpsError> {
    let keys = audit_keys(db_path)?;
    read(db_path, |tx| {
        let report = crate::audit::verify(tx, &keys)?;
        let found = crate::audit::check_checkpoint(tx, &keys, &report, cp)?;
        Ok((report, found))
    })
}

/// Checks the books (balanced entries, balances = postings, no overdraft, totals = funding).
pub fn check_books(db_path: &Path) -> Result<Books, OpsError> {
    read(db_path, |tx| Ok(ledger::check_books(tx)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_functions_refuse_bad_input_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ops.sqlite3");
        add_user(&db, "alice").unwrap();
        assert!(matches!(add_user(&db, "alice"), Err(OpsError::Auth(AuthError::UserExists(_)))));
        assert!(matches!(add_user(&db, "Alice!"), Err(OpsError::Invalid(IdError { what: "user name", .. }))));
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
        assert!(matches!(
            enroll_token(&db, "psim", &seed, 0, "alice"),
            Err(OpsError::Invalid(IdError { what: "card serial", .. }))
        ));
        revoke_token(&db, "PSIM-1").unwrap();
        enroll_token(&db, "PSIM-2", &seed, 5, "alice").unwrap();
        assert!(matches!(unlock_token(&db, "PSIM-9"), Err(OpsError::Auth(AuthError::UnknownToken(_)))));
        assert!(matches!(unlock_token(&db, "PSIM-1"), Err(OpsError::Auth(AuthError::TokenRevoked(_)))));
        let tokens = list_tokens(&db).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!((tokens[1].serial.as_str(), tokens[1].next_counter), ("PSIM-2", 5));
        assert_eq!((tokens[0].status, tokens[1].status), (auth::TokenStatus::Revoked, auth::TokenStatus::Active));

        open_account(&db, "alice", "ACC-A", "EUR", None).unwrap();
        assert!(matches!(
            open_account(&db, "alice", "ACC-A", "EUR", None),
            Err(OpsError::Ledger(LedgerError::AccountExists(_)))
        ));
        assert!(matches!(
            open_account(&db, "alice", "ACC-B", "KWD", None),
            Err(OpsError::Ledger(LedgerError::UnsupportedCurrency(_)))
        ));
        assert!(matches!(open_account(&db, "alice", "ACC-B", "XYZ", None), Err(OpsError::Currency(_))));
        assert!(matches!(
            open_account(&db, "alice", "FUNDING-EUR", "EUR", None),
            Err(OpsError::Ledger(LedgerError::InvalidAccountNumber))
        ));
        assert!(matches!(
            open_account(&db, "nobody", "ACC-C", "EUR", None),
            Err(OpsError::Auth(AuthError::UnknownUser(_)))
        ));
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
    fn an_exported_token_imports_into_another_bank_at_its_counter() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.sqlite3"), dir.path().join("b.sqlite3"));
        let source = KeySource::env_or_beside_db();
        add_user(&a, "alice").unwrap();
        add_user(&a, "dave").unwrap();
        let seed = ChainKey::from_bytes([1; 32]);
        enroll_token(&a, "PSIM-1", &seed, 7, "alice").unwrap();
        let oath = paysim_otp::OathKey::from_bytes([4; 32]);
        enroll_oath_token_with_key(&a, &source, "OATH-1", &oath, "dave").unwrap();
        assert!(matches!(export_token_with_key(&a, &source, "nobody"), Err(OpsError::Auth(AuthError::UnknownUser(_)))));
        let alice = export_token_with_key(&a, &source, "alice").unwrap();
        // The bank holds ck_7, not ck_0: that is what leaves.
        match &alice.secret {
            auth::TokenSecret::Paysim { ck, next_counter, tx_version } => {
                assert_eq!((*next_counter, *tx_version), (7, TxVersion::V2));
                assert_eq!(ck.expose(), seed.advance(7).expose());
            }
            other => panic!("{other:?}"),
        }
        let dave = export_token_with_key(&a, &source, "dave").unwrap();
        assert!(matches!(&dave.secret, auth::TokenSecret::Oath { key } if key.expose() == &[4; 32]));
        assert_eq!(recent_audit(&a, 1).unwrap()[0].kind, "token_exported");
        // The debug form of an export shows no key.
        assert!(!format!("{alice:?}{dave:?}").contains("[4, 4"), "{dave:?}");

        add_user(&b, "alice").unwrap();
        add_user(&b, "dave").unwrap();
        let import = |user: &str, t: auth::ExportedToken| ImportToken {
            user: user.to_owned(),
            serial: t.serial.to_string(),
            secret: t.secret,
        };
        // All or nothing: the second token's unknown user keeps the first out too.
        let both = [import("alice", export_token_with_key(&a, &source, "alice").unwrap()), import("erin", dave)];
        assert!(matches!(import_tokens_with_key(&b, &source, &both), Err(OpsError::Auth(AuthError::UnknownUser(_)))));
        assert!(list_tokens(&b).unwrap().is_empty());
        let dave = export_token_with_key(&a, &source, "dave").unwrap();
        import_tokens_with_key(&b, &source, &[import("alice", alice), import("dave", dave)]).unwrap();
        let tokens = list_tokens(&b).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            (tokens[0].serial.as_str(), tokens[0].kind, tokens[0].next_counter),
            ("OATH-1", auth::TokenKind::Oath, 0)
        );
        assert_eq!(
            (tokens[1].serial.as_str(), tokens[1].kind, tokens[1].next_counter),
            ("PSIM-1", auth::TokenKind::Paysim, 7)
        );
        let again = export_token_with_key(&b, &source, "alice").unwrap();
        assert!(
            matches!(&again.secret, auth::TokenSecret::Paysim { ck, .. } if ck.expose() == seed.advance(7).expose())
        );
        assert!(verify_audit(&b).unwrap().is_intact());
    }
}

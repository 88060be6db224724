//! The audit log: an append-only table whose rows are chained under a key.
//!
//! Each row's link is an HMAC-SHA256 (RFC 2104) under the **audit key**, which is derived
//! from the master key with HKDF (label [`LINK_LABEL`]) and never stored:
//!
//! ```text
//! link_n = HMAC-SHA256(audit key, "PAYSIM-BANK-AUDIT-2" ‖ link_{n-1} ‖ id (8 BE) ‖ at (8 BE)
//!                      ‖ len ‖ kind ‖ len ‖ actor ‖ len ‖ detail ‖ client)    len = u32 BE
//! client = 0x00 (none) or 0x01 ‖ len ‖ address
//! link_0 = 32 zero bytes
//! ```
//!
//! Whoever can write the database file but does not hold the master key can delete or edit
//! rows, but cannot make a chain that [`verify`] accepts again, except by cutting its tail:
//! a shorter chain is still a valid chain. That is what a [`Checkpoint`] is for: a MAC'd
//! (row count, head) exported to a file kept elsewhere, which [`check_checkpoint`] compares
//! with the chain.
//!
//! **Older databases.** Before migration 0010 the rows were chained with an unkeyed SHA-256
//! (scheme 1, `SHA-256("PAYSIM-BANK-AUDIT-1" ‖ prev ‖ id ‖ at ‖ len ‖ kind ‖ len ‖ actor ‖
//! len ‖ detail)`). Those rows are kept as they are (a migration cannot compute a MAC, and
//! rewriting history would destroy the evidence it holds); the first append after the
//! migration writes an `audit_keyed` marker row in the keyed scheme whose link covers the last
//! unkeyed link, so the whole old segment is pinned by the key from then on. After the marker,
//! an unkeyed row is an error.
//!
//! **Scope.** Every append happens inside a [`Scope`] entered by whoever opened the unit of
//! work (`AppState::tx` for the server, the operator functions of `ops`): it carries
//! the keys and, for a request, the client's address, which each row records. An append with
//! no scope fails: a row without its MAC is never written.
//!
//! Roles append inside their own units of work, so an event is logged exactly when its effect
//! commits. Appending reads only the newest row (the primary key's last entry): O(log n), no
//! scan.

use std::cell::RefCell;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rusqlite::{params, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::db::Cached;
use crate::master_key::MasterKey;

/// HKDF label of the key the rows are chained under.
pub const LINK_LABEL: &[u8] = b"PAYSIM-BANK-AUDIT-LINK-1";
/// HKDF label of the key checkpoints are MAC'd under (and the key id is computed with).
pub const CHECKPOINT_LABEL: &[u8] = b"PAYSIM-BANK-AUDIT-CHECKPOINT-1";
/// The `format` of a checkpoint file.
pub const CHECKPOINT_FORMAT: &str = "paysim-audit-checkpoint-1";

const DOMAIN_V1: &[u8] = b"PAYSIM-BANK-AUDIT-1";
const DOMAIN_V2: &[u8] = b"PAYSIM-BANK-AUDIT-2";
const SCHEME_SHA256: i64 = 1;
const SCHEME_HMAC: i64 = 2;
/// The kind of the row that starts the keyed segment of a migrated log.
pub const MARKER_KIND: &str = "audit_keyed";

type HmacSha256 = Hmac<Sha256>;

fn keyed(key: &[u8; 32]) -> HmacSha256 {
    // HMAC takes a key of any length (RFC 2104, section 2): there is no error to give.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// The keys of the log, derived from the master key. `Debug` shows only the key id.
pub struct AuditKeys {
    link: Zeroizing<[u8; 32]>,
    checkpoint: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKeys").field("id", &self.id).finish_non_exhaustive()
    }
}

impl AuditKeys {
    pub fn derive(master: &MasterKey) -> Self {
        let link = master.derive(LINK_LABEL);
        let checkpoint = master.derive(CHECKPOINT_LABEL);
        let mut m = keyed(&checkpoint);
        m.update(b"PAYSIM-BANK-AUDIT-KEY-ID");
        let id = hex::encode(&m.finalize().into_bytes()[..8]);
        AuditKeys { link, checkpoint, id }
    }

    /// A public name of these keys (16 hex digits): a checkpoint names the keys it was made
    /// with, so one from another bank is refused by name before its MAC is even checked.
    pub fn key_id(&self) -> &str {
        &self.id
    }
}

/// What every append of one unit of work shares: the keys, and the client the work is for.
#[derive(Clone, Debug)]
pub struct Scope {
    keys: Arc<AuditKeys>,
    client: Option<String>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Leaves the scope (back to the one before, if any) when dropped.
#[must_use = "the scope ends when the guard is dropped"]
pub struct ScopeGuard {
    prev: Option<Scope>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        SCOPE.with(|s| *s.borrow_mut() = prev);
    }
}

impl Scope {
    /// `client` is the address of the request the work is for (`None`: operator or system).
    pub fn new(keys: Arc<AuditKeys>, client: Option<String>) -> Self {
        Scope { keys, client }
    }

    /// Makes this the scope of appends on this thread until the guard is dropped.
    pub fn enter(self) -> ScopeGuard {
        let prev = SCOPE.with(|s| s.borrow_mut().replace(self));
        ScopeGuard { prev }
    }
}

/// The client address of the current scope, for roles that keep it beside their own rows.
pub fn client() -> Option<String> {
    SCOPE.with(|s| s.borrow().as_ref().and_then(|s| s.client.clone()))
}

#[derive(Debug, thiserror::Error)]
#[error("an audit row was appended outside an audit scope (no key to chain it with)")]
struct NoScope;

/// An actor for the log: `user:<name>`, `operator` or `system`.
pub fn user_actor(name: &str) -> String {
    format!("user:{name}")
}

fn put_len(h: &mut impl Mac, part: &str) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    h.update(&len.to_be_bytes());
    h.update(part.as_bytes());
}

/// The content of one row, as both schemes chain it.
struct Content<'a> {
    id: i64,
    at: i64,
    kind: &'a str,
    actor: &'a str,
    detail: &'a str,
    client: Option<&'a str>,
}

fn link_v2(key: &[u8; 32], prev: &[u8], c: &Content<'_>) -> [u8; 32] {
    let mut h = keyed(key);
    h.update(DOMAIN_V2);
    h.update(prev);
    h.update(&c.id.to_be_bytes());
    h.update(&c.at.to_be_bytes());
    for part in [c.kind, c.actor, c.detail] {
        put_len(&mut h, part);
    }
    match c.client {
        None => h.update(&[0]),
        Some(a) => {
            h.update(&[1]);
            put_len(&mut h, a);
        }
    }
    h.finalize().into_bytes().into()
}

fn hash_v1(prev: &[u8], c: &Content<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN_V1);
    h.update(prev);
    h.update(c.id.to_be_bytes());
    h.update(c.at.to_be_bytes());
    for part in [c.kind, c.actor, c.detail] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        h.update(len.to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

const INSERT: &str = "INSERT INTO audit (id, at, kind, actor, detail, prev_hash, hash, scheme, client)
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

fn insert_keyed(tx: &Transaction<'_>, scope: &Scope, prev: &[u8], c: &Content<'_>) -> rusqlite::Result<[u8; 32]> {
    let link = link_v2(&scope.keys.link, prev, c);
    tx.exec(INSERT, params![c.id, c.at, c.kind, c.actor, c.detail, prev, link.as_slice(), SCHEME_HMAC, c.client])?;
    Ok(link)
}

/// Appends one event. `detail` is a JSON object and must never contain a secret. Fails
/// outside a [`Scope`].
pub fn append(
    tx: &Transaction<'_>,
    at: i64,
    kind: &str,
    actor: &str,
    detail: serde_json::Value,
) -> rusqlite::Result<i64> {
    let scope =
        SCOPE.with(|s| s.borrow().clone()).ok_or_else(|| rusqlite::Error::ToSqlConversionFailure(Box::new(NoScope)))?;
    let last: Option<(i64, Vec<u8>, i64)> = tx
        .row("SELECT id, hash, scheme FROM audit ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let (id, prev) = match last {
        Some((id, hash, scheme)) if scheme != SCHEME_HMAC => {
            // The first append after migration 0010: the keyed segment starts with a marker
            // whose link covers the last unkeyed one.
            let detail = serde_json::json!({ "unkeyed_rows": id, "unkeyed_head": hex::encode(&hash) }).to_string();
            let marker = Content { id: id + 1, at, kind: MARKER_KIND, actor: "system", detail: &detail, client: None };
            let link = insert_keyed(tx, &scope, &hash, &marker)?;
            (id + 2, link.to_vec())
        }
        Some((id, hash, _)) => (id + 1, hash),
        None => (1, vec![0u8; 32]),
    };
    let detail = detail.to_string();
    let c = Content { id, at, kind, actor, detail: &detail, client: scope.client.as_deref() };
    insert_keyed(tx, &scope, &prev, &c)?;
    Ok(id)
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Rows checked and found in order.
    pub rows: u64,
    /// Of those, rows of the old unkeyed scheme (a migrated database's first segment).
    pub unkeyed_rows: u64,
    /// The link of the last good row (hex): what a checkpoint records.
    pub head_hex: String,
    /// The first row that breaks the chain, if any.
    pub first_bad: Option<BadRow>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    pub id: i64,
    pub problem: &'static str,
}

impl AuditReport {
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }

    /// Whether the key pins the rows: false for an unkeyed log no keyed row has followed yet
    /// (its rows could be rewritten without the key).
    pub fn is_keyed(&self) -> bool {
        self.rows == 0 || self.rows > self.unkeyed_rows
    }
}

/// A row as read back: columns are read loosely, as a tampered row may hold a value of the
/// wrong type.
struct Stored {
    id: i64,
    at: Option<i64>,
    kind: Option<String>,
    actor: Option<String>,
    detail: Option<String>,
    prev_hash: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
    scheme: Option<i64>,
    client: Result<Option<String>, ()>,
}

/// Walks the whole chain in id order under `keys`.
pub fn verify(tx: &Transaction<'_>, keys: &AuditKeys) -> rusqlite::Result<AuditReport> {
    let mut stmt =
        tx.prepare("SELECT id, at, kind, actor, detail, prev_hash, hash, scheme, client FROM audit ORDER BY id")?;
    let mut rows = stmt.query([])?;
    let mut expect_id = 1i64;
    let mut prev = vec![0u8; 32];
    let mut prev_scheme: Option<i64> = None;
    let mut count = 0u64;
    let mut unkeyed = 0u64;
    while let Some(r) = rows.next()? {
        let s = Stored {
            id: r.get(0)?,
            at: r.get(1).ok(),
            kind: r.get(2).ok(),
            actor: r.get(3).ok(),
            detail: r.get(4).ok(),
            prev_hash: r.get(5).ok(),
            hash: r.get(6).ok(),
            scheme: r.get(7).ok(),
            client: r.get(8).map_err(|_| ()),
        };
        let unkeyed_before = unkeyed;
        let bad = |problem| {
            Ok(AuditReport {
                rows: count,
                unkeyed_rows: unkeyed_before,
                head_hex: hex::encode(&prev),
                first_bad: Some(BadRow { id: s.id, problem }),
            })
        };
        if s.id != expect_id {
            let problem = if s.id > expect_id { "rows are missing before this one" } else { "row id out of order" };
            return bad(problem);
        }
        let (Some(at), Some(kind), Some(actor), Some(detail), Some(prev_hash), Some(hash), Some(scheme), Ok(client)) =
            (s.at, &s.kind, &s.actor, &s.detail, &s.prev_hash, &s.hash, s.scheme, &s.client)
        else {
            return bad("a column has the wrong type");
        };
        if *prev_hash != prev {
            return bad("prev_hash does not match the previous row's link");
        }
        let c = Content { id: s.id, at, kind, actor, detail, client: client.as_deref() };
        let expected = match scheme {
            SCHEME_SHA256 => {
                if prev_scheme == Some(SCHEME_HMAC) {
                    return bad("an unkeyed row after the keyed segment began");
                }
                if client.is_some() {
                    return bad("an unkeyed row with a client address");
                }
                hash_v1(&prev, &c)
            }
            SCHEME_HMAC => {
                if prev_scheme == Some(SCHEME_SHA256) && kind != MARKER_KIND {
                    return bad("the keyed segment does not begin with its marker row");
                }
                link_v2(&keys.link, &prev, &c)
            }
            _ => return bad("unknown chaining scheme"),
        };
        if expected.as_slice() != hash.as_slice() {
            return bad(if scheme == SCHEME_HMAC {
                "the row's content does not match its MAC (altered, or another master key)"
            } else {
                "the row's content does not match its hash"
            });
        }
        if scheme == SCHEME_SHA256 {
            unkeyed += 1;
        }
        prev = hash.clone();
        prev_scheme = Some(scheme);
        expect_id += 1;
        count += 1;
    }
    Ok(AuditReport { rows: count, unkeyed_rows: unkeyed, head_hex: hex::encode(&prev), first_bad: None })
}

/// A signed head of the log: at `at`, the log had `rows` rows and the last one's link was
/// `head`. The MAC is an HMAC-SHA256 under the checkpoint key (HKDF label
/// [`CHECKPOINT_LABEL`]), so only the holder of the master key can make one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub format: String,
    /// [`AuditKeys::key_id`] of the bank that made it.
    pub key_id: String,
    /// Unix seconds.
    pub at: i64,
    pub rows: u64,
    /// Hex of the link of row `rows`.
    pub head: String,
    /// Hex of the MAC over the fields above.
    pub mac: String,
}

fn checkpoint_mac(keys: &AuditKeys, key_id: &str, at: i64, rows: u64, head: &str) -> [u8; 32] {
    let mut m = keyed(&keys.checkpoint);
    m.update(CHECKPOINT_FORMAT.as_bytes());
    for part in [key_id, head] {
        put_len(&mut m, part);
    }
    m.update(&at.to_be_bytes());
    m.update(&rows.to_be_bytes());
    m.finalize().into_bytes().into()
}

/// The checkpoint of a verified chain (`report` from [`verify`], intact).
pub fn checkpoint(keys: &AuditKeys, report: &AuditReport, at: i64) -> Checkpoint {
    let mac = checkpoint_mac(keys, &keys.id, at, report.rows, &report.head_hex);
    Checkpoint {
        format: CHECKPOINT_FORMAT.to_owned(),
        key_id: keys.id.clone(),
        at,
        rows: report.rows,
        head: report.head_hex.clone(),
        mac: hex::encode(mac),
    }
}

/// Why a checkpoint does not fit the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint file is not a {CHECKPOINT_FORMAT} file")]
    Format,
    #[error(
        "the checkpoint was made by another bank or under another master key (key id {found}, this bank's is {ours})"
    )]
    OtherKey { found: String, ours: String },
    #[error("the checkpoint's MAC does not match: it was altered, or not made by this bank")]
    BadMac,
    #[error("the log has {found} intact rows, fewer than the {expected} the checkpoint saw: its tail was deleted")]
    Truncated { expected: u64, found: u64 },
    #[error("row {row} is not the row the checkpoint saw: the log was rewritten up to there")]
    HeadDiffers { row: u64 },
}

/// Checks that `cp` is a checkpoint of this bank and that the log (walked by [`verify`] into
/// `report`, plus the link of row `cp.rows` read here) still holds its head at its row count.
pub fn check_checkpoint(
    tx: &Transaction<'_>,
    keys: &AuditKeys,
    report: &AuditReport,
    cp: &Checkpoint,
) -> Result<Result<(), CheckpointError>, rusqlite::Error> {
    if cp.format != CHECKPOINT_FORMAT {
        return Ok(Err(CheckpointError::Format));
    }
    if cp.key_id != keys.id {
        return Ok(Err(CheckpointError::OtherKey { found: cp.key_id.clone(), ours: keys.id.clone() }));
    }
    use subtle::ConstantTimeEq;
    let mac = checkpoint_mac(keys, &cp.key_id, cp.at, cp.rows, &cp.head);
    let given = hex::decode(&cp.mac).unwrap_or_default();
    if !bool::from(mac.as_slice().ct_eq(&given)) {
        return Ok(Err(CheckpointError::BadMac));
    }
    if report.rows < cp.rows {
        return Ok(Err(CheckpointError::Truncated { expected: cp.rows, found: report.rows }));
    }
    let head: Option<Vec<u8>> = match i64::try_from(cp.rows) {
        Ok(0) => Some(vec![0u8; 32]),
        Ok(id) => tx.row("SELECT hash FROM audit WHERE id = ?1", [id], |r| r.get(0)).optional()?,
        Err(_) => None,
    };
    if head.map(hex::encode).as_deref() != Some(cp.head.as_str()) {
        return Ok(Err(CheckpointError::HeadDiffers { row: cp.rows }));
    }
    Ok(Ok(()))
}

/// One audit event as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub actor: String,
    /// JSON object.
    pub detail: String,
    /// The address of the client whose request wrote the row, if a request did.
    pub client: Option<String>,
}

/// The latest `limit` events, newest first.
pub fn recent(tx: &Transaction<'_>, limit: u32) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = tx.prepare("SELECT id, at, kind, actor, detail, client FROM audit ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([limit], |r| {
        Ok(Event {
            id: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            actor: r.get(3)?,
            detail: r.get(4)?,
            client: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// How many events of `kind` mention `needle` in their detail (tests and operators).
pub fn count(tx: &Transaction<'_>, kind: &str, needle: &str) -> rusqlite::Result<i64> {
    tx.row("SELECT count(*) FROM audit WHERE kind = ?1 AND instr(detail, ?2) > 0", params![kind, needle], |r| r.get(0))
}

/// A scope for tests: fixed keys, no client.
#[cfg(test)]
pub(crate) fn test_scope() -> ScopeGuard {
    Scope::new(Arc::new(AuditKeys::derive(&MasterKey::from_bytes([7; 32]))), None).enter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use serde_json::json;

    fn fresh() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite3");
        let mut c = db::open_connection(&path).unwrap();
        db::migrate(&mut c, &path).unwrap();
        (dir, c)
    }

    fn keys(b: u8) -> AuditKeys {
        AuditKeys::derive(&MasterKey::from_bytes([b; 32]))
    }

    fn verified(c: &mut rusqlite::Connection, k: &AuditKeys) -> AuditReport {
        let tx = c.transaction().unwrap();
        verify(&tx, k).unwrap()
    }

    #[test]
    fn an_append_outside_a_scope_fails_and_writes_nothing() {
        let (_d, mut c) = fresh();
        let tx = c.transaction().unwrap();
        assert!(append(&tx, 1, "test", "system", json!({})).is_err());
        assert_eq!(verify(&tx, &keys(7)).unwrap().rows, 0);
    }

    #[test]
    fn chain_verifies_and_names_the_first_tampered_row() {
        let (_d, mut c) = fresh();
        let _s = test_scope();
        let tx = c.transaction().unwrap();
        for i in 0..10 {
            append(&tx, 1000 + i, "test", "system", json!({ "i": i })).unwrap();
        }
        tx.commit().unwrap();
        let ok = verified(&mut c, &keys(7));
        assert!(ok.is_intact() && ok.is_keyed());
        assert_eq!(ok.rows, 10);
        // Another key does not verify it.
        assert_eq!(verified(&mut c, &keys(8)).first_bad.map(|b| b.id), Some(1));

        // SQL refuses edits...
        assert!(c.execute("UPDATE audit SET detail = '{}' WHERE id = 4", []).is_err());
        assert!(c.execute("DELETE FROM audit WHERE id = 4", []).is_err());
        // ...so the attacker drops the trigger first; the chain still shows it.
        c.execute_batch("DROP TRIGGER audit_no_update; UPDATE audit SET detail = '{\"i\":99}' WHERE id = 4;").unwrap();
        let r = verified(&mut c, &keys(7));
        assert_eq!(r.first_bad.as_ref().map(|b| b.id), Some(4), "{r:?}");
        assert_eq!(r.rows, 3);
    }

    /// Without the key, rewriting a row and recomputing every link after it the way the old
    /// unkeyed chain allowed is found.
    #[test]
    fn a_rewritten_chain_without_the_key_is_found() {
        let (_d, mut c) = fresh();
        let _s = test_scope();
        let tx = c.transaction().unwrap();
        for i in 0..5 {
            append(&tx, i, "transfer_executed", "user:alice", json!({ "amount_minor": 100 })).unwrap();
        }
        tx.commit().unwrap();
        c.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
        // The attacker's best guess: a key of their own, every link recomputed from row 3 on.
        let theirs = keys(9);
        let tx = c.transaction().unwrap();
        let mut prev: Vec<u8> = tx.query_row("SELECT hash FROM audit WHERE id = 2", [], |r| r.get(0)).unwrap();
        for id in 3..=5i64 {
            let (at, kind, actor): (i64, String, String) = tx
                .query_row("SELECT at, kind, actor FROM audit WHERE id = ?1", [id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
            let detail = "{\"amount_minor\":1}";
            let link =
                link_v2(&theirs.link, &prev, &Content { id, at, kind: &kind, actor: &actor, detail, client: None });
            tx.execute(
                "UPDATE audit SET detail = ?1, prev_hash = ?2, hash = ?3 WHERE id = ?4",
                params![detail, prev, link.as_slice(), id],
            )
            .unwrap();
            prev = link.to_vec();
        }
        tx.commit().unwrap();
        assert_eq!(verified(&mut c, &keys(7)).first_bad.map(|b| b.id), Some(3));
    }

    #[test]
    fn a_deleted_row_is_reported() {
        let (_d, mut c) = fresh();
        let _s = test_scope();
        let tx = c.transaction().unwrap();
        for i in 0..5 {
            append(&tx, i, "test", "system", json!({})).unwrap();
        }
        tx.commit().unwrap();
        c.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2;").unwrap();
        assert_eq!(verified(&mut c, &keys(7)).first_bad.map(|b| b.id), Some(3));
    }

    #[test]
    fn a_checkpoint_finds_a_cut_tail_and_refuses_another_bank() {
        let (_d, mut c) = fresh();
        let _s = test_scope();
        let k = keys(7);
        let tx = c.transaction().unwrap();
        for i in 0..6 {
            append(&tx, i, "test", "system", json!({ "i": i })).unwrap();
        }
        tx.commit().unwrap();
        let cp = checkpoint(&k, &verified(&mut c, &k), 1234);
        assert_eq!(cp.rows, 6);
        let check = |c: &mut rusqlite::Connection, cp: &Checkpoint, k: &AuditKeys| {
            let tx = c.transaction().unwrap();
            let report = verify(&tx, k).unwrap();
            check_checkpoint(&tx, k, &report, cp).unwrap()
        };
        assert_eq!(check(&mut c, &cp, &k), Ok(()));
        // The log grows: the checkpoint still fits.
        let tx = c.transaction().unwrap();
        append(&tx, 7, "test", "system", json!({})).unwrap();
        tx.commit().unwrap();
        assert_eq!(check(&mut c, &cp, &k), Ok(()));
        // Another bank's keys, an edited checkpoint.
        assert!(matches!(check(&mut c, &cp, &keys(8)), Err(CheckpointError::OtherKey { .. })));
        let forged = Checkpoint { rows: 2, ..cp.clone() };
        assert_eq!(check(&mut c, &forged, &k), Err(CheckpointError::BadMac));
        // The tail cut: the chain alone still verifies, the checkpoint does not.
        c.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id >= 5;").unwrap();
        assert!(verified(&mut c, &k).is_intact());
        assert_eq!(check(&mut c, &cp, &k), Err(CheckpointError::Truncated { expected: 6, found: 4 }));
    }

    /// A database chained before migration 0010: its rows stay, the first keyed append adds the
    /// marker, and the old rows are pinned by the key from then on.
    #[test]
    fn an_unkeyed_log_is_continued_by_a_keyed_segment_that_pins_it() {
        let (_d, mut c) = fresh();
        let tx = c.transaction().unwrap();
        let mut prev = vec![0u8; 32];
        for id in 1..=3i64 {
            let content = Content { id, at: id, kind: "user_added", actor: "operator", detail: "{}", client: None };
            let hash = hash_v1(&prev, &content);
            tx.execute(
                "INSERT INTO audit (id, at, kind, actor, detail, prev_hash, hash, scheme) VALUES (?1, ?1, 'user_added', 'operator', '{}', ?2, ?3, 1)",
                params![id, prev, hash.as_slice()],
            )
            .unwrap();
            prev = hash.to_vec();
        }
        tx.commit().unwrap();
        let k = keys(7);
        let before = verified(&mut c, &k);
        assert!(before.is_intact() && !before.is_keyed(), "{before:?}");
        let _s = test_scope();
        let tx = c.transaction().unwrap();
        append(&tx, 10, "test", "system", json!({})).unwrap();
        append(&tx, 11, "test", "system", json!({})).unwrap();
        tx.commit().unwrap();
        let after = verified(&mut c, &k);
        assert!(after.is_intact() && after.is_keyed(), "{after:?}");
        assert_eq!((after.rows, after.unkeyed_rows), (6, 3));
        let tx = c.transaction().unwrap();
        let kind: String = tx.query_row("SELECT kind FROM audit WHERE id = 4", [], |r| r.get(0)).unwrap();
        assert_eq!(kind, MARKER_KIND);
        tx.finish().unwrap();
        // Rewriting an old row and its unkeyed successors is found at the marker.
        c.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
        let tx = c.transaction().unwrap();
        let mut prev = vec![0u8; 32];
        for id in 1..=3i64 {
            let content = Content { id, at: id, kind: "user_added", actor: "mallory", detail: "{}", client: None };
            let hash = hash_v1(&prev, &content);
            tx.execute(
                "UPDATE audit SET actor = 'mallory', prev_hash = ?1, hash = ?2 WHERE id = ?3",
                params![prev, hash.as_slice(), id],
            )
            .unwrap();
            prev = hash.to_vec();
        }
        tx.commit().unwrap();
        assert_eq!(verified(&mut c, &k).first_bad.map(|b| b.id), Some(4));
    }
}

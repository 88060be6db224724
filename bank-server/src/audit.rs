//! The audit log: an append-only table whose rows are hash-chained.
//!
//! ```text
//! hash_n = SHA-256("PAYSIM-BANK-AUDIT-1" ‖ hash_{n-1} ‖ id (8 BE) ‖ at (8 BE)
//!                  ‖ len ‖ kind ‖ len ‖ actor ‖ len ‖ detail)        len = u32 BE
//! hash_0 = 32 zero bytes
//! ```
//!
//! Auth and ledger append to it inside their own transactions, so an event is logged exactly
//! when its effect commits. [`verify`] walks the chain and names the first row that does not fit.

use crate::db::Cached;
use rusqlite::{params, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"PAYSIM-BANK-AUDIT-1";

/// An actor for the log: `user:<name>`, `operator` or `system`.
pub fn user_actor(name: &str) -> String {
    format!("user:{name}")
}

fn row_hash(prev: &[u8], id: i64, at: i64, kind: &str, actor: &str, detail: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(id.to_be_bytes());
    h.update(at.to_be_bytes());
    for part in [kind, actor, detail] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        h.update(len.to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// Appends one event. `detail` is a JSON object and must never contain a secret.
pub fn append(
    tx: &Transaction<'_>,
    at: i64,
    kind: &str,
    actor: &str,
    detail: serde_json::Value,
) -> rusqlite::Result<i64> {
    let last: Option<(i64, Vec<u8>)> =
        tx.row("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    let (id, prev) = match last {
        Some((id, hash)) => (id + 1, hash),
        None => (1, vec![0u8; 32]),
    };
    let detail = detail.to_string();
    let hash = row_hash(&prev, id, at, kind, actor, &detail);
    tx.exec(
        "INSERT INTO audit (id, at, kind, actor, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, at, kind, actor, detail, prev, hash.as_slice()],
    )?;
    Ok(id)
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Rows checked.
    pub rows: u64,
    /// The hash of the last row (hex), to write down and compare later: it pins the whole log.
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
}

/// Walks the whole chain in id order.
pub fn verify(tx: &Transaction<'_>) -> rusqlite::Result<AuditReport> {
    let mut stmt = tx.prepare("SELECT id, at, kind, actor, detail, prev_hash, hash FROM audit ORDER BY id")?;
    let mut rows = stmt.query([])?;
    let mut expect_id = 1i64;
    let mut prev = vec![0u8; 32];
    let mut count = 0u64;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let bad = |problem| {
            Ok(AuditReport { rows: count, head_hex: hex::encode(&prev), first_bad: Some(BadRow { id, problem }) })
        };
        // Columns are read loosely: a tampered row may hold a value of the wrong type.
        let at: Option<i64> = r.get(1).ok();
        let kind: Option<String> = r.get(2).ok();
        let actor: Option<String> = r.get(3).ok();
        let detail: Option<String> = r.get(4).ok();
        let prev_hash: Option<Vec<u8>> = r.get(5).ok();
        let hash: Option<Vec<u8>> = r.get(6).ok();
        if id != expect_id {
            let problem = if id > expect_id { "rows are missing before this one" } else { "row id out of order" };
            return bad(problem);
        }
        let (Some(at), Some(kind), Some(actor), Some(detail), Some(prev_hash), Some(hash)) =
            (at, kind, actor, detail, prev_hash, hash)
        else {
            return bad("a column has the wrong type");
        };
        if prev_hash != prev {
            return bad("prev_hash does not match the previous row's hash");
        }
        if row_hash(&prev, id, at, &kind, &actor, &detail).as_slice() != hash.as_slice() {
            return bad("the row's content does not match its hash");
        }
        prev = hash;
        expect_id += 1;
        count += 1;
    }
    Ok(AuditReport { rows: count, head_hex: hex::encode(&prev), first_bad: None })
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
}

/// The latest `limit` events, newest first.
pub fn recent(tx: &Transaction<'_>, limit: u32) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = tx.prepare("SELECT id, at, kind, actor, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt.query_map([limit], |r| {
        Ok(Event { id: r.get(0)?, at: r.get(1)?, kind: r.get(2)?, actor: r.get(3)?, detail: r.get(4)? })
    })?;
    rows.collect()
}

/// How many events of `kind` mention `needle` in their detail (tests and operators).
pub fn count(tx: &Transaction<'_>, kind: &str, needle: &str) -> rusqlite::Result<i64> {
    tx.row("SELECT count(*) FROM audit WHERE kind = ?1 AND instr(detail, ?2) > 0", params![kind, needle], |r| r.get(0))
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

    #[test]
    fn chain_verifies_and_names_the_first_tampered_row() {
        let (_d, mut c) = fresh();
        let tx = c.transaction().unwrap();
        for i in 0..10 {
            append(&tx, 1000 + i, "test", "system", json!({ "i": i })).unwrap();
        }
        tx.commit().unwrap();
        let tx = c.transaction().unwrap();
        let ok = verify(&tx).unwrap();
        assert!(ok.is_intact());
        assert_eq!(ok.rows, 10);
        tx.finish().unwrap();

        // SQL refuses edits...
        assert!(c.execute("UPDATE audit SET detail = '{}' WHERE id = 4", []).is_err());
        assert!(c.execute("DELETE FROM audit WHERE id = 4", []).is_err());
        // ...so the attacker drops the trigger first; the chain still shows it.
        c.execute_batch("DROP TRIGGER audit_no_update; UPDATE audit SET detail = '{\"i\":99}' WHERE id = 4;").unwrap();
        let tx = c.transaction().unwrap();
        let r = verify(&tx).unwrap();
        assert_eq!(r.first_bad.as_ref().map(|b| b.id), Some(4), "{r:?}");
        assert_eq!(r.rows, 3);
    }

    #[test]
    fn a_deleted_row_is_reported() {
        let (_d, mut c) = fresh();
        let tx = c.transaction().unwrap();
        for i in 0..5 {
            append(&tx, i, "test", "system", json!({})).unwrap();
        }
        tx.commit().unwrap();
        c.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2;").unwrap();
        let tx = c.transaction().unwrap();
        assert_eq!(verify(&tx).unwrap().first_bad.map(|b| b.id), Some(3));
    }
}

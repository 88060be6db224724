//! Users: a name (never changed, never reused) and the id the other roles refer to.

use paysim_wire::UserName;
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use super::AuthError;
use crate::audit;
use crate::db::{parse_column, Cached};

/// Adds a user. Returns its id.
pub fn add_user(tx: &Transaction<'_>, now: i64, name: &UserName, actor: &str) -> Result<i64, AuthError> {
    if user_id(tx, name)?.is_some() {
        return Err(AuthError::UserExists(name.clone()));
    }
    tx.exec("INSERT INTO users (name, created_at) VALUES (?1, ?2)", params![name.as_str(), now])?;
    let id = tx.last_insert_rowid();
    audit::append(tx, now, "user_added", actor, json!({ "user": name }))?;
    Ok(id)
}

pub fn user_id(tx: &Transaction<'_>, name: &UserName) -> Result<Option<i64>, AuthError> {
    Ok(tx.row("SELECT id FROM users WHERE name = ?1", [name.as_str()], |r| r.get(0)).optional()?)
}

pub fn user_name(tx: &Transaction<'_>, id: i64) -> Result<Option<UserName>, AuthError> {
    Ok(tx
        .row("SELECT name FROM users WHERE id = ?1", [id], |r| parse_column(r, 0, "user name", |t| t.parse().ok()))
        .optional()?)
}

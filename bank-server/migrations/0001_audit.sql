-- Version 1: the audit log (src/audit.rs).
--
-- Append-only: every row is hash-chained to the row before it
--   hash = SHA-256("PAYSIM-BANK-AUDIT-1" || prev_hash || id || at || kind || actor || detail)
-- (see audit.rs for the exact encoding). The triggers refuse UPDATE and DELETE through SQL;
-- someone who edits the file by other means breaks the chain, and `verify_audit` names the
-- first row that no longer fits.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,          -- 1, 2, 3, ... without gaps
    at        INTEGER NOT NULL,             -- Unix seconds
    kind      TEXT    NOT NULL,             -- e.g. otp_check, token_locked, transfer_executed
    actor     TEXT    NOT NULL,             -- user:<name>, operator, system
    detail    TEXT    NOT NULL,             -- JSON object; never a secret
    prev_hash BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;

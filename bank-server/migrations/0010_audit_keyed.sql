-- Version 10: a keyed audit chain, client addresses, sessions' clients, the pending cap.
--
-- audit (src/audit.rs): rows are now chained with HMAC-SHA256 under a key derived from the
-- master key (scheme 2). The rows written before this migration keep their unkeyed SHA-256
-- links (scheme 1, the column's default): SQL cannot compute a MAC, and rewriting them would
-- erase what they prove. The first append afterwards writes an `audit_keyed` marker row whose
-- keyed link covers the last unkeyed link, so the old segment is pinned by the key too.
-- `client` is the address of the request that wrote the row (NULL for the operator).
ALTER TABLE audit ADD COLUMN scheme INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN client TEXT;

-- sessions (src/session.rs): the address the session was started from, for the audit rows
-- written when it ends (a session found expired is often found by another client's request).
ALTER TABLE sessions ADD COLUMN client TEXT;

-- transfers (src/ledger/transfers.rs): counting a user's open pending transfers walks only
-- those rows.
CREATE INDEX transfers_pending ON transfers(user_id, created_at) WHERE status = 'pending';

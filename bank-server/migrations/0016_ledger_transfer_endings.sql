-- Version 16: a transfer that can no longer be confirmed ends (issue 11).
--
-- transfers (src/ledger/transfers.rs): two new final statuses besides 'executed' and
-- 'rejected', neither of which moves money:
--   'failed'  a code was refused (a challenge is single use, so the transfer it was for ends),
--             reason 'code_refused';
--   'expired' its last challenge expired with no accepted code, reason 'challenge_expired'.
-- `expires_at` is when the newest challenge issued for a pending transfer expires; a pending
-- transfer past it is shown as expired at once and written so by the next request that meets
-- it or by the pruner, which walks `transfers_expiry` (pending rows only) in small batches.
--
-- A CHECK constraint cannot be changed in place in SQLite, so the table is built again with
-- the same rows and ids (the journal refers to them; foreign keys are checked at COMMIT).

PRAGMA defer_foreign_keys = ON;

CREATE TABLE transfers_v16 (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    client_id    TEXT    NOT NULL,
    from_account INTEGER NOT NULL REFERENCES accounts(id),
    to_account   INTEGER NOT NULL REFERENCES accounts(id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL CHECK (length(currency) = 3),
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'executed', 'rejected', 'failed', 'expired')),
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    executed_at  INTEGER,
    payee_name   TEXT,
    payee_check  TEXT
        CHECK (payee_check IS NULL OR payee_check IN ('match', 'close_match', 'no_match', 'unavailable')),
    expires_at   INTEGER,
    CHECK (status <> 'pending' OR expires_at IS NOT NULL),
    UNIQUE (user_id, client_id)
);

-- A pending transfer's expiry is that of its newest open challenge; one without any open
-- challenge can never be confirmed and expires at once (its creation time).
INSERT INTO transfers_v16 (id, user_id, client_id, from_account, to_account, amount, currency, status, reason,
                           created_at, executed_at, payee_name, payee_check, expires_at)
SELECT t.id, t.user_id, t.client_id, t.from_account, t.to_account, t.amount, t.currency, t.status, t.reason,
       t.created_at, t.executed_at, t.payee_name, t.payee_check,
       CASE WHEN t.status = 'pending' THEN
           coalesce((SELECT max(c.expires_at) FROM challenges c JOIN tokens k ON k.id = c.token_id
                     WHERE c.kind = 'transfer' AND c.transfer_id = t.client_id AND k.user_id = t.user_id),
                    t.created_at)
       END
FROM transfers t;

DROP INDEX transfers_pending;
DROP TABLE transfers;
ALTER TABLE transfers_v16 RENAME TO transfers;

-- Counting a user's open pending transfers walks only those rows (as in version 10).
CREATE INDEX transfers_pending ON transfers(user_id, created_at) WHERE status = 'pending';
-- The pruner of expired pending transfers.
CREATE INDEX transfers_expiry ON transfers(expires_at) WHERE status = 'pending';

CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;

-- Only the status (with its reason and time) and, while pending, the expiry may change; and
-- only away from 'pending'.
CREATE TRIGGER transfers_status_only BEFORE UPDATE ON transfers
WHEN OLD.status <> 'pending'
  OR NEW.user_id IS NOT OLD.user_id OR NEW.client_id IS NOT OLD.client_id
  OR NEW.from_account IS NOT OLD.from_account OR NEW.to_account IS NOT OLD.to_account
  OR NEW.amount IS NOT OLD.amount OR NEW.currency IS NOT OLD.currency
  OR NEW.created_at IS NOT OLD.created_at
  OR NEW.payee_name IS NOT OLD.payee_name OR NEW.payee_check IS NOT OLD.payee_check
BEGIN SELECT RAISE(ABORT, 'a transfer only moves from pending to executed, rejected, failed or expired'); END;

-- Version 3: the ledger (src/ledger/).
--
-- Double entry: every journal entry has postings that sum to zero. A customer account's
-- balance equals the sum of its postings and never goes below zero. Money enters only through
-- a funding entry against the bank's per-currency funding account (kind 'funding', the only
-- kind allowed below zero), so the customers' total per currency changes only by funding.

CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    number     TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL CHECK (kind IN ('customer', 'funding')),
    user_id    INTEGER REFERENCES users(id),
    currency   TEXT    NOT NULL CHECK (length(currency) = 3),
    balance    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    CHECK (kind = 'funding' OR balance >= 0),
    CHECK ((kind = 'customer') = (user_id IS NOT NULL))
);

-- Transfers as the customer asked for them. The client's transfer id is unique per user
-- (idempotency). Only the status may change, and only away from 'pending'.
CREATE TABLE transfers (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    client_id    TEXT    NOT NULL,
    from_account INTEGER NOT NULL REFERENCES accounts(id),
    to_account   INTEGER NOT NULL REFERENCES accounts(id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT    NOT NULL CHECK (length(currency) = 3),
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'executed', 'rejected')),
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    executed_at  INTEGER,
    UNIQUE (user_id, client_id)
);

CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;

CREATE TRIGGER transfers_status_only BEFORE UPDATE ON transfers
WHEN OLD.status <> 'pending'
  OR NEW.user_id IS NOT OLD.user_id OR NEW.client_id IS NOT OLD.client_id
  OR NEW.from_account IS NOT OLD.from_account OR NEW.to_account IS NOT OLD.to_account
  OR NEW.amount IS NOT OLD.amount OR NEW.currency IS NOT OLD.currency
  OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'a transfer only moves from pending to executed or rejected'); END;

-- One entry per money movement; a transfer has at most one (UNIQUE), so it cannot execute twice.
CREATE TABLE journal (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('transfer', 'funding')),
    transfer_id INTEGER UNIQUE REFERENCES transfers(id),
    currency    TEXT    NOT NULL,
    memo        TEXT    NOT NULL DEFAULT '',
    at          INTEGER NOT NULL,
    CHECK ((kind = 'transfer') = (transfer_id IS NOT NULL))
);

CREATE TABLE postings (
    id         INTEGER PRIMARY KEY,
    journal_id INTEGER NOT NULL REFERENCES journal(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount     INTEGER NOT NULL CHECK (amount <> 0)
);
CREATE INDEX postings_account ON postings(account_id);

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;

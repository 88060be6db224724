-- Version 2: authentication (src/auth/).

-- People who can log in. A name never changes and is never reused.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- One hardware token (card) per row. The chain key ck_{next_counter} is stored only sealed with
-- AES-256-GCM under the master key, which lives outside the database; the associated data
-- binds the ciphertext to (token id, serial, next_counter), so rows cannot be swapped and the
-- counter cannot be moved without the key.
CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    serial       TEXT    NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    status       TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    next_counter INTEGER NOT NULL CHECK (next_counter >= 0),
    ck_nonce     BLOB    NOT NULL,
    ck_sealed    BLOB    NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,   -- consecutive failed OTP checks
    lock_count   INTEGER NOT NULL DEFAULT 0,   -- locks since the last success (escalation)
    locked_until INTEGER NOT NULL DEFAULT 0,   -- Unix seconds; 0 = not locked
    created_at   INTEGER NOT NULL
);

-- A user has at most one active token: a login challenge names exactly one chain.
CREATE UNIQUE INDEX tokens_one_active_per_user ON tokens(user_id) WHERE status = 'active';

-- Outstanding challenges. A row is deleted when a submission reaches the OTP check (single
-- use) or after it expired.
CREATE TABLE challenges (
    id         TEXT    PRIMARY KEY,            -- 32 hex digits, random
    token_id   INTEGER NOT NULL REFERENCES tokens(id),
    purpose    TEXT    NOT NULL,               -- 'login' or 'transfer:<ledger row id>'
    binding    TEXT,                           -- the session it was issued to, if any
    challenge  BLOB    NOT NULL CHECK (length(challenge) = 32),
    expires_at INTEGER NOT NULL
);
CREATE INDEX challenges_expiry ON challenges(expires_at);

-- Small facts: 'key_check' = a value sealed under the master key, so that starting with the
-- wrong key is refused at once instead of failing every login.
CREATE TABLE auth_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

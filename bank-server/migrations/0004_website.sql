-- Version 4: sessions (src/session.rs).
--
-- The table holds SHA-256 of each session token, never the token: a dump of the database
-- cannot be used to take over a session.
CREATE TABLE sessions (
    id_hash    BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    kind       TEXT    NOT NULL CHECK (kind IN ('web', 'api')),
    user_id    INTEGER REFERENCES users(id),  -- NULL: a website visitor before login
    csrf       TEXT    NOT NULL,              -- the token every form of this session carries
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL               -- absolute end (12 h after login)
);
CREATE INDEX sessions_expiry ON sessions(expires_at);

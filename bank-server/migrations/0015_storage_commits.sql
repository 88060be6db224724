-- The writer's batch count: each batch adds one in its own transaction, and the server writes
-- the number into <db>.running after the COMMIT (bank-server/src/running.rs). A database whose
-- count is behind that mark has lost acknowledged work (a removed -wal, an older copy) and the
-- server refuses to start on it.
CREATE TABLE storage_commits (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL CHECK (seq >= 0)
);
INSERT INTO storage_commits (id, seq) VALUES (1, 0);

-- Version 8: authentication (src/auth/): a challenge's purpose as a kind and a transfer id.
--
-- Until now `purpose` held 'login' or 'transfer:<ledger row id>', and the cap on open challenges
-- per kind matched it with LIKE. Now `kind` is 'login' or 'transfer', and a transfer challenge
-- names its transfer by the client's transfer id (`transfer_id`, unique per user in the ledger;
-- the challenge's token says whose). The ledger's row id no longer leaves the ledger.
--
-- Existing transfer challenges (at most two minutes old) are kept: their row id is looked up
-- once here. A challenge whose transfer cannot be found could never be used and is dropped.

CREATE TABLE challenges_v8 (
    id          TEXT    PRIMARY KEY,            -- 32 hex digits, random
    token_id    INTEGER NOT NULL REFERENCES tokens(id),
    kind        TEXT    NOT NULL CHECK (kind IN ('login', 'transfer')),
    transfer_id TEXT,                           -- the client's transfer id, for kind 'transfer'
    binding     TEXT,                           -- the session it was issued to, if any
    challenge   BLOB    NOT NULL CHECK (length(challenge) = 32),
    expires_at  INTEGER NOT NULL,
    CHECK ((kind = 'transfer') = (transfer_id IS NOT NULL))
);

INSERT INTO challenges_v8 (id, token_id, kind, transfer_id, binding, challenge, expires_at)
SELECT id, token_id, 'login', NULL, binding, challenge, expires_at
FROM challenges WHERE purpose = 'login';

INSERT INTO challenges_v8 (id, token_id, kind, transfer_id, binding, challenge, expires_at)
SELECT c.id, c.token_id, 'transfer', t.client_id, c.binding, c.challenge, c.expires_at
FROM challenges c JOIN transfers t ON t.id = CAST(substr(c.purpose, 10) AS INTEGER)
WHERE c.purpose LIKE 'transfer:%';

DROP INDEX challenges_expiry;
DROP INDEX challenges_token;
DROP TABLE challenges;
ALTER TABLE challenges_v8 RENAME TO challenges;
CREATE INDEX challenges_expiry ON challenges(expires_at);
CREATE INDEX challenges_token ON challenges(token_id, kind);

-- Version 5: authentication (src/auth/): find a token's open challenges quickly.
--
-- Anyone who knows a user name can ask for login challenges, so the number of rows a token may
-- hold is capped (auth::MAX_LOGIN_CHALLENGES, auth::MAX_TRANSFER_CHALLENGES): issuing one more
-- deletes that token's oldest of the same kind. This index serves that count and delete.
CREATE INDEX challenges_token ON challenges(token_id, purpose);

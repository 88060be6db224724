-- Version 9: sessions (src/session.rs): prune idle sessions by index.
--
-- Every session start deletes a bounded batch of ended sessions: those past their absolute
-- expiry (`sessions_expiry`) and, apart, those idle too long. The second needs an index on
-- `last_seen`; without it each login scanned the whole table. `sessions_user` serves the count
-- of visitor sessions (user_id IS NULL) and ending all sessions of a user.
CREATE INDEX sessions_last_seen ON sessions(last_seen);
CREATE INDEX sessions_user ON sessions(user_id);

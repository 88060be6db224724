-- Version 6: sessions (src/session.rs): find visitor sessions (not logged in) quickly.
--
-- Anyone can start a visitor session by opening /login, so the website keeps at most
-- Config::max_visitor_sessions of them and deletes the oldest beyond that; this partial index
-- serves that count and delete.
CREATE INDEX sessions_visitors ON sessions(created_at) WHERE user_id IS NULL;

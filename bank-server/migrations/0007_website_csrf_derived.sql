-- Version 7: sessions (src/session.rs): CSRF tokens are no longer stored.
--
-- A session's CSRF token is now derived from its session token (src/session.rs), which
-- the table keeps only as SHA-256, so a copy of the database cannot be used to forge a form.
-- The `csrf` column stays and is left empty; this empties it for sessions opened before. Those
-- sessions now have a derived token, so a form drawn before the upgrade is refused once (403).
UPDATE sessions SET csrf = '';

-- Version 11: transaction context version 2 and verification of payee (issue 13).
--
-- tokens (src/auth/tokens.rs): the transaction-context version the card announced when it was
-- personalized and enrolled (`DF08`, docs/protocol.md). Tokens enrolled before this migration
-- came from applet 1.0 cards, which sign version 1 only: they become version 1. The bank
-- takes transfers only from version-2 tokens (`card_too_old` otherwise); logins from both.
ALTER TABLE tokens ADD COLUMN tx_version INTEGER NOT NULL DEFAULT 1 CHECK (tx_version IN (1, 2));

-- accounts (src/ledger/accounts.rs): the holder's name, as the operator opened the account
-- (trimmed, 1-70 characters). Accounts opened before have none: verification of payee
-- answers `unavailable` for them.
ALTER TABLE accounts ADD COLUMN holder_name TEXT CHECK (holder_name IS NULL OR length(holder_name) BETWEEN 1 AND 70);

-- transfers (src/ledger/transfers.rs): the payee's name the payer gave (signed by the card
-- in context version 2) and the answer of verification of payee when the transfer was asked
-- for. Both NULL for transfers made before.
ALTER TABLE transfers ADD COLUMN payee_name TEXT;
ALTER TABLE transfers ADD COLUMN payee_check TEXT
    CHECK (payee_check IS NULL OR payee_check IN ('match', 'close_match', 'no_match', 'unavailable'));

-- What was asked for and checked never changes afterwards: the name and the answer join the
-- columns the status-only trigger guards.
DROP TRIGGER transfers_status_only;
CREATE TRIGGER transfers_status_only BEFORE UPDATE ON transfers
WHEN OLD.status <> 'pending'
  OR NEW.user_id IS NOT OLD.user_id OR NEW.client_id IS NOT OLD.client_id
  OR NEW.from_account IS NOT OLD.from_account OR NEW.to_account IS NOT OLD.to_account
  OR NEW.amount IS NOT OLD.amount OR NEW.currency IS NOT OLD.currency
  OR NEW.created_at IS NOT OLD.created_at
  OR NEW.payee_name IS NOT OLD.payee_name OR NEW.payee_check IS NOT OLD.payee_check
BEGIN SELECT RAISE(ABORT, 'a transfer only moves from pending to executed or rejected'); END;

-- The holder's name is the operator's, set once at opening.
CREATE TRIGGER accounts_holder_fixed BEFORE UPDATE OF holder_name ON accounts
WHEN NEW.holder_name IS NOT OLD.holder_name
BEGIN SELECT RAISE(ABORT, 'an account''s holder name is set when it is opened'); END;

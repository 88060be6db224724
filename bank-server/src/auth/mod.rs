//! Authentication: users, tokens (their sealed chain keys and counters), challenges, the OTP
//! check and lockout, with the audit events of all of these.
//!
//! The OTP itself is `paysim_otp` (the one implementation in the workspace). Every function
//! takes a `&Transaction`, so a use case can put a verification, the challenge's consumption,
//! the chain's advance and a ledger posting into one `BEGIN IMMEDIATE` transaction. A refused
//! code is a value ([`Failure`]), not an error, so the caller commits the failure count too.
//!
//! - [`users`]: names and ids.
//! - [`tokens`]: enrollment, the sealed chain key, unlock and revoke, the master-key check.
//! - [`challenges`]: issuing them, for a [`ChallengePurpose`], and the cap per token.
//! - [`verify`]: checking a submitted code against a challenge.
//! - [`lockout`]: counting failures and locking a token that guesses.

pub mod challenges;
pub mod lockout;
pub mod tokens;
pub mod users;
pub mod verify;

use paysim_wire::{CardSerial, TransferId, UserName};

use crate::master_key::KeyError;

pub use challenges::{issue_challenge, issue_login_challenge, open_challenge, IssuedChallenge, OpenChallenge};
pub use tokens::{
    active_token_kind, active_tx_version, audit_kind_refusal, check_master_key, enroll_oath_token, enroll_token,
    export_token, import_token, list_tokens, revoke_token, unlock_token, Enrollment, ExportedToken, OathEnrollment,
    TokenInfo, TokenSecret,
};
pub use users::{add_user, user_id, user_name};
pub use verify::{verify, Expect, Signed, Submission, Verified};

/// Counters accepted ahead of the stored one: `next <= c < next + WINDOW`.
pub const WINDOW: u64 = 20;
/// Consecutive failures that lock a token.
pub const MAX_FAILURES: i64 = 5;
/// First lock delay; each further lock (without a success between) doubles it.
pub const LOCK_BASE_S: i64 = 60;
/// Longest lock delay.
pub const LOCK_MAX_S: i64 = 24 * 3600;
/// A lock more than this long after the previous one ended starts the escalation again.
pub const LOCK_DECAY_S: i64 = 7 * 24 * 3600;
/// Login challenges a token keeps open; issuing one more drops its oldest login challenge.
/// Login challenges are handed to anyone who names the user, so this bounds what an
/// unauthenticated client can make the bank store.
pub const MAX_LOGIN_CHALLENGES: i64 = 64;
/// Transfer challenges a token keeps open (only logged-in sessions ask for them).
pub const MAX_TRANSFER_CHALLENGES: i64 = 32;
/// Largest counter accepted at enrollment (the chain is stepped that far once).
pub const MAX_ENROLL_COUNTER: u64 = 1_000_000;

/// What the auth role needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `otp::verifier_id(public URL)`: the origin every code is bound to.
    pub verifier_id: String,
    /// Challenge lifetime in seconds (default 120).
    pub challenge_ttl: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("the master key does not match this database (it sealed the chain keys with another key); use the right key file or BANK_MASTER_KEY")]
    MasterKeyMismatch,
    #[error("unknown user {0:?}")]
    UnknownUser(UserName),
    #[error("user {0:?} already exists")]
    UserExists(UserName),
    #[error("a token with serial {0:?} is already enrolled")]
    DuplicateSerial(CardSerial),
    #[error("no token with serial {0:?}")]
    UnknownToken(CardSerial),
    #[error("user {user:?} already has the active token {serial:?}; revoke it first")]
    ActiveTokenExists { user: UserName, serial: CardSerial },
    #[error("token {0:?} is revoked")]
    TokenRevoked(CardSerial),
    #[error("the user has no active token")]
    NoActiveToken,
    #[error("counter {0} is too large to enroll (at most {MAX_ENROLL_COUNTER})")]
    CounterTooLarge(u64),
}

/// Why a submission was refused. Only the audit log and the operator see this; the client
/// gets one generic answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    UnknownChallenge,
    ChallengeMismatch,
    ChallengeExpired,
    TokenRevoked,
    TokenLocked,
    CounterReplay,
    CounterOutOfWindow,
    OtpMismatch,
    /// The stored chain key does not open under the master key with its row's associated data:
    /// the row was altered (or copied from another token), or the key is not this database's.
    ChainKeyUnreadable,
}

impl Failure {
    /// The reason as written in the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::UnknownChallenge => "unknown_challenge",
            Failure::ChallengeMismatch => "challenge_mismatch",
            Failure::ChallengeExpired => "challenge_expired",
            Failure::TokenRevoked => "token_revoked",
            Failure::TokenLocked => "token_locked",
            Failure::CounterReplay => "counter_replay_or_clone",
            Failure::CounterOutOfWindow => "counter_out_of_window",
            Failure::OtpMismatch => "otp_mismatch",
            Failure::ChainKeyUnreadable => "chain_key_unreadable",
        }
    }

    /// Whether the token's consecutive-failure count goes up: only for an evaluated code.
    fn counts(self) -> bool {
        matches!(self, Failure::CounterReplay | Failure::CounterOutOfWindow | Failure::OtpMismatch)
    }
}

/// What kind of token a row is, and so how its codes are checked (`docs/protocol.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A PAYSIM card: a forward-secure chain key and a counter (PAYSIM-1).
    Paysim,
    /// A YKOATH credential (YubiKey, Nitrokey 3, the virtual card's OATH applet) answering
    /// PAYSIM-OATH-1 challenges with a static key: no chain, no counter.
    Oath,
}

impl TokenKind {
    /// The text stored in `tokens.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Paysim => "paysim",
            TokenKind::Oath => "oath",
        }
    }

    /// A stored kind; anything else is refused.
    fn from_stored(text: &str) -> Option<Self> {
        [TokenKind::Paysim, TokenKind::Oath].into_iter().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's life: active until revoked, and revoked for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Revoked,
}

impl TokenStatus {
    /// The text stored in `tokens.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Revoked => "revoked",
        }
    }

    /// A stored status; anything else is refused.
    fn from_stored(text: &str) -> Option<Self> {
        [TokenStatus::Active, TokenStatus::Revoked].into_iter().find(|s| s.as_str() == text)
    }
}

/// What a challenge may be used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChallengePurpose {
    Login,
    /// Confirming the transfer with this client id of the user who owns the challenge's token
    /// (the ledger's key for a transfer is the pair, so no ledger row id is needed here).
    Transfer(TransferId),
}

impl ChallengePurpose {
    /// The stored `kind`.
    fn kind(&self) -> &'static str {
        match self {
            ChallengePurpose::Login => "login",
            ChallengePurpose::Transfer(_) => "transfer",
        }
    }

    /// The stored `transfer_id`.
    fn transfer_id(&self) -> Option<&str> {
        match self {
            ChallengePurpose::Login => None,
            ChallengePurpose::Transfer(id) => Some(id.as_str()),
        }
    }

    /// From the stored `kind` and `transfer_id`; anything else is refused.
    fn from_stored(kind: &str, transfer_id: Option<&str>) -> Option<Self> {
        match (kind, transfer_id) {
            ("login", None) => Some(ChallengePurpose::Login),
            ("transfer", Some(id)) => id.parse().ok().map(ChallengePurpose::Transfer),
            _ => None,
        }
    }

    /// The audit log's `purpose` field.
    fn audit(&self) -> serde_json::Value {
        match self {
            ChallengePurpose::Login => serde_json::json!("login"),
            ChallengePurpose::Transfer(id) => serde_json::json!({ "transfer": id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_states_convert_both_ways_and_refuse_the_unknown() {
        for s in [TokenStatus::Active, TokenStatus::Revoked] {
            assert_eq!(TokenStatus::from_stored(s.as_str()), Some(s));
        }
        assert_eq!(TokenStatus::from_stored("Active"), None);
        assert_eq!(TokenStatus::from_stored("lost"), None);
        for k in [TokenKind::Paysim, TokenKind::Oath] {
            assert_eq!(TokenKind::from_stored(k.as_str()), Some(k));
        }
        assert_eq!(TokenKind::from_stored("OATH"), None);
        assert_eq!(TokenKind::from_stored("fido"), None);
        let t = ChallengePurpose::Transfer("t-1".parse().unwrap());
        for p in [ChallengePurpose::Login, t] {
            assert_eq!(ChallengePurpose::from_stored(p.kind(), p.transfer_id()), Some(p.clone()));
        }
        assert_eq!(ChallengePurpose::from_stored("login", Some("t-1")), None);
        assert_eq!(ChallengePurpose::from_stored("transfer", None), None);
        assert_eq!(ChallengePurpose::from_stored("transfer", Some("a/b")), None);
        assert_eq!(ChallengePurpose::from_stored("admin", None), None);
    }
}

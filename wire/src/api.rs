//! The JSON API (`/api/v1`, `docs/api.md`): every request body, every answer and the error
//! codes. `bank-server` deserializes the requests and serializes the answers; `reader-bridge`
//! does the opposite with the same types, so the two cannot drift apart.
//!
//! Secrets in here (`otp`, the session `token`) are wiped on drop and never shown by `Debug`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ids::{AccountNumber, Challenge, ChallengeId, TransferId, UserName};
use crate::money::Currency;
use crate::names::PayeeName;

/// Longest `otp` field the API reads (the bank compares it in constant time with the
/// 8-digit code; anything else simply does not match).
pub const OTP_FIELD_MAX: usize = 16;

/// Default and largest `limit` of `GET /transfers`.
pub const HISTORY_DEFAULT: u32 = 100;
/// Largest `limit` of `GET /transfers`.
pub const HISTORY_MAX: u32 = 500;

/// The loopback port `reader-bridge serve` listens on by default (`http://127.0.0.1:7480`),
/// and so the one the bank's pages call and its CSP allows unless the bank is told otherwise.
pub const SIGNING_SERVICE_PORT: u16 = 7480;

/// `POST /login/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChallengeRequest {
    pub user: UserName,
}

/// The answer of `POST /login/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChallenge {
    pub challenge_id: ChallengeId,
    #[serde(rename = "challenge_hex")]
    pub challenge: Challenge,
    pub expires_at: i64,
    /// What the server says its verifier id is: information only, never what a client signs.
    pub verifier_id: String,
}

/// A code typed or read from a card, as the API carries it: a string of at most
/// [`OTP_FIELD_MAX`] bytes. Wiped on drop; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpText(Zeroizing<String>);

impl OtpText {
    pub fn new(text: &str) -> Option<Self> {
        (text.len() <= OTP_FIELD_MAX).then(|| Self(Zeroizing::new(text.into())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OtpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpText(<secret>)")
    }
}

impl Serialize for OtpText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OtpText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        Self::new(&text).ok_or_else(|| serde::de::Error::custom("otp must be a string of 8 digits"))
    }
}

/// The body of `POST /login` and `POST /transfers/{id}/confirm`: what the card answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeSubmission {
    pub challenge_id: ChallengeId,
    pub counter: u64,
    pub otp: OtpText,
}

/// A session token (32 lower-case hex digits), shown once. Wiped on drop; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(Zeroizing<String>);

impl Serialize for SessionToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(Zeroizing::new(String::deserialize(d)?)))
    }
}

impl SessionToken {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<secret>)")
    }
}

/// The answer of `POST /login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOk {
    pub token: SessionToken,
    pub user: UserName,
    pub expires_at: i64,
    pub idle_timeout_s: u64,
}

/// The answer of `GET /session`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: UserName,
    pub expires_at: i64,
    pub idle_timeout_s: u64,
}

/// One account as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub number: AccountNumber,
    pub currency: Currency,
    /// The currency's exponent, so that a client without a table can format the balance.
    pub exponent: u32,
    pub balance_minor: i64,
}

/// The answer of `GET /accounts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    pub accounts: Vec<Account>,
}

/// Where a transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferStatus {
    /// Waiting for the card's code.
    Pending,
    /// Money moved.
    Executed,
    /// Refused for good at confirmation (the balance was too low then).
    Rejected,
    /// Ended without moving money: a code was refused. A challenge is single use, so a
    /// refused code ends the transfer it was for.
    Failed,
    /// Ended without moving money: no accepted code came before its last challenge expired.
    Expired,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Executed => "executed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// Every status, in the order a transfer can reach them.
    pub const ALL: [TransferStatus; 5] = [Self::Pending, Self::Executed, Self::Rejected, Self::Failed, Self::Expired];

    /// Whether the transfer is settled for good: executed, or ended without moving money.
    pub fn is_final(self) -> bool {
        self != Self::Pending
    }
}

/// A transfer seen by one user: `out` of their account (they created it) or `in` to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// A transfer as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub transfer_id: TransferId,
    pub from: AccountNumber,
    pub to: AccountNumber,
    pub amount_minor: u64,
    pub currency: Currency,
    pub status: TransferStatus,
    /// Why a transfer ended without moving money: `insufficient_funds` (rejected),
    /// `code_refused` (failed), `challenge_expired` (expired).
    pub reason: Option<String>,
    pub direction: Direction,
    /// The payee's name the payer gave (signed with the transfer); `None` for transfers made
    /// before verification of payee.
    #[serde(default)]
    pub payee_name: Option<PayeeName>,
    pub created_at: i64,
    pub executed_at: Option<i64>,
}

/// The answer of `GET /transfers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfers {
    pub transfers: Vec<Transfer>,
}

/// A transfer inside an answer: `{"transfer": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferEnvelope {
    pub transfer: Transfer,
}

/// The body of `POST /transfers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTransfer {
    pub transfer_id: TransferId,
    pub from: AccountNumber,
    pub to: AccountNumber,
    pub amount_minor: u64,
    pub currency: Currency,
    /// The name of the payee as the payer knows it: the bank checks it against the name on
    /// the account (verification of payee) and the card signs it.
    pub payee_name: PayeeName,
}

/// What the bank asks the card to sign for a transfer (besides the challenge): the fields of
/// transaction context version 2 (`"PAYSIM-2 TX"`, `docs/protocol.md`). Every field here is
/// signed; a client shows them all before the PIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignFields {
    /// Information only, like [`LoginChallenge::verifier_id`].
    pub verifier_id: String,
    pub transaction_id: TransferId,
    pub amount_minor: u64,
    pub currency: Currency,
    /// The account the money leaves.
    pub source: AccountNumber,
    pub payee: AccountNumber,
    /// The payee's name as the bank stored it (trimmed).
    pub payee_name: PayeeName,
}

impl SignFields {
    /// The fields as the card signs them (context version 2), for the verifier id the
    /// *client* is configured with.
    pub fn tx_fields<'a>(&'a self, verifier_id: &'a str) -> paysim_otp::TxFields<'a> {
        paysim_otp::TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: verifier_id.as_bytes(),
            transaction_id: self.transaction_id.as_str().as_bytes(),
            amount_minor: self.amount_minor,
            currency: self.currency.as_bytes(),
            source: self.source.as_str().as_bytes(),
            payee: self.payee.as_str().as_bytes(),
            payee_name: self.payee_name.as_str().as_bytes(),
        }
    }
}

/// The answer of verification of payee: how the payee's name the payer gave compares with
/// the name on the payee's account (`docs/bank.md`, "Verification of payee").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PayeeCheck {
    /// The names are the same (after normalisation).
    Match,
    /// Nearly the same: `account_name` is the name on the account, for the payer to compare.
    CloseMatch { account_name: PayeeName },
    /// Different. The name on the account is not revealed.
    NoMatch,
    /// The bank cannot check: the account carries no holder's name.
    Unavailable,
}

impl PayeeCheck {
    /// The result as written on the wire and stored (`match`, `close_match`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::CloseMatch { .. } => "close_match",
            Self::NoMatch => "no_match",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether confirming the transfer needs the payer's explicit second confirmation
    /// ([`TransferConfirmation::confirm_unverified_payee`]): for `no_match` and `unavailable`.
    pub fn needs_confirmation(&self) -> bool {
        matches!(self, Self::NoMatch | Self::Unavailable)
    }

    /// One line for a person, naming the account's name only for a close match.
    pub fn describe(&self) -> String {
        match self {
            Self::Match => "match: the name is the name on the account".into(),
            Self::CloseMatch { account_name } => {
                alloc::format!("close match: the account is in the name of \"{account_name}\"")
            }
            Self::NoMatch => "NO MATCH: the name is not the name on the account".into(),
            Self::Unavailable => "unavailable: the bank cannot check the name on this account".into(),
        }
    }
}

/// The body of `POST /transfers/{id}/confirm`: the card's answer, and the payer's second
/// confirmation when verification of payee answered `no_match` or `unavailable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferConfirmation {
    pub challenge_id: ChallengeId,
    pub counter: u64,
    pub otp: OtpText,
    /// "I know the name does not match (or could not be checked); send it anyway."
    #[serde(default)]
    pub confirm_unverified_payee: bool,
}

/// The `201` answer of `POST /transfers`: the transfer is pending, sign this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferChallenge {
    pub challenge_id: ChallengeId,
    #[serde(rename = "challenge_hex")]
    pub challenge: Challenge,
    pub expires_at: i64,
    pub sign: SignFields,
    /// Verification of payee: show it before the PIN.
    pub payee_check: PayeeCheck,
    pub transfer: Transfer,
}

/// What an open challenge is for, as `GET /challenges/{id}` tells a signing service: a login,
/// or a transfer with exactly the fields the card is to sign (`"kind": "login" | "transfer"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ChallengeFor {
    Login,
    /// `payee_check`: verification of payee's answer for the transfer, shown before the PIN.
    Transfer {
        sign: SignFields,
        payee_check: PayeeCheck,
    },
}

/// The answer of `GET /challenges/{id}`: an open challenge, so that a signing service (the
/// bridge's `serve`) shows the person what the card will sign without taking it from the page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeInfo {
    pub challenge_id: ChallengeId,
    /// The user whose card the challenge is for.
    pub user: UserName,
    #[serde(rename = "challenge_hex")]
    pub challenge: Challenge,
    pub expires_at: i64,
    #[serde(flatten)]
    pub what: ChallengeFor,
}

/// The stable error codes (`docs/api.md`, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    BodyTooLarge,
    AuthFailed,
    Unauthenticated,
    NotFound,
    MethodNotAllowed,
    Csrf,
    TransferIdConflict,
    InsufficientFunds,
    UnknownAccount,
    SameAccount,
    CurrencyMismatch,
    UnsupportedCurrency,
    InvalidAmount,
    /// The payee is not an account that can take this transfer: there is no such customer
    /// account, or it is kept in another currency. One answer for both, so a transfer cannot be
    /// used to learn whether an account exists or what its currency is.
    PayeeNotAccepted,
    /// The user has as many pending (unconfirmed) transfers open as the bank allows.
    TooManyPendingTransfers,
    /// The bank does not let this user's kind of token confirm transfers (an operator setting,
    /// `--oath-transfers deny`): an OATH key may log in, but a transfer needs a PAYSIM card.
    TokenKindNotAllowed,
    /// An abuse limit refused the request; the `Retry-After` header says in how many seconds
    /// to try again.
    RateLimited,
    /// The bank cannot write its records (disk full, an I/O error, a read-only disk): nothing
    /// of the request happened; try again later.
    StorageUnavailable,
    /// The user's card signs transaction context version 1 only: neither the source account
    /// nor the payee's name, so the bank does not take transfers signed by it (logins still
    /// work). The customer needs a new card.
    CardTooOld,
    /// Verification of payee answered `no_match` or `unavailable` and the confirmation did
    /// not carry `confirm_unverified_payee`; nothing was checked or moved.
    PayeeNotConfirmed,
    /// The transfer of this id ended without moving money (`failed`: a code was refused;
    /// `expired`: its challenge expired): it cannot be confirmed or asked for again. The body
    /// carries the transfer; start a new one with a new transfer id.
    TransferEnded,
    Internal,
    /// A code this build does not know (a newer server): read, never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::BodyTooLarge => "body_too_large",
            Self::AuthFailed => "auth_failed",
            Self::Unauthenticated => "unauthenticated",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Csrf => "csrf",
            Self::TransferIdConflict => "transfer_id_conflict",
            Self::InsufficientFunds => "insufficient_funds",
            Self::UnknownAccount => "unknown_account",
            Self::SameAccount => "same_account",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::UnsupportedCurrency => "unsupported_currency",
            Self::InvalidAmount => "invalid_amount",
            Self::PayeeNotAccepted => "payee_not_accepted",
            Self::TooManyPendingTransfers => "too_many_pending_transfers",
            Self::TokenKindNotAllowed => "token_kind_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::StorageUnavailable => "storage_unavailable",
            Self::CardTooOld => "card_too_old",
            Self::PayeeNotConfirmed => "payee_not_confirmed",
            Self::TransferEnded => "transfer_ended",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// The HTTP status the bank answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::AuthFailed | Self::Unauthenticated => 401,
            Self::Csrf | Self::TokenKindNotAllowed | Self::CardTooOld => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::TransferIdConflict
            | Self::InsufficientFunds
            | Self::TooManyPendingTransfers
            | Self::PayeeNotConfirmed
            | Self::TransferEnded => 409,
            Self::BodyTooLarge => 413,
            Self::UnknownAccount
            | Self::SameAccount
            | Self::CurrencyMismatch
            | Self::UnsupportedCurrency
            | Self::InvalidAmount
            | Self::PayeeNotAccepted => 422,
            Self::RateLimited => 429,
            Self::Internal | Self::Unknown => 500,
            Self::StorageUnavailable => 503,
        }
    }

    /// A refusal of the transfer as asked (the person changes the request; nothing moved).
    pub fn refuses_transfer(self) -> bool {
        matches!(
            self,
            Self::TransferIdConflict
                | Self::UnknownAccount
                | Self::SameAccount
                | Self::CurrencyMismatch
                | Self::UnsupportedCurrency
                | Self::InvalidAmount
                | Self::PayeeNotAccepted
                | Self::TooManyPendingTransfers
                | Self::TokenKindNotAllowed
                | Self::CardTooOld
                | Self::TransferEnded
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error body: `{"error": code, "message": text}`, and the transfer when the refusal is
/// about one that exists and is now final (`insufficient_funds` at confirmation: `rejected`;
/// `auth_failed` at confirmation: `failed` or `expired`; `transfer_ended`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_codes_are_their_wire_names() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::BodyTooLarge,
            ErrorCode::AuthFailed,
            ErrorCode::Unauthenticated,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Csrf,
            ErrorCode::TransferIdConflict,
            ErrorCode::InsufficientFunds,
            ErrorCode::UnknownAccount,
            ErrorCode::SameAccount,
            ErrorCode::CurrencyMismatch,
            ErrorCode::UnsupportedCurrency,
            ErrorCode::InvalidAmount,
            ErrorCode::PayeeNotAccepted,
            ErrorCode::TooManyPendingTransfers,
            ErrorCode::TokenKindNotAllowed,
            ErrorCode::RateLimited,
            ErrorCode::StorageUnavailable,
            ErrorCode::CardTooOld,
            ErrorCode::PayeeNotConfirmed,
            ErrorCode::TransferEnded,
            ErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json!(code.as_str())).unwrap(), code);
        }
        assert_eq!(serde_json::from_value::<ErrorCode>(json!("from_the_future")).unwrap(), ErrorCode::Unknown);
    }

    #[test]
    fn the_abuse_and_probe_codes_have_their_documented_statuses() {
        assert_eq!(ErrorCode::RateLimited.http_status(), 429);
        assert_eq!(ErrorCode::TooManyPendingTransfers.http_status(), 409);
        assert_eq!(ErrorCode::PayeeNotAccepted.http_status(), 422);
        // Both refuse the transfer as asked (the person changes it); a rate limit does not.
        assert!(ErrorCode::PayeeNotAccepted.refuses_transfer());
        assert!(ErrorCode::TooManyPendingTransfers.refuses_transfer());
        assert!(!ErrorCode::RateLimited.refuses_transfer());
        // The OATH policy refusal is its own code, a 403 that nothing moved under.
        assert_eq!(ErrorCode::TokenKindNotAllowed.as_str(), "token_kind_not_allowed");
        assert_eq!(ErrorCode::TokenKindNotAllowed.http_status(), 403);
        assert!(ErrorCode::TokenKindNotAllowed.refuses_transfer());
    }

    #[test]
    fn a_transfer_reads_what_the_docs_show() {
        let t: Transfer = serde_json::from_value(json!({
            "transfer_id": "b7f6c1e0", "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR",
            "amount_minor": 1234, "currency": "EUR", "status": "executed", "reason": null,
            "direction": "out", "created_at": 1764000000, "executed_at": 1764000005
        }))
        .unwrap();
        assert_eq!((t.status, t.direction, t.amount_minor), (TransferStatus::Executed, Direction::Out, 1234));
        assert!(serde_json::from_value::<TransferStatus>(json!("lost")).is_err());
        for s in TransferStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(serde_json::from_value::<TransferStatus>(json!(s.as_str())).unwrap(), s);
            assert_eq!(s.is_final(), s != TransferStatus::Pending);
        }
        assert_eq!(ErrorCode::TransferEnded.http_status(), 409);
        assert!(ErrorCode::TransferEnded.refuses_transfer());
    }

    #[test]
    fn a_challenge_info_reads_what_the_docs_show() {
        let login: ChallengeInfo = serde_json::from_value(json!({
            "challenge_id": "0".repeat(32), "user": "alice", "challenge_hex": "ab".repeat(32),
            "expires_at": 1764000120, "kind": "login"
        }))
        .unwrap();
        assert_eq!(login.what, ChallengeFor::Login);
        let tx: ChallengeInfo = serde_json::from_value(json!({
            "challenge_id": "1".repeat(32), "user": "alice", "challenge_hex": "cd".repeat(32),
            "expires_at": 1764000120, "kind": "transfer",
            "sign": { "verifier_id": "https://bank.example:443", "transaction_id": "tx-1",
                      "amount_minor": 1234, "currency": "EUR", "source": "ACC-ALICE-EUR",
                      "payee": "ACC-BOB-EUR", "payee_name": "Bob Example" },
            "payee_check": { "result": "match" }
        }))
        .unwrap();
        let ChallengeFor::Transfer { sign, payee_check } = &tx.what else { panic!("{tx:?}") };
        assert_eq!(*payee_check, PayeeCheck::Match);
        assert_eq!((sign.amount_minor, sign.payee.as_str()), (1234, "ACC-BOB-EUR"));
        assert_eq!(serde_json::to_value(&tx).unwrap()["kind"], json!("transfer"));
        // A kind this build does not know, or a transfer without its fields, is refused.
        for bad in [json!("admin"), json!("transfer")] {
            let v = json!({"challenge_id": "2".repeat(32), "user": "alice", "challenge_hex": "ab".repeat(32),
                           "expires_at": 1, "kind": bad});
            assert!(serde_json::from_value::<ChallengeInfo>(v).is_err());
        }
    }

    #[test]
    fn payee_checks_read_and_write_as_documented() {
        let close = PayeeCheck::CloseMatch { account_name: "Robert Smith".parse().unwrap() };
        assert_eq!(
            serde_json::to_value(&close).unwrap(),
            json!({"result": "close_match", "account_name": "Robert Smith"})
        );
        assert_eq!(serde_json::to_value(PayeeCheck::NoMatch).unwrap(), json!({"result": "no_match"}));
        assert_eq!(
            serde_json::from_value::<PayeeCheck>(json!({"result": "unavailable"})).unwrap(),
            PayeeCheck::Unavailable
        );
        assert!(PayeeCheck::NoMatch.needs_confirmation() && PayeeCheck::Unavailable.needs_confirmation());
        assert!(!PayeeCheck::Match.needs_confirmation() && !close.needs_confirmation());
        assert!(close.describe().contains("Robert Smith"));
        let c: TransferConfirmation =
            serde_json::from_value(json!({"challenge_id": "0".repeat(32), "counter": 3, "otp": "12345678"})).unwrap();
        assert!(!c.confirm_unverified_payee, "absent means not confirmed");
        assert_eq!(ErrorCode::CardTooOld.http_status(), 403);
        assert_eq!(ErrorCode::PayeeNotConfirmed.http_status(), 409);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let sub: CodeSubmission =
            serde_json::from_value(json!({"challenge_id": "0".repeat(32), "counter": 3, "otp": "98765432"})).unwrap();
        assert!(!format!("{sub:?}").contains("98765432"));
        assert!(serde_json::from_value::<CodeSubmission>(
            json!({"challenge_id": "0".repeat(32), "counter": 3, "otp": "1".repeat(17)})
        )
        .is_err());
        let ok = LoginOk {
            token: SessionToken::new("ab".repeat(16)),
            user: "alice".parse().unwrap(),
            expires_at: 1,
            idle_timeout_s: 300,
        };
        assert!(!format!("{ok:?}").contains("abab"));
    }
}

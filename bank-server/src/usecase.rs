//! Use cases: the only code that joins roles. Each takes the `&Transaction` of one unit of
//! work (a savepoint in a batch of the writer, opened by [`AppState::tx`] for the server; a
//! read transaction by [`AppState::read`] for what only reads; a `BEGIN IMMEDIATE` of the
//! operator functions for `bank-tools`) and calls the roles' own functions inside it, so a code's
//! check, the challenge's consumption, the chain's advance and the money's move commit
//! together or not at all.
//!
//! | use case | joins |
//! |---|---|
//! | [`logged_in`], [`visit`] | sessions → auth (the user's name) |
//! | [`api_login`], [`web_login`] | auth (the code) → sessions |
//! | [`logout`] | sessions (ended, audited with the user's name) |
//! | [`start_transfer`] | ledger (pending transfer) → auth (its challenge) |
//! | [`challenge_info`] | auth (the open challenge) → ledger (the pending transfer it signs) |
//! | [`confirm_transfer`] | ledger → auth (the code) → ledger (execution) |
//! | [`revoke_token`] | auth → sessions (the user's are ended) |
//! | [`open_account`], [`accounts_of_user`], [`account_with_owner`] | auth (names) ↔ ledger |

use paysim_otp::TxVersion;
use paysim_wire::api::{
    Account, ChallengeFor, ChallengeInfo, CodeSubmission, LoginOk, NewTransfer, PayeeCheck, SessionToken, SignFields,
    Transfer, TransferChallenge, TransferStatus,
};
use paysim_wire::{AccountNumber, CardSerial, ChallengeId, Currency, PayeeName, TransferId, UserName};
use rusqlite::Transaction;
use serde_json::json;

use crate::auth::{self, AuthError, ChallengePurpose, Expect, Failure, Signed, Submission, TokenKind};
use crate::ledger::{self, LedgerError};
use crate::session::{self, Ended, Kind, Session, SessionError};
use crate::{AppState, OathTransfers};

#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// No live session, or one without a user.
    #[error("not logged in, or the session ended")]
    Unauthenticated,
    /// The user has no transfer of that id.
    #[error("no such transfer")]
    NoSuchTransfer,
    /// The bank does not let this kind of token confirm transfers (`--oath-transfers deny`).
    #[error("this bank does not let {0} tokens confirm transfers")]
    TokenKindNotAllowed(TokenKind),
    /// Verification of payee answered `no_match` or `unavailable` and the confirmation did not
    /// say the payer wants it anyway. Nothing was checked: the challenge is still open.
    #[error("the payee's name {} : confirm that you want to pay this account anyway", .0.as_str().replace('_', " "))]
    PayeeNotConfirmed(PayeeCheck),
    /// A transfer whose stored fields lack what context version 2 signs (one made before
    /// verification of payee): it cannot be confirmed.
    #[error("this transfer was asked for before the payee's name was signed: start it again")]
    UnsignableTransfer,
}

/// What a use case that checks a code returns: the result, or the refusal (its reason is for
/// the audit log, never for an answer). A refusal is a value, not an error, because its unit
/// of work must commit: the challenge is used up and the failure counts.
pub type Checked<T> = Result<T, Failure>;

/// A live session with a user, and that user's name.
#[derive(Clone, Debug)]
pub struct LoggedIn {
    pub session: Session,
    pub user_id: i64,
    pub user: UserName,
}

impl LoggedIn {
    /// The audit log's actor for what this user does.
    pub fn actor(&self) -> String {
        crate::audit::user_actor(self.user.as_str())
    }
}

fn with_user(tx: &Transaction<'_>, session: Session) -> Result<Option<LoggedIn>, UseCaseError> {
    let Some(user_id) = session.user_id else {
        return Ok(None);
    };
    // A session whose user has gone is no session.
    Ok(auth::user_name(tx, user_id)?.map(|user| LoggedIn { session, user_id, user }))
}

/// The logged-in session for `token` of `kind`, or [`UseCaseError::Unauthenticated`].
pub fn logged_in(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    kind: Kind,
    token: Option<&str>,
) -> Result<LoggedIn, UseCaseError> {
    let token = token.ok_or(UseCaseError::Unauthenticated)?;
    let s = session::lookup(tx, now, token, kind, state.cfg.session_idle)?.ok_or(UseCaseError::Unauthenticated)?;
    with_user(tx, s)?.ok_or(UseCaseError::Unauthenticated)
}

/// [`logged_in`] for a unit of work that only reads: `Ok(None)` when the session needs a
/// write first (its `last_seen` is due, or it ended and its row must go), so the unit must
/// run through the writer with [`logged_in`] instead.
pub fn logged_in_read(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    kind: Kind,
    token: Option<&str>,
) -> Result<Option<LoggedIn>, UseCaseError> {
    let token = token.ok_or(UseCaseError::Unauthenticated)?;
    match session::peek(tx, now, token, kind, state.cfg.session_idle)? {
        session::Peek::Live(s) => Ok(Some(with_user(tx, s)?.ok_or(UseCaseError::Unauthenticated)?)),
        session::Peek::Unknown => Err(UseCaseError::Unauthenticated),
        session::Peek::NeedsWrite => Ok(None),
    }
}

/// Who a browser is: nobody yet, a visitor (a session before login), or a user.
#[derive(Clone, Debug)]
pub enum Visit {
    Nobody,
    Visitor(Session),
    User(LoggedIn),
}

/// The website session of the cookie `token`, if any.
pub fn visit(tx: &Transaction<'_>, now: i64, state: &AppState, token: Option<&str>) -> Result<Visit, UseCaseError> {
    let Some(token) = token else {
        return Ok(Visit::Nobody);
    };
    let Some(s) = session::lookup(tx, now, token, Kind::Web, state.cfg.session_idle)? else {
        return Ok(Visit::Nobody);
    };
    if s.user_id.is_none() {
        return Ok(Visit::Visitor(s));
    }
    Ok(with_user(tx, s)?.map_or(Visit::Nobody, Visit::User))
}

/// [`visit`] for a page that only reads: `Ok(None)` when the session needs a write first (its
/// `last_seen` is due, or it ended and its row must go), so the page must be made through the
/// writer with [`visit`] instead.
pub fn visit_read(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    token: Option<&str>,
) -> Result<Option<Visit>, UseCaseError> {
    let Some(token) = token else {
        return Ok(Some(Visit::Nobody));
    };
    match session::peek(tx, now, token, Kind::Web, state.cfg.session_idle)? {
        session::Peek::Live(s) if s.user_id.is_none() => Ok(Some(Visit::Visitor(s))),
        session::Peek::Live(s) => Ok(Some(with_user(tx, s)?.map_or(Visit::Nobody, Visit::User))),
        session::Peek::Unknown => Ok(Some(Visit::Nobody)),
        session::Peek::NeedsWrite => Ok(None),
    }
}

/// API login: checks the code of a login challenge issued outside any session, then opens an
/// API session.
pub fn api_login(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    code: &CodeSubmission,
) -> Result<Checked<LoginOk>, UseCaseError> {
    let sub = Submission { challenge_id: &code.challenge_id, counter: Some(code.counter), otp: code.otp.as_str() };
    let expect = Expect { purpose: &ChallengePurpose::Login, binding: None, user_id: None };
    let ok = match auth::verify(tx, now, &state.cfg.auth, &state.key, &sub, &expect, Signed::Login)? {
        Ok(ok) => ok,
        Err(f) => return Ok(Err(f)),
    };
    let (token, s) = session::start(tx, now, Kind::Api, ok.user_id, &ok.user, state.cfg.session_limits())?;
    Ok(Ok(LoginOk {
        token,
        user: ok.user,
        expires_at: s.expires_at,
        idle_timeout_s: u64::try_from(state.cfg.session_idle).unwrap_or(0),
    }))
}

/// Website login: checks the code of the login challenge issued to the visitor's session,
/// then replaces that session by a new one of the user (a new id at login). Returns the new
/// session's token for the cookie.
pub fn web_login(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    visitor: &Session,
    challenge_id: &ChallengeId,
    counter: Option<u64>,
    otp: &str,
) -> Result<Checked<SessionToken>, UseCaseError> {
    let binding = visitor.binding();
    let sub = Submission { challenge_id, counter, otp };
    let expect = Expect { purpose: &ChallengePurpose::Login, binding: Some(&binding), user_id: None };
    let ok = match auth::verify(tx, now, &state.cfg.auth, &state.key, &sub, &expect, Signed::Login)? {
        Ok(ok) => ok,
        Err(f) => return Ok(Err(f)),
    };
    session::delete(tx, visitor)?;
    let (token, _) = session::start(tx, now, Kind::Web, ok.user_id, &ok.user, state.cfg.session_limits())?;
    Ok(Ok(token))
}

/// Ends the user's session (API or website logout), audited with their name.
pub fn logout(tx: &Transaction<'_>, now: i64, who: &LoggedIn) -> Result<(), UseCaseError> {
    Ok(session::end(tx, now, &who.session, Ended::Logout, &who.actor())?)
}

/// How asking for a transfer ended.
#[derive(Debug)]
pub enum Started {
    /// New or still pending: the card must sign this.
    Challenge(Box<TransferChallenge>),
    /// The same id and fields were asked for before and are settled: that result.
    Settled(Transfer),
    /// Refused as asked (what the customer is told; the audit log has the true reason). A
    /// value, not an error, so its unit of work commits the audit row.
    Refused(LedgerError),
    /// The user's token is of a kind the bank's policy keeps from confirming transfers; nothing
    /// was recorded but the refusal's audit row.
    KindNotAllowed(TokenKind),
    /// The user's card signs transaction context version 1 only (audited as
    /// `transfer_refused`, reason `card_too_old`).
    CardTooOld,
}

/// The kind of the user's token when the bank's policy keeps that kind from confirming
/// transfers (`--oath-transfers deny`).
fn kind_refused(tx: &Transaction<'_>, state: &AppState, user_id: i64) -> Result<Option<TokenKind>, UseCaseError> {
    if state.cfg.oath_transfers == OathTransfers::Allow {
        return Ok(None);
    }
    Ok(auth::active_token_kind(tx, user_id)?.filter(|k| *k == TokenKind::Oath))
}

/// Records the transfer as pending (or finds it, for a retry with the same id) and issues the
/// challenge that confirms it, bound to the caller's session.
pub fn start_transfer(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    who: &LoggedIn,
    req: &NewTransfer,
) -> Result<Started, UseCaseError> {
    if let Some(kind) = kind_refused(tx, state, who.user_id)? {
        auth::audit_kind_refusal(tx, now, &who.actor(), kind, "transfer")?;
        return Ok(Started::KindNotAllowed(kind));
    }
    // Only a card that signs the source account and the payee's name may move money; asked
    // before anything is recorded, so an old card's request leaves no pending transfer.
    if auth::active_tx_version(tx, who.user_id)? == Some(TxVersion::V1) {
        crate::audit::append(
            tx,
            now,
            "transfer_refused",
            &who.actor(),
            json!({ "transfer": { "transfer_id": req.transfer_id, "from": req.from, "to": req.to }, "reason": "card_too_old" }),
        )?;
        return Ok(Started::CardTooOld);
    }
    let cap = ledger::PendingCap { max: state.cfg.max_pending_transfers, open_s: state.cfg.pending_open_s };
    // The transfer lives as long as the challenge issued below for it.
    let until = now + state.cfg.auth.challenge_ttl;
    let t = match ledger::create_transfer(tx, now, who.user_id, req, cap, until, &who.actor())? {
        Ok(t) => t,
        Err(refused) => return Ok(Started::Refused(refused)),
    };
    if t.status != TransferStatus::Pending {
        return Ok(Started::Settled(t));
    }
    let (Some(payee_name), Some(payee_check)) =
        (t.payee_name.clone(), ledger::payee_check(tx, who.user_id, &t.transfer_id)?)
    else {
        return Err(UseCaseError::UnsignableTransfer);
    };
    let purpose = ChallengePurpose::Transfer(t.transfer_id.clone());
    let c = auth::issue_challenge(tx, now, &state.cfg.auth, who.user_id, &purpose, Some(&who.session.binding()))?;
    // A retry while pending: the new challenge keeps the transfer open as long as it lives.
    ledger::extend_pending(tx, who.user_id, &t.transfer_id, c.expires_at)?;
    let sign = sign_fields(state, &t, payee_name);
    Ok(Started::Challenge(Box::new(TransferChallenge {
        challenge_id: c.id,
        challenge: c.challenge,
        expires_at: c.expires_at,
        sign,
        payee_check,
        transfer: t,
    })))
}

/// What a confirmation carries besides the transfer's id.
#[derive(Clone, Copy, Debug)]
pub struct Confirmation<'a> {
    pub challenge_id: &'a ChallengeId,
    /// `None`: a person typed only the 8 digits.
    pub counter: Option<u64>,
    pub otp: &'a str,
    /// The payer's second confirmation of a payee whose name did not match or could not be
    /// checked.
    pub unverified_payee_ok: bool,
}

/// What the card signs for the pending transfer `t`: the one place the bank states the
/// signed fields, for the answer of `POST /transfers` and for [`challenge_info`] alike.
fn sign_fields(state: &AppState, t: &Transfer, payee_name: PayeeName) -> SignFields {
    SignFields {
        verifier_id: state.cfg.auth.verifier_id.clone(),
        transaction_id: t.transfer_id.clone(),
        amount_minor: t.amount_minor,
        currency: t.currency,
        source: t.from.clone(),
        payee: t.to.clone(),
        payee_name,
    }
}

/// The open challenge `id` as a signing service shows it to the person (`GET
/// /challenges/{id}`): whose, until when and, for a transfer, the fields the card signs.
/// `None` when there is no such challenge any more (unknown, expired, used, its token revoked,
/// or its transfer no longer pending): one answer for all of them.
pub fn challenge_info(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    id: &ChallengeId,
) -> Result<Option<ChallengeInfo>, UseCaseError> {
    let Some(c) = auth::open_challenge(tx, now, id)? else {
        return Ok(None);
    };
    let what = match &c.purpose {
        ChallengePurpose::Login => ChallengeFor::Login,
        ChallengePurpose::Transfer(transfer_id) => match ledger::transfer(tx, now, c.user_id, transfer_id)? {
            // A transfer stored without a payee name (from before version 2) cannot be signed.
            Some(t) if t.status == TransferStatus::Pending => {
                match (t.payee_name.clone(), ledger::payee_check(tx, c.user_id, transfer_id)?) {
                    (Some(name), Some(payee_check)) => {
                        ChallengeFor::Transfer { sign: sign_fields(state, &t, name), payee_check }
                    }
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        },
    };
    Ok(Some(ChallengeInfo {
        challenge_id: id.clone(),
        user: c.user,
        challenge: c.challenge,
        expires_at: c.expires_at,
        what,
    }))
}

/// A confirmation that did not move money, and the transfer as it now stands (final:
/// `failed`, `expired`, or as it was when it was final before).
#[derive(Debug)]
pub struct NotConfirmed {
    /// The code's refusal (for the audit log, never for an answer); `None` when the transfer
    /// had ended before, so no code was checked.
    pub failure: Option<Failure>,
    pub transfer: Transfer,
}

/// Confirms a pending transfer with the card's code: check, consume, advance and move money
/// in one transaction. An executed or rejected transfer is returned as it is (a retry). A
/// refused code for the transfer's own challenge ends the transfer (`failed`, or `expired`
/// when the challenge had expired): the challenge was used up, so the transfer could never be
/// confirmed with it. A challenge that is not the transfer's (unknown, another purpose or
/// session) is refused and leaves it pending. A transfer that ended before is refused
/// without checking the code.
///
/// The code is checked over the fields the bank stored (context version 2: with the source
/// account and the payee's name). A `no_match` or `unavailable` payee check needs
/// `unverified_payee_ok`, else [`UseCaseError::PayeeNotConfirmed`] before anything is checked;
/// with it, an accepted code writes the audit event `payee_unverified_confirmed`.
pub fn confirm_transfer(
    tx: &Transaction<'_>,
    now: i64,
    state: &AppState,
    who: &LoggedIn,
    transfer_id: &TransferId,
    c: Confirmation<'_>,
) -> Result<Result<Transfer, NotConfirmed>, UseCaseError> {
    let t = ledger::transfer(tx, now, who.user_id, transfer_id)?.ok_or(UseCaseError::NoSuchTransfer)?;
    match t.status {
        TransferStatus::Pending => {}
        TransferStatus::Executed | TransferStatus::Rejected => return Ok(Ok(t)),
        TransferStatus::Failed | TransferStatus::Expired => {
            // Written as expired if it only read so.
            let transfer =
                ledger::end_transfer(tx, now, who.user_id, transfer_id, ledger::Ending::Expired, &who.actor())?;
            return Ok(Err(NotConfirmed { failure: None, transfer }));
        }
    }
    // The setting may have changed since the challenge was issued: the challenge stays unused.
    if let Some(kind) = kind_refused(tx, state, who.user_id)? {
        return Err(UseCaseError::TokenKindNotAllowed(kind));
    }
    let check = ledger::payee_check(tx, who.user_id, transfer_id)?;
    let (Some(payee_name), Some(check)) = (t.payee_name.as_ref(), check) else {
        return Err(UseCaseError::UnsignableTransfer);
    };
    if check.needs_confirmation() && !c.unverified_payee_ok {
        return Err(UseCaseError::PayeeNotConfirmed(check));
    }
    let binding = who.session.binding();
    let purpose = ChallengePurpose::Transfer(t.transfer_id.clone());
    let expect = Expect { purpose: &purpose, binding: Some(&binding), user_id: Some(who.user_id) };
    let signed = Signed::Tx {
        transaction_id: &t.transfer_id,
        amount_minor: t.amount_minor,
        currency: t.currency,
        source: &t.from,
        payee: &t.to,
        payee_name,
    };
    let sub = Submission { challenge_id: c.challenge_id, counter: c.counter, otp: c.otp };
    if let Err(f) = auth::verify(tx, now, &state.cfg.auth, &state.key, &sub, &expect, signed)? {
        let how = match f {
            // Not this transfer's challenge (or none): it was not used, the transfer stays
            // pending with its own.
            Failure::UnknownChallenge | Failure::ChallengeMismatch => {
                return Ok(Err(NotConfirmed { failure: Some(f), transfer: t }))
            }
            Failure::ChallengeExpired => ledger::Ending::Expired,
            Failure::TokenRevoked
            | Failure::TokenLocked
            | Failure::CounterReplay
            | Failure::CounterOutOfWindow
            | Failure::OtpMismatch
            | Failure::ChainKeyUnreadable => ledger::Ending::CodeRefused,
        };
        let transfer = ledger::end_transfer(tx, now, who.user_id, transfer_id, how, &who.actor())?;
        return Ok(Err(NotConfirmed { failure: Some(f), transfer }));
    }
    if check.needs_confirmation() {
        crate::audit::append(
            tx,
            now,
            "payee_unverified_confirmed",
            &who.actor(),
            json!({ "transfer_id": t.transfer_id, "to": t.to, "payee_name": payee_name, "payee_check": check.as_str() }),
        )?;
    }
    Ok(Ok(ledger::execute_transfer(tx, now, who.user_id, transfer_id, &who.actor())?))
}

/// What the bank tidies while it is idle ([`crate::AppState::housekeeper`]): a bounded batch
/// of expired challenges. Returns how many rows went.
pub fn housekeeping(tx: &Transaction<'_>, now: i64) -> Result<usize, UseCaseError> {
    Ok(auth::challenges::prune_expired(tx, now)?)
}

/// Whether [`housekeeping`] has anything to do (a read: an idle bank does not write to find
/// out).
pub fn housekeeping_due(tx: &Transaction<'_>, now: i64) -> Result<bool, UseCaseError> {
    Ok(auth::challenges::any_expired(tx, now)?)
}

/// Revokes a token for good and ends its user's sessions (API and website): whoever logged in
/// with a lost card is out at once. Returns how many sessions ended.
pub fn revoke_token(tx: &Transaction<'_>, now: i64, serial: &CardSerial, actor: &str) -> Result<usize, UseCaseError> {
    let user_id = auth::revoke_token(tx, now, serial, actor)?;
    let user = auth::user_name(tx, user_id)?.ok_or(AuthError::UnknownToken(serial.clone()))?;
    Ok(session::end_all_for_user(tx, now, user_id, &user, "token_revoked", actor)?)
}

/// Opens an account for the user named `user`, in the holder's name `holder`.
pub fn open_account(
    tx: &Transaction<'_>,
    now: i64,
    user: &UserName,
    number: &AccountNumber,
    currency: Currency,
    holder: Option<&PayeeName>,
    actor: &str,
) -> Result<(), UseCaseError> {
    let uid = auth::user_id(tx, user)?.ok_or_else(|| AuthError::UnknownUser(user.clone()))?;
    Ok(ledger::open_account(tx, now, uid, number, currency, holder, actor)?)
}

/// The accounts of the user named `user`.
pub fn accounts_of_user(tx: &Transaction<'_>, user: &UserName) -> Result<Vec<Account>, UseCaseError> {
    let uid = auth::user_id(tx, user)?.ok_or_else(|| AuthError::UnknownUser(user.clone()))?;
    Ok(ledger::accounts_of(tx, uid)?)
}

/// One customer account with its owner's name.
pub fn account_with_owner(
    tx: &Transaction<'_>,
    number: &AccountNumber,
) -> Result<Option<(Account, UserName)>, UseCaseError> {
    let Some((account, owner)) = ledger::account(tx, number)? else {
        return Ok(None);
    };
    Ok(auth::user_name(tx, owner)?.map(|name| (account, name)))
}

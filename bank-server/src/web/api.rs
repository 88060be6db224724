//! The JSON API (`/api/v1`, `docs/api.md`). Bodies are read into the `paysim_wire::api`
//! request types by [`Body`]; answers are the wire response types, so the reader-bridge
//! reads exactly what is sent here.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paysim_wire::api::{
    Accounts, ChallengeInfo, CodeSubmission, LoginChallenge, LoginChallengeRequest, LoginOk, NewTransfer, SessionInfo,
    Transfer, TransferConfirmation, TransferEnvelope, TransferStatus, Transfers, HISTORY_DEFAULT, HISTORY_MAX,
};
use paysim_wire::{ChallengeId, TransferId};

use super::extract::{self, Body};
use super::AppError;
use crate::session::Kind;
use crate::usecase::{self, LoggedIn, Started, UseCaseError};
use crate::{auth, ledger, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/login/challenge", post(login_challenge))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/session", get(session_info))
        .route("/api/v1/accounts", get(accounts))
        .route("/api/v1/transfers", get(history).post(create_transfer))
        .route("/api/v1/transfers/{transfer_id}", get(transfer))
        .route("/api/v1/transfers/{transfer_id}/confirm", post(confirm))
        .route("/api/v1/challenges/{challenge_id}", get(challenge))
}

/// The transfer id of a path.
fn transfer_id(text: &str) -> Result<TransferId, AppError> {
    text.parse().map_err(|e: paysim_wire::IdError| AppError::invalid(e.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// Runs `f` for the caller's live API session in one unit of work; `unauthenticated` without.
async fn as_user<T, F>(state: &AppState, headers: &HeaderMap, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Transaction<'_>, i64, &AppState, &LoggedIn) -> Result<T, AppError> + Send + 'static,
{
    let token = bearer(headers);
    let st = state.clone();
    state
        .tx(move |tx, now| {
            let who = match usecase::logged_in(tx, now, &st, Kind::Api, token.as_deref()) {
                Ok(who) => who,
                // The refusal commits what the lookup wrote: an ended session's deletion and
                // the audit row of its end.
                Err(UseCaseError::Unauthenticated) => return Ok(Err(AppError::Unauthenticated)),
                Err(e) => return Err(e.into()),
            };
            f(tx, now, &st, &who).map(Ok)
        })
        .await?
}

/// [`as_user`] for an `f` that only reads: on a read-only connection, off the write lock,
/// unless the session lookup has to write (its `last_seen` is due, or it ended), in which case
/// the whole unit goes through the writer as [`as_user`].
async fn as_reader<T, F>(state: &AppState, headers: &HeaderMap, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Transaction<'_>, i64, &AppState, &LoggedIn) -> Result<T, AppError> + Send + 'static,
{
    let token = bearer(headers);
    let st = state.clone();
    let read = state
        .read(move |tx, now| match usecase::logged_in_read(tx, now, &st, Kind::Api, token.as_deref())? {
            Some(who) => Ok::<_, AppError>(Ok(f(tx, now, &st, &who)?)),
            None => Ok(Err(f)),
        })
        .await?;
    match read {
        Ok(out) => Ok(out),
        Err(f) => as_user(state, headers, f).await,
    }
}

/// A settled transfer as answered: the transfer, or 409 with it when it was rejected or ended
/// without moving money (`failed`, `expired`).
fn settled(t: Transfer) -> Result<Json<TransferEnvelope>, AppError> {
    match t.status {
        TransferStatus::Rejected => Err(AppError::Rejected(Box::new(t))),
        TransferStatus::Failed | TransferStatus::Expired => Err(AppError::TransferEnded(Box::new(t))),
        TransferStatus::Pending | TransferStatus::Executed => Ok(Json(TransferEnvelope { transfer: t })),
    }
}

async fn login_challenge(
    State(state): State<AppState>,
    Body(req): Body<LoginChallengeRequest>,
) -> Result<Json<LoginChallenge>, AppError> {
    extract::limit_login_challenge(&state, Some(&req.user)).await?;
    let st = state.clone();
    let c = state
        .tx(move |tx, now| Ok::<_, AppError>(auth::issue_login_challenge(tx, now, &st.cfg.auth, &req.user, None)?))
        .await?;
    Ok(Json(LoginChallenge {
        challenge_id: c.id,
        challenge: c.challenge,
        expires_at: c.expires_at,
        verifier_id: state.cfg.auth.verifier_id.clone(),
    }))
}

async fn login(State(state): State<AppState>, Body(code): Body<CodeSubmission>) -> Result<Json<LoginOk>, AppError> {
    // Before any session: counted per client address.
    extract::limit_code(&state, None).await?;
    let st = state.clone();
    // A refused code commits (its failure counts) and then answers `auth_failed`.
    let checked = state.tx(move |tx, now| Ok::<_, AppError>(usecase::api_login(tx, now, &st, &code)?)).await?;
    Ok(Json(checked.map_err(|_| AppError::AuthFailed)?))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, AppError> {
    as_user(&state, &headers, |tx, now, _, who| Ok(usecase::logout(tx, now, who)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn session_info(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<SessionInfo>, AppError> {
    let info = as_reader(&state, &headers, |_, _, st, who| {
        Ok(SessionInfo {
            user: who.user.clone(),
            expires_at: who.session.expires_at,
            idle_timeout_s: u64::try_from(st.cfg.session_idle).unwrap_or(0),
        })
    })
    .await?;
    Ok(Json(info))
}

async fn accounts(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Accounts>, AppError> {
    let accounts = as_reader(&state, &headers, |tx, _, _, who| Ok(ledger::accounts_of(tx, who.user_id)?)).await?;
    Ok(Json(Accounts { accounts }))
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Transfers>, AppError> {
    let limit = match q.limit.as_deref() {
        None => HISTORY_DEFAULT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=HISTORY_MAX).contains(l))
            .ok_or_else(|| AppError::invalid(format!("`limit` must be 1-{HISTORY_MAX}")))?,
    };
    let transfers =
        as_reader(&state, &headers, move |tx, now, _, who| Ok(ledger::history(tx, now, who.user_id, limit)?)).await?;
    Ok(Json(Transfers { transfers }))
}

async fn transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Transfer>, AppError> {
    let id = transfer_id(&id)?;
    let t = as_reader(&state, &headers, move |tx, now, _, who| {
        ledger::transfer(tx, now, who.user_id, &id)?.ok_or(AppError::NotFound)
    })
    .await?;
    Ok(Json(t))
}

async fn create_transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(req): Body<NewTransfer>,
) -> Result<Response, AppError> {
    let started =
        as_user(&state, &headers, move |tx, now, st, who| Ok(usecase::start_transfer(tx, now, st, who, &req)?)).await?;
    Ok(match started {
        Started::Challenge(c) => (StatusCode::CREATED, Json(*c)).into_response(),
        Started::Settled(t) => settled(t)?.into_response(),
        Started::Refused(e) => AppError::from(e).into_response(),
        Started::KindNotAllowed(kind) => AppError::TokenKindNotAllowed(kind).into_response(),
        Started::CardTooOld => AppError::CardTooOld.into_response(),
    })
}

async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(code): Body<TransferConfirmation>,
) -> Result<Json<TransferEnvelope>, AppError> {
    let id = transfer_id(&id)?;
    extract::limit_code(&state, bearer(&headers).as_deref()).await?;
    let t = as_user(&state, &headers, move |tx, now, st, who| {
        let c = usecase::Confirmation {
            challenge_id: &code.challenge_id,
            counter: Some(code.counter),
            otp: code.otp.as_str(),
            unverified_payee_ok: code.confirm_unverified_payee,
        };
        Ok(usecase::confirm_transfer(tx, now, st, who, &id, c)?)
    })
    .await?;
    match t {
        Ok(t) => settled(t),
        // The code was refused now: `auth_failed`, with the transfer it ended.
        Err(usecase::NotConfirmed { failure: Some(_), transfer }) => Err(AppError::CodeRefused(Box::new(transfer))),
        // It had ended before: no code was checked.
        Err(usecase::NotConfirmed { failure: None, transfer }) => Err(AppError::TransferEnded(Box::new(transfer))),
    }
}

/// `GET /challenges/{id}`: an open challenge for a signing service (the bridge's `serve`),
/// which shows the person what the card will sign instead of taking it from the page. No
/// session: knowing the id (128 random bits, on the page that shows the challenge anyway) is
/// what allows it; an unknown, used or expired id is `not_found` (docs/api.md says why this
/// reveals nothing the page did not show).
async fn challenge(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<ChallengeInfo>, AppError> {
    let id: ChallengeId = id.parse().map_err(|_| AppError::NotFound)?;
    let st = state.clone();
    let info = state
        .read(move |tx, now| Ok::<_, AppError>(usecase::challenge_info(tx, now, &st, &id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(info))
}

//! The JSON API (`/api/v1`), as documented in `docs/api.md`.
//!
//! Bodies are read as JSON values and each field is checked by name, so an error says which
//! field was wrong without ever echoing a value (an OTP must not come back in a message).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::session::{self, Kind, Session};
use super::{confirm_transfer, AppError, Confirmed};
use crate::auth::{self, Expect, Purpose, Signed, Submission};
use crate::ledger::{self, Created, NewTransfer, Status};
use crate::AppState;

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
}

fn body(bytes: &Bytes) -> Result<Value, AppError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| AppError::invalid("the body must be a JSON object"))?;
    if !v.is_object() {
        return Err(AppError::invalid("the body must be a JSON object"));
    }
    Ok(v)
}

fn field_str<'a>(v: &'a Value, name: &str, max: usize) -> Result<&'a str, AppError> {
    match v.get(name) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(s),
        Some(_) => Err(AppError::invalid(format!("field `{name}` must be a string of 1-{max} bytes"))),
        None => Err(AppError::invalid(format!("field `{name}` is missing"))),
    }
}

fn field_u64(v: &Value, name: &str) -> Result<u64, AppError> {
    match v.get(name) {
        Some(n) => {
            n.as_u64().ok_or_else(|| AppError::invalid(format!("field `{name}` must be a non-negative integer")))
        }
        None => Err(AppError::invalid(format!("field `{name}` is missing"))),
    }
}

fn challenge_id(v: &Value) -> Result<&str, AppError> {
    let id = field_str(v, "challenge_id", 64)?;
    if !session::well_formed(id) {
        return Err(AppError::invalid("field `challenge_id` must be 32 lower-case hex digits"));
    }
    Ok(id)
}

fn otp_field(v: &Value) -> Result<&str, AppError> {
    match v.get("otp") {
        Some(Value::String(s)) if s.len() <= 16 => Ok(s),
        Some(_) => Err(AppError::invalid("field `otp` must be a string of 8 digits")),
        None => Err(AppError::invalid("field `otp` is missing")),
    }
}

fn transfer_id_ok(id: &str) -> Result<(), AppError> {
    if ledger::valid_transfer_id(id) {
        Ok(())
    } else {
        Err(AppError::invalid("transfer id must be 1-64 characters of A-Z a-z 0-9 . _ ~ -"))
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// The caller's live API session, or `unauthenticated`.
fn require(
    state: &AppState,
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    token: &Option<String>,
) -> Result<(Session, i64), AppError> {
    let token = token.as_deref().ok_or(AppError::Unauthenticated)?;
    let s = session::lookup(tx, now, token, Kind::Api, state.cfg.session_idle)?.ok_or(AppError::Unauthenticated)?;
    let uid = s.user_id.ok_or(AppError::Unauthenticated)?;
    Ok((s, uid))
}

async fn login_challenge(State(state): State<AppState>, bytes: Bytes) -> Result<Response, AppError> {
    let v = body(&bytes)?;
    let user = field_str(&v, "user", 32)?.to_owned();
    if !auth::valid_user_name(&user) {
        return Err(AppError::invalid("field `user` must be 1-32 characters of a-z 0-9 . _ -"));
    }
    let st = state.clone();
    let c = state.tx(move |tx, now| Ok(auth::issue_login_challenge(tx, now, &st.cfg.auth, &user, None)?)).await?;
    Ok(Json(json!({
        "challenge_id": c.id,
        "challenge_hex": hex::encode_upper(c.bytes),
        "expires_at": c.expires_at,
        "verifier_id": state.cfg.auth.verifier_id,
    }))
    .into_response())
}

async fn login(State(state): State<AppState>, bytes: Bytes) -> Result<Response, AppError> {
    let v = body(&bytes)?;
    let cid = challenge_id(&v)?.to_owned();
    let counter = field_u64(&v, "counter")?;
    let otp = zeroize::Zeroizing::new(otp_field(&v)?.to_owned());
    let st = state.clone();
    let out = state
        .tx(move |tx, now| {
            let sub = Submission { challenge_id: &cid, counter: Some(counter), otp: &otp };
            let expect = Expect { purpose: Purpose::Login, binding: None, user_id: None };
            match auth::verify(tx, now, &st.cfg.auth, &st.key, &sub, &expect, Signed::Login)? {
                Err(_) => Ok(None),
                Ok(ok) => {
                    let (token, s) = session::create(
                        tx,
                        now,
                        Kind::Api,
                        Some(ok.user_id),
                        st.cfg.session_idle,
                        st.cfg.session_max,
                        st.cfg.max_visitor_sessions,
                    )?;
                    Ok(Some((token, ok.user, s.expires_at)))
                }
            }
        })
        .await?;
    let (token, user, expires_at) = out.ok_or(AppError::AuthFailed)?;
    Ok(Json(
        json!({ "token": token, "user": user, "expires_at": expires_at, "idle_timeout_s": state.cfg.session_idle }),
    )
    .into_response())
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let token = bearer(&headers);
    let st = state.clone();
    state
        .tx(move |tx, now| {
            let (s, _) = require(&st, tx, now, &token)?;
            Ok(session::delete(tx, &s)?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn session_info(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let token = bearer(&headers);
    let st = state.clone();
    let s = state.tx(move |tx, now| Ok(require(&st, tx, now, &token)?.0)).await?;
    Ok(Json(json!({ "user": s.user, "expires_at": s.expires_at, "idle_timeout_s": state.cfg.session_idle }))
        .into_response())
}

async fn accounts(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let token = bearer(&headers);
    let st = state.clone();
    let list = state
        .tx(move |tx, now| {
            let (_, uid) = require(&st, tx, now, &token)?;
            Ok(ledger::accounts_of(tx, uid)?)
        })
        .await?;
    Ok(Json(json!({ "accounts": list })).into_response())
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, AppError> {
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| AppError::invalid("`limit` must be 1-500"))?,
    };
    let token = bearer(&headers);
    let st = state.clone();
    let list = state
        .tx(move |tx, now| {
            let (_, uid) = require(&st, tx, now, &token)?;
            Ok(ledger::history(tx, uid, limit)?)
        })
        .await?;
    Ok(Json(json!({ "transfers": list })).into_response())
}

async fn transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    transfer_id_ok(&id)?;
    let token = bearer(&headers);
    let st = state.clone();
    let t = state
        .tx(move |tx, now| {
            let (_, uid) = require(&st, tx, now, &token)?;
            ledger::transfer(tx, uid, &id)?.ok_or(AppError::NotFound)
        })
        .await?;
    Ok(Json(t).into_response())
}

/// Body of a transfer request, checked field by field.
fn new_transfer(v: &Value) -> Result<NewTransfer, AppError> {
    let transfer_id = field_str(v, "transfer_id", 64)?;
    transfer_id_ok(transfer_id)?;
    let currency = field_str(v, "currency", 3)?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(AppError::invalid("field `currency` must be 3 upper-case letters"));
    }
    Ok(NewTransfer {
        transfer_id: transfer_id.to_owned(),
        from: field_str(v, "from", 64)?.to_owned(),
        to: field_str(v, "to", 64)?.to_owned(),
        amount_minor: field_u64(v, "amount_minor")?,
        currency: currency.to_owned(),
    })
}

enum CreateOutcome {
    Challenge(ledger::Transfer, auth::Challenge),
    Done(ledger::Transfer),
    Rejected(ledger::Transfer),
}

async fn create_transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, AppError> {
    let req = new_transfer(&body(&bytes)?)?;
    let token = bearer(&headers);
    let st = state.clone();
    let out = state
        .tx(move |tx, now| {
            let (s, uid) = require(&st, tx, now, &token)?;
            let actor = crate::audit::user_actor(s.user.as_deref().unwrap_or("?"));
            Ok(match ledger::create_transfer(tx, now, uid, &req, &actor)? {
                Created::Pending(t) => {
                    let c = auth::issue_challenge(
                        tx,
                        now,
                        &st.cfg.auth,
                        uid,
                        Purpose::Transfer(t.row_id),
                        Some(&s.binding()),
                    )?;
                    CreateOutcome::Challenge(t, c)
                }
                Created::Executed(t) => CreateOutcome::Done(t),
                Created::Rejected(t) => CreateOutcome::Rejected(t),
            })
        })
        .await?;
    Ok(match out {
        CreateOutcome::Challenge(t, c) => (
            StatusCode::CREATED,
            Json(json!({
                "challenge_id": c.id,
                "challenge_hex": hex::encode_upper(c.bytes),
                "expires_at": c.expires_at,
                "sign": {
                    "verifier_id": state.cfg.auth.verifier_id,
                    "transaction_id": t.transfer_id,
                    "amount_minor": t.amount_minor,
                    "currency": t.currency,
                    "payee": t.to,
                },
                "transfer": t,
            })),
        )
            .into_response(),
        CreateOutcome::Done(t) => Json(json!({ "transfer": t })).into_response(),
        CreateOutcome::Rejected(t) => insufficient(t),
    })
}

fn insufficient(t: ledger::Transfer) -> Response {
    let (status, code, message) = AppError::Ledger(ledger::LedgerError::InsufficientFunds).parts();
    (status, Json(json!({ "error": code, "message": message, "transfer": t }))).into_response()
}

async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, AppError> {
    transfer_id_ok(&id)?;
    let v = body(&bytes)?;
    let cid = challenge_id(&v)?.to_owned();
    let counter = field_u64(&v, "counter")?;
    let otp = zeroize::Zeroizing::new(otp_field(&v)?.to_owned());
    let token = bearer(&headers);
    let st = state.clone();
    let out = state
        .tx(move |tx, now| {
            let (s, _) = require(&st, tx, now, &token)?;
            let sub = Submission { challenge_id: &cid, counter: Some(counter), otp: &otp };
            confirm_transfer(&st, tx, now, &s, &id, &sub)
        })
        .await?;
    match out {
        Confirmed::Refused(_) => Err(AppError::AuthFailed),
        Confirmed::Final(t) if t.status == Status::Rejected => Ok(insufficient(t)),
        Confirmed::Final(t) => Ok(Json(json!({ "transfer": t })).into_response()),
    }
}

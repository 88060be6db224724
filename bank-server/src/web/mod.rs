//! HTTP: the JSON API ([`api`], `docs/api.md`) and the website ([`pages`], `docs/bank.md`),
//! with what both share: [`AppError`] (every refusal as a stable [`ErrorCode`]), the typed
//! body extractor ([`extract`]), the fallbacks, the security headers and the request log.
//!
//! Handlers are thin: they extract typed input, call one use case ([`crate::usecase`]) or one
//! role function inside [`AppState::tx`], and map the result to a wire answer or a page.

pub mod api;
pub mod extract;
pub mod form;
pub mod pages;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use paysim_wire::api::{ErrorBody, ErrorCode, Transfer, TransferStatus};

use crate::auth::AuthError;
use crate::db::DbError;
use crate::ledger::LedgerError;
use crate::session::SessionError;
use crate::usecase::UseCaseError;
use crate::AppState;
use paysim_wire::api::PayeeCheck;

/// Every error the web layer answers with. 4xx carry a stable code; 5xx are logged and
/// answered generically.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; the message names the field and its rule, never a value.
    #[error("{0}")]
    Invalid(String),
    #[error("authentication failed")]
    AuthFailed,
    #[error("not logged in, or the session ended")]
    Unauthenticated,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the form is out of date; start again")]
    Csrf,
    /// A refusal of the ledger a person can act on.
    #[error("{0}")]
    Ledger(LedgerError),
    /// A currency code (three upper-case letters) that the ISO table does not have, so not
    /// one the bank keeps either.
    #[error("the currency is not one the bank keeps ({list})", list = paysim_wire::money::KEPT_BY_BANK.join(", "))]
    UnkeptCurrency,
    /// A payee or source typed on a page that is no account number at all.
    #[error("unknown account {0:?}")]
    NoSuchAccount(String),
    /// The transfer was refused for good at confirmation (too little money then).
    #[error("insufficient funds")]
    Rejected(Box<Transfer>),
    /// A confirmation's code was refused, which ended the transfer (`failed`, or `expired`
    /// when its challenge had expired): `auth_failed`, with the transfer.
    #[error("the code was not accepted")]
    CodeRefused(Box<Transfer>),
    /// The transfer ended before without moving money (`failed` or `expired`).
    #[error("this transfer has ended without moving money")]
    TransferEnded(Box<Transfer>),
    /// The user's card signs transaction context version 1 only.
    #[error("your card signs neither the source account nor the payee's name, so the bank does not take transfers signed by it: ask the bank for a new card (logging in still works)")]
    CardTooOld,
    /// Verification of payee answered `no_match` or `unavailable` and the payer did not
    /// confirm a second time.
    #[error("{}: nothing was checked or moved; to pay this account anyway, confirm again with the second confirmation (API: \"confirm_unverified_payee\": true)", .0)]
    PayeeNotConfirmed(&'static str),
    /// A pending transfer made before the payee's name was signed.
    #[error("this transfer was asked for before the payee's name was part of a transfer: start a new one (a new transfer id)")]
    Unsignable,
    /// An abuse limit refused the request (`429`, with `Retry-After`).
    #[error("too many requests: try again in {retry_after_s} seconds")]
    RateLimited { retry_after_s: u64 },
    /// The storage failed under the bank (`503`; the detail goes to the log only).
    #[error("storage fault")]
    Storage(String),
    /// The bank's policy keeps this kind of token from confirming transfers.
    #[error("this bank does not let {0} tokens confirm transfers")]
    TokenKindNotAllowed(crate::auth::TokenKind),
    #[error("internal error")]
    Internal(String),
}

/// The code of a ledger refusal a client can act on; `None` for what is the bank's fault.
fn ledger_code(e: &LedgerError) -> Option<ErrorCode> {
    match e {
        LedgerError::TransferIdConflict => Some(ErrorCode::TransferIdConflict),
        LedgerError::InsufficientFunds => Some(ErrorCode::InsufficientFunds),
        LedgerError::UnknownAccount(_) => Some(ErrorCode::UnknownAccount),
        LedgerError::PayeeNotAccepted => Some(ErrorCode::PayeeNotAccepted),
        LedgerError::TooManyPending(_) => Some(ErrorCode::TooManyPendingTransfers),
        LedgerError::SameAccount => Some(ErrorCode::SameAccount),
        LedgerError::CurrencyMismatch => Some(ErrorCode::CurrencyMismatch),
        LedgerError::UnsupportedCurrency(_) => Some(ErrorCode::UnsupportedCurrency),
        LedgerError::InvalidAmount => Some(ErrorCode::InvalidAmount),
        LedgerError::UnknownTransfer(_) => Some(ErrorCode::NotFound),
        LedgerError::Sql(_)
        | LedgerError::InvalidAccountNumber
        | LedgerError::AccountExists(_)
        | LedgerError::BalanceLimit
        | LedgerError::UnknownUser(_) => None,
    }
}

/// The HTTP status of a ledger refusal.
fn ledger_status(e: &LedgerError) -> StatusCode {
    ledger_code(e).and_then(|c| StatusCode::from_u16(c.http_status()).ok()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl AppError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        AppError::Invalid(msg.into())
    }

    /// The stable error code and a message safe to show.
    pub fn parts(&self) -> (ErrorCode, String) {
        let internal = (ErrorCode::Internal, "internal error".to_owned());
        match self {
            AppError::Invalid(m) => (ErrorCode::InvalidRequest, m.clone()),
            AppError::AuthFailed => {
                (ErrorCode::AuthFailed, "authentication failed: get a new challenge and try again".into())
            }
            AppError::Unauthenticated => {
                (ErrorCode::Unauthenticated, "not logged in, or the session ended: log in again".into())
            }
            AppError::NotFound => (ErrorCode::NotFound, "not found".into()),
            AppError::MethodNotAllowed => (ErrorCode::MethodNotAllowed, "method not allowed".into()),
            AppError::Csrf => {
                (ErrorCode::Csrf, "the form is out of date or was not sent by this site: start again".into())
            }
            AppError::Ledger(e) => ledger_code(e).map_or(internal, |code| (code, e.to_string())),
            AppError::UnkeptCurrency => (ErrorCode::UnsupportedCurrency, self.to_string()),
            AppError::NoSuchAccount(_) => (ErrorCode::UnknownAccount, self.to_string()),
            AppError::Rejected(_) => (ErrorCode::InsufficientFunds, LedgerError::InsufficientFunds.to_string()),
            AppError::CodeRefused(t) => (
                ErrorCode::AuthFailed,
                match t.status {
                    TransferStatus::Failed | TransferStatus::Expired => format!(
                        "the code was not accepted, so transfer {} has {} and nothing was moved: start a new transfer (a new transfer id)",
                        t.transfer_id,
                        t.status.as_str()
                    ),
                    _ => format!(
                        "the code was not accepted: the challenge is not one of transfer {}, or is no longer open; the transfer stays {}",
                        t.transfer_id,
                        t.status.as_str()
                    ),
                },
            ),
            AppError::TransferEnded(t) => (
                ErrorCode::TransferEnded,
                format!(
                    "transfer {} has {} without moving money: start a new transfer (a new transfer id)",
                    t.transfer_id,
                    t.status.as_str()
                ),
            ),
            AppError::RateLimited { .. } => (ErrorCode::RateLimited, self.to_string()),
            AppError::Storage(_) => (
                ErrorCode::StorageUnavailable,
                "the bank cannot write its records right now; nothing was done: try again later".into(),
            ),
            AppError::TokenKindNotAllowed(kind) => (
                ErrorCode::TokenKindNotAllowed,
                match kind {
                    crate::auth::TokenKind::Oath => {
                        "this bank does not let an OATH key (YubiKey, Nitrokey or other OATH \
                        credential) confirm transfers; it can still log you in. Ask the bank for a PAYSIM card to \
                        make transfers"
                            .to_owned()
                    }
                    crate::auth::TokenKind::Paysim => self.to_string(),
                },
            ),
            AppError::CardTooOld => (ErrorCode::CardTooOld, self.to_string()),
            AppError::PayeeNotConfirmed(_) => (ErrorCode::PayeeNotConfirmed, self.to_string()),
            AppError::Unsignable => (ErrorCode::TransferIdConflict, self.to_string()),
            AppError::Internal(_) => internal,
        }
    }

    /// The HTTP status of the code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.parts().0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The cause of a 5xx goes to the log (the answer says only "internal error").
    fn log(&self) {
        match self {
            AppError::Storage(detail) => tracing::error!(error = %detail, "storage fault: request refused"),
            AppError::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            other if other.parts().0 == ErrorCode::Internal => tracing::error!(error = %other, "internal error"),
            _ => {}
        }
    }

    /// A database error: the storage's fault ([`crate::db::is_storage_fault`]) or the bank's.
    fn sql(e: &rusqlite::Error, detail: String) -> Self {
        if crate::db::is_storage_fault(e) {
            AppError::Storage(detail)
        } else {
            AppError::Internal(detail)
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Storage(detail) => AppError::Storage(detail),
            DbError::Sql(e) => AppError::sql(&e, e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::sql(&e, e.to_string())
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            // A logged-in user whose token was revoked meanwhile cannot get a challenge.
            AuthError::NoActiveToken | AuthError::TokenRevoked(_) => AppError::AuthFailed,
            AuthError::Sql(e) => e.into(),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Sql(e) => e.into(),
            LedgerError::UnknownTransfer(_) => AppError::NotFound,
            other => AppError::Ledger(other),
        }
    }
}

impl From<SessionError> for AppError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Sql(e) => e.into(),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<UseCaseError> for AppError {
    fn from(e: UseCaseError) -> Self {
        match e {
            UseCaseError::Auth(e) => e.into(),
            UseCaseError::Ledger(e) => e.into(),
            UseCaseError::Session(e) => e.into(),
            UseCaseError::Sql(e) => e.into(),
            UseCaseError::Unauthenticated => AppError::Unauthenticated,
            UseCaseError::NoSuchTransfer => AppError::NotFound,
            UseCaseError::TokenKindNotAllowed(kind) => AppError::TokenKindNotAllowed(kind),
            UseCaseError::PayeeNotConfirmed(check) => AppError::PayeeNotConfirmed(match check {
                PayeeCheck::Unavailable => "the bank could not check the payee's name against the account",
                _ => "the payee's name does not match the name on the account",
            }),
            UseCaseError::UnsignableTransfer => AppError::Unsignable,
        }
    }
}

/// The API's error body: `{"error": code, "message": text}` (and the transfer, when it was
/// rejected).
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let (error, message) = self.parts();
        let retry_after = match &self {
            AppError::RateLimited { retry_after_s } => Some(*retry_after_s),
            _ => None,
        };
        let transfer = match self {
            AppError::Rejected(t) | AppError::CodeRefused(t) | AppError::TransferEnded(t) => Some(*t),
            _ => None,
        };
        let mut res = (status, Json(ErrorBody { error, message, transfer })).into_response();
        if let Some(s) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

async fn fallback(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        AppError::NotFound.into_response()
    } else {
        pages::not_found(state, headers).await
    }
}

async fn method_not_allowed(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        AppError::MethodNotAllowed.into_response()
    } else {
        pages::wrong_method(state, headers).await
    }
}

/// The Content-Security-Policy of every answer. Scripts only from the bank itself (the one
/// file `/static/sign.js`: no inline script, no inline handler, no `eval`), and requests from
/// a page only to the customers' signing service when one is set.
pub fn content_security_policy(cfg: &crate::Config) -> HeaderValue {
    let connect = match &cfg.signing_service {
        Some(s) => format!("; connect-src {}", s.as_str()),
        None => String::new(),
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'{connect}; style-src 'unsafe-inline'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

fn security_headers(mut res: Response, csp: HeaderValue) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// How long browsers keep to HTTPS for this origin after an HTTPS answer (one year). Sent on
/// HTTPS answers only (RFC 6797 section 7.2: a plain-HTTP answer must not carry it); no
/// `includeSubDomains`, which would bind every other site under the bank's domain too.
const HSTS: &str = "max-age=31536000";

async fn hsts(mut res: Response) -> Response {
    res.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    res
}

/// The application as served over HTTPS: every answer also carries `Strict-Transport-Security`.
pub fn https(app: Router) -> Router {
    app.layer(axum::middleware::map_response(hsts))
}

/// What axum's extractors refuse (a body over the limit, a wrong `Content-Type`, a path or
/// query that does not decode, a form with a missing field) comes back as bare text; this
/// gives it the API's JSON error shape or the website's error page, with a fixed message that
/// never echoes the input. The status stays a 4xx.
async fn uniform_rejections(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let status = res.status();
    let bare = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if !status.is_client_error() || !bare {
        return res;
    }
    let (status, code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (status, ErrorCode::BodyTooLarge, "the request body is larger than 64 KiB"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            status,
            ErrorCode::InvalidRequest,
            "wrong Content-Type: the API takes application/json, forms application/x-www-form-urlencoded",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            "the request could not be read: check the path, the query and the body's format",
        ),
    };
    if api {
        (status, Json(ErrorBody { error: code, message: message.to_owned(), transfer: None })).into_response()
    } else {
        pages::error_page(status, &format!("{message}. Start again from the first page."))
    }
}

/// One log line per request: method, path (no query, no body), status, time. Never a header
/// or a body, so no session token, CSRF token or code reaches the log.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::info!(%method, %path, status = res.status().as_u16(), micros, "request");
    res
}

/// The whole application: API and pages, with the shared fallbacks and headers.
pub fn app(state: AppState) -> Router {
    let csp = content_security_policy(&state.cfg);
    Router::new()
        .merge(api::router())
        .merge(pages::router())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(uniform_rejections))
        .layer(axum::middleware::map_response(move |res: Response| {
            let csp = csp.clone();
            async move { security_headers(res, csp) }
        }))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn(extract::client_scope))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_answers_with_its_documented_status() {
        for (e, status) in [
            (AppError::invalid("x"), 400),
            (AppError::AuthFailed, 401),
            (AppError::Unauthenticated, 401),
            (AppError::Csrf, 403),
            (AppError::NotFound, 404),
            (AppError::Ledger(LedgerError::InsufficientFunds), 409),
            (AppError::Ledger(LedgerError::SameAccount), 422),
            (AppError::Ledger(LedgerError::BalanceLimit), 500),
            (AppError::NoSuchAccount("x".into()), 422),
            (AppError::Internal("secret detail".into()), 500),
        ] {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
        }
        assert_eq!(AppError::Internal("secret detail".into()).parts().1, "internal error");
    }
}

//! The website role: the JSON API (`api`) and the HTML pages (`pages`), sessions, CSRF and the
//! mapping of errors to HTTP. It owns the `sessions` table and otherwise only calls the public
//! functions of `auth` and `ledger`.

pub mod api;
pub mod pages;
pub mod session;

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rusqlite::Transaction;

use crate::auth::{self, AuthError, Expect, Failure, Purpose, Signed, Submission};
use crate::db::{self, DbError};
use crate::ledger::{self, LedgerError, Transfer};
use crate::AppState;

/// Every error the website answers with. 4xx carry a stable code; 5xx are logged and answered
/// generically.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
    #[error("{0}")]
    Ledger(LedgerError),
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        AppError::Invalid(msg.into())
    }

    /// HTTP status, stable error code and a message safe to show.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            AppError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid_request", m.clone()),
            AppError::AuthFailed => (
                StatusCode::UNAUTHORIZED,
                "auth_failed",
                "authentication failed: get a new challenge and try again".into(),
            ),
            AppError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "not logged in, or the session ended: log in again".into(),
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".into()),
            AppError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed".into())
            }
            AppError::Csrf => (
                StatusCode::FORBIDDEN,
                "csrf",
                "the form is out of date or was not sent by this site: start again".into(),
            ),
            AppError::Ledger(e) => {
                let (status, code) = match e {
                    LedgerError::TransferIdConflict => (StatusCode::CONFLICT, "transfer_id_conflict"),
                    LedgerError::InsufficientFunds => (StatusCode::CONFLICT, "insufficient_funds"),
                    LedgerError::UnknownAccount(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_account"),
                    LedgerError::SameAccount => (StatusCode::UNPROCESSABLE_ENTITY, "same_account"),
                    LedgerError::CurrencyMismatch => (StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch"),
                    LedgerError::UnsupportedCurrency(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_currency"),
                    LedgerError::InvalidAmount => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount"),
                    LedgerError::InvalidTransferId => (StatusCode::BAD_REQUEST, "invalid_request"),
                    _ => return (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into()),
                };
                (status, code, e.to_string())
            }
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into()),
        }
    }

    fn log(&self) {
        if let AppError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        if let AppError::Ledger(e) = self {
            if self.parts().0.is_server_error() {
                tracing::error!(error = %e, "internal error");
            }
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            // A logged-in user whose token was revoked meanwhile cannot get a challenge.
            AuthError::NoActiveToken | AuthError::TokenRevoked(_) => AppError::AuthFailed,
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Sql(e) => AppError::Internal(e.to_string()),
            other => AppError::Ledger(other),
        }
    }
}

/// JSON error body for the API.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let (status, code, message) = self.parts();
        (status, axum::Json(serde_json::json!({ "error": code, "message": message }))).into_response()
    }
}

impl AppState {
    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on a blocking thread; commits on `Ok`.
    /// `f` gets the time read once the write lock is held, so a wait for a pool slot or for
    /// SQLite's lock cannot let a challenge or a session outlive its expiry.
    pub async fn tx<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, i64) -> Result<T, AppError> + Send + 'static,
    {
        let clock = self.clock.clone();
        self.db.run(move |conn| db::immediate(conn, |tx| f(tx, clock.now()))).await
    }
}

/// How a confirmation ended.
pub enum Confirmed {
    /// Executed or rejected now, or earlier (a retry).
    Final(Transfer),
    /// The code was refused; the transfer stays pending.
    Refused(Failure),
}

/// Confirms a pending transfer with the card's code: check, consume, advance and move money in
/// the caller's transaction. A transfer already final is returned as it is.
pub fn confirm_transfer(
    state: &AppState,
    tx: &Transaction<'_>,
    now: i64,
    s: &session::Session,
    transfer_id: &str,
    sub: &Submission<'_>,
) -> Result<Confirmed, AppError> {
    let user_id = s.user_id.ok_or(AppError::Unauthenticated)?;
    let actor = crate::audit::user_actor(s.user.as_deref().unwrap_or("?"));
    let t = ledger::transfer(tx, user_id, transfer_id)?.ok_or(AppError::NotFound)?;
    if t.status != ledger::Status::Pending {
        return Ok(Confirmed::Final(t));
    }
    let currency: [u8; 3] = t.currency.as_bytes().try_into().map_err(|_| AppError::Internal("bad currency".into()))?;
    let binding = s.binding();
    let expect = Expect { purpose: Purpose::Transfer(t.row_id), binding: Some(&binding), user_id: Some(user_id) };
    let signed =
        Signed::Tx { transaction_id: &t.transfer_id, amount_minor: t.amount_minor, currency: &currency, payee: &t.to };
    match auth::verify(tx, now, &state.cfg.auth, &state.key, sub, &expect, signed)? {
        Err(f) => Ok(Confirmed::Refused(f)),
        Ok(_) => Ok(Confirmed::Final(ledger::execute_transfer(tx, now, user_id, transfer_id, &actor)?)),
    }
}

/// Reads what a person typed: `COUNTER-OTP` (e.g. `17-12345678`) or the 8 digits alone.
/// Spaces are ignored.
pub fn parse_code(text: &str) -> Option<(Option<u64>, String)> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (counter, otp) = match clean.split_once('-') {
        Some((c, o)) => {
            if c.is_empty() || c.len() > 19 || !c.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (Some(c.parse().ok()?), o)
        }
        None => (None, clean.as_str()),
    };
    (otp.len() == 8 && otp.bytes().all(|b| b.is_ascii_digit())).then(|| (counter, otp.to_owned()))
}

async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        AppError::NotFound.into_response()
    } else {
        pages::error_page(StatusCode::NOT_FOUND, "There is no such page.")
    }
}

async fn method_not_allowed(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        AppError::MethodNotAllowed.into_response()
    } else {
        pages::error_page(StatusCode::METHOD_NOT_ALLOWED, "That page does not take this kind of request.")
    }
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
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
        StatusCode::PAYLOAD_TOO_LARGE => (status, "body_too_large", "the request body is larger than 64 KiB"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            status,
            "invalid_request",
            "wrong Content-Type: the API takes application/json, forms application/x-www-form-urlencoded",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request could not be read: check the path, the query and the body's format",
        ),
    };
    if api {
        (status, axum::Json(serde_json::json!({ "error": code, "message": message }))).into_response()
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
    tracing::info!(%method, %path, status = res.status().as_u16(), micros = start.elapsed().as_micros() as u64, "request");
    res
}

/// The whole application: API and pages, with the shared fallbacks and headers.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(pages::router())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(uniform_rejections))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    proptest::proptest! {
        #[test]
        fn no_typed_code_panics(text in ".{0,48}") {
            if let Some((_, otp)) = parse_code(&text) {
                proptest::prop_assert_eq!(otp.len(), 8);
            }
        }

        #[test]
        fn no_amount_or_token_file_panics(text in ".{0,80}", cur in "[A-Z]{3}") {
            if let Some(v) = crate::ledger::parse_amount(&text, &cur) {
                proptest::prop_assert!((1..=crate::ledger::MAX_AMOUNT).contains(&v));
            }
            let _ = crate::ops::parse_token_file(&text);
        }
    }

    #[test]
    fn codes_people_type() {
        assert_eq!(parse_code("17-12345678"), Some((Some(17), "12345678".into())));
        assert_eq!(parse_code(" 0 - 1234 5678 "), Some((Some(0), "12345678".into())));
        assert_eq!(parse_code("12345678"), Some((None, "12345678".into())));
        for bad in ["", "-12345678", "x-12345678", "1-1234567", "1-123456789", "1234567a", "1-2-12345678"] {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
    }
}

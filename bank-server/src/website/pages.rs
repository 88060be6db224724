//! The website for a person with a browser: server-rendered HTML, no JavaScript. Page flow in
//! `docs/bank.md`.
//!
//! Every page runs in one database transaction that also looks up (or starts) the session.
//! Every form carries the session's CSRF token; cookies are `HttpOnly; SameSite=Strict`, plus
//! `Secure` and the `__Host-` prefix when the public URL is https.

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::session::{self, Kind, Session};
use super::{confirm_transfer, parse_code, AppError, Confirmed};
use crate::auth::{self, Expect, Purpose, Signed, Submission};
use crate::ledger::{self, format_amount, Created, NewTransfer, Status};
use crate::master_key::random_bytes;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_form).post(login_start))
        .route("/login/code", post(login_code))
        .route("/welcome", get(welcome))
        .route("/accounts", get(accounts))
        .route("/transfer", get(transfer_form).post(transfer_start))
        .route("/transfer/confirm", post(transfer_confirm))
        .route("/logout", post(logout))
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em;line-height:1.4}\
table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}\
.num{text-align:right;font-family:monospace}code,.mono{font-family:monospace;word-break:break-all}\
nav form{display:inline}nav a,nav button{margin-right:1em}.err{color:#a00}";

fn layout(title: &str, nav: Option<(&str, &str)>, body: &str) -> String {
    let nav = match nav {
        Some((user, csrf)) => format!(
            "<nav><b>{}</b> · <a href=\"/welcome\">Home</a><a href=\"/accounts\">Accounts</a><a href=\"/transfer\">Transfer</a>\
             <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Log out</button></form></nav><hr>",
            esc(user),
            esc(csrf)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - PAYSIM Bank</title>\
         <style>{STYLE}</style></head><body>{nav}<h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    )
}

/// The error page: a status, a sentence for a person, and a way back.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!("<p class=\"err\">{}</p><p><a href=\"/\">Back to the start</a></p>", esc(message));
    (status, Html(layout("Something went wrong", None, &body))).into_response()
}

impl AppState {
    fn cookie_name(&self) -> &'static str {
        if self.cfg.secure_cookies {
            "__Host-bank_session"
        } else {
            "bank_session"
        }
    }

    fn set_cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.cfg.secure_cookies { "; Secure" } else { "" };
        let v = format!("{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}", self.cookie_name());
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.cfg.secure_cookies { "; Secure" } else { "" };
        let v = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", self.cookie_name());
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn cookie(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }
}

/// What a page handler produces inside its transaction.
enum Page {
    Html(StatusCode, String),
    /// 303 to a path, optionally setting or clearing the cookie.
    Redirect(&'static str, Option<Cookie>),
    /// A page plus a new cookie.
    HtmlWithCookie(String, String),
    /// A refused code: the transaction commits (the failure counts), then this error page.
    Refused(&'static str),
}

enum Cookie {
    Set(String),
    Clear,
}

fn render(state: &AppState, page: Result<Page, AppError>) -> Response {
    match page {
        Ok(Page::Html(status, html)) => (status, Html(html)).into_response(),
        Ok(Page::HtmlWithCookie(html, token)) => {
            let mut r = Html(html).into_response();
            r.headers_mut().insert(header::SET_COOKIE, state.set_cookie(&token));
            r
        }
        Ok(Page::Refused(message)) => error_page(StatusCode::UNAUTHORIZED, message),
        Ok(Page::Redirect(to, cookie)) => {
            let mut r = Redirect::to(to).into_response();
            match cookie {
                Some(Cookie::Set(token)) => {
                    r.headers_mut().insert(header::SET_COOKIE, state.set_cookie(&token));
                }
                Some(Cookie::Clear) => {
                    r.headers_mut().insert(header::SET_COOKIE, state.clear_cookie());
                }
                None => {}
            }
            r
        }
        Err(e) => {
            // The cause of a 5xx goes to the log (the page shows only "internal error").
            e.log();
            let (status, _, message) = e.parts();
            match e {
                AppError::Unauthenticated => Redirect::to("/login").into_response(),
                _ => error_page(status, &message),
            }
        }
    }
}

fn session_of(
    state: &AppState,
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    cookie: &Option<String>,
) -> Result<Option<Session>, AppError> {
    match cookie {
        Some(c) => Ok(session::lookup(tx, now, c, Kind::Web, state.cfg.session_idle)?),
        None => Ok(None),
    }
}

/// A logged-in session, or `Unauthenticated` (which renders as a redirect to /login).
fn logged_in(
    state: &AppState,
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    cookie: &Option<String>,
) -> Result<(Session, i64, String), AppError> {
    let s = session_of(state, tx, now, cookie)?.ok_or(AppError::Unauthenticated)?;
    let uid = s.user_id.ok_or(AppError::Unauthenticated)?;
    let user = s.user.clone().unwrap_or_default();
    Ok((s, uid, user))
}

fn check_csrf(s: &Session, submitted: &str) -> Result<(), AppError> {
    if s.csrf_ok(submitted) {
        Ok(())
    } else {
        Err(AppError::Csrf)
    }
}

async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            let logged = session_of(&st, tx, now, &cookie)?.and_then(|s| s.user_id).is_some();
            Ok(Page::Redirect(if logged { "/welcome" } else { "/login" }, None))
        })
        .await;
    render(&state, page)
}

fn login_form_html(csrf: &str, note: &str) -> String {
    let body = format!(
        "{note}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <p><label>User name <input name=\"user\" autocomplete=\"username\" required maxlength=\"32\" autofocus></label></p>\
         <p><button>Continue</button></p></form>\
         <p>Next you will see a challenge for your card. Keep the card and the <code>reader-bridge</code> ready.</p>",
        esc(csrf)
    );
    layout("Log in", None, &body)
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            match session_of(&st, tx, now, &cookie)? {
                Some(s) if s.user_id.is_some() => Ok(Page::Redirect("/welcome", None)),
                Some(s) => Ok(Page::Html(StatusCode::OK, login_form_html(&s.csrf, ""))),
                None => {
                    // A visitor's session: it carries the CSRF token and the login challenge.
                    let (token, s) = session::create(
                        tx,
                        now,
                        Kind::Web,
                        None,
                        st.cfg.session_idle,
                        st.cfg.session_max,
                        st.cfg.max_visitor_sessions,
                    )?;
                    Ok(Page::HtmlWithCookie(login_form_html(&s.csrf, ""), token))
                }
            }
        })
        .await;
    render(&state, page)
}

#[derive(Deserialize)]
struct LoginStart {
    csrf: String,
    user: String,
}

async fn login_start(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<LoginStart>) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            let s = session_of(&st, tx, now, &cookie)?.ok_or(AppError::Csrf)?;
            check_csrf(&s, &f.csrf)?;
            let user = f.user.trim().to_ascii_lowercase();
            if !auth::valid_user_name(&user) {
                let note = "<p class=\"err\">A user name is 1-32 characters of a-z, 0-9, dot, underscore and hyphen.</p>";
                return Ok(Page::Html(StatusCode::BAD_REQUEST, login_form_html(&s.csrf, note)));
            }
            let c = auth::issue_login_challenge(tx, now, &st.cfg.auth, &user, Some(&s.binding()))?;
            let ch = hex::encode_upper(c.bytes);
            let vid = &st.cfg.auth.verifier_id;
            let body = format!(
                "<p>Log in as <b>{user}</b> with your card.</p>\
                 <table><tr><th>Bank (verifier id)</th><td class=\"mono\" id=\"verifier-id\">{vid}</td></tr>\
                 <tr><th>Challenge</th><td class=\"mono\" id=\"challenge\">{ch}</td></tr>\
                 <tr><th>Valid for</th><td>{ttl} seconds</td></tr></table>\
                 <p>On your computer with the card reader, run</p>\
                 <pre class=\"mono\">reader-bridge respond --server {url} --challenge {ch}</pre>\
                 <p>check that it shows this bank, enter your PIN there, and type the code it prints \
                 (<code>COUNTER-OTP</code>, e.g. <code>17-12345678</code>; the 8 digits alone also work).</p>\
                 <form method=\"post\" action=\"/login/code\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"challenge_id\" value=\"{cid}\">\
                 <p><label>Code <input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required maxlength=\"40\" autofocus></label></p>\
                 <p><button>Log in</button></p></form>",
                user = esc(&user),
                vid = esc(vid),
                ttl = st.cfg.auth.challenge_ttl,
                url = esc(&st.cfg.public_url),
                csrf = esc(&s.csrf),
                cid = esc(&c.id),
            );
            Ok(Page::Html(StatusCode::OK, layout("Your card's answer", None, &body)))
        })
        .await;
    render(&state, page)
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    challenge_id: String,
    code: String,
    #[serde(default)]
    transfer_id: String,
}

async fn login_code(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let code = zeroize::Zeroizing::new(f.code);
    let page = state
        .tx(move |tx, now| {
            let s = session_of(&st, tx, now, &cookie)?.ok_or(AppError::Csrf)?;
            check_csrf(&s, &f.csrf)?;
            if s.user_id.is_some() {
                return Ok(Page::Redirect("/welcome", None));
            }
            let Some((counter, otp)) = parse_code(&code) else {
                return Err(AppError::invalid(
                    "The code is COUNTER-OTP (for example 17-12345678) or 8 digits. Start again.",
                ));
            };
            let otp = zeroize::Zeroizing::new(otp);
            let binding = s.binding();
            let sub = Submission { challenge_id: &f.challenge_id, counter, otp: &otp };
            let expect = Expect { purpose: Purpose::Login, binding: Some(&binding), user_id: None };
            match auth::verify(tx, now, &st.cfg.auth, &st.key, &sub, &expect, Signed::Login)? {
                Err(_) => Ok(Page::Refused("The code was not accepted. Log in again with a new challenge.")),
                Ok(ok) => {
                    // A new session id at login: the visitor's id is thrown away.
                    session::delete(tx, &s)?;
                    let (token, _) = session::create(
                        tx,
                        now,
                        Kind::Web,
                        Some(ok.user_id),
                        st.cfg.session_idle,
                        st.cfg.session_max,
                        st.cfg.max_visitor_sessions,
                    )?;
                    Ok(Page::Redirect("/welcome", Some(Cookie::Set(token))))
                }
            }
        })
        .await;
    render(&state, page)
}

async fn welcome(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            let (s, uid, user) = logged_in(&st, tx, now, &cookie)?;
            let n = ledger::accounts_of(tx, uid)?.len();
            let body = format!(
                "<p>Welcome, <b>{}</b>. You have {n} account(s).</p>\
                 <ul><li><a href=\"/accounts\">Accounts and history</a></li><li><a href=\"/transfer\">Make a transfer</a></li></ul>\
                 <p>For your safety the session ends after 5 minutes without activity.</p>",
                esc(&user)
            );
            Ok(Page::Html(StatusCode::OK, layout("Welcome", Some((&user, &s.csrf)), &body)))
        })
        .await;
    render(&state, page)
}

async fn accounts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            let (s, uid, user) = logged_in(&st, tx, now, &cookie)?;
            let mut body = String::from("<h2>Accounts</h2><table><tr><th>Account</th><th>Currency</th><th>Balance</th></tr>");
            for a in ledger::accounts_of(tx, uid)? {
                body.push_str(&format!(
                    "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                    esc(&a.number),
                    esc(&a.currency),
                    esc(&format_amount(a.balance_minor, &a.currency))
                ));
            }
            body.push_str("</table><h2>History</h2><table><tr><th>Transfer id</th><th>From</th><th>To</th><th>Amount</th><th>Status</th></tr>");
            for t in ledger::history(tx, uid, 100)? {
                let amount = i64::try_from(t.amount_minor).unwrap_or(0);
                let sign = if t.direction == "in" { "+" } else { "-" };
                let status = match t.status {
                    Status::Pending => "pending",
                    Status::Executed => "executed",
                    Status::Rejected => "rejected",
                };
                body.push_str(&format!(
                    "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"num\">{sign}{} {}</td><td>{status}</td></tr>",
                    esc(&t.transfer_id),
                    esc(&t.from),
                    esc(&t.to),
                    esc(&format_amount(amount, &t.currency)),
                    esc(&t.currency)
                ));
            }
            body.push_str("</table>");
            Ok(Page::Html(StatusCode::OK, layout("Accounts", Some((&user, &s.csrf)), &body)))
        })
        .await;
    render(&state, page)
}

async fn transfer_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            let (s, uid, user) = logged_in(&st, tx, now, &cookie)?;
            let mut options = String::new();
            for a in ledger::accounts_of(tx, uid)? {
                options.push_str(&format!(
                    "<option value=\"{n}\">{n} ({} {})</option>",
                    esc(&format_amount(a.balance_minor, &a.currency)),
                    esc(&a.currency),
                    n = esc(&a.number)
                ));
            }
            // The transfer id is fixed when the form is shown, so sending the form twice
            // cannot create two transfers.
            let transfer_id = format!("web-{}", hex::encode(random_bytes::<12>().map_err(|e| AppError::Internal(e.to_string()))?));
            let body = format!(
                "<form method=\"post\" action=\"/transfer\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"transfer_id\" value=\"{tid}\">\
                 <p><label>From <select name=\"from\">{options}</select></label></p>\
                 <p><label>To (account number) <input name=\"to\" required maxlength=\"34\"></label></p>\
                 <p><label>Amount <input name=\"amount\" inputmode=\"decimal\" required maxlength=\"20\" placeholder=\"12.34\"></label>\
                 (in the currency of the source account)</p>\
                 <p><button>Continue</button></p></form>\
                 <p>The next page shows exactly what your card will sign.</p>",
                csrf = esc(&s.csrf),
                tid = esc(&transfer_id),
            );
            Ok(Page::Html(StatusCode::OK, layout("Transfer", Some((&user, &s.csrf)), &body)))
        })
        .await;
    render(&state, page)
}

#[derive(Deserialize)]
struct TransferStart {
    csrf: String,
    transfer_id: String,
    from: String,
    to: String,
    amount: String,
}

fn result_html(t: &ledger::Transfer) -> String {
    let amount = format_amount(i64::try_from(t.amount_minor).unwrap_or(0), &t.currency);
    let what = match t.status {
        Status::Executed => "The transfer was executed.",
        Status::Rejected => "The transfer was refused: the balance is too low.",
        Status::Pending => "The transfer is still waiting for your card's code.",
    };
    format!(
        "<p><b>{what}</b></p><table><tr><th>Transfer id</th><td class=\"mono\">{}</td></tr>\
         <tr><th>From</th><td class=\"mono\">{}</td></tr><tr><th>To</th><td class=\"mono\">{}</td></tr>\
         <tr><th>Amount</th><td class=\"num\">{} {}</td></tr></table>\
         <p><a href=\"/accounts\">Accounts and history</a> · <a href=\"/transfer\">Another transfer</a></p>",
        esc(&t.transfer_id),
        esc(&t.from),
        esc(&t.to),
        esc(&amount),
        esc(&t.currency)
    )
}

async fn transfer_start(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<TransferStart>) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            let (s, uid, user) = logged_in(&st, tx, now, &cookie)?;
            check_csrf(&s, &f.csrf)?;
            if !ledger::valid_transfer_id(&f.transfer_id) {
                return Err(AppError::invalid("The form is damaged. Start the transfer again."));
            }
            let from = ledger::accounts_of(tx, uid)?
                .into_iter()
                .find(|a| a.number == f.from)
                .ok_or_else(|| AppError::Ledger(ledger::LedgerError::UnknownAccount(f.from.clone())))?;
            let amount_minor = ledger::parse_amount(&f.amount, &from.currency).ok_or_else(|| {
                AppError::invalid(format!(
                    "The amount must be a positive number with at most {} decimals, like 12.34.",
                    from.exponent
                ))
            })?;
            let req = NewTransfer {
                transfer_id: f.transfer_id.clone(),
                from: from.number.clone(),
                to: f.to.trim().to_owned(),
                amount_minor,
                currency: from.currency.clone(),
            };
            let actor = crate::audit::user_actor(&user);
            let t = match ledger::create_transfer(tx, now, uid, &req, &actor)? {
                Created::Pending(t) => t,
                Created::Executed(t) | Created::Rejected(t) => {
                    return Ok(Page::Html(StatusCode::OK, layout("Transfer result", Some((&user, &s.csrf)), &result_html(&t))))
                }
            };
            let c = auth::issue_challenge(tx, now, &st.cfg.auth, uid, Purpose::Transfer(t.row_id), Some(&s.binding()))?;
            let ch = hex::encode_upper(c.bytes);
            let vid = &st.cfg.auth.verifier_id;
            let amount = format_amount(i64::try_from(t.amount_minor).unwrap_or(0), &t.currency);
            let body = format!(
                "<p>Your card will sign exactly these fields. Check them on the bridge's screen too.</p>\
                 <table><tr><th>Bank (verifier id)</th><td class=\"mono\" id=\"verifier-id\">{vid}</td></tr>\
                 <tr><th>Transaction id</th><td class=\"mono\" id=\"transaction-id\">{tid}</td></tr>\
                 <tr><th>Amount</th><td class=\"num\">{amount} {cur} (<span id=\"amount-minor\">{minor}</span> minor units)</td></tr>\
                 <tr><th>Currency</th><td class=\"mono\" id=\"currency\">{cur}</td></tr>\
                 <tr><th>Payee</th><td class=\"mono\" id=\"payee\">{payee}</td></tr>\
                 <tr><th>From</th><td class=\"mono\">{from}</td></tr>\
                 <tr><th>Challenge</th><td class=\"mono\" id=\"challenge\">{ch}</td></tr>\
                 <tr><th>Valid for</th><td>{ttl} seconds</td></tr></table>\
                 <p>On your computer with the card reader, run</p>\
                 <pre class=\"mono\">reader-bridge respond --server {url} --challenge {ch} --transaction-id {tid} --amount-minor {minor} --currency {cur} --payee {payee}</pre>\
                 <p>and type the code it prints (<code>COUNTER-OTP</code>, or the 8 digits alone).</p>\
                 <form method=\"post\" action=\"/transfer/confirm\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"challenge_id\" value=\"{cid}\">\
                 <input type=\"hidden\" name=\"transfer_id\" value=\"{tid}\">\
                 <p><label>Code <input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required maxlength=\"40\" autofocus></label></p>\
                 <p><button>Sign and send</button></p></form>",
                vid = esc(vid),
                tid = esc(&t.transfer_id),
                amount = esc(&amount),
                cur = esc(&t.currency),
                minor = t.amount_minor,
                payee = esc(&t.to),
                from = esc(&t.from),
                ttl = st.cfg.auth.challenge_ttl,
                url = esc(&st.cfg.public_url),
                csrf = esc(&s.csrf),
                cid = esc(&c.id),
            );
            Ok(Page::Html(StatusCode::OK, layout("Confirm the transfer", Some((&user, &s.csrf)), &body)))
        })
        .await;
    render(&state, page)
}

async fn transfer_confirm(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let code = zeroize::Zeroizing::new(f.code);
    let page = state
        .tx(move |tx, now| {
            let (s, _, user) = logged_in(&st, tx, now, &cookie)?;
            check_csrf(&s, &f.csrf)?;
            if !ledger::valid_transfer_id(&f.transfer_id) {
                return Err(AppError::invalid("The form is damaged. Start the transfer again."));
            }
            let Some((counter, otp)) = parse_code(&code) else {
                return Err(AppError::invalid("The code is COUNTER-OTP (for example 17-12345678) or 8 digits."));
            };
            let otp = zeroize::Zeroizing::new(otp);
            let sub = Submission { challenge_id: &f.challenge_id, counter, otp: &otp };
            match confirm_transfer(&st, tx, now, &s, &f.transfer_id, &sub)? {
                Confirmed::Refused(_) => Ok(Page::Refused(
                    "The code was not accepted, nothing was transferred. Start the transfer again for a new challenge.",
                )),
                Confirmed::Final(t) => {
                    Ok(Page::Html(StatusCode::OK, layout("Transfer result", Some((&user, &s.csrf)), &result_html(&t))))
                }
            }
        })
        .await;
    render(&state, page)
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    let cookie = state.cookie(&headers);
    let st = state.clone();
    let page = state
        .tx(move |tx, now| {
            let Some(s) = session_of(&st, tx, now, &cookie)? else {
                return Ok(Page::Redirect("/login", Some(Cookie::Clear)));
            };
            check_csrf(&s, &f.csrf)?;
            session::delete(tx, &s)?;
            Ok(Page::Redirect("/login", Some(Cookie::Clear)))
        })
        .await;
    render(&state, page)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}

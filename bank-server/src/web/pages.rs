//! The website for a person with a browser: server-rendered HTML from `maud` templates
//! (escaped by default, checked at compile time). Page flow in `docs/bank.md`. Every page works
//! without JavaScript; the one script, `/static/sign.js`, only adds the "Sign with my card"
//! button to the two pages that show a challenge.
//!
//! Every page runs in one database transaction that also looks up (or starts) the session.
//! Every form carries the session's CSRF token; cookies are `HttpOnly; SameSite=Strict`, plus
//! `Secure` and the `__Host-` prefix when the public URL is https.

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use paysim_wire::api::{
    Account, Direction, NewTransfer, PayeeCheck, SessionToken, Transfer, TransferChallenge, TransferStatus,
};
use paysim_wire::{AccountNumber, ChallengeId, PayeeName, TransferId, UserName};
use serde::Deserialize;

use super::AppError;
use crate::master_key::random_bytes;
use crate::session::{self, Kind, Session};
use crate::usecase::{self, LoggedIn, Started, Visit};
use crate::{auth, ledger, AppState};

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
        .route("/static/sign.js", get(sign_script))
}

/// The script of the "Sign with my card" button (the CSP allows scripts from the bank only).
const SIGN_JS: &str = include_str!("sign.js");

async fn sign_script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SIGN_JS).into_response()
}

/// The "Sign with my card" button inside a code form, after its submit button (which stays the
/// form's first button, the one Enter presses), for a customer whose computer runs the signing
/// service: hidden until the script shows it, so a browser without scripts sees only the
/// copy-and-paste way. Nothing when the bank has no signing service set.
fn sign_with_card(st: &AppState) -> Markup {
    html! {
        @if let Some(service) = &st.cfg.signing_service {
            div #sign-service hidden {
                p {
                    button #sign-with-card type="button" data-service=(service.as_str()) { "Sign with my card" }
                    " (with " code { "reader-bridge serve" } " running on this computer)"
                }
                p #sign-status role="status" {}
            }
            script src="/static/sign.js" defer {}
        }
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em;line-height:1.4}\
table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}\
.num{text-align:right;font-family:monospace}code,.mono{font-family:monospace;overflow-wrap:anywhere}\
pre{white-space:pre-wrap}table{max-width:100%}\
@media (max-width:30em){body{margin:1em auto;padding:0 .5em}td,th{padding:.2em .3em}}\
nav form{display:inline}nav a,nav button{margin-right:1em}.err{color:#a00}\
#payee-check{border:2px solid;padding:0 .8em;margin:1em 0}#payee-check.ok{border-color:#070}\
#payee-check.warn{border-color:#a60}#payee-check.err{border-color:#a00}";

/// Reads what a person typed: `COUNTER-OTP` (e.g. `17-12345678`) or the 8 digits alone.
/// Spaces are ignored.
fn parse_code(text: &str) -> Option<(Option<u64>, zeroize::Zeroizing<String>)> {
    let clean: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    let (counter, otp) = match clean.split_once('-') {
        Some((c, o)) => {
            if c.is_empty() || c.len() > 19 || !c.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (Some(c.parse().ok()?), o)
        }
        None => (None, clean.as_str()),
    };
    (otp.len() == 8 && otp.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (counter, zeroize::Zeroizing::new(otp.to_owned())))
}

/// Every page: the title, the navigation of a logged-in user, the body.
fn layout(title: &str, nav: Option<(&UserName, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - PAYSIM Bank" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some((user, csrf)) = nav {
                    nav {
                        b { (user) } " · "
                        a href="/welcome" { "Home" }
                        a href="/accounts" { "Accounts" }
                        a href="/transfer" { "Transfer" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button { "Log out" }
                        }
                    }
                    hr;
                }
                h1 { (title) }
                (body)
            }
        }
    }
}

/// A page of a logged-in user.
fn user_page(who: &LoggedIn, title: &str, body: Markup) -> Page {
    Page::Html(StatusCode::OK, layout(title, Some((&who.user, &who.session.csrf)), body))
}

/// The error page: a status, a sentence for a person, and a way back.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        p.err { (message) }
        p { a href="/" { "Back to the start" } }
    };
    (status, layout("Something went wrong", None, body)).into_response()
}

impl AppState {
    fn cookie_name(&self) -> &'static str {
        if self.cfg.secure_cookies {
            "__Host-bank_session"
        } else {
            "bank_session"
        }
    }

    fn set_cookie(&self, token: &SessionToken) -> HeaderValue {
        let secure = if self.cfg.secure_cookies { "; Secure" } else { "" };
        let v = format!("{}={}; Path=/; HttpOnly; SameSite=Strict{secure}", self.cookie_name(), token.as_str());
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
    Html(StatusCode, Markup),
    /// 303 to a path, optionally setting or clearing the cookie.
    Redirect(&'static str, Option<Cookie>),
    /// A page plus a new cookie.
    HtmlWithCookie(Markup, SessionToken),
    /// A refused code: the transaction commits (the failure counts), then this error page.
    Refused(&'static str),
}

enum Cookie {
    Set(SessionToken),
    Clear,
}

fn render(state: &AppState, page: Result<Page, AppError>) -> Response {
    match page {
        Ok(Page::Html(status, html)) => (status, html).into_response(),
        Ok(Page::HtmlWithCookie(html, token)) => {
            let mut r = html.into_response();
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
        Err(AppError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => {
            e.log();
            error_page(e.status(), &e.parts().1)
        }
    }
}

/// Runs `f` in one unit of work with the browser's session, then renders what it made.
async fn page<F>(state: AppState, headers: &HeaderMap, f: F) -> Response
where
    F: FnOnce(&rusqlite::Transaction<'_>, i64, &AppState, Visit) -> Result<Page, AppError> + Send + 'static,
{
    let cookie = state.cookie(headers);
    let st = state.clone();
    let out = state
        .tx(move |tx, now| {
            let visit = usecase::visit(tx, now, &st, cookie.as_deref())?;
            match f(tx, now, &st, visit) {
                // Commit what the visit wrote (an ended session's deletion and the audit row
                // of its end), then send the browser to the login page.
                Err(AppError::Unauthenticated) => Ok(Err(AppError::Unauthenticated)),
                other => other.map(Ok),
            }
        })
        .await
        .and_then(|r| r);
    render(&state, out)
}

/// [`page`] for a page that changes nothing: made in a read transaction on a read-only
/// connection, off the write lock, unless the session needs a write first (its `last_seen` is
/// due, or it ended), in which case it is made through the writer as [`page`] does.
async fn read_page<F>(state: AppState, headers: &HeaderMap, f: F) -> Response
where
    F: Fn(&rusqlite::Transaction<'_>, i64, &AppState, Visit) -> Result<Page, AppError> + Send + Sync + 'static,
{
    let cookie = state.cookie(headers);
    let f = std::sync::Arc::new(f);
    let (st, read_f, read_cookie) = (state.clone(), f.clone(), cookie.clone());
    let read = state
        .read(move |tx, now| match usecase::visit_read(tx, now, &st, read_cookie.as_deref())? {
            Some(visit) => read_f(tx, now, &st, visit).map(Some),
            None => Ok(None),
        })
        .await;
    match read {
        Ok(Some(made)) => render(&state, Ok(made)),
        Ok(None) => page(state, headers, move |tx, now, st, visit| f(tx, now, st, visit)).await,
        Err(e) => render(&state, Err(e)),
    }
}

/// A logged-in user, or `Unauthenticated` (which renders as a redirect to /login).
fn logged_in(visit: Visit) -> Result<LoggedIn, AppError> {
    match visit {
        Visit::User(who) => Ok(who),
        Visit::Nobody | Visit::Visitor(_) => Err(AppError::Unauthenticated),
    }
}

fn check_csrf(s: &Session, submitted: &str) -> Result<(), AppError> {
    if s.csrf_ok(submitted) {
        Ok(())
    } else {
        Err(AppError::Csrf)
    }
}

async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(state, &headers, |_, _, _, visit| {
        Ok(Page::Redirect(if matches!(visit, Visit::User(_)) { "/welcome" } else { "/login" }, None))
    })
    .await
}

fn login_form_html(csrf: &str, bad_name: bool) -> Markup {
    let body = html! {
        @if bad_name {
            p.err { "A user name is 1-32 characters of a-z, 0-9, dot, underscore and hyphen." }
        }
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            p { label { "User name " input name="user" autocomplete="username" required maxlength="32" autofocus; } }
            p { button { "Continue" } }
        }
        p { "Next you will see a challenge for your card. Keep the card and the " code { "reader-bridge" } " ready." }
    };
    layout("Log in", None, body)
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(state, &headers, |tx, now, st, visit| match visit {
        Visit::User(_) => Ok(Page::Redirect("/welcome", None)),
        Visit::Visitor(s) => Ok(Page::Html(StatusCode::OK, login_form_html(&s.csrf, false))),
        Visit::Nobody => {
            // A visitor's session: it carries the CSRF token and the login challenge.
            let (token, s) = session::create(tx, now, Kind::Web, None, st.cfg.session_limits())?;
            Ok(Page::HtmlWithCookie(login_form_html(&s.csrf, false), token))
        }
    })
    .await
}

#[derive(Deserialize)]
struct LoginStart {
    csrf: String,
    user: String,
}

async fn login_start(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<LoginStart>) -> Response {
    let name = f.user.trim().to_ascii_lowercase().parse::<UserName>().ok();
    if let Err(e) = super::extract::limit_login_challenge(&state, name.as_ref()).await {
        return super::extract::refusal_page(e);
    }
    page(state, &headers, move |tx, now, st, visit| {
        let s = match visit {
            Visit::Visitor(s) => s,
            Visit::User(who) => who.session,
            Visit::Nobody => return Err(AppError::Csrf),
        };
        check_csrf(&s, &f.csrf)?;
        let Ok(user) = f.user.trim().to_ascii_lowercase().parse::<UserName>() else {
            return Ok(Page::Html(StatusCode::BAD_REQUEST, login_form_html(&s.csrf, true)));
        };
        let c = auth::issue_login_challenge(tx, now, &st.cfg.auth, &user, Some(&s.binding()))?;
        let ch = c.challenge.to_hex();
        let body = html! {
            p { "Log in as " b { (user) } " with your card." }
            table {
                tr { th { "Bank (verifier id)" } td.mono #verifier-id { (st.cfg.auth.verifier_id) } }
                tr { th { "Challenge" } td.mono #challenge { (ch) } }
                tr { th { "Valid for" } td { (st.cfg.auth.challenge_ttl) " seconds" } }
            }
            p { "On your computer with the card reader, run" }
            // No `--server`: the bridge signs only for the bank it was set up for, so a page
            // (this one or a look-alike) never tells it which bank to sign for.
            pre.mono { "reader-bridge respond --challenge " (ch) }
            p {
                "check that it shows this bank, enter your PIN there, and type the code it prints ("
                code { "COUNTER-OTP" } ", e.g. " code { "17-12345678" } "; the 8 digits alone also work)."
            }
            form method="post" action="/login/code" {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="challenge_id" value=(c.id);
                p { label { "Code " input name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="40" autofocus; } }
                p { button { "Log in" } }
                (sign_with_card(st))
            }
        };
        Ok(Page::Html(StatusCode::OK, layout("Your card's answer", None, body)))
    })
    .await
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    challenge_id: String,
    code: String,
    #[serde(default)]
    transfer_id: String,
    /// The checkbox of a payee whose name did not match or could not be checked (`yes`).
    #[serde(default)]
    confirm_unverified_payee: Option<String>,
}

const CODE_RULE: &str = "The code is COUNTER-OTP (for example 17-12345678) or 8 digits.";

async fn login_code(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    if let Err(e) = super::extract::limit_code(&state, state.cookie(&headers).as_deref()).await {
        return super::extract::refusal_page(e);
    }
    page(state, &headers, move |tx, now, st, visit| {
        let s = match visit {
            Visit::Nobody => return Err(AppError::Csrf),
            Visit::Visitor(s) => s,
            Visit::User(who) => {
                check_csrf(&who.session, &f.csrf)?;
                return Ok(Page::Redirect("/welcome", None));
            }
        };
        check_csrf(&s, &f.csrf)?;
        let code = zeroize::Zeroizing::new(f.code);
        let Some((counter, otp)) = parse_code(&code) else {
            return Err(AppError::invalid(format!("{CODE_RULE} Start again.")));
        };
        // A challenge id that is not one of ours can only be refused, like a wrong code.
        let refused = Page::Refused("The code was not accepted. Log in again with a new challenge.");
        let Ok(challenge_id) = f.challenge_id.parse::<ChallengeId>() else {
            return Ok(refused);
        };
        match usecase::web_login(tx, now, st, &s, &challenge_id, counter, &otp)? {
            Ok(token) => Ok(Page::Redirect("/welcome", Some(Cookie::Set(token)))),
            Err(_) => Ok(refused),
        }
    })
    .await
}

async fn welcome(State(state): State<AppState>, headers: HeaderMap) -> Response {
    read_page(state, &headers, |tx, _, _, visit| {
        let who = logged_in(visit)?;
        let n = ledger::accounts_of(tx, who.user_id)?.len();
        let body = html! {
            p { "Welcome, " b { (who.user) } ". You have " (n) " account(s)." }
            ul {
                li { a href="/accounts" { "Accounts and history" } }
                li { a href="/transfer" { "Make a transfer" } }
            }
            p { "For your safety the session ends after 5 minutes without activity." }
        };
        Ok(user_page(&who, "Welcome", body))
    })
    .await
}

fn signed_amount(t: &Transfer) -> String {
    let sign = match t.direction {
        Direction::In => "+",
        Direction::Out => "-",
    };
    format!("{sign}{} {}", t.currency.format_minor(t.amount_minor), t.currency)
}

fn accounts_html(accounts: &[Account], history: &[Transfer]) -> Markup {
    html! {
        h2 { "Accounts" }
        table {
            tr { th { "Account" } th { "Currency" } th { "Balance" } }
            @for a in accounts {
                tr { td.mono { (a.number) } td { (a.currency) } td.num { (a.currency.format_minor(a.balance_minor)) } }
            }
        }
        h2 { "History" }
        table {
            tr { th { "Transfer id" } th { "From" } th { "To" } th { "Amount" } th { "Status" } }
            @for t in history {
                tr {
                    td.mono { (t.transfer_id) }
                    td.mono { (t.from) }
                    td.mono { (t.to) }
                    td.num { (signed_amount(t)) }
                    td { (t.status.as_str()) }
                }
            }
        }
    }
}

async fn accounts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    read_page(state, &headers, |tx, _, _, visit| {
        let who = logged_in(visit)?;
        let list = ledger::accounts_of(tx, who.user_id)?;
        let history = ledger::history(tx, who.user_id, paysim_wire::api::HISTORY_DEFAULT)?;
        Ok(user_page(&who, "Accounts", accounts_html(&list, &history)))
    })
    .await
}

async fn transfer_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(state, &headers, |tx, _, _, visit| {
        let who = logged_in(visit)?;
        let list = ledger::accounts_of(tx, who.user_id)?;
        // The transfer id is fixed when the form is shown, so sending the form twice cannot
        // create two transfers.
        let transfer_id =
            format!("web-{}", hex::encode(random_bytes::<12>().map_err(|e| AppError::Internal(e.to_string()))?));
        let body = html! {
            form method="post" action="/transfer" {
                input type="hidden" name="csrf" value=(who.session.csrf);
                input type="hidden" name="transfer_id" value=(transfer_id);
                p { label { "From " select name="from" {
                    @for a in &list {
                        option value=(a.number) { (a.number) " (" (a.currency.format_minor(a.balance_minor)) " " (a.currency) ")" }
                    }
                } } }
                p { label { "To (account number) " input name="to" required maxlength="34"; } }
                p {
                    label { "Payee's name " input name="payee_name" required maxlength="70" autocomplete="off"; }
                    " (as the payee gave it to you: the bank checks it against the account)"
                }
                p {
                    label { "Amount " input name="amount" inputmode="decimal" required maxlength="20" placeholder="12.34"; }
                    " (in the currency of the source account)"
                }
                p { button { "Continue" } }
            }
            p { "The next page shows exactly what your card will sign." }
        };
        Ok(user_page(&who, "Transfer", body))
    })
    .await
}

#[derive(Deserialize)]
struct TransferStart {
    csrf: String,
    transfer_id: String,
    from: String,
    to: String,
    amount: String,
    payee_name: String,
}

fn result_html(t: &Transfer) -> Markup {
    let what = match t.status {
        TransferStatus::Executed => "The transfer was executed.",
        TransferStatus::Rejected => "The transfer was refused: the balance is too low.",
        TransferStatus::Pending => "The transfer is still waiting for your card's code.",
    };
    html! {
        p { b { (what) } }
        table {
            tr { th { "Transfer id" } td.mono { (t.transfer_id) } }
            tr { th { "From" } td.mono { (t.from) } }
            tr { th { "To" } td.mono { (t.to) } }
            @if let Some(name) = &t.payee_name { tr { th { "Payee's name" } td { (name) } } }
            tr { th { "Amount" } td.num { (t.currency.format_minor(t.amount_minor)) " " (t.currency) } }
        }
        p { a href="/accounts" { "Accounts and history" } " · " a href="/transfer" { "Another transfer" } }
    }
}

/// `text` as one POSIX shell word (single quotes; a `'` inside written `'\''`).
fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The verification-of-payee box: the answer, in words a customer reads before the code.
fn payee_check_html(check: &PayeeCheck) -> Markup {
    let (class, title, text) = match check {
        PayeeCheck::Match => ("ok", "Name checked: it matches", "The payee's name is the name on the account."),
        PayeeCheck::CloseMatch { .. } => (
            "warn",
            "Name checked: close match",
            "The name you gave is close to the name on the account, not the same. Check that this is who you want to pay.",
        ),
        PayeeCheck::NoMatch => (
            "err",
            "Name checked: NO MATCH",
            "The payee's name does not match the name on the account. The money may go to someone else, and may not come back. Do not go on unless you are sure.",
        ),
        PayeeCheck::Unavailable => (
            "warn",
            "Name could not be checked",
            "The bank cannot check the name on this account. Go on only if you are sure of the account number.",
        ),
    };
    html! {
        div #payee-check class=(class) data-result=(check.as_str()) {
            p { b { (title) } }
            p { (text) }
            @if let PayeeCheck::CloseMatch { account_name } = check {
                p { "The account is in the name of " b #account-name { (account_name) } "." }
            }
        }
    }
}

fn sign_html(st: &AppState, csrf: &str, c: &TransferChallenge) -> Markup {
    let s = &c.sign;
    let ch = c.challenge.to_hex();
    let cur = s.currency;
    let confirm_flag = if c.payee_check.needs_confirmation() { " --confirm-unverified-payee" } else { "" };
    html! {
        (payee_check_html(&c.payee_check))
        p { "Your card will sign exactly these fields. Check them on the bridge's screen too." }
        table {
            tr { th { "Bank (verifier id)" } td.mono #verifier-id { (s.verifier_id) } }
            tr { th { "Transaction id" } td.mono #transaction-id { (s.transaction_id) } }
            tr { th { "Amount" } td.num {
                (cur.format_minor(s.amount_minor)) " " (cur) " (" span #amount-minor { (s.amount_minor) } " minor units)"
            } }
            tr { th { "Currency" } td.mono #currency { (cur) } }
            tr { th { "From" } td.mono #source { (s.source) } }
            tr { th { "Payee" } td.mono #payee { (s.payee) } }
            tr { th { "Payee's name" } td #payee-name { (s.payee_name) } }
            tr { th { "Challenge" } td.mono #challenge { (ch) } }
            tr { th { "Valid for" } td { (st.cfg.auth.challenge_ttl) " seconds" } }
        }
        p { "On your computer with the card reader, run" }
        pre.mono {
            "reader-bridge respond --challenge " (ch)
            " --transaction-id " (s.transaction_id) " --amount-minor " (s.amount_minor)
            " --currency " (cur) " --source " (s.source) " --payee " (s.payee)
            " --payee-name " (shell_word(s.payee_name.as_str())) (confirm_flag)
        }
        p { "and type the code it prints (" code { "COUNTER-OTP" } ", or the 8 digits alone)." }
        form method="post" action="/transfer/confirm" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="challenge_id" value=(c.challenge_id);
            input type="hidden" name="transfer_id" value=(s.transaction_id);
            @if c.payee_check.needs_confirmation() {
                p { label {
                    input type="checkbox" name="confirm_unverified_payee" value="yes" #confirm-unverified-payee;
                    @if c.payee_check == PayeeCheck::NoMatch {
                        " I know the name does not match the account, and I want to pay this account anyway."
                    } @else {
                        " I know the name could not be checked, and I want to pay this account anyway."
                    }
                } }
            }
            p { label { "Code " input name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="40" autofocus; } }
            p { button { "Sign and send" } }
            (sign_with_card(st))
        }
    }
}

const DAMAGED: &str = "The form is damaged. Start the transfer again.";

/// The transfer a page form asks for, read as a person typed it.
fn new_transfer(tx: &rusqlite::Transaction<'_>, who: &LoggedIn, f: &TransferStart) -> Result<NewTransfer, AppError> {
    let transfer_id: TransferId = f.transfer_id.parse().map_err(|_| AppError::invalid(DAMAGED))?;
    let from = ledger::accounts_of(tx, who.user_id)?
        .into_iter()
        .find(|a| a.number == f.from.as_str())
        .ok_or_else(|| AppError::NoSuchAccount(f.from.clone()))?;
    let amount_minor = from.currency.parse_amount(&f.amount).map_err(|_| {
        AppError::invalid(format!(
            "The amount must be a positive number with at most {} decimals, like 12.34.",
            from.exponent
        ))
    })?;
    let to = f.to.trim();
    let to: AccountNumber = to.parse().map_err(|_| AppError::NoSuchAccount(to.to_owned()))?;
    let payee_name: PayeeName = f
        .payee_name
        .parse()
        .map_err(|_| AppError::invalid("The payee's name must be 1 to 70 characters, without control characters."))?;
    Ok(NewTransfer { transfer_id, from: from.number, to, amount_minor, currency: from.currency, payee_name })
}

async fn transfer_start(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<TransferStart>) -> Response {
    page(state, &headers, move |tx, now, st, visit| {
        let who = logged_in(visit)?;
        check_csrf(&who.session, &f.csrf)?;
        let req = new_transfer(tx, &who, &f)?;
        match usecase::start_transfer(tx, now, st, &who, &req)? {
            Started::Settled(t) => Ok(user_page(&who, "Transfer result", result_html(&t))),
            Started::Challenge(c) => Ok(user_page(&who, "Confirm the transfer", sign_html(st, &who.session.csrf, &c))),
            // A value, not an `Err`: the unit of work commits the refusal's audit row.
            Started::Refused(e) => {
                let e = AppError::from(e);
                let body = html! { p.err { (e.parts().1) } p { a href="/" { "Back to the start" } } };
                Ok(Page::Html(e.status(), layout("Something went wrong", None, body)))
            }
            Started::KindNotAllowed(kind) => {
                let e = AppError::TokenKindNotAllowed(kind);
                let body = html! { p.err { (e.parts().1) } p { a href="/" { "Back to the start" } } };
                Ok(Page::Html(e.status(), layout("Something went wrong", None, body)))
            }
            Started::CardTooOld => {
                let e = AppError::CardTooOld;
                let body = html! { p.err #card-too-old { (e.parts().1) } p { a href="/" { "Back to the start" } } };
                Ok(Page::Html(e.status(), layout("Your card is too old for transfers", None, body)))
            }
        }
    })
    .await
}

async fn transfer_confirm(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    if let Err(e) = super::extract::limit_code(&state, state.cookie(&headers).as_deref()).await {
        return super::extract::refusal_page(e);
    }
    page(state, &headers, move |tx, now, st, visit| {
        let who = logged_in(visit)?;
        check_csrf(&who.session, &f.csrf)?;
        let code = zeroize::Zeroizing::new(f.code);
        let transfer_id: TransferId = f.transfer_id.parse().map_err(|_| AppError::invalid(DAMAGED))?;
        let Some((counter, otp)) = parse_code(&code) else {
            return Err(AppError::invalid(CODE_RULE));
        };
        let refused = Page::Refused(
            "The code was not accepted, nothing was transferred. Start the transfer again for a new challenge.",
        );
        let Ok(challenge_id) = f.challenge_id.parse::<ChallengeId>() else {
            return Ok(refused);
        };
        let c = usecase::Confirmation {
            challenge_id: &challenge_id,
            counter,
            otp: &otp,
            unverified_payee_ok: f.confirm_unverified_payee.as_deref() == Some("yes"),
        };
        match usecase::confirm_transfer(tx, now, st, &who, &transfer_id, c)? {
            Ok(t) => Ok(user_page(&who, "Transfer result", result_html(&t))),
            Err(_) => Ok(refused),
        }
    })
    .await
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    page(state, &headers, move |tx, now, _, visit| {
        match visit {
            Visit::Nobody => return Ok(Page::Redirect("/login", Some(Cookie::Clear))),
            Visit::Visitor(s) => {
                check_csrf(&s, &f.csrf)?;
                session::delete(tx, &s)?;
            }
            Visit::User(who) => {
                check_csrf(&who.session, &f.csrf)?;
                usecase::logout(tx, now, &who)?;
            }
        }
        Ok(Page::Redirect("/login", Some(Cookie::Clear)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn no_typed_code_panics(text in ".{0,48}") {
            if let Some((_, otp)) = parse_code(&text) {
                proptest::prop_assert_eq!(otp.len(), 8);
            }
        }

        /// What the transfer form and `token enroll` read from people and files.
        #[test]
        fn no_amount_or_token_file_panics(text in ".{0,80}", cur in "[A-Z]{3}") {
            if let Ok(c) = cur.parse::<paysim_wire::Currency>() {
                if let Ok(v) = c.parse_amount(&text) {
                    proptest::prop_assert!(v >= 1);
                }
            }
            let _ = paysim_wire::TokenFile::parse(&text);
        }
    }

    #[test]
    fn codes_people_type() {
        let parsed = |t: &str| parse_code(t).map(|(c, o)| (c, o.to_string()));
        assert_eq!(parsed("17-12345678"), Some((Some(17), "12345678".into())));
        assert_eq!(parsed(" 0 - 1234 5678 "), Some((Some(0), "12345678".into())));
        assert_eq!(parsed("12345678"), Some((None, "12345678".into())));
        for bad in ["", "-12345678", "x-12345678", "1-1234567", "1-123456789", "1234567a", "1-2-12345678"] {
            assert_eq!(parsed(bad), None, "{bad}");
        }
    }

    #[test]
    fn templates_escape_what_people_type() {
        let page = layout("<t>", None, html! { p { ("<script>\"'&") } }).into_string();
        assert!(page.contains("&lt;script&gt;&quot;'&amp;"), "{page}");
        assert!(page.contains("<title>&lt;t&gt; - PAYSIM Bank</title>"), "{page}");
        assert!(!page.contains("<script"), "{page}");
    }
}

//! The website for a person with a browser: server-rendered HTML from `maud` templates
//! (escaped by default, checked at compile time). Page flow in `docs/bank.md`. Every page works
//! without JavaScript; the one script, `/static/sign.js`, only adds the "Sign with my card"
//! button to the two pages that show a challenge.
//!
//! Every page runs in one database transaction that also looks up (or starts) the session.
//! Every form carries the session's CSRF token; cookies are `HttpOnly; SameSite=Strict`, plus
//! `Secure` and the `__Host-` prefix when the public URL is https.

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use paysim_wire::api::{
    Account, ChallengeFor, ChallengeInfo, Direction, NewTransfer, PayeeCheck, SessionToken, SignFields, Transfer,
    TransferStatus,
};
use paysim_wire::{AccountNumber, ChallengeId, PayeeName, TransferId, UserName};
use serde::Deserialize;

use super::{form, AppError};
use crate::ledger::LedgerError;
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

const STYLE: &str = "body{font-family:sans-serif;max-width:52em;margin:0 auto;padding:0 1em 2em;line-height:1.4}\
header{border-bottom:1px solid #999;margin-bottom:1em;padding:.6em 0}\
table{border-collapse:collapse;max-width:100%}td,th{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}\
.num{text-align:right;font-family:monospace;white-space:nowrap}code,.mono{font-family:monospace}.mono{overflow-wrap:anywhere}code{white-space:nowrap}\
pre{white-space:pre-wrap;overflow-wrap:anywhere}\
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:center}\
nav form{display:inline;margin:0}nav a[aria-current]{font-weight:bold;text-decoration:none;border-bottom:2px solid}\
.err{color:#a00}p.err,div.err{font-weight:bold}[aria-invalid=true]{border:2px solid #a00}\
label.field{display:block;font-weight:bold}input,select{max-width:100%;box-sizing:border-box}\
#payee-check{border:2px solid;padding:0 .8em;margin:1em 0}#payee-check.ok{border-color:#070}\
#payee-check.warn{border-color:#a60}#payee-check.err{border-color:#a00}\
@media (max-width:40em){body{padding:0 .5em 1em}td,th{padding:.2em .3em}\
table.history,table.history tbody,table.history tr,table.history td{display:block}table.history thead{display:none}\
table.history tr{border:1px solid #999;margin:.6em 0;padding:.2em}table.history td{border:none;text-align:left}\
table.history td::before{content:attr(data-label) \": \";font-weight:bold;font-family:sans-serif}}";

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

/// Which page of the navigation a page is (marked `aria-current="page"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Here {
    Home,
    Accounts,
    Transfer,
    /// A page outside the navigation (an error, a result).
    Elsewhere,
}

/// The navigation of a logged-in user: shown on every page they see, errors included.
#[derive(Clone, Debug)]
struct Nav {
    user: UserName,
    csrf: String,
    here: Here,
}

impl Nav {
    fn of(who: &LoggedIn, here: Here) -> Nav {
        Nav { user: who.user.clone(), csrf: who.session.csrf.clone(), here }
    }

    fn html(&self) -> Markup {
        let current = |h: Here| (self.here == h).then_some("page");
        html! {
            nav aria-label="Main" {
                ul {
                    li { "Logged in as " b { (self.user) } }
                    li { a href="/welcome" aria-current=[current(Here::Home)] { "Home" } }
                    li { a href="/accounts" aria-current=[current(Here::Accounts)] { "Accounts" } }
                    li { a href="/transfer" aria-current=[current(Here::Transfer)] { "Transfer" } }
                    li {
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(self.csrf);
                            button { "Log out" }
                        }
                    }
                }
            }
        }
    }
}

/// Every page: the title, the navigation of a logged-in user, the one `h1`, the body in `main`.
fn layout(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
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
                header {
                    @match nav {
                        Some(nav) => (nav.html()),
                        None => { b { "PAYSIM Bank" } }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page of a logged-in user.
fn user_page(who: &LoggedIn, here: Here, title: &str, body: Markup) -> Page {
    user_page_status(who, here, StatusCode::OK, title, body)
}

fn user_page_status(who: &LoggedIn, here: Here, status: StatusCode, title: &str, body: Markup) -> Page {
    Page::Html(status, layout(title, Some(&Nav::of(who, here)), body))
}

/// The error page's title for a status.
fn error_title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "Page not found",
        StatusCode::FORBIDDEN => "This form cannot be used",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        _ => "Something went wrong",
    }
}

fn error_html(status: StatusCode, nav: Option<&Nav>, message: &str) -> Response {
    let body = html! {
        p.err #error role="alert" { (message) }
        p {
            @if nav.is_some() { a href="/welcome" { "Back to your home page" } }
            @else { a href="/" { "Back to the start" } }
        }
    };
    (status, layout(error_title(status), nav, body)).into_response()
}

/// The error page without a session's navigation (for answers made before any session is
/// looked up: abuse limits, unreadable requests): a status, a sentence for a person, and a
/// way back.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    error_html(status, None, message)
}

/// What the error page says about `e`: sentences for a customer. The API's messages
/// ([`AppError::parts`]) are for programs and their developers.
fn page_message(e: &AppError) -> String {
    match e {
        AppError::Invalid(m) => m.clone(),
        AppError::AuthFailed => "The code was not accepted. Start again to get a new challenge.".into(),
        AppError::NotFound => "There is no such page. Check the address, or use the links above.".into(),
        AppError::MethodNotAllowed => "That page does not take this kind of request. Open it from a link.".into(),
        AppError::Csrf => {
            "This form is out of date or was not sent from this site. Open the page again and send the form from there."
                .into()
        }
        AppError::Storage(_) => {
            "The bank cannot save anything right now, so nothing was done. Try again in a few minutes.".into()
        }
        AppError::RateLimited { retry_after_s } => {
            format!("Too many attempts in a short time. Wait {retry_after_s} seconds, then try again.")
        }
        AppError::TokenKindNotAllowed(_) | AppError::CardTooOld => {
            let m = e.parts().1;
            let mut c = m.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>() + ".").unwrap_or_default()
        }
        _ => {
            "Something went wrong at the bank, and nothing was done. Try again; if it happens again, contact the bank."
                .into()
        }
    }
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

/// What a page handler produces inside its transaction. A refusal a person caused (a wrong
/// code, a field to correct) is a page, so its unit of work commits (the failure counts, the
/// refusal is audited).
enum Page {
    Html(StatusCode, Markup),
    /// 303 to a path, optionally setting or clearing the cookie.
    Redirect(&'static str, Option<Cookie>),
    /// A page plus a new cookie.
    HtmlWithCookie(Markup, SessionToken),
}

enum Cookie {
    Set(SessionToken),
    Clear,
}

/// A page handler's error, with the navigation of the user it happened to (the error page
/// keeps it). Its unit of work rolls back.
struct Failed {
    nav: Option<Box<Nav>>,
    error: Box<AppError>,
    /// The browser sent a session cookie that no longer names a session (it ended: idle, too
    /// old, or revoked): the login page says so.
    ended: bool,
}

impl From<AppError> for Failed {
    fn from(error: AppError) -> Self {
        Failed { nav: None, error: Box::new(error), ended: false }
    }
}

impl From<crate::db::DbError> for Failed {
    fn from(e: crate::db::DbError) -> Self {
        AppError::from(e).into()
    }
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Self {
        AppError::from(e).into()
    }
}

impl From<usecase::UseCaseError> for Failed {
    fn from(e: usecase::UseCaseError) -> Self {
        AppError::from(e).into()
    }
}

fn nav_of(visit: &Visit) -> Option<Box<Nav>> {
    match visit {
        Visit::User(who) => Some(Box::new(Nav::of(who, Here::Elsewhere))),
        Visit::Nobody | Visit::Visitor(_) => None,
    }
}

fn render(state: &AppState, page: Result<Page, Failed>) -> Response {
    match page {
        Ok(Page::Html(status, html)) => (status, html).into_response(),
        Ok(Page::HtmlWithCookie(html, token)) => {
            let mut r = html.into_response();
            r.headers_mut().insert(header::SET_COOKIE, state.set_cookie(&token));
            r
        }
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
        Err(Failed { error, ended, .. }) if matches!(*error, AppError::Unauthenticated) => {
            Redirect::to(if ended { "/login?session=ended" } else { "/login" }).into_response()
        }
        Err(Failed { nav, error, .. }) => {
            error.log();
            let mut res = error_html(error.status(), nav.as_deref(), &page_message(&error));
            if let AppError::RateLimited { retry_after_s } = *error {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            }
            res
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
            let nav = nav_of(&visit);
            let ended = cookie.is_some() && matches!(visit, Visit::Nobody);
            match f(tx, now, &st, visit) {
                // Commit what the visit wrote (an ended session's deletion and the audit row
                // of its end), then send the browser to the login page.
                Err(AppError::Unauthenticated) => {
                    Ok(Err(Failed { nav: None, error: Box::new(AppError::Unauthenticated), ended }))
                }
                Err(error) => Err(Failed { nav, error: Box::new(error), ended }),
                Ok(made) => Ok(Ok(made)),
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
            Some(visit) => {
                let nav = nav_of(&visit);
                let ended = read_cookie.is_some() && matches!(visit, Visit::Nobody);
                read_f(tx, now, &st, visit).map(Some).map_err(|error| Failed { nav, error: Box::new(error), ended })
            }
            None => Ok(None),
        })
        .await;
    match read {
        Ok(Some(made)) => render(&state, Ok(made)),
        Ok(None) => page(state, headers, move |tx, now, st, visit| f(tx, now, st, visit)).await,
        Err(e) => render(&state, Err(e)),
    }
}

/// The website's "no such page", with the navigation of a logged-in visitor.
pub async fn not_found(state: AppState, headers: HeaderMap) -> Response {
    read_page(state, &headers, |_, _, _, _| Err(AppError::NotFound)).await
}

/// The website's "wrong method", with the navigation of a logged-in visitor.
pub async fn wrong_method(state: AppState, headers: HeaderMap) -> Response {
    read_page(state, &headers, |_, _, _, _| Err(AppError::MethodNotAllowed)).await
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

/// The sentence beside a field (`id` is what the field's `aria-describedby` names).
fn beside(id: &str, problem: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = problem {
            " " span.err id=(id) { (m) }
        }
    }
}

/// A sentence for the whole form, above it.
fn form_problem(problem: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = problem {
            div.err #form-error role="alert" { p { (m) } }
        }
    }
}

/// `aria-invalid` and `aria-describedby` of a field with a problem.
fn invalid(problem: Option<&str>) -> Option<&'static str> {
    problem.map(|_| "true")
}

const USER_RULE: &str =
    "A user name is 1 to 32 characters: letters a-z, digits, dot, underscore and hyphen. Check what you typed.";

/// The login form: the user name typed so far, a problem with it (beside the field) or with
/// the last attempt (above the form).
fn login_form_html(csrf: &str, typed: &str, name_problem: Option<&str>, form: Option<&str>) -> Markup {
    let body = html! {
        (form_problem(form))
        form method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                label.field for="user" { "User name" }
                input #user name="user" value=(typed) autocomplete="username" required maxlength="32" autofocus
                    aria-invalid=[invalid(name_problem)] aria-describedby=[name_problem.map(|_| "user-error")];
                (beside("user-error", name_problem))
            }
            p { button { "Continue" } }
        }
        p { "Next you will see a challenge for your card. Keep the card and the " code { "reader-bridge" } " ready." }
    };
    layout("Log in", None, body)
}

#[derive(Deserialize)]
struct LoginQuery {
    /// `ended`: the browser came here because its session had ended.
    #[serde(default)]
    session: Option<String>,
}

const SESSION_ENDED: &str = "Your session has ended: the bank logs you out after 5 minutes without activity, \
    and 12 hours after you logged in. Log in again to go on.";

async fn login_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let ended = q.session.as_deref() == Some("ended");
    page(state, &headers, move |tx, now, st, visit| {
        let note = ended.then_some(SESSION_ENDED);
        match visit {
            Visit::User(_) => Ok(Page::Redirect("/welcome", None)),
            Visit::Visitor(s) => Ok(Page::Html(StatusCode::OK, login_form_html(&s.csrf, "", None, note))),
            Visit::Nobody => {
                // A visitor's session: it carries the CSRF token and the login challenge.
                let (token, s) = session::create(tx, now, Kind::Web, None, st.cfg.session_limits())?;
                Ok(Page::HtmlWithCookie(login_form_html(&s.csrf, "", None, note), token))
            }
        }
    })
    .await
}

#[derive(Deserialize)]
struct LoginStart {
    csrf: String,
    user: String,
}

/// The page of a login challenge: what to run, and the code field (with its problem).
fn login_challenge_html(
    st: &AppState,
    csrf: &str,
    user: &UserName,
    challenge_id: &ChallengeId,
    ch: &str,
    code_problem: Option<&str>,
) -> Markup {
    let body = html! {
        p { "Log in as " b { (user) } " with your card." }
        table {
            tr { th scope="row" { "Bank (verifier id)" } td.mono #verifier-id { (st.cfg.auth.verifier_id) } }
            tr { th scope="row" { "Challenge" } td.mono #challenge { (ch) } }
            tr { th scope="row" { "Valid for" } td { (st.cfg.auth.challenge_ttl) " seconds" } }
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
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="challenge_id" value=(challenge_id);
            input type="hidden" name="user" value=(user);
            p {
                label.field for="code" { "Code" }
                input #code name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="40" autofocus
                    aria-invalid=[invalid(code_problem)] aria-describedby=[code_problem.map(|_| "code-error")];
                (beside("code-error", code_problem))
            }
            p { button { "Log in" } }
            (sign_with_card(st))
        }
    };
    layout("Your card's answer", None, body)
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
            return Ok(Page::Html(StatusCode::BAD_REQUEST, login_form_html(&s.csrf, &f.user, Some(USER_RULE), None)));
        };
        let c = auth::issue_login_challenge(tx, now, &st.cfg.auth, &user, Some(&s.binding()))?;
        Ok(Page::Html(StatusCode::OK, login_challenge_html(st, &s.csrf, &user, &c.id, &c.challenge.to_hex(), None)))
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
    /// The login form's user name, to fill the form in again after a refused code.
    #[serde(default)]
    user: String,
    /// The checkbox of a payee whose name did not match or could not be checked (`yes`).
    #[serde(default)]
    confirm_unverified_payee: Option<String>,
}

const CODE_RULE: &str = "Type the code the bridge printed: COUNTER-OTP, like 17-12345678, or its 8 digits alone.";

const LOGIN_REFUSED: &str =
    "The code was not accepted, and you are not logged in. Continue to get a new challenge, and type the code for that one.";

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
        let typed_user = f.user.chars().take(32).collect::<String>();
        let again = |status: StatusCode, problem: &str| -> Result<Page, AppError> {
            Ok(Page::Html(status, login_form_html(&s.csrf, &typed_user, None, Some(problem))))
        };
        // A challenge id that is not one of ours can only be refused, like a wrong code.
        let Ok(challenge_id) = f.challenge_id.parse::<ChallengeId>() else {
            return again(StatusCode::UNAUTHORIZED, LOGIN_REFUSED);
        };
        let code = zeroize::Zeroizing::new(f.code);
        let Some((counter, otp)) = parse_code(&code) else {
            // Nothing was checked: the same challenge, with the rule beside the field.
            return match auth::open_challenge(tx, now, &challenge_id)? {
                Some(c) if c.purpose == auth::ChallengePurpose::Login => Ok(Page::Html(
                    StatusCode::BAD_REQUEST,
                    login_challenge_html(st, &s.csrf, &c.user, &challenge_id, &c.challenge.to_hex(), Some(CODE_RULE)),
                )),
                _ => again(StatusCode::BAD_REQUEST, &format!("{CODE_RULE} Continue to get a new challenge.")),
            };
        };
        match usecase::web_login(tx, now, st, &s, &challenge_id, counter, &otp)? {
            Ok(token) => Ok(Page::Redirect("/welcome", Some(Cookie::Set(token)))),
            Err(_) => again(StatusCode::UNAUTHORIZED, LOGIN_REFUSED),
        }
    })
    .await
}

async fn welcome(State(state): State<AppState>, headers: HeaderMap) -> Response {
    read_page(state, &headers, |tx, _, _, visit| {
        let who = logged_in(visit)?;
        let n = ledger::accounts_of(tx, who.user_id)?.len();
        let body = html! {
            p { "Welcome, " b { (who.user) } ". You have " (n) @if n == 1 { " account." } @else { " accounts." } }
            ul {
                li { a href="/accounts" { "Accounts and history" } }
                li { a href="/transfer" { "Make a transfer" } }
            }
            p { "For your safety the session ends after 5 minutes without activity." }
        };
        Ok(user_page(&who, Here::Home, "Welcome", body))
    })
    .await
}

/// A transfer's status as the customer reads it.
fn status_words(status: TransferStatus) -> &'static str {
    match status {
        TransferStatus::Pending => "Pending: waiting for the card's code",
        TransferStatus::Executed => "Executed",
        TransferStatus::Rejected => "Rejected: the balance was too low",
        TransferStatus::Failed => "Failed: the code was not accepted",
        TransferStatus::Expired => "Expired: no code came in time",
    }
}

fn money(currency: paysim_wire::Currency, minor: impl Into<i128>) -> String {
    format!("{} {currency}", currency.format_minor(minor))
}

fn accounts_html(accounts: &[Account], history: &[Transfer]) -> Markup {
    html! {
        h2 { "Balances" }
        table #balances {
            thead { tr { th scope="col" { "Account" } th scope="col" { "Currency" } th scope="col" { "Balance" } } }
            tbody {
                @for a in accounts {
                    tr { td.mono { (a.number) } td { (a.currency) } td.num { (a.currency.format_minor(a.balance_minor)) } }
                }
            }
        }
        h2 { "History" }
        @if history.is_empty() {
            p { "No transfers yet." }
        } @else {
            p { "Newest first. Times are in UTC." }
            table.history #history {
                thead {
                    tr {
                        th scope="col" { "Date" }
                        th scope="col" { "Transfer id" }
                        th scope="col" { "Account" }
                        th scope="col" { "Counterparty" }
                        th scope="col" { "In" }
                        th scope="col" { "Out" }
                        th scope="col" { "Status" }
                    }
                }
                tbody {
                    @for t in history {
                        @let (when, iso) = form::utc_time(t.created_at);
                        tr data-transfer-id=(t.transfer_id) data-status=(t.status.as_str()) {
                            td data-label="Date" { time datetime=(iso) { (when) } }
                            td.mono data-label="Transfer id" { (t.transfer_id) }
                            @match t.direction {
                                Direction::Out => {
                                    td.mono data-label="Account" { (t.from) }
                                    td data-label="Counterparty" {
                                        "To " span.mono { (t.to) }
                                        @if let Some(name) = &t.payee_name { " (" (name) ")" }
                                    }
                                    td.num data-label="In" {}
                                    td.num.out data-label="Out" { (money(t.currency, t.amount_minor)) }
                                }
                                Direction::In => {
                                    td.mono data-label="Account" { (t.to) }
                                    td data-label="Counterparty" { "From " span.mono { (t.from) } }
                                    td.num.in data-label="In" { (money(t.currency, t.amount_minor)) }
                                    td.num data-label="Out" {}
                                }
                            }
                            td.status data-label="Status" { (status_words(t.status)) }
                        }
                    }
                }
            }
        }
    }
}

async fn accounts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    read_page(state, &headers, |tx, now, _, visit| {
        let who = logged_in(visit)?;
        let list = ledger::accounts_of(tx, who.user_id)?;
        let history = ledger::history(tx, now, who.user_id, paysim_wire::api::HISTORY_DEFAULT)?;
        Ok(user_page(&who, Here::Accounts, "Accounts", accounts_html(&list, &history)))
    })
    .await
}

/// A fresh transfer id for a form: fixed when the form is shown, so that sending the same form
/// twice cannot create two transfers.
fn new_form_transfer_id() -> Result<String, AppError> {
    Ok(format!("web-{}", hex::encode(random_bytes::<12>().map_err(|e| AppError::Internal(e.to_string()))?)))
}

/// What the transfer form holds: as typed, to be shown again.
#[derive(Clone, Debug, Default, Deserialize)]
struct Draft {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    payee_name: String,
    #[serde(default)]
    amount: String,
}

/// The problems of a transfer form: one per field, beside it, and one for the whole form.
#[derive(Clone, Debug, Default)]
struct Problems {
    form: Option<String>,
    from: Option<String>,
    to: Option<String>,
    payee_name: Option<String>,
    amount: Option<String>,
}

impl Problems {
    fn any(&self) -> bool {
        self.form.is_some()
            || self.from.is_some()
            || self.to.is_some()
            || self.payee_name.is_some()
            || self.amount.is_some()
    }
}

fn transfer_form_html(csrf: &str, transfer_id: &str, accounts: &[Account], d: &Draft, p: &Problems) -> Markup {
    let from = p.from.as_deref();
    let to = p.to.as_deref();
    let name = p.payee_name.as_deref();
    let amount = p.amount.as_deref();
    html! {
        (form_problem(p.form.as_deref()))
        @if p.any() && p.form.is_none() {
            div.err #form-error role="alert" { p { "Nothing was sent. Correct what is marked below, then press Continue." } }
        }
        form method="post" action="/transfer" novalidate {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="transfer_id" value=(transfer_id);
            p {
                label.field for="from" { "From" }
                select #from name="from" aria-invalid=[invalid(from)] aria-describedby=[from.map(|_| "from-error")] {
                    @for a in accounts {
                        option value=(a.number) selected[a.number.as_str() == d.from] {
                            (a.number) " (" (money(a.currency, a.balance_minor)) ")"
                        }
                    }
                }
                (beside("from-error", from))
            }
            p {
                label.field for="to" { "To (account number)" }
                input #to name="to" value=(d.to) required maxlength="34" autocomplete="off"
                    aria-invalid=[invalid(to)] aria-describedby=[to.map(|_| "to-error")];
                (beside("to-error", to))
            }
            p {
                label.field for="payee_name" { "Payee's name" }
                input #payee_name name="payee_name" value=(d.payee_name) required maxlength="70" autocomplete="off"
                    aria-invalid=[invalid(name)] aria-describedby=[Some(if name.is_some() { "payee_name-error" } else { "payee_name-hint" })];
                (beside("payee_name-error", name))
                br;
                small #payee_name-hint { "As the payee gave it to you: the bank checks it against the account." }
            }
            p {
                label.field for="amount" { "Amount" }
                input #amount name="amount" value=(d.amount) inputmode="decimal" required maxlength="24" placeholder="12.34"
                    aria-invalid=[invalid(amount)] aria-describedby=[Some(if amount.is_some() { "amount-error" } else { "amount-hint" })];
                (beside("amount-error", amount))
                br;
                small #amount-hint { "In the currency of the account it comes from; 12.34 and 12,34 both work." }
            }
            p { button { "Continue" } }
        }
        p { "The next page shows exactly what your card will sign." }
    }
}

async fn transfer_form(State(state): State<AppState>, headers: HeaderMap, Query(prefill): Query<Draft>) -> Response {
    page(state, &headers, move |tx, _, _, visit| {
        let who = logged_in(visit)?;
        let list = ledger::accounts_of(tx, who.user_id)?;
        let body =
            transfer_form_html(&who.session.csrf, &new_form_transfer_id()?, &list, &prefill, &Problems::default());
        Ok(user_page(&who, Here::Transfer, "Transfer", body))
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

/// The link that fills the transfer form in again with a transfer's details.
fn again_link(t: &Transfer) -> String {
    let amount = t.currency.format_minor(t.amount_minor);
    let pairs = [
        ("from", t.from.as_str()),
        ("to", t.to.as_str()),
        ("payee_name", t.payee_name.as_ref().map_or("", PayeeName::as_str)),
        ("amount", amount.as_str()),
    ];
    let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", percent_encoded(v))).collect();
    format!("/transfer?{}", q.join("&"))
}

/// `text` for a query string: every byte but the unreserved ones (RFC 3986 section 2.3) as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The title and the first sentence of a transfer's result page.
fn result_words(t: &Transfer) -> (&'static str, &'static str) {
    match t.status {
        TransferStatus::Executed => ("Transfer executed", "The transfer was executed."),
        TransferStatus::Rejected => (
            "Transfer rejected",
            "The transfer was refused: the balance was too low when you confirmed it. Nothing was transferred.",
        ),
        TransferStatus::Pending => {
            ("Transfer waiting for its code", "The transfer is still waiting for your card's code.")
        }
        TransferStatus::Failed => {
            ("Transfer failed", "The code was not accepted, so this transfer has failed. Nothing was transferred.")
        }
        TransferStatus::Expired => (
            "Transfer expired",
            "The time for the code ran out, so this transfer has expired. Nothing was transferred.",
        ),
    }
}

fn result_page(who: &LoggedIn, status: StatusCode, t: &Transfer) -> Page {
    let (title, what) = result_words(t);
    let ended = matches!(t.status, TransferStatus::Failed | TransferStatus::Expired | TransferStatus::Rejected);
    let body = html! {
        p #result data-status=(t.status.as_str()) role=[ended.then_some("alert")] { b { (what) } }
        table {
            tr { th scope="row" { "Transfer id" } td.mono #transfer-id { (t.transfer_id) } }
            tr { th scope="row" { "Status" } td #status { (status_words(t.status)) } }
            tr { th scope="row" { "From" } td.mono { (t.from) } }
            tr { th scope="row" { "To" } td.mono { (t.to) } }
            @if let Some(name) = &t.payee_name { tr { th scope="row" { "Payee's name" } td { (name) } } }
            tr { th scope="row" { "Amount" } td.num { (money(t.currency, t.amount_minor)) } }
        }
        p {
            @if ended {
                a href=(again_link(t)) { "Start this transfer again" } " · "
            }
            a href="/accounts" { "Accounts and history" } " · " a href="/transfer" { "Another transfer" }
        }
    };
    user_page_status(who, Here::Elsewhere, status, title, body)
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

/// What the confirmation page shows: the open challenge and what the card signs.
struct Signing<'a> {
    challenge_id: &'a ChallengeId,
    challenge: String,
    sign: &'a SignFields,
    payee_check: &'a PayeeCheck,
}

/// The problems of a confirmation form.
#[derive(Default)]
struct CodeProblems<'a> {
    code: Option<&'a str>,
    confirm: Option<&'a str>,
}

fn sign_html(st: &AppState, csrf: &str, c: &Signing<'_>, p: &CodeProblems<'_>) -> Markup {
    let s = c.sign;
    let ch = &c.challenge;
    let cur = s.currency;
    let needs_box = c.payee_check.needs_confirmation();
    let confirm_flag = if needs_box { " --confirm-unverified-payee" } else { "" };
    html! {
        @if p.code.is_some() || p.confirm.is_some() {
            div.err #form-error role="alert" { p { "The code was not sent yet. Correct what is marked below." } }
        }
        (payee_check_html(c.payee_check))
        p { "Your card will sign exactly these fields. Check them on the bridge's screen too." }
        table {
            tr { th scope="row" { "Bank (verifier id)" } td.mono #verifier-id { (s.verifier_id) } }
            tr { th scope="row" { "Transfer id" } td.mono #transfer-id { (s.transaction_id) } }
            tr { th scope="row" { "Amount" } td.num {
                (money(cur, s.amount_minor)) " (" span #amount-minor { (s.amount_minor) } " minor units)"
            } }
            tr { th scope="row" { "Currency" } td.mono #currency { (cur) } }
            tr { th scope="row" { "From" } td.mono #source { (s.source) } }
            tr { th scope="row" { "Payee" } td.mono #payee { (s.payee) } }
            tr { th scope="row" { "Payee's name" } td #payee-name { (s.payee_name) } }
            tr { th scope="row" { "Challenge" } td.mono #challenge { (ch) } }
            tr { th scope="row" { "Valid for" } td { (st.cfg.auth.challenge_ttl) " seconds" } }
        }
        p { "On your computer with the card reader, run" }
        // `--transfer-id` (the card's name for it, `--transaction-id`, is the flag's alias).
        pre.mono {
            "reader-bridge respond --challenge " (ch)
            " --transfer-id " (s.transaction_id) " --amount-minor " (s.amount_minor)
            " --currency " (cur) " --source " (s.source) " --payee " (s.payee)
            " --payee-name " (shell_word(s.payee_name.as_str())) (confirm_flag)
        }
        p { "and type the code it prints (" code { "COUNTER-OTP" } ", or the 8 digits alone)." }
        form method="post" action="/transfer/confirm" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="challenge_id" value=(c.challenge_id);
            input type="hidden" name="transfer_id" value=(s.transaction_id);
            @if needs_box {
                p {
                    label {
                        input type="checkbox" name="confirm_unverified_payee" value="yes" #confirm-unverified-payee
                            aria-invalid=[invalid(p.confirm)] aria-describedby=[p.confirm.map(|_| "confirm-error")];
                        @if *c.payee_check == PayeeCheck::NoMatch {
                            " I know the name does not match the account, and I want to pay this account anyway."
                        } @else {
                            " I know the name could not be checked, and I want to pay this account anyway."
                        }
                    }
                    (beside("confirm-error", p.confirm))
                }
            }
            p {
                label.field for="code" { "Code" }
                input #code name="code" inputmode="numeric" autocomplete="one-time-code" required maxlength="40" autofocus
                    aria-invalid=[invalid(p.code)] aria-describedby=[p.code.map(|_| "code-error")];
                (beside("code-error", p.code))
            }
            p { button { "Sign and send" } }
            (sign_with_card(st))
        }
    }
}

const DAMAGED: &str = "The form is damaged. Start the transfer again from the Transfer page.";

const ACCOUNT_RULE: &str =
    "An account number is up to 34 letters A-Z, digits and hyphens, like ACC-BOB-EUR. Check what you typed.";

/// The transfer a form asks for, read as a person typed it: the request and the account the
/// money comes from, or the problems to show beside the fields.
fn read_transfer(accounts: &[Account], transfer_id: TransferId, d: &Draft) -> Result<(NewTransfer, Account), Problems> {
    let mut p = Problems::default();
    let from = accounts.iter().find(|a| a.number.as_str() == d.from);
    if from.is_none() {
        p.from = Some("Choose one of your accounts.".into());
    }
    let to_text = d.to.trim().to_ascii_uppercase();
    let to = if to_text.is_empty() {
        p.to = Some("Type the account number of the payee.".into());
        None
    } else {
        to_text.parse::<AccountNumber>().map_err(|_| p.to = Some(ACCOUNT_RULE.into())).ok()
    };
    let payee_name = d
        .payee_name
        .parse::<PayeeName>()
        .map_err(|_| {
            p.payee_name = Some(if d.payee_name.trim().is_empty() {
                "Type the payee's name, as they gave it to you.".into()
            } else {
                "A payee's name is 1 to 70 characters, without line breaks or control characters.".into()
            })
        })
        .ok();
    let amount = from.and_then(|a| match form::TypedAmount::parse(&d.amount, a.currency) {
        Ok(v) => Some(v),
        Err(e) => {
            p.amount = Some(e.message(a.currency));
            None
        }
    });
    match (from, to, payee_name, amount) {
        (Some(from), Some(to), Some(payee_name), Some(amount)) if !p.any() => Ok((
            NewTransfer {
                transfer_id,
                from: from.number.clone(),
                to,
                amount_minor: amount.minor,
                currency: amount.currency,
                payee_name,
            },
            from.clone(),
        )),
        _ => Err(p),
    }
}

/// Where on the form the ledger's refusal of a transfer belongs, in a customer's words.
fn refusal_problems(e: &LedgerError, req: &NewTransfer, from: &Account) -> Problems {
    let mut p = Problems::default();
    match e {
        LedgerError::PayeeNotAccepted => {
            p.to =
                Some(format!("There is no account {} that takes {}. Check the account number.", req.to, req.currency));
        }
        LedgerError::SameAccount => {
            p.to = Some("This is the account the money comes from. Type the payee's account number.".into());
        }
        LedgerError::InsufficientFunds => {
            p.amount = Some(format!(
                "There is not enough money in {} for this amount: its balance is {}.",
                from.number,
                money(from.currency, from.balance_minor)
            ));
        }
        LedgerError::InvalidAmount => p.amount = Some(form::AmountProblem::TooLarge.message(from.currency)),
        LedgerError::UnknownAccount(_) | LedgerError::CurrencyMismatch | LedgerError::UnsupportedCurrency(_) => {
            p.from = Some("Transfers cannot be made from this account. Choose another one.".into());
        }
        LedgerError::TooManyPending(n) => {
            p.form = Some(format!(
                "You have {n} transfers waiting for their code. Confirm them, or wait a few minutes until they expire, then send this one again."
            ));
        }
        LedgerError::TransferIdConflict => {
            p.form = Some(
                "This form was already used for a transfer with other details. It has a new transfer id now: check the details and press Continue again."
                    .into(),
            );
        }
        LedgerError::Sql(_)
        | LedgerError::InvalidAccountNumber
        | LedgerError::AccountExists(_)
        | LedgerError::BalanceLimit
        | LedgerError::UnknownTransfer(_)
        | LedgerError::UnknownUser(_) => {
            p.form = Some("The bank could not take this transfer. Nothing was transferred. Try again later.".into());
        }
    }
    p
}

async fn transfer_start(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<TransferStart>) -> Response {
    page(state, &headers, move |tx, now, st, visit| {
        let who = logged_in(visit)?;
        check_csrf(&who.session, &f.csrf)?;
        let transfer_id: TransferId = f.transfer_id.parse().map_err(|_| AppError::invalid(DAMAGED))?;
        let accounts = ledger::accounts_of(tx, who.user_id)?;
        let draft = Draft { from: f.from, to: f.to, payee_name: f.payee_name, amount: f.amount };
        // The form again, as typed, with its problems; a new transfer id (nothing was
        // recorded under the old one, or it was used for other details).
        let again = |status: StatusCode, p: &Problems| -> Result<Page, AppError> {
            let body = transfer_form_html(&who.session.csrf, &new_form_transfer_id()?, &accounts, &draft, p);
            Ok(user_page_status(&who, Here::Transfer, status, "Transfer", body))
        };
        let (req, from) = match read_transfer(&accounts, transfer_id, &draft) {
            Ok(read) => read,
            Err(p) => return again(StatusCode::BAD_REQUEST, &p),
        };
        match usecase::start_transfer(tx, now, st, &who, &req)? {
            Started::Settled(t) => Ok(result_page(&who, StatusCode::OK, &t)),
            Started::Challenge(c) => {
                let signing = Signing {
                    challenge_id: &c.challenge_id,
                    challenge: c.challenge.to_hex(),
                    sign: &c.sign,
                    payee_check: &c.payee_check,
                };
                let body = sign_html(st, &who.session.csrf, &signing, &CodeProblems::default());
                Ok(user_page(&who, Here::Transfer, "Confirm the transfer", body))
            }
            // A value, not an `Err`: the unit of work commits the refusal's audit row.
            Started::Refused(e) => {
                let status = super::ledger_status(&e);
                again(status, &refusal_problems(&e, &req, &from))
            }
            Started::KindNotAllowed(kind) => {
                let e = AppError::TokenKindNotAllowed(kind);
                again(e.status(), &Problems { form: Some(page_message(&e)), ..Problems::default() })
            }
            Started::CardTooOld => {
                let e = AppError::CardTooOld;
                again(e.status(), &Problems { form: Some(page_message(&e)), ..Problems::default() })
            }
        }
    })
    .await
}

const CONFIRM_RULE: &str =
    "Tick this box to pay this account although its name was not confirmed, or start a new transfer.";

async fn transfer_confirm(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    if let Err(e) = super::extract::limit_code(&state, state.cookie(&headers).as_deref()).await {
        return super::extract::refusal_page(e);
    }
    page(state, &headers, move |tx, now, st, visit| {
        let who = logged_in(visit)?;
        check_csrf(&who.session, &f.csrf)?;
        let code = zeroize::Zeroizing::new(f.code);
        let transfer_id: TransferId = f.transfer_id.parse().map_err(|_| AppError::invalid(DAMAGED))?;
        let challenge_id = f.challenge_id.parse::<ChallengeId>().ok();
        // The confirmation page again with a problem beside a field: nothing was checked, so
        // the challenge is still open. Without it, the transfer as it stands.
        let again = |p: CodeProblems<'_>, status: StatusCode| -> Result<Page, AppError> {
            let info = match &challenge_id {
                Some(id) => usecase::challenge_info(tx, now, st, id)?,
                None => None,
            };
            match info {
                Some(ChallengeInfo { what: ChallengeFor::Transfer { sign, payee_check }, challenge, user, .. })
                    if user == who.user && sign.transaction_id == transfer_id =>
                {
                    let signing = Signing {
                        challenge_id: challenge_id.as_ref().ok_or(AppError::NotFound)?,
                        challenge: challenge.to_hex(),
                        sign: &sign,
                        payee_check: &payee_check,
                    };
                    let body = sign_html(st, &who.session.csrf, &signing, &p);
                    Ok(user_page_status(&who, Here::Transfer, status, "Confirm the transfer", body))
                }
                _ => match ledger::transfer(tx, now, who.user_id, &transfer_id)? {
                    Some(t) => Ok(result_page(&who, status, &t)),
                    None => Err(AppError::NotFound),
                },
            }
        };
        let Some((counter, otp)) = parse_code(&code) else {
            return again(CodeProblems { code: Some(CODE_RULE), confirm: None }, StatusCode::BAD_REQUEST);
        };
        let Some(challenge_id) = &challenge_id else {
            return Err(AppError::invalid(DAMAGED));
        };
        let c = usecase::Confirmation {
            challenge_id,
            counter,
            otp: &otp,
            unverified_payee_ok: f.confirm_unverified_payee.as_deref() == Some("yes"),
        };
        match usecase::confirm_transfer(tx, now, st, &who, &transfer_id, c) {
            Ok(Ok(t)) => Ok(result_page(&who, StatusCode::OK, &t)),
            // Refused now (the failure counts and the transfer ended) or ended before.
            Ok(Err(usecase::NotConfirmed { failure, transfer })) => {
                let status = if failure.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::CONFLICT };
                Ok(result_page(&who, status, &transfer))
            }
            Err(usecase::UseCaseError::PayeeNotConfirmed(_)) => {
                again(CodeProblems { code: None, confirm: Some(CONFIRM_RULE) }, StatusCode::CONFLICT)
            }
            Err(e) => Err(e.into()),
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

//! `reader-bridge serve`: the local signing service the bank's pages call (docs/bridge.md,
//! "serve"). It listens on loopback only and answers one endpoint, `POST /v1/sign` with
//! `{"challenge_id": "..."}`:
//!
//! 1. the request is refused unless its `Host` is this service's own loopback address (DNS
//!    rebinding) and it carries an `Origin` that is `https://...` or loopback `http://`;
//! 2. what is to be signed is fetched from the **pinned** bank over TLS
//!    (`GET /api/v1/challenges/{id}`), never taken from the page;
//! 3. the person is shown, in the service's terminal, the origin that asked, the user and,
//!    for a transfer, every signed field ([`signed_fields`]), and asked to confirm and for the
//!    PIN there;
//! 4. the card signs with the verifier id `paysim_otp::verifier_id(Origin)`: the origin the
//!    *browser* reports. A look-alike page gets a code bound to its own origin, which the real
//!    bank refuses.
//!
//! CORS and Private Network Access preflights (`OPTIONS`) are answered for any accepted
//! origin. One request signs at a time: the card is one, and so is the person.
//!
//! The HTTP side runs on tokio (axum); the card and the bank's blocking client run on one
//! worker thread ([`Signer`]) that owns the [`Bridge`], so no blocking call runs on an async
//! worker and requests are signed in order.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use paysim_wire::api::{ChallengeFor, ChallengeInfo, ErrorCode, SignFields, SIGNING_SERVICE_PORT};
use paysim_wire::ChallengeId;
use serde::{Deserialize, Serialize};

use crate::apdu::CardOtp;
use crate::error::{Error, Result};
use crate::flow::{ask_secret, format_time, Bridge, Ui};

/// Where `serve` listens unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), SIGNING_SERVICE_PORT);

/// Largest request body read (a challenge id is 32 hex digits).
const BODY_MAX: usize = 1024;

/// `--listen ADDR`: an IP address and port on loopback; anything else is refused, since the
/// service signs for whoever can reach it and only this computer's browser should.
pub fn listen_address(text: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = text.trim().parse().map_err(|_| {
        Error::BadInput(format!("bad --listen {text:?}: give a loopback address and port, e.g. {DEFAULT_LISTEN}"))
    })?;
    if !addr.ip().is_loopback() {
        return Err(Error::BadInput(format!(
            "refusing --listen {addr}: the signing service listens on this computer only \
             (127.0.0.1 or [::1]), e.g. {DEFAULT_LISTEN}"
        )));
    }
    Ok(addr)
}

/// The origin a request came from, as the browser sent it in `Origin`, and the verifier id
/// the card signs for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageOrigin {
    origin: String,
    verifier_id: String,
}

impl PageOrigin {
    /// An `Origin` header value (RFC 6454 section 7: `scheme "://" host [ ":" port ]`) that
    /// the service accepts: `https://` anything, or `http://` to 127.0.0.1, `[::1]` or
    /// localhost. `null`, paths, user names and other schemes are refused.
    pub fn parse(text: &str) -> std::result::Result<PageOrigin, Refusal> {
        let bad = || Refusal::OriginNotAllowed;
        let (scheme, authority) = text.split_once("://").ok_or_else(bad)?;
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) || !text.is_ascii() {
            return Err(bad());
        }
        let verifier_id = paysim_otp::verifier_id(text).map_err(|_| bad())?;
        match scheme {
            "https" => {}
            "http" => {
                let host = match authority.strip_prefix('[') {
                    Some(v6) => format!("[{}", v6.split_once(']').map_or(v6, |(h, _)| h)) + "]",
                    None => authority.split(':').next().unwrap_or("").to_ascii_lowercase(),
                };
                if !["127.0.0.1", "[::1]", "localhost"].contains(&host.as_str()) {
                    return Err(bad());
                }
            }
            _ => return Err(bad()),
        }
        Ok(PageOrigin { origin: text.to_owned(), verifier_id })
    }

    /// The `Origin` as sent.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// What the card signs for this origin.
    pub fn verifier_id(&self) -> &str {
        &self.verifier_id
    }
}

/// Whether `host` (a `Host` header) names this service itself: its own loopback address and
/// port, or `localhost` with that port. A page on a rebound DNS name (`evil.example` resolved
/// to 127.0.0.1) sends its own name and is refused.
pub fn host_is_ours(host: &str, local: SocketAddr) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let port = local.port();
    let own = match local.ip() {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    host == own || host == format!("localhost:{port}")
}

/// Every field of `sign` that the card signs, as (label, value) for the person, with the
/// verifier id the card will really use (`code_for`: the page's origin), not the one the bank
/// states. The struct is taken apart field by field, so a field added to [`SignFields`] does
/// not compile until it is shown here.
pub fn signed_fields(code_for: &str, sign: &SignFields) -> Vec<(&'static str, String)> {
    let SignFields {
        verifier_id: _stated_by_the_bank,
        transaction_id,
        amount_minor,
        currency,
        source,
        payee,
        payee_name,
    } = sign;
    vec![
        ("bank (verifier id)", code_for.to_owned()),
        ("transfer id", transaction_id.to_string()),
        ("from account", source.to_string()),
        ("payee account", payee.to_string()),
        ("payee's name", payee_name.to_string()),
        ("amount", format!("{} {currency} ({amount_minor} minor units)", currency.format_minor(*amount_minor))),
    ]
}

/// What the person is shown before confirming: the origin that asked, the user, what the card
/// signs, and a warning when the origin is not the bank this bridge is set up for.
pub fn describe_request(origin: &PageOrigin, pinned_verifier_id: &str, info: &ChallengeInfo) -> String {
    let what = match &info.what {
        ChallengeFor::Login => "log in",
        ChallengeFor::Transfer { .. } => "sign a transfer",
    };
    let mut lines = vec![
        format!("A web page asks to {what} with your card."),
        format!("  {:<19} {}", "page that asked:", origin.as_str()),
        format!("  {:<19} {}", "user:", info.user),
    ];
    match &info.what {
        ChallengeFor::Login => lines.push(format!("  {:<19} {}", "bank (verifier id):", origin.verifier_id())),
        ChallengeFor::Transfer { sign, payee_check } => {
            for (label, value) in signed_fields(origin.verifier_id(), sign) {
                lines.push(format!("  {:<19} {value}", format!("{label}:")));
            }
            lines.push(format!("  {:<19} {}", "payee check:", payee_check.describe()));
            if payee_check.needs_confirmation() {
                lines.push(
                    "WARNING: the bank could not confirm that this name is the account holder's. \
                     Money sent to the wrong account is hard to get back: answer no unless you are sure, \
                     and the page will ask you once more."
                        .to_owned(),
                );
            }
        }
    }
    lines.push(format!("  {:<19} {}", "challenge:", info.challenge));
    lines.push(format!("  {:<19} {}", "valid until:", format_time(info.expires_at)));
    if origin.verifier_id() != pinned_verifier_id {
        lines.push(format!(
            "WARNING: this page is not the bank this bridge is set up for ({pinned_verifier_id}). \
             A code made now is bound to {} and your bank will refuse it. A page that shows your \
             bank's challenge under another address is a look-alike: answer no.",
            origin.verifier_id()
        ));
    }
    lines.join("\n")
}

/// Signs one page request with the bridge: fetch from the pinned bank, show, confirm, PIN,
/// card. Every error leaves the card unused unless the PIN was sent.
pub fn sign_for_page(bridge: &Bridge, origin: &PageOrigin, id: &ChallengeId, ui: &mut dyn Ui) -> Result<CardOtp> {
    let bank = bridge.bank()?;
    let info = bank.challenge(id)?;
    ui.say(&describe_request(origin, bank.verifier_id(), &info));
    let kind = match info.what {
        ChallengeFor::Login => "login",
        ChallengeFor::Transfer { .. } => "transfer",
    };
    if !ui.confirm(&format!("Sign this {kind} for {}?", origin.as_str()))? {
        return Err(Error::Cancelled);
    }
    let mut card = bridge.open_token(ui)?;
    card.check_ready()?;
    // A PAYSIM card asks for its PIN, an OATH key for its access code if it has one.
    let secret = ask_secret(card.as_mut(), ui)?;
    let secret = secret.as_deref().map(String::as_str);
    let challenge = info.challenge.as_bytes();
    match &info.what {
        ChallengeFor::Login => card.login_code(secret, Some(&info.user), challenge, origin.verifier_id()),
        ChallengeFor::Transfer { sign, .. } => {
            card.tx_code(secret, Some(&info.user), challenge, &sign.tx_fields(origin.verifier_id()))
        }
    }
}

/// The body of `POST /v1/sign`. Only the challenge id: the verifier id comes from `Origin`,
/// what is signed from the bank; a body with anything else is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    pub challenge_id: ChallengeId,
}

/// The answer of `POST /v1/sign`: the card's counter and code, and both as the bank's code
/// field takes them (`COUNTER-OTP`).
#[derive(Serialize)]
pub struct SignAnswer {
    pub counter: u64,
    pub otp: String,
    pub code: String,
}

/// Why the service did not sign: a stable code for the page and a sentence it may show. The
/// detail (reader names, the bank's own text) stays in the service's terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Origin` header: not a request a browser's page made.
    OriginRequired,
    /// An `Origin` that is neither `https://` nor loopback `http://`.
    OriginNotAllowed,
    /// A `Host` other than this service's loopback address (DNS rebinding).
    HostNotAllowed,
    /// A malformed request (the text says what).
    Invalid(&'static str),
    UnsupportedMediaType,
    /// A body over 1 KiB.
    TooLarge,
    NotFound,
    MethodNotAllowed,
    /// Another request is being signed.
    Busy,
    /// The person said no.
    Declined,
    /// The person could not be asked (their input ended or was not a PIN).
    NotConfirmed,
    WrongPin,
    PinBlocked,
    /// The bank has no open challenge of that id (used, expired, unknown).
    UnknownChallenge,
    /// No card, no reader, no pcscd, or the card refused.
    CardUnavailable,
    /// The pinned bank could not be asked.
    BankUnavailable,
    /// `reader-bridge setup` has not run.
    NotSetUp,
    Internal,
}

impl Refusal {
    /// (status, code, message) as the page gets them.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Refusal::OriginRequired => {
                (S::FORBIDDEN, "origin_required", "only a web page may ask (the request has no Origin header)")
            }
            Refusal::OriginNotAllowed => (
                S::FORBIDDEN,
                "origin_not_allowed",
                "only https:// pages (or http:// pages on this computer) may ask the signing service",
            ),
            Refusal::HostNotAllowed => (
                S::MISDIRECTED_REQUEST,
                "host_not_allowed",
                "the request is not addressed to the signing service's own address (127.0.0.1, [::1] or localhost)",
            ),
            Refusal::Invalid(m) => (S::BAD_REQUEST, "invalid_request", m),
            Refusal::UnsupportedMediaType => {
                (S::UNSUPPORTED_MEDIA_TYPE, "invalid_request", "the body must be JSON (Content-Type: application/json)")
            }
            Refusal::TooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is larger than 1 KiB: send only {\"challenge_id\": \"...\"}",
            ),
            Refusal::NotFound => (S::NOT_FOUND, "not_found", "the signing service has only POST /v1/sign"),
            Refusal::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed", "use POST /v1/sign"),
            Refusal::Busy => (S::CONFLICT, "busy", "the card is signing another request: finish that one first"),
            Refusal::Declined => (S::FORBIDDEN, "declined", "declined at the card's terminal: nothing was signed"),
            Refusal::NotConfirmed => (
                S::FORBIDDEN,
                "not_confirmed",
                "the signing service could not get a confirmation and PIN: see its terminal; nothing was signed",
            ),
            Refusal::WrongPin => (S::FORBIDDEN, "wrong_pin", "wrong PIN at the card's terminal: nothing was signed"),
            Refusal::PinBlocked => (S::FORBIDDEN, "pin_blocked", "the card's PIN is blocked: see the card's terminal"),
            Refusal::UnknownChallenge => (
                S::NOT_FOUND,
                "unknown_challenge",
                "the bank has no open challenge with this id (used, expired or unknown): start again",
            ),
            Refusal::CardUnavailable => {
                (S::SERVICE_UNAVAILABLE, "card_unavailable", "the card could not be used: see the card's terminal")
            }
            Refusal::BankUnavailable => {
                (S::BAD_GATEWAY, "bank_unavailable", "the signing service could not ask the bank: see its terminal")
            }
            Refusal::NotSetUp => (
                S::SERVICE_UNAVAILABLE,
                "not_set_up",
                "the signing service is not set up for a bank: run `reader-bridge setup`",
            ),
            Refusal::Internal => (S::INTERNAL_SERVER_ERROR, "internal", "internal error in the signing service"),
        }
    }

    /// What the page is told about a bridge error (the terminal shows the error itself).
    pub fn of(e: &Error) -> Refusal {
        match e {
            Error::Cancelled => Refusal::Declined,
            Error::BadInput(_) | Error::Terminal(_) => Refusal::NotConfirmed,
            Error::WrongPin { .. }
            | Error::Oath { source: card_applet::host::oath::OathError::WrongAccessCode, .. } => Refusal::WrongPin,
            Error::PinBlocked => Refusal::PinBlocked,
            Error::Bank { code: ErrorCode::NotFound, .. } => Refusal::UnknownChallenge,
            Error::NoService(_)
            | Error::NoReader
            | Error::UnknownReader { .. }
            | Error::SeveralCards { .. }
            | Error::NoCard { .. }
            | Error::CardBusy { .. }
            | Error::CardRemoved
            | Error::NoApplet { .. }
            | Error::NotPersonalized
            | Error::Card { .. }
            | Error::Oath { .. }
            | Error::NoOathCredential(_)
            | Error::Pcsc(_)
            | Error::WrongPuk { .. }
            | Error::PukBlocked => Refusal::CardUnavailable,
            Error::BankUnreachable { .. }
            | Error::OutcomeUnknown { .. }
            | Error::BankTls { .. }
            | Error::Bank { .. }
            | Error::BadBankResponse(_)
            | Error::OtpRejected
            | Error::NotLoggedIn
            | Error::InsufficientFunds
            | Error::TransferRefused { .. } => Refusal::BankUnavailable,
            Error::NotSetUp => Refusal::NotSetUp,
            Error::PlainHttp { .. }
            | Error::OtherBank { .. }
            | Error::OtherCa { .. }
            | Error::AlreadySetUp { .. }
            | Error::BadCa { .. }
            | Error::SecretOnCommandLine { .. }
            | Error::TransferBusy { .. }
            | Error::UnknownUser { .. }
            | Error::State { .. } => Refusal::Internal,
        }
    }
}

#[derive(Serialize)]
struct RefusalBody {
    error: &'static str,
    message: &'static str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, error, message) = self.parts();
        (status, Json(RefusalBody { error, message })).into_response()
    }
}

/// One request for the worker.
struct Job {
    origin: PageOrigin,
    challenge_id: ChallengeId,
    answer: tokio::sync::oneshot::Sender<std::result::Result<CardOtp, Refusal>>,
}

/// The worker thread that owns the bridge and the person's terminal, and signs one request
/// at a time. Cheap to clone.
#[derive(Clone)]
pub struct Signer {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Set while a request is with the worker; cleared by the worker when it has answered.
    busy: Arc<AtomicBool>,
}

impl Signer {
    /// Starts the worker: `open` makes the bridge on the worker's thread (a bridge holds the
    /// card opener, which stays on that thread), and `ui` reaches the person. Fails with
    /// `open`'s error, or [`Error::NotSetUp`] when no bank is pinned.
    pub fn start(
        open: impl FnOnce() -> Result<Bridge> + Send + 'static,
        mut ui: Box<dyn Ui + Send>,
    ) -> Result<(Signer, String)> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String>>();
        let busy = Arc::new(AtomicBool::new(false));
        let done = busy.clone();
        std::thread::Builder::new()
            .name("signer".into())
            .spawn(move || {
                let bridge = match open().and_then(|b| b.bank().map(|bank| bank.url().to_owned()).map(|u| (b, u))) {
                    Ok((b, url)) => {
                        let _ = ready_tx.send(Ok(url));
                        b
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for job in rx {
                    let result = sign_for_page(&bridge, &job.origin, &job.challenge_id, ui.as_mut());
                    let answer = match result {
                        Ok(otp) => {
                            ui.warn(&format!(
                                "signed: code with counter {} handed to the page at {}",
                                otp.counter,
                                job.origin.as_str()
                            ));
                            Ok(otp)
                        }
                        Err(e) => {
                            ui.warn(&format!("not signed: {e}"));
                            Err(Refusal::of(&e))
                        }
                    };
                    // Free before the page hears the answer, so its next request is taken.
                    done.store(false, Ordering::SeqCst);
                    let _ = job.answer.send(answer);
                }
            })
            .map_err(|e| Error::State { path: "signer thread".into(), source: e })?;
        let url = ready_rx.recv().map_err(|_| Error::NotSetUp)??;
        Ok((Signer { jobs, busy }, url))
    }

    async fn sign(&self, origin: PageOrigin, challenge_id: ChallengeId) -> std::result::Result<CardOtp, Refusal> {
        if self.busy.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return Err(Refusal::Busy);
        }
        let (answer, rx) = tokio::sync::oneshot::channel();
        if self.jobs.send(Job { origin, challenge_id, answer }).is_err() {
            return Err(Refusal::Internal);
        }
        rx.await.unwrap_or(Err(Refusal::Internal))
    }
}

#[derive(Clone)]
struct Service {
    signer: Signer,
    local: SocketAddr,
}

/// The router of the service listening on `local` (tests call it with `oneshot`).
pub fn app(signer: Signer, local: SocketAddr) -> Router {
    let state = Service { signer, local };
    Router::new()
        .route("/v1/sign", post(sign).options(preflight))
        .fallback(|| async { Refusal::NotFound })
        .method_not_allowed_fallback(|| async { Refusal::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX))
        .layer(axum::middleware::from_fn_with_state(state.clone(), own_host))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Serves the signing service on `listener` (a loopback address) until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    signer: Signer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        return Err(std::io::Error::other(format!("refusing to serve on {local}: loopback only")));
    }
    axum::serve(listener, app(signer, local)).with_graceful_shutdown(shutdown).await
}

/// Refuses every request whose `Host` is not this service's own address, before anything
/// else looks at it.
async fn own_host(State(s): State<Service>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let ours = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(|h| host_is_ours(h, s.local));
    if !ours {
        return Refusal::HostNotAllowed.into_response();
    }
    next.run(req).await
}

async fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The request's `Origin`, checked.
fn origin(headers: &HeaderMap) -> std::result::Result<PageOrigin, Refusal> {
    let value = headers.get(header::ORIGIN).ok_or(Refusal::OriginRequired)?;
    PageOrigin::parse(value.to_str().map_err(|_| Refusal::OriginNotAllowed)?)
}

/// `res` with the CORS headers that let the page at `origin` read it (Fetch standard,
/// "CORS protocol": the origin echoed, never `*`, and `Vary: Origin` for caches).
fn for_origin(origin: &PageOrigin, mut res: Response) -> Response {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin.as_str()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    res
}

const REQUEST_PRIVATE_NETWORK: HeaderName = HeaderName::from_static("access-control-request-private-network");
const ALLOW_PRIVATE_NETWORK: HeaderName = HeaderName::from_static("access-control-allow-private-network");

/// `OPTIONS /v1/sign`: the CORS preflight, with Private Network Access's
/// `Access-Control-Allow-Private-Network: true` when the browser asks for it.
async fn preflight(headers: HeaderMap) -> Response {
    let origin = match origin(&headers) {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    let method = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|v| v.to_str().ok());
    if method.is_some_and(|m| m != Method::POST.as_str()) {
        return for_origin(&origin, Refusal::MethodNotAllowed.into_response());
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    h.insert(
        header::VARY,
        HeaderValue::from_static(
            "Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network",
        ),
    );
    if headers.get(REQUEST_PRIVATE_NETWORK).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true")) {
        h.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
    }
    for_origin(&origin, res)
}

/// `POST /v1/sign`.
async fn sign(
    State(s): State<Service>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let origin = match origin(&headers) {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    let signed = match body {
        Ok(body) => sign_request(&s, &origin, &headers, &body).await,
        Err(_) => Err(Refusal::TooLarge),
    };
    let answer = match signed {
        Ok(otp) => {
            let code = format!("{}-{}", otp.counter, otp.otp.as_str());
            Json(SignAnswer { counter: otp.counter, otp: otp.otp.as_str().to_owned(), code }).into_response()
        }
        Err(r) => r.into_response(),
    };
    for_origin(&origin, answer)
}

async fn sign_request(
    s: &Service,
    origin: &PageOrigin,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<CardOtp, Refusal> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(Refusal::UnsupportedMediaType);
    }
    let req: SignRequest = serde_json::from_slice(body)
        .map_err(|_| Refusal::Invalid("the body must be {\"challenge_id\": \"<32 hex digits>\"} and nothing else"))?;
    s.signer.sign(origin.clone(), req.challenge_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_listened_on() {
        assert_eq!(listen_address("127.0.0.1:7480").unwrap(), DEFAULT_LISTEN);
        assert!(listen_address("[::1]:0").is_ok());
        assert!(listen_address("127.0.0.2:9").is_ok());
        for bad in ["0.0.0.0:7480", "192.168.1.2:7480", "[::]:7480", "localhost:7480", "7480", ""] {
            let e = listen_address(bad).unwrap_err();
            assert!(matches!(e, Error::BadInput(_)), "{bad}: {e:?}");
        }
        assert!(listen_address("0.0.0.0:1").unwrap_err().to_string().contains("this computer only"));
    }

    #[test]
    fn origins_are_https_or_loopback_http() {
        for (ok, vid) in [
            ("https://bank.example", "https://bank.example:443"),
            ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ] {
            assert_eq!(PageOrigin::parse(ok).unwrap().verifier_id(), vid, "{ok}");
        }
        for bad in [
            "null",
            "",
            "http://bank.example",
            "http://10.0.0.1:80",
            "http://127.0.0.2:80",
            "http://localhost.evil.example",
            "ftp://127.0.0.1",
            "https://bank.example/path",
            "https://user@bank.example",
            "https://",
            "bank.example",
        ] {
            assert_eq!(PageOrigin::parse(bad), Err(Refusal::OriginNotAllowed), "{bad}");
        }
    }

    #[test]
    fn only_our_own_host_is_answered() {
        let local: SocketAddr = "127.0.0.1:7480".parse().unwrap();
        for ok in ["127.0.0.1:7480", "localhost:7480", "LocalHost:7480"] {
            assert!(host_is_ours(ok, local), "{ok}");
        }
        for bad in ["evil.example:7480", "127.0.0.1:7481", "127.0.0.1", "localhost", "[::1]:7480", ""] {
            assert!(!host_is_ours(bad, local), "{bad}");
        }
        assert!(host_is_ours("[::1]:9", "[::1]:9".parse().unwrap()));
    }

    #[test]
    fn the_person_sees_every_signed_field_and_the_origin() {
        let sign = SignFields {
            verifier_id: "https://bank.example:443".into(),
            transaction_id: "tx-1".parse().unwrap(),
            amount_minor: 1234,
            currency: "EUR".parse().unwrap(),
            source: "ACC-ALICE-EUR".parse().unwrap(),
            payee: "ACC-BOB-EUR".parse().unwrap(),
            payee_name: "Zoë Ångström".parse().unwrap(),
        };
        let info = ChallengeInfo {
            challenge_id: "0".repeat(32).parse().unwrap(),
            user: "alice".parse().unwrap(),
            challenge: paysim_wire::Challenge::from_bytes(&[0xAB; 32]).unwrap(),
            expires_at: 1_764_000_120,
            what: ChallengeFor::Transfer { sign, payee_check: paysim_wire::api::PayeeCheck::Match },
        };
        let at_bank = PageOrigin::parse("https://bank.example").unwrap();
        let text = describe_request(&at_bank, "https://bank.example:443", &info);
        for needle in [
            "page that asked:    https://bank.example",
            "user:               alice",
            "https://bank.example:443",
            "tx-1",
            "from account:       ACC-ALICE-EUR",
            "payee account:      ACC-BOB-EUR",
            "payee's name:       Zoë Ångström",
            "payee check:        match: the name is the name on the account",
            "12.34 EUR (1234 minor units)",
            &"AB".repeat(32),
            "2025-11-24 16:02:00Z",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in\n{text}");
        }
        assert!(!text.contains("WARNING"), "{text}");
        let lookalike = PageOrigin::parse("https://bank-example.com").unwrap();
        let text = describe_request(&lookalike, "https://bank.example:443", &info);
        assert!(text.contains("WARNING: this page is not the bank"), "{text}");
        assert!(text.contains("bank (verifier id): https://bank-example.com:443"), "{text}");
    }
}

//! The bank's JSON API (docs/api.md), over one reused blocking HTTP client. Requests and
//! answers are the `paysim_wire::api` types the server itself writes and reads.
//!
//! Every call maps the bank's stable error codes to [`Error`] variants: `auth_failed` is
//! [`Error::OtpRejected`], `unauthenticated` is [`Error::NotLoggedIn`], `insufficient_funds`
//! is [`Error::InsufficientFunds`], the other transfer refusals are
//! [`Error::TransferRefused`]; a connection failure is [`Error::BankUnreachable`], a failed
//! TLS handshake [`Error::BankTls`] (with a [`TlsProblem`] a person can act on).
//!
//! Transport: the workspace's one HTTP stack (reqwest on hyper) over rustls with the ring
//! provider. The bank's certificate is checked against the platform's roots, or, with a
//! private CA ([`Trust::PrivateCa`]), against that CA only. `http://` is accepted only to this
//! computer (127.0.0.0/8, `::1`, `localhost`): [`Error::PlainHttp`] otherwise. Redirects are
//! not followed: the bank's API never redirects, and a redirect must not carry a session token
//! to another address.

use crate::error::{Error, Result, TlsProblem};
use paysim_otp::Otp;
use paysim_wire::api::{
    Account, Accounts, ChallengeInfo, CodeSubmission, ErrorBody, ErrorCode, LoginChallenge, LoginChallengeRequest,
    LoginOk, NewTransfer, OtpText, SessionToken, Transfer, TransferChallenge, TransferConfirmation, TransferEnvelope,
    Transfers,
};
use paysim_wire::{ChallengeId, TransferId, UserName};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

/// A private CA's certificates, as PEM text, checked to hold at least one certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct CaPem {
    pem: String,
    ders: Vec<Vec<u8>>,
}

impl std::fmt::Debug for CaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPem").field("sha256", &self.fingerprints()).finish()
    }
}

impl CaPem {
    /// Parses PEM text: every `CERTIFICATE` block is kept; other blocks (a key by mistake)
    /// are refused, and so is text without a certificate.
    pub fn parse(pem: &str) -> std::result::Result<CaPem, String> {
        use rustls::pki_types::pem::{PemObject, SectionKind};
        let mut ders = Vec::new();
        for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
            match item {
                Ok((SectionKind::Certificate, der)) => ders.push(der),
                Ok((kind, _)) => {
                    return Err(format!(
                        "it holds a {kind:?} block; give only the CA's certificate (PEM, BEGIN CERTIFICATE)"
                    ))
                }
                Err(e) => return Err(format!("it is not valid PEM ({e})")),
            }
        }
        if ders.is_empty() {
            return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
        }
        // rustls accepts each as a trust anchor, or the file is refused now, not at the first
        // connection.
        let mut roots = rustls::RootCertStore::empty();
        for der in &ders {
            roots
                .add(rustls::pki_types::CertificateDer::from(der.clone()))
                .map_err(|e| format!("a certificate in it cannot be a trust anchor ({e})"))?;
        }
        Ok(CaPem { pem: pem.to_owned(), ders })
    }

    /// Reads and parses the PEM file at `path` ([`Error::BadCa`] if it cannot be used).
    pub fn read(path: &Path) -> Result<CaPem> {
        let bad = |reason: String| Error::BadCa { path: path.to_owned(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        CaPem::parse(&text).map_err(bad)
    }

    /// The PEM text as read.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// SHA-256 of each certificate (DER), `AB:CD:...`: what `openssl x509 -noout -fingerprint
    /// -sha256` prints, so a person can compare it with what the bank publishes.
    pub fn fingerprints(&self) -> Vec<String> {
        use sha2::Digest;
        self.ders
            .iter()
            .map(|der| {
                let digest = sha2::Sha256::digest(der);
                digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
            })
            .collect()
    }

    /// Same certificates (the PEM text around them may differ).
    pub fn same_certificates(&self, other: &CaPem) -> bool {
        self.ders == other.ders
    }
}

/// What the bridge trusts for the bank's TLS certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The platform's root certificates (what the system's browsers trust).
    Platform,
    /// Only this private CA; the platform's roots are not used for the bank.
    PrivateCa(CaPem),
}

/// A bank address the bridge accepts: `https://HOST[:PORT]`, or `http://` to this computer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankAddress {
    /// The base URL requests go to, without a trailing `/`.
    pub url: String,
    /// What the card signs: `scheme://host:port`.
    pub verifier_id: String,
}

impl BankAddress {
    /// Checks `text`: a scheme of http or https, a host, no user, path, query or fragment;
    /// `http://` only to a loopback host.
    pub fn parse(text: &str) -> Result<BankAddress> {
        let text = text.trim();
        let bad = |why: &str| Error::BadInput(format!("bad bank address {text:?}: {why}"));
        let verifier_id = paysim_otp::verifier_id(text).map_err(|e| bad(&e.to_string()))?;
        let url = reqwest::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("give the address without a user name or password"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("give only the bank's origin, without a path, e.g. https://bank.example"));
        }
        let host = url.host().ok_or_else(|| bad("it names no host"))?;
        if url.scheme() == "http" {
            let loopback = match &host {
                url::Host::Ipv4(a) => a.is_loopback(),
                url::Host::Ipv6(a) => a.is_loopback(),
                url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            };
            if !loopback {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                return Err(Error::PlainHttp { host: host.to_string(), port });
            }
        }
        Ok(BankAddress { url: text.trim_end_matches('/').to_owned(), verifier_id })
    }
}

/// How long one request to the bank may take (`--bank-timeout`), from the start of the
/// connection to the last byte of the answer, unless the caller sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest wait for a connection: 5 s, or half the request's timeout if that is shorter,
/// so that a bank that does not accept the connection ends as a connect error (the request
/// never left) rather than as the request's timeout (which could be after sending).
fn connect_timeout(total: Duration) -> Duration {
    Duration::from_secs(5).min(total / 2)
}

/// A client for one bank.
pub struct Bank {
    http: reqwest::blocking::Client,
    base: String,
    verifier_id: String,
}

/// What `POST /transfers` answered.
#[derive(Clone, Debug)]
pub enum Created {
    /// Pending: sign this challenge.
    Challenge(Box<TransferChallenge>),
    /// A retry of a transfer that was already executed: nothing moves again.
    AlreadyExecuted(Transfer),
}

impl Bank {
    /// A client for the bank at `server_url`, trusting `trust` for its certificate. The
    /// verifier id the card will sign is derived here, from this URL, and from nothing the
    /// server says.
    pub fn new(server_url: &str, trust: &Trust) -> Result<Self> {
        Self::with_timeout(server_url, trust, DEFAULT_TIMEOUT)
    }

    /// As [`Bank::new`], each request limited to `timeout` (connection included) instead of
    /// [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(server_url: &str, trust: &Trust, timeout: Duration) -> Result<Self> {
        if timeout.is_zero() {
            return Err(Error::BadInput("the bank timeout must be at least 1 s".to_owned()));
        }
        let address = BankAddress::parse(server_url)?;
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(connect_timeout(timeout))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .user_agent(concat!("reader-bridge/", env!("CARGO_PKG_VERSION")));
        if let Trust::PrivateCa(ca) = trust {
            builder = builder.tls_built_in_root_certs(false);
            for der in &ca.ders {
                let cert = reqwest::Certificate::from_der(der)
                    .map_err(|e| Error::BadInput(format!("cannot use the private CA: {e}")))?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| Error::BadInput(format!("cannot build the HTTP client: {e}")))?;
        Ok(Bank { http, base: address.url, verifier_id: address.verifier_id })
    }

    /// Asks the bank something harmless (`GET /session` without a token) to check that the
    /// address answers, over TLS that `trust` accepts, with the bank's JSON API.
    pub fn probe(&self) -> Result<()> {
        match self.send(self.http.get(self.url_of("/session"))) {
            Ok(_) | Err(Error::NotLoggedIn) => Ok(()),
            Err(Error::Bank { code: ErrorCode::Unknown, status, .. }) => Err(Error::BadBankResponse(format!(
                "{} answered {status} without the bank's JSON error body: is this the PAYSIM bank's address?",
                self.base
            ))),
            Err(Error::Bank { .. } | Error::TransferRefused { .. } | Error::OtpRejected | Error::InsufficientFunds) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The verifier id derived from the configured URL.
    pub fn verifier_id(&self) -> &str {
        &self.verifier_id
    }

    /// The configured base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn url_of(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<(u16, Vec<u8>)> {
        self.send_mapping(req, |source| transport_error(&self.base, source))
    }

    /// Sends `req`; a request that got no (whole) answer becomes `failed(source)`, an error
    /// answer the bank's error, a success its status and body.
    fn send_mapping(
        &self,
        req: reqwest::blocking::RequestBuilder,
        failed: impl Fn(reqwest::Error) -> Error,
    ) -> Result<(u16, Vec<u8>)> {
        let resp = req.send().map_err(&failed)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().map_err(&failed)?;
        if (200..300).contains(&status) {
            return Ok((status, body.to_vec()));
        }
        Err(api_error(status, &body))
    }

    fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| Error::BadBankResponse(e.to_string()))
    }

    fn submission(challenge_id: &ChallengeId, counter: u64, otp: &Otp) -> Result<CodeSubmission> {
        let otp =
            OtpText::new(otp.as_str()).ok_or_else(|| Error::BadInput("the card's code is too long".to_owned()))?;
        Ok(CodeSubmission { challenge_id: challenge_id.clone(), counter, otp })
    }

    /// `POST /login/challenge`.
    pub fn login_challenge(&self, user: &UserName) -> Result<LoginChallenge> {
        let body = LoginChallengeRequest { user: user.clone() };
        let (_, body) = self.send(self.http.post(self.url_of("/login/challenge")).json(&body))?;
        Self::json(&body)
    }

    /// `GET /challenges/{id}`: what the open challenge `id` asks the card to sign (for
    /// `serve`, which shows it to the person instead of what a page says). A challenge the
    /// bank does not have open (unknown, used, expired) is [`Error::Bank`] with `not_found`.
    pub fn challenge(&self, id: &ChallengeId) -> Result<ChallengeInfo> {
        let (_, body) = self.send(self.http.get(self.url_of(&format!("/challenges/{id}"))))?;
        let info: ChallengeInfo = Self::json(&body)?;
        if info.challenge_id != *id {
            return Err(Error::BadBankResponse(format!(
                "asked for challenge {id}, the bank answered with {}",
                info.challenge_id
            )));
        }
        Ok(info)
    }

    /// `POST /login` with the card's counter and code.
    pub fn login(&self, challenge_id: &ChallengeId, counter: u64, otp: &Otp) -> Result<LoginOk> {
        let body = Self::submission(challenge_id, counter, otp)?;
        let (_, body) = self.send(self.http.post(self.url_of("/login")).json(&body))?;
        Self::json(&body)
    }

    /// `POST /logout`.
    pub fn logout(&self, token: &SessionToken) -> Result<()> {
        self.send(self.http.post(self.url_of("/logout")).bearer_auth(token.as_str())).map(|_| ())
    }

    /// `GET /accounts`.
    pub fn accounts(&self, token: &SessionToken) -> Result<Vec<Account>> {
        let (_, body) = self.send(self.http.get(self.url_of("/accounts")).bearer_auth(token.as_str()))?;
        Ok(Self::json::<Accounts>(&body)?.accounts)
    }

    /// `GET /transfers?limit=N`, newest first.
    pub fn transfers(&self, token: &SessionToken, limit: u32) -> Result<Vec<Transfer>> {
        let req = self.http.get(self.url_of("/transfers")).query(&[("limit", limit)]).bearer_auth(token.as_str());
        let (_, body) = self.send(req)?;
        Ok(Self::json::<Transfers>(&body)?.transfers)
    }

    /// `GET /transfers/{id}`.
    pub fn transfer(&self, token: &SessionToken, id: &TransferId) -> Result<Transfer> {
        let (_, body) =
            self.send(self.http.get(self.url_of(&format!("/transfers/{id}"))).bearer_auth(token.as_str()))?;
        Self::json::<TransferEnvelope>(&body).map(|e| e.transfer).or_else(|_| Self::json::<Transfer>(&body))
    }

    /// `POST /transfers`: creates (or, for a known id with the same fields, re-challenges)
    /// a transfer.
    pub fn create_transfer(&self, token: &SessionToken, t: &NewTransfer) -> Result<Created> {
        let (status, body) =
            self.send(self.http.post(self.url_of("/transfers")).bearer_auth(token.as_str()).json(t))?;
        if status == 201 {
            return Ok(Created::Challenge(Box::new(Self::json(&body)?)));
        }
        Ok(Created::AlreadyExecuted(Self::json::<TransferEnvelope>(&body)?.transfer))
    }

    /// `POST /transfers/{id}/confirm` with the card's counter and code, and the person's
    /// second confirmation of a payee whose name did not match or could not be checked.
    pub fn confirm_transfer(
        &self,
        token: &SessionToken,
        id: &TransferId,
        challenge_id: &ChallengeId,
        counter: u64,
        otp: &Otp,
        confirm_unverified_payee: bool,
    ) -> Result<Transfer> {
        let code = Self::submission(challenge_id, counter, otp)?;
        let body = TransferConfirmation {
            challenge_id: code.challenge_id,
            counter: code.counter,
            otp: code.otp,
            confirm_unverified_payee,
        };
        let req =
            self.http.post(self.url_of(&format!("/transfers/{id}/confirm"))).bearer_auth(token.as_str()).json(&body);
        // This request moves money: a failure after it may have left is not "unreachable".
        let (_, body) = self.send_mapping(req, |source| confirm_error(&self.base, id, source))?;
        Ok(Self::json::<TransferEnvelope>(&body)?.transfer)
    }
}

/// A confirmation that got no whole answer. Only a failure to connect (refused, no route,
/// the connect timeout, a failed TLS handshake) proves the request never left; anything after
/// the connection stood (the request's timeout, a reset or close while sending or while
/// reading the answer) may come after the bank executed the transfer:
/// [`Error::OutcomeUnknown`].
fn confirm_error(url: &str, id: &TransferId, source: reqwest::Error) -> Error {
    if source.is_connect() {
        return transport_error(url, source);
    }
    tracing::debug!(url, transfer_id = %id, error = %chain(&source), "no answer to the confirmation");
    Error::OutcomeUnknown { url: url.to_owned(), transfer_id: id.clone(), source }
}

/// A request that got no answer: a failed TLS handshake becomes [`Error::BankTls`] (its
/// library chain logged at debug level, shown with `-v`), anything else
/// [`Error::BankUnreachable`].
fn transport_error(url: &str, source: reqwest::Error) -> Error {
    match tls_problem(&source) {
        Some(problem) => {
            tracing::debug!(url, error = %chain(&source), "TLS with the bank failed");
            Error::BankTls { url: url.to_owned(), problem }
        }
        None => Error::BankUnreachable { url: url.to_owned(), source },
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The rustls error somewhere in `e`'s causes, classified. An `io::Error` hides its inner
/// error from `source()` (hyper-rustls nests two), so each one met is opened with `get_ref`.
fn tls_problem(e: &reqwest::Error) -> Option<TlsProblem> {
    use rustls::CertificateError as C;
    let mut todo: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    // Bounded: a cause chain is short; a cycle must not hang the bridge.
    for _ in 0..32 {
        let c = todo.pop()?;
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(C::UnknownIssuer) => TlsProblem::Untrusted,
                rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
                    TlsProblem::WrongName
                }
                rustls::Error::InvalidCertificate(
                    C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
                ) => TlsProblem::Expired,
                rustls::Error::InvalidMessage(_) => TlsProblem::NotTls,
                _ => TlsProblem::Other,
            });
        }
        if let Some(inner) = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            todo.push(inner);
        }
        if let Some(next) = c.source() {
            todo.push(next);
        }
    }
    None
}

/// Maps an error answer to the bridge's error type.
fn api_error(status: u16, body: &[u8]) -> Error {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => (e.error, e.message),
        Err(_) => (ErrorCode::Unknown, String::from_utf8_lossy(body).chars().take(200).collect()),
    };
    match code {
        ErrorCode::AuthFailed => Error::OtpRejected,
        ErrorCode::Unauthenticated => Error::NotLoggedIn,
        ErrorCode::InsufficientFunds => Error::InsufficientFunds,
        c if c.refuses_transfer() => Error::TransferRefused { code, message },
        _ => Error::Bank { status, code, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_id_comes_from_the_configured_url() {
        let b = Bank::new("http://127.0.0.1:8080/", &Trust::Platform).unwrap();
        assert_eq!(b.verifier_id(), "http://127.0.0.1:8080");
        assert_eq!(b.url(), "http://127.0.0.1:8080");
        let b = Bank::new("HTTPS://Bank.Example", &Trust::Platform).unwrap();
        assert_eq!(b.verifier_id(), "https://bank.example:443");
        assert!(matches!(Bank::new("ftp://bank", &Trust::Platform), Err(Error::BadInput(_))));
        let e = Bank::new("https://bank.example/login", &Trust::Platform).err().unwrap();
        assert!(e.to_string().contains("without a path"), "{e}");
        assert!(matches!(Bank::new("https://u:p@bank.example", &Trust::Platform), Err(Error::BadInput(_))));
    }

    #[test]
    fn plain_http_is_only_for_this_computer() {
        for ok in ["http://127.0.0.1:8080", "http://127.9.8.7", "http://[::1]:8080", "http://LocalHost:1"] {
            assert!(BankAddress::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["http://10.0.0.1:8080", "http://bank.example", "http://localhost.evil.example", "http://[::2]"] {
            let e = BankAddress::parse(bad).unwrap_err();
            assert!(matches!(e, Error::PlainHttp { .. }), "{bad}: {e:?}");
            assert!(e.to_string().contains("use https://"), "{e}");
            assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        }
        let e = BankAddress::parse("http://bank.example:8080").unwrap_err();
        assert!(e.to_string().contains("use https://bank.example:8080"), "{e}");
        assert!(BankAddress::parse("https://10.0.0.1:8443").is_ok());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        assert!(CaPem::parse("").unwrap_err().contains("no PEM certificate"));
        assert!(CaPem::parse("hello").unwrap_err().contains("no PEM certificate"));
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(CaPem::parse(key).is_err());
    }

    #[test]
    fn api_errors_map_to_typed_errors() {
        let e = |code: &str| api_error(409, format!(r#"{{"error":"{code}","message":"m"}}"#).as_bytes());
        assert!(matches!(e("auth_failed"), Error::OtpRejected));
        assert!(matches!(e("unauthenticated"), Error::NotLoggedIn));
        assert!(matches!(e("insufficient_funds"), Error::InsufficientFunds));
        assert!(matches!(e("currency_mismatch"), Error::TransferRefused { .. }));
        assert!(matches!(e("transfer_id_conflict"), Error::TransferRefused { .. }));
        let internal = api_error(500, br#"{"error":"internal","message":"x"}"#);
        assert!(matches!(internal, Error::Bank { status: 500, .. }));
        assert!(internal.outcome_unknown());
        let html = api_error(502, b"<html>bad gateway</html>");
        assert!(matches!(html, Error::Bank { status: 502, code: ErrorCode::Unknown, .. }));
    }

    /// A one-connection "bank" on loopback that reads a request's head and then does `then`
    /// with the connection; returns its URL.
    fn one_shot_bank(then: impl FnOnce(std::net::TcpStream) + Send + 'static) -> String {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            then(conn);
        });
        url
    }

    fn confirm(bank: &Bank) -> Error {
        let otp = Otp::from_digits("12345678").unwrap();
        let id: TransferId = "tx-net-1".parse().unwrap();
        let challenge: ChallengeId = "0".repeat(32).parse().unwrap();
        bank.confirm_transfer(&SessionToken::new("t".into()), &id, &challenge, 1, &otp, false).unwrap_err()
    }

    #[test]
    fn a_confirmation_without_an_answer_has_an_unknown_outcome() {
        // The bank read the confirmation and the connection closed: it may have executed it.
        let bank = Bank::new(&one_shot_bank(drop), &Trust::Platform).unwrap();
        let e = confirm(&bank);
        assert!(matches!(&e, Error::OutcomeUnknown { transfer_id, .. } if transfer_id.as_str() == "tx-net-1"), "{e:?}");
        assert_eq!(e.exit_code(), crate::error::exit::OUTCOME_UNKNOWN);
        assert!(e.outcome_unknown());
        assert!(e.to_string().contains("run the same transfer command again"), "{e}");

        // The answer's head came, its body was cut short.
        let cut = one_shot_bank(|mut c| {
            use std::io::Write;
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"tr");
        });
        let e = confirm(&Bank::new(&cut, &Trust::Platform).unwrap());
        assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e:?}");
    }

    #[test]
    fn a_confirmation_that_times_out_has_an_unknown_outcome_and_the_timeout_is_the_callers() {
        // The bank holds the connection open without answering until the client gives up.
        let (gone_tx, gone_rx) = std::sync::mpsc::channel();
        let url = one_shot_bank(move |mut c| {
            use std::io::Read;
            let _ = c.read(&mut [0u8; 1]);
            let _ = gone_tx.send(());
        });
        let bank = Bank::with_timeout(&url, &Trust::Platform, Duration::from_secs(1)).unwrap();
        let started = std::time::Instant::now();
        let e = confirm(&bank);
        assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        gone_rx.recv_timeout(Duration::from_secs(10)).expect("the bridge closed the connection");
        assert!(matches!(Bank::with_timeout(&url, &Trust::Platform, Duration::ZERO), Err(Error::BadInput(_))));
    }

    #[test]
    fn a_confirmation_that_never_left_is_unreachable_not_unknown() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bank = Bank::new(&format!("http://127.0.0.1:{port}"), &Trust::Platform).unwrap();
        let e = confirm(&bank);
        assert!(matches!(e, Error::BankUnreachable { .. }), "{e:?}");
        // An answer, even a failure, is not unknown either.
        let answered = one_shot_bank(|mut c| {
            use std::io::Write;
            let body = br#"{"error":"auth_failed","message":"no"}"#;
            let head = format!("HTTP/1.1 401 Unauthorized\r\ncontent-length: {}\r\n\r\n", body.len());
            let _ = c.write_all(head.as_bytes()).and_then(|()| c.write_all(body));
        });
        let e = confirm(&Bank::new(&answered, &Trust::Platform).unwrap());
        assert!(matches!(e, Error::OtpRejected), "{e:?}");
    }

    #[test]
    fn unreachable_bank_is_bank_unreachable() {
        // A port nobody listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let b = Bank::new(&format!("http://127.0.0.1:{port}"), &Trust::Platform).unwrap();
        let e = b.login_challenge(&"alice".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::BankUnreachable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), crate::error::exit::BANK_UNREACHABLE);
    }
}

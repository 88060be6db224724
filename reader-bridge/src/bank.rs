//! The bank's JSON API (docs/api.md), over one reused blocking HTTP client. Requests and
//! answers are the `paysim_wire::api` types the server itself writes and reads.
//!
//! Every call maps the bank's stable error codes to [`Error`] variants: `auth_failed` is
//! [`Error::OtpRejected`], `unauthenticated` is [`Error::NotLoggedIn`], `insufficient_funds`
//! is [`Error::InsufficientFunds`], the other transfer refusals are
//! [`Error::TransferRefused`]; a connection failure is [`Error::BankUnreachable`].

use crate::error::{Error, Result};
use paysim_otp::Otp;
use paysim_wire::api::{
    Account, Accounts, CodeSubmission, ErrorBody, ErrorCode, LoginChallenge, LoginChallengeRequest, LoginOk,
    NewTransfer, OtpText, SessionToken, Transfer, TransferChallenge, TransferEnvelope, Transfers,
};
use paysim_wire::{ChallengeId, TransferId, UserName};
use serde::de::DeserializeOwned;
use std::time::Duration;

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
    Challenge(TransferChallenge),
    /// A retry of a transfer that was already executed: nothing moves again.
    AlreadyExecuted(Transfer),
}

impl Bank {
    /// A client for the bank at `server_url`. The verifier id the card will sign is derived
    /// here, from this URL, and from nothing the server says.
    pub fn new(server_url: &str) -> Result<Self> {
        let verifier_id = paysim_otp::verifier_id(server_url)
            .map_err(|e| Error::BadInput(format!("bad --server URL {server_url:?}: {e}")))?;
        if verifier_id.starts_with("https://") {
            // The workspace's one HTTP stack is built without a TLS backend; say so plainly
            // instead of failing later as "unreachable".
            return Err(Error::BadInput(format!(
                "this reader-bridge build speaks plain http only; {server_url:?} needs TLS (see docs/bridge.md)"
            )));
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("reader-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::BadInput(format!("cannot build the HTTP client: {e}")))?;
        Ok(Bank { http, base: server_url.trim().trim_end_matches('/').to_owned(), verifier_id })
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
        let unreachable = |source| Error::BankUnreachable { url: self.base.clone(), source };
        let resp = req.send().map_err(unreachable)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().map_err(unreachable)?;
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
            return Ok(Created::Challenge(Self::json(&body)?));
        }
        Ok(Created::AlreadyExecuted(Self::json::<TransferEnvelope>(&body)?.transfer))
    }

    /// `POST /transfers/{id}/confirm` with the card's counter and code.
    pub fn confirm_transfer(
        &self,
        token: &SessionToken,
        id: &TransferId,
        challenge_id: &ChallengeId,
        counter: u64,
        otp: &Otp,
    ) -> Result<Transfer> {
        let body = Self::submission(challenge_id, counter, otp)?;
        let req =
            self.http.post(self.url_of(&format!("/transfers/{id}/confirm"))).bearer_auth(token.as_str()).json(&body);
        let (_, body) = self.send(req)?;
        Ok(Self::json::<TransferEnvelope>(&body)?.transfer)
    }
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
        let b = Bank::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(b.verifier_id(), "http://127.0.0.1:8080");
        assert_eq!(b.url(), "http://127.0.0.1:8080");
        let b = Bank::new("HTTP://Bank.Example/login").unwrap();
        assert_eq!(b.verifier_id(), "http://bank.example:80");
        let e = Bank::new("https://bank.example").err().unwrap();
        assert!(e.to_string().contains("plain http only"), "{e}");
        assert!(matches!(Bank::new("ftp://bank"), Err(Error::BadInput(_))));
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

    #[test]
    fn unreachable_bank_is_bank_unreachable() {
        // A port nobody listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let b = Bank::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = b.login_challenge(&"alice".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::BankUnreachable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), crate::error::exit::BANK_UNREACHABLE);
    }
}

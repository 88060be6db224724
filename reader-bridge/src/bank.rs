//! The bank's JSON API (docs/api.md), over one reused blocking HTTP client.
//!
//! Every call maps the bank's stable error codes to [`Error`] variants: `auth_failed` is
//! [`Error::OtpRejected`], `unauthenticated` is [`Error::NotLoggedIn`], `insufficient_funds`
//! is [`Error::InsufficientFunds`], the other transfer refusals are
//! [`Error::TransferRefused`]; a connection failure is [`Error::BankUnreachable`].

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A client for one bank.
pub struct Bank {
    http: reqwest::blocking::Client,
    base: String,
    verifier_id: String,
}

/// A login challenge.
#[derive(Clone, Debug, Deserialize)]
pub struct LoginChallenge {
    pub challenge_id: String,
    pub challenge_hex: String,
    pub expires_at: i64,
    /// What the server says its verifier id is: information only, never used for signing.
    pub verifier_id: String,
}

/// A new session.
#[derive(Clone, Deserialize)]
pub struct LoginOk {
    pub token: String,
    pub user: String,
    pub expires_at: i64,
    #[serde(default)]
    pub idle_timeout_s: u64,
}

/// One account.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Account {
    pub number: String,
    pub currency: String,
    pub exponent: u32,
    pub balance_minor: i64,
}

/// One transfer as the bank reports it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Transfer {
    pub transfer_id: String,
    pub from: String,
    pub to: String,
    pub amount_minor: u64,
    pub currency: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub executed_at: Option<i64>,
}

/// The fields the bank asks the card to sign for a transfer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SignFields {
    pub verifier_id: String,
    pub transaction_id: String,
    pub amount_minor: u64,
    pub currency: String,
    pub payee: String,
}

/// A transfer waiting for the card's code.
#[derive(Clone, Debug, Deserialize)]
pub struct TxChallenge {
    pub transfer: Transfer,
    pub challenge_id: String,
    pub challenge_hex: String,
    pub expires_at: i64,
    pub sign: SignFields,
}

/// What `POST /transfers` answered.
#[derive(Clone, Debug)]
pub enum Created {
    /// Pending: sign this challenge.
    Challenge(TxChallenge),
    /// A retry of a transfer that was already executed: nothing moves again.
    AlreadyExecuted(Transfer),
}

/// The body of `POST /transfers`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NewTransfer {
    pub transfer_id: String,
    pub from: String,
    pub to: String,
    pub amount_minor: u64,
    pub currency: String,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct TransferEnvelope {
    transfer: Transfer,
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

    fn json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| Error::BadBankResponse(e.to_string()))
    }

    /// `POST /login/challenge`.
    pub fn login_challenge(&self, user: &str) -> Result<LoginChallenge> {
        let (_, body) =
            self.send(self.http.post(self.url_of("/login/challenge")).json(&serde_json::json!({ "user": user })))?;
        Self::json(&body)
    }

    /// `POST /login` with the card's counter and code.
    pub fn login(&self, challenge_id: &str, counter: u64, otp: &str) -> Result<LoginOk> {
        let body = serde_json::json!({ "challenge_id": challenge_id, "counter": counter, "otp": otp });
        let (_, body) = self.send(self.http.post(self.url_of("/login")).json(&body))?;
        Self::json(&body)
    }

    /// `POST /logout`.
    pub fn logout(&self, token: &str) -> Result<()> {
        self.send(self.http.post(self.url_of("/logout")).bearer_auth(token)).map(|_| ())
    }

    /// `GET /accounts`.
    pub fn accounts(&self, token: &str) -> Result<Vec<Account>> {
        #[derive(Deserialize)]
        struct Accounts {
            accounts: Vec<Account>,
        }
        let (_, body) = self.send(self.http.get(self.url_of("/accounts")).bearer_auth(token))?;
        Ok(Self::json::<Accounts>(&body)?.accounts)
    }

    /// `GET /transfers?limit=N`, newest first.
    pub fn transfers(&self, token: &str, limit: u32) -> Result<Vec<Transfer>> {
        #[derive(Deserialize)]
        struct Transfers {
            transfers: Vec<Transfer>,
        }
        let req = self.http.get(self.url_of("/transfers")).query(&[("limit", limit)]).bearer_auth(token);
        let (_, body) = self.send(req)?;
        Ok(Self::json::<Transfers>(&body)?.transfers)
    }

    /// `GET /transfers/{id}`.
    pub fn transfer(&self, token: &str, id: &str) -> Result<Transfer> {
        check_transfer_id(id)?;
        let (_, body) = self.send(self.http.get(self.url_of(&format!("/transfers/{id}"))).bearer_auth(token))?;
        Self::json::<TransferEnvelope>(&body).map(|e| e.transfer).or_else(|_| Self::json::<Transfer>(&body))
    }

    /// `POST /transfers`: creates (or, for a known id with the same fields, re-challenges)
    /// a transfer.
    pub fn create_transfer(&self, token: &str, t: &NewTransfer) -> Result<Created> {
        check_transfer_id(&t.transfer_id)?;
        let (status, body) = self.send(self.http.post(self.url_of("/transfers")).bearer_auth(token).json(t))?;
        if status == 201 {
            return Ok(Created::Challenge(Self::json(&body)?));
        }
        Ok(Created::AlreadyExecuted(Self::json::<TransferEnvelope>(&body)?.transfer))
    }

    /// `POST /transfers/{id}/confirm` with the card's counter and code.
    pub fn confirm_transfer(
        &self,
        token: &str,
        id: &str,
        challenge_id: &str,
        counter: u64,
        otp: &str,
    ) -> Result<Transfer> {
        check_transfer_id(id)?;
        let body = serde_json::json!({ "challenge_id": challenge_id, "counter": counter, "otp": otp });
        let req = self.http.post(self.url_of(&format!("/transfers/{id}/confirm"))).bearer_auth(token).json(&body);
        let (_, body) = self.send(req)?;
        Ok(Self::json::<TransferEnvelope>(&body)?.transfer)
    }
}

/// Transfer ids go into URL paths: 1-64 characters of `A-Z a-z 0-9 . _ ~ -` (docs/api.md).
pub fn check_transfer_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput(format!("bad transfer id {id:?}: use 1-64 characters of A-Z a-z 0-9 . _ ~ -")))
    }
}

/// Maps an error answer to the bridge's error type.
fn api_error(status: u16, body: &[u8]) -> Error {
    let (code, message) = match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => (e.error, e.message),
        Err(_) => (String::new(), String::from_utf8_lossy(body).chars().take(200).collect()),
    };
    match code.as_str() {
        "auth_failed" => Error::OtpRejected,
        "unauthenticated" => Error::NotLoggedIn,
        "insufficient_funds" => Error::InsufficientFunds,
        "transfer_id_conflict"
        | "unknown_account"
        | "same_account"
        | "currency_mismatch"
        | "unsupported_currency"
        | "invalid_amount" => Error::TransferRefused { code, message },
        _ => Error::Bank { status, code: if code.is_empty() { "unknown".to_owned() } else { code }, message },
    }
}

/// Decodes a challenge from hex and checks its length (16-32 bytes, docs/protocol.md).
pub fn decode_challenge(hex_text: &str) -> Result<Vec<u8>> {
    let cleaned: String = hex_text.chars().filter(|c| !c.is_whitespace() && *c != '-' && *c != ':').collect();
    let bytes =
        hex::decode(&cleaned).map_err(|_| Error::BadInput("the challenge must be hexadecimal digits".to_owned()))?;
    if !(paysim_otp::CHALLENGE_MIN..=paysim_otp::CHALLENGE_MAX).contains(&bytes.len()) {
        return Err(Error::BadInput(format!(
            "the challenge must be {} to {} bytes ({} to {} hex digits); got {} hex digits",
            paysim_otp::CHALLENGE_MIN,
            paysim_otp::CHALLENGE_MAX,
            2 * paysim_otp::CHALLENGE_MIN,
            2 * paysim_otp::CHALLENGE_MAX,
            cleaned.len()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
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
        assert!(matches!(html, Error::Bank { status: 502, ref code, .. } if code == "unknown"));
    }

    #[test]
    fn challenges_are_checked() {
        assert_eq!(decode_challenge(&"ab".repeat(32)).unwrap(), vec![0xAB; 32]);
        assert_eq!(decode_challenge("0011 2233 4455 6677 8899 aabb ccdd eeff").unwrap().len(), 16);
        assert!(decode_challenge("zz").is_err());
        assert!(decode_challenge(&"ab".repeat(15)).unwrap_err().to_string().contains("32 to 64 hex digits"));
        assert!(decode_challenge(&"ab".repeat(33)).is_err());
    }

    #[test]
    fn transfer_ids_are_path_safe() {
        assert!(check_transfer_id("tx-0123abcd").is_ok());
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(65), "..%2f"] {
            assert!(check_transfer_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unreachable_bank_is_bank_unreachable() {
        // A port nobody listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let b = Bank::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = b.login_challenge("alice").unwrap_err();
        assert!(matches!(e, Error::BankUnreachable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), crate::error::exit::BANK_UNREACHABLE);
    }
}

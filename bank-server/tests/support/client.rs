//! A blocking HTTP client of the bank's JSON API that does whole flows with a [`Card`]: log in,
//! create-sign-confirm a transfer. Shared by the tests that run the real binary
//! (`crash.rs`, `storage_faults.rs`).
#![allow(dead_code)]

use paysim_otp::TxFields;
use serde_json::{json, Value};

use super::card::Card;

/// The holder's name on every account these tests open, and so the payee name of every
/// transfer they make (verification of payee answers `match`).
pub const HOLDER: &str = "Test Customer";

pub struct Http {
    http: reqwest::blocking::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http { http: reqwest::blocking::Client::new(), base: base.to_owned(), token: None }
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::Result<(u16, Value)> {
        let mut req = self.http.post(format!("{}/api/v1{path}", self.base)).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let r = req.send()?;
        let status = r.status().as_u16();
        Ok((status, r.json().unwrap_or(Value::Null)))
    }

    /// A whole login flow: `Ok(Some(counter))` when the bank said yes, `Ok(None)` when it
    /// refused (told so, nothing to check), `Err` when the server went away.
    pub fn login(&mut self, card: &mut Card, user: &str) -> reqwest::Result<Option<u64>> {
        let (st, c) = self.post("/login/challenge", &json!({ "user": user }))?;
        if st != 200 {
            return Ok(None);
        }
        let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), &self.base);
        let (st, v) =
            self.post("/login", &json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp }))?;
        if st != 200 {
            return Ok(None);
        }
        self.token = Some(v["token"].as_str().unwrap().to_owned());
        Ok(Some(counter))
    }

    /// Create, sign and confirm one transfer: `Ok(true)` when it was executed.
    pub fn pay(&self, card: &mut Card, id: &str, from: &str, to: &str, amount: u64) -> reqwest::Result<bool> {
        Ok(self.pay_or_refusal(card, id, from, to, amount)?.is_ok())
    }

    /// [`Http::pay`], telling a refusal's status and body: `Ok(Ok(()))` executed,
    /// `Ok(Err((status, body)))` refused at the step that answered so.
    pub fn pay_or_refusal(
        &self,
        card: &mut Card,
        id: &str,
        from: &str,
        to: &str,
        amount: u64,
    ) -> reqwest::Result<Result<(), (u16, Value)>> {
        let body = json!({
            "transfer_id": id, "from": from, "to": to, "amount_minor": amount, "currency": "EUR", "payee_name": HOLDER
        });
        let (st, created) = self.post("/transfers", &body)?;
        if st != 201 {
            return Ok(Err((st, created)));
        }
        let s = &created["sign"];
        let (counter, otp) = card.tx(
            created["challenge_hex"].as_str().unwrap(),
            &TxFields {
                version: paysim_otp::TxVersion::V2,
                verifier_id: self.base.as_bytes(),
                transaction_id: s["transaction_id"].as_str().unwrap().as_bytes(),
                amount_minor: s["amount_minor"].as_u64().unwrap(),
                currency: b"EUR",
                source: s["source"].as_str().unwrap().as_bytes(),
                payee: s["payee"].as_str().unwrap().as_bytes(),
                payee_name: s["payee_name"].as_str().unwrap().as_bytes(),
            },
        );
        let confirm = json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": otp });
        let (st, v) = self.post(&format!("/transfers/{id}/confirm"), &confirm)?;
        if st == 200 && v["transfer"]["status"] == "executed" {
            Ok(Ok(()))
        } else {
            Ok(Err((st, v)))
        }
    }
}

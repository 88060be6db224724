//! What `--json` prints: one serde struct per command that lists or reports, with the field
//! names `docs/bridge.md` documents. Scripts rely on these names; add fields, never rename.
//!
//! Every command prints one JSON document on one line: an array for the lists (`accounts`,
//! `history`, `readers`, `pending`), an object for `status`.

use crate::card::{CardStatus, ReaderInfo, NOT_PERSONALIZED};
use crate::state::{PendingTransfer, PinnedBank};
use paysim_wire::api::{Account, Transfer};
use serde::Serialize;

/// One account of `accounts --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AccountJson {
    pub number: String,
    pub currency: String,
    /// The balance in minor units (cents), exact.
    pub balance_minor: i64,
    /// The balance as a decimal text with the currency's decimals, e.g. `"12.34"`.
    pub balance: String,
}

impl From<&Account> for AccountJson {
    fn from(a: &Account) -> Self {
        AccountJson {
            number: a.number.to_string(),
            currency: a.currency.to_string(),
            balance_minor: a.balance_minor,
            balance: a.currency.format_minor(a.balance_minor),
        }
    }
}

/// One transfer of `history --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TransferJson {
    pub transfer_id: String,
    /// `in` (money came to one of your accounts) or `out`.
    pub direction: String,
    pub from: String,
    pub to: String,
    pub payee_name: Option<String>,
    pub amount_minor: u64,
    pub amount: String,
    pub currency: String,
    /// The bank's status text (`pending`, `executed`, `rejected`, ...).
    pub status: String,
    /// Why the bank rejected it, when it did.
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `null` until executed.
    pub executed_at: Option<i64>,
}

impl From<&Transfer> for TransferJson {
    fn from(t: &Transfer) -> Self {
        TransferJson {
            transfer_id: t.transfer_id.to_string(),
            direction: t.direction.as_str().to_owned(),
            from: t.from.to_string(),
            to: t.to.to_string(),
            payee_name: t.payee_name.as_ref().map(|n| n.as_str().to_owned()),
            amount_minor: t.amount_minor,
            amount: t.currency.format_minor(t.amount_minor),
            currency: t.currency.to_string(),
            status: t.status.as_str().to_owned(),
            reason: t.reason.clone(),
            created_at: t.created_at,
            executed_at: t.executed_at,
        }
    }
}

/// The bank part of `status --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BankJson {
    pub url: String,
    /// What the card signs for (`scheme://host:port`).
    pub verifier_id: String,
    /// "the platform's root certificates" or the private CA's fingerprint.
    pub trust: String,
}

/// `status --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StatusJson {
    /// `null` before `setup`.
    pub bank: Option<BankJson>,
    pub reader: String,
    /// Empty before personalization.
    pub serial: String,
    /// `null` before personalization.
    pub next_counter: Option<u64>,
    pub pin_tries_left: u8,
    pub life_cycle: String,
    pub applet_version: String,
}

impl StatusJson {
    /// The report from the pinned bank (if any) and the card's status.
    pub fn new(pinned: Option<&PinnedBank>, s: &CardStatus) -> Self {
        StatusJson {
            bank: pinned.map(|p| BankJson {
                url: p.url.clone(),
                verifier_id: p.verifier_id.clone(),
                trust: p.trust_text(),
            }),
            reader: s.reader.clone(),
            serial: s.serial.clone(),
            next_counter: s.next_counter,
            pin_tries_left: s.pin_tries_left,
            life_cycle: s.life_cycle.clone(),
            applet_version: s.version.clone(),
        }
    }
}

/// The OATH part of a reader of `readers --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OathJson {
    /// An access code keeps the credential list closed.
    pub protected: bool,
    /// The `PAYSIM Bank:` credentials listed (empty when protected).
    pub bank_credentials: Vec<String>,
}

/// One reader of `readers --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReaderJson {
    pub name: String,
    pub card_present: bool,
    /// The PAYSIM card's serial; `null` without a PAYSIM applet, `""` when not personalized.
    pub paysim_serial: Option<String>,
    /// `null` without an OATH application.
    pub oath: Option<OathJson>,
    /// Why the card could not be read, if it could not.
    pub note: Option<String>,
    /// The line `readers` prints without `--json`.
    pub description: String,
}

impl ReaderJson {
    /// The report of one reader, with its human description.
    pub fn new(r: &ReaderInfo, description: String) -> Self {
        ReaderJson {
            name: r.name.clone(),
            card_present: r.card_present,
            paysim_serial: r
                .paysim_serial
                .as_ref()
                .map(|s| if s == NOT_PERSONALIZED { String::new() } else { s.clone() }),
            oath: r
                .oath
                .as_ref()
                .map(|list| OathJson { protected: list.is_none(), bank_credentials: list.clone().unwrap_or_default() }),
            note: r.note.clone(),
            description,
        }
    }
}

/// One transfer of `pending --json`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PendingJson {
    pub transfer_id: String,
    /// The bank it was sent to.
    pub verifier_id: String,
    pub user: String,
    /// `null` in records written before the bridge kept the source account.
    pub from: Option<String>,
    pub to: String,
    pub payee_name: Option<String>,
    pub amount_minor: u64,
    pub amount: String,
    pub currency: String,
}

impl From<&PendingTransfer> for PendingJson {
    fn from(p: &PendingTransfer) -> Self {
        PendingJson {
            transfer_id: p.transfer_id.to_string(),
            verifier_id: p.verifier_id.clone(),
            user: p.user.to_string(),
            from: p.from.as_ref().map(ToString::to_string),
            to: p.to.to_string(),
            payee_name: p.payee_name.as_ref().map(|n| n.as_str().to_owned()),
            amount_minor: p.amount_minor,
            amount: p.currency.format_minor(p.amount_minor),
            currency: p.currency.to_string(),
        }
    }
}

/// One JSON document on one line.
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> String {
    // Serializing these plain structs (strings, numbers, options) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn account_fields_are_the_documented_ones() {
        let a: Account = serde_json::from_value(
            json!({"number": "ACC-ALICE-EUR", "currency": "EUR", "exponent": 2, "balance_minor": -1234}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(AccountJson::from(&a)).unwrap(),
            json!({"number": "ACC-ALICE-EUR", "currency": "EUR", "balance_minor": -1234, "balance": "-12.34"})
        );
    }

    #[test]
    fn transfer_fields_are_the_documented_ones() {
        let t: Transfer = serde_json::from_value(json!({
            "transfer_id": "tx-1", "from": "ACC-A", "to": "ACC-B", "amount_minor": 500, "currency": "JPY",
            "status": "executed", "reason": null, "direction": "out", "payee_name": "Bob",
            "created_at": 10, "executed_at": 11
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(TransferJson::from(&t)).unwrap(),
            json!({
                "transfer_id": "tx-1", "direction": "out", "from": "ACC-A", "to": "ACC-B", "payee_name": "Bob",
                "amount_minor": 500, "amount": "500", "currency": "JPY", "status": "executed", "reason": null,
                "created_at": 10, "executed_at": 11
            })
        );
    }

    #[test]
    fn pending_fields_are_the_documented_ones() {
        let p: PendingTransfer = serde_json::from_value(json!({
            "verifier_id": "https://bank.example", "user": "alice", "transfer_id": "tx-9",
            "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "amount_minor": 1234, "currency": "EUR",
            "payee_name": "Bob Example"
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(PendingJson::from(&p)).unwrap(),
            json!({
                "transfer_id": "tx-9", "verifier_id": "https://bank.example", "user": "alice",
                "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "payee_name": "Bob Example",
                "amount_minor": 1234, "amount": "12.34", "currency": "EUR"
            })
        );
        // A record of an older bridge: no source account, no payee name.
        let old: PendingTransfer = serde_json::from_value(json!({
            "verifier_id": "https://bank.example", "user": "alice", "transfer_id": "tx-8",
            "from": null, "to": "ACC-BOB-EUR", "amount_minor": 5, "currency": "JPY"
        }))
        .unwrap();
        let v = serde_json::to_value(PendingJson::from(&old)).unwrap();
        assert_eq!((&v["from"], &v["payee_name"], &v["amount"]), (&json!(null), &json!(null), &json!("5")));
    }

    #[test]
    fn reader_fields_say_what_the_card_is() {
        let r = ReaderInfo {
            name: "Virtual PCD 00 00".into(),
            card_present: true,
            paysim_serial: Some(NOT_PERSONALIZED.into()),
            oath: Some(None),
            note: None,
        };
        let line = to_line(&[ReaderJson::new(&r, "d".into())]);
        assert!(!line.contains('\n'));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            json!([{
                "name": "Virtual PCD 00 00", "card_present": true, "paysim_serial": "",
                "oath": {"protected": true, "bank_credentials": []}, "note": null, "description": "d"
            }])
        );
    }

    #[test]
    fn status_without_setup_has_a_null_bank() {
        let s = CardStatus {
            reader: "R".into(),
            serial: "PSIM-1".into(),
            next_counter: Some(7),
            pin_tries_left: 3,
            life_cycle: "personalized".into(),
            version: "2.0".into(),
        };
        assert_eq!(
            serde_json::to_value(StatusJson::new(None, &s)).unwrap(),
            json!({
                "bank": null, "reader": "R", "serial": "PSIM-1", "next_counter": 7, "pin_tries_left": 3,
                "life_cycle": "personalized", "applet_version": "2.0"
            })
        );
    }
}

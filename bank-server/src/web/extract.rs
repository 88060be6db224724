//! The API's request bodies, read into the wire types by one extractor, [`Body`]; the
//! client's address ([`client`]); the abuse limits' checks ([`limit_login_challenge`],
//! [`limit_code`]).
//!
//! A refusal is `400 invalid_request` with a message that names the field and its rule and
//! never echoes a value (serde's own messages do, e.g. `invalid type: string "98765432"`, and
//! a misplaced code must not come back in an answer or a log). The body is read whatever its
//! `Content-Type`, as the API always has.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use paysim_wire::api::{CodeSubmission, LoginChallengeRequest, NewTransfer, TransferConfirmation};
use paysim_wire::{AccountNumber, ChallengeId, PayeeName, TransferId, UserName};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::AppError;
use crate::limit::{CodeKey, Decision};
use crate::AppState;

/// A request body the API reads: its fields, each with the rule a message states.
pub trait RequestBody: DeserializeOwned {
    /// `(field, rule)` for every required field, in the order they are reported missing.
    const FIELDS: &'static [(&'static str, &'static str)];
    /// `(field, rule)` for every optional field.
    const OPTIONAL: &'static [(&'static str, &'static str)] = &[];

    /// A refusal more precise than "field `f` must be ..." for a value of `field` that does
    /// not deserialize; `None` for the generic one.
    fn refusal(_field: &str, _value: &Value) -> Option<AppError> {
        None
    }
}

const NON_NEGATIVE: &str = "a non-negative integer";

impl RequestBody for LoginChallengeRequest {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("user", UserName::RULE)];
}

impl RequestBody for CodeSubmission {
    const FIELDS: &'static [(&'static str, &'static str)] =
        &[("challenge_id", ChallengeId::RULE), ("counter", NON_NEGATIVE), ("otp", "a string of 8 digits")];
}

impl RequestBody for TransferConfirmation {
    const FIELDS: &'static [(&'static str, &'static str)] =
        &[("challenge_id", ChallengeId::RULE), ("counter", NON_NEGATIVE), ("otp", "a string of 8 digits")];
    const OPTIONAL: &'static [(&'static str, &'static str)] = &[("confirm_unverified_payee", "true or false")];
}

impl RequestBody for NewTransfer {
    const FIELDS: &'static [(&'static str, &'static str)] = &[
        ("transfer_id", TransferId::RULE),
        ("currency", "3 upper-case letters of an ISO 4217 code"),
        ("from", AccountNumber::RULE),
        ("to", AccountNumber::RULE),
        ("amount_minor", NON_NEGATIVE),
        ("payee_name", PayeeName::RULE),
    ];

    /// Three upper-case letters that are no ISO 4217 code (`XYZ`) name a currency the bank
    /// does not keep, as a code of the table it does not keep (`XAU`) does: `unsupported_currency`.
    fn refusal(field: &str, value: &Value) -> Option<AppError> {
        let code = value.as_str().filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
        (field == "currency" && code.is_some()).then_some(AppError::UnkeptCurrency)
    }
}

/// A JSON body read into `T`.
#[derive(Debug)]
pub struct Body<T>(pub T);

/// Reads `bytes` as the JSON object `T`, or says which field is wrong.
pub fn parse<T: RequestBody>(bytes: &[u8]) -> Result<T, AppError> {
    let not_object = || AppError::invalid("the body must be a JSON object");
    let object: Map<String, Value> = serde_json::from_slice(bytes).map_err(|_| not_object())?;
    if let Some((name, _)) = T::FIELDS.iter().find(|(name, _)| !object.contains_key(*name)) {
        return Err(AppError::invalid(format!("field `{name}` is missing")));
    }
    let refusal_of = |body: &Value, e: serde_path_to_error::Error<serde_json::Error>| {
        let field = e.path().iter().next().and_then(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
            _ => None,
        });
        let Some((name, rule)) = field.and_then(|f| T::FIELDS.iter().chain(T::OPTIONAL).find(|(name, _)| *name == f))
        else {
            return not_object();
        };
        body.get(*name)
            .and_then(|v| T::refusal(name, v))
            .unwrap_or_else(|| AppError::invalid(format!("field `{name}` must be {rule}")))
    };
    // Deserialized from the parsed object itself (a `&Value` is a deserializer), not a copy.
    let body = Value::Object(object);
    serde_path_to_error::deserialize(&body).map_err(|e| refusal_of(&body, e))
}

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        // A body over the limit is refused here as axum refuses it (the shared middleware
        // turns that into the API's error shape).
        let bytes = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        parse(&bytes).map(Body).map_err(IntoResponse::into_response)
    }
}

tokio::task_local! {
    static CLIENT: Option<SocketAddr>;
}

/// Middleware: the client's address (axum's `ConnectInfo`, set by [`crate::serve`], or
/// `MockConnectInfo` in router tests) for the whole request, so [`AppState::tx`] can put it on
/// every audit row the request writes. A router served without connect info has none.
pub async fn client_scope(req: Request, next: axum::middleware::Next) -> Response {
    let ext = req.extensions();
    let addr = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| ext.get::<MockConnectInfo<SocketAddr>>().map(|m| m.0));
    CLIENT.scope(addr, next.run(req)).await
}

/// The address of the client whose request is being answered, if any.
pub fn client() -> Option<SocketAddr> {
    CLIENT.try_with(|c| *c).ok().flatten()
}

/// The key of a session token in the per-session bucket (its id hash's first 16 bytes, so no
/// token is kept in the limiter).
pub fn session_key(token: &str) -> CodeKey {
    let h = Sha256::digest(token.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h[..16]);
    CodeKey::Session(k)
}

/// Audits the first refusal of a key (see [`crate::limit`]) and returns the refusal.
async fn refused(state: &AppState, decision: Decision, limit: &'static str, key: String) -> Result<(), AppError> {
    let Decision::Refused { retry_after_s, first } = decision else {
        return Ok(());
    };
    if first {
        let detail = serde_json::json!({ "limit": limit, "key": key, "retry_after_s": retry_after_s });
        let written = state
            .tx(move |tx, now| Ok::<_, AppError>(crate::audit::append(tx, now, "rate_limited", "system", detail)?))
            .await;
        if let Err(e) = written {
            e.log();
        }
    }
    Err(AppError::RateLimited { retry_after_s })
}

/// A refusal of a website form as a page; a rate limit's with its `Retry-After`.
pub fn refusal_page(e: AppError) -> Response {
    let retry_after = match &e {
        AppError::RateLimited { retry_after_s } => Some(*retry_after_s),
        _ => None,
    };
    let mut res = super::pages::error_page(e.status(), &e.parts().1);
    if let Some(s) = retry_after {
        res.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(s));
    }
    res
}

/// Counts a login challenge asked for `user` (when it is a valid name) from this client; a
/// refusal is `429 rate_limited`, before any unit of work.
pub async fn limit_login_challenge(state: &AppState, user: Option<&UserName>) -> Result<(), AppError> {
    let now = state.clock.now();
    if let Some(addr) = client() {
        let d = state.limits.challenges_per_address.take(&addr.ip(), now);
        refused(state, d, "challenges_per_address", addr.ip().to_string()).await?;
    }
    if let Some(user) = user {
        let d = state.limits.challenges_per_user.take(&user.as_str().to_owned(), now);
        refused(state, d, "challenges_per_user", user.as_str().to_owned()).await?;
    }
    Ok(())
}

/// Counts a code submitted in the session of `token` (`codes_per_session`), or, without one
/// (an API login), from this client address (at the `challenges_per_address` rate).
pub async fn limit_code(state: &AppState, token: Option<&str>) -> Result<(), AppError> {
    let key = match (token, client()) {
        (Some(t), _) => session_key(t),
        (None, Some(addr)) => CodeKey::Address(addr.ip()),
        (None, None) => return Ok(()),
    };
    let (buckets, limit, shown) = match &key {
        CodeKey::Session(k) => (&state.limits.codes, "codes_per_session", format!("session:{}", hex::encode(&k[..4]))),
        CodeKey::Address(a) => (&state.limits.login_codes_per_address, "login_codes_per_address", a.to_string()),
    };
    let d = buckets.take(&key, state.clock.now());
    refused(state, d, limit, shown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T: RequestBody + std::fmt::Debug>(body: &str) -> String {
        match parse::<T>(body.as_bytes()).unwrap_err() {
            AppError::Invalid(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_name_the_field_and_its_rule_never_the_value() {
        assert_eq!(message::<LoginChallengeRequest>("{}"), "field `user` is missing");
        assert_eq!(message::<LoginChallengeRequest>("[1]"), "the body must be a JSON object");
        assert_eq!(message::<LoginChallengeRequest>("\"x\""), "the body must be a JSON object");
        assert_eq!(
            message::<LoginChallengeRequest>(r#"{"user":"Secret Name"}"#),
            "field `user` must be 1-32 characters of a-z 0-9 . _ -"
        );
        let zeros = "0".repeat(32);
        let m = message::<CodeSubmission>(&format!(r#"{{"challenge_id":"{zeros}","counter":-1,"otp":"1"}}"#));
        assert_eq!(m, "field `counter` must be a non-negative integer");
        let m = message::<CodeSubmission>(&format!(r#"{{"challenge_id":"{zeros}","counter":1,"otp":98765432}}"#));
        assert_eq!(m, "field `otp` must be a string of 8 digits");
        let m = message::<CodeSubmission>(r#"{"challenge_id":"zz98765432","counter":1,"otp":"1"}"#);
        assert!(m.starts_with("field `challenge_id` must be") && !m.contains("98765432"), "{m}");
        assert_eq!(message::<CodeSubmission>(r#"{"counter":1,"otp":"1"}"#), "field `challenge_id` is missing");
        let m = message::<NewTransfer>(
            r#"{"transfer_id":"t","from":"A","to":"B","amount_minor":1,"currency":"eur","payee_name":"Bob"}"#,
        );
        assert_eq!(m, "field `currency` must be 3 upper-case letters of an ISO 4217 code");
        let xyz = parse::<NewTransfer>(
            br#"{"transfer_id":"t","from":"A","to":"B","amount_minor":1,"currency":"XYZ","payee_name":"Bob"}"#,
        );
        assert!(matches!(xyz, Err(AppError::UnkeptCurrency)), "{xyz:?}");
        let ok: NewTransfer = parse(
            br#"{"transfer_id":"t","from":"A","to":"B","amount_minor":1,"currency":"XAU","payee_name":" Bob ","extra":0}"#,
        )
        .unwrap();
        assert_eq!((ok.currency.as_str(), ok.payee_name.as_str()), ("XAU", "Bob"));
        // The payee's name: required, with its rule, never echoed.
        let m = message::<NewTransfer>(r#"{"transfer_id":"t","from":"A","to":"B","amount_minor":1,"currency":"EUR"}"#);
        assert_eq!(m, "field `payee_name` is missing");
        let m = message::<NewTransfer>(
            r#"{"transfer_id":"t","from":"A","to":"B","amount_minor":1,"currency":"EUR","payee_name":"Secret\nName"}"#,
        );
        assert_eq!(m, "field `payee_name` must be 1-70 characters, without control characters");
        // The second confirmation is optional, and a bad value names its rule.
        let c =
            parse::<TransferConfirmation>(format!(r#"{{"challenge_id":"{zeros}","counter":1,"otp":"1"}}"#).as_bytes())
                .unwrap();
        assert!(!c.confirm_unverified_payee);
        let m = message::<TransferConfirmation>(&format!(
            r#"{{"challenge_id":"{zeros}","counter":1,"otp":"1","confirm_unverified_payee":"yes"}}"#
        ));
        assert_eq!(m, "field `confirm_unverified_payee` must be true or false");
    }
}

//! Shared harness: a bank on a temporary database, the in-memory card, HTTP helpers.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use bank_server::clock::Clock;
use bank_server::{ops, AppState, Config};
use http_body_util::BodyExt;
use paysim_otp::{ChainKey, TxFields};
use serde_json::{json, Value};
use tower::ServiceExt;

pub const URL: &str = "http://localhost:8080";
pub const VID: &str = "http://localhost:8080";
pub const T0: i64 = 1_800_000_000;
/// The client address every in-process request comes from (`MockConnectInfo`).
pub const CLIENT: &str = "203.0.113.7:40000";

pub use crate::card::Card;

/// The `sign` object of a transfer answer, as the card would sign it.
pub fn sign_tx(card: &mut Card, created: &Value) -> (u64, String) {
    let s = &created["sign"];
    let cur: [u8; 3] = s["currency"].as_str().unwrap().as_bytes().try_into().unwrap();
    card.tx(
        created["challenge_hex"].as_str().unwrap(),
        &TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: VID.as_bytes(),
            transaction_id: s["transaction_id"].as_str().unwrap().as_bytes(),
            amount_minor: s["amount_minor"].as_u64().unwrap(),
            currency: &cur,
            source: s["source"].as_str().unwrap().as_bytes(),
            payee: s["payee"].as_str().unwrap().as_bytes(),
            payee_name: s["payee_name"].as_str().unwrap().as_bytes(),
        },
    )
}

/// The holder's name of the test accounts (what a payer who knows the payee types).
pub fn holder_of(account: &str) -> &'static str {
    match account {
        a if a.starts_with("ACC-ALICE") => "Alice Example",
        a if a.starts_with("ACC-BOB") => "Bob Example",
        a if a.starts_with("ACC-CAROL") => "Carol Example",
        _ => "Nobody Known",
    }
}

pub struct TestBank {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub state: AppState,
    pub app: Router,
    pub clock: Clock,
}

/// Seeds of the users' cards.
pub fn seed(user: &str) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in user.bytes().enumerate() {
        s[i % 32] ^= b;
    }
    s[31] = 0x5a;
    s
}

impl TestBank {
    /// alice (ACC-ALICE-EUR 1000.00 EUR, ACC-ALICE-USD 50.00 USD), bob (ACC-BOB-EUR 0), carol
    /// (ACC-CAROL-EUR 500.00), each with a token `PSIM-<NAME>` from `seed(name)`. No abuse
    /// limits (the tests of the limits set their own with [`TestBank::with`]).
    pub fn new() -> Self {
        Self::with(|cfg| cfg.limits = bank_server::limit::Settings::off())
    }

    /// [`TestBank::new`] with the settings `tune` makes of the defaults.
    pub fn with(tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.sqlite3");
        for user in ["alice", "bob", "carol"] {
            ops::add_user(&path, user).unwrap();
            let serial = format!("PSIM-{}", user.to_uppercase());
            ops::enroll_token(&path, &serial, &ChainKey::from_bytes(seed(user)), 0, user).unwrap();
        }
        ops::open_account(&path, "alice", "ACC-ALICE-EUR", "EUR", Some("Alice Example")).unwrap();
        ops::open_account(&path, "alice", "ACC-ALICE-USD", "USD", Some("Alice Example")).unwrap();
        ops::open_account(&path, "bob", "ACC-BOB-EUR", "EUR", Some("Bob Example")).unwrap();
        ops::open_account(&path, "carol", "ACC-CAROL-EUR", "EUR", Some("Carol Example")).unwrap();
        ops::fund(&path, "ACC-ALICE-EUR", 100_000, "opening").unwrap();
        ops::fund(&path, "ACC-ALICE-USD", 5_000, "opening").unwrap();
        ops::fund(&path, "ACC-CAROL-EUR", 50_000, "opening").unwrap();
        let mut cfg = Config::new(URL).unwrap();
        tune(&mut cfg);
        Self::open(dir, path, cfg)
    }

    fn open(dir: tempfile::TempDir, path: PathBuf, cfg: Config) -> Self {
        let clock = Clock::manual(T0);
        let state = AppState::open_with(&path, cfg, clock.clone()).unwrap();
        let client: std::net::SocketAddr = CLIENT.parse().unwrap();
        let app = bank_server::app(state.clone()).layer(MockConnectInfo(client));
        TestBank { dir, path, state, app, clock }
    }

    /// A server restart: a new state over the same files, the clock where it was.
    pub fn restart(self) -> Self {
        let now = self.clock.now();
        let TestBank { dir, path, state, app, .. } = self;
        let cfg = (*state.cfg).clone();
        drop(app);
        drop(state);
        let bank = Self::open(dir, path, cfg);
        bank.clock.advance(now - T0);
        bank
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.app, method, path, token, body).await
    }

    pub async fn challenge(&self, user: &str) -> Value {
        let (st, v) = self.call("POST", "/api/v1/login/challenge", None, Some(json!({ "user": user }))).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    /// Logs in through the API with the card; returns the bearer token.
    pub async fn login(&self, card: &mut Card, user: &str) -> String {
        let c = self.challenge(user).await;
        let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), VID);
        let (st, v) = self
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    pub async fn balance(&self, token: &str, account: &str) -> i64 {
        let (st, v) = self.call("GET", "/api/v1/accounts", Some(token), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["accounts"].as_array().unwrap().iter().find(|a| a["number"] == account).unwrap()["balance_minor"]
            .as_i64()
            .unwrap()
    }

    /// Every balance by account number, read from the database (all users).
    pub fn balances(&self) -> Vec<(String, i64)> {
        let books = ops::check_books(&self.path).unwrap();
        assert!(books.problems.is_empty(), "{:?}", books.problems);
        let mut out = Vec::new();
        for user in ["alice", "bob", "carol"] {
            for a in ops::accounts(&self.path, user).unwrap() {
                out.push((a.number.to_string(), a.balance_minor));
            }
        }
        out
    }

    pub fn audit_count(&self, kind: &str, needle: &str) -> i64 {
        self.state
            .db
            .run_blocking(|c| {
                bank_server::db::read(c, |tx| {
                    bank_server::audit::count(tx, kind, needle).map_err(bank_server::db::DbError::from)
                })
            })
            .unwrap()
    }

    pub async fn create_transfer(
        &self,
        token: &str,
        id: &str,
        from: &str,
        to: &str,
        amount: u64,
        cur: &str,
    ) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/transfers",
            Some(token),
            Some(json!({ "transfer_id": id, "from": from, "to": to, "amount_minor": amount, "currency": cur, "payee_name": holder_of(to) })),
        )
        .await
    }

    /// [`TestBank::transfer`] with the payee's name given.
    #[allow(clippy::too_many_arguments)]
    pub async fn transfer_named(
        &self,
        token: &str,
        id: &str,
        from: &str,
        to: &str,
        amount: u64,
        cur: &str,
        payee_name: &str,
    ) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/api/v1/transfers",
            Some(token),
            Some(json!({ "transfer_id": id, "from": from, "to": to, "amount_minor": amount, "currency": cur, "payee_name": payee_name })),
        )
        .await
    }

    pub async fn confirm(
        &self,
        token: &str,
        id: &str,
        challenge_id: &Value,
        counter: u64,
        otp: &str,
    ) -> (StatusCode, Value) {
        self.call(
            "POST",
            &format!("/api/v1/transfers/{id}/confirm"),
            Some(token),
            Some(json!({ "challenge_id": challenge_id, "counter": counter, "otp": otp })),
        )
        .await
    }

    /// Create, sign and confirm a transfer; returns the confirmation's status and body.
    #[allow(clippy::too_many_arguments)]
    pub async fn pay(
        &self,
        token: &str,
        card: &mut Card,
        id: &str,
        from: &str,
        to: &str,
        amount: u64,
        cur: &str,
    ) -> (StatusCode, Value) {
        let (st, created) = self.create_transfer(token, id, from, to, amount, cur).await;
        if st != StatusCode::CREATED {
            return (st, created);
        }
        let (counter, otp) = sign_tx(card, &created);
        self.confirm(token, id, &created["challenge_id"], counter, &otp).await
    }
}

pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}

/// Percent-encodes a form.
pub fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut o = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                o.push(b as char);
            } else {
                o.push_str(&format!("%{b:02X}"));
            }
        }
        o
    };
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// A browser request: optional cookie and form; returns status, headers and body text.
pub async fn web(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    fields: Option<&[(&str, &str)]>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("bank_session={c}"));
    }
    let req = match fields {
        Some(f) => {
            req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::from(form(f))).unwrap()
        }
        None => req.body(Body::empty()).unwrap(),
    };
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The session cookie a response sets, if any.
pub fn set_cookie(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::SET_COOKIE)?.to_str().ok()?;
    let (kv, _) = v.split_once(';')?;
    let (_, val) = kv.split_once('=')?;
    Some(val.to_owned())
}

/// The value of `<input ... name="NAME" value="VALUE">` in a page.
pub fn input(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no input {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The text of the table cell after the row header `<th scope="row">LABEL</th>`.
pub fn cell(html: &str, label: &str) -> String {
    let marker = format!("<th scope=\"row\">{label}</th>");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {label} in {html}")) + marker.len();
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    rest[open..].split('<').next().unwrap().to_owned()
}

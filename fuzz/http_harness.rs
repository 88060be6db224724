//! The harness of the `http_api` target: arbitrary requests to the bank's whole router (the
//! JSON API, the website's pages and forms, everything else), in process, against one bank on
//! a fresh temporary database with two customers, one of them logged in.
//!
//! Input: byte 0 picks the method, byte 1 a path from the bank's routes (or none: the path is
//! then all fuzzed), byte 2 which credentials and headers go with it (a valid bearer token, a
//! fuzzed one, a fuzzed cookie, a content type, an `Origin`); the rest, split at `0xFF` bytes,
//! is the path's suffix, a header value and the body.
//!
//! Checks, for every request:
//! - the router answers (never panics) and never with a 5xx: a request, however malformed, is
//!   the client's fault, so `500 internal` is a bug;
//! - an answer under `/api/` that is an error is the API's error body
//!   (`{"error": code, "message": text}`), with a code the wire vocabulary knows;
//! - no answer carries the customers' chain seeds or the session token in its body.
//!
//! Shared with the stable test `bank-server/tests/fuzz_http.rs`.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Request};
use axum::Router;
use bank_server::clock::Clock;
use bank_server::{ops, AppState, Config};
use http_body_util::BodyExt;
use paysim_otp::ChainKey;
use paysim_wire::api::{ErrorBody, ErrorCode};
use serde_json::{json, Value};
use tower::ServiceExt;

const URL: &str = "http://localhost:8080";

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "BREW"];

const PATHS: [&str; 20] = [
    "/api/v1/login/challenge",
    "/api/v1/login",
    "/api/v1/logout",
    "/api/v1/session",
    "/api/v1/accounts",
    "/api/v1/transfers",
    "/api/v1/transfers/",
    "/api/v1/transfers/t-1/confirm",
    "/",
    "/login",
    "/login/code",
    "/welcome",
    "/accounts",
    "/transfer",
    "/transfer/confirm",
    "/logout",
    "/static/",
    "/api/v1/",
    "/%",
    "",
];

const CONTENT_TYPES: [&str; 4] =
    ["application/json", "application/x-www-form-urlencoded", "text/plain; charset=utf-8", "multipart/form-data"];

fn seed(user: &str) -> [u8; 32] {
    let mut s = [0x11u8; 32];
    for (i, b) in user.bytes().enumerate() {
        s[i] ^= b;
    }
    s
}

/// The bank every input runs against.
pub struct Bank {
    rt: tokio::runtime::Runtime,
    app: Router,
    token: String,
    _dir: tempfile::TempDir,
}

impl Bank {
    /// A bank with alice (logged in through the API) and bob, each with an account in EUR.
    pub fn new() -> Bank {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path: PathBuf = dir.path().join("bank.sqlite3");
        for (user, account) in [("alice", "ACC-ALICE-EUR"), ("bob", "ACC-BOB-EUR")] {
            ops::add_user(&path, user).expect("user");
            let serial = format!("PSIM-{}", user.to_uppercase());
            ops::enroll_token(&path, &serial, &ChainKey::from_bytes(seed(user)), 0, user).expect("token");
            ops::open_account(&path, user, account, "EUR", Some("Test Customer")).expect("account");
            ops::fund(&path, account, 100_000, "opening").expect("funding");
        }
        let mut cfg = Config::new(URL).expect("config");
        cfg.limits = bank_server::limit::Settings::off();
        let state = AppState::open_with(&path, cfg, Clock::system()).expect("bank");
        let client: std::net::SocketAddr = "203.0.113.9:40000".parse().expect("address");
        let app = bank_server::app(state).layer(MockConnectInfo(client));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut bank = Bank { rt, app, token: String::new(), _dir: dir };
        bank.token = bank.log_in("alice");
        bank
    }

    fn call(&self, req: Request<Body>) -> (u16, axum::http::HeaderMap, Vec<u8>) {
        self.rt.block_on(async {
            let res = self.app.clone().oneshot(req).await.expect("the router is infallible");
            let (parts, body) = res.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
            (parts.status.as_u16(), parts.headers, bytes)
        })
    }

    fn post_json(&self, path: &str, body: &Value) -> Value {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let (status, _, bytes) = self.call(req);
        assert!(status < 300, "{path}: {status}");
        serde_json::from_slice(&bytes).expect("json")
    }

    fn log_in(&self, user: &str) -> String {
        let c = self.post_json("/api/v1/login/challenge", &json!({ "user": user }));
        let challenge = hex::decode(c["challenge_hex"].as_str().expect("challenge")).expect("hex");
        let vid = paysim_otp::verifier_id(URL).expect("verifier id");
        let otp = paysim_otp::login_otp(&ChainKey::from_bytes(seed(user)), 0, &challenge, vid.as_bytes());
        let v = self.post_json(
            "/api/v1/login",
            &json!({ "challenge_id": c["challenge_id"], "counter": 0, "otp": otp.as_str() }),
        );
        v["token"].as_str().expect("token").to_owned()
    }

    /// Runs one input (see the module comment).
    pub fn run(&self, data: &[u8]) {
        let [m, p, flags, rest @ ..] = data else {
            return;
        };
        let mut parts = rest.split(|&b| b == 0xFF);
        let suffix = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        let value = parts.next().unwrap_or_default().to_vec();
        let body: Vec<u8> = parts.flat_map(|p| p.iter().copied().chain([0xFF])).collect();
        let method = METHODS[usize::from(*m) % METHODS.len()];
        let path = format!("{}{}", PATHS[usize::from(*p) % PATHS.len()], suffix);
        let mut req = Request::builder().method(method).uri(path.as_str());
        if flags & 1 != 0 {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        }
        if flags & 2 != 0 {
            req = req.header(header::AUTHORIZATION, value.as_slice());
        }
        if flags & 4 != 0 {
            req = req.header(header::COOKIE, value.as_slice());
        }
        if flags & 8 != 0 {
            req = req.header(header::CONTENT_TYPE, CONTENT_TYPES[usize::from(flags >> 6)]);
        }
        if flags & 16 != 0 {
            req = req.header(header::ORIGIN, value.as_slice());
        }
        if flags & 32 != 0 {
            req = req.header(header::CONTENT_LENGTH, body.len());
        }
        // A method, path or header value that HTTP itself cannot carry never reaches a server.
        let Ok(req) = req.body(Body::from(body)) else {
            return;
        };
        let (status, headers, bytes) = self.call(req);
        assert!(status < 500, "{method} {path:?}: {status} {}", String::from_utf8_lossy(&bytes));
        let text = String::from_utf8_lossy(&bytes);
        for user in ["alice", "bob"] {
            assert!(!text.contains(&hex::encode(seed(user))), "a seed in the answer to {method} {path:?}");
        }
        assert!(!text.contains(&self.token), "the session token in the answer to {method} {path:?}");
        let json = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if path.starts_with("/api/") && status >= 400 && json && method != "HEAD" {
            let e: ErrorBody = serde_json::from_slice(&bytes).expect("an API error is the error body");
            assert_ne!(e.error, ErrorCode::Unknown, "{method} {path:?}: an error code the wire does not know");
            assert!(!e.message.is_empty());
        }
    }
}

impl Default for Bank {
    fn default() -> Self {
        Self::new()
    }
}

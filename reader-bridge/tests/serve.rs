//! `reader-bridge serve`, the signing service, over HTTP against a real bank-server (its
//! library `serve` on 127.0.0.1 with a fresh database) and the card core in this process
//! (`card_link::MemCard` behind the bridge's `PaysimCard`). The person is a scripted [`Ui`]
//! fed through channels, so a test decides, while a request waits, what the person answers.
//! The same service in a real browser, with the real card over pcscd, is in the e2e suite
//! (tests/tests/e2e/signing_service.rs).

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank_server::clock::Clock;
use bank_server::ops;
use card_link::MemCard;
use paysim_otp::ChainKey;
use reader_bridge::card::PaysimCard;
use reader_bridge::flow::{BankFlags, Bridge, CardChoice, SecretKind, Token, Ui};
use reader_bridge::serve::Signer;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

const SEED: [u8; 32] = [0x6B; 32];
const PIN: &str = "1234";
const WAIT: Duration = Duration::from_secs(20);

/// A server on its own thread and runtime, stopped on drop.
struct Served {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Binds 127.0.0.1:0 and runs `run(listener, shutdown)` until dropped.
    fn start<F, Fut>(run: F) -> Served
    where
        F: FnOnce(tokio::net::TcpListener, tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                run(listener, stop_rx).await;
            });
        });
        let addr = ready_rx.recv_timeout(WAIT).expect("the server did not start");
        Served { addr, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The person at the service's terminal: answers come from the test through channels; what
/// the service shows is collected. Each question is reported on `asked` before it waits.
struct Person {
    confirms: mpsc::Receiver<bool>,
    pins: mpsc::Receiver<String>,
    asked: mpsc::Sender<String>,
    shown: Arc<Mutex<Vec<String>>>,
}

impl Ui for Person {
    fn secret(&mut self, _kind: SecretKind, prompt: &str) -> reader_bridge::Result<Zeroizing<String>> {
        let _ = self.asked.send(prompt.to_owned());
        let pin = self.pins.recv_timeout(WAIT).map_err(|_| reader_bridge::Error::BadInput("no PIN".into()))?;
        Ok(Zeroizing::new(pin))
    }
    fn confirm(&mut self, question: &str) -> reader_bridge::Result<bool> {
        let _ = self.asked.send(question.to_owned());
        self.confirms.recv_timeout(WAIT).map_err(|_| reader_bridge::Error::BadInput("no answer".into()))
    }
    fn ask(&mut self, _prompt: &str) -> reader_bridge::Result<String> {
        panic!("the service asked for text")
    }
    fn say(&mut self, text: &str) {
        self.shown.lock().unwrap().push(text.to_owned());
    }
    fn warn(&mut self, text: &str) {
        self.shown.lock().unwrap().push(text.to_owned());
    }
}

/// The bank (alice with the card's token and 1000.00 EUR, bob), the service set up for it,
/// and the test's end of the person's channels.
struct World {
    _dir: tempfile::TempDir,
    bank: Served,
    service: Served,
    card: MemCard,
    confirms: mpsc::Sender<bool>,
    pins: mpsc::Sender<String>,
    asked: mpsc::Receiver<String>,
    shown: Arc<Mutex<Vec<String>>>,
    http: reqwest::blocking::Client,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    ops::add_user(&db, "alice").unwrap();
    ops::add_user(&db, "bob").unwrap();
    ops::enroll_token(&db, "PSIM-00000001", &ChainKey::from_bytes(SEED), 0, "alice").unwrap();
    ops::open_account(&db, "alice", "ACC-ALICE-EUR", "EUR", Some("Alice Example")).unwrap();
    ops::open_account(&db, "bob", "ACC-BOB-EUR", "EUR", Some("Bob Example")).unwrap();
    ops::fund(&db, "ACC-ALICE-EUR", 100_000, "test").unwrap();
    let bank = Served::start(move |listener, stop| async move {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = bank_server::AppState::open(&db, &url, Clock::system()).unwrap();
        bank_server::serve(listener, state, async {
            let _ = stop.await;
        })
        .await
        .unwrap();
    });

    let state = dir.path().join("bridge-state");
    Bridge::setup(&state, &bank.url(), None, false).unwrap();
    let card = MemCard::personalized(&SEED, PIN, "12345678", "PSIM-00000001").unwrap();
    let (confirms, confirms_rx) = mpsc::channel();
    let (pins, pins_rx) = mpsc::channel();
    let (asked_tx, asked) = mpsc::channel();
    let shown = Arc::new(Mutex::new(Vec::new()));
    let person = Person { confirms: confirms_rx, pins: pins_rx, asked: asked_tx, shown: shown.clone() };
    let token = card.clone();
    let open = move || {
        Bridge::open(&state, &BankFlags::default(), CardChoice { reader: None, wait: Duration::ZERO }).map(|b| {
            b.with_token_opener(Box::new(move |_| Ok(Box::new(PaysimCard::new(token.clone())) as Box<dyn Token>)))
        })
    };
    let (signer, pinned) = Signer::start(open, Box::new(person)).unwrap();
    assert_eq!(pinned, bank.url());
    let service = Served::start(move |listener, stop| async move {
        reader_bridge::serve::serve(listener, signer, async {
            let _ = stop.await;
        })
        .await
        .unwrap();
    });
    let http = reqwest::blocking::Client::builder().timeout(WAIT).build().unwrap();
    World { _dir: dir, bank, service, card, confirms, pins, asked, shown, http }
}

impl World {
    /// A login challenge from the bank's API: (challenge id, challenge hex).
    fn login_challenge(&self) -> (String, String) {
        let v: Value = self
            .http
            .post(format!("{}/api/v1/login/challenge", self.bank.url()))
            .json(&json!({ "user": "alice" }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (v["challenge_id"].as_str().unwrap().to_owned(), v["challenge_hex"].as_str().unwrap().to_owned())
    }

    /// `POST /v1/sign` from `origin` (none: no header); (status, headers, body).
    fn sign(&self, origin: Option<&str>, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.post(format!("{}/v1/sign", self.service.url())).json(&body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        answer(req)
    }

    /// The person agrees and types the PIN when asked (answers queued before the request).
    fn will_agree(&self) {
        self.confirms.send(true).unwrap();
        self.pins.send(PIN.to_owned()).unwrap();
    }

    /// What the service showed the person so far, as one text.
    fn shown(&self) -> String {
        self.shown.lock().unwrap().join("\n")
    }

    /// The card's next counter (what a code drawn would use).
    fn next_counter(&self) -> u64 {
        let mut card = PaysimCard::new(self.card.clone());
        card.status().unwrap().next_counter.unwrap()
    }

    /// `POST /api/v1/login` with a code; (status, body).
    fn bank_login(&self, challenge_id: &str, signed: &Value) -> (u16, Value) {
        let body = json!({ "challenge_id": challenge_id, "counter": signed["counter"], "otp": signed["otp"] });
        let (st, _, v) = answer(self.http.post(format!("{}/api/v1/login", self.bank.url())).json(&body));
        (st, v)
    }
}

fn answer(req: reqwest::blocking::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).map_or("", |v| v.to_str().unwrap())
}

#[test]
fn the_banks_page_logs_in_and_transfers_with_codes_bound_to_its_origin() {
    let w = world();
    let origin = w.bank.url();
    let (id, challenge) = w.login_challenge();
    w.will_agree();
    let (st, h, v) = w.sign(Some(&origin), json!({ "challenge_id": id }));
    assert_eq!(st, 200, "{v}");
    assert_eq!(header(&h, "access-control-allow-origin"), origin);
    assert!(header(&h, "vary").contains("Origin"), "{h:?}");
    assert_eq!(v["code"], format!("{}-{}", v["counter"], v["otp"].as_str().unwrap()));
    let shown = w.shown();
    let asked_by = format!("page that asked:    {origin}");
    for needle in [asked_by.as_str(), "user:               alice", &challenge] {
        assert!(shown.contains(needle), "{needle} not shown:\n{shown}");
    }
    assert!(!shown.contains("WARNING"), "{shown}");
    let (st, login) = w.bank_login(&id, &v);
    assert_eq!(st, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_owned();

    // A transfer: the service shows every field the bank asks the card to sign.
    let (st, _, created) = answer(
        w.http
            .post(format!("{}/api/v1/transfers", w.bank.url()))
            .bearer_auth(&token)
            .json(&json!({ "transfer_id": "tx-serve-1", "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR",
                 "amount_minor": 1234, "currency": "EUR", "payee_name": "Bob Example" })),
    );
    assert_eq!(st, 201, "{created}");
    w.shown.lock().unwrap().clear();
    w.will_agree();
    let (st, _, v) = w.sign(Some(&origin), json!({ "challenge_id": created["challenge_id"] }));
    assert_eq!(st, 200, "{v}");
    let shown = w.shown();
    for needle in [
        "sign a transfer",
        "tx-serve-1",
        "ACC-ALICE-EUR",
        "ACC-BOB-EUR",
        "Bob Example",
        "12.34 EUR (1234 minor units)",
        &origin,
    ] {
        assert!(shown.contains(needle), "{needle} not shown:\n{shown}");
    }
    let (st, _, done) = answer(
        w.http
            .post(format!("{}/api/v1/transfers/tx-serve-1/confirm", w.bank.url()))
            .bearer_auth(&token)
            .json(&json!({ "challenge_id": created["challenge_id"], "counter": v["counter"], "otp": v["otp"] })),
    );
    assert_eq!((st, done["transfer"]["status"].as_str()), (200, Some("executed")), "{done}");
}

#[test]
fn another_origin_gets_a_code_for_itself_that_the_bank_refuses() {
    let w = world();
    // The same bank under another name: what a look-alike relaying its challenge would be.
    let lookalike = format!("http://localhost:{}", w.bank.addr.port());
    let (id, _) = w.login_challenge();
    w.will_agree();
    let (st, h, v) = w.sign(Some(&lookalike), json!({ "challenge_id": id }));
    assert_eq!(st, 200, "{v}");
    assert_eq!(header(&h, "access-control-allow-origin"), lookalike);
    let shown = w.shown();
    assert!(shown.contains(&format!("page that asked:    {lookalike}")), "{shown}");
    assert!(shown.contains("WARNING: this page is not the bank this bridge is set up for"), "{shown}");
    let (st, refused) = w.bank_login(&id, &v);
    assert_eq!((st, refused["error"].as_str()), (401, Some("auth_failed")), "{refused}");
    // A verifier id in the body is not taken, it is refused.
    let (id, _) = w.login_challenge();
    let (st, _, v) = w.sign(Some(&lookalike), json!({ "challenge_id": id, "verifier_id": w.bank.url() }));
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
}

#[test]
fn requests_a_browser_page_did_not_make_for_this_address_are_refused() {
    let w = world();
    let (id, _) = w.login_challenge();
    let before = w.next_counter();
    let body = json!({ "challenge_id": id });
    // No Origin: not from a page.
    let (st, h, v) = w.sign(None, body.clone());
    assert_eq!((st, v["error"].as_str()), (403, Some("origin_required")), "{v}");
    assert_eq!(header(&h, "access-control-allow-origin"), "");
    // An origin that is neither https:// nor loopback http://.
    for bad in ["http://evil.example", "null", "https://bank.example/login"] {
        let (st, _, v) = w.sign(Some(bad), body.clone());
        assert_eq!((st, v["error"].as_str()), (403, Some("origin_not_allowed")), "{bad}: {v}");
    }
    // DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1 sends its
    // own Host.
    let port = w.service.addr.port();
    let (st, _, v) = answer(
        w.http
            .post(format!("{}/v1/sign", w.service.url()))
            .header("host", format!("evil.example:{port}"))
            .header("origin", format!("http://evil.example:{port}"))
            .json(&body),
    );
    assert_eq!((st, v["error"].as_str()), (421, Some("host_not_allowed")), "{v}");
    // Not JSON: refused before anyone is asked.
    let (st, _, v) = answer(
        w.http
            .post(format!("{}/v1/sign", w.service.url()))
            .header("origin", w.bank.url())
            .header("content-type", "text/plain")
            .body(body.to_string()),
    );
    assert_eq!((st, v["error"].as_str()), (415, Some("invalid_request")), "{v}");
    // Too large: refused with the same JSON shape, before anyone is asked.
    let (st, _, v) = w.sign(Some(&w.bank.url()), json!({ "challenge_id": id, "pad": "x".repeat(2000) }));
    assert_eq!((st, v["error"].as_str()), (413, Some("body_too_large")), "{v}");
    // An id the bank has not issued: refused without a prompt.
    let (st, _, v) = w.sign(Some(&w.bank.url()), json!({ "challenge_id": "0".repeat(32) }));
    assert_eq!((st, v["error"].as_str()), (404, Some("unknown_challenge")), "{v}");
    assert!(w.asked.try_recv().is_err(), "the person was asked for a request that was refused");
    assert_eq!(w.next_counter(), before, "a refused request drew a code");
    let (st, _, v) = answer(w.http.get(format!("{}/v1/sign", w.service.url())).header("origin", w.bank.url()));
    assert_eq!((st, v["error"].as_str()), (405, Some("method_not_allowed")), "{v}");
}

#[test]
fn preflights_are_answered_for_cors_and_private_network_access() {
    let w = world();
    let url = format!("{}/v1/sign", w.service.url());
    let origin = "https://bank.example";
    let (st, h, _) = answer(
        w.http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .header("access-control-request-private-network", "true"),
    );
    assert_eq!(st, 204);
    assert_eq!(header(&h, "access-control-allow-origin"), origin);
    assert_eq!(header(&h, "access-control-allow-methods"), "POST");
    assert_eq!(header(&h, "access-control-allow-headers"), "content-type");
    assert_eq!(header(&h, "access-control-allow-private-network"), "true");
    let vary: Vec<&str> = h.get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(vary.iter().any(|v| v.contains("Origin")), "{vary:?}");
    // Without the PNA request header, no PNA answer.
    let (st, h, _) = answer(
        w.http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST"),
    );
    assert_eq!(st, 204);
    assert_eq!(header(&h, "access-control-allow-private-network"), "");
    // A preflight is refused like the request would be.
    let (st, h, v) =
        answer(w.http.request(reqwest::Method::OPTIONS, &url).header("access-control-request-method", "POST"));
    assert_eq!((st, v["error"].as_str()), (403, Some("origin_required")), "{v}");
    assert_eq!(header(&h, "access-control-allow-origin"), "");
    let (st, _, v) = answer(
        w.http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "http://10.1.2.3")
            .header("access-control-request-method", "POST"),
    );
    assert_eq!((st, v["error"].as_str()), (403, Some("origin_not_allowed")), "{v}");
}

#[test]
fn a_refusal_at_the_terminal_signs_nothing_and_one_request_signs_at_a_time() {
    let w = world();
    let origin = w.bank.url();
    let before = w.next_counter();
    let (id, _) = w.login_challenge();
    // The first request waits for the person; a second one meanwhile is refused as busy.
    let (http, url, first_id) = (w.http.clone(), w.service.url(), id.clone());
    let first_origin = origin.clone();
    let first = std::thread::spawn(move || {
        answer(
            http.post(format!("{url}/v1/sign"))
                .header("origin", first_origin)
                .json(&json!({ "challenge_id": first_id })),
        )
    });
    let question = w.asked.recv_timeout(WAIT).unwrap();
    assert!(question.contains(&format!("Sign this login for {origin}")), "{question}");
    let (st, _, v) = w.sign(Some(&origin), json!({ "challenge_id": id }));
    assert_eq!((st, v["error"].as_str()), (409, Some("busy")), "{v}");
    // The person says no: the page hears so, and the card drew no code.
    w.confirms.send(false).unwrap();
    let (st, h, v) = first.join().unwrap();
    assert_eq!((st, v["error"].as_str()), (403, Some("declined")), "{v}");
    assert_eq!(header(&h, "access-control-allow-origin"), origin, "the page can read why");
    assert_eq!(w.next_counter(), before);
    assert!(w.shown().contains("not signed: cancelled"), "{}", w.shown());
    // Free again: the next request is signed.
    w.will_agree();
    let (st, _, v) = w.sign(Some(&origin), json!({ "challenge_id": id }));
    assert_eq!(st, 200, "{v}");
    assert_eq!(w.next_counter(), before + 1);
}

//! A real browser for the tests: Debian's headless Chromium driven through `chromedriver` with
//! the W3C WebDriver protocol (JSON over HTTP on loopback), with only what the page tests
//! need: open a page, fill and submit forms, run a script, read the console, take a
//! screenshot, resize the window.
//!
//! `scripts/setup.sh` installs `chromium` and `chromium-driver`; nothing is downloaded. The
//! browser runs with the flags `../shared/machine-notes.md` gives for this kind of machine
//! (no sandbox as root, no background networking) and a fresh profile per session.

// Test support: a panic is how a broken page reports, as in the tests that use it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The WebDriver "element" key (W3C WebDriver §12.1, web element identifier).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A `chromedriver` process and one browser session in it; both end when dropped.
pub struct Chrome {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

/// Panics with what to install unless Chromium and its driver are there.
fn require_chromium() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: run `sudo bash scripts/setup.sh` (installs Debian's {package})"
        );
    }
}

impl Chrome {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session
    /// with a window of `width` x `height` CSS pixels.
    pub fn start(width: u32, height: u32) -> Chrome {
        Self::start_with(width, height, false)
    }

    /// [`Chrome::start`] for a bank on HTTPS with the tests' private CA: the session accepts
    /// any certificate (WebDriver's `acceptInsecureCerts`), since a fresh profile trusts only
    /// the platform's roots. The pages' origins are still `https://...`.
    pub fn start_accepting_test_certificates(width: u32, height: u32) -> Chrome {
        Self::start_with(width, height, true)
    }

    fn start_with(width: u32, height: u32, accept_insecure_certs: bool) -> Chrome {
        require_chromium();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        // chromedriver says on stdout when it listens.
        let mut out = BufReader::new(driver.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert!(n > 0, "chromedriver ended before it listened");
            if line.contains("started successfully") {
                break;
            }
        }
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": accept_insecure_certs,
                "goog:loggingPrefs": { "browser": "ALL" },
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--hide-scrollbars",
                        format!("--user-data-dir={}", profile.path().display()),
                        format!("--window-size={width},{height}"),
                    ],
                },
            }},
        });
        let answer: Value = http.post(format!("{base}/session")).json(&caps).send().unwrap().json().unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused the session: {answer}"))
            .to_owned();
        let mut chrome = Chrome { driver, base, session, http, _profile: profile };
        chrome.resize(width, height);
        chrome
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = self.http.request(method, &url);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let answer: Value = req.send().unwrap_or_else(|e| panic!("WebDriver {path}: {e}")).json().unwrap();
        if let Some(err) = answer["value"]["error"].as_str() {
            panic!("WebDriver {path}: {err}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    /// Opens `url` and waits for the page to load.
    pub fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// The inner size of the window as the page sees it: sets the outer size so that
    /// `window.innerWidth` is `width` (headless Chromium has no window frame).
    pub fn resize(&mut self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({ "width": width, "height": height })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css })));
        v[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element {css:?}: {v}")).to_owned()
    }

    /// Types `text` into the field `css`, after clearing it.
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({})));
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({ "text": text })));
    }

    /// Clicks `css` (a submit button: the click returns once the next page has loaded).
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Clicks `css`, a control that loads another page (a form's button, a link), and waits
    /// (at most 30 s) until that page has loaded: a click is answered once the browser took
    /// it, which can be before the navigation began, and the old page would then be read.
    pub fn submit(&self, css: &str) {
        self.script("window.__paysimBeforeClick = true;", json!([]));
        self.click(css);
        // WebDriver has no wait for "the page this click loads"; the old page's marker going
        // and the new page's readyState are polled instead, a browser round trip each.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let loaded = self
                .script("return window.__paysimBeforeClick !== true && document.readyState === 'complete';", json!([]));
            if loaded == json!(true) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "no new page 30 s after clicking {css}: {}", self.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most `timeout`, through the page loads in between) until an element matching
    /// `xpath` is on the page: WebDriver's implicit wait, so the browser itself waits for it.
    /// Panics with the page's text otherwise.
    pub fn wait_for_xpath(&self, xpath: &str, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.call(reqwest::Method::POST, "/timeouts", Some(json!({ "implicit": ms })));
        let url = format!("{}/session/{}/element", self.base, self.session);
        let found: Value = self
            .http
            .post(&url)
            .json(&json!({ "using": "xpath", "value": xpath }))
            .send()
            .unwrap_or_else(|e| panic!("WebDriver element: {e}"))
            .json()
            .unwrap();
        self.call(reqwest::Method::POST, "/timeouts", Some(json!({ "implicit": 0 })));
        assert!(
            found["value"][ELEMENT_KEY].is_string(),
            "no {xpath:?} within {timeout:?} on {}: {}",
            self.url(),
            self.text()
        );
    }

    /// The page's address after redirects.
    pub fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// What a person reads on the page (`document.body.innerText`).
    pub fn text(&self) -> String {
        self.script("return document.body.innerText;", json!([])).as_str().unwrap_or_default().to_owned()
    }

    /// How wide the page is against the window: (`scrollWidth` of the document, `innerWidth`).
    pub fn widths(&self) -> (u64, u64) {
        let v = self.script("return [document.documentElement.scrollWidth, window.innerWidth];", json!([]));
        (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
    }

    /// The console messages since the last call (chromedriver's log endpoint), as
    /// (level, message).
    pub fn console(&self) -> Vec<(String, String)> {
        let v = self.call(reqwest::Method::POST, "/se/log", Some(json!({ "type": "browser" })));
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        (e["level"].as_str().unwrap_or("").to_owned(), e["message"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Replaces the cookie `name` of the current page's site by one with `value` (WebDriver's
    /// Delete Cookie and Add Cookie, which reach `HttpOnly` cookies that a page's script
    /// cannot): how a test makes the bank meet a session it no longer has.
    pub fn replace_cookie(&self, name: &str, value: &str) {
        self.call(reqwest::Method::DELETE, &format!("/cookie/{name}"), None);
        let cookie = json!({ "name": name, "value": value, "path": "/", "httpOnly": true, "sameSite": "Strict" });
        self.call(reqwest::Method::POST, "/cookie", Some(json!({ "cookie": cookie })));
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None);
        let png = decode_base64(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the page tests put their screenshots: `target/browser-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    crate::workspace_root().join("target").join("browser-screenshots")
}

/// Standard base64 (RFC 4648 §4) as WebDriver sends screenshots; panics on anything else.
fn decode_base64(text: &str) -> Vec<u8> {
    fn value(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:#04x}"),
        }
    }
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let mut n = 0u32;
        for &c in &data {
            n = (n << 6) | value(c);
        }
        n <<= 6 * (4 - data.len() as u32);
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..data.len().saturating_sub(1)]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_the_rfc_4648_vectors() {
        for (text, plain) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(super::decode_base64(text), plain.as_bytes(), "{text}");
        }
    }
}

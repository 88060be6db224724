//! The bank's website by HTTP, as a person without JavaScript would use it.

// Test support: a panic is how a broken page reports, as in the tests that use it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

/// One HTTP client for the whole test process (no redirects followed: tests look at them).
pub fn http() -> &'static reqwest::blocking::Client {
    static C: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    C.get_or_init(|| reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap())
}

/// A tiny cookie-keeping browser without JavaScript, on one site.
pub struct Browser {
    base: String,
    cookie: Option<String>,
    http: reqwest::blocking::Client,
}

impl Browser {
    /// A browser with no cookie yet on the site at `base` (e.g. `http://127.0.0.1:PORT`),
    /// trusting the platform's certificate authorities.
    pub fn new(base: &str) -> Self {
        Browser { base: base.to_owned(), cookie: None, http: http().clone() }
    }

    /// A browser on the test bank `bank`'s site, trusting its CA when it serves HTTPS.
    pub fn for_bank(bank: &crate::BankServer) -> Self {
        Browser { base: bank.url(), cookie: None, http: bank.client() }
    }

    /// Sends `req` with the cookie, keeps the one the answer sets; (status, body, location).
    pub fn send(&mut self, req: reqwest::blocking::RequestBuilder) -> (u16, String, Option<String>) {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c.as_str()),
            None => req,
        };
        let resp = req.send().unwrap();
        if let Some(set) = resp.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (status, resp.text().unwrap(), location)
    }

    /// `GET base+path`.
    pub fn get(&mut self, path: &str) -> (u16, String, Option<String>) {
        let url = format!("{}{path}", self.base);
        self.send(self.http.get(url))
    }

    /// `POST base+path` with a URL-encoded form.
    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let url = format!("{}{path}", self.base);
        let body: String = form.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
        self.send(self.http.post(url).header("content-type", "application/x-www-form-urlencoded").body(body))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the hidden input `name` in `html`.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no input {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

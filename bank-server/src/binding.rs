//! Where the bank listens and the URL it is known by, checked together at start-up.
//!
//! The public URL's origin is the verifier id every code is bound to, so it must be a name
//! people and bridges really use, over a transport that keeps it theirs:
//!
//! - plain HTTP is served only on a loopback address (127.0.0.0/8, ::1);
//! - any other `--listen` (a LAN address, or a wildcard 0.0.0.0 / ::) needs TLS
//!   (`--tls-cert`, `--tls-key`) and `--public-url https://...`;
//! - a wildcard address is never a verifier id, neither taken from `--listen` nor given as the
//!   public URL's host;
//! - an `http://` public URL must name a loopback host (127.x, `[::1]`, localhost); with TLS on,
//!   the public URL is `https://`.
//!
//! Without `--public-url` (loopback only) the public URL is `http://ADDR` or, with TLS,
//! `https://ADDR`, for the address actually bound (port 0 becomes the real port). A loopback
//! `--listen` without TLS may still have an `https://` public URL: a TLS proxy on the same
//! machine in front of the bank.

use std::net::{IpAddr, SocketAddr};

/// A listen address and public URL that do not go together; each message says what to pass.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindingError {
    #[error(
        "plain HTTP is served only on a loopback address, not on {0}: pass --tls-cert FILE and \
         --tls-key FILE (and --public-url https://NAME), or listen on 127.0.0.1"
    )]
    PlainNotLoopback(SocketAddr),
    #[error(
        "listening on {0} needs --public-url https://NAME[:PORT], the URL people and bridges use \
         (its origin is the verifier id codes are bound to; a wildcard or LAN address is not one)"
    )]
    NeedPublicUrl(SocketAddr),
    #[error("--public-url {0}: {1}")]
    BadUrl(String, paysim_otp::VerifierIdError),
    #[error("--public-url {0} names a wildcard address, which is never a verifier id: give the name people use")]
    WildcardHost(String),
    #[error(
        "--public-url {0} is http:// to a host that is not loopback: use https:// (serve TLS with \
         --tls-cert/--tls-key, or put a TLS proxy in front)"
    )]
    PlainPublicUrl(String),
    #[error("listening on {0} (not loopback) needs an https:// --public-url, not {1}")]
    PlainPublicUrlOnNetwork(SocketAddr, String),
    #[error("the bank serves TLS, so --public-url must be https://, not {0}")]
    TlsButHttpUrl(String),
}

/// The public URL for a bank bound to `bound` (the real address, after port 0 was resolved),
/// given `public_url` (the flag, if any) and whether it serves TLS; or why they do not go
/// together.
pub fn public_url(bound: SocketAddr, public_url: Option<&str>, tls: bool) -> Result<String, BindingError> {
    let loopback = bound.ip().is_loopback();
    if !tls && !loopback {
        return Err(BindingError::PlainNotLoopback(bound));
    }
    let Some(url) = public_url else {
        if !loopback {
            return Err(BindingError::NeedPublicUrl(bound));
        }
        return Ok(format!("{}://{bound}", if tls { "https" } else { "http" }));
    };
    let vid = paysim_otp::verifier_id(url).map_err(|e| BindingError::BadUrl(url.to_owned(), e))?;
    let (scheme, host) = scheme_and_host(&vid);
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
        return Err(BindingError::WildcardHost(url.to_owned()));
    }
    if scheme == "http" {
        if tls {
            return Err(BindingError::TlsButHttpUrl(url.to_owned()));
        }
        if !loopback {
            return Err(BindingError::PlainPublicUrlOnNetwork(bound, url.to_owned()));
        }
        if !is_loopback_host(host) {
            return Err(BindingError::PlainPublicUrl(url.to_owned()));
        }
    }
    Ok(url.to_owned())
}

/// The scheme and host (IPv6 without its brackets) of a verifier id `scheme://host:port`.
fn scheme_and_host(vid: &str) -> (&str, &str) {
    let (scheme, rest) = vid.split_once("://").unwrap_or(("", vid));
    let host = rest.rsplit_once(':').map_or(rest, |(h, _port)| h);
    (scheme, host.trim_start_matches('[').trim_end_matches(']'))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: &str) -> SocketAddr {
        addr.parse().unwrap()
    }

    #[test]
    fn loopback_gets_a_default_url_for_its_transport() {
        assert_eq!(public_url(at("127.0.0.1:8080"), None, false).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(public_url(at("127.0.0.1:8443"), None, true).unwrap(), "https://127.0.0.1:8443");
        assert_eq!(public_url(at("[::1]:8443"), None, true).unwrap(), "https://[::1]:8443");
        assert_eq!(public_url(at("127.0.0.1:1"), Some("http://localhost:1"), false).unwrap(), "http://localhost:1");
        // Behind a TLS proxy on the same machine.
        assert_eq!(
            public_url(at("127.0.0.1:8080"), Some("https://bank.example"), false).unwrap(),
            "https://bank.example"
        );
    }

    #[test]
    fn the_network_needs_tls_and_an_https_name() {
        use BindingError::*;
        type Case = (&'static str, Option<&'static str>, bool, fn(&BindingError) -> bool);
        let cases: &[Case] = &[
            ("0.0.0.0:8443", None, false, |e| matches!(e, PlainNotLoopback(_))),
            ("[::]:8443", None, false, |e| matches!(e, PlainNotLoopback(_))),
            ("192.168.1.5:8443", Some("https://bank.example"), false, |e| matches!(e, PlainNotLoopback(_))),
            ("0.0.0.0:8443", None, true, |e| matches!(e, NeedPublicUrl(_))),
            ("[::]:8443", None, true, |e| matches!(e, NeedPublicUrl(_))),
            ("192.168.1.5:8443", None, true, |e| matches!(e, NeedPublicUrl(_))),
            ("0.0.0.0:8443", Some("http://bank.example"), true, |e| matches!(e, TlsButHttpUrl(_))),
            ("0.0.0.0:8443", Some("https://0.0.0.0:8443"), true, |e| matches!(e, WildcardHost(_))),
            ("0.0.0.0:8443", Some("https://[::]:8443"), true, |e| matches!(e, WildcardHost(_))),
            ("127.0.0.1:8080", Some("http://0.0.0.0:8080"), false, |e| matches!(e, WildcardHost(_))),
            ("127.0.0.1:8080", Some("http://bank.example"), false, |e| matches!(e, PlainPublicUrl(_))),
            ("127.0.0.1:8080", Some("http://192.168.1.5"), false, |e| matches!(e, PlainPublicUrl(_))),
            ("127.0.0.1:8443", Some("http://127.0.0.1:8443"), true, |e| matches!(e, TlsButHttpUrl(_))),
            ("127.0.0.1:8080", Some("ftp://x"), false, |e| matches!(e, BadUrl(..))),
        ];
        for (listen, url, tls, want) in cases {
            let e = public_url(at(listen), *url, *tls).unwrap_err();
            assert!(want(&e), "{listen} {url:?} tls={tls}: {e}");
        }
        assert_eq!(
            public_url(at("0.0.0.0:8443"), Some("https://bank.example:8443"), true).unwrap(),
            "https://bank.example:8443"
        );
        let e = public_url(at("0.0.0.0:8443"), None, false).unwrap_err().to_string();
        assert!(e.contains("--tls-cert FILE") && e.contains("--tls-key FILE"), "{e}");
        let e = public_url(at("0.0.0.0:8443"), None, true).unwrap_err().to_string();
        assert!(e.contains("--public-url https://"), "{e}");
    }
}

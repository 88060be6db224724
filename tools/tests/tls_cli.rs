//! `bank-tools tls init` through the real binary: the three files and their modes, the refusal
//! to overwrite, and the certificates checked by third-party tools (openssl, curl) and served
//! by the real `bank-server`.

// clippy.toml lets `#[test]` functions unwrap; the two small helpers here may too.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::bank_tools;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn have(tool: &str) -> bool {
    let found =
        Command::new(tool).arg("--version").output().is_ok() || Command::new(tool).arg("version").output().is_ok();
    if !found {
        eprintln!("{tool} is not installed: its part of the check is skipped");
    }
    found
}

#[test]
fn tls_init_writes_a_ca_and_a_server_certificate_and_never_overwrites_them() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let d = tls.to_str().unwrap();
    let out = bank_tools(&["tls", "init", "--dir", d]);
    let said = out.ok().to_owned();
    assert!(said.contains("for 127.0.0.1, ::1, localhost"), "{said}");
    assert!(said.contains("the CA's private key was not kept"), "{said}");
    let (ca, cert, key) = (tls.join("ca.pem"), tls.join("server.pem"), tls.join("server-key.pem"));
    assert_eq!((mode(&ca), mode(&cert), mode(&key)), (0o644, 0o644, 0o600));
    let mut names: Vec<String> =
        std::fs::read_dir(&tls).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["ca.pem", "server-key.pem", "server.pem"], "no CA key is kept");
    let before = std::fs::read(&key).unwrap();
    let err = bank_tools(&["tls", "init", "--dir", d]).refused().to_owned();
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key was not replaced");
    bank_tools(&["tls", "init", "--dir", d, "--force", "--host", "bank.example", "--host", "10.0.0.7"]).ok();
    assert_ne!(std::fs::read(&key).unwrap(), before);
    assert_eq!(mode(&key), 0o600);
    let err = bank_tools(&["tls", "init", "--dir", d, "--force", "--host", "bad host"]).refused().to_owned();
    assert!(err.contains("neither an IP address nor a DNS name"), "{err}");

    if have("openssl") {
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).output().unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let (ok, text) = run(&["verify", "-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]);
        assert!(ok && text.contains(": OK"), "{text}");
        let (_, text) =
            run(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-ext", "subjectAltName,extendedKeyUsage"]);
        assert!(text.contains("DNS:bank.example") && text.contains("IP Address:10.0.0.7"), "{text}");
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
        let (_, text) = run(&["x509", "-in", ca.to_str().unwrap(), "-noout", "-ext", "basicConstraints,keyUsage"]);
        assert!(text.contains("CA:TRUE, pathlen:0") && text.contains("Certificate Sign"), "{text}");
    }
}

#[test]
fn the_bank_serves_https_with_the_files_and_curl_trusts_only_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    let mut bank = e2e_tests::BankServer::start_tls(&db, 0);
    let url = format!("{}/login", bank.url());
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = bank.ca().unwrap().to_owned();
    assert_eq!(ca, dir.path().join("tls").join("ca.pem"));
    if !have("curl") {
        return;
    }
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let out = curl(&["--cacert", ca.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{}", String::from_utf8_lossy(&out.stderr));
    let out = curl(&[]);
    assert_eq!(out.status.code(), Some(60), "without the CA: {}", String::from_utf8_lossy(&out.stderr));
    // By the name localhost too (the default hosts), after a restart with the same files.
    bank.restart();
    let by_name = format!("https://localhost:{}/login", bank.port);
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "--cacert", ca.to_str().unwrap()])
        .arg(&by_name)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{}", String::from_utf8_lossy(&out.stderr));
}

//! Setting up the tests' bridges: `reader-bridge` signs only for the bank pinned with
//! `reader-bridge setup`, so every bridge state directory a test uses is set up here first.
//!
//! This is the one place the tests' bridges learn which bank to trust: when the test bank
//! speaks TLS, [`setup_bridge_for`] passes its CA (`--ca FILE`) to [`setup_bridge`], and every
//! flow that starts from it trusts that CA.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{bin, BankServer};

/// `reader-bridge --state-dir STATE setup --server SERVER [--ca CA]`; panics with the
/// bridge's output unless it succeeded. Returns what it printed.
pub fn setup_bridge(state_dir: &Path, server: &str, ca: Option<&Path>) -> String {
    let mut cmd = Command::new(bin("reader-bridge"));
    cmd.arg("--state-dir").arg(state_dir).args(["setup", "--server", server]);
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    let out = cmd
        .env_remove("PAYSIM_SERVER")
        .env_remove("PAYSIM_CA")
        .env_remove("PAYSIM_BRIDGE_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run reader-bridge setup: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reader-bridge setup --server {server} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The address a bridge uses for `bank`: its public URL (a relay in front of it) or its own.
pub fn bank_address(bank: &BankServer) -> String {
    bank.public_url.clone().unwrap_or_else(|| bank.url())
}

/// Sets `state_dir` up for the test bank `bank` (see [`setup_bridge`]); returns the address.
pub fn setup_bridge_for(state_dir: &Path, bank: &BankServer) -> String {
    let server = bank_address(bank);
    // A bank serving HTTPS made its own CA (`bank-tools tls init`): the bridge trusts it.
    setup_bridge(state_dir, &server, bank.ca());
    server
}

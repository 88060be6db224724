//! The CLI's output to a closed pipe (`reader-bridge … | head -0`): no panic, the SIGPIPE status.

use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_bridge_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // The read end is gone before the bridge starts, so its first line meets EPIPE for sure.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_reader-bridge"))
        .args(["--server", "http://127.0.0.1:9", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("pending")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn the_same_command_prints_normally_to_an_open_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reader-bridge"))
        .args(["--server", "http://127.0.0.1:9", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("pending")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no pending transfers\n");
}

#[test]
fn pending_json_is_one_json_line_even_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_reader-bridge"))
        .args(["--state-dir"])
        .arg(dir.path().join("state"))
        .args(["pending", "--json"])
        .env_remove("PAYSIM_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), serde_json::json!([]));
}

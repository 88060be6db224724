//! The card file's lock across processes: a second `virtual-card` on a running card's file
//! is refused, naming the holder's pid.
//!
//! A test binary of its own: spawning a process copies the parent's file descriptors into the
//! child until it execs, the card-file locks included, so tests in the same process that close
//! and reopen a card file (`state_file.rs`) could find a lock still held by that child.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_applet::state::{create_factory, StoreError};
use card_applet::VirtualCard;
use common::*;

#[cfg(feature = "virtual-card")]
#[test]
fn a_second_process_cannot_run_a_card_that_is_running() {
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    // A stand-in for vpcd: the card opens (and locks) its file before it connects, so the
    // accepted connection means the lock is held.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (connected, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let conn = listener.accept().map(|(s, _)| s);
        let _ = connected.send(conn);
    });
    let mut first = Command::new(env!("CARGO_BIN_EXE_virtual-card"))
        .args(["--state", path.to_str().unwrap(), "--vpcd", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let conn = accepted.recv_timeout(Duration::from_secs(30)).expect("virtual-card did not connect").unwrap();

    let mut second = Command::new(env!("CARGO_BIN_EXE_virtual-card"))
        .args(["--state", path.to_str().unwrap(), "--vpcd", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its standard error ends when it exits; if it ran the card instead, fail (not hang).
    let mut pipe = second.stderr.take().unwrap();
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        let _ = done.send(text);
    });
    let Ok(stderr) = exited.recv_timeout(Duration::from_secs(30)) else {
        let _ = second.kill();
        let _ = first.kill();
        panic!("a second virtual-card ran the same card file");
    };
    assert!(!second.wait().unwrap().success());
    assert!(stderr.contains(&format!("in use by another process (pid {})", first.id())), "{stderr}");

    let err = VirtualCard::open(&path).err().unwrap();
    match &err {
        StoreError::Locked { holder, .. } => assert_eq!(holder.as_deref(), Some(first.id().to_string().as_str())),
        other => panic!("{other}"),
    }
    assert!(create_factory(&path, &ADMIN_KEY).is_err(), "no re-creation under a running card");

    first.kill().unwrap();
    first.wait().unwrap();
    drop(conn);
    // The kernel dropped the dead process's lock.
    VirtualCard::open(&path).unwrap();
}

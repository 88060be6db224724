//! `virtual-card` takes its vpcd slot's lock (`$TMPDIR/paysim-vpcd-slot-N.lock`, the file the
//! end-to-end harness and `scripts/demo.sh` take) and refuses a slot someone else holds,
//! naming the holder from the file, before it connects to vpcd.
//!
//! The test points `TMPDIR` at a directory of its own, so it never touches the real slots'
//! locks, and the refused card exits before reaching for vpcd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "virtual-card")]
#[test]
fn a_held_slot_is_refused_naming_its_holder() {
    use std::io::Write;
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("card.json");
    card_applet::state::create_factory(&state, &[0x42; 32]).unwrap();
    let lock_path = dir.path().join("paysim-vpcd-slot-1.lock");
    let mut held = std::fs::File::options().create(true).truncate(true).write(true).open(&lock_path).unwrap();
    held.lock().unwrap();
    writeln!(held, "pid 4242: e2e tests (a stand-in)").unwrap();

    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_virtual-card"))
            .args(["--state", state.to_str().unwrap(), "--vpcd", "127.0.0.1:35964"])
            .args(extra)
            .env("TMPDIR", dir.path())
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vpcd slot 1 (\"Virtual PCD 00 01\") is in use, held by pid 4242: e2e tests (a stand-in)"),
        "{err}"
    );
    assert!(err.contains(&lock_path.display().to_string()) && err.contains("--vpcd 127.0.0.1:35963"), "{err}");
    assert!(out.stdout.is_empty(), "it must not have connected: {}", String::from_utf8_lossy(&out.stdout));
    // The holder's line is still there: the refused card did not overwrite it.
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), "pid 4242: e2e tests (a stand-in)\n");

    // Another holder (the lock, not the text, decides); one that wrote nothing is named as such.
    drop(held);
    let again = std::fs::File::options().write(true).open(&lock_path).unwrap();
    again.lock().unwrap();
    let out = run(&[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("held by pid 4242"), "stale text is still shown");
    again.set_len(0).unwrap();
    let out = run(&[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("held by a process that did not write its name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The real `bank-server` binary on 127.0.0.1:0, for the tests that kill it and for the HTTP
//! load bench: started with a fresh database path (its master key beside it, as
//! `--master-key-beside-db`, unless the flags name another source), ready once its readiness
//! line is out, killed when dropped. Each user takes the parts it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running `bank-server serve`.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or `https://` with TLS), from the readiness line.
    pub base: String,
}

impl Server {
    /// Starts `bank-server serve --listen 127.0.0.1:0 --db DB` with `extra` flags and waits for
    /// its readiness line. Its error output is shown when `show_errors` (the bench), else
    /// dropped (tests that kill it on purpose).
    pub fn spawn(db: &Path, extra: &[&str], show_errors: bool) -> Server {
        Self::spawn_with_env(db, extra, &[], show_errors)
    }

    /// [`Server::spawn`] with extra environment variables (the crash campaign's
    /// `BANK_CRASH_AT`).
    pub fn spawn_with_env(db: &Path, extra: &[&str], env: &[(&str, &str)], show_errors: bool) -> Server {
        let stderr = if show_errors { Stdio::inherit() } else { Stdio::null() };
        let mut child = Self::command(&[], db, extra, env).stderr(stderr).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        Self::ready(child, &line)
    }

    /// Starts the server as [`Server::spawn_with_env`] does, run through `prefix` (a command
    /// that then runs it: `prlimit …`, `setpriv …`), its error output in `<db dir>/bank-server.log`:
    /// the server once it is ready, or how it ended when it stopped before.
    pub fn try_spawn(prefix: &[&str], db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Server, Refused> {
        let log = Self::log_path(db);
        let file = std::fs::File::create(&log).unwrap();
        let mut child = Self::command(prefix, db, extra, env).stderr(file).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.is_empty() {
            let status = child.wait().unwrap();
            return Err(Refused { status, stderr: std::fs::read_to_string(&log).unwrap_or_default() });
        }
        Ok(Self::ready(child, &line))
    }

    /// Where [`Server::try_spawn`] writes the server's error output.
    pub fn log_path(db: &Path) -> PathBuf {
        db.parent().unwrap_or(Path::new(".")).join("bank-server.log")
    }

    fn ready(child: Child, line: &str) -> Server {
        let base =
            line.trim().strip_prefix("bank-server listening on ").unwrap_or_else(|| panic!("readiness line: {line:?}"));
        assert!(base.starts_with("http") && !base.ends_with(":0"), "{base}");
        Server { base: base.to_owned(), child }
    }

    fn command(prefix: &[&str], db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
        let key: &[&str] =
            if extra.iter().any(|a| a.starts_with("--master-key")) { &[] } else { &["--master-key-beside-db"] };
        let bin = env!("CARGO_BIN_EXE_bank-server");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(key)
            .args(extra)
            .arg("--db")
            .arg(db)
            .env_remove("BANK_MASTER_KEY")
            .envs(env.iter().copied())
            // A crash on purpose may leave a core file: in the test's directory, not the tree.
            .current_dir(db.parent().unwrap_or(Path::new(".")))
            .env("RUST_LOG", "warn")
            // The load these runs make comes from one address and a few users: limits far
            // above it, so the buckets are still counted but never refuse.
            .env("BANK_LIMIT_CHALLENGES_PER_USER", "1000000/1")
            .env("BANK_LIMIT_CHALLENGES_PER_ADDRESS", "1000000/1")
            .env("BANK_LIMIT_CODES_PER_SESSION", "1000000/1")
            .env("BANK_MAX_PENDING_TRANSFERS", "1000000")
            .stdout(Stdio::piped());
        cmd
    }
}

/// A start that ended before the server was ready.
#[derive(Debug)]
pub struct Refused {
    pub status: ExitStatus,
    pub stderr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Network faults between the bridge and the bank: a matrix of step × fault, every cell a test
//! named `net_faults::STEP::FAULT`.
//!
//! The steps are the HTTP requests of the bridge's real commands: `reader-bridge login` makes
//! `POST /login/challenge` then `POST /login`; `reader-bridge transfer` makes `GET /accounts`
//! (its source account), `POST /transfers` and `POST /transfers/{id}/confirm`. The faults are
//! the fault proxy's (`e2e_tests::faultproxy`): the request dropped, the answer dropped after
//! the bank committed, the request duplicated, the answer delayed past the bridge's timeout,
//! a reset after part of the request or of the answer, and the bank restarted (on the same
//! database) while the request is on its way.
//!
//! Each cell runs the command once through the proxy and checks:
//!
//! - the exit code: 37 ("outcome unknown") exactly when a confirmation left the bridge and no
//!   answer came back; 30 ("unreachable") for the other lost exchanges; 31 for a login whose
//!   duplicate the bank refused as a replay; 0 when the fault did not stop the command;
//! - the bank's state over its API and database: the transfer executed at most once (exactly
//!   once when the bank processed the confirmation), the balances moved by that much and the
//!   total conserved, the books balanced;
//! - that the person's retry (the same command again) converges: one login, or the transfer
//!   resumed with the same id and executed exactly once, nothing left pending.

use crate::flow::{api, code, describe, world_unpinned, World};
use e2e_tests::{BankServer as Bank, Fault, FaultProxy, Fired, Plan, Route, WAIT};
use std::process::Stdio;

/// The bridge's requests the matrix faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    LoginChallenge,
    LoginAnswer,
    TransferCreate,
    TransferConfirm,
}

impl Step {
    fn route(self) -> Route {
        match self {
            Step::LoginChallenge => Route::new("POST", "/api/v1/login/challenge"),
            Step::LoginAnswer => Route::new("POST", "/api/v1/login"),
            Step::TransferCreate => Route::new("POST", "/api/v1/transfers"),
            Step::TransferConfirm => Route::new("POST", "/api/v1/transfers/*/confirm"),
        }
    }

    fn is_login(self) -> bool {
        matches!(self, Step::LoginChallenge | Step::LoginAnswer)
    }
}

/// What the bridge must exit with when `fault` hits `step`.
fn expected_exit(step: Step, fault: Fault) -> i32 {
    match fault {
        // The bank is back before the request reaches it: nothing is lost.
        Fault::RestartBank => 0,
        // The second sight of a login code is a replay; of anything else, a retry the bank
        // answers as the first (a re-issued challenge, the already executed transfer).
        Fault::Duplicate if step == Step::LoginAnswer => 31,
        Fault::Duplicate => 0,
        // A confirmation that left and got no answer: the bridge cannot know.
        _ if step == Step::TransferConfirm => 37,
        _ => 30,
    }
}

const AMOUNT: &str = "12.34";
const AMOUNT_MINOR: i64 = 1234;
const ALICE_START: i64 = 100_000;

const TRANSFER: [&str; 10] = [
    "transfer",
    "--to",
    "ACC-BOB-EUR",
    "--amount",
    AMOUNT,
    "--currency",
    "EUR",
    "--payee-name",
    "Bob Example",
    "--yes",
];

/// One cell: a world whose bridge reaches the bank through a fault proxy acting on the first
/// request of `step`.
fn cell(step: Step, fault: Fault) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let mut w = world_unpinned(|db| Bank::start_as(db, 0, Some(&proxy_url)));
    let proxy = FaultProxy::start(listener, w.bank.port, Plan { route: step.route(), nth: 1, fault });
    w.set_up();
    assert_eq!(proxy.url(), w.server);
    if !step.is_login() {
        w.login();
    }

    // A short timeout where the bridge must give up (the delayed answer); elsewhere a long
    // one, so that a slow machine does not turn a fault into a timeout.
    let timeout = if fault == Fault::DelayAnswer { "2" } else { "30" };
    let command: Vec<&str> = if step.is_login() { vec!["login", "--user", "alice"] } else { TRANSFER.to_vec() };
    let args: Vec<&str> = [&["--bank-timeout", timeout][..], &command].concat();
    let (out, fired) = run_through_fault(&mut w, &proxy, &args, fault);

    // The proxy did act on this step (the bridge really makes this request).
    assert!(step.route().matches(fired.request.split(' ').next().unwrap(), fired.request.split(' ').nth(1).unwrap()));
    if fault.bank_processed() && fault != Fault::RestartBank {
        let answer = fired.answer.as_deref().unwrap_or_else(|| panic!("the bank did not answer {fired:?}"));
        assert!(answer.starts_with("HTTP/1.1 2"), "the bank refused the step: {answer}");
    }

    let want = expected_exit(step, fault);
    assert_eq!(code(&out), want, "{step:?} × {fault:?}: {}\nrequests: {:?}", describe(&out), proxy.seen());
    let err = String::from_utf8_lossy(&out.stderr);
    match want {
        37 => assert!(err.contains("is unknown") && err.contains("run the same transfer command again"), "{err}"),
        30 => assert!(err.contains("unreachable"), "{err}"),
        31 => assert!(err.contains("refused the one-time code"), "{err}"),
        _ => {}
    }

    if step.is_login() {
        login_converges(&w, want == 0);
    } else {
        transfer_converges(&w, step, fault, want == 0);
    }
    w.books_ok();
}

/// Runs the bridge with `args` through the proxy; for [`Fault::RestartBank`], restarts the bank
/// while the proxy holds the request. Returns the bridge's output and what the proxy did.
fn run_through_fault(w: &mut World, proxy: &FaultProxy, args: &[&str], fault: Fault) -> (std::process::Output, Fired) {
    use std::io::Write;
    let mut child = w
        .bridge_cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start reader-bridge");
    child.stdin.take().unwrap().write_all(b"1234\n").unwrap();
    let mut held = None;
    if fault == Fault::RestartBank {
        held = Some(proxy.fired.recv_timeout(WAIT).expect("the proxy never held the request"));
        w.bank.restart();
        proxy.resume();
    }
    let out = child.wait_with_output().unwrap();
    let fired = match held {
        Some(f) => f,
        None => proxy.fired.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!("the proxy never saw the step; requests: {:?}\n{}", proxy.seen(), describe(&out))
        }),
    };
    assert_eq!(fired.fault, fault);
    (out, fired)
}

/// After a faulted login: logged in (the command succeeded) or not at all, and a second login
/// works either way.
fn login_converges(w: &World, succeeded: bool) {
    let session = w.state_dir.join("session.json");
    assert_eq!(session.exists(), succeeded, "a failed login must not leave a session");
    if !succeeded {
        w.login();
    }
    let accounts = w.bridge_ok(&["accounts"], "");
    assert!(accounts.contains("ACC-ALICE-EUR") && accounts.contains("1000.00"), "{accounts}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR") + w.balance("bob", "ACC-BOB-EUR"), ALICE_START);
}

/// The transfers the bank holds for alice (over its API, not through the proxy).
fn transfers(w: &World) -> Vec<serde_json::Value> {
    let (status, body) = api(w, "GET", "/transfers", Some(&w.session_token()), None);
    assert_eq!(status, 200, "{body}");
    body["transfers"].as_array().unwrap().clone()
}

fn executed(ts: &[serde_json::Value]) -> Vec<String> {
    ts.iter().filter(|t| t["status"] == "executed").map(|t| t["transfer_id"].as_str().unwrap().to_owned()).collect()
}

/// Checks the bank holds `n` executed transfers of the amount and the balances moved by
/// exactly that much.
fn money_moved(w: &World, n: i64) {
    let ts = transfers(w);
    assert_eq!(i64::try_from(executed(&ts).len()).unwrap(), n, "executed transfers: {ts:?}");
    let (alice, bob) = (w.balance("alice", "ACC-ALICE-EUR"), w.balance("bob", "ACC-BOB-EUR"));
    assert_eq!((alice, bob), (ALICE_START - n * AMOUNT_MINOR, n * AMOUNT_MINOR));
    assert_eq!(alice + bob, ALICE_START, "money conserved");
}

/// After a faulted transfer: executed at most once (exactly once if the bank processed the
/// confirmation, or the command succeeded); the retry with the same id executes it exactly once.
fn transfer_converges(w: &World, step: Step, fault: Fault, succeeded: bool) {
    let processed_confirm = step == Step::TransferConfirm && fault.bank_processed();
    money_moved(w, i64::from(succeeded || processed_confirm));
    let pending = w.bridge_ok(&["pending"], "");
    if succeeded {
        assert_eq!(pending.trim(), "no pending transfers");
        return;
    }
    // Kept for the retry, with the id the bank knows (if it got that far).
    let id = pending.split_whitespace().next().filter(|w| w.starts_with("tx-")).map(str::to_owned);
    let known: Vec<String> = transfers(w).iter().map(|t| t["transfer_id"].as_str().unwrap().to_owned()).collect();

    // The person runs the same command again. Money first: whatever the bridge kept, the
    // transfer must now be executed exactly once.
    let out = w.bridge_ok(&TRANSFER, "1234\n");
    money_moved(w, 1);
    let id = id.unwrap_or_else(|| {
        panic!("the bridge kept no pending record after exit {}: {pending}", expected_exit(step, fault))
    });
    assert!(known.iter().all(|k| *k == id), "the bank holds another transfer than the pending one: {known:?} vs {id}");
    assert!(out.contains(&format!("resuming transfer {id}")), "{out}");
    assert!(out.contains(&format!("transfer {id} executed")), "{out}");
    if processed_confirm {
        assert!(out.contains("had already executed"), "{out}");
    }
    assert_eq!(executed(&transfers(w)), vec![id]);
    assert_eq!(w.bridge_ok(&["pending"], "").trim(), "no pending transfers");
}

/// One `#[test]` per cell, in a module per step: `net_faults::transfer_confirm::drop_answer`.
macro_rules! matrix {
    ($($module:ident => $step:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test]
            fn drop_request() {
                cell($step, Fault::DropRequest)
            }
            #[test]
            fn drop_answer() {
                cell($step, Fault::DropAnswer)
            }
            #[test]
            fn duplicate() {
                cell($step, Fault::Duplicate)
            }
            #[test]
            fn delay_answer_past_the_timeout() {
                cell($step, Fault::DelayAnswer)
            }
            #[test]
            fn reset_mid_request() {
                cell($step, Fault::ResetRequest)
            }
            #[test]
            fn reset_mid_answer() {
                cell($step, Fault::ResetAnswer)
            }
            #[test]
            fn bank_restart_before_it() {
                cell($step, Fault::RestartBank)
            }
            /// Exhaustive: a new fault does not compile until it has a cell here.
            #[allow(dead_code)]
            fn cell_of(fault: Fault) -> fn() {
                match fault {
                    Fault::DropRequest => drop_request,
                    Fault::DropAnswer => drop_answer,
                    Fault::Duplicate => duplicate,
                    Fault::DelayAnswer => delay_answer_past_the_timeout,
                    Fault::ResetRequest => reset_mid_request,
                    Fault::ResetAnswer => reset_mid_answer,
                    Fault::RestartBank => bank_restart_before_it,
                }
            }
        }
    )*};
}

matrix! {
    login_challenge => Step::LoginChallenge,
    login_answer => Step::LoginAnswer,
    transfer_create => Step::TransferCreate,
    transfer_confirm => Step::TransferConfirm,
}

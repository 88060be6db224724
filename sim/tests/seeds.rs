//! The CI version of the seeded simulation: 500 seeds (`SIM_SEEDS` changes the count), each
//! checked after every step; that a seed replays the same run; and that the checks catch a
//! broken invariant (the database altered behind the bank's back).

// A panic is how a test reports here.
#![allow(clippy::expect_used)]

use paysim_sim::{run, run_traced, Rates, World};

const STEPS: u64 = 60;

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(500)
}

#[test]
fn five_hundred_seeds_keep_every_invariant() {
    let n = seeds();
    // Two threads, half the seeds each: the machine has two cores.
    let handles: Vec<_> = (0..2u64)
        .map(|part| {
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut executed = 0;
                let mut faults = 0;
                for seed in (1..=n).filter(|s| s % 2 == part) {
                    match run(seed, STEPS, Rates::default()) {
                        Ok(s) => {
                            executed += s.executed;
                            faults += s.faults;
                        }
                        Err(v) => failures.push(v.to_string()),
                    }
                }
                (failures, executed, faults)
            })
        })
        .collect();
    let mut failures = Vec::new();
    let (mut executed, mut faults) = (0, 0);
    for h in handles {
        let (f, e, k) = h.join().expect("a simulation thread panicked");
        failures.extend(f);
        executed += e;
        faults += k;
    }
    assert!(failures.is_empty(), "{} of {n} seeds failed:\n{}", failures.len(), failures.join("\n"));
    // The runs did something: transfers executed and faults injected.
    assert!(executed > n, "only {executed} transfers executed in {n} seeds");
    assert!(faults > n, "only {faults} faults injected in {n} seeds");
}

#[test]
fn a_seed_replays_the_same_run() {
    let (a, ta) = run_traced(42, STEPS, Rates::default());
    let (b, tb) = run_traced(42, STEPS, Rates::default());
    assert!(a.is_ok() && b.is_ok());
    assert!(ta.len() > STEPS as usize, "the trace has {} lines", ta.len());
    assert_eq!(ta, tb, "seed 42 ran differently the second time");
    let (_, tc) = run_traced(43, STEPS, Rates::default());
    assert_ne!(ta, tc, "seeds 42 and 43 ran the same steps");
}

/// Runs seed 7 for a while, alters the bank's database with `sql` as an intruder or a bug
/// would, and expects the next check to fail naming `expected`.
fn caught(sql: &str, expected: &str) {
    let mut w = World::new(7, Rates::default()).expect("world");
    for _ in 0..40 {
        w.step().expect("seed 7 runs clean");
    }
    let conn = rusqlite::Connection::open(w.bank_path()).expect("open the database");
    let changed = conn.execute(sql, []).expect("alter the database");
    assert!(changed > 0, "{sql} changed nothing");
    drop(conn);
    let v = w.check().expect_err("the check missed the change");
    assert!(v.what.contains(expected), "{sql}: the check said {:?}, expected {expected:?}", v.what);
}

#[test]
fn the_checks_catch_money_made_from_nothing() {
    caught("UPDATE accounts SET balance = balance + 1 WHERE number = 'SIM-ALICE-EUR'", "sum to 1");
}

#[test]
fn the_checks_catch_money_moved_without_a_transfer() {
    caught(
        "UPDATE accounts SET balance = balance + CASE number WHEN 'SIM-ALICE-EUR' THEN 5 ELSE -5 END
         WHERE number IN ('SIM-ALICE-EUR', 'SIM-BOB-EUR')",
        "transfers say",
    );
}

#[test]
fn the_checks_catch_a_counter_moved_back() {
    caught("UPDATE tokens SET next_counter = 0 WHERE next_counter > 0 AND serial = 'PSIM-SIM-0000'", "went back");
}

#[test]
fn the_checks_catch_a_transfer_executed_without_its_postings() {
    caught("UPDATE transfers SET status = 'executed' WHERE status = 'pending'", "journal entries");
}

//! `paysim-sim`: runs the seeded simulation (see the library's documentation).
//!
//! ```text
//! paysim-sim [--seeds N] [--from S] [--steps K]   N seeds from S (default 500 from 1, 200 steps)
//! paysim-sim --seed S [--steps K] --trace        one seed, every step printed
//! ```

use std::process::ExitCode;

fn usage(why: &str) -> ExitCode {
    eprintln!("paysim-sim: {why}");
    eprintln!("usage: paysim-sim [--seeds N] [--from S] [--steps K] | --seed S [--steps K] [--trace]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut seeds, mut from, mut steps, mut one, mut trace) = (500u64, 1u64, 200u64, None, false);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{name} needs a number"))?;
            v.parse().map_err(|_| format!("{name}: {v:?} is not a whole number"))
        };
        let r = match a.as_str() {
            "--seeds" => num("--seeds").map(|n| seeds = n),
            "--from" => num("--from").map(|n| from = n),
            "--steps" => num("--steps").map(|n| steps = n),
            "--seed" => num("--seed").map(|n| one = Some(n)),
            "--trace" => {
                trace = true;
                Ok(())
            }
            "-h" | "--help" => return usage("a seeded simulation of card, bridge and bank under faults"),
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(why) = r {
            return usage(&why);
        }
    }
    let rates = paysim_sim::Rates::default();
    if let Some(seed) = one {
        let (r, lines) = paysim_sim::run_traced(seed, steps, rates);
        if trace {
            for l in &lines {
                println!("{l}");
            }
        }
        return match r {
            Ok(s) => {
                println!("seed {seed}: ok, {s:?}");
                ExitCode::SUCCESS
            }
            Err(v) => {
                eprintln!("{v}");
                ExitCode::FAILURE
            }
        };
    }
    let started = std::time::Instant::now();
    let mut total = paysim_sim::Summary::default();
    let mut failed = 0u64;
    for seed in from..from.saturating_add(seeds) {
        match paysim_sim::run(seed, steps, rates) {
            Ok(s) => {
                total.steps += s.steps;
                total.faults += s.faults;
                total.attacks += s.attacks;
                total.logins += s.logins;
                total.executed += s.executed;
                total.bank_restarts += s.bank_restarts;
                total.checks += s.checks;
            }
            Err(v) => {
                failed += 1;
                eprintln!("{v}\n");
            }
        }
    }
    println!(
        "{seeds} seeds from {from}, {steps} steps each: {} steps, {} faults injected, {} attacks, {} logins, {} transfers executed, {} bank restarts, {} invariant checks; {failed} seeds failed; {:.0} s",
        total.steps,
        total.faults,
        total.attacks,
        total.logins,
        total.executed,
        total.bank_restarts,
        total.checks,
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

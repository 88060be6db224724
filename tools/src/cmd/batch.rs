//! `bank-tools card personalize --batch FILE.csv`: many cards in one run, with a progress bar
//! on standard error and one result line per card on standard output. The CSV columns are
//! documented in `tools::batch` and docs/tools.md.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use tools::batch::{self, Event};

/// Personalizes every card listed in `file`; exits non-zero at the end if any failed.
pub fn run(file: &Path, swap_wait: Duration) -> anyhow::Result<()> {
    let cards = batch::load(file)?;
    let total = cards.len();
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:32} {pos}/{len} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    // Lines go to stdout with the bar lifted, so they never mix with it (and still print when
    // stderr is not a terminal and the bar is hidden).
    let say = |line: String| bar.suspend(|| println!("{line}"));
    let note = |line: String| bar.suspend(|| eprintln!("{line}"));
    let results = batch::run(&cards, swap_wait, |ev| {
        match ev {
        Event::Swap { card, previous_line } => note(format!(
            "bank-tools: take the card of line {previous_line} out of {:?} and put in the card for {} (line {}); waiting up to {}s",
            card.reader,
            card.job.serial,
            card.line,
            swap_wait.as_secs()
        )),
        Event::Start { card, .. } => bar.set_message(format!("{} in {:?}", card.job.serial, card.reader)),
        Event::Done { index, card, result } => {
            let n = index + 1;
            match result {
                Ok(done) => {
                    let was = match &done.previous_serial {
                        Some(old) => format!(" (was {old}; its old chain is wiped)"),
                        None => String::new(),
                    };
                    say(format!(
                        "[{n}/{total}] ok    {} in {:?} -> {}{was}",
                        card.job.serial,
                        card.reader,
                        card.out.display()
                    ));
                }
                Err(e) => say(format!(
                    "[{n}/{total}] FAIL  {} in {:?} (line {}): {}",
                    card.job.serial,
                    card.reader,
                    card.line,
                    chain(e)
                )),
            }
            bar.inc(1);
        }
    }
    });
    bar.finish_and_clear();
    let failed: Vec<String> = cards
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_err())
        .map(|(c, _)| format!("{} (line {})", c.job.serial, c.line))
        .collect();
    let ok = total - failed.len();
    if failed.is_empty() {
        println!("batch {}: all {total} cards personalized", file.display());
        Ok(())
    } else {
        println!("batch {}: {ok} of {total} cards personalized, {} failed", file.display(), failed.len());
        bail!(
            "{} of {total} cards failed: {}; fix them and run a batch file with only those rows",
            failed.len(),
            failed.join(", ")
        )
    }
}

/// An error with its causes, "outer: inner", skipping a cause the message already shows.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

//! A seeded, deterministic simulation of the whole system in one process (issue 12, item 3).
//!
//! Three customers, each with a PAYSIM card (the real card core on a store that tears on
//! command, reached through the bridge's own card layer), log in and pay each other through
//! the real bank (its router, use cases and SQLite file, on a hand-driven clock). A seeded
//! scheduler picks every step, every fault and every attack:
//!
//! - **card**: a write torn at the 1st, 2nd or 3rd commit of an exchange (the write lost, or
//!   landed and unreported), then the card's power cycled; a power cycle between steps;
//! - **network**: a request dropped, an answer dropped after the bank acted, a request
//!   duplicated;
//! - **storage**: an I/O error at a batch's `COMMIT` (the bank answers 503), the power lost
//!   before the `COMMIT` or after it (no answer; the bank starts again on its file), the bank
//!   restarted between steps;
//! - **clock**: seconds, past a challenge's life, past a session's idle time, past a lock;
//! - **attacks**: a code the card made for other transfer fields (amount, payee, payee's name,
//!   verifier id), a login code sent to confirm a transfer, an accepted code replayed, a wrong
//!   code guessed; a transfer id reused with the same fields and with others.
//!
//! After every step [`World::check`] reads the bank's database and the cards' memories and
//! fails the run at the first broken invariant, with the step's trace: money conserved per
//! currency, no customer balance below zero, every balance equal to its funding and its
//! executed transfers, one journal entry per executed transfer, nothing executed without an
//! honest code for its exact fields, every acknowledged transfer executed once, no counter
//! accepted twice, the bank's counter never moving back and never ahead of the card's, a valid
//! code never refused, and the lock after exactly five evaluated failures in a row.
//!
//! The bank draws its challenges and ids from the operating system, so their bytes differ
//! between two runs of a seed; no decision of the simulation depends on them, so a seed replays
//! the same steps, faults and outcomes (`cargo run -p paysim-sim --release -- --seed N --trace`).

pub mod bank;
pub mod card;
pub mod rng;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use bank_server::writer::StorageFault;
use card_applet::host::{self, admin::AdminSession, admin::Personalization};
use card_applet::state::CardState;
use card_link::MemCard;
use paysim_otp::ChainKey;
use paysim_wire::api::{LoginChallenge, LoginOk, TransferChallenge, TransferEnvelope};
use reader_bridge::apdu::Pin;
use reader_bridge::card::PaysimCard;
use serde_json::{json, Value};

use crate::bank::{Answer, Net, SimBank, URL};
use crate::card::{Armed, SimLink, Tear};
use crate::rng::Rng;

/// How often each fault strikes, per mille of the occasions it could.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub drop_request: u64,
    pub drop_answer: u64,
    pub duplicate: u64,
    pub io_error: u64,
    pub power_before_commit: u64,
    pub power_after_commit: u64,
    pub card_tear: u64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            drop_request: 40,
            drop_answer: 40,
            duplicate: 30,
            io_error: 20,
            power_before_commit: 20,
            power_after_commit: 20,
            card_tear: 50,
        }
    }
}

const PIN: &str = "2468";
const PUK: &str = "13572468";
const OPENING: i64 = 100_000;
/// 2030-03-17: the simulated clock starts here, after any real enrollment time.
const START: i64 = 1_900_000_000;
const CUSTOMERS: [(&str, &str, &str); 3] = [
    ("alice", "SIM-ALICE-EUR", "Alice Liddell"),
    ("bob", "SIM-BOB-EUR", "Bob Marley"),
    ("carol", "SIM-CAROL-EUR", "Carol Danvers"),
];

/// What a run did, for the campaign's figures.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub steps: u64,
    pub faults: u64,
    pub attacks: u64,
    pub logins: u64,
    pub executed: u64,
    pub bank_restarts: u64,
    pub checks: u64,
}

/// A broken invariant (or a failure of the simulation itself), with where it happened.
#[derive(Clone, Debug)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub what: String,
    pub trace: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} step {}: {}", self.seed, self.step, self.what)?;
        writeln!(f, "replay: cargo run -p paysim-sim --release -- --seed {} --trace", self.seed)?;
        write!(f, "last steps:\n{}", self.trace)
    }
}

struct Customer {
    user: &'static str,
    account: &'static str,
    serial: String,
    card: PaysimCard<SimLink>,
    session: Option<String>,
    /// Counters of this card's codes the bank was heard to accept, in order.
    accepted: Vec<u64>,
    /// The last accepted login code, for replays.
    last_code: Option<(u64, String)>,
    /// Consecutive evaluated failures the bank should count, while every answer was heard.
    failures: Option<i64>,
    /// Transfer ids started and not known to be settled.
    open: Vec<String>,
    /// Torn card writes since the card last made a code: each may have spent a PIN try
    /// (the card counts the try before it compares, so a power cut cannot hide a guess).
    torn_since_code: u8,
}

/// A transfer as the customer asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Asked {
    to: &'static str,
    amount: u64,
}

pub struct World {
    seed: u64,
    rng: Rng,
    rates: Rates,
    bank: SimBank,
    customers: Vec<Customer>,
    /// Every transfer id started: (user, id) → fields.
    asked: HashMap<(String, String), Asked>,
    /// Ids for which an honest code over the exact fields was sent (heard or not).
    honest: HashSet<(String, String)>,
    /// Ids the bank was heard to hold (a challenge or a settled transfer came back).
    created: HashSet<(String, String)>,
    /// Ids the bank was heard to report executed.
    acked: HashSet<(String, String)>,
    /// The bank's next counter per serial at the last check.
    bank_counter: HashMap<String, u64>,
    next_id: u64,
    pin: Pin,
    puk: reader_bridge::apdu::Puk,
    /// What the network did to the last request.
    last_net: Net,
    step: u64,
    trace: Vec<String>,
    pub summary: Summary,
}

fn sim_err(what: impl std::fmt::Display) -> String {
    what.to_string()
}

/// A card personalized through the real admin protocol, and its memory as it left the factory.
fn personalized(seed: &[u8; 32], serial: &str) -> Result<CardState, String> {
    let card = MemCard::factory(&MemCard::ADMIN_KEY);
    let mut session = AdminSession::new(&MemCard::ADMIN_KEY).map_err(sim_err)?;
    let p = Personalization { seed, pin: PIN, puk: PUK, serial };
    card.with_front(|front| -> Result<(), String> {
        let mut send = |apdu: &[u8]| Ok::<_, std::convert::Infallible>(front.process(apdu));
        let selected = host::transceive(&host::select(), &mut send).unwrap_or_default();
        host::parse_select(&selected).map_err(sim_err)?;
        let challenge = host::transceive(&AdminSession::get_challenge(), &mut send).unwrap_or_default();
        let auth = session.external_authenticate(&challenge).map_err(sim_err)?;
        session.check_authenticated(&host::transceive(&auth, &mut send).unwrap_or_default()).map_err(sim_err)?;
        let cmd = session.personalize(&p).map_err(sim_err)?;
        session.check_personalized(&host::transceive(&cmd, &mut send).unwrap_or_default()).map_err(sim_err)?;
        Ok(())
    })?;
    card.with_front(|f| f.card().store().committed.clone()).ok_or_else(|| "personalization left no state".to_owned())
}

/// The bank's database and key after the operator's steps, and the cards as personalized:
/// made once per process (personalization and enrollment cost more than a short run), copied
/// for every seed. Every seed runs on the same chain seeds; the schedule is what varies.
struct Template {
    db: Vec<u8>,
    key: Vec<u8>,
    cards: Vec<(String, CardState)>,
}

fn template() -> Result<&'static Template, String> {
    static TEMPLATE: std::sync::OnceLock<Result<Template, String>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(make_template).as_ref().map_err(Clone::clone)
}

fn make_template() -> Result<Template, String> {
    let mut rng = Rng::new(0x005E_ED0F_CA5D);
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let path = dir.path().join("bank.sqlite3");
    let mut cards = Vec::new();
    for (i, (user, account, holder)) in CUSTOMERS.iter().enumerate() {
        let mut chain_seed = [0u8; 32];
        rng.fill(&mut chain_seed);
        let serial = format!("PSIM-SIM-{i:04}");
        cards.push((serial.clone(), personalized(&chain_seed, &serial)?));
        bank_server::ops::add_user(&path, user).map_err(sim_err)?;
        bank_server::ops::enroll_token(&path, &serial, &ChainKey::from_bytes(chain_seed), 0, user).map_err(sim_err)?;
        bank_server::ops::open_account(&path, user, account, "EUR", Some(holder)).map_err(sim_err)?;
        bank_server::ops::fund(&path, account, OPENING as u64, "opening").map_err(sim_err)?;
    }
    // Everything in the main file, nothing left in a -wal, so one file is the whole database.
    bank_server::db::checkpoint_all(&path).map_err(sim_err)?;
    let db = std::fs::read(&path).map_err(|e| format!("read the template database: {e}"))?;
    let key = std::fs::read(bank_server::master_key::key_path(&path)).map_err(|e| format!("read the key: {e}"))?;
    Ok(Template { db, key, cards })
}

/// Writes a file only its owner can read, as the bank wants its database and key.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// What a step of a customer's bridge heard from the card.
enum CardResult {
    Code(u64, String),
    /// A write was torn (the card's power then cycled) or the card refused.
    Failed,
}

impl World {
    /// A bank with three customers, each with a card, an account and an opening balance.
    pub fn new(seed: u64, rates: Rates) -> Result<World, String> {
        let mut rng = Rng::new(seed);
        let template = template()?;
        let bank = SimBank::new(START, |path| {
            write_private(path, &template.db)?;
            write_private(&bank_server::master_key::key_path(path), &template.key)
        })?;
        let cards: Vec<(String, SimLink)> = template
            .cards
            .iter()
            .enumerate()
            .map(|(i, (serial, state))| {
                (serial.clone(), SimLink::new(state.clone(), rng.split(), &format!("sim reader {i}")))
            })
            .collect();
        let customers = CUSTOMERS
            .iter()
            .zip(cards)
            .map(|((user, account, _), (serial, link))| Customer {
                user,
                account,
                serial,
                card: PaysimCard::new(link),
                session: None,
                accepted: Vec::new(),
                last_code: None,
                failures: Some(0),
                open: Vec::new(),
                torn_since_code: 0,
            })
            .collect();
        Ok(World {
            seed,
            rng,
            rates,
            bank,
            customers,
            asked: HashMap::new(),
            honest: HashSet::new(),
            created: HashSet::new(),
            acked: HashSet::new(),
            bank_counter: HashMap::new(),
            next_id: 0,
            pin: Pin::new(PIN).map_err(sim_err)?,
            puk: reader_bridge::apdu::Puk::new(PUK).map_err(sim_err)?,
            last_net: Net::Clean,
            step: 0,
            trace: Vec::new(),
            summary: Summary::default(),
        })
    }

    fn note(&mut self, line: String) {
        self.trace.push(format!("[{}] {line}", self.step));
        if self.trace.len() > 400 {
            self.trace.drain(..100);
        }
    }

    fn violation(&self, what: String) -> Violation {
        let tail = self.trace.iter().rev().take(40).rev().fold(String::new(), |mut s, l| {
            let _ = writeln!(s, "  {l}");
            s
        });
        Violation { seed: self.seed, step: self.step, what, trace: tail }
    }

    /// The bank's database file (tests alter it to see the checks fail).
    pub fn bank_path(&self) -> &std::path::Path {
        self.bank.path()
    }

    /// The trace of the whole run so far.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    fn net(&mut self) -> (Net, Option<StorageFault>) {
        let r = self.rates;
        let net = if self.rng.chance(r.drop_request) {
            Net::DropRequest
        } else if self.rng.chance(r.drop_answer) {
            Net::DropAnswer
        } else if self.rng.chance(r.duplicate) {
            Net::Duplicate
        } else {
            Net::Clean
        };
        let storage = if self.rng.chance(r.io_error) {
            Some(StorageFault::IoError)
        } else if self.rng.chance(r.power_before_commit) {
            Some(StorageFault::PowerLossBeforeCommit)
        } else if self.rng.chance(r.power_after_commit) {
            Some(StorageFault::PowerLossAfterCommit)
        } else {
            None
        };
        if net != Net::Clean || storage.is_some() {
            self.summary.faults += 1;
        }
        (net, storage)
    }

    /// One request with the faults the seed chooses for it.
    fn call(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Result<Answer, String> {
        let (net, storage) = self.net();
        self.last_net = net;
        let before = self.bank.restarts;
        let answer = self.bank.call(method, path, token, body, net, storage)?;
        let heard = match &answer {
            Answer::Got(status, v) => format!("{status} {}", v.get("error").and_then(Value::as_str).unwrap_or("")),
            Answer::Lost => "lost".to_owned(),
        };
        let restarted = if self.bank.restarts > before { " (bank restarted)" } else { "" };
        self.note(format!("  {method} {path} net={net:?} storage={storage:?} -> {heard}{restarted}"));
        Ok(answer)
    }

    /// Arms a card tear as the seed chooses.
    fn maybe_tear(&mut self, c: usize) {
        if self.rng.chance(self.rates.card_tear) {
            let nth = u8::try_from(1 + self.rng.below(3)).unwrap_or(1);
            let how = if self.rng.chance(500) { Tear::Lost } else { Tear::Landed };
            self.customers[c].card.link_mut().arm(Armed { nth, how });
            self.summary.faults += 1;
            self.note(format!("  card {c}: tear armed at commit {nth} ({how:?})"));
        }
    }

    /// After a card exchange: a fired tear cycles the card's power.
    fn after_card(&mut self, c: usize) -> bool {
        let link = self.customers[c].card.link_mut();
        match link.take_fired() {
            Some(how) => {
                link.power_cycle();
                self.customers[c].torn_since_code = self.customers[c].torn_since_code.saturating_add(1);
                self.note(format!("  card {c}: write torn ({how:?}), power cycled"));
                true
            }
            None => false,
        }
    }

    /// A PIN blocked by torn writes (three power cuts inside VERIFY) is unblocked with the
    /// PUK, as its owner would.
    fn unblock_if_needed(&mut self, c: usize) {
        if self.customers[c].card.link_mut().pin_tries() == Some(0) {
            let r = self.customers[c].card.unblock(&self.puk, &self.pin);
            self.after_card(c);
            self.note(format!("  card {c}: PIN blocked by tears, unblocked with the PUK: {r:?}"));
        }
    }

    fn login_code(&mut self, c: usize, challenge: &[u8]) -> CardResult {
        let vid = bank_vid();
        self.card_code(c, |card, pin| card.login_otp(pin, challenge, &vid))
    }

    fn tx_code(&mut self, c: usize, challenge: &[u8], f: &paysim_otp::TxFields<'_>) -> CardResult {
        self.card_code(c, |card, pin| card.tx_otp(pin, challenge, f))
    }

    /// One PIN exchange of customer `c`'s card through the bridge's card layer, with a tear
    /// armed as the seed chooses; a torn exchange yields no code.
    fn card_code(
        &mut self,
        c: usize,
        exchange: impl FnOnce(&mut PaysimCard<SimLink>, &Pin) -> reader_bridge::Result<reader_bridge::apdu::CardOtp>,
    ) -> CardResult {
        self.unblock_if_needed(c);
        self.maybe_tear(c);
        let r = exchange(&mut self.customers[c].card, &self.pin);
        let torn = self.after_card(c);
        match r {
            Ok(code) if !torn => {
                self.customers[c].torn_since_code = 0;
                CardResult::Code(code.counter, code.otp.as_str().to_owned())
            }
            Ok(_) => CardResult::Failed,
            Err(e) => {
                self.note(format!("  card {c}: {e}"));
                CardResult::Failed
            }
        }
    }

    /// The token's row as the bank holds it: next counter, failures, locked until.
    fn token_row(&self, serial: &str) -> Result<(u64, i64, i64), String> {
        let conn = self.bank.reader()?;
        conn.query_row("SELECT next_counter, failures, locked_until FROM tokens WHERE serial = ?1", [serial], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?))
        })
        .map(|(n, f, l)| (u64::try_from(n).unwrap_or(0), f, l))
        .map_err(|e| format!("read token {serial}: {e}"))
    }

    /// Books a code's answer: `accepted` heard, refused heard, or unknown. `fresh` when the
    /// code went to a challenge issued in this step (so the bank evaluates it); `honest` when
    /// the card made it for exactly this challenge and context.
    fn booked(
        &mut self,
        c: usize,
        counter: u64,
        heard: Option<bool>,
        fresh: bool,
        honest: bool,
        before: (u64, i64, i64),
    ) -> Result<(), Violation> {
        let now = self.bank.clock.now();
        let locked_before = before.2 > now;
        // A duplicated request ran twice: a refusal heard may be the second copy's.
        let heard = if self.last_net == Net::Duplicate && heard == Some(false) { None } else { heard };
        match heard {
            Some(true) => {
                if !honest {
                    return Err(self.violation(format!(
                        "customer {c}: the bank accepted a code not made for this context (counter {counter})"
                    )));
                }
                if let Some(&last) = self.customers[c].accepted.last() {
                    if counter <= last {
                        return Err(self.violation(format!("customer {c}: counter {counter} accepted after {last}")));
                    }
                }
                self.customers[c].accepted.push(counter);
                self.customers[c].failures = Some(0);
            }
            Some(false) => {
                let in_window = counter >= before.0 && counter < before.0 + bank_server::auth::WINDOW;
                if honest && fresh && in_window && !locked_before {
                    return Err(self.violation(format!(
                        "customer {c}: a valid code (counter {counter}, bank at {}) was refused",
                        before.0
                    )));
                }
                if fresh && !locked_before {
                    if let Some(f) = self.customers[c].failures.as_mut() {
                        *f += 1;
                    }
                } else {
                    self.customers[c].failures = None;
                }
            }
            None => self.customers[c].failures = None,
        }
        // The lock after exactly five evaluated failures in a row.
        if let Some(f) = self.customers[c].failures {
            let serial = self.customers[c].serial.clone();
            let (_, failures, locked_until) = self.token_row(&serial).map_err(|e| self.violation(e))?;
            if f == bank_server::auth::MAX_FAILURES {
                if locked_until <= now || failures != 0 {
                    return Err(self.violation(format!(
                        "customer {c}: five failures in a row did not lock the token (failures {failures}, locked until {locked_until}, now {now})"
                    )));
                }
                self.note(format!("  customer {c}: locked until {locked_until}"));
                self.customers[c].failures = Some(0);
            } else if failures != f {
                return Err(self.violation(format!(
                    "customer {c}: the bank counts {failures} failures in a row, the simulation {f}"
                )));
            } else if heard == Some(false) && !locked_before && locked_until > now {
                return Err(self.violation(format!("customer {c}: locked after {f} failures, before the fifth")));
            }
        }
        Ok(())
    }

    fn log_in(&mut self, c: usize, attack: Option<LoginAttack>) -> Result<(), Violation> {
        let user = self.customers[c].user;
        self.note(format!(
            "customer {c} ({user}): log in{}",
            attack.map(|a| format!(" with {a:?}")).unwrap_or_default()
        ));
        let a = self
            .call("POST", "/api/v1/login/challenge", None, Some(&json!({ "user": user })))
            .map_err(|e| self.violation(e))?;
        let Answer::Got(201 | 200, v) = a else { return Ok(()) };
        let ch: LoginChallenge =
            serde_json::from_value(v).map_err(|e| self.violation(format!("login challenge: {e}")))?;
        let serial = self.customers[c].serial.clone();
        let before = self.token_row(&serial).map_err(|e| self.violation(e))?;
        if before.2 > self.bank.clock.now() && attack.is_none() && !self.rng.chance(300) {
            self.note(format!("  customer {c}: the token is locked; waits"));
            return Ok(());
        }
        let (counter, otp, honest) = match attack {
            None => match self.login_code(c, ch.challenge.as_bytes()) {
                CardResult::Code(n, otp) => (n, otp, true),
                CardResult::Failed => return Ok(()),
            },
            Some(LoginAttack::Replay) => match self.customers[c].last_code.clone() {
                Some((n, otp)) => (n, otp, false),
                None => return Ok(()),
            },
            Some(LoginAttack::Guess) => {
                let guess = format!("{:08}", self.rng.below(100_000_000));
                (before.0, guess, false)
            }
        };
        let body = json!({ "challenge_id": ch.challenge_id, "counter": counter, "otp": otp });
        let a = self.call("POST", "/api/v1/login", None, Some(&body)).map_err(|e| self.violation(e))?;
        let heard = match &a {
            Answer::Got(200, v) => {
                let ok: LoginOk =
                    serde_json::from_value(v.clone()).map_err(|e| self.violation(format!("login: {e}")))?;
                self.customers[c].session = Some(ok.token.as_str().to_owned());
                self.summary.logins += 1;
                Some(true)
            }
            Answer::Got(401, _) => Some(false),
            Answer::Got(503, v) if is_storage(v) => None,
            Answer::Got(s, v) => return Err(self.violation(format!("login answered {s} {v}"))),
            Answer::Lost => None,
        };
        // A guess may be right by chance (1 in 10^8): then it is an honest code.
        let honest = honest || (attack == Some(LoginAttack::Guess) && heard == Some(true));
        if heard == Some(true) && honest {
            self.customers[c].last_code = Some((counter, otp));
        }
        // A 503 did nothing: the failure count stays as it was (checked below).
        let storage_refused = matches!(&a, Answer::Got(503, _));
        if storage_refused {
            let after = self.token_row(&serial).map_err(|e| self.violation(e))?;
            if after != before {
                return Err(self.violation(format!(
                    "customer {c}: a login refused with 503 changed the token ({before:?} -> {after:?})"
                )));
            }
            if let Some(f) = self.customers[c].failures {
                self.customers[c].failures = Some(f);
            }
            return Ok(());
        }
        self.booked(c, counter, heard, true, honest, before)
    }

    fn pay(&mut self, c: usize, attack: Option<TxAttack>) -> Result<(), Violation> {
        let Some(token) = self.customers[c].session.clone() else { return self.log_in(c, None) };
        let user = self.customers[c].user;
        // A transfer id: a new one, an open one again, or a settled one again.
        let reuse = if !self.customers[c].open.is_empty() && self.rng.chance(300) {
            let i = self.rng.index(self.customers[c].open.len());
            Some(self.customers[c].open[i].clone())
        } else if self.rng.chance(60) {
            let done: Vec<String> = self.acked.iter().filter(|(u, _)| u == user).map(|(_, id)| id.clone()).collect();
            if done.is_empty() {
                None
            } else {
                let mut done = done;
                done.sort();
                Some(done[self.rng.index(done.len())].clone())
            }
        } else {
            None
        };
        let (id, asked) = match reuse {
            Some(id) => {
                let asked = self.asked[&(user.to_owned(), id.clone())].clone();
                (id, asked)
            }
            None => {
                self.next_id += 1;
                let id = format!("sim-{}-{}", self.seed % 10_000, self.next_id);
                let mut to = c;
                while to == c {
                    to = self.rng.index(self.customers.len());
                }
                let amount = 1 + self.rng.below(40_000);
                let asked = Asked { to: self.customers[to].account, amount };
                self.asked.insert((user.to_owned(), id.clone()), asked.clone());
                self.customers[c].open.push(id.clone());
                (id, asked)
            }
        };
        // Now and then the same id with other fields: the bank must refuse it as a conflict.
        let conflicting = self.rng.chance(40) && self.created.contains(&(user.to_owned(), id.clone()));
        let amount = if conflicting { asked.amount + 1 } else { asked.amount };
        let payee = CUSTOMERS.iter().find(|(_, a, _)| *a == asked.to).map(|(_, _, h)| *h).unwrap_or("?");
        self.note(format!(
            "customer {c} ({user}): pay {amount} to {} as {id}{}{}",
            asked.to,
            if conflicting { " (conflicting fields)" } else { "" },
            attack.map(|a| format!(" with {a:?}")).unwrap_or_default()
        ));
        let body = json!({
            "transfer_id": id, "from": self.customers[c].account, "to": asked.to,
            "amount_minor": amount, "currency": "EUR", "payee_name": payee,
        });
        let a = self.call("POST", "/api/v1/transfers", Some(&token), Some(&body)).map_err(|e| self.violation(e))?;
        let ch: TransferChallenge = match a {
            Answer::Got(201, v) => {
                self.created.insert((user.to_owned(), id.clone()));
                serde_json::from_value(v).map_err(|e| self.violation(format!("transfer challenge: {e}")))?
            }
            Answer::Got(200, _) | Answer::Got(409, _) if conflicting => {
                self.note(format!("  {id}: other fields under a used id refused"));
                return Ok(());
            }
            Answer::Got(200, v) => {
                self.created.insert((user.to_owned(), id.clone()));
                let t: TransferEnvelope =
                    serde_json::from_value(v).map_err(|e| self.violation(format!("settled: {e}")))?;
                self.note(format!("  {id}: already {}", t.transfer.status.as_str()));
                self.settled(c, &id, t.transfer.status.as_str());
                return Ok(());
            }
            Answer::Got(401, _) => {
                self.customers[c].session = None;
                return Ok(());
            }
            Answer::Got(409 | 422 | 503 | 403, _) | Answer::Lost => return Ok(()),
            Answer::Got(s, v) => return Err(self.violation(format!("create answered {s} {v}"))),
        };
        if conflicting {
            return Err(self.violation(format!("{id}: other fields under a used id got a challenge")));
        }
        let vid = bank_vid();
        let s = &ch.sign;
        if s.transaction_id.as_str() != id || s.amount_minor != amount || s.payee.as_str() != asked.to {
            return Err(self.violation(format!("{id}: the bank asks to sign other fields: {s:?}")));
        }
        // The fields the card signs: the bank's own, or altered by an attack.
        let (mut f_amount, mut f_payee, mut f_name, mut f_vid) =
            (s.amount_minor, s.payee.as_str().to_owned(), s.payee_name.as_str().to_owned(), vid.clone());
        match attack {
            Some(TxAttack::Amount) => f_amount += 1 + self.rng.below(1000),
            Some(TxAttack::Payee) => f_payee = self.customers[c].account.to_owned(),
            Some(TxAttack::PayeeName) => f_name.push('x'),
            Some(TxAttack::VerifierId) => f_vid = "https://bank.sim.example.evil:443".to_owned(),
            Some(TxAttack::LoginCode) | None => {}
        }
        let fields = paysim_otp::TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: f_vid.as_bytes(),
            transaction_id: s.transaction_id.as_str().as_bytes(),
            amount_minor: f_amount,
            currency: s.currency.as_bytes(),
            source: s.source.as_str().as_bytes(),
            payee: f_payee.as_bytes(),
            payee_name: f_name.as_bytes(),
        };
        let challenge = ch.challenge.as_bytes().to_vec();
        let code = if attack == Some(TxAttack::LoginCode) {
            self.login_code(c, &challenge)
        } else {
            self.tx_code(c, &challenge, &fields)
        };
        let CardResult::Code(counter, otp) = code else { return Ok(()) };
        let honest = attack.is_none();
        let key = (user.to_owned(), id.clone());
        if honest {
            self.honest.insert(key.clone());
        }
        let serial = self.customers[c].serial.clone();
        let before = self.token_row(&serial).map_err(|e| self.violation(e))?;
        let body = json!({ "challenge_id": ch.challenge_id, "counter": counter, "otp": otp });
        let path = format!("/api/v1/transfers/{id}/confirm");
        let a = self.call("POST", &path, Some(&token), Some(&body)).map_err(|e| self.violation(e))?;
        let heard = match &a {
            Answer::Got(200, v) => {
                let t: TransferEnvelope =
                    serde_json::from_value(v.clone()).map_err(|e| self.violation(format!("confirm: {e}")))?;
                let status = t.transfer.status.as_str().to_owned();
                self.note(format!("  {id}: {status}"));
                self.settled(c, &id, &status);
                Some(true)
            }
            Answer::Got(401, v) if v.get("error").and_then(Value::as_str) == Some("unauthenticated") => {
                self.customers[c].session = None;
                return Ok(());
            }
            Answer::Got(401, _) => Some(false),
            Answer::Got(503, v) if is_storage(v) => {
                let after = self.token_row(&serial).map_err(|e| self.violation(e))?;
                if after != before || self.executed(user, &id).map_err(|e| self.violation(e))? {
                    return Err(self.violation(format!("{id}: a confirmation refused with 503 did something")));
                }
                return Ok(());
            }
            Answer::Got(409 | 422 | 403, _) => {
                // The code may have been evaluated before the refusal (a right code, then too
                // little money), or a duplicated confirmation's first copy refused (and the
                // transfer ended: the second hears `transfer_ended`): the count is unknown.
                self.customers[c].failures = None;
                return Ok(());
            }
            Answer::Got(s, v) => return Err(self.violation(format!("confirm answered {s} {v}"))),
            Answer::Lost => None,
        };
        if heard == Some(true) {
            self.summary.executed += 1;
        }
        self.booked(c, counter, heard, true, honest, before)
    }

    fn settled(&mut self, c: usize, id: &str, status: &str) {
        if status != "pending" {
            self.customers[c].open.retain(|o| o != id);
        }
        if status == "executed" {
            self.acked.insert((self.customers[c].user.to_owned(), id.to_owned()));
        }
    }

    fn executed(&self, user: &str, id: &str) -> Result<bool, String> {
        let conn = self.bank.reader()?;
        conn.query_row(
            "SELECT count(*) FROM transfers t JOIN users u ON u.id = t.user_id
             WHERE u.name = ?1 AND t.client_id = ?2 AND t.status = 'executed'",
            [user, id],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| format!("read transfer {id}: {e}"))
    }

    /// One step of the schedule.
    pub fn step(&mut self) -> Result<(), Violation> {
        self.step += 1;
        self.summary.steps += 1;
        let c = self.rng.index(self.customers.len());
        let roll = self.rng.below(1000);
        let r = match roll {
            0..=449 => self.pay(c, None),
            450..=539 => {
                self.summary.attacks += 1;
                let a =
                    [TxAttack::Amount, TxAttack::Payee, TxAttack::PayeeName, TxAttack::VerifierId, TxAttack::LoginCode]
                        [self.rng.index(5)];
                self.pay(c, Some(a))
            }
            540..=659 => self.log_in(c, None),
            660..=719 => {
                self.summary.attacks += 1;
                self.log_in(c, Some(LoginAttack::Guess))
            }
            720..=759 => {
                self.summary.attacks += 1;
                self.log_in(c, Some(LoginAttack::Replay))
            }
            760..=889 => {
                let secs = match self.rng.below(100) {
                    0..=79 => 1 + self.rng.below(20),
                    80..=91 => u64::try_from(bank_server::CHALLENGE_TTL_S).unwrap_or(120) + 1,
                    92..=97 => u64::try_from(bank_server::SESSION_IDLE_S).unwrap_or(300) + 1,
                    _ => 3_700,
                };
                self.note(format!("clock +{secs} s"));
                self.bank.clock.advance(i64::try_from(secs).unwrap_or(0));
                Ok(())
            }
            890..=929 => {
                self.note("bank: power lost between requests, started again".to_owned());
                self.summary.faults += 1;
                self.bank.restart().map_err(|e| self.violation(e))
            }
            930..=959 => {
                self.note(format!("card {c}: power cycled"));
                self.summary.faults += 1;
                self.customers[c].card.link_mut().power_cycle();
                Ok(())
            }
            960..=974 => {
                let gone = self.bank.housekeep().map_err(|e| self.violation(e))?;
                self.note(format!("bank: housekeeping deleted {gone} expired challenges"));
                Ok(())
            }
            _ => {
                let token = self.customers[c].session.clone();
                self.note(format!("customer {c}: read accounts"));
                self.call("GET", "/api/v1/accounts", token.as_deref(), None).map_err(|e| self.violation(e)).map(|_| ())
            }
        };
        r?;
        self.check()
    }

    /// Every invariant, on the bank's last commit and the cards' memories.
    pub fn check(&mut self) -> Result<(), Violation> {
        self.summary.checks += 1;
        self.check_state().map_err(|what| self.violation(what))
    }

    fn check_state(&mut self) -> Result<(), String> {
        let conn = self.bank.reader()?;
        let q = |e: rusqlite::Error| format!("read the database: {e}");
        // Money: per currency the books sum to zero (funding accounts carry the minus) and
        // the customers hold what was funded.
        let mut stmt = conn.prepare("SELECT currency, sum(balance) FROM accounts GROUP BY currency").map_err(q)?;
        let sums: Vec<(String, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(q)?.collect::<Result<_, _>>().map_err(q)?;
        for (cur, sum) in &sums {
            if *sum != 0 {
                return Err(format!("{cur}: the accounts sum to {sum}, not 0"));
            }
        }
        let mut stmt = conn.prepare("SELECT number, balance FROM accounts WHERE kind = 'customer'").map_err(q)?;
        let balances: BTreeMap<String, i64> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(q)?.collect::<Result<_, _>>().map_err(q)?;
        let total: i64 = balances.values().sum();
        if total != OPENING * CUSTOMERS.len() as i64 {
            return Err(format!("the customers hold {total}, {} was funded", OPENING * 3));
        }
        if let Some((a, b)) = balances.iter().find(|(_, b)| **b < 0) {
            return Err(format!("{a} is at {b}"));
        }
        // Every balance is its opening plus what executed transfers moved, and every executed
        // transfer had an honest code over exactly its fields.
        let mut stmt = conn
            .prepare(
                "SELECT u.name, t.client_id, fa.number, ta.number, t.amount, t.status,
                        (SELECT count(*) FROM journal j WHERE j.transfer_id = t.id)
                 FROM transfers t JOIN users u ON u.id = t.user_id
                 JOIN accounts fa ON fa.id = t.from_account JOIN accounts ta ON ta.id = t.to_account",
            )
            .map_err(q)?;
        type Row = (String, String, String, String, i64, String, i64);
        let rows: Vec<Row> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .map_err(q)?
            .collect::<Result<_, _>>()
            .map_err(q)?;
        let mut expected: BTreeMap<String, i64> =
            CUSTOMERS.iter().map(|(_, a, _)| ((*a).to_owned(), OPENING)).collect();
        let mut executed = HashSet::new();
        for (user, id, from, to, amount, status, entries) in &rows {
            let key = (user.clone(), id.clone());
            let is_exec = status == "executed";
            if i64::from(is_exec) != *entries {
                return Err(format!("{id} is {status} with {entries} journal entries"));
            }
            if !is_exec {
                continue;
            }
            if !self.honest.contains(&key) {
                return Err(format!("{id} executed without an honest code for its fields"));
            }
            let asked = self.asked.get(&key).ok_or_else(|| format!("{id}: never asked for"))?;
            if asked.to != to || u64::try_from(*amount).ok() != Some(asked.amount) {
                return Err(format!("{id} executed as {amount} to {to}, asked {asked:?}"));
            }
            *expected.entry(from.clone()).or_default() -= amount;
            *expected.entry(to.clone()).or_default() += amount;
            executed.insert(key);
        }
        if expected != balances {
            return Err(format!("balances {balances:?}, transfers say {expected:?}"));
        }
        let mut missing: Vec<&(String, String)> = self.acked.difference(&executed).collect();
        missing.sort();
        if let Some((u, id)) = missing.first() {
            return Err(format!("{u}'s {id} was acknowledged executed and is not"));
        }
        // Counters: the bank's never moves back and never passes the card's.
        for i in 0..self.customers.len() {
            let serial = self.customers[i].serial.clone();
            let (next, _, _) = self.token_row(&serial)?;
            let last = self.bank_counter.insert(serial.clone(), next).unwrap_or(0);
            if next < last {
                return Err(format!("{serial}: the bank's counter went back from {last} to {next}"));
            }
            let card = self.customers[i].card.link_mut().counter().unwrap_or(0);
            if card < next {
                return Err(format!("{serial}: the card is at {card}, behind the bank's {next}"));
            }
            if let Some(&acc) = self.customers[i].accepted.last() {
                if acc >= next {
                    return Err(format!("{serial}: counter {acc} was accepted, the bank is at {next}"));
                }
            }
            let tries = self.customers[i].card.link_mut().pin_tries().unwrap_or(0);
            if tries.saturating_add(self.customers[i].torn_since_code) < card_applet::state::PIN_TRIES {
                return Err(format!(
                    "{serial}: the right PIN left {tries} tries with {} torn writes since the last code",
                    self.customers[i].torn_since_code
                ));
            }
        }
        Ok(())
    }

    /// Settles what is open so the end state can be checked: every customer logs in and
    /// confirms their open transfers, without faults.
    pub fn quiesce(&mut self) -> Result<(), Violation> {
        self.rates = Rates {
            drop_request: 0,
            drop_answer: 0,
            duplicate: 0,
            io_error: 0,
            power_before_commit: 0,
            power_after_commit: 0,
            card_tear: 0,
        };
        self.note("quiesce: no more faults".to_owned());
        self.bank.clock.advance(bank_server::auth::LOCK_MAX_S + 1);
        for c in 0..self.customers.len() {
            self.customers[c].session = None;
            self.log_in(c, None)?;
            if self.customers[c].session.is_none() {
                return Err(self.violation(format!("customer {c} cannot log in without faults")));
            }
        }
        self.check()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoginAttack {
    /// The last accepted login code again, on a fresh challenge.
    Replay,
    /// Eight random digits.
    Guess,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxAttack {
    Amount,
    Payee,
    PayeeName,
    VerifierId,
    /// A login code on the transfer's challenge.
    LoginCode,
}

fn bank_vid() -> String {
    paysim_otp::verifier_id(URL).unwrap_or_default()
}

fn is_storage(v: &Value) -> bool {
    v.get("error").and_then(Value::as_str) == Some("storage_unavailable")
}

/// Runs seed `seed` for `steps` steps, then settles and checks once more.
pub fn run(seed: u64, steps: u64, rates: Rates) -> Result<Summary, Violation> {
    let mut w = World::new(seed, rates).map_err(|what| Violation { seed, step: 0, what, trace: String::new() })?;
    for _ in 0..steps {
        w.step()?;
    }
    w.quiesce()?;
    w.summary.bank_restarts = w.bank.restarts;
    Ok(w.summary.clone())
}

/// [`run`], returning the whole trace as well.
pub fn run_traced(seed: u64, steps: u64, rates: Rates) -> (Result<Summary, Violation>, Vec<String>) {
    let mut w = match World::new(seed, rates) {
        Ok(w) => w,
        Err(what) => return (Err(Violation { seed, step: 0, what, trace: String::new() }), Vec::new()),
    };
    let mut r = Ok(());
    for _ in 0..steps {
        r = w.step();
        if r.is_err() {
            break;
        }
    }
    let r = r.and_then(|()| w.quiesce()).map(|()| {
        w.summary.bank_restarts = w.bank.restarts;
        w.summary.clone()
    });
    (r, w.trace.clone())
}

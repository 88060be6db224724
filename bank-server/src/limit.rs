//! Abuse limits: token buckets in this process's memory, one per key (a user name, a client
//! address, a session), refusing with the seconds until the next request would pass.
//!
//! A bucket holds at most `burst` tokens and gains `burst` tokens every `per_s` seconds; a
//! request takes one or is refused. Nothing here touches the database: the web layer asks
//! before any unit of work starts, so a refused request costs no durable write. The web layer
//! audits only the *first* refusal of a key after a request of it passed ([`Decision::Refused`]
//! with `first`), so a flood on one key writes one audit row, not one per request.
//!
//! Memory is bounded: at most [`Settings::max_keys`] keys per kind. When a new key would pass
//! that, the buckets that have refilled (which are the same as no bucket) are dropped first,
//! then the older half by last use. Losing a drained bucket lets that one key start afresh,
//! which is why names are limited per client address too.
//!
//! Time is the bank's [`crate::clock::Clock`] (Unix seconds), so tests move time instead of
//! sleeping. Each process counts for itself: behind several bank processes the limits add up.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;

/// `burst` requests at once, `burst` more every `per_s` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub per_s: u32,
}

impl Rate {
    pub const fn new(burst: u32, per_s: u32) -> Self {
        Rate { burst, per_s }
    }

    fn per_second(self) -> f64 {
        f64::from(self.burst) / f64::from(self.per_s)
    }
}

/// Reads `N/S` (N requests per S seconds, both at least 1) or `off`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a rate is N/S (N requests per S seconds, e.g. 10/60) or `off`")]
pub struct RateError;

/// A setting: a rate, or `None` for no limit.
pub fn parse_rate(text: &str) -> Result<Option<Rate>, RateError> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    let (n, s) = text.split_once('/').ok_or(RateError)?;
    let burst = u32::from_str(n.trim()).map_err(|_| RateError)?;
    let per_s = u32::from_str(s.trim()).map_err(|_| RateError)?;
    if burst == 0 || per_s == 0 {
        return Err(RateError);
    }
    Ok(Some(Rate { burst, per_s }))
}

/// The limits of [`crate::Config`] (`docs/bank.md`, "Abuse limits"). `None` is no limit.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Login challenges asked for one user name (API and website).
    pub challenges_per_user: Option<Rate>,
    /// Login challenges asked for from one client address (IP), whatever the name; and, in
    /// a bucket of their own at the same rate, API login codes from one address (they come
    /// before any session).
    pub challenges_per_address: Option<Rate>,
    /// Codes submitted in one session (the website's login code, transfer confirmations).
    pub codes_per_session: Option<Rate>,
    /// Keys kept per kind of bucket.
    pub max_keys: usize,
}

/// Default: 10 login challenges a minute per user name.
pub const CHALLENGES_PER_USER: Rate = Rate::new(10, 60);
/// Default: 60 login challenges a minute per client address.
pub const CHALLENGES_PER_ADDRESS: Rate = Rate::new(60, 60);
/// Default: 10 codes a minute per session.
pub const CODES_PER_SESSION: Rate = Rate::new(10, 60);
/// Default: keys kept per kind of bucket.
pub const MAX_KEYS: usize = 100_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            challenges_per_user: Some(CHALLENGES_PER_USER),
            challenges_per_address: Some(CHALLENGES_PER_ADDRESS),
            codes_per_session: Some(CODES_PER_SESSION),
            max_keys: MAX_KEYS,
        }
    }
}

impl Settings {
    /// No limits at all (benchmarks).
    pub fn off() -> Self {
        Settings {
            challenges_per_user: None,
            challenges_per_address: None,
            codes_per_session: None,
            max_keys: MAX_KEYS,
        }
    }
}

/// What a bucket said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the next request of this key passes in `retry_after_s` seconds. `first`: the
    /// first refusal since a request of this key passed (the one to audit).
    Refused {
        retry_after_s: u64,
        first: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: i64,
    refusing: bool,
}

/// The buckets of one kind of key.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Option<Rate>,
    max_keys: usize,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub fn new(rate: Option<Rate>, max_keys: usize) -> Self {
        Buckets { rate, max_keys: max_keys.max(2), map: Mutex::new(HashMap::new()) }
    }

    /// Takes a token of `key` at `now`.
    pub fn take(&self, key: &K, now: i64) -> Decision {
        let Some(rate) = self.rate else {
            return Decision::Allowed;
        };
        let burst = f64::from(rate.burst);
        let per_second = rate.per_second();
        // A poisoned lock only means another request panicked while holding it; the buckets
        // are still plain numbers.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            evict(&mut map, now, burst, per_second, self.max_keys);
        }
        let b = map.entry(key.clone()).or_insert(Bucket { tokens: burst, last: now, refusing: false });
        let elapsed = (now - b.last).max(0);
        // i64 seconds to f64: exact for any elapsed time a bucket sees.
        b.tokens = (b.tokens + elapsed as f64 * per_second).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.refusing = false;
            Decision::Allowed
        } else {
            let first = !b.refusing;
            b.refusing = true;
            let wait = ((1.0 - b.tokens) / per_second).ceil().max(1.0);
            // At most `per_s` seconds: a u32 in an f64, back without loss.
            Decision::Refused { retry_after_s: wait as u64, first }
        }
    }

    /// Keys held now (tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict<K: Hash + Eq>(map: &mut HashMap<K, Bucket>, now: i64, burst: f64, per_second: f64, max: usize) {
    map.retain(|_, b| b.tokens + (now - b.last).max(0) as f64 * per_second < burst);
    if map.len() >= max {
        let mut lasts: Vec<i64> = map.values().map(|b| b.last).collect();
        let mid = lasts.len() / 2;
        let (_, median, _) = lasts.select_nth_unstable(mid);
        let median = *median;
        map.retain(|_, b| b.last > median);
    }
}

/// What a code submission is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CodeKey {
    /// The first 16 bytes of the SHA-256 of the session token (the session's id hash).
    Session([u8; 16]),
    /// The client address of an API login (no session yet).
    Address(IpAddr),
}

/// All buckets of the bank.
#[derive(Debug)]
pub struct Limiters {
    pub challenges_per_user: Buckets<String>,
    pub challenges_per_address: Buckets<IpAddr>,
    pub codes: Buckets<CodeKey>,
    pub login_codes_per_address: Buckets<CodeKey>,
}

impl Limiters {
    pub fn new(s: &Settings) -> Self {
        Limiters {
            challenges_per_user: Buckets::new(s.challenges_per_user, s.max_keys),
            challenges_per_address: Buckets::new(s.challenges_per_address, s.max_keys),
            codes: Buckets::new(s.codes_per_session, s.max_keys),
            login_codes_per_address: Buckets::new(s.challenges_per_address, s.max_keys),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_burst_then_refuses_until_it_refills() {
        let b: Buckets<&str> = Buckets::new(Some(Rate::new(3, 60)), 10);
        for _ in 0..3 {
            assert_eq!(b.take(&"alice", 100), Decision::Allowed);
        }
        assert_eq!(b.take(&"alice", 100), Decision::Refused { retry_after_s: 20, first: true });
        assert_eq!(b.take(&"alice", 110), Decision::Refused { retry_after_s: 10, first: false });
        // Another key has its own bucket.
        assert_eq!(b.take(&"bob", 110), Decision::Allowed);
        // 20 s: one token back.
        assert_eq!(b.take(&"alice", 120), Decision::Allowed);
        assert_eq!(b.take(&"alice", 120), Decision::Refused { retry_after_s: 20, first: true });
        // Never more than the burst, however long the wait.
        for _ in 0..3 {
            assert_eq!(b.take(&"alice", 10_000), Decision::Allowed);
        }
        assert!(matches!(b.take(&"alice", 10_000), Decision::Refused { .. }));
        let off: Buckets<&str> = Buckets::new(None, 10);
        for _ in 0..100 {
            assert_eq!(off.take(&"x", 0), Decision::Allowed);
        }
    }

    #[test]
    fn memory_stays_bounded_and_drained_buckets_outlive_refilled_ones() {
        let b: Buckets<u32> = Buckets::new(Some(Rate::new(1, 60)), 100);
        for k in 0..10_000u32 {
            b.take(&k, i64::from(k));
            assert!(b.len() <= 100, "{}", b.len());
        }
        // The newest key is drained and kept: it is still refused.
        assert!(matches!(b.take(&9_999, 9_999), Decision::Refused { .. }));
    }

    #[test]
    fn rates_read_as_documented() {
        assert_eq!(parse_rate("10/60"), Ok(Some(Rate::new(10, 60))));
        assert_eq!(parse_rate(" off "), Ok(None));
        for bad in ["", "10", "0/60", "10/0", "-1/5", "a/b", "10/60/1"] {
            assert_eq!(parse_rate(bad), Err(RateError), "{bad}");
        }
    }
}

//! Wall-clock time in Unix seconds, with a hand-driven clock for tests (expiry, idle
//! timeouts and lock delays are tested by moving time, never by sleeping).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that stands still at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: i64) -> Self {
        Clock(Some(Arc::new(AtomicI64::new(start))))
    }

    /// Moves a manual clock forward; does nothing to the system clock.
    pub fn advance(&self, secs: i64) {
        if let Some(t) = &self.0 {
            t.fetch_add(secs, Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }
}

//! One pcscd and its readers for the whole e2e binary: most tests share them, a test that
//! must be alone with them takes them exclusively.
//!
//! Every [`SlotLock`](crate::SlotLock) holds a [`PcscdShared`] (taken before the slot's file
//! lock) and [`require_pcscd`](crate::require_pcscd) holds one while it looks;
//! [`pcscd_exclusive`] waits until none is held. Two kinds of test take it: the one that
//! restarts pcscd, and the demo tests, whose `reader-bridge` runs without `--reader` and must
//! find the demo's card as the only one. The thread holding the exclusive use may take slots
//! itself (its shared uses are no-ops), so those tests can run a card. Other processes are
//! kept apart by the slot file locks alone.

use std::cell::Cell;
use std::sync::{Condvar, Mutex, MutexGuard};

struct Use {
    shared: usize,
    exclusive: bool,
}

static USE: Mutex<Use> = Mutex::new(Use { shared: 0, exclusive: false });
static CHANGED: Condvar = Condvar::new();

thread_local! {
    /// Whether this thread holds the exclusive use.
    static EXCLUSIVE_HERE: Cell<bool> = const { Cell::new(false) };
}

fn lock() -> MutexGuard<'static, Use> {
    // A test that panicked while holding the mutex changed nothing half-way: go on.
    USE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared use of pcscd: no restart while it is held. Released on drop.
#[derive(Debug)]
pub struct PcscdShared {
    counted: bool,
}

/// Waits while another thread restarts pcscd, then holds shared use.
pub fn pcscd_shared() -> PcscdShared {
    if EXCLUSIVE_HERE.with(Cell::get) {
        return PcscdShared { counted: false };
    }
    let mut u = lock();
    while u.exclusive {
        u = CHANGED.wait(u).unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    u.shared += 1;
    PcscdShared { counted: true }
}

/// Shared use if nobody restarts pcscd right now.
pub fn try_pcscd_shared() -> Option<PcscdShared> {
    if EXCLUSIVE_HERE.with(Cell::get) {
        return Some(PcscdShared { counted: false });
    }
    let mut u = lock();
    if u.exclusive {
        return None;
    }
    u.shared += 1;
    Some(PcscdShared { counted: true })
}

impl Drop for PcscdShared {
    fn drop(&mut self) {
        if self.counted {
            let mut u = lock();
            u.shared -= 1;
            CHANGED.notify_all();
        }
    }
}

/// Exclusive use of pcscd (to restart it). Released on drop.
#[derive(Debug)]
pub struct PcscdExclusive {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Waits until no other test of this process uses pcscd or a slot, then holds pcscd alone.
pub fn pcscd_exclusive() -> PcscdExclusive {
    let mut u = lock();
    while u.exclusive || u.shared > 0 {
        u = CHANGED.wait(u).unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    u.exclusive = true;
    EXCLUSIVE_HERE.with(|e| e.set(true));
    PcscdExclusive { _not_send: std::marker::PhantomData }
}

impl Drop for PcscdExclusive {
    fn drop(&mut self) {
        EXCLUSIVE_HERE.with(|e| e.set(false));
        let mut u = lock();
        u.exclusive = false;
        CHANGED.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn exclusive_waits_for_shared_uses_and_shared_waits_for_exclusive() {
        let shared = pcscd_shared();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let ex = pcscd_exclusive();
            tx.send(()).unwrap();
            // The exclusive holder may take slots itself.
            let inner = pcscd_shared();
            drop(inner);
            drop(ex);
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "exclusive granted beside a shared use");
        drop(shared);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        assert!(try_pcscd_shared().is_some());
    }
}

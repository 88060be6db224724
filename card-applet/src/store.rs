//! Where the core commits the card's persistent state: the [`Store`] trait and
//! [`MemStore`]. The file-backed store of the virtual card is [`crate::state::FileStore`].
//!
//! Tear-safety is a contract between the two sides. The core commits before any answer that
//! depends on the new state leaves the card (the next counter before its code, a spent try
//! before a comparison), and answers `6581` without data when the commit fails. A store
//! makes each commit all-or-nothing.

use crate::state::CardState;

/// Where the card commits its state. The core calls [`Store::commit`] and only answers once
/// it returned `Ok`; an `Err` makes the command answer `6581` (memory failure).
pub trait Store {
    /// Why a commit failed. The core logs it (never the state) and answers `6581`.
    type Error: core::fmt::Display;

    /// Makes `state` durable: after `Ok`, a power loss keeps it; after `Err`, either the old
    /// or the new state survives, never a mix.
    fn commit(&mut self, state: &CardState) -> Result<(), Self::Error>;
}

/// A store that keeps the last committed state in memory (tests, fuzzing, simulations).
/// Its commits cannot fail.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    /// The last committed state, if any.
    pub committed: Option<CardState>,
    /// How many commits succeeded.
    pub writes: usize,
}

impl Store for MemStore {
    type Error = core::convert::Infallible;

    fn commit(&mut self, state: &CardState) -> Result<(), Self::Error> {
        self.committed = Some(state.clone());
        self.writes += 1;
        Ok(())
    }
}

impl<S: Store + ?Sized> Store for &mut S {
    type Error = S::Error;

    fn commit(&mut self, state: &CardState) -> Result<(), Self::Error> {
        (**self).commit(state)
    }
}

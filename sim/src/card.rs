//! The card in the simulation: the real card core (`card_applet::CardFront`) on a store that
//! tears on command, reached through the bridge's own card layer (`reader_bridge::card::
//! PaysimCard`) over an in-process [`Transport`].

use std::sync::{Arc, Mutex, PoisonError};

use card_applet::state::{CardState, Store};
use card_applet::{Card, CardFront};
use card_link::{Disposition, Frames, Transport};

use crate::rng::Rng;

/// How a torn write ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// The power fails before the write lands: the old state survives.
    Lost,
    /// The write lands, then the power fails before the store can report it.
    Landed,
}

/// A tear armed for the `n`-th commit from now (1 = the next one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Armed {
    pub nth: u8,
    pub how: Tear,
}

/// The card's persistent memory: the last committed state, and a tear the simulation armed.
#[derive(Clone)]
pub struct SimStore {
    committed: CardState,
    armed: Arc<Mutex<Option<Armed>>>,
    fired: Arc<Mutex<Option<Tear>>>,
}

/// The error a torn commit reports to the core (which then answers `6581`).
#[derive(Debug)]
pub struct Torn;

impl core::fmt::Display for Torn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the power failed during the write (simulated)")
    }
}

impl Store for SimStore {
    type Error = Torn;

    fn commit(&mut self, state: &CardState) -> Result<(), Torn> {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        match armed.as_mut() {
            Some(a) if a.nth > 1 => a.nth -= 1,
            Some(a) => {
                let how = a.how;
                *armed = None;
                if how == Tear::Landed {
                    self.committed = state.clone();
                }
                *self.fired.lock().unwrap_or_else(PoisonError::into_inner) = Some(how);
                return Err(Torn);
            }
            None => {}
        }
        self.committed = state.clone();
        Ok(())
    }
}

/// The in-process link to the card: the same APDU path the bridge takes over PC/SC.
pub struct SimLink {
    front: CardFront<SimStore>,
    store: SimStore,
    random: Rng,
    reader: String,
}

impl SimLink {
    /// A card whose persistent memory holds `state` (a personalized card's).
    pub fn new(state: CardState, random: Rng, reader: &str) -> SimLink {
        let store = SimStore { committed: state, armed: Arc::new(Mutex::new(None)), fired: Arc::new(Mutex::new(None)) };
        let front = Self::boot(&store, random.clone());
        SimLink { front, store, random, reader: reader.to_owned() }
    }

    fn boot(store: &SimStore, mut random: Rng) -> CardFront<SimStore> {
        let source: card_applet::card::RandomSource = Box::new(move |buf: &mut [u8]| {
            random.fill(buf);
            true
        });
        CardFront::new(Card::with_random(store.clone(), store.committed.clone(), source))
    }

    /// Arms a tear of a later commit.
    pub fn arm(&mut self, armed: Armed) {
        *self.store.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(armed);
    }

    /// Disarms a tear that did not fire, and says whether one fired since the last call.
    pub fn take_fired(&mut self) -> Option<Tear> {
        *self.store.armed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.front.card().store().fired.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The power fails and comes back: the card starts again from what its memory holds.
    pub fn power_cycle(&mut self) {
        let memory = self.front.card().store().clone();
        self.random = self.random.split();
        self.front = Self::boot(&memory, self.random.clone());
        self.store = memory;
    }

    /// The next counter in the card's persistent memory.
    pub fn counter(&self) -> Option<u64> {
        self.front.card().store().committed.personal.as_ref().map(|p| p.counter)
    }

    /// PIN tries left in persistent memory.
    pub fn pin_tries(&self) -> Option<u8> {
        self.front.card().store().committed.personal.as_ref().map(|p| p.pin_tries)
    }
}

struct SimFrames<'a>(&'a mut CardFront<SimStore>);

impl Frames for SimFrames<'_> {
    fn frame(&mut self, apdu: &[u8]) -> card_link::Result<Vec<u8>> {
        Ok(self.0.process(apdu))
    }
}

impl Transport for SimLink {
    fn reader(&self) -> &str {
        &self.reader
    }

    fn transaction(&mut self, body: &mut dyn FnMut(&mut dyn Frames) -> Disposition) -> card_link::Result<()> {
        let end = body(&mut SimFrames(&mut self.front));
        self.reset(end)
    }

    fn reset(&mut self, how: Disposition) -> card_link::Result<()> {
        match how {
            Disposition::Leave => {}
            Disposition::Reset => self.front.reset(),
            Disposition::Unpower => self.front.power_off(),
        }
        Ok(())
    }
}

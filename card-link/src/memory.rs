//! The card core in this process, behind [`Transport`]: the same APDU path as over PC/SC,
//! without pcscd.

use std::sync::{Arc, Mutex, MutexGuard};

use card_applet::host::{self, admin::AdminError, admin::AdminSession, admin::Personalization};
use card_applet::state::{CardState, MemStore};
use card_applet::{Card, CardFront};

use crate::{Disposition, Frames, Result, Transport};

/// A card core (`CardFront<MemStore>`: frame layer with GET RESPONSE, applet, in-memory
/// store) reached as a transport. A clone is another connection to the same card, the way
/// two PC/SC handles reach one physical card; transactions on the clones take turns.
#[derive(Clone)]
pub struct MemCard {
    front: Arc<Mutex<CardFront<MemStore>>>,
    reader: String,
}

impl std::fmt::Debug for MemCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemCard").field("reader", &self.reader).finish_non_exhaustive()
    }
}

struct MemFrames<'a>(&'a mut CardFront<MemStore>);

impl Frames for MemFrames<'_> {
    fn frame(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        Ok(self.0.process(apdu))
    }
}

impl MemCard {
    /// The admin key of the cards [`MemCard::personalized`] makes. Test cards only.
    pub const ADMIN_KEY: [u8; 32] = [0xAD; 32];

    /// The reader name an in-process card reports unless told otherwise.
    pub const READER: &'static str = "in-process card";

    /// Wraps a card front.
    pub fn new(front: CardFront<MemStore>) -> Self {
        MemCard { front: Arc::new(Mutex::new(front)), reader: Self::READER.to_owned() }
    }

    /// A factory-fresh card holding `admin_key`.
    pub fn factory(admin_key: &[u8; 32]) -> Self {
        Self::new(CardFront::new(Card::new(MemStore::default(), CardState::factory(admin_key))))
    }

    /// A card personalized through the real admin protocol (SELECT, GET CHALLENGE, EXTERNAL
    /// AUTHENTICATE, PERSONALIZE with its R-MAC checked) with chain seed `seed`, the PIN, the
    /// PUK and the serial; its admin key is [`MemCard::ADMIN_KEY`]. The next counter is 0.
    pub fn personalized(seed: &[u8; 32], pin: &str, puk: &str, serial: &str) -> Result<Self, AdminError> {
        let mut card = Self::factory(&Self::ADMIN_KEY);
        let mut session = AdminSession::new(&Self::ADMIN_KEY)?;
        let p = Personalization { seed, pin, puk, serial };
        let mut front = card.lock();
        let mut send =
            |apdu: &[u8]| -> std::result::Result<Vec<u8>, std::convert::Infallible> { Ok(front.process(apdu)) };
        let selected = host::transceive(&host::select(), &mut send).unwrap_or_default();
        host::parse_select(&selected)?;
        let challenge = host::transceive(&AdminSession::get_challenge(), &mut send).unwrap_or_default();
        let auth = session.external_authenticate(&challenge)?;
        session.check_authenticated(&host::transceive(&auth, &mut send).unwrap_or_default())?;
        let cmd = session.personalize(&p)?;
        session.check_personalized(&host::transceive(&cmd, &mut send).unwrap_or_default())?;
        front.reset();
        drop(front);
        card.reader = Self::READER.to_owned();
        Ok(card)
    }

    /// The same card under another reader name.
    pub fn with_reader(mut self, name: &str) -> Self {
        self.reader = name.to_owned();
        self
    }

    /// Runs `f` on the card front (to inspect the core or inject store failures in tests).
    pub fn with_front<R>(&self, f: impl FnOnce(&mut CardFront<MemStore>) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, CardFront<MemStore>> {
        // A test that panicked mid-exchange leaves the card as it was: keep using it.
        self.front.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Transport for MemCard {
    fn reader(&self) -> &str {
        &self.reader
    }

    fn transaction(&mut self, body: &mut dyn FnMut(&mut dyn Frames) -> Disposition) -> Result<()> {
        let mut front = self.lock();
        match body(&mut MemFrames(&mut front)) {
            Disposition::Leave => {}
            Disposition::Reset => front.reset(),
            Disposition::Unpower => front.power_off(),
        }
        Ok(())
    }

    fn reset(&mut self, how: Disposition) -> Result<()> {
        let mut front = self.lock();
        match how {
            Disposition::Leave => {}
            Disposition::Reset => front.reset(),
            Disposition::Unpower => front.power_off(),
        }
        Ok(())
    }
}

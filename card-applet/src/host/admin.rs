//! The host side of admin authentication and PERSONALIZE (`docs/protocol.md`, "Admin
//! protocol"). Sans-I/O: the caller sends each APDU and hands back the card's answer.
//!
//! ```
//! # use card_applet::{host::{self, admin::{AdminSession, Personalization}}, CardFront, Card, state::{CardState, MemStore}};
//! let key = [0x42; 32];
//! # let mut card = CardFront::new(Card::new(MemStore::default(), CardState::factory(&key)));
//! # let mut transmit = |apdu: &[u8]| -> Result<Vec<u8>, std::convert::Infallible> { Ok(card.process(apdu)) };
//! host::parse_select(&host::transceive(&host::select(), &mut transmit).unwrap()).unwrap();
//! let mut session = AdminSession::new(&key).unwrap();
//! let challenge = host::transceive(&AdminSession::get_challenge(), &mut transmit).unwrap();
//! let auth = session.external_authenticate(&challenge).unwrap();
//! session.check_authenticated(&host::transceive(&auth, &mut transmit).unwrap()).unwrap();
//! let p = Personalization { seed: &[7; 32], pin: "1234", puk: "12345678", serial: "PSIM-00000001" };
//! let cmd = session.personalize(&p).unwrap();
//! session.check_personalized(&host::transceive(&cmd, &mut transmit).unwrap()).unwrap();
//! ```

use alloc::vec;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use super::{error_for, split, CardError, Context, RequestError};
use crate::apdu::build;
use crate::command::{ins, tag, CLA_ISO, CLA_PROPRIETARY};
use crate::pin::{PinBlock, PukBlock};
use crate::scp::{SessionKeys, CHALLENGE_LEN, MAC_LEN};

/// What PERSONALIZE writes to the card.
pub struct Personalization<'a> {
    /// The chain seed `ck_0`.
    pub seed: &'a [u8; 32],
    /// 4-8 digits.
    pub pin: &'a str,
    /// 8 digits.
    pub puk: &'a str,
    /// 1-16 of `[A-Z0-9-]`.
    pub serial: &'a str,
}

/// Why the admin protocol stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("the card's cryptogram is wrong: this card does not hold that admin key, or the answer was altered")]
    CardCryptogram,
    #[error("the card's confirmation of PERSONALIZE does not verify: do not enroll this card")]
    ResponseMac,
    #[error("admin protocol step out of order: {0}")]
    OutOfOrder(&'static str),
    #[error("no randomness from the operating system")]
    Random,
}

enum Phase {
    Start,
    Sent { keys: SessionKeys },
    Authenticated { keys: SessionKeys },
    Personalizing { keys: SessionKeys, c_mac: [u8; MAC_LEN] },
    Done,
}

/// One admin session with one card.
pub struct AdminSession {
    admin_key: Zeroizing<[u8; 32]>,
    host_challenge: [u8; CHALLENGE_LEN],
    phase: Phase,
}

impl core::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AdminSession(<secret>)")
    }
}

impl AdminSession {
    /// A session with a fresh random host challenge from the operating system (feature
    /// `std`; without it, draw one and use [`with_host_challenge`](Self::with_host_challenge)).
    #[cfg(feature = "std")]
    pub fn new(admin_key: &[u8; 32]) -> Result<Self, AdminError> {
        let mut rh = [0u8; CHALLENGE_LEN];
        getrandom::getrandom(&mut rh).map_err(|_| AdminError::Random)?;
        Ok(Self::with_host_challenge(admin_key, rh))
    }

    /// A session with a chosen host challenge (tests, vectors). Never reuse one in practice.
    pub fn with_host_challenge(admin_key: &[u8; 32], host_challenge: [u8; CHALLENGE_LEN]) -> Self {
        Self { admin_key: Zeroizing::new(*admin_key), host_challenge, phase: Phase::Start }
    }

    /// `00 84 00 00 10`: asks the card for its challenge.
    pub fn get_challenge() -> Vec<u8> {
        vec![CLA_ISO, ins::GET_CHALLENGE, 0, 0, 0x10]
    }

    /// Takes GET CHALLENGE's answer and builds EXTERNAL AUTHENTICATE
    /// `00 82 00 00 20 host challenge ‖ host cryptogram`.
    pub fn external_authenticate(&mut self, get_challenge_response: &[u8]) -> Result<Vec<u8>, AdminError> {
        if !matches!(self.phase, Phase::Start) {
            return Err(AdminError::OutOfOrder("EXTERNAL AUTHENTICATE already built"));
        }
        let (data, sw) = split(get_challenge_response)?;
        if sw != 0x9000 {
            return Err(error_for(sw, Context::Admin).into());
        }
        let rc: [u8; CHALLENGE_LEN] =
            data.try_into().map_err(|_| CardError::Malformed("card challenge is not 16 bytes"))?;
        let keys = SessionKeys::derive(&self.admin_key, &self.host_challenge, &rc);
        let mut body = self.host_challenge.to_vec();
        body.extend_from_slice(&keys.host_cryptogram());
        self.phase = Phase::Sent { keys };
        Ok(build(CLA_ISO, ins::EXTERNAL_AUTHENTICATE, 0, 0, &body, Some(256)).unwrap_or_default())
    }

    /// Checks EXTERNAL AUTHENTICATE's answer: the card's cryptogram proves it holds the
    /// admin key. `AdminAuthFailed{tries_left}`, `AdminBlocked`, `CardCryptogram`.
    pub fn check_authenticated(&mut self, response: &[u8]) -> Result<(), AdminError> {
        let Phase::Sent { keys } = core::mem::replace(&mut self.phase, Phase::Done) else {
            return Err(AdminError::OutOfOrder("no EXTERNAL AUTHENTICATE sent"));
        };
        let (data, sw) = split(response)?;
        if sw != 0x9000 {
            return Err(error_for(sw, Context::Admin).into());
        }
        if !SessionKeys::verify(&keys.card_cryptogram(), data) {
            return Err(AdminError::CardCryptogram);
        }
        self.phase = Phase::Authenticated { keys };
        Ok(())
    }

    /// Builds PERSONALIZE `80 E2 00 00 Lc ciphertext ‖ C-MAC 00`. Only after
    /// [`check_authenticated`](Self::check_authenticated) succeeded, once per session.
    pub fn personalize(&mut self, p: &Personalization<'_>) -> Result<Zeroizing<Vec<u8>>, AdminError> {
        let pin = PinBlock::from_pin(p.pin).map_err(RequestError::from)?;
        let puk = PukBlock::from_puk(p.puk).map_err(RequestError::from)?;
        if !paysim_wire::CardSerial::is_valid(p.serial) {
            return Err(RequestError::Serial.into());
        }
        let Phase::Authenticated { keys } = core::mem::replace(&mut self.phase, Phase::Done) else {
            return Err(AdminError::OutOfOrder("not authenticated"));
        };
        let plain = Zeroizing::new(
            crate::tlv::encode_primitives(&[
                (u16::from(tag::SEED), p.seed.as_slice()),
                (u16::from(tag::PIN), pin.as_bytes()),
                (u16::from(tag::PUK), puk.as_bytes()),
                (u16::from(tag::SERIAL), p.serial.as_bytes()),
            ])
            .ok_or(RequestError::Serial)?,
        );
        let header = [CLA_PROPRIETARY, ins::PERSONALIZE, 0, 0];
        let protected = keys.wrap(header, &plain);
        let c_mac: [u8; MAC_LEN] = protected
            .get(protected.len().saturating_sub(MAC_LEN)..)
            .and_then(|m| m.try_into().ok())
            .unwrap_or([0; MAC_LEN]);
        let apdu = build(header[0], header[1], header[2], header[3], &protected, Some(256)).unwrap_or_default();
        self.phase = Phase::Personalizing { keys, c_mac };
        Ok(Zeroizing::new(apdu))
    }

    /// Checks PERSONALIZE's answer: `9000` with an R-MAC that proves this card accepted
    /// exactly this command.
    pub fn check_personalized(&mut self, response: &[u8]) -> Result<(), AdminError> {
        let Phase::Personalizing { keys, c_mac } = core::mem::replace(&mut self.phase, Phase::Done) else {
            return Err(AdminError::OutOfOrder("no PERSONALIZE sent"));
        };
        let (data, sw) = split(response)?;
        if sw != 0x9000 {
            return Err(error_for(sw, Context::Admin).into());
        }
        if !SessionKeys::verify(&keys.r_mac(&c_mac), data) {
            return Err(AdminError::ResponseMac);
        }
        Ok(())
    }
}

//! The sans-I/O card core: [`Card::handle`] turns one command APDU into one response.
//!
//! The card carries two applets, PAYSIM and YKOATH ([`crate::oath`], handlers in
//! `card/ykoath.rs`), and routes each APDU: SELECT (CLA `00`, INS `A4`) is the card's own and
//! chooses the applet by AID (`6A82` for any other AID, the selection unchanged); every
//! other command goes to the parser and handlers of the selected applet, and answers `6985`
//! while none is selected.
//!
//! Persistent state lives in [`CardState`] and is committed through a [`Store`] before any
//! answer that depends on it leaves the card. Volatile state (applet selected, PIN verified,
//! admin session, OATH validated) is cleared by [`Card::reset`], by SELECT (of either
//! applet), and where noted below.
//!
//! Rule for failed writes: the in-memory state is always the state the card *tried* to
//! commit (the counter burned, the try spent), and the command answers `6581` without
//! output. Whatever the file ends up holding, old or new, no code is emitted twice and no
//! PIN is compared without a spent try having been committed first.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use iso7816::Status;
use zeroize::Zeroizing;

use crate::apdu::CommandView;
use crate::command::{tag, Command, DataObject, LoginRequest, TxRequest, Verify, AID};
use crate::pin::{PinBlock, PukBlock};
use crate::scp::{SessionKeys, CHALLENGE_LEN, MAC_LEN};
use crate::state::{CardState, Personal, ADMIN_TRIES, PIN_TRIES, PUK_TRIES};
use crate::store::Store;
use crate::tlv;
use paysim_otp::{login_otp, tx_otp, ChainKey, Otp, TxVersion};

mod ykoath;

pub use crate::oath::TouchPolicy;

/// The applet a SELECT chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applet {
    /// Nothing selected (after power-on or reset): only SELECT is answered.
    None,
    /// PAYSIM, AID [`AID`].
    Paysim,
    /// YKOATH, AID [`crate::oath::AID`].
    Oath,
}

/// Applet version reported in the FCI and by GET DATA `DF05`: major, minor. 1.1 added
/// transaction context version 2 (`DF08`, tags `09` and `0A`).
pub const APPLET_VERSION: [u8; 2] = [1, 1];
/// The version an emulated 1.0 card reports ([`Firmware::V1_0`]).
pub const APPLET_VERSION_1_0: [u8; 2] = [1, 0];

/// Which firmware the card runs. Not part of the persistent state: it is how the card was
/// built, chosen when the card starts (`virtual-card --firmware`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Firmware {
    /// The current applet (1.1): signs transaction contexts 1 and 2, announces them in
    /// `DF08` and the FCI.
    #[default]
    Current,
    /// An emulation of applet 1.0, for tests of old cards: reports version 1.0, has no
    /// `DF08`, and refuses the version-2 tags `09`/`0A` with `6A80` as 1.0's parser did.
    V1_0,
}

impl Firmware {
    /// The transaction-context versions this firmware signs, as `DF08` lists them.
    pub fn tx_versions(self) -> &'static [TxVersion] {
        match self {
            Self::Current => &TxVersion::ALL,
            Self::V1_0 => &[TxVersion::V1],
        }
    }

    /// The applet version this firmware reports.
    pub fn applet_version(self) -> [u8; 2] {
        match self {
            Self::Current => APPLET_VERSION,
            Self::V1_0 => APPLET_VERSION_1_0,
        }
    }
}
/// Life-cycle byte of a card that has an admin key but no personalization (ISO/IEC 7816-4
/// Table 15: initialisation state).
pub const LCS_FACTORY: u8 = 0x03;
/// Life-cycle byte of a personalized card (operational state, activated).
pub const LCS_OPERATIONAL: u8 = 0x05;

/// A response APDU: data field and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub status: Status,
}

impl core::fmt::Debug for Response {
    // The data may carry an OTP; show only its length.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Response({} bytes, {:04X})", self.data.len(), u16::from(self.status))
    }
}

impl Response {
    /// Data followed by SW1 SW2.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&crate::apdu::sw_bytes(self.status));
        out
    }
}

/// A source of random bytes for card challenges; returns false if it failed.
pub type RandomSource = Box<dyn FnMut(&mut [u8]) -> bool + Send>;

#[cfg(feature = "std")]
fn os_random() -> RandomSource {
    Box::new(|buf: &mut [u8]| getrandom::getrandom(buf).is_ok())
}

/// Where the admin protocol stands in this session.
enum Admin {
    Idle,
    /// GET CHALLENGE answered this card challenge; the next EXTERNAL AUTHENTICATE uses it.
    Challenged([u8; CHALLENGE_LEN]),
    /// EXTERNAL AUTHENTICATE succeeded; one PERSONALIZE may follow.
    Open(SessionKeys),
}

/// The three counters that guard a secret, each spent through [`Card::spend_try_then`].
#[derive(Clone, Copy)]
enum TryCounter {
    Pin,
    Puk,
    Admin,
}

impl TryCounter {
    /// The counter in `state`; `None` for the PIN and PUK of a card not personalized.
    fn tries(self, state: &mut CardState) -> Option<&mut u8> {
        match self {
            Self::Pin => state.personal.as_mut().map(|p| &mut p.pin_tries),
            Self::Puk => state.personal.as_mut().map(|p| &mut p.puk_tries),
            Self::Admin => Some(&mut state.admin_tries),
        }
    }
}

/// Constant-time check of `pin` against the stored PIN.
fn pin_matches(state: &CardState, pin: &PinBlock) -> Option<()> {
    state.personal.as_ref().is_some_and(|p| p.pin.ct_eq(pin)).then_some(())
}

/// The applet. `S` is where its persistent state is committed.
pub struct Card<S: Store> {
    store: S,
    state: CardState,
    selected: Applet,
    pin_verified: bool,
    admin: Admin,
    oath: ykoath::Session,
    touch: TouchPolicy,
    firmware: Firmware,
    random: RandomSource,
}

impl<S: Store> core::fmt::Debug for Card<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Card")
            .field("state", &self.state)
            .field("selected", &self.selected)
            .field("pin_verified", &self.pin_verified)
            .field("oath_validated", &self.oath.validated())
            .field("touch", &self.touch)
            .finish_non_exhaustive()
    }
}

type Outcome = Result<Vec<u8>, Status>;

impl<S: Store> Card<S> {
    /// A card running `state` (as loaded from `store`), with OS randomness (feature `std`;
    /// without it the caller injects its source through [`Card::with_random`]).
    #[cfg(feature = "std")]
    pub fn new(store: S, state: CardState) -> Self {
        Self::with_random(store, state, os_random())
    }

    /// A card with a chosen random source (deterministic tests and fuzzing).
    pub fn with_random(store: S, state: CardState, random: RandomSource) -> Self {
        Self {
            store,
            state,
            selected: Applet::None,
            pin_verified: false,
            admin: Admin::Idle,
            oath: ykoath::Session::default(),
            touch: TouchPolicy::default(),
            firmware: Firmware::default(),
            random,
        }
    }

    /// What a touch of the (missing) button does: see [`TouchPolicy`].
    pub fn set_touch_policy(&mut self, policy: TouchPolicy) {
        self.touch = policy;
    }

    /// The touch policy.
    pub fn touch_policy(&self) -> TouchPolicy {
        self.touch
    }

    /// Runs the card as `firmware` (an old card for tests: [`Firmware::V1_0`]).
    pub fn set_firmware(&mut self, firmware: Firmware) {
        self.firmware = firmware;
    }

    /// The firmware the card runs.
    pub fn firmware(&self) -> Firmware {
        self.firmware
    }

    /// The applet selected now.
    pub fn selected(&self) -> Applet {
        self.selected
    }

    /// The persistent state as the card holds it in memory. For tests and tools on the
    /// same machine; no command ever returns the secrets in it.
    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Mutable access to the store (tests inject failures through it).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Whether the PIN is currently verified.
    pub fn pin_verified(&self) -> bool {
        self.pin_verified
    }

    /// Power-on or reset: deselects the applet and forgets the verified PIN, any admin
    /// session and any OATH validation.
    pub fn reset(&mut self) {
        self.deselect();
    }

    /// Clears the selection and every applet's volatile state.
    fn deselect(&mut self) {
        self.selected = Applet::None;
        self.pin_verified = false;
        self.admin = Admin::Idle;
        self.oath = ykoath::Session::default();
    }

    /// Handles one command APDU.
    pub fn handle(&mut self, apdu: &[u8]) -> Response {
        match CommandView::parse(apdu) {
            Ok(view) => self.handle_view(view),
            Err(status) => Response { data: Vec::new(), status },
        }
    }

    /// Handles an already framed command.
    pub fn handle_view(&mut self, view: CommandView<'_>) -> Response {
        // SELECT by DF name. P1 tells it from YKOATH's CALCULATE ALL, which shares INS A4
        // (`00 A4 00 P2`), as on a YubiKey.
        let is_select =
            view.cla == crate::command::CLA_ISO && view.ins == crate::command::ins::SELECT && view.p1 == 0x04;
        let outcome = if self.selected == Applet::Oath && !is_select {
            crate::oath::command::Command::try_from(view).and_then(|cmd| self.dispatch_oath(cmd))
        } else {
            // SELECT, and everything while PAYSIM or nothing is selected.
            Command::try_from(view).and_then(|cmd| self.dispatch(cmd))
        };
        match outcome {
            Ok(data) => Response { data, status: Status::Success },
            Err(status) => Response { data: Vec::new(), status },
        }
    }

    fn dispatch(&mut self, cmd: Command<'_>) -> Outcome {
        // Nothing but SELECT reaches an applet that is not selected.
        if self.selected != Applet::Paysim && !matches!(cmd, Command::Select { .. }) {
            return Err(Status::ConditionsOfUseNotSatisfied);
        }
        match cmd {
            Command::Select { aid, fci } => self.select(aid, fci),
            Command::Verify(v) => self.verify(v),
            Command::ChangeReferenceData { old, new } => self.change_reference_data(old, new),
            Command::ResetRetryCounter { puk, new_pin } => self.reset_retry_counter(puk, new_pin),
            Command::GetData(obj) => self.get_data(obj),
            Command::LoginOtp(req) => self.login_otp(req),
            Command::TransactionOtp(req) => self.transaction_otp(req),
            Command::GetChallenge => self.get_challenge(),
            Command::ExternalAuthenticate { host_challenge, host_cryptogram } => {
                self.external_authenticate(host_challenge, host_cryptogram)
            }
            Command::Personalize { header, protected } => self.personalize(header, protected),
        }
    }

    fn commit(&mut self) -> Result<(), Status> {
        self.store.commit(&self.state).map_err(|e| {
            tracing::warn!(error = %e, "card memory write failed");
            Status::MemoryFailure
        })
    }

    /// SELECT by DF name, the card's own command: chooses the applet.
    ///
    /// - PAYSIM's AID: `9000` + FCI (or no data for P2 = `0C`); PAYSIM selected; PIN
    ///   verification, admin session and OATH validation cleared.
    /// - YKOATH's AID (7 or 8 bytes): see `ykoath::oath_select`.
    /// - `6A82`: another AID; the selection does not change.
    fn select(&mut self, aid: &[u8], fci: bool) -> Outcome {
        if crate::oath::selects(aid) {
            return self.oath_select(fci);
        }
        if aid != AID {
            return Err(Status::NotFound);
        }
        self.deselect();
        self.selected = Applet::Paysim;
        if fci {
            self.fci()
        } else {
            Ok(Vec::new())
        }
    }

    /// `6F { 84 AID, A5 { DF05 version, DF04 life-cycle, [DF01 serial], [DF08 versions] } }`
    /// (`DF08` from applet 1.1 on).
    fn fci(&self) -> Outcome {
        let fail = Status::UnspecifiedCheckingError;
        let mut props = vec![
            tlv::primitive(0xDF05, &self.firmware.applet_version()).ok_or(fail)?,
            tlv::primitive(0xDF04, &[self.life_cycle()]).ok_or(fail)?,
        ];
        if let Some(p) = &self.state.personal {
            props.push(tlv::primitive(0xDF01, p.serial.as_bytes()).ok_or(fail)?);
        }
        if self.firmware != Firmware::V1_0 {
            props.push(tlv::primitive(DataObject::TxVersions.tag(), &self.tx_versions()).ok_or(fail)?);
        }
        let fci = tlv::constructed(
            0x6F,
            vec![tlv::primitive(0x84, &AID).ok_or(fail)?, tlv::constructed(0xA5, props).ok_or(fail)?],
        )
        .ok_or(fail)?;
        Ok(fci.to_vec())
    }

    /// `DF08`'s value: the version numbers this firmware signs.
    fn tx_versions(&self) -> Vec<u8> {
        self.firmware.tx_versions().iter().map(|v| v.number()).collect()
    }

    fn life_cycle(&self) -> u8 {
        if self.state.personal.is_some() {
            LCS_OPERATIONAL
        } else {
            LCS_FACTORY
        }
    }

    /// VERIFY.
    ///
    /// - Status query: `9000` verified, `63Cx` x tries left, `6983` blocked.
    /// - Check: `9000` right PIN (tries back to 3); `63Cx` wrong PIN, x tries left (`63C0`
    ///   on the last one); `6983` already blocked (nothing compared).
    /// - Reset (P1 = `FF`): `9000`, PIN no longer verified.
    /// - `6985` not personalized (there is no PIN); `6581` the spent try could not be committed.
    fn verify(&mut self, v: Verify) -> Outcome {
        match v {
            Verify::Reset => {
                self.pin_verified = false;
                Ok(Vec::new())
            }
            Verify::Status => {
                let p = self.state.personal.as_ref().ok_or(Status::ConditionsOfUseNotSatisfied)?;
                match (self.pin_verified, p.pin_tries) {
                    (true, _) => Ok(Vec::new()),
                    (false, 0) => Err(Status::OperationBlocked),
                    (false, n) => Err(Status::RemainingRetries(n)),
                }
            }
            Verify::Check(pin) => {
                self.pin_verified = false;
                self.spend_try_then(TryCounter::Pin, Ok(()), |s, ()| pin_matches(s, &pin))?;
                if let Some(p) = self.state.personal.as_mut() {
                    p.pin_tries = PIN_TRIES;
                }
                self.commit()?;
                self.pin_verified = true;
                Ok(Vec::new())
            }
        }
    }

    /// The one way a secret is checked: spend a try of `counter`, commit it, and only then
    /// compare, so that cutting the power at any moment never yields a free guess.
    ///
    /// `ready` is the command's own precondition, looked at after the blocked check and
    /// before anything is spent; `compare` (constant time) gets its value and returns
    /// `Some` on a match. On a match the try is still spent: the caller restores the tries
    /// in its own single commit.
    ///
    /// `Ok` match; `63Cx` no match, x tries left; `6983` no try left (nothing spent or
    /// compared); `6985` not personalized (PIN, PUK), or `ready`'s status; `6581` the spent
    /// try could not be committed (nothing compared).
    fn spend_try_then<I, T>(
        &mut self,
        counter: TryCounter,
        ready: Result<I, Status>,
        compare: impl FnOnce(&CardState, I) -> Option<T>,
    ) -> Result<T, Status> {
        let tries = counter.tries(&mut self.state).ok_or(Status::ConditionsOfUseNotSatisfied)?;
        let Some(left) = tries.checked_sub(1) else {
            return Err(Status::OperationBlocked);
        };
        let input = ready?;
        *tries = left;
        self.commit()?;
        compare(&self.state, input).ok_or(Status::RemainingRetries(left))
    }

    /// CHANGE REFERENCE DATA: old PIN ‖ new PIN.
    ///
    /// Spends a try and commits it, compares the old PIN, then stores the new PIN with 3
    /// tries in one commit: the file holds the old PIN (with the try spent) or the new one,
    /// never anything else.
    ///
    /// `9000` changed (and the PIN counts as verified); `63Cx` wrong old PIN; `6983` PIN
    /// blocked; `6985` not personalized; `6581` write failed (not verified).
    fn change_reference_data(&mut self, old: PinBlock, new: PinBlock) -> Outcome {
        self.pin_verified = false;
        self.spend_try_then(TryCounter::Pin, Ok(()), |s, ()| pin_matches(s, &old))?;
        if let Some(p) = self.state.personal.as_mut() {
            p.pin = new;
            p.pin_tries = PIN_TRIES;
        }
        self.commit()?;
        self.pin_verified = true;
        Ok(Vec::new())
    }

    /// RESET RETRY COUNTER: PUK ‖ new PIN.
    ///
    /// `9000` PIN replaced, PIN tries 3, PUK tries 10 (PIN not verified); `63Cx` wrong PUK,
    /// x tries left; `6983` PUK blocked (only re-personalization helps); `6985` not
    /// personalized; `6581` write failed. A PUK try is spent and committed before comparing.
    fn reset_retry_counter(&mut self, puk: PukBlock, new_pin: PinBlock) -> Outcome {
        self.pin_verified = false;
        self.spend_try_then(TryCounter::Puk, Ok(()), |s, ()| {
            s.personal.as_ref().is_some_and(|p| p.puk.ct_eq(&puk)).then_some(())
        })?;
        if let Some(p) = self.state.personal.as_mut() {
            p.puk_tries = PUK_TRIES;
            p.pin = new_pin;
            p.pin_tries = PIN_TRIES;
        }
        self.commit()?;
        Ok(Vec::new())
    }

    /// GET DATA: the value of the object, without tag and length.
    ///
    /// `9000` + value; `6A88` the object does not exist yet (serial and PIN/PUK tries of a
    /// factory card), or not in this firmware (`DF08` on a 1.0 card).
    fn get_data(&mut self, obj: DataObject) -> Outcome {
        let p = self.state.personal.as_ref();
        let absent = Status::KeyReferenceNotFound;
        match obj {
            DataObject::Serial => Ok(p.ok_or(absent)?.serial.as_bytes().to_vec()),
            DataObject::NextCounter => Ok(p.map_or(0, |p| p.counter).to_be_bytes().to_vec()),
            DataObject::PinTries => Ok(vec![p.ok_or(absent)?.pin_tries]),
            DataObject::LifeCycle => Ok(vec![self.life_cycle()]),
            DataObject::AppletVersion => Ok(self.firmware.applet_version().to_vec()),
            DataObject::PukTries => Ok(vec![p.ok_or(absent)?.puk_tries]),
            DataObject::AdminTries => Ok(vec![self.state.admin_tries]),
            DataObject::TxVersions if self.firmware == Firmware::V1_0 => Err(absent),
            DataObject::TxVersions => Ok(self.tx_versions()),
        }
    }

    /// Moves the chain one step, commits, then computes the code of the old step.
    /// `6985` not personalized or chain exhausted; `6982` PIN not verified; `6581` the new
    /// step could not be committed (no code).
    fn next_code(&mut self, code: impl FnOnce(&ChainKey, u64) -> Otp) -> Outcome {
        let Some(p) = self.state.personal.as_mut() else {
            return Err(Status::ConditionsOfUseNotSatisfied);
        };
        if !self.pin_verified {
            return Err(Status::SecurityStatusNotSatisfied);
        }
        let counter = p.counter;
        let next = counter.checked_add(1).ok_or(Status::ConditionsOfUseNotSatisfied)?;
        let ck = p.chain_key.clone();
        p.chain_key = ck.next();
        p.counter = next;
        self.commit()?;
        let otp = code(&ck, counter);
        tlv::encode_primitives(&[
            (u16::from(tag::COUNTER), &counter.to_be_bytes()),
            (u16::from(tag::OTP), otp.as_str().as_bytes()),
        ])
        .ok_or(Status::UnspecifiedCheckingError)
    }

    /// LOGIN OTP: `03 08 counter ‖ 04 08 code`.
    ///
    /// `9000`; `6985` not personalized; `6982` PIN not verified; `6581` write failed.
    fn login_otp(&mut self, req: LoginRequest<'_>) -> Outcome {
        self.next_code(|ck, i| login_otp(ck, i, req.challenge, req.verifier_id))
    }

    /// TRANSACTION OTP: `03 08 counter ‖ 04 08 code`, binding the transaction fields in the
    /// context version the request's tags chose.
    ///
    /// `9000`; `6A80` a version this firmware does not sign (tags `09`/`0A` on a 1.0 card,
    /// refused before anything else as 1.0's parser did); `6985` not personalized; `6982`
    /// PIN not verified; `6581` write failed.
    fn transaction_otp(&mut self, req: TxRequest<'_>) -> Outcome {
        if !self.firmware.tx_versions().contains(&req.fields.version) {
            return Err(Status::IncorrectDataParameter);
        }
        self.next_code(|ck, i| tx_otp(ck, i, req.challenge, &req.fields))
    }

    /// GET CHALLENGE: a fresh 16-byte card challenge for the next EXTERNAL AUTHENTICATE.
    ///
    /// `9000` + challenge; `6983` admin key blocked; `6F00` no randomness.
    fn get_challenge(&mut self) -> Outcome {
        self.admin = Admin::Idle;
        if self.state.admin_tries == 0 {
            return Err(Status::OperationBlocked);
        }
        let mut rc = [0u8; CHALLENGE_LEN];
        if !(self.random)(&mut rc) {
            return Err(Status::UnspecifiedCheckingError);
        }
        self.admin = Admin::Challenged(rc);
        Ok(rc.to_vec())
    }

    /// EXTERNAL AUTHENTICATE: host challenge ‖ host cryptogram; answers the card cryptogram.
    ///
    /// An admin try is spent and committed before comparing. `9000` + card cryptogram
    /// (session open, tries back to 10); `63Cx` wrong cryptogram, x tries left; `6983`
    /// admin key blocked; `6985` no GET CHALLENGE just before; `6581` write failed.
    fn external_authenticate(&mut self, rh: [u8; CHALLENGE_LEN], hc: [u8; MAC_LEN]) -> Outcome {
        let challenged = match core::mem::replace(&mut self.admin, Admin::Idle) {
            Admin::Challenged(rc) => Ok(rc),
            Admin::Idle | Admin::Open(_) => Err(Status::ConditionsOfUseNotSatisfied),
        };
        let keys = self
            .spend_try_then(TryCounter::Admin, challenged, |s, rc| {
                let keys = SessionKeys::derive(&s.admin_key, &rh, &rc);
                SessionKeys::verify(&keys.host_cryptogram(), &hc).then_some(keys)
            })
            .inspect_err(|sw| {
                if let Status::RemainingRetries(left) = sw {
                    tracing::info!(tries_left = left, "admin authentication failed");
                }
            })?;
        self.state.admin_tries = ADMIN_TRIES;
        self.commit()?;
        let cc = keys.card_cryptogram();
        self.admin = Admin::Open(keys);
        Ok(cc.to_vec())
    }

    /// PERSONALIZE: encrypted and MACed seed, PIN, PUK and serial (see `docs/protocol.md`).
    /// Replaces any earlier personalization: the old chain is gone, the counter restarts at 0.
    /// Closes the admin session whatever the outcome.
    ///
    /// `9000` + R-MAC; `6982` no admin session; `6988` C-MAC wrong; `6A80` plaintext
    /// malformed; `6581` write failed.
    fn personalize(&mut self, header: [u8; 4], protected: &[u8]) -> Outcome {
        let Admin::Open(keys) = core::mem::replace(&mut self.admin, Admin::Idle) else {
            return Err(Status::SecurityStatusNotSatisfied);
        };
        let (plain, c_mac) = keys.unwrap(header, protected).map_err(|e| match e {
            crate::scp::UnwrapError::Mac => Status::IncorrectSecureMessagingDataObjects,
            crate::scp::UnwrapError::Padding => Status::IncorrectDataParameter,
        })?;
        let bad = Status::IncorrectDataParameter;
        let [seed, pin, puk, serial] =
            tlv::parse_flat(&plain, [tag::SEED, tag::PIN, tag::PUK, tag::SERIAL]).ok_or(bad)?;
        // The values borrow from `plain` (zeroized on drop); the seed is copied once, into
        // a zeroizing array, and from there into the chain key.
        let seed = Zeroizing::new(<[u8; 32]>::try_from(seed.ok_or(bad)?).map_err(|_| bad)?);
        let pin = PinBlock::from_block(pin.ok_or(bad)?).map_err(|_| bad)?;
        let puk = PukBlock::from_block(puk.ok_or(bad)?).map_err(|_| bad)?;
        let serial = core::str::from_utf8(serial.ok_or(bad)?).map_err(|_| bad)?.to_owned();
        if !paysim_wire::CardSerial::is_valid(&serial) {
            return Err(bad);
        }
        self.state.personal = Some(Personal {
            serial,
            pin,
            pin_tries: PIN_TRIES,
            puk,
            puk_tries: PUK_TRIES,
            chain_key: ChainKey::from_bytes(*seed),
            counter: 0,
        });
        self.pin_verified = false;
        self.commit()?;
        // Only now: a failed write (6581) must not leave a log claiming the card is personalized.
        if let Some(p) = &self.state.personal {
            tracing::info!(serial = %p.serial, "card personalized");
        }
        Ok(keys.r_mac(&c_mac).to_vec())
    }
}

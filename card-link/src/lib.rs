//! # card-link: the one way the workspace talks to a card
//!
//! The reader bridge, the operator tools and the end-to-end harness all reach the PAYSIM card
//! through this crate. It is the seam where I/O meets protocol: everything above it (the
//! APDU builders and parsers of `card_applet::host`, the bridge's operations, personalization)
//! is written against the small [`Transport`] trait, and PC/SC is one implementation of it.
//!
//! - [`Transport`]: where a card is ([`Transport::reader`]), one exclusive transaction that
//!   ends with a [`Disposition`] ([`Transport::transaction`]), and a reset outside one.
//!   Inside a transaction the card is a [`Frames`]: one command APDU in, one response out.
//! - [`TransportExt::exchange`]: the transaction everyone should use. It hands out an
//!   [`Exchange`], whose [`Exchange::transmit`] returns the whole answer (data ‖ SW1 SW2) with
//!   `61xx` followed by GET RESPONSE once, in `card_applet::host::transceive`. It enforces the
//!   **PIN-state rule**: an exchange that sent VERIFY with a PIN, CHANGE REFERENCE DATA or
//!   RESET RETRY COUNTER ends with VERIFY P1 = `FF` (the card forgets the verified PIN, ISO/IEC
//!   7816-4 §11.5.6) and, when the card does not answer that with `9000`, with a card reset,
//!   so a verified PIN never outlives it. A host that dies inside the exchange never sends
//!   either: pcscd then disconnects the dead client's handle with a card reset (pcsc-lite
//!   resets every card a vanished client still had connected). That reset comes after pcscd
//!   has already released the dead handle's transaction, so a shared handle waiting for the
//!   card could slip in before it; connections are therefore exclusive unless asked
//!   otherwise ([`Sharing`]), and nobody can connect until the reset is done. A test kills
//!   such a client and checks.
//! - [`Pcsc`] and [`PcscCard`]: the PC/SC implementation. Exclusive connections by default
//!   (shared for observers, [`Sharing`]), waiting up to [`BUSY_WAIT`] for a card another
//!   program holds ([`Error::CardBusy`] after that). Reader listing and choice (by name,
//!   or the one reader whose card answers SELECT for an AID), bounded `SCardGetStatusChange`
//!   waits ([`Pcsc::wait_present`], [`Pcsc::wait_empty`], [`Pcsc::wait_swap`]), and a
//!   reconnect after a card reset or a pcscd restart. Answers are always received into a
//!   `MAX_BUFFER_SIZE_EXTENDED` buffer: a too-small buffer fails after the card executed the
//!   command.
//! - [`MemCard`]: the card core (`CardFront<MemStore>`) in this process, behind the same trait,
//!   so APDU logic is tested without pcscd; [`MemCard::personalized`] makes a personalized card
//!   through the real admin protocol.
//! - [`Error`]: the one error type (no service, no reader, unknown reader, no card, card
//!   busy, card removed or reset, several cards, wrong applet, other PC/SC failures).
//!
//! ```
//! use card_applet::host;
//! use card_link::{MemCard, TransportExt};
//!
//! let mut card = MemCard::personalized(&[7; 32], "1234", "12345678", "PSIM-DOC").unwrap();
//! let (counter, _code) = card
//!     .exchange(|ex| {
//!         host::parse_select(&ex.transmit(&host::select())?).unwrap();
//!         host::parse_verify(&ex.transmit(&host::verify("1234").unwrap())?).unwrap();
//!         Ok::<_, card_link::Error>(host::parse_otp(&ex.transmit(&host::login_otp(&[1; 32], "v").unwrap())?).unwrap())
//!     })
//!     .unwrap();
//! assert_eq!(counter, 0);
//! // The exchange verified the PIN, so it ended with VERIFY P1 = FF: the PIN is forgotten.
//! assert!(!card.with_front(|f| f.card().pin_verified()));
//! let status = card
//!     .exchange(|ex| {
//!         ex.transmit(&host::select())?;
//!         ex.transmit(&host::verify_status())
//!     })
//!     .unwrap();
//! assert_eq!(host::parse_pin_status(&status), Ok(host::PinStatus::NotVerified { tries_left: 3 }));
//! ```

mod error;
mod memory;
mod pcsc_transport;

pub use error::{Error, Result};
pub use memory::MemCard;
pub use pcsc_transport::{Pcsc, PcscCard, ReaderStatus, Sharing, Swap, BUSY_WAIT};

/// How a transaction (or a reset outside one) leaves the card (PC/SC `SCARD_*_CARD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Leave the card as it is: its volatile state (a verified PIN) stays.
    Leave,
    /// Warm reset: the card's volatile state is gone.
    Reset,
    /// Power off (and on again at the next use): a cold reset.
    Unpower,
}

/// A card inside an open transaction: one command APDU frame in, one response frame out,
/// as the reader delivers it (a `61xx` answer is not followed up here).
pub trait Frames {
    /// Sends `apdu` and returns the response frame (data ‖ SW1 SW2).
    fn frame(&mut self, apdu: &[u8]) -> Result<Vec<u8>>;
}

/// A connection to one card: PC/SC ([`PcscCard`]) or in process ([`MemCard`]).
pub trait Transport {
    /// Where the card is (the PC/SC reader name), for messages.
    fn reader(&self) -> &str;

    /// Runs `body` in one exclusive transaction and ends it with the disposition `body`
    /// returns. Errors only when the transaction cannot begin (then `body` did not run);
    /// failures inside are `body`'s to report. Use [`TransportExt::exchange`] unless a test
    /// needs to choose the disposition itself.
    fn transaction(&mut self, body: &mut dyn FnMut(&mut dyn Frames) -> Disposition) -> Result<()>;

    /// Resets (or powers off) the card outside a transaction.
    fn reset(&mut self, how: Disposition) -> Result<()>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn reader(&self) -> &str {
        (**self).reader()
    }
    fn transaction(&mut self, body: &mut dyn FnMut(&mut dyn Frames) -> Disposition) -> Result<()> {
        (**self).transaction(body)
    }
    fn reset(&mut self, how: Disposition) -> Result<()> {
        (**self).reset(how)
    }
}

/// The card during one exchange: whole answers, and a record of whether the PIN was touched.
pub struct Exchange<'a> {
    frames: &'a mut dyn Frames,
    pin_touched: bool,
}

impl Exchange<'_> {
    /// Sends one APDU and returns the whole answer (data ‖ SW1 SW2), following `61xx` with
    /// GET RESPONSE (ISO/IEC 7816-4 §5.3.4) through `card_applet::host::transceive`.
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        if touches_pin(apdu) {
            self.pin_touched = true;
        }
        let frames = &mut *self.frames;
        card_applet::host::transceive(apdu, &mut |a: &[u8]| frames.frame(a))
    }

    /// Whether a PIN command was sent in this exchange (it then ends with VERIFY P1 = `FF`,
    /// or a card reset when the card refuses that).
    pub fn pin_touched(&self) -> bool {
        self.pin_touched
    }
}

/// VERIFY with a reference value (ISO/IEC 7816-4 §11.5.6; VERIFY without data only asks for
/// the status), CHANGE REFERENCE DATA (§11.5.7) and RESET RETRY COUNTER (§11.5.10).
fn touches_pin(apdu: &[u8]) -> bool {
    const VERIFY: u8 = 0x20;
    const CHANGE_REFERENCE_DATA: u8 = 0x24;
    const RESET_RETRY_COUNTER: u8 = 0x2C;
    match apdu {
        [cla, ins, _, _, rest @ ..] if cla & 0x80 == 0 => match *ins {
            VERIFY => !rest.is_empty(),
            CHANGE_REFERENCE_DATA | RESET_RETRY_COUNTER => true,
            _ => false,
        },
        _ => false,
    }
}

/// Exchanges over any [`Transport`].
pub trait TransportExt: Transport {
    /// Runs `f` in one exclusive transaction. The transaction ends leaving the card as it is;
    /// when `f` touched the PIN (the PIN-state rule), whether `f` succeeded or not, it first
    /// sends VERIFY P1 = `FF` and ends with a card reset unless the card answered `9000`.
    fn exchange<R, E: From<Error>>(&mut self, f: impl FnOnce(&mut Exchange<'_>) -> Result<R, E>) -> Result<R, E> {
        run(self, None, f)
    }

    /// Runs `f` in one exclusive transaction that ends with `end`, whatever `f` sent. This
    /// sets the PIN-state rule aside: it is for tests of the card's own reset behaviour.
    fn transaction_ending<R, E: From<Error>>(
        &mut self,
        end: Disposition,
        f: impl FnOnce(&mut Exchange<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        run(self, Some(end), f)
    }
}

impl<T: Transport + ?Sized> TransportExt for T {}

fn run<T: Transport + ?Sized, R, E: From<Error>>(
    t: &mut T,
    end: Option<Disposition>,
    f: impl FnOnce(&mut Exchange<'_>) -> Result<R, E>,
) -> Result<R, E> {
    let mut f = Some(f);
    let mut out = None;
    t.transaction(&mut |frames| {
        let mut ex = Exchange { frames, pin_touched: false };
        if let Some(f) = f.take() {
            out = Some(f(&mut ex));
        }
        match end {
            Some(d) => d,
            None if ex.pin_touched => forget_pin(ex.frames),
            None => Disposition::Leave,
        }
    })?;
    // `transaction` runs the body once when it returns Ok.
    out.unwrap_or(Err(E::from(Error::CardRemoved)))
}

/// Ends the PIN-verified state without a card reset where the card allows it: VERIFY with
/// P1 = `FF` (one frame, no data, so no `61xx` to follow). Any answer but `9000`, or a
/// transport error, falls back to a reset: a card that is not ours, another applet selected
/// last, or a card that lost the frame all end unverified either way.
fn forget_pin(frames: &mut dyn Frames) -> Disposition {
    match frames.frame(&card_applet::host::verify_reset()) {
        Ok(answer) if answer.as_slice() == [0x90, 0x00] => Disposition::Leave,
        _ => Disposition::Reset,
    }
}

/// `00 A4 04 00 Lc AID 00`: SELECT by DF name (ISO/IEC 7816-4 §11.2.2), first occurrence.
pub fn select_aid(aid: &[u8]) -> Vec<u8> {
    let mut apdu = vec![0x00, 0xA4, 0x04, 0x00, u8::try_from(aid.len()).unwrap_or(0)];
    apdu.extend_from_slice(aid);
    apdu.push(0x00);
    apdu
}

#[cfg(test)]
mod tests {
    use super::*;
    use card_applet::command::DataObject;
    use card_applet::host::{self, CardError, PinStatus};

    const SEED: [u8; 32] = [0x42; 32];

    fn card() -> MemCard {
        MemCard::personalized(&SEED, "1234", "12345678", "PSIM-LINK-1").unwrap()
    }

    fn pin_status(card: &mut MemCard) -> PinStatus {
        card.exchange(|ex| {
            host::parse_select(&ex.transmit(&host::select())?).unwrap();
            Ok::<_, Error>(host::parse_pin_status(&ex.transmit(&host::verify_status())?).unwrap())
        })
        .unwrap()
    }

    #[test]
    fn only_pin_commands_touch_the_pin() {
        assert!(touches_pin(&host::verify("1234").unwrap()));
        assert!(!touches_pin(&host::verify_status()));
        assert!(touches_pin(&host::change_pin("1234", "4321").unwrap()));
        assert!(touches_pin(&host::reset_retry_counter("12345678", "4321").unwrap()));
        assert!(!touches_pin(&host::select()));
        assert!(!touches_pin(&host::get_data(DataObject::PinTries)));
        assert!(!touches_pin(&host::login_otp(&[1; 32], "v").unwrap()));
        assert!(!touches_pin(&[0x20]));
    }

    /// The in-process card answers with `61xx` when the command's Le is shorter than the
    /// answer; one `transmit` brings the whole answer, as over PC/SC.
    #[test]
    fn get_response_chaining_returns_the_whole_answer() {
        let mut card = card();
        let whole = card.exchange(|ex| ex.transmit(&host::select())).unwrap();
        // The same SELECT with Le = 4: the core sends 4 bytes and `61xx`.
        let mut short = host::select();
        *short.last_mut().unwrap() = 4;
        let first = card.exchange(|ex| {
            Ok::<_, Error>(card_applet::host::split(&ex.transmit(&short)?).map(|(d, sw)| (d.len(), sw)).unwrap())
        });
        assert_eq!(first.unwrap(), (whole.len() - 2, 0x9000), "transmit follows 61xx to the end");
        let frames = card.with_front(|f| f.process(&short));
        assert_eq!(frames.len(), 6);
        assert_eq!(frames[4], 0x61, "the core really chains: {frames:02X?}");
        let fci = host::parse_select(&whole).unwrap();
        assert_eq!(fci.serial.as_deref(), Some("PSIM-LINK-1"));
    }

    #[test]
    fn an_exchange_that_verified_the_pin_leaves_it_unverified() {
        let mut card = card();
        card.exchange(|ex| {
            ex.transmit(&host::select())?;
            host::parse_verify(&ex.transmit(&host::verify("1234").unwrap())?).unwrap();
            assert!(ex.pin_touched());
            let (counter, _) = host::parse_otp(&ex.transmit(&host::login_otp(&[3; 32], "v").unwrap())?).unwrap();
            assert_eq!(counter, 0);
            Ok::<_, Error>(())
        })
        .unwrap();
        // SELECT clears the verification too, so the core is asked directly.
        assert!(!card.with_front(|f| f.card().pin_verified()), "the exchange ended unverified");
        // No reset: the applet is still selected, so VERIFY without SELECT reaches it and
        // reports the PIN unverified (after a reset no applet is selected and it would not).
        let status = card.transaction_ending(Disposition::Leave, |ex| ex.transmit(&host::verify_status())).unwrap();
        assert_eq!(host::parse_pin_status(&status), Ok(PinStatus::NotVerified { tries_left: 3 }));
        assert_eq!(pin_status(&mut card), PinStatus::NotVerified { tries_left: 3 });
        let early = card
            .exchange(|ex| {
                ex.transmit(&host::select())?;
                ex.transmit(&host::login_otp(&[3; 32], "v").unwrap())
            })
            .unwrap();
        assert_eq!(host::parse_otp(&early).unwrap_err(), CardError::SecurityNotSatisfied);
    }

    #[test]
    fn a_failed_exchange_that_touched_the_pin_resets_too() {
        let mut card = card();
        #[derive(Debug)]
        struct GaveUp;
        impl From<Error> for GaveUp {
            fn from(_: Error) -> Self {
                GaveUp
            }
        }
        let r: std::result::Result<(), GaveUp> = card.exchange(|ex| {
            ex.transmit(&host::select())?;
            ex.transmit(&host::verify("1234").unwrap())?;
            Err(GaveUp)
        });
        assert!(r.is_err());
        assert!(!card.with_front(|f| f.card().pin_verified()));
        assert_eq!(pin_status(&mut card), PinStatus::NotVerified { tries_left: 3 });
    }

    /// A card whose answer to VERIFY P1 = `FF` is fixed, to see which disposition follows.
    struct Answers(Result<Vec<u8>>);

    impl Frames for Answers {
        fn frame(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
            assert_eq!(apdu, [0x00, 0x20, 0xFF, 0x81], "only VERIFY P1 = FF is sent");
            std::mem::replace(&mut self.0, Err(Error::CardRemoved))
        }
    }

    #[test]
    fn forgetting_the_pin_falls_back_to_a_reset_unless_the_card_says_9000() {
        assert_eq!(forget_pin(&mut Answers(Ok(vec![0x90, 0x00]))), Disposition::Leave);
        for refused in [vec![0x6D, 0x00], vec![0x6A, 0x86], vec![0x69, 0x85], vec![], vec![0x01, 0x90, 0x00]] {
            assert_eq!(forget_pin(&mut Answers(Ok(refused.clone()))), Disposition::Reset, "{refused:02X?}");
        }
        assert_eq!(forget_pin(&mut Answers(Err(Error::CardRemoved))), Disposition::Reset);
    }

    #[test]
    fn transaction_ending_leave_keeps_the_pin_and_a_reset_clears_it() {
        let mut card = card();
        card.transaction_ending(Disposition::Leave, |ex| {
            ex.transmit(&host::select())?;
            host::parse_verify(&ex.transmit(&host::verify("1234").unwrap())?).unwrap();
            Ok::<_, Error>(())
        })
        .unwrap();
        assert!(card.with_front(|f| f.card().pin_verified()), "Leave keeps the verification");
        // No SELECT here: it would clear the verification itself.
        let status = card.transaction_ending(Disposition::Leave, |ex| ex.transmit(&host::verify_status())).unwrap();
        assert_eq!(host::parse_pin_status(&status), Ok(PinStatus::Verified));
        card.reset(Disposition::Unpower).unwrap();
        assert_eq!(pin_status(&mut card), PinStatus::NotVerified { tries_left: 3 });
    }

    #[test]
    fn wrong_pins_count_down_across_exchanges() {
        let mut card = card();
        for left in [2u8, 1] {
            let resp = card
                .exchange(|ex| {
                    ex.transmit(&host::select())?;
                    ex.transmit(&host::verify("9999").unwrap())
                })
                .unwrap();
            assert_eq!(host::parse_verify(&resp), Err(CardError::WrongPin { tries_left: left }));
        }
        assert_eq!(pin_status(&mut card), PinStatus::NotVerified { tries_left: 1 });
    }

    #[test]
    fn a_clone_is_another_connection_to_the_same_card() {
        let mut a = card();
        let mut b = a.clone().with_reader("second connection");
        assert_eq!(b.reader(), "second connection");
        a.exchange(|ex| {
            ex.transmit(&host::select())?;
            ex.transmit(&host::verify("0000").unwrap())
        })
        .unwrap();
        assert_eq!(pin_status(&mut b), PinStatus::NotVerified { tries_left: 2 });
    }

    #[test]
    fn the_personalized_card_computes_the_documented_chain() {
        let mut card = card();
        let codes = card
            .exchange(|ex| {
                ex.transmit(&host::select())?;
                host::parse_verify(&ex.transmit(&host::verify("1234").unwrap())?).unwrap();
                let mut out = Vec::new();
                for _ in 0..2 {
                    out.push(host::parse_otp(&ex.transmit(&host::login_otp(&[9; 32], "vid").unwrap())?).unwrap());
                }
                Ok::<_, Error>(out)
            })
            .unwrap();
        let ck = paysim_otp::ChainKey::from_bytes(SEED);
        for (i, (counter, code)) in codes.iter().enumerate() {
            let i = u64::try_from(i).unwrap();
            assert_eq!(*counter, i);
            assert!(paysim_otp::login_otp(&ck.advance(i), i, &[9; 32], b"vid").matches(code.as_str()));
        }
    }

    #[test]
    fn select_aid_is_the_hosts_select_for_the_paysim_aid() {
        assert_eq!(select_aid(&card_applet::AID), host::select());
    }
}

//! The ISO frame layer around the core: response chaining with `61xx` + GET RESPONSE
//! (ISO/IEC 7816-4 §5.3.4 / §7.6.1), power and reset, and the ATR. Sans-I/O: the vpcd
//! transport feeds it bytes and sends back what it returns.
//!
//! Delivery rule: a response whose data is longer than the command's Ne (0 when there was
//! no Le field; at most 256 for a short APDU) is sent in pieces: the first Ne bytes with
//! `61xx`, where `xx` is the number of bytes still waiting (`00` = 256 or more); each
//! `00 C0 00 00 Le` returns the next piece. Any other command discards what is waiting.
//!
//! While the YKOATH applet is selected, two rules follow what a YubiKey does (and what
//! ykman relies on): a command without Le is answered as if Le were `00` (up to 256 bytes
//! at once), and SEND REMAINING `00 A5 00 00 [Le]` returns the next piece like GET RESPONSE
//! (its Le is optional too).

use iso7816::Status;
use zeroize::Zeroizing;

use alloc::vec::Vec;

use crate::apdu::{sw_bytes, CommandView};
use crate::card::{Applet, Card};
use crate::command::{ins, CLA_ISO};
use crate::store::Store;

/// The card's ATR (ISO/IEC 7816-3 §8.2):
///
/// ```text
/// 3B           TS  direct convention
/// 8C           T0  TD1 follows, 12 historical bytes
/// 01           TD1 T=1, no further interface bytes
/// 80           category indicator: COMPACT-TLV objects follow (ISO/IEC 7816-4 §8.1.1)
/// 56 "PAYSIM"  tag 5 (card issuer's data), 6 bytes
/// 73 80 00 40  tag 7 (card capabilities): selection by full DF name; extended Lc/Le
/// F7           TCK (XOR of T0 .. last historical byte, so that T0 ^ .. ^ TCK = 0)
/// ```
pub const ATR: [u8; 16] =
    [0x3B, 0x8C, 0x01, 0x80, 0x56, 0x50, 0x41, 0x59, 0x53, 0x49, 0x4D, 0x73, 0x80, 0x00, 0x40, 0xF7];

/// Response data waiting for GET RESPONSE. It can be an OTP, so it is wiped when it is
/// delivered, discarded by another command, or lost on reset.
struct Pending {
    data: Zeroizing<Vec<u8>>,
    offset: usize,
    status: Status,
}

/// A card as a reader sees it: the core plus the frame layer.
pub struct CardFront<S: Store> {
    card: Card<S>,
    pending: Option<Pending>,
}

/// The file-backed card that `virtual-card` runs.
#[cfg(feature = "std")]
pub type VirtualCard = CardFront<crate::state::FileStore>;

#[cfg(feature = "std")]
impl CardFront<crate::state::FileStore> {
    /// Opens the card file at `path` (see [`FileStore::open`](crate::state::FileStore::open)):
    /// errors if another process runs it, if it is readable by group/others, or if it cannot
    /// be read or parsed. The card draws its challenges from the operating system.
    pub fn open(path: &std::path::Path) -> Result<Self, crate::state::StoreError> {
        let (store, state) = crate::state::FileStore::open(path)?;
        Ok(Self::new(Card::new(store, state)))
    }
}

impl<S: Store> CardFront<S> {
    /// Wraps a core in its powered-off state.
    pub fn new(card: Card<S>) -> Self {
        Self { card, pending: None }
    }

    /// The ATR the reader reports for this card.
    pub fn atr() -> &'static [u8] {
        &ATR
    }

    /// The core (to inspect state in tests).
    pub fn card(&self) -> &Card<S> {
        &self.card
    }

    /// The core, mutably (tests inject store failures through it).
    pub fn card_mut(&mut self) -> &mut Card<S> {
        &mut self.card
    }

    /// Warm or cold reset: PIN verification, admin session, selection and any waiting
    /// GET RESPONSE data are gone. Persistent state is untouched.
    pub fn reset(&mut self) {
        self.card.reset();
        self.pending = None;
    }

    /// Power off: the same volatile state is lost as on reset.
    pub fn power_off(&mut self) {
        self.reset();
    }

    /// One command APDU in, one response APDU (data ‖ SW1 SW2) out.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let view = match CommandView::parse(apdu) {
            Ok(v) => v,
            Err(sw) => {
                self.pending = None;
                return sw_bytes(sw).to_vec();
            }
        };
        let oath = self.card.selected() == Applet::Oath;
        if view.cla == CLA_ISO && view.ins == ins::GET_RESPONSE {
            return self.get_response(&view, false);
        }
        if oath && view.cla == CLA_ISO && view.ins == crate::oath::ins::SEND_REMAINING {
            return self.get_response(&view, true);
        }
        self.pending = None;
        let resp = self.card.handle_view(view);
        // The applet selected after the command (a SELECT may have changed it) sets the rule.
        let default_ne = if self.card.selected() == Applet::Oath { crate::apdu::SHORT_NE_MAX } else { 0 };
        let ne = view.ne.unwrap_or(default_ne);
        self.deliver(Pending { data: Zeroizing::new(resp.data), offset: 0, status: resp.status }, ne)
    }

    /// GET RESPONSE `00 C0 00 00 Le`, and YKOATH's SEND REMAINING `00 A5 00 00 [Le]`
    /// (`send_remaining`: Le optional, 256 when absent; `6B00` for P1-P2).
    ///
    /// Next piece + `61xx`/final SW; `6985` nothing waiting; `6A86` P1-P2 not `0000`;
    /// `6700` data present or no Le. The waiting data is kept only on success.
    fn get_response(&mut self, view: &CommandView<'_>, send_remaining: bool) -> Vec<u8> {
        let pending = self.pending.take();
        let ne = if send_remaining { Some(view.ne.unwrap_or(crate::apdu::SHORT_NE_MAX)) } else { view.ne };
        let status = if view.p1 != 0 || view.p2 != 0 {
            if send_remaining {
                Status::WrongParameters
            } else {
                Status::IncorrectP1OrP2Parameter
            }
        } else if !view.data.is_empty() || ne.is_none() {
            Status::WrongLength
        } else if let Some(p) = pending {
            return self.deliver(p, ne.unwrap_or(0));
        } else {
            Status::ConditionsOfUseNotSatisfied
        };
        sw_bytes(status).to_vec()
    }

    fn deliver(&mut self, p: Pending, ne: usize) -> Vec<u8> {
        let rest = p.data.get(p.offset..).unwrap_or_default();
        let (now, later) = rest.split_at(rest.len().min(ne));
        // Sized for the status word too, so that adding it does not reallocate and leave an
        // unwiped copy of the data behind.
        let mut out = Vec::with_capacity(now.len() + 2);
        out.extend_from_slice(now);
        if later.is_empty() {
            out.extend_from_slice(&sw_bytes(p.status));
        } else {
            let xx = u8::try_from(later.len()).unwrap_or(0);
            out.extend_from_slice(&sw_bytes(Status::MoreAvailable(xx)));
            let offset = p.offset + now.len();
            self.pending = Some(Pending { offset, ..p });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn atr_check_byte_is_right() {
        let x = super::ATR[1..].iter().fold(0u8, |a, b| a ^ b);
        assert_eq!(x, 0, "T0..TCK must XOR to zero");
        assert_eq!(usize::from(super::ATR[1] & 0x0F), super::ATR.len() - 4, "historical byte count");
    }
}

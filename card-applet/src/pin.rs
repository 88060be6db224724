//! PIN and PUK blocks as they travel in VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
//! and PERSONALIZE, and as the card stores them.
//!
//! - PIN block: 4 to 8 ASCII digits, right-padded with `FF` to 8 bytes
//!   (`"1234"` → `31 32 33 34 FF FF FF FF`).
//! - PUK block: exactly 8 ASCII digits, no padding.
//!
//! Both are kept in [`Zeroizing`] buffers and compared in constant time.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Length of a PIN or PUK block on the wire.
pub const BLOCK_LEN: usize = 8;
/// Fewest PIN digits.
pub const PIN_MIN_DIGITS: usize = 4;
/// Most PIN digits.
pub const PIN_MAX_DIGITS: usize = 8;
/// Digits of a PUK.
pub const PUK_DIGITS: usize = 8;

/// Why a PIN or PUK was refused before it reached the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinFormatError {
    #[error("a PIN is 4 to 8 digits (0-9)")]
    Pin,
    #[error("a PUK is exactly 8 digits (0-9)")]
    Puk,
}

/// A PIN as its 8-byte padded block. `Debug` never shows it; `==` is constant-time.
#[derive(Clone)]
pub struct PinBlock(Zeroizing<[u8; BLOCK_LEN]>);

/// A PUK as its 8-byte block. `Debug` never shows it; `==` is constant-time.
#[derive(Clone)]
pub struct PukBlock(Zeroizing<[u8; BLOCK_LEN]>);

impl core::fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PinBlock(<secret>)")
    }
}

impl core::fmt::Debug for PukBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PukBlock(<secret>)")
    }
}

// `==` on secrets goes through the constant-time comparison, so no caller (or derived
// `PartialEq` of a containing type) can compare them with an early-exit loop by accident.
impl PartialEq for PinBlock {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for PinBlock {}

impl PartialEq for PukBlock {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for PukBlock {}

impl PinBlock {
    /// Pads a PIN typed by a person: 4-8 ASCII digits.
    pub fn from_pin(pin: &str) -> Result<Self, PinFormatError> {
        let digits = pin.as_bytes();
        if !(PIN_MIN_DIGITS..=PIN_MAX_DIGITS).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
            return Err(PinFormatError::Pin);
        }
        let mut block = Zeroizing::new([0xFF; BLOCK_LEN]);
        block[..digits.len()].copy_from_slice(digits);
        Ok(Self(block))
    }

    /// Checks a block received from the wire: 4-8 digits, then only `FF` up to 8 bytes.
    pub fn from_block(bytes: &[u8]) -> Result<Self, PinFormatError> {
        let block: [u8; BLOCK_LEN] = bytes.try_into().map_err(|_| PinFormatError::Pin)?;
        let block = Zeroizing::new(block);
        let digits = block.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits < PIN_MIN_DIGITS || !block[digits..].iter().all(|&b| b == 0xFF) {
            return Err(PinFormatError::Pin);
        }
        Ok(Self(block))
    }

    /// The 8 bytes sent to or stored on the card.
    pub fn as_bytes(&self) -> &[u8; BLOCK_LEN] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

impl PukBlock {
    /// A PUK typed by a person: exactly 8 ASCII digits.
    pub fn from_puk(puk: &str) -> Result<Self, PinFormatError> {
        Self::from_block(puk.as_bytes())
    }

    /// Checks a block received from the wire: exactly 8 ASCII digits.
    pub fn from_block(bytes: &[u8]) -> Result<Self, PinFormatError> {
        let block: [u8; BLOCK_LEN] = bytes.try_into().map_err(|_| PinFormatError::Puk)?;
        let block = Zeroizing::new(block);
        if !block.iter().all(u8::is_ascii_digit) {
            return Err(PinFormatError::Puk);
        }
        Ok(Self(block))
    }

    /// The 8 bytes sent to or stored on the card.
    pub fn as_bytes(&self) -> &[u8; BLOCK_LEN] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_padded_with_ff() {
        assert_eq!(PinBlock::from_pin("1234").unwrap().as_bytes(), b"1234\xFF\xFF\xFF\xFF");
        assert_eq!(PinBlock::from_pin("12345678").unwrap().as_bytes(), b"12345678");
        for bad in ["", "123", "123456789", "12a4", "１２３４", "1234 "] {
            assert_eq!(PinBlock::from_pin(bad), Err(PinFormatError::Pin), "{bad:?}");
        }
    }

    #[test]
    fn wire_blocks_are_checked() {
        assert!(PinBlock::from_block(b"1234\xFF\xFF\xFF\xFF").is_ok());
        assert!(PinBlock::from_block(b"0000000\xFF").is_ok());
        for bad in [
            &b"123\xFF\xFF\xFF\xFF\xFF"[..],
            b"1234\xFF\xFF\xFF1",
            b"1234\x00\xFF\xFF\xFF",
            b"1234\xFF\xFF\xFF",
            b"1234\xFF\xFF\xFF\xFF\xFF",
            b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
        ] {
            assert!(PinBlock::from_block(bad).is_err(), "{bad:02X?}");
        }
        assert!(PukBlock::from_block(b"12345678").is_ok());
        assert!(PukBlock::from_block(b"1234567\xFF").is_err());
        assert!(PukBlock::from_puk("1234567").is_err());
    }

    #[test]
    fn equality_is_by_content() {
        assert_eq!(PinBlock::from_pin("1234").unwrap(), PinBlock::from_block(b"1234\xFF\xFF\xFF\xFF").unwrap());
        assert_ne!(PinBlock::from_pin("1234").unwrap(), PinBlock::from_pin("12345").unwrap());
        assert_eq!(PukBlock::from_puk("12345678").unwrap(), PukBlock::from_puk("12345678").unwrap());
        assert_ne!(PukBlock::from_puk("12345678").unwrap(), PukBlock::from_puk("12345679").unwrap());
    }

    #[test]
    fn debug_hides_the_digits() {
        let p = PinBlock::from_pin("9876").unwrap();
        assert!(!format!("{p:?}").contains("9876"));
        let k = PukBlock::from_puk("13572468").unwrap();
        assert!(!format!("{k:?}").contains("1357"));
    }
}

//! ISO/IEC 7816-4 §5.1 command APDU framing: header, Lc, data, Le, short and extended.
//!
//! [`CommandView::parse`] turns any byte string into a borrowed view or `6700`
//! (wrong length). It never panics and never allocates. Interpreting CLA/INS/P1/P2 is
//! the job of [`crate::command`].

use alloc::vec::Vec;

use iso7816::Status;

/// Largest Ne of a short APDU (`Le = 00`).
pub const SHORT_NE_MAX: usize = 256;
/// Largest Ne of an extended APDU (`Le = 0000`).
pub const EXTENDED_NE_MAX: usize = 65_536;

/// A command APDU split into its fields, borrowing the data field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandView<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// The command data field (Nc bytes; empty for cases 1 and 2).
    pub data: &'a [u8],
    /// Ne, the most response bytes the host accepts: `None` when there is no Le field
    /// (cases 1 and 3), otherwise 1..=256 (short) or 1..=65536 (extended).
    pub ne: Option<usize>,
    /// Whether Lc/Le used the extended (3-byte / 2-byte) encoding.
    pub extended: bool,
}

impl<'a> CommandView<'a> {
    /// Splits `apdu` per ISO/IEC 7816-3 §12.1.3 (the four cases, short and extended).
    ///
    /// Errors: `6700` for anything that is not exactly one well-formed APDU
    /// (shorter than 4 bytes, Lc disagreeing with the length, extended Lc of zero).
    pub fn parse(apdu: &'a [u8]) -> Result<Self, Status> {
        let wrong = Status::WrongLength;
        let (header, body) = match apdu.split_first_chunk::<4>() {
            Some(split) => split,
            None => return Err(wrong),
        };
        let [cla, ins, p1, p2] = *header;
        let mk =
            |data: &'a [u8], ne: Option<usize>, extended: bool| CommandView { cla, ins, p1, p2, data, ne, extended };
        let short_ne = |b: u8| if b == 0 { SHORT_NE_MAX } else { usize::from(b) };
        let ext_ne = |hi: u8, lo: u8| match u16::from_be_bytes([hi, lo]) {
            0 => EXTENDED_NE_MAX,
            n => usize::from(n),
        };
        match body {
            // Case 1.
            [] => Ok(mk(&[], None, false)),
            // Case 2S.
            [le] => Ok(mk(&[], Some(short_ne(*le)), false)),
            // Extended: a zero byte where the short Lc would be.
            [0, rest @ ..] if rest.len() >= 2 => {
                let (len_bytes, rest) = rest.split_at(2);
                let n = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                if rest.is_empty() {
                    // Case 2E: the two bytes were Le.
                    return Ok(mk(&[], Some(ext_ne(len_bytes[0], len_bytes[1])), true));
                }
                if n == 0 {
                    return Err(wrong);
                }
                match rest.len().checked_sub(n) {
                    // Case 3E.
                    Some(0) => Ok(mk(rest, None, true)),
                    // Case 4E.
                    Some(2) => {
                        let (data, le) = rest.split_at(n);
                        Ok(mk(data, Some(ext_ne(le[0], le[1])), true))
                    }
                    _ => Err(wrong),
                }
            }
            [lc, rest @ ..] => {
                let n = usize::from(*lc);
                if n == 0 {
                    // `00` followed by fewer than two bytes: not a valid encoding.
                    return Err(wrong);
                }
                match rest.len().checked_sub(n) {
                    // Case 3S.
                    Some(0) => Ok(mk(rest, None, false)),
                    // Case 4S.
                    Some(1) => {
                        let (data, le) = rest.split_at(n);
                        Ok(mk(data, Some(short_ne(le[0])), false))
                    }
                    _ => Err(wrong),
                }
            }
        }
    }
}

/// Builds a command APDU, choosing the short encoding when data and Ne fit it.
///
/// `ne`: `None` for no Le field, `Some(n)` with `1..=65536`. Data longer than 65535 bytes
/// or an Ne of 0 or above 65536 cannot be encoded and give `None`.
pub fn build(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], ne: Option<usize>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(4 + 3 + data.len() + 2);
    out.extend_from_slice(&[cla, ins, p1, p2]);
    if ne == Some(0) || ne.is_some_and(|n| n > EXTENDED_NE_MAX) || data.len() > 65_535 {
        return None;
    }
    let extended = data.len() > 255 || ne.is_some_and(|n| n > SHORT_NE_MAX);
    if extended {
        out.push(0);
        if !data.is_empty() {
            out.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
            out.extend_from_slice(data);
        }
        if let Some(n) = ne {
            // 65536 is written as 0000.
            let n = if n == EXTENDED_NE_MAX { 0 } else { u16::try_from(n).ok()? };
            out.extend_from_slice(&n.to_be_bytes());
        }
    } else {
        if !data.is_empty() {
            out.push(u8::try_from(data.len()).ok()?);
            out.extend_from_slice(data);
        }
        if let Some(n) = ne {
            // 256 is written as 00.
            out.push(if n == SHORT_NE_MAX { 0 } else { u8::try_from(n).ok()? });
        }
    }
    Some(out)
}

/// The two status bytes of `sw`.
pub fn sw_bytes(sw: Status) -> [u8; 2] {
    u16::from(sw).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_cases_short_and_extended() {
        let v = CommandView::parse(&[0, 0xA4, 4, 0]).unwrap();
        assert_eq!((v.data, v.ne, v.extended), (&[][..], None, false));
        let v = CommandView::parse(&[0, 0xCA, 0xDF, 1, 0]).unwrap();
        assert_eq!((v.data, v.ne), (&[][..], Some(256)));
        let v = CommandView::parse(&[0, 0xCA, 0xDF, 1, 9]).unwrap();
        assert_eq!(v.ne, Some(9));
        let v = CommandView::parse(&[0, 0x20, 0, 0x81, 2, 0xAA, 0xBB]).unwrap();
        assert_eq!((v.data, v.ne), (&[0xAA, 0xBB][..], None));
        let v = CommandView::parse(&[0, 0x20, 0, 0x81, 2, 0xAA, 0xBB, 0]).unwrap();
        assert_eq!((v.data, v.ne), (&[0xAA, 0xBB][..], Some(256)));
        let v = CommandView::parse(&[0, 0xCA, 0xDF, 1, 0, 0, 0]).unwrap();
        assert_eq!((v.ne, v.extended), (Some(65_536), true));
        let v = CommandView::parse(&[0, 0xCA, 0xDF, 1, 0, 0x01, 0x02]).unwrap();
        assert_eq!(v.ne, Some(258));
        let v = CommandView::parse(&[0, 0x20, 0, 0x81, 0, 0, 2, 0xAA, 0xBB]).unwrap();
        assert_eq!((v.data, v.ne, v.extended), (&[0xAA, 0xBB][..], None, true));
        let v = CommandView::parse(&[0, 0x20, 0, 0x81, 0, 0, 2, 0xAA, 0xBB, 0, 0]).unwrap();
        assert_eq!((v.data, v.ne), (&[0xAA, 0xBB][..], Some(65_536)));
    }

    #[test]
    fn malformed_lengths_are_6700() {
        for bad in [
            &[][..],
            &[0],
            &[0, 0xA4, 4],
            &[0, 0xA4, 4, 0, 0, 0],
            &[0, 0xA4, 4, 0, 3, 1, 2],
            &[0, 0xA4, 4, 0, 2, 1, 2, 3, 4],
            &[0, 0xA4, 4, 0, 0, 0, 0, 0],
            &[0, 0xA4, 4, 0, 0, 0, 3, 1, 2],
            &[0, 0xA4, 4, 0, 0, 0, 1, 1, 0],
            &[0, 0xA4, 4, 0, 0, 0, 1, 1, 0, 0, 0],
        ] {
            assert_eq!(CommandView::parse(bad), Err(Status::WrongLength), "{bad:02X?}");
        }
    }

    #[test]
    fn build_round_trips() {
        for (data, ne) in [
            (vec![], None),
            (vec![], Some(256)),
            (vec![], Some(257)),
            (vec![1; 255], Some(1)),
            (vec![1; 256], None),
            (vec![1; 300], Some(65_536)),
        ] {
            let apdu = build(0x80, 0x10, 1, 2, &data, ne).unwrap();
            let v = CommandView::parse(&apdu).unwrap();
            assert_eq!((v.cla, v.ins, v.p1, v.p2), (0x80, 0x10, 1, 2));
            assert_eq!((v.data, v.ne), (&data[..], ne));
        }
        assert_eq!(build(0, 0, 0, 0, &[], Some(0)), None);
        assert_eq!(build(0, 0, 0, 0, &[], Some(65_537)), None);
    }
}

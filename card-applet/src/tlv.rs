//! BER-TLV helpers over `iso7816-tlv` (ISO/IEC 7816-4 §5.2) for the flat lists of primitive
//! objects that command data, OTP answers and the PERSONALIZE payload use, and a depth guard
//! for parsing templates received from a card.

use alloc::vec::Vec;

use iso7816_tlv::ber::{Tag, Tlv, Value};

/// A primitive BER-TLV object with a one- or two-byte tag.
pub fn primitive(tag: u16, value: &[u8]) -> Option<Tlv> {
    let tag = if let Ok(t) = u8::try_from(tag) { Tag::try_from(t) } else { Tag::try_from(tag) };
    Tlv::new(tag.ok()?, Value::Primitive(value.to_vec())).ok()
}

/// A constructed BER-TLV object.
pub fn constructed(tag: u16, children: Vec<Tlv>) -> Option<Tlv> {
    let tag = if let Ok(t) = u8::try_from(tag) { Tag::try_from(t) } else { Tag::try_from(tag) };
    Tlv::new(tag.ok()?, Value::Constructed(children)).ok()
}

/// Concatenated encodings of primitive objects `(tag, value)`; `None` if a tag is invalid.
pub fn encode_primitives(items: &[(u16, &[u8])]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (tag, value) in items {
        out.extend_from_slice(&primitive(*tag, value)?.to_vec());
    }
    Some(out)
}

/// The numeric value of a tag (`DF05` → 0xDF05).
pub fn tag_number(tag: &Tag) -> u64 {
    tag.to_bytes().iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Parses a flat list of primitive objects with one-byte tags from `allowed`, each at most
/// once, in any order. Returns the values indexed like `allowed`, borrowed from `data`: no
/// copy of a secret value (the PERSONALIZE seed, PIN, PUK) is ever made on the heap, so the
/// caller's zeroized buffer is the only one. `None` on anything else: a constructed object or
/// a multi-byte tag, an unknown or repeated tag, an indefinite, overlong (more than 4 length
/// bytes) or truncated length, or trailing bytes. ISO/IEC 7816-4 §5.2 (BER-TLV) lengths:
/// `00`-`7F` in one byte, `81`-`84` followed by 1-4 length bytes.
pub fn parse_flat<const N: usize>(mut data: &[u8], allowed: [u8; N]) -> Option<[Option<&[u8]>; N]> {
    let mut out: [Option<&[u8]>; N] = [None; N];
    while let Some((&tag, rest)) = data.split_first() {
        // Constructed (bit 6) and multi-byte tags (low five bits all set) are never allowed.
        if tag & 0x20 != 0 || tag & 0x1F == 0x1F {
            return None;
        }
        let (&l0, rest) = rest.split_first()?;
        let (len, rest) = if l0 < 0x80 {
            (usize::from(l0), rest)
        } else {
            let n = usize::from(l0 & 0x7F);
            if !(1..=4).contains(&n) {
                return None;
            }
            let (len_bytes, rest) = rest.split_at_checked(n)?;
            (len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)), rest)
        };
        let (value, rest) = rest.split_at_checked(len)?;
        data = rest;
        let slot = out.get_mut(allowed.iter().position(|&a| a == tag)?)?;
        if slot.replace(value).is_some() {
            return None;
        }
    }
    Some(out)
}

/// Whether `data` is a sequence of well-formed BER-TLV objects nested at most `depth`
/// constructed levels deep. Run before handing data from an untrusted card to `Tlv::parse`,
/// which recurses once per nesting level.
pub fn depth_ok(data: &[u8], depth: usize) -> bool {
    let mut i = 0usize;
    while i < data.len() {
        let first = data[i];
        i += 1;
        if first & 0x1F == 0x1F {
            // Subsequent tag bytes: bit 8 set means another follows (at most 2 more here).
            let mut n = 0;
            loop {
                let Some(&b) = data.get(i) else { return false };
                i += 1;
                n += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if n >= 2 {
                    return false;
                }
            }
        }
        let Some(&l0) = data.get(i) else { return false };
        i += 1;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7F);
            if n == 0 || n > 3 {
                return false;
            }
            let Some(bytes) = data.get(i..i + n) else {
                return false;
            };
            i += n;
            bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let Some(value) = data.get(i..i.saturating_add(len)) else {
            return false;
        };
        i += len;
        if first & 0x20 != 0 && (depth == 0 || !depth_ok(value, depth - 1)) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_lists() {
        let data = encode_primitives(&[(2, b"v"), (1, &[0xAA; 3])]).unwrap();
        assert_eq!(data, [2, 1, b'v', 1, 3, 0xAA, 0xAA, 0xAA]);
        let [a, b] = parse_flat(&data, [1, 2]).unwrap();
        assert_eq!(a.unwrap(), [0xAA; 3]);
        assert_eq!(b.unwrap(), b"v");
        // Values borrow from the input.
        assert!(std::ptr::eq(b.unwrap().as_ptr(), &data[2]));
        // Absent tags are None.
        assert_eq!(parse_flat(&[2, 0], [1, 2]).unwrap(), [None, Some(&[][..])]);
        assert_eq!(parse_flat(&[], [1, 2]).unwrap(), [None, None]);
        // Repeated, unknown, constructed, truncated, trailing garbage.
        assert!(parse_flat(&[1, 1, 0, 1, 1, 0], [1, 2]).is_none());
        assert!(parse_flat(&[3, 1, 0], [1, 2]).is_none());
        assert!(parse_flat(&[0x21, 3, 1, 1, 0], [1, 2]).is_none());
        assert!(parse_flat(&[1, 5, 0], [1, 2]).is_none());
        assert!(parse_flat(&[1, 1, 0, 0x81], [1, 2]).is_none());
        // Long-form lengths are accepted.
        let [a, _] = parse_flat(&[1, 0x81, 2, 9, 9], [1, 2]).unwrap();
        assert_eq!(a.unwrap(), [9, 9]);
        let [a, _] = parse_flat(&[1, 0x84, 0, 0, 0, 1, 7], [1, 2]).unwrap();
        assert_eq!(a.unwrap(), [7]);
        // Indefinite length, five length bytes, lengths that overflow the data, multi-byte tags.
        assert!(parse_flat(&[1, 0x80, 0, 0], [1, 2]).is_none());
        assert!(parse_flat(&[1, 0x85, 0, 0, 0, 0, 1, 7], [1, 2]).is_none());
        assert!(parse_flat(&[1, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 7], [1, 2]).is_none());
        assert!(parse_flat(&[1, 0x82, 0x01], [1, 2]).is_none());
        assert!(parse_flat(&[0x1F, 0x01, 1, 0], [0x1F, 1]).is_none());
        assert!(parse_flat(&[1], [1, 2]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn flat_lists_round_trip_and_garbage_never_panics(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3),
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let data = encode_primitives(&[(7, &a), (0x84, &b)]).unwrap();
            let [x, y, z] = parse_flat(&data, [0x84, 7, 1]).unwrap();
            proptest::prop_assert_eq!((x, y, z), (Some(&b[..]), Some(&a[..]), None));
            let _ = parse_flat(&junk, [1, 2, 0x81]);
            let _ = depth_ok(&junk, 2);
        }
    }

    #[test]
    fn depth_guard() {
        let fci = constructed(
            0x6F,
            vec![
                primitive(0x84, &[1, 2]).unwrap(),
                constructed(0xA5, vec![primitive(0xDF05, &[1, 0]).unwrap()]).unwrap(),
            ],
        )
        .unwrap()
        .to_vec();
        assert!(depth_ok(&fci, 2));
        assert!(!depth_ok(&fci, 1));
        let mut deep = vec![];
        for _ in 0..1000 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(!depth_ok(&deep, 4));
        assert!(!depth_ok(&[0x6F, 0x05, 0x84], 4));
    }
}

//! Runs the `vpcd_frames` fuzz harness (`fuzz/vpcd_harness.rs`) on stable: streams written by
//! hand that must reach each of its paths, and random streams under proptest.
#![cfg(feature = "virtual-card")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/vpcd_harness.rs"]
mod harness;

use proptest::prelude::*;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn written_streams_reach_each_path() {
    let select = [0x00, 0xA4, 0x04, 0x00, 0x07, 0xF0, 0x50, 0x41, 0x59, 0x53, 0x49, 0x4D];
    let mut good = vec![3u8];
    for body in [&[1u8][..], &[4], &select, &[0x00, 0xCA, 0x00, 0x5A, 0x00], &[2], &[9], &[0]] {
        good.extend(frame(body));
    }
    for chunk in 0..16u8 {
        good[0] = chunk;
        harness::run(&good);
    }
    // Torn inside the length, torn inside the body, an empty frame in the middle.
    harness::run(&[0, 0x00]);
    harness::run(&[0, 0x00, 0x05, 0x00, 0xA4]);
    let mut empty_inside = vec![1u8];
    empty_inside.extend(frame(&[4]));
    empty_inside.extend([0, 0]);
    empty_inside.extend(frame(&[4]));
    harness::run(&empty_inside);
    // The largest frame vpcd can send.
    let mut big = vec![15u8];
    big.extend(frame(&vec![0x80; 65535]));
    harness::run(&big);
    harness::run(&[]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_streams(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        harness::run(&data);
    }

    #[test]
    fn random_frames(chunk in any::<u8>(), bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12)) {
        let mut data = vec![chunk];
        for b in &bodies {
            data.extend(frame(b));
        }
        harness::run(&data);
    }
}

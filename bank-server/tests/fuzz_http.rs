//! Runs the `http_api` fuzz harness (`fuzz/http_harness.rs`) on stable: requests written by
//! hand that must reach each of its paths, and random requests under proptest, all against one
//! bank on a temporary database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/http_harness.rs"]
mod harness;

use std::sync::OnceLock;

use proptest::prelude::*;

fn bank() -> &'static harness::Bank {
    static BANK: OnceLock<harness::Bank> = OnceLock::new();
    BANK.get_or_init(harness::Bank::new)
}

fn input(method: u8, path: u8, flags: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![method, path, flags];
    v.extend(parts.join(&0xFF));
    v
}

#[test]
fn written_requests_reach_each_path() {
    let b = bank();
    // GET and POST on every route, with the good token, a bad one, a cookie, each content type.
    for path in 0..20u8 {
        for method in [0u8, 1] {
            for flags in [0u8, 1, 2, 4, 8, 8 | 64, 8 | 128, 8 | 192, 16, 32 | 1 | 8] {
                for body in [&b""[..], b"{}", b"{\"user\":\"alice\"}", b"user=alice&csrf=x", b"\xff\xfe{"] {
                    b.run(&input(method, path, flags, &[b"", b"Bearer nope", body]));
                }
            }
        }
    }
    // Paths the routes do not know, odd methods, values HTTP cannot carry.
    b.run(&input(7, 19, 0, &[b"/nowhere", b""]));
    b.run(&input(2, 5, 1, &[b"?limit=-1", b""]));
    b.run(&input(0, 5, 1, &[b"?limit=99999999999999999999", b""]));
    b.run(&input(0, 6, 1, &[b"%ZZ", b""]));
    b.run(&input(
        1,
        1,
        16 | 8,
        &[b"", b"https://evil.example", b"{\"challenge_id\":\"00\",\"counter\":1,\"otp\":\"1\"}"],
    ));
    b.run(&input(1, 0, 2, &[b"", b"\r\n", b""]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_requests(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        bank().run(&data);
    }

    #[test]
    fn random_bodies_on_each_route(method in 0u8..2, path in 0u8..20, flags in any::<u8>(),
                                   body in proptest::collection::vec(any::<u8>(), 0..120)) {
        bank().run(&input(method, path, flags, &[b"", b"", &body]));
    }
}

//! The fuzz targets' bodies (`fuzz/src/lib.rs`), run on stable over hand-made seeds and
//! a few thousand pseudo-random inputs, so they build and hold in every CI run. The
//! coverage-guided runs (`cargo fuzz run`, nightly) are described in docs/reliability.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

use stockade_domain::testing::{registered_physical, reserved, secs};
use stockade_domain::{EventMetadata, Timestamp};
use stockade_store::codec;

struct Lcg(u64);

impl Lcg {
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let mut next = || {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u8
        };
        let len = usize::from(next()) * max / 256;
        (0..len).map(|_| next()).collect()
    }
}

/// Real encoded events, with random bytes flipped: most decode to errors, some to events.
fn event_seeds() -> Vec<Vec<u8>> {
    let events = [
        registered_physical(10, 1),
        reserved(7, 2, secs(1), Timestamp::from_millis(900_000)),
    ];
    events
        .iter()
        .map(|e| {
            let meta = EventMetadata::new(uuid::Uuid::new_v4(), secs(1));
            let data = codec::encode(e, &meta).unwrap();
            let kind = match data.event_type.as_str() {
                "SkuRegistered" => 0,
                _ => 2,
            };
            let mut bytes = vec![kind, data.metadata.len() as u8];
            bytes.extend(data.event_id.as_bytes());
            bytes.extend(&data.metadata);
            bytes.extend(&data.data);
            bytes
        })
        .collect()
}

#[test]
fn the_fuzz_targets_hold_on_seeds_and_random_bytes() {
    let mut rng = Lcg(7);
    for seed in event_seeds() {
        assert!(
            targets::decode_event(&seed),
            "a seed must decode: the round trip is checked"
        );
        for i in 0..500 {
            let mut damaged = seed.clone();
            let at = i % damaged.len();
            damaged[at] ^= 1 << (i % 8);
            targets::decode_event(&damaged);
        }
    }
    let bodies: [&[u8]; 6] = [
        br#"{"items":[{"sku":"A","qty":2}],"ttl_seconds":60,"expected_versions":{"A":3}}"#,
        br#"{"items":[{"sku":"A","qty":0},{"sku":"A","qty":1}]}"#,
        br#"{"delta":-3,"reason":"damaged"}"#,
        br#"{"sku":"A","pool":"physical","on_hand":5}"#,
        br#"{"sku":"A","pool":"print_on_demand","capacity":5,"period_hours":24}"#,
        b"\xff\xfe{",
    ];
    for body in bodies {
        targets::request_bodies(body);
    }
    for _ in 0..3000 {
        targets::decode_event(&rng.bytes(200));
        targets::request_bodies(&rng.bytes(120));
        targets::decide_sequence(&rng.bytes(300));
    }
}

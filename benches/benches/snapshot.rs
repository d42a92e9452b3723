//! What a snapshot of a SKU with many live holds costs its actor. The actor clones its
//! state on its own thread (the stall every caller of that SKU waits out) and encodes the
//! clone on a blocking thread; it snapshots at most once per as many events as the state
//! has holds and keys, so both costs are spread over at least that many events.
//!
//! `cargo bench -p stockade-benches --bench snapshot`
//!
//! Prints one table (holds, clone, encode, encoded size, clone per event it is spread over).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use stockade_domain::{
    Channel, Event, PoolConfig, Quantity, ReservationId, Sku, SkuRegistered, SkuState,
    StockReserved, Timestamp,
};
use stockade_store::codec;

const HOLDS: [u64; 3] = [10_000, 100_000, 1_000_000];

/// A SKU with `holds` live one-unit holds, made a millisecond apart, for a week.
fn state_with(holds: u64) -> SkuState {
    let start = Timestamp::from_millis(1_800_000_000_000);
    let mut state = SkuState::default();
    state
        .apply(&Event::SkuRegistered(SkuRegistered {
            sku: Sku::new("SNAP").unwrap(),
            pool: PoolConfig::Physical {
                locations: Vec::new(),
                on_hand: Quantity::new(holds),
                safety_stock: Quantity::ZERO,
            },
            at: start,
        }))
        .unwrap();
    let channel = Channel::new("web").unwrap();
    for n in 0..holds {
        let at = Timestamp::from_millis(start.as_millis() + n);
        state
            .apply(&Event::StockReserved(StockReserved {
                customer: None,
                waitlist: None,
                parts: Vec::new(),
                reservation_id: ReservationId::from_uuid(uuid::Uuid::now_v7()),
                order_id: None,
                lines: Vec::new(),
                qty: Quantity::new(1),
                channel: channel.clone(),
                at,
                expires_at: Timestamp::from_millis(at.as_millis() + 7 * 24 * 3_600_000),
            }))
            .unwrap();
    }
    state
}

fn timed<T>(runs: u32, mut f: impl FnMut() -> T) -> Duration {
    let started = Instant::now();
    for _ in 0..runs {
        black_box(f());
    }
    started.elapsed() / runs
}

fn bench(c: &mut Criterion) {
    let mut rows = Vec::new();
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    for holds in HOLDS {
        let state = state_with(holds);
        group.bench_function(format!("clone/{holds}"), |b| b.iter(|| state.clone()));
        let clone = timed(5, || state.clone());
        let encode = timed(3, || codec::encode_snapshot(&state).unwrap());
        let size = codec::encode_snapshot(&state).unwrap().len();
        rows.push((holds, clone, encode, size));
    }
    group.finish();
    println!(
        "\n| live holds | clone (actor thread) | encode (blocking thread) | snapshot size | clone per event, spread |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for (holds, clone, encode, size) in rows {
        println!(
            "| {holds} | {:.1} ms | {:.1} ms | {:.1} MiB | {:.0} ns |",
            clone.as_secs_f64() * 1e3,
            encode.as_secs_f64() * 1e3,
            size as f64 / 1_048_576.0,
            clone.as_nanos() as f64 / holds as f64
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

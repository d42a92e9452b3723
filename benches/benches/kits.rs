//! Kit reservations against plain ones: 1000 callers each reserving one unit of a plain
//! SKU, or one kit of two components (two mugs and a tea, so each kit is an order of two
//! lines decided by two actors), on the SQLite log with fsync.
//!
//! `cargo bench -p stockade-benches --bench kits`
//!
//! One engine per row, kept for all of the row's samples: holds (7-day TTLs) pile up as
//! in a sale. Besides criterion's report, prints a table with latency percentiles and
//! writes it as JSON to `target/stockade-bench/kits.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stockade_benches::{LoadRow, publish, reserve_load};
use stockade_domain::{Component, PoolConfig, Quantity, Sku};
use stockade_engine::{Inventory, InventoryConfig, Origin, Percentiles, ReserveOptions};

const CALLERS: usize = 1000;
const PLENTY: u64 = 1_000_000_000;

struct Row {
    what: &'static str,
    load: LoadRow,
}

fn physical(on_hand: u64) -> PoolConfig {
    PoolConfig::physical(Quantity::new(on_hand), Quantity::ZERO)
}

/// An engine on a fresh SQLite log with MUG, TEA and the kit GIFT (2 MUG + 1 TEA).
async fn shop(dir: &std::path::Path) -> Inventory {
    let inventory = Inventory::open(InventoryConfig::sqlite(dir)).await.unwrap();
    let origin = Origin::default();
    let (mug, tea) = (Sku::new("MUG").unwrap(), Sku::new("TEA").unwrap());
    inventory
        .register(&mug, physical(PLENTY), &origin)
        .await
        .unwrap();
    inventory
        .register(&tea, physical(PLENTY), &origin)
        .await
        .unwrap();
    let kit = PoolConfig::Kit {
        components: vec![
            Component {
                sku: mug,
                qty: Quantity::new(2),
            },
            Component {
                sku: tea,
                qty: Quantity::new(1),
            },
        ],
    };
    inventory
        .register(&Sku::new("GIFT").unwrap(), kit, &origin)
        .await
        .unwrap();
    inventory
}

fn bench(c: &mut Criterion) {
    let runtime = stockade_benches::runtime();
    let week = ReserveOptions {
        ttl: Some(Duration::from_secs(7 * 24 * 3600)),
        ..ReserveOptions::default()
    };
    let mut rows = Vec::new();
    let mut group = c.benchmark_group("kits_sqlite");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for (what, sku) in [("plain SKU", "MUG"), ("kit of 2 SKUs", "GIFT")] {
        let dir = tempfile::tempdir().unwrap();
        let inventory = runtime.block_on(shop(dir.path()));
        let sku = Sku::new(sku).unwrap();
        let mut row = Row {
            what,
            load: LoadRow::default(),
        };
        group.bench_function(format!("{}_{CALLERS}_callers", sku.as_str()), |b| {
            b.iter_custom(|iters| {
                row.load.sample(iters, CALLERS, |total| {
                    let load = reserve_load(&inventory, &sku, CALLERS, total, week.clone());
                    runtime.block_on(load).unwrap()
                })
            });
        });
        runtime.block_on(inventory.shutdown());
        rows.push(row);
    }
    group.finish();
    report(&mut rows);
}

fn report(rows: &mut [Row]) {
    let mut table = String::from(
        "| reserving | callers | reservations | reservations/s | p50 ms | p99 ms | p999 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    for r in rows.iter_mut().filter(|r| r.load.reservations > 0) {
        let rate = r.load.rate();
        let Percentiles { p50, p99, p999, .. } = Percentiles::of_micros(&mut r.load.latencies_us);
        let _ = writeln!(
            table,
            "| {} | {CALLERS} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            r.what, r.load.reservations, rate, p50, p99, p999
        );
        json.push(format!(
            "{{\"reserving\":\"{}\",\"callers\":{CALLERS},\"reservations\":{},\"reservations_per_second\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3}}}",
            r.what, r.load.reservations, rate, p50, p99, p999
        ));
    }
    publish("Kit reservations against plain ones", &table, "kits", &json);
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! A SKU at 100 locations against a SKU at one: 1000 callers each reserving one unit,
//! placed by `most_stock` or `fewest_splits` (the SKU's writer allocates every line over
//! the 100 locations), on the SQLite log with fsync.
//!
//! `cargo bench -p stockade-benches --bench locations`
//!
//! One engine per row, kept for all of the row's samples: holds (7-day TTLs) pile up as
//! in a sale. Besides criterion's report, prints a table with latency percentiles and
//! writes it as JSON to `target/stockade-bench/locations.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stockade_benches::{LoadRow, line_load, publish};
use stockade_domain::allocation::Strategy;
use stockade_domain::{LocationConfig, LocationId, Placement, PoolConfig, Quantity, Sku};
use stockade_engine::{Inventory, InventoryConfig, Line, Origin, Percentiles, ReserveOptions};

const CALLERS: usize = 1000;
const LOCATIONS: usize = 100;
/// Units at each location: far more than a run reserves.
const PLENTY: u64 = 10_000_000;

struct Row {
    what: String,
    load: LoadRow,
}

/// An engine on a fresh SQLite log with ONE (one location) and MANY (100 locations, of
/// slightly different stock so that `most_stock` has a choice to make).
async fn shop(dir: &std::path::Path) -> Inventory {
    let inventory = Inventory::open(InventoryConfig::sqlite(dir)).await.unwrap();
    let origin = Origin::default();
    inventory
        .register(
            &Sku::new("ONE").unwrap(),
            PoolConfig::physical(Quantity::new(PLENTY), Quantity::ZERO),
            &origin,
        )
        .await
        .unwrap();
    let locations = (0..LOCATIONS)
        .map(|i| LocationConfig {
            location: LocationId::new(format!("store-{i:03}")).unwrap(),
            on_hand: Quantity::new(PLENTY + i as u64),
            safety_stock: Quantity::ZERO,
            priority: i as u32,
        })
        .collect();
    inventory
        .register(
            &Sku::new("MANY").unwrap(),
            PoolConfig::at_locations(locations),
            &origin,
        )
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
    let placed = |strategy| Placement {
        strategy,
        ..Placement::default()
    };
    let cases = [
        ("1 location", "ONE", Placement::default()),
        (
            "100 locations, most_stock",
            "MANY",
            placed(Strategy::MostStock),
        ),
        (
            "100 locations, fewest_splits",
            "MANY",
            placed(Strategy::FewestSplits),
        ),
    ];
    let mut rows = Vec::new();
    let mut group = c.benchmark_group("locations_sqlite");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for (what, sku, placement) in cases {
        // A fresh engine per row: each row's holds pile up on its own log.
        let dir = tempfile::tempdir().unwrap();
        let inventory = runtime.block_on(shop(dir.path()));
        let line = Line {
            sku: Sku::new(sku).unwrap(),
            qty: Quantity::new(1),
            placement,
        };
        let mut row = Row {
            what: what.to_owned(),
            load: LoadRow::default(),
        };
        let id = what.replace([' ', ','], "_");
        group.bench_function(format!("{id}_{CALLERS}_callers"), |b| {
            b.iter_custom(|iters| {
                row.load.sample(iters, CALLERS, |total| {
                    let load = line_load(&inventory, line.clone(), CALLERS, total, week.clone());
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
        "| SKU | callers | reservations | reservations/s | vs 1 location | p50 ms | p99 ms | p999 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    let base = rows.first().map(|r| r.load.rate()).unwrap_or(1.0);
    for r in rows.iter_mut().filter(|r| r.load.reservations > 0) {
        let rate = r.load.rate();
        let Percentiles { p50, p99, p999, .. } = Percentiles::of_micros(&mut r.load.latencies_us);
        let _ = writeln!(
            table,
            "| {} | {CALLERS} | {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} |",
            r.what,
            r.load.reservations,
            rate,
            100.0 * rate / base,
            p50,
            p99,
            p999
        );
        json.push(format!(
            "{{\"sku\":\"{}\",\"callers\":{CALLERS},\"reservations\":{},\"reservations_per_second\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3}}}",
            r.what, r.load.reservations, rate, p50, p99, p999
        ));
    }
    publish(
        "A SKU at 100 locations against one at a single location",
        &table,
        "locations",
        &json,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

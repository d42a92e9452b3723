//! Durable reservations/s on ONE hot SKU through the whole engine (actor, pipeline,
//! store), with 1, 100 and 1000 concurrent callers, in memory and on SQLite with fsync,
//! and on EventStoreDB when `STOCKADE_ESDB_URL` names a server.
//!
//! `cargo bench -p stockade-benches --bench reserve`
//!
//! Each criterion sample runs on a fresh engine and store (so nothing grows across
//! samples). A last group, `sqlite_holding_500k`, does the opposite: one engine on SQLite
//! whose hot SKU already holds 500 000 live holds (7-day TTLs) before the first sample,
//! and keeps every hold the samples add, as in a sale. Besides criterion's report, prints
//! one table with latency percentiles and writes it as JSON to
//! `target/stockade-bench/reserve.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stockade_benches::publish;
use stockade_benches::{reserve_concurrently, reserve_load};
use stockade_domain::{PoolConfig, Quantity, Sku};
use stockade_engine::{
    Inventory, InventoryConfig, Origin, Percentiles, ReserveOptions, StoreConfig,
};
use stockade_esdb::testkit::live_config;

const CALLERS: [usize; 3] = [1, 100, 1000];

struct Row {
    store: &'static str,
    callers: usize,
    reservations: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    mean_batch: f64,
}

fn bench(c: &mut Criterion) {
    let runtime = stockade_benches::runtime();
    let mut rows = Vec::new();
    let mut stores = vec!["memory", "sqlite"];
    if live_config("reserve bench row").is_some() {
        stores.push("eventstoredb");
    }
    for store in stores {
        let mut group = c.benchmark_group(format!("reserve_one_hot_sku_{store}"));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        group.throughput(Throughput::Elements(1));
        for callers in CALLERS {
            let mut row = Row {
                store,
                callers,
                reservations: 0,
                elapsed: Duration::ZERO,
                latencies_us: Vec::new(),
                mean_batch: 0.0,
            };
            let (mut commands, mut appends) = (0u64, 0u64);
            group.bench_function(format!("{callers}_callers"), |b| {
                b.iter_custom(|iters| {
                    // A fresh engine and store per sample, so that nothing accumulated by
                    // earlier samples (states, a growing in-memory log) weighs on this one.
                    let dir = tempfile::tempdir().unwrap();
                    // On EventStoreDB, a fresh namespace: this sample's stream starts empty.
                    let live = (store == "eventstoredb")
                        .then(|| live_config("reserve bench row"))
                        .flatten();
                    let config = match (store, live) {
                        ("memory", _) => StoreConfig::Memory,
                        (_, Some(live)) => StoreConfig::EventStoreDb(live),
                        _ => StoreConfig::Sqlite {
                            data_dir: dir.path().to_path_buf(),
                        },
                    };
                    let inventory = runtime
                        .block_on(Inventory::open(InventoryConfig::with_store(config)))
                        .unwrap();
                    let sku = Sku::new("HOT").unwrap();
                    // Every caller gets work, so the concurrency is real.
                    let total = iters.max(callers as u64);
                    let (took, latencies) = runtime
                        .block_on(reserve_concurrently(&inventory, &sku, callers, total))
                        .unwrap();
                    let stats = inventory.stats();
                    // The registration is one append of one command; leave it out.
                    commands += stats.commands - 1;
                    appends += stats.appends - 1;
                    runtime.block_on(inventory.shutdown());
                    row.reservations += total;
                    row.elapsed += took;
                    row.latencies_us.extend(latencies);
                    took.mul_f64(iters as f64 / total as f64)
                });
            });
            row.mean_batch = commands as f64 / appends.max(1) as f64;
            rows.push(row);
        }
        group.finish();
    }
    rows.push(holding(c, &runtime));
    report(&mut rows);
}

/// Live holds on the hot SKU before the first sample of `sqlite_holding_500k`.
const PRELOADED: u64 = 500_000;

/// 1000 callers on an engine whose hot SKU already holds [`PRELOADED`] live holds; every
/// sample's holds stay too.
fn holding(c: &mut Criterion, runtime: &tokio::runtime::Runtime) -> Row {
    let callers = 1000;
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Sqlite {
        data_dir: dir.path().to_path_buf(),
    };
    let inventory = runtime
        .block_on(Inventory::open(InventoryConfig::with_store(config)))
        .unwrap();
    let sku = Sku::new("HOT").unwrap();
    let week = ReserveOptions {
        ttl: Some(Duration::from_secs(7 * 24 * 3600)),
        ..ReserveOptions::default()
    };
    let pool = PoolConfig::Physical {
        locations: Vec::new(),
        on_hand: Quantity::new(1_000_000_000),
        safety_stock: Quantity::ZERO,
    };
    runtime
        .block_on(inventory.register(&sku, pool, &Origin::default()))
        .unwrap();
    println!("reserve bench: preloading {PRELOADED} live holds");
    runtime
        .block_on(reserve_load(
            &inventory,
            &sku,
            callers,
            PRELOADED,
            week.clone(),
        ))
        .unwrap();
    let before = inventory.stats();
    let mut row = Row {
        store: "sqlite, holding 500k",
        callers,
        reservations: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        mean_batch: 0.0,
    };
    let mut group = c.benchmark_group("reserve_one_hot_sku_sqlite_holding_500k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{callers}_callers"), |b| {
        b.iter_custom(|iters| {
            let total = iters.max(callers as u64);
            let (took, latencies) = runtime
                .block_on(reserve_load(&inventory, &sku, callers, total, week.clone()))
                .unwrap();
            row.reservations += total;
            row.elapsed += took;
            row.latencies_us.extend(latencies);
            took.mul_f64(iters as f64 / total as f64)
        });
    });
    group.finish();
    let after = inventory.stats();
    row.mean_batch =
        (after.commands - before.commands) as f64 / (after.appends - before.appends).max(1) as f64;
    runtime.block_on(inventory.shutdown());
    row
}

fn report(rows: &mut [Row]) {
    let mut table = String::from(
        "| store | callers | reservations | reservations/s | p50 ms | p99 ms | p999 ms | commands per append |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    // A row whose bench a criterion filter skipped has nothing to show.
    for r in rows.iter_mut().filter(|r| r.reservations > 0) {
        let rate = r.reservations as f64 / r.elapsed.as_secs_f64();
        let Percentiles { p50, p99, p999, .. } = Percentiles::of_micros(&mut r.latencies_us);
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.store, r.callers, r.reservations, rate, p50, p99, p999, r.mean_batch
        );
        json.push(format!(
            "{{\"store\":\"{}\",\"callers\":{},\"reservations\":{},\"reservations_per_second\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"commands_per_append\":{:.1}}}",
            r.store, r.callers, r.reservations, rate, p50, p99, p999, r.mean_batch
        ));
    }
    publish(
        "Durable reservations on one hot SKU",
        &table,
        "reserve",
        &json,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

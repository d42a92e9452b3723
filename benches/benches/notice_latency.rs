//! Freshness: from a commit to its notice reaching an in-process hub subscriber, on the
//! embedded store with fsync, while 1000 reservations/s of background load run on other
//! SKUs. The target is p99 < 50 ms.
//!
//! `cargo bench -p stockade-benches --bench notice_latency` (20 s; set
//! `STOCKADE_BENCH_SECONDS` to change it)
//!
//! A probe every 10 ms reserves one unit of its own SKU, then commits it, and notes when it
//! called `commit`. A subscriber notes when each of the probe SKU's notices arrives.
//! Latency is arrival minus the call: the append's fsync, the projector's transaction
//! (its own fsync) and the hand-off to the hub, end to end. Results go to a table and to
//! `target/stockade-bench/notice_latency.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stockade_domain::{PoolConfig, Quantity, Sku};
use stockade_engine::{Inventory, InventoryConfig, Origin, Percentiles, ReserveOptions};
use stockade_projections::{HubMessage, NoticeHub, Projector, ReadModels};

const BACKGROUND_PER_SECOND: u64 = 1000;
const BACKGROUND_SKUS: usize = 10;
const PROBE_EVERY: Duration = Duration::from_millis(10);
const TARGET_P99_MS: f64 = 50.0;

fn main() {
    let seconds: u64 = std::env::var("STOCKADE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let runtime = stockade_benches::runtime();
    runtime.block_on(measure(Duration::from_secs(seconds)));
}

async fn measure(duration: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let inventory = Inventory::open(InventoryConfig::sqlite(dir.path()))
        .await
        .unwrap();
    let models = ReadModels::open(&dir.path().join("projections.db")).unwrap();
    let hub = NoticeHub::new();
    let mut subscriber = hub.subscribe(1 << 20);
    let projector = Projector::new(inventory.store(), models, hub.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let projecting = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));

    let shelf = |n| PoolConfig::physical(Quantity::new(n), Quantity::ZERO);
    let probe = Sku::new("PROBE").unwrap();
    inventory
        .register(&probe, shelf(1_000_000), &Origin::default())
        .await
        .unwrap();
    let mut background = Vec::new();
    for n in 0..BACKGROUND_SKUS {
        let sku = Sku::new(format!("LOAD-{n}")).unwrap();
        inventory
            .register(&sku, shelf(10_000_000), &Origin::default())
            .await
            .unwrap();
        background.push(sku);
    }

    // Arrivals of the probe SKU's notices, by stream version.
    let arrivals: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let collector = {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(message) = subscriber.recv().await {
                match message {
                    HubMessage::Notice(n) if n.sku.as_str() == "PROBE" => {
                        arrivals.lock().unwrap().insert(n.version, Instant::now());
                    }
                    HubMessage::Notice(_) => {}
                    HubMessage::Resync { .. } => panic!("the bench subscriber fell behind"),
                }
            }
        })
    };

    // Background load: a reservation every millisecond on the load SKUs.
    let sent = Arc::new(AtomicU64::new(0));
    let load = {
        let (inventory, sent) = (inventory.clone(), sent.clone());
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / BACKGROUND_PER_SECOND));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0usize;
            loop {
                tick.tick().await;
                let (inventory, sku) = (inventory.clone(), background[n % BACKGROUND_SKUS].clone());
                n += 1;
                let sent = sent.clone();
                tokio::spawn(async move {
                    if inventory
                        .reserve(&sku, Quantity::new(1), ReserveOptions::default())
                        .await
                        .is_ok()
                    {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        })
    };

    // Probes: reserve, then time the commit until its notice arrives.
    let started = Instant::now();
    let mut calls: Vec<(u64, Instant)> = Vec::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    while started.elapsed() < duration {
        tick.tick().await;
        let held = inventory
            .reserve(&probe, Quantity::new(1), ReserveOptions::default())
            .await
            .unwrap();
        let called = Instant::now();
        let done = inventory.commit(held.id, &Origin::default()).await.unwrap();
        calls.push((done.lines[0].version, called));
    }
    let elapsed = started.elapsed();
    load.abort();
    let background_rate = sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    // Let the last notices land.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let arrivals = arrivals.lock().unwrap().clone();
    let mut latencies: Vec<u64> = Vec::new();
    let mut missing = 0;
    for (version, called) in &calls {
        match arrivals.get(version) {
            Some(arrived) => latencies.push(
                u64::try_from(arrived.saturating_duration_since(*called).as_micros())
                    .unwrap_or(u64::MAX),
            ),
            None => missing += 1,
        }
    }
    drop(stop);
    let _ = projecting.await;
    collector.abort();
    inventory.shutdown().await;

    let Percentiles {
        p50,
        p99,
        p999,
        max,
    } = Percentiles::of_micros(&mut latencies);
    let verdict = if p99 < TARGET_P99_MS && missing == 0 {
        "met"
    } else {
        "NOT met"
    };
    let table = format!(
        "| background reservations/s | probes | missing notices | p50 ms | p99 ms | p999 ms | max ms | target p99 < {TARGET_P99_MS} ms |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|\n\
         | {background_rate:.0} | {} | {missing} | {p50:.2} | {p99:.2} | {p999:.2} | {max:.2} | {verdict} |\n",
        calls.len()
    );
    let json = format!(
        "{{\"background_reservations_per_second\":{background_rate:.0},\"probes\":{},\"missing\":{missing},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"p999_ms\":{p999:.3},\"max_ms\":{max:.3},\"target_p99_ms\":{TARGET_P99_MS},\"met\":{}}}",
        calls.len(),
        verdict == "met"
    );
    stockade_benches::publish(
        "Commit → notice at an in-process subscriber (SQLite, fsync), under background load",
        &table,
        "notice_latency",
        &[json],
    );
}

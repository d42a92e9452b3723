//! Durable reservations/s on ONE hot SKU over HTTP: `stockade serve` (embedded SQLite,
//! fsync on every commit) on 127.0.0.1, and 100 or 1000 concurrent keep-alive connections
//! each posting `POST /api/reservations` for one unit and waiting for the 201 before the
//! next. Server and load generator share this machine's cores.
//!
//! `cargo bench -p stockade-benches --bench http_reserve`
//!
//! Each criterion sample runs a fresh server on a fresh data directory. After each sample
//! the SKU is read back: its reserved units must equal the 201s counted (nothing oversold,
//! nothing acknowledged and lost). Prints a table and writes
//! `target/stockade-bench/http_reserve.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stockade_benches::http_load::{self, Load};
use stockade_benches::{ADMIN, WEB, publish, server_config};
use stockade_engine::Percentiles;
use stockade_server::ServerConfig;

/// The allocator the `stockade` binary uses, so the server under test is the one shipped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONNECTIONS: [usize; 2] = [100, 1000];

#[derive(Default)]
struct Row {
    connections: usize,
    created: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    commands: f64,
    appends: f64,
}

fn config(dir: &std::path::Path) -> ServerConfig {
    let mut config = server_config(dir);
    // STOCKADE_WORKERS, STOCKADE_ARBITERS, ... tune the server under test.
    config.apply_env(std::env::vars()).unwrap();
    config
}

fn bench(c: &mut Criterion) {
    let runtime = stockade_benches::runtime();
    let mut rows = Vec::new();
    let mut group = c.benchmark_group("http_reserve_one_hot_sku_sqlite");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for connections in CONNECTIONS {
        let mut row = Row {
            connections,
            ..Row::default()
        };
        group.bench_function(format!("{connections}_connections"), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let server = stockade_server::spawn(config(dir.path()), listener).unwrap();
                let addr = server.local_addr();
                // Enough requests per connection that connecting is not what is measured.
                let total = iters.max(connections as u64 * 50);
                let register = format!(r#"{{"sku":"HOT","pool":"physical","on_hand":{total}}}"#);
                let (status, body) = runtime
                    .block_on(http_load::once(
                        addr,
                        &http_load::post(addr, "/api/skus", ADMIN, &register),
                    ))
                    .unwrap();
                assert_eq!(status, 201, "{body}");
                let load = Load {
                    addr,
                    request: http_load::post(
                        addr,
                        "/api/reservations",
                        WEB,
                        r#"{"items":[{"sku":"HOT","qty":1}]}"#,
                    ),
                    connections,
                    total,
                };
                let outcome = runtime.block_on(http_load::run(load)).unwrap();
                let created = outcome.statuses.get(&201).copied().unwrap_or(0);
                // Read back: every 201 is a durable hold, and nothing more is held.
                let (_, stock) = runtime
                    .block_on(http_load::once(
                        addr,
                        &http_load::get(addr, "/api/inventory/products/HOT", WEB),
                    ))
                    .unwrap();
                let stock: serde_json::Value = serde_json::from_str(&stock).unwrap();
                assert_eq!(stock["reserved"], created, "held = acknowledged: {stock}");
                // How much the engine batched: its counters, as /metrics exports them.
                let (_, metrics) = runtime
                    .block_on(http_load::once(
                        addr,
                        &http_load::get(addr, "/metrics", WEB),
                    ))
                    .unwrap();
                let gauge = |name: &str| {
                    metrics
                        .lines()
                        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                // Less the registration: one append of one command.
                row.commands += gauge("stockade_engine_commands ") - 1.0;
                row.appends += gauge("stockade_engine_appends ") - 1.0;
                server.stop().unwrap();
                row.created += created;
                row.elapsed += outcome.elapsed;
                row.latencies_us.extend(outcome.latencies_us);
                for (status, n) in outcome.statuses {
                    *row.statuses.entry(status).or_default() += n;
                }
                outcome.elapsed.mul_f64(iters as f64 / total as f64)
            });
        });
        rows.push(row);
    }
    group.finish();
    report(&mut rows);
}

fn report(rows: &mut [Row]) {
    let mut table = String::from(
        "| connections | 201s | reservations/s | p50 ms | p99 ms | p999 ms | commands per append | other answers |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let mut json = Vec::new();
    for r in rows.iter_mut() {
        let rate = r.created as f64 / r.elapsed.as_secs_f64();
        let Percentiles { p50, p99, p999, .. } = Percentiles::of_micros(&mut r.latencies_us);
        let other: Vec<String> = r
            .statuses
            .iter()
            .filter(|(s, _)| **s != 201)
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        let other = if other.is_empty() {
            "none".to_owned()
        } else {
            other.join(", ")
        };
        let batch = r.commands / r.appends.max(1.0);
        let _ = writeln!(
            table,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            r.connections, r.created, rate, p50, p99, p999, batch, other
        );
        json.push(format!(
            "{{\"connections\":{},\"created\":{},\"reservations_per_second\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"commands_per_append\":{:.1},\"other\":\"{}\"}}",
            r.connections, r.created, rate, p50, p99, p999, batch, other
        ));
    }
    publish(
        "Durable reservations on one hot SKU, over HTTP",
        &table,
        "http_reserve",
        &json,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

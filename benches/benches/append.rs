//! Appended events/s on the embedded SQLite store (WAL, synchronous=FULL) with 1, 64 and
//! 512 concurrent appenders, and how many appends shared each commit (the group size).
//!
//! `cargo bench -p stockade-benches --bench append`
//!
//! Besides criterion's report, prints one table and writes it as JSON to
//! `target/stockade-bench/append.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stockade_benches::append_concurrently;
use stockade_benches::publish;
use stockade_store::{SqliteStore, WriterStats};

const APPENDERS: [usize; 3] = [1, 64, 512];

struct Row {
    appenders: usize,
    events: u64,
    elapsed: Duration,
    stats: WriterStats,
}

fn bench(c: &mut Criterion) {
    let runtime = stockade_benches::runtime();
    let mut group = c.benchmark_group("sqlite_append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));
    let mut rows = Vec::new();
    for appenders in APPENDERS {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("bench.db")).unwrap();
        let before = store.stats();
        let mut round = 0;
        let mut events = 0;
        let mut elapsed = Duration::ZERO;
        group.bench_function(format!("{appenders}_appenders"), |b| {
            b.iter_custom(|iters| {
                round += 1;
                // Every appender gets at least one event, so the concurrency is real.
                let total = iters.max(appenders as u64);
                let took = runtime
                    .block_on(append_concurrently(&store, appenders, total, round))
                    .unwrap();
                events += total.div_ceil(appenders as u64) * appenders as u64;
                elapsed += took;
                // Report per requested iteration: scale when we ran more than asked.
                took.mul_f64(iters as f64 / total as f64)
            });
        });
        rows.push(Row {
            appenders,
            events,
            elapsed,
            stats: store.stats().since(&before),
        });
    }
    group.finish();
    report(&rows);
}

fn report(rows: &[Row]) {
    let mut table = String::from(
        "| appenders | events | events/s | appends per commit | events per commit |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    let mut json = Vec::new();
    for r in rows {
        let rate = r.events as f64 / r.elapsed.as_secs_f64();
        let _ = writeln!(
            table,
            "| {} | {} | {:.0} | {:.1} | {:.1} |",
            r.appenders,
            r.events,
            rate,
            r.stats.appends_per_commit(),
            r.stats.events_per_commit()
        );
        json.push(format!(
            "{{\"appenders\":{},\"events\":{},\"seconds\":{:.3},\"events_per_second\":{:.0},\"commits\":{},\"appends_per_commit\":{:.2}}}",
            r.appenders,
            r.events,
            r.elapsed.as_secs_f64(),
            rate,
            r.stats.commits,
            r.stats.appends_per_commit()
        ));
    }
    publish(
        "SQLite append throughput (synchronous=FULL)",
        &table,
        "append",
        &json,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The peer comparison: one hot SKU, N concurrent buyers, every successful reservation
//! durable, against Stockade and the setups teams use today.
//!
//! `bash benches/peer/run.sh` starts PostgreSQL and Redis on loopback (installing them
//! from Debian packages if missing) and runs this with their URLs. Without them it says so
//! and stops.
//!
//! Strategies, each buyer on its own connection (or task):
//! - **stockade in-process**: `Inventory::reserve` on the embedded SQLite log;
//! - **stockade over HTTP**: `POST /api/reservations` to `stockade serve` on 127.0.0.1;
//! - **pg optimistic**: read the row's version, then one statement that updates the row
//!   only at that version and inserts the reservation; retried on a lost race;
//! - **pg FOR UPDATE**: a transaction that locks the row, checks, updates, inserts;
//! - **redis lock**: `SET lock NX PX`, read, decrement, record, release (compare-and-delete);
//! - **redis lua**: one script checks, decrements and records; `appendfsync always`.
//!
//! PostgreSQL runs with `fsync` and `synchronous_commit` on; Redis with `appendonly yes`
//! and `appendfsync always`: in every strategy a buyer is told "reserved" only once it
//! is on disk.
//!
//! Each (strategy, concurrency) cell has two phases. **Throughput**: ample stock, buyers
//! reserve one unit at a time for `--seconds`; reservations/s and the latency of each
//! success. **Sell-out**: 500 units, buyers reserve until refused; oversells are the
//! successes past 500, and the store's own ledger (remaining stock, recorded reservations)
//! must agree with what the buyers were told.
//!
//! Layout: this file runs the cells and writes the results; `strategy` has the
//! strategies, their back ends and their buyers; `report` renders the table and chart.
//!
//! Flags (after `--`): `--seconds N` (default 3), `--concurrency 1,8,32,128,512`,
//! `--only name,name`. Writes `target/peer/peer.{md,json,svg}` and prints the table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use stockade_benches::{ADMIN, WEB, http_load, server_config};
use stockade_domain::{PoolConfig, Quantity, Sku};
use stockade_engine::{Error, Inventory, InventoryConfig, Percentiles, ReserveOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod report;
mod strategy;

use report::{chart, machine, table, versions};
use strategy::{Backend, Buyer, Strategy};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SELL_OUT_STOCK: u64 = 500;
const AMPLE_STOCK: u64 = 1_000_000_000;

struct Settings {
    seconds: f64,
    concurrency: Vec<usize>,
    only: Option<Vec<String>>,
    pg_url: String,
    redis_addr: String,
}

fn settings() -> Option<Settings> {
    let (Ok(pg_url), Ok(redis_url)) = (
        std::env::var("STOCKADE_PEER_PG_URL"),
        std::env::var("STOCKADE_PEER_REDIS_URL"),
    ) else {
        println!(
            "peer: STOCKADE_PEER_PG_URL / STOCKADE_PEER_REDIS_URL are not set; run \
             `bash benches/peer/run.sh`, which starts PostgreSQL and Redis on loopback. Skipped."
        );
        return None;
    };
    let redis_addr = redis_url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let mut s = Settings {
        seconds: 3.0,
        concurrency: vec![1, 8, 32, 128, 512],
        only: None,
        pg_url,
        redis_addr,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seconds" => {
                s.seconds = value.parse().expect("--seconds takes a number");
                i += 1;
            }
            "--concurrency" => {
                s.concurrency = value
                    .split(',')
                    .map(|n| n.trim().parse().expect("--concurrency takes 1,8,32"))
                    .collect();
                i += 1;
            }
            "--only" => {
                s.only = Some(value.split(',').map(|n| n.trim().to_owned()).collect());
                i += 1;
            }
            _ => {} // cargo bench passes --bench; criterion-style flags are ignored
        }
        i += 1;
    }
    Some(s)
}

/// What one phase measured.
#[derive(Default)]
struct Phase {
    successes: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// `buyers` reserve until `deadline` (or, with `until_refused`, until each is refused).
async fn run_phase(buyers: Vec<Buyer>, deadline: Duration, until_refused: bool) -> Phase {
    let started = Instant::now();
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|mut buyer| {
            tokio::spawn(async move {
                let mut mine = Phase::default();
                while started.elapsed() < deadline {
                    let t = Instant::now();
                    match buyer.reserve().await {
                        Ok(true) => {
                            mine.successes += 1;
                            mine.latencies_us.push(t.elapsed().as_micros() as u64);
                        }
                        Ok(false) if until_refused => break,
                        Ok(false) => {}
                        Err(e) => {
                            mine.errors += 1;
                            mine.first_error.get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                mine
            })
        })
        .collect();
    let mut phase = Phase::default();
    for task in tasks {
        let mine = task.await.unwrap_or_default();
        phase.successes += mine.successes;
        phase.errors += mine.errors;
        phase.latencies_us.extend(mine.latencies_us);
        if phase.first_error.is_none() {
            phase.first_error = mine.first_error;
        }
    }
    phase.elapsed = started.elapsed();
    phase
}

#[derive(serde::Serialize)]
struct Cell {
    strategy: Strategy,
    concurrency: usize,
    reservations_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Units acknowledged beyond the 500 on sale in the sell-out phase.
    oversold: u64,
    /// Whether the store's ledger matched what buyers were told, in both phases.
    ledger_agrees: bool,
    errors: u64,
    first_error: Option<String>,
    /// This strategy's throughput over Stockade in-process at the same concurrency.
    vs_stockade: Option<f64>,
}

async fn measure(strategy: Strategy, s: &Settings, n: usize) -> Result<Vec<Cell>, String> {
    let backend = Backend::open(strategy, s).await?;
    let mut cells = Vec::new();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    for &concurrency in &s.concurrency {
        eprintln!(
            "== [{n}/{}] {strategy}, {concurrency} buyers",
            Strategy::ALL.len()
        );
        let hot = format!("HOT-{tag}-{concurrency}");
        backend.stock(&hot, AMPLE_STOCK).await?;
        let mut buyers = Vec::new();
        for _ in 0..concurrency {
            buyers.push(backend.buyer(strategy, &hot).await?);
        }
        let run = run_phase(buyers, Duration::from_secs_f64(s.seconds), false).await;
        let (left, recorded) = backend.ledger(&hot).await?;
        let mut agrees =
            recorded == run.successes && left == AMPLE_STOCK as i64 - run.successes as i64;

        let out = format!("OUT-{tag}-{concurrency}");
        backend.stock(&out, SELL_OUT_STOCK).await?;
        let mut buyers = Vec::new();
        for _ in 0..concurrency {
            buyers.push(backend.buyer(strategy, &out).await?);
        }
        let sold = run_phase(buyers, Duration::from_secs(120), true).await;
        let (left, recorded) = backend.ledger(&out).await?;
        agrees &= recorded == sold.successes
            && left == SELL_OUT_STOCK as i64 - sold.successes as i64
            && left >= 0;
        let mut latencies = run.latencies_us;
        let p = Percentiles::of_micros(&mut latencies);
        cells.push(Cell {
            strategy,
            concurrency,
            reservations_per_second: run.successes as f64 / run.elapsed.as_secs_f64(),
            p50_ms: p.p50,
            p99_ms: p.p99,
            oversold: sold.successes.saturating_sub(SELL_OUT_STOCK),
            ledger_agrees: agrees,
            errors: run.errors + sold.errors,
            first_error: run.first_error.or(sold.first_error),
            vs_stockade: None,
        });
    }
    backend.close().await;
    Ok(cells)
}

fn main() {
    let Some(s) = settings() else { return };
    let runtime = stockade_benches::runtime();
    let started = Instant::now();
    let mut cells: Vec<Cell> = Vec::new();
    let (machine, versions) = (machine(), runtime.block_on(versions(&s)));
    for (n, strategy) in Strategy::ALL.into_iter().enumerate() {
        if s.only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|x| x == strategy.name()))
        {
            continue;
        }
        match runtime.block_on(measure(strategy, &s, n + 1)) {
            Ok(mut more) => cells.append(&mut more),
            Err(e) => {
                eprintln!("peer: {strategy} failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let base: BTreeMap<usize, f64> = cells
        .iter()
        .filter(|c| c.strategy == Strategy::InProcess)
        .map(|c| (c.concurrency, c.reservations_per_second))
        .collect();
    for c in &mut cells {
        c.vs_stockade = base
            .get(&c.concurrency)
            .filter(|b| **b > 0.0)
            .map(|b| c.reservations_per_second / b);
    }
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let header = format!(
        "Peer comparison, one hot SKU, every reservation durable ({date}; {machine}; \
         {versions}; {:.0} s per cell, sell-out of {SELL_OUT_STOCK}; whole run {:.0} s)",
        s.seconds,
        started.elapsed().as_secs_f64()
    );
    let markdown = format!("{header}\n\n{}", table(&cells));
    println!("\n{markdown}");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/peer");
    let json = serde_json::json!({
        "date": date, "machine": machine, "versions": versions,
        "seconds_per_cell": s.seconds, "cells": cells,
    });
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("peer.md"), &markdown))
        .and_then(|()| {
            std::fs::write(
                dir.join("peer.json"),
                serde_json::to_string_pretty(&json).unwrap_or_default(),
            )
        })
        .and_then(|()| {
            std::fs::write(
                dir.join("peer.svg"),
                chart(
                    &cells,
                    &s.concurrency,
                    "Durable reservations/s on one hot SKU",
                ),
            )
        });
    match written {
        Ok(()) => eprintln!("peer: wrote {}/peer.{{md,json,svg}}", dir.display()),
        Err(e) => eprintln!("peer: could not write {}: {e}", dir.display()),
    }
    let broken = cells
        .iter()
        .filter(|c| c.oversold > 0 || !c.ledger_agrees || c.errors > 0)
        .count();
    if broken > 0 {
        eprintln!("peer: {broken} cell(s) oversold, disagreed with their ledger or failed");
    }
}

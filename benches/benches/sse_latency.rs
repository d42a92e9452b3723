//! Freshness over the wire: from an HTTP commit to its notice arriving at an SSE client
//! (`GET /api/events`), with `stockade serve` on the embedded store (fsync) and 1000
//! reservations/s of background load over HTTP on other SKUs. The target is p99 < 50 ms.
//!
//! `cargo bench -p stockade-benches --bench sse_latency` (20 s; `STOCKADE_BENCH_SECONDS`)
//!
//! Every 10 ms a probe reserves one unit of its own SKU over HTTP, then sends the commit
//! and notes when it did. The SSE reader notes when the commit's notice for the probe SKU
//! arrives. Latency is arrival minus send: the HTTP request, the append's fsync, the
//! projector's transaction, the hub, the stream's writer and the socket, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stockade_benches::http_load;
use stockade_benches::{ADMIN, WEB, publish, server_config};
use stockade_engine::Percentiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BACKGROUND_PER_SECOND: u64 = 1000;
const BACKGROUND_SKUS: usize = 10;
const PROBE_EVERY: Duration = Duration::from_millis(10);
const TARGET_P99_MS: f64 = 50.0;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let seconds: u64 = std::env::var("STOCKADE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let config = server_config(dir.path());
    let server = stockade_server::spawn(config, TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let runtime = stockade_benches::runtime();
    runtime.block_on(measure(server.local_addr(), Duration::from_secs(seconds)));
    server.stop().unwrap();
}

async fn call(addr: SocketAddr, request: Vec<u8>) -> (u16, serde_json::Value) {
    let (status, body) = http_load::once(addr, &request).await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_default())
}

async fn register(addr: SocketAddr, sku: &str) {
    let body = format!(r#"{{"sku":"{sku}","pool":"physical","on_hand":100000000}}"#);
    let (status, answer) = call(addr, http_load::post(addr, "/api/skus", ADMIN, &body)).await;
    assert_eq!(status, 201, "{answer}");
}

fn reserve_body(sku: &str) -> String {
    format!(r#"{{"items":[{{"sku":"{sku}","qty":1}}]}}"#)
}

async fn measure(addr: SocketAddr, duration: Duration) {
    register(addr, "PROBE").await;
    for i in 0..BACKGROUND_SKUS {
        register(addr, &format!("BG-{i}")).await;
    }
    // Commit sends by the probe's version after the commit: the notice names it.
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let arrived: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let reader = tokio::spawn(read_sse(addr, arrived.clone()));

    // Background: 1000 reservations/s over HTTP, spread over the other SKUs.
    let deadline = Instant::now() + duration;
    let background = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let per_tick = BACKGROUND_PER_SECOND / 100;
        let mut n = 0usize;
        while Instant::now() < deadline {
            tick.tick().await;
            for _ in 0..per_tick {
                let sku = format!("BG-{}", n % BACKGROUND_SKUS);
                n += 1;
                tokio::spawn(async move {
                    let request =
                        http_load::post(addr, "/api/reservations", WEB, &reserve_body(&sku));
                    let _ = http_load::once(addr, &request).await;
                });
            }
        }
    });

    // Probes on one keep-alive-free connection each (simple, and the same for every probe).
    let mut probes = 0u64;
    let mut tick = tokio::time::interval(PROBE_EVERY);
    while Instant::now() < deadline {
        tick.tick().await;
        let (status, held) = call(
            addr,
            http_load::post(addr, "/api/reservations", WEB, &reserve_body("PROBE")),
        )
        .await;
        assert_eq!(status, 201, "{held}");
        let id = held["reservation_id"].as_str().unwrap().to_owned();
        let commit = http_load::post(addr, &format!("/api/reservations/{id}/commit"), WEB, "");
        let at = Instant::now();
        let (status, done) = call(addr, commit).await;
        assert_eq!(status, 200, "{done}");
        let version = done["items"][0]["version"].as_u64().unwrap();
        sent.lock().unwrap().insert(version, at);
        probes += 1;
    }
    background.await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.abort();

    let sent = sent.lock().unwrap();
    let arrived = arrived.lock().unwrap();
    let mut latencies: Vec<u64> = Vec::new();
    let mut missing = 0u64;
    for (version, at) in sent.iter() {
        match arrived.get(version) {
            Some(got) => latencies.push(got.saturating_duration_since(*at).as_micros() as u64),
            None => missing += 1,
        }
    }
    let p = Percentiles::of_micros(&mut latencies);
    let verdict = if p.p99 < TARGET_P99_MS && missing == 0 {
        "met"
    } else {
        "not met"
    };
    let table = format!(
        "| background reservations/s | probes | missing notices | p50 ms | p99 ms | p999 ms | max ms | target p99 < 50 ms |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|\n\
         | {BACKGROUND_PER_SECOND} | {probes} | {missing} | {:.2} | {:.2} | {:.2} | {:.2} | {verdict} |\n",
        p.p50, p.p99, p.p999, p.max
    );
    let json = format!(
        "{{\"background_per_second\":{BACKGROUND_PER_SECOND},\"probes\":{probes},\"missing\":{missing},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        p.p50, p.p99, p.p999, p.max
    );
    publish(
        "Commit over HTTP → notice at an SSE client",
        &table,
        "sse_latency",
        &[json],
    );
}

/// Follows `GET /api/events?sku=PROBE`, noting when each commit notice arrives, by the
/// version it moved the SKU to.
async fn read_sse(addr: SocketAddr, arrived: Arc<Mutex<HashMap<u64, Instant>>>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /api/events?sku=PROBE HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut text = String::new();
    let mut in_body = false;
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = Instant::now();
        raw.extend_from_slice(&chunk[..n]);
        if !in_body {
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            raw.drain(..end + 4);
            in_body = true;
        }
        // Chunked transfer coding: `<hex size>\r\n<data>\r\n`, repeated.
        while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&raw[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .expect("a chunk size");
            if raw.len() < line_end + 2 + size + 2 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(
                &raw[line_end + 2..line_end + 2 + size],
            ));
            raw.drain(..line_end + 2 + size + 2);
        }
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let message: serde_json::Value = serde_json::from_str(data).unwrap();
            if message["type"] == "notice" && message["cause"]["command"] == "commit" {
                let version = message["version"].as_u64().unwrap();
                arrived.lock().unwrap().insert(version, now);
            }
        }
    }
}

//! Soak: `stockade serve` (the release binary, as a child process) under a mixed workload
//! for `--minutes` (default 10): reservations that are committed, released or left to
//! expire, adjustments, reads, and SSE clients that connect, read a while and leave.
//! Every 10 s it samples the server's resident memory and open file descriptors from
//! /proc and prints a row; at the end, a table and `target/soak.json`.
//!
//! Every reservation carries an `Idempotency-Key`, as storefronts send them, and one in
//! twenty is sent again with the same key: the retry must get the same reservation back.
//! The soak also draws RSS and descriptors over time (`target/soak.svg`).
//!
//! It fails (exit 1) on any answer outside the documented ones (a 500, a reset while the
//! server is up), a keyed retry answered with another reservation, or if the log's audit
//! finds a breach.
//!
//! ```sh
//! cargo build --release -p stockade-cli
//! cargo bench -p stockade-benches --bench soak -- --minutes 10
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

const ADMIN: &str = "soak-admin-token-0000001";
const WEB: &str = "soak-web-token-000000001";
const SKUS: usize = 20;
const WRITERS: usize = 16;
const SSE_CLIENTS: usize = 6;

struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[derive(Default)]
struct Counts {
    ops: AtomicU64,
    sse_sessions: AtomicU64,
    notices_read: AtomicU64,
    unexpected: AtomicU64,
    /// Keyed retries sent, and those answered with a different reservation.
    retries: AtomicU64,
    retries_diverged: AtomicU64,
    by_status: std::sync::Mutex<BTreeMap<u16, u64>>,
}

impl Counts {
    fn saw(&self, status: u16) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        *self.by_status.lock().unwrap().entry(status).or_default() += 1;
        if !matches!(status, 200 | 201 | 409 | 429 | 503) {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn binary() -> PathBuf {
    std::env::var_os("STOCKADE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/stockade"),
        PathBuf::from,
    )
}

/// Resident memory (KiB) and open descriptors of `pid`.
fn sample(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

async fn writer(n: u64, base: String, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut rng = Lcg(n + 11);
    let mut keyed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let sku = format!("SOAK-{}", rng.below(SKUS as u64));
        let roll = rng.below(100);
        let answer = if roll < 3 {
            http.post(format!("{base}/api/inventory/products/{sku}/adjustments"))
                .bearer_auth(ADMIN)
                .json(&json!({"delta": 50, "reason": "soak restock"}))
                .send()
                .await
        } else if roll < 20 {
            http.get(format!("{base}/api/inventory/products/{sku}"))
                .send()
                .await
        } else {
            // Short holds, so expiry runs all the time.
            let ttl = 1 + rng.below(5);
            keyed += 1;
            let key = format!("soak-{n}-{keyed}");
            let body =
                json!({"items": [{"sku": sku, "qty": 1 + rng.below(2)}], "ttl_seconds": ttl});
            let reserve = || {
                http.post(format!("{base}/api/reservations"))
                    .bearer_auth(WEB)
                    .header("Idempotency-Key", &key)
                    .json(&body)
                    .send()
            };
            let held = reserve().await;
            match held {
                Ok(r) if r.status().as_u16() == 201 => {
                    counts.saw(201);
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    let id = body["reservation_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if rng.below(20) == 0 {
                        // A client that never saw the answer sends the same request again.
                        counts.retries.fetch_add(1, Ordering::Relaxed);
                        let again = match reserve().await {
                            Ok(r) => r.json::<serde_json::Value>().await.unwrap_or_default(),
                            Err(_) => serde_json::Value::Null,
                        };
                        if again["reservation_id"].as_str() != Some(id.as_str()) {
                            counts.retries_diverged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    match rng.below(3) {
                        0 => {
                            http.post(format!("{base}/api/reservations/{id}/commit"))
                                .bearer_auth(WEB)
                                .send()
                                .await
                        }
                        1 => {
                            http.post(format!("{base}/api/reservations/{id}/release"))
                                .bearer_auth(WEB)
                                .send()
                                .await
                        }
                        _ => continue, // left to expire
                    }
                }
                other => other,
            }
        };
        match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                counts.saw(status);
            }
            Err(_) => {
                counts.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn sse_client(n: u64, base: String, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut rng = Lcg(n + 1000);
    while !stop.load(Ordering::Relaxed) {
        let stay = Duration::from_millis(300 + rng.below(3000));
        let Ok(mut response) = http.get(format!("{base}/api/events")).send().await else {
            counts.unexpected.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        counts.sse_sessions.fetch_add(1, Ordering::Relaxed);
        let until = tokio::time::Instant::now() + stay;
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, response.chunk()).await {
            let notices = chunk.windows(12).filter(|w| w == b"event: notic").count();
            counts
                .notices_read
                .fetch_add(notices as u64, Ordering::Relaxed);
        }
        drop(response);
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let minutes = arg("--minutes", 10);
    let bin = binary();
    assert!(
        bin.exists(),
        "{} not found: cargo build --release -p stockade-cli (or set STOCKADE_BIN)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("STOCKADE_ADMIN_TOKEN", ADMIN)
        .env("STOCKADE_CHANNEL_TOKENS", format!("web:{WEB}"))
        .env_remove("STOCKADE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .find_map(|l| {
            l.ok()?
                .split("listening on http://")
                .nth(1)
                .map(|a| a.trim().to_owned())
        })
        .expect("banner");
    std::thread::spawn(move || lines.for_each(drop));
    let base = format!("http://{addr}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let samples = runtime.block_on(async {
        let http = reqwest::Client::new();
        for s in 0..SKUS {
            let r = http
                .post(format!("{base}/api/skus"))
                .bearer_auth(ADMIN)
                .json(&json!({"sku": format!("SOAK-{s}"), "pool": "physical", "on_hand": 500}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
        }
        let mut tasks = Vec::new();
        for n in 0..WRITERS as u64 {
            tasks.push(tokio::spawn(writer(
                n,
                base.clone(),
                counts.clone(),
                stop.clone(),
            )));
        }
        for n in 0..SSE_CLIENTS as u64 {
            tasks.push(tokio::spawn(sse_client(
                n,
                base.clone(),
                counts.clone(),
                stop.clone(),
            )));
        }
        let started = Instant::now();
        let mut samples = Vec::new();
        println!(
            "{:>6} {:>10} {:>9} {:>6} {:>10}",
            "t (s)", "ops", "RSS MiB", "fds", "SSE conns"
        );
        while started.elapsed() < Duration::from_secs(minutes * 60) {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (rss, fds) = sample(pid);
            let t = started.elapsed().as_secs();
            let ops = counts.ops.load(Ordering::Relaxed);
            let sse = counts.sse_sessions.load(Ordering::Relaxed);
            println!(
                "{t:>6} {ops:>10} {:>9.1} {fds:>6} {sse:>10}",
                rss as f64 / 1024.0
            );
            samples.push((t, ops, rss, fds));
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        samples
    });

    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exited = child.wait().map(|s| s.success()).unwrap_or(false);
    let store: Arc<dyn stockade_store::EventStore> =
        Arc::new(stockade_store::SqliteStore::open(dir.path().join("stockade.db")).unwrap());
    let report = runtime
        .block_on(stockade_engine::audit::check_log(&store))
        .unwrap();

    // The first minute is warm-up (caches, pools); the bound is what the rest stays under.
    let warm: Vec<_> = samples.iter().filter(|s| s.0 >= 60).collect();
    let max_rss = warm.iter().map(|s| s.2).max().unwrap_or(0);
    let first_rss = warm.first().map_or(0, |s| s.2);
    let last_rss = warm.last().map_or(0, |s| s.2);
    let max_fds = samples.iter().map(|s| s.3).max().unwrap_or(0);
    let min_fds = samples.iter().map(|s| s.3).min().unwrap_or(0);
    let ops = counts.ops.load(Ordering::Relaxed);
    let unexpected = counts.unexpected.load(Ordering::Relaxed);
    let statuses = counts.by_status.lock().unwrap().clone();
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| duration | {minutes} min |");
    println!(
        "| requests answered | {ops} ({:.0}/s) |",
        ops as f64 / (minutes * 60) as f64
    );
    println!("| answers by status | {statuses:?} |");
    println!("| unexpected answers or resets | {unexpected} |");
    println!(
        "| SSE sessions opened and closed | {} ({} notices read) |",
        counts.sse_sessions.load(Ordering::Relaxed),
        counts.notices_read.load(Ordering::Relaxed)
    );
    println!(
        "| RSS after warm-up: first / last / max | {:.1} / {:.1} / {:.1} MiB |",
        first_rss as f64 / 1024.0,
        last_rss as f64 / 1024.0,
        max_rss as f64 / 1024.0
    );
    println!("| open fds: min / max | {min_fds} / {max_fds} |");
    let retries = counts.retries.load(Ordering::Relaxed);
    let diverged = counts.retries_diverged.load(Ordering::Relaxed);
    println!(
        "| keyed retries answered with the same reservation | {} of {retries} |",
        retries - diverged
    );
    println!(
        "| log audit | {} events, {} violations, {} oversold |",
        report.events,
        report.violations.len(),
        report.oversold_units
    );
    println!("| clean exit on SIGTERM | {exited} |");
    let json = json!({
        "minutes": minutes, "requests": ops, "statuses": statuses, "unexpected": unexpected,
        "sse_sessions": counts.sse_sessions.load(Ordering::Relaxed),
        "rss_kib": {"first_after_warmup": first_rss, "last": last_rss, "max_after_warmup": max_rss},
        "fds": {"min": min_fds, "max": max_fds},
        "keyed_retries": retries, "keyed_retries_diverged": diverged,
        "samples": samples.iter().map(|s| json!({"t": s.0, "ops": s.1, "rss_kib": s.2, "fds": s.3})).collect::<Vec<_>>(),
        "audit": {"events": report.events, "violations": report.violations, "oversold": report.oversold_units},
        "clean_exit": exited,
    });
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/soak.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let svg = out.with_extension("svg");
    std::fs::write(&svg, chart(&samples, minutes)).unwrap();
    println!("\nwritten: {} and {}", out.display(), svg.display());
    let failed = unexpected > 0
        || diverged > 0
        || !report.violations.is_empty()
        || report.oversold_units > 0
        || !exited;
    std::process::exit(i32::from(failed));
}

/// One sample: seconds since the start, requests answered, RSS (KiB), open descriptors.
type Sample = (u64, u64, u64, usize);

/// RSS (MiB, left axis) and open descriptors (right axis) against minutes, as an SVG.
fn chart(samples: &[Sample], minutes: u64) -> String {
    use std::fmt::Write as _;
    let (w, h, left, right, top, bottom) = (720.0, 320.0, 60.0, 60.0, 30.0, 40.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max_rss = samples.iter().map(|s| s.2).max().unwrap_or(1) as f64 / 1024.0;
    let rss_top = (max_rss * 1.2).max(1.0).ceil();
    let fds_top = (samples.iter().map(|s| s.3).max().unwrap_or(1) as f64 * 1.2).ceil();
    let t_end = (minutes * 60).max(1) as f64;
    let x = |t: u64| left + pw * t as f64 / t_end;
    let line = |value: &dyn Fn(&Sample) -> f64, top_value: f64| {
        samples
            .iter()
            .map(|s| {
                format!(
                    "{:.1},{:.1}",
                    x(s.0),
                    top + ph * (1.0 - value(s) / top_value)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\">Soak: RSS (blue, MiB) and open fds (orange) over {minutes} min</text>\n"
    );
    for i in 0..=4 {
        let y = top + ph * f64::from(i) / 4.0;
        let rss = rss_top * (1.0 - f64::from(i) / 4.0);
        let fds = fds_top * (1.0 - f64::from(i) / 4.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{rss:.0}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\">{fds:.0}</text>",
            left + pw,
            left - 6.0,
            y + 4.0,
            left + pw + 6.0,
            y + 4.0
        );
    }
    for m in (0..=minutes).step_by(usize::try_from((minutes / 6).max(1)).unwrap_or(1)) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{m} min</text>",
            x(m * 60),
            h - 14.0
        );
    }
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"{}\"/>\n\
         <polyline fill=\"none\" stroke=\"#e8710a\" stroke-width=\"2\" points=\"{}\"/>\n</svg>",
        line(&|s| s.2 as f64 / 1024.0, rss_top),
        line(&|s| s.3 as f64, fds_top)
    );
    svg
}

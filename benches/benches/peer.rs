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

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SELL_OUT_STOCK: u64 = 500;
const AMPLE_STOCK: u64 = 1_000_000_000;
const STRATEGIES: [&str; 6] = [
    "stockade in-process",
    "stockade over HTTP",
    "pg optimistic",
    "pg FOR UPDATE",
    "redis lock",
    "redis lua",
];

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

/// One buyer's connection.
enum Buyer {
    Engine(Inventory, Sku),
    Http(TcpStream, Vec<u8>, Vec<u8>),
    PgOptimistic(tokio_postgres::Client, String),
    PgForUpdate(tokio_postgres::Client, String),
    RedisLock(Resp, String),
    RedisLua(Resp, String, String),
}

impl Buyer {
    /// Reserves one unit: `Ok(true)` once durable, `Ok(false)` when sold out.
    async fn reserve(&mut self) -> Result<bool, String> {
        match self {
            Buyer::Engine(inventory, sku) => {
                match inventory
                    .reserve(sku, Quantity::new(1), ReserveOptions::default())
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(Error::Rejected { .. }) => Ok(false),
                    Err(e) => Err(e.to_string()),
                }
            }
            Buyer::Http(stream, request, buffer) => {
                stream.write_all(request).await.map_err(|e| e.to_string())?;
                let (status, body) = http_load::read_answer(stream, buffer)
                    .await
                    .map_err(|e| e.to_string())?;
                match status {
                    201 => Ok(true),
                    409 => Ok(false),
                    other => Err(format!("{other}: {}", String::from_utf8_lossy(&body))),
                }
            }
            Buyer::PgOptimistic(client, sku) => loop {
                let row = client
                    .query_one(
                        "SELECT available, version FROM stock WHERE sku = $1",
                        &[&*sku],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let (available, version): (i64, i64) = (row.get(0), row.get(1));
                if available < 1 {
                    return Ok(false);
                }
                let won = client
                    .execute(
                        "WITH taken AS (UPDATE stock SET available = available - 1, \
                         version = version + 1 WHERE sku = $1 AND version = $2 RETURNING sku) \
                         INSERT INTO reservations (sku, qty) SELECT sku, 1 FROM taken",
                        &[&*sku, &version],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if won == 1 {
                    return Ok(true);
                } // another buyer moved the version: read again
            },
            Buyer::PgForUpdate(client, sku) => {
                let tx = client.transaction().await.map_err(|e| e.to_string())?;
                let row = tx
                    .query_one(
                        "SELECT available FROM stock WHERE sku = $1 FOR UPDATE",
                        &[&*sku],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let available: i64 = row.get(0);
                if available < 1 {
                    tx.rollback().await.map_err(|e| e.to_string())?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE stock SET available = available - 1 WHERE sku = $1",
                    &[&*sku],
                )
                .await
                .map_err(|e| e.to_string())?;
                tx.execute(
                    "INSERT INTO reservations (sku, qty) VALUES ($1, 1)",
                    &[&*sku],
                )
                .await
                .map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())?;
                Ok(true)
            }
            Buyer::RedisLock(redis, sku) => {
                // Unique per attempt in this process; the process id keeps two runs apart.
                let n = LOCK_TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let me = format!("{}-{n}", std::process::id());
                let lock = format!("lock:{sku}");
                let mut wait = Duration::from_micros(200);
                loop {
                    let got = redis.call(&["SET", &lock, &me, "NX", "PX", "2000"]).await?;
                    if got != Reply::Nil {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_millis(5));
                }
                let stock = redis.call(&["GET", &format!("stock:{sku}")]).await?.int();
                let reserved = if stock >= 1 {
                    redis
                        .call(&["SET", &format!("stock:{sku}"), &(stock - 1).to_string()])
                        .await?;
                    redis
                        .call(&["RPUSH", &format!("reservations:{sku}"), &me])
                        .await?;
                    true
                } else {
                    false
                };
                redis
                    .call(&[
                        "EVAL",
                        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                         return redis.call('DEL', KEYS[1]) else return 0 end",
                        "1",
                        &lock,
                        &me,
                    ])
                    .await?;
                Ok(reserved)
            }
            Buyer::RedisLua(redis, sku, sha) => {
                let got = redis
                    .call(&[
                        "EVALSHA",
                        sha,
                        "2",
                        &format!("stock:{sku}"),
                        &format!("reservations:{sku}"),
                        "1",
                    ])
                    .await?;
                Ok(got.int() == 1)
            }
        }
    }
}

/// Lock tokens: each attempt's own, so a release never frees another buyer's lock.
static LOCK_TOKENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const LUA_RESERVE: &str = "local n = tonumber(redis.call('GET', KEYS[1]) or '0') \
     if n >= tonumber(ARGV[1]) then redis.call('DECRBY', KEYS[1], ARGV[1]) \
     redis.call('RPUSH', KEYS[2], ARGV[1]) return 1 else return 0 end";

/// Just enough RESP (the Redis protocol) for these commands.
struct Resp {
    stream: BufReader<TcpStream>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Nil,
    Text(String),
    Int(i64),
    Many(Vec<Reply>),
}

impl Reply {
    fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            Reply::Text(s) => s.parse().unwrap_or(0),
            _ => 0,
        }
    }
}

impl Resp {
    async fn connect(addr: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("redis {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    async fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            let _ = write!(out, "${}\r\n{a}\r\n", a.len());
        }
        self.stream
            .get_mut()
            .write_all(out.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        self.reply().await
    }

    async fn reply(&mut self) -> Result<Reply, String> {
        let mut line = String::new();
        self.stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1.min(line.len()));
        match kind {
            "+" => Ok(Reply::Text(rest.to_owned())),
            "-" => Err(format!("redis: {rest}")),
            ":" => Ok(Reply::Int(rest.parse().map_err(|_| "bad integer")?)),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| "bad length")?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                let mut data = vec![0; n as usize + 2];
                self.stream
                    .read_exact(&mut data)
                    .await
                    .map_err(|e| e.to_string())?;
                data.truncate(n as usize);
                Ok(Reply::Text(String::from_utf8_lossy(&data).into_owned()))
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| "bad count")?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(Box::pin(self.reply()).await?);
                }
                Ok(Reply::Many(items))
            }
            _ => Err(format!("redis: unexpected reply {line:?}")),
        }
    }
}

/// A strategy's back end, set up once per run.
enum Backend {
    // The directories live as long as their backend.
    Engine(Inventory, #[allow(dead_code)] tempfile::TempDir),
    Http(
        stockade_server::Background,
        SocketAddr,
        #[allow(dead_code)] tempfile::TempDir,
    ),
    Pg(String),
    Redis(String, String),
}

async fn pg(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl Backend {
    async fn open(strategy: &str, s: &Settings) -> Result<Self, String> {
        match strategy {
            "stockade in-process" => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let inventory = Inventory::open(InventoryConfig::sqlite(dir.path()))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Backend::Engine(inventory, dir))
            }
            "stockade over HTTP" => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let mut config = server_config(dir.path());
                config.limits.max_concurrent_requests = 100_000;
                let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                let server = stockade_server::spawn(config, listener).map_err(|e| e.to_string())?;
                let addr = server.local_addr();
                Ok(Backend::Http(server, addr, dir))
            }
            "pg optimistic" | "pg FOR UPDATE" => {
                let client = pg(&s.pg_url).await?;
                client
                    .batch_execute(
                        "DROP TABLE IF EXISTS reservations; DROP TABLE IF EXISTS stock;
                         CREATE TABLE stock (sku text PRIMARY KEY, available bigint NOT NULL,
                             version bigint NOT NULL);
                         CREATE TABLE reservations (id bigserial PRIMARY KEY,
                             sku text NOT NULL REFERENCES stock (sku), qty int NOT NULL,
                             created_at timestamptz NOT NULL DEFAULT now());
                         CREATE INDEX ON reservations (sku);",
                    )
                    .await
                    .map_err(|e| format!("postgres schema: {e}"))?;
                Ok(Backend::Pg(s.pg_url.clone()))
            }
            "redis lock" | "redis lua" => {
                let mut redis = Resp::connect(&s.redis_addr).await?;
                redis.call(&["FLUSHALL"]).await?;
                let sha = match redis.call(&["SCRIPT", "LOAD", LUA_RESERVE]).await? {
                    Reply::Text(sha) => sha,
                    other => return Err(format!("SCRIPT LOAD: {other:?}")),
                };
                Ok(Backend::Redis(s.redis_addr.clone(), sha))
            }
            other => Err(format!("unknown strategy {other}")),
        }
    }

    /// Puts `stock` units of a fresh SKU on sale.
    async fn stock(&self, sku: &str, stock: u64) -> Result<(), String> {
        match self {
            Backend::Engine(inventory, _) => {
                let pool = PoolConfig::Physical {
                    on_hand: Quantity::new(stock),
                    safety_stock: Quantity::ZERO,
                };
                inventory
                    .register(
                        &Sku::new(sku).map_err(|e| e.to_string())?,
                        pool,
                        &Default::default(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Backend::Http(_, addr, _) => {
                let body = format!(r#"{{"sku":"{sku}","pool":"physical","on_hand":{stock}}}"#);
                let (status, answer) =
                    http_load::once(*addr, &http_load::post(*addr, "/api/skus", ADMIN, &body))
                        .await
                        .map_err(|e| e.to_string())?;
                if status == 201 {
                    Ok(())
                } else {
                    Err(format!("register: {status} {answer}"))
                }
            }
            Backend::Pg(url) => {
                let client = pg(url).await?;
                let stock = i64::try_from(stock).map_err(|e| e.to_string())?;
                client
                    .execute(
                        "INSERT INTO stock (sku, available, version) VALUES ($1, $2, 0)",
                        &[&sku, &stock],
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Backend::Redis(addr, _) => {
                let mut redis = Resp::connect(addr).await?;
                redis
                    .call(&["SET", &format!("stock:{sku}"), &stock.to_string()])
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn buyer(&self, strategy: &str, sku: &str) -> Result<Buyer, String> {
        Ok(match self {
            Backend::Engine(inventory, _) => {
                Buyer::Engine(inventory.clone(), Sku::new(sku).map_err(|e| e.to_string())?)
            }
            Backend::Http(_, addr, _) => {
                let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let body = format!(r#"{{"items":[{{"sku":"{sku}","qty":1}}]}}"#);
                let request = http_load::post(*addr, "/api/reservations", WEB, &body);
                Buyer::Http(stream, request, Vec::with_capacity(4096))
            }
            Backend::Pg(url) if strategy == "pg optimistic" => {
                Buyer::PgOptimistic(pg(url).await?, sku.to_owned())
            }
            Backend::Pg(url) => Buyer::PgForUpdate(pg(url).await?, sku.to_owned()),
            Backend::Redis(addr, _) if strategy == "redis lock" => {
                Buyer::RedisLock(Resp::connect(addr).await?, sku.to_owned())
            }
            Backend::Redis(addr, sha) => {
                Buyer::RedisLua(Resp::connect(addr).await?, sku.to_owned(), sha.clone())
            }
        })
    }

    /// The store's own account of `sku`: units still on sale, reservations recorded.
    async fn ledger(&self, sku: &str) -> Result<(i64, u64), String> {
        match self {
            Backend::Engine(inventory, _) => {
                let sku = Sku::new(sku).map_err(|e| e.to_string())?;
                let level = inventory.stock(&sku).await.map_err(|e| e.to_string())?;
                let left = match level.view.available {
                    stockade_domain::Availability::Limited(q) => q.get() as i64,
                    stockade_domain::Availability::Unlimited => i64::MAX,
                };
                Ok((left, level.view.reserved.get()))
            }
            Backend::Http(_, addr, _) => {
                let path = format!("/api/inventory/products/{sku}");
                let (_, body) = http_load::once(*addr, &http_load::get(*addr, &path, WEB))
                    .await
                    .map_err(|e| e.to_string())?;
                let v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let left = v["available"].as_i64().unwrap_or(-1);
                Ok((left, v["reserved"].as_u64().unwrap_or(0)))
            }
            Backend::Pg(url) => {
                let client = pg(url).await?;
                let left: i64 = client
                    .query_one("SELECT available FROM stock WHERE sku = $1", &[&sku])
                    .await
                    .map_err(|e| e.to_string())?
                    .get(0);
                let recorded: i64 = client
                    .query_one("SELECT count(*) FROM reservations WHERE sku = $1", &[&sku])
                    .await
                    .map_err(|e| e.to_string())?
                    .get(0);
                Ok((left, recorded as u64))
            }
            Backend::Redis(addr, _) => {
                let mut redis = Resp::connect(addr).await?;
                let left = redis.call(&["GET", &format!("stock:{sku}")]).await?.int();
                let recorded = redis
                    .call(&["LLEN", &format!("reservations:{sku}")])
                    .await?
                    .int();
                Ok((left, recorded as u64))
            }
        }
    }

    async fn close(self) {
        match self {
            Backend::Http(server, _, _) => {
                let _ = tokio::task::spawn_blocking(move || server.stop()).await;
            }
            Backend::Engine(inventory, _) => inventory.shutdown().await,
            Backend::Pg(_) | Backend::Redis(..) => {}
        }
    }
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
    strategy: String,
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

async fn measure(strategy: &str, s: &Settings, n: usize) -> Result<Vec<Cell>, String> {
    let backend = Backend::open(strategy, s).await?;
    let mut cells = Vec::new();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    for &concurrency in &s.concurrency {
        eprintln!(
            "== [{n}/{}] {strategy}, {concurrency} buyers",
            STRATEGIES.len()
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
            strategy: strategy.to_owned(),
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {} GiB", kb / 1024 / 1024));
    format!("{cores} cores ({cpu}){mem}")
}

async fn versions(s: &Settings) -> String {
    let pg = match pg(&s.pg_url).await {
        Ok(c) => c
            .query_one("SHOW server_version", &[])
            .await
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let redis = match Resp::connect(&s.redis_addr).await {
        Ok(mut r) => match r.call(&["INFO", "server"]).await {
            Ok(Reply::Text(info)) => info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        },
        Err(_) => String::new(),
    };
    format!("PostgreSQL {pg} (fsync, synchronous_commit on), Redis {redis} (appendfsync always)")
}

fn table(cells: &[Cell]) -> String {
    let mut t = String::from(
        "| strategy | buyers | reservations/s | p50 ms | p99 ms | oversold | ledger | vs Stockade |\n\
         |---|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for c in cells {
        let _ = writeln!(
            t,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            c.strategy,
            c.concurrency,
            c.reservations_per_second,
            c.p50_ms,
            c.p99_ms,
            c.oversold,
            if c.ledger_agrees { "agrees" } else { "DIFFERS" },
            c.vs_stockade
                .map_or_else(|| "—".into(), |r| format!("{r:.3}×")),
        );
    }
    t
}

/// Throughput against concurrency, both on log scales, one line per strategy.
fn chart(cells: &[Cell], concurrency: &[usize], title: &str) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 440.0, 70.0, 190.0, 40.0, 50.0);
    let max = cells
        .iter()
        .map(|c| c.reservations_per_second)
        .fold(1.0, f64::max);
    let min = cells
        .iter()
        .map(|c| c.reservations_per_second)
        .filter(|r| *r > 0.0)
        .fold(max, f64::min);
    let (lo, hi) = (
        min.log10().floor(),
        max.log10().ceil().max(min.log10().floor() + 1.0),
    );
    let x = |i: usize| left + (w - left - right) * i as f64 / (concurrency.len().max(2) - 1) as f64;
    let y = |r: f64| top + (h - top - bottom) * (1.0 - (r.max(1.0).log10() - lo) / (hi - lo));
    let colours = [
        "#1b7f3b", "#52b06a", "#1f5fa8", "#6f9fd8", "#b3261e", "#e07b39",
    ];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"14\">{title}</text>\n"
    );
    for decade in (lo as i32)..=(hi as i32) {
        let yy = y(10f64.powi(decade));
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            yy + 4.0,
            if decade >= 3 {
                format!("{}k", 10u64.pow(decade as u32) / 1000)
            } else {
                10u64.pow(decade as u32).to_string()
            }
        );
    }
    for (i, n) in concurrency.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{n}</text>",
            x(i),
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">concurrent buyers</text>\
         <text transform=\"rotate(-90)\" x=\"{:.1}\" y=\"16\" text-anchor=\"middle\">durable reservations/s (log)</text>",
        (left + w - right) / 2.0,
        h - 10.0,
        -(top + h - bottom) / 2.0
    );
    for (k, strategy) in STRATEGIES.iter().enumerate() {
        let points: Vec<String> = concurrency
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                cells
                    .iter()
                    .find(|c| c.strategy == *strategy && c.concurrency == *n)
                    .map(|c| format!("{:.1},{:.1}", x(i), y(c.reservations_per_second)))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let colour = colours[k % colours.len()];
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{}\">{strategy}</text>",
            w - right + 12.0,
            w - right + 32.0,
            w - right + 38.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn main() {
    let Some(s) = settings() else { return };
    let runtime = stockade_benches::runtime();
    let started = Instant::now();
    let mut cells: Vec<Cell> = Vec::new();
    let (machine, versions) = (machine(), runtime.block_on(versions(&s)));
    for (n, strategy) in STRATEGIES.iter().enumerate() {
        if s.only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|x| x == strategy))
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
        .filter(|c| c.strategy == STRATEGIES[0])
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

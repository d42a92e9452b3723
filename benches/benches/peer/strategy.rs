//! The strategies compared, each with its back end (set up once per run) and its buyers
//! (one connection or task each), all durable before they say "reserved".

use super::*;

/// A way of taking a reservation, as the comparison names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `Inventory::reserve` on the embedded SQLite log.
    InProcess,
    /// `POST /api/reservations` to `stockade serve` on 127.0.0.1.
    Http,
    /// A versioned read, then one conditional UPDATE joined to an INSERT.
    PgOptimistic,
    /// A transaction that locks the row, checks, updates and inserts.
    PgForUpdate,
    /// `SET lock NX PX`, read, decrement, record, compare-and-delete.
    RedisLock,
    /// One script checks, decrements and records.
    RedisLua,
}

impl Strategy {
    /// Every strategy, in the order of the report; the first is the baseline.
    pub const ALL: [Strategy; 6] = [
        Strategy::InProcess,
        Strategy::Http,
        Strategy::PgOptimistic,
        Strategy::PgForUpdate,
        Strategy::RedisLock,
        Strategy::RedisLua,
    ];

    /// The name in the report and in `--only`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::InProcess => "stockade in-process",
            Strategy::Http => "stockade over HTTP",
            Strategy::PgOptimistic => "pg optimistic",
            Strategy::PgForUpdate => "pg FOR UPDATE",
            Strategy::RedisLock => "redis lock",
            Strategy::RedisLua => "redis lua",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One buyer's connection.
pub(crate) enum Buyer {
    Engine(Inventory, Sku),
    Http(TcpStream, Vec<u8>, Vec<u8>),
    PgOptimistic(tokio_postgres::Client, String),
    PgForUpdate(tokio_postgres::Client, String),
    RedisLock(Resp, String),
    RedisLua(Resp, String, String),
}

impl Buyer {
    /// Reserves one unit: `Ok(true)` once durable, `Ok(false)` when sold out.
    pub(crate) async fn reserve(&mut self) -> Result<bool, String> {
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
pub(crate) static LOCK_TOKENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) const LUA_RESERVE: &str = "local n = tonumber(redis.call('GET', KEYS[1]) or '0') \
     if n >= tonumber(ARGV[1]) then redis.call('DECRBY', KEYS[1], ARGV[1]) \
     redis.call('RPUSH', KEYS[2], ARGV[1]) return 1 else return 0 end";

/// Just enough RESP (the Redis protocol) for these commands.
pub(crate) struct Resp {
    stream: BufReader<TcpStream>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Nil,
    Text(String),
    Int(i64),
    Many(Vec<Reply>),
}

impl Reply {
    pub(crate) fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            Reply::Text(s) => s.parse().unwrap_or(0),
            _ => 0,
        }
    }
}

impl Resp {
    pub(crate) async fn connect(addr: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("redis {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    pub(crate) async fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
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

    pub(crate) async fn reply(&mut self) -> Result<Reply, String> {
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
pub(crate) enum Backend {
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

pub(crate) async fn pg(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl Backend {
    pub(crate) async fn open(strategy: Strategy, s: &Settings) -> Result<Self, String> {
        match strategy {
            Strategy::InProcess => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let inventory = Inventory::open(InventoryConfig::sqlite(dir.path()))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Backend::Engine(inventory, dir))
            }
            Strategy::Http => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let mut config = server_config(dir.path());
                config.limits.max_concurrent_requests = 100_000;
                let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                let server = stockade_server::spawn(config, listener).map_err(|e| e.to_string())?;
                let addr = server.local_addr();
                Ok(Backend::Http(server, addr, dir))
            }
            Strategy::PgOptimistic | Strategy::PgForUpdate => {
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
            Strategy::RedisLock | Strategy::RedisLua => {
                let mut redis = Resp::connect(&s.redis_addr).await?;
                redis.call(&["FLUSHALL"]).await?;
                let sha = match redis.call(&["SCRIPT", "LOAD", LUA_RESERVE]).await? {
                    Reply::Text(sha) => sha,
                    other => return Err(format!("SCRIPT LOAD: {other:?}")),
                };
                Ok(Backend::Redis(s.redis_addr.clone(), sha))
            }
        }
    }

    /// Puts `stock` units of a fresh SKU on sale.
    pub(crate) async fn stock(&self, sku: &str, stock: u64) -> Result<(), String> {
        match self {
            Backend::Engine(inventory, _) => {
                let pool = PoolConfig::Physical {
                    locations: Vec::new(),
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

    pub(crate) async fn buyer(&self, strategy: Strategy, sku: &str) -> Result<Buyer, String> {
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
            Backend::Pg(url) if strategy == Strategy::PgOptimistic => {
                Buyer::PgOptimistic(pg(url).await?, sku.to_owned())
            }
            Backend::Pg(url) => Buyer::PgForUpdate(pg(url).await?, sku.to_owned()),
            Backend::Redis(addr, _) if strategy == Strategy::RedisLock => {
                Buyer::RedisLock(Resp::connect(addr).await?, sku.to_owned())
            }
            Backend::Redis(addr, sha) => {
                Buyer::RedisLua(Resp::connect(addr).await?, sku.to_owned(), sha.clone())
            }
        })
    }

    /// The store's own account of `sku`: units still on sale, reservations recorded.
    pub(crate) async fn ledger(&self, sku: &str) -> Result<(i64, u64), String> {
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

    pub(crate) async fn close(self) {
        match self {
            Backend::Http(server, _, _) => {
                let _ = tokio::task::spawn_blocking(move || server.stop()).await;
            }
            Backend::Engine(inventory, _) => inventory.shutdown().await,
            Backend::Pg(_) | Backend::Redis(..) => {}
        }
    }
}

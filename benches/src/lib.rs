//! Workloads shared by the benchmarks in `benches/`, kept here so they are compiled (and
//! linted) with the workspace, not only when someone runs `cargo bench`.

use std::time::{Duration, Instant};

pub mod http_load;

use stockade_store::{
    EventData, EventStore, ExpectedRevision, SqliteStore, StoreError, StreamName,
};
use uuid::Uuid;

/// The admin token of the servers the HTTP benches start.
pub const ADMIN: &str = "bench-admin-token-00001";
/// The `web` channel token of the servers the HTTP benches start.
pub const WEB: &str = "bench-web-token-000001";

/// The settings of a server under bench on `dir`: [`ADMIN`] and a `web` channel token
/// ([`WEB`]), and no periodic reconciliation to disturb the measurement.
pub fn server_config(dir: &std::path::Path) -> stockade_server::ServerConfig {
    let mut config = stockade_server::ServerConfig {
        data_dir: dir.to_path_buf(),
        ..stockade_server::ServerConfig::default()
    };
    config.auth.admin_tokens = vec![ADMIN.into()];
    config.auth.channel_tokens = std::collections::BTreeMap::from([("web".into(), WEB.into())]);
    config.reconcile.every_seconds = 0;
    config
}

/// A payload the size of a msgpack-encoded `StockReserved` (~150 bytes).
fn payload() -> Vec<u8> {
    vec![0x5a; 150]
}

/// One event, as the engine would append per reservation.
pub fn bench_event() -> EventData {
    EventData {
        event_id: Uuid::new_v4(),
        event_type: "StockReserved".into(),
        data: payload(),
        metadata: vec![0x80; 60],
        index: Default::default(),
    }
}

/// `appenders` tasks, each appending single events to its own stream with exact expected
/// revisions, `total` events in all. Returns the wall time.
pub async fn append_concurrently(
    store: &SqliteStore,
    appenders: usize,
    total: u64,
    round: u64,
) -> Result<Duration, StoreError> {
    let per_task = total.div_ceil(appenders as u64);
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|i| {
            let store = store.clone(); // a handle: clones share one writer
            tokio::spawn(async move {
                // A fresh stream per task and round: the expected revision starts at NoStream.
                let stream = StreamName::new(format!("sku-bench-{round}-{i}"))?;
                let mut expected = ExpectedRevision::NoStream;
                for _ in 0..per_task {
                    let r = store.append(&stream, expected, vec![bench_event()]).await?;
                    expected = ExpectedRevision::Exact(r.revision);
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| StoreError::Unavailable(format!("bench task: {e}")))??;
    }
    Ok(started.elapsed())
}

/// Durable reservations on one hot SKU: `callers` concurrent callers make `total`
/// reservations of one unit between them, on a freshly registered SKU with stock for all.
/// Returns the elapsed time and every call's latency in microseconds.
pub async fn reserve_concurrently(
    inventory: &stockade_engine::Inventory,
    sku: &stockade_domain::Sku,
    callers: usize,
    total: u64,
) -> Result<(Duration, Vec<u64>), stockade_engine::Error> {
    use stockade_domain::{PoolConfig, Quantity};
    use stockade_engine::{Origin, ReserveOptions};

    let pool = PoolConfig::Physical {
        locations: Vec::new(),
        on_hand: Quantity::new(total),
        safety_stock: Quantity::ZERO,
    };
    inventory.register(sku, pool, &Origin::default()).await?;
    reserve_load(inventory, sku, callers, total, ReserveOptions::default()).await
}

/// `callers` tasks reserving one unit of the registered `sku` each, `total` in all, with
/// `options`; returns the elapsed time and each call's latency in microseconds.
pub async fn reserve_load(
    inventory: &stockade_engine::Inventory,
    sku: &stockade_domain::Sku,
    callers: usize,
    total: u64,
    options: stockade_engine::ReserveOptions,
) -> Result<(Duration, Vec<u64>), stockade_engine::Error> {
    let line = stockade_engine::Line::new(sku.clone(), stockade_domain::Quantity::new(1));
    line_load(inventory, line, callers, total, options).await
}

/// [`reserve_load`] for any one-line order: `line` (its SKU, quantity and placement) is
/// reserved `total` times by `callers` concurrent callers.
pub async fn line_load(
    inventory: &stockade_engine::Inventory,
    line: stockade_engine::Line,
    callers: usize,
    total: u64,
    options: stockade_engine::ReserveOptions,
) -> Result<(Duration, Vec<u64>), stockade_engine::Error> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (inventory, line, next) = (inventory.clone(), line.clone(), next.clone());
            let options = options.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let asked = Instant::now();
                    inventory
                        .reserve_order(vec![line.clone()], options.clone())
                        .await?;
                    latencies.push(asked.elapsed().as_micros() as u64);
                }
                Ok::<_, stockade_engine::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total as usize);
    for task in tasks {
        let done = task
            .await
            .map_err(|e| stockade_engine::Error::Unavailable(e.to_string()))??;
        latencies.extend(done);
    }
    Ok((started.elapsed(), latencies))
}

/// What a row of a load bench accumulates over its samples (one engine per row, so the
/// holds of every sample pile up as in a sale).
#[derive(Debug, Default)]
pub struct LoadRow {
    pub reservations: u64,
    pub elapsed: Duration,
    pub latencies_us: Vec<u64>,
}

impl LoadRow {
    /// One criterion sample of `iters` reservations, run as at least `callers` (so every
    /// caller has work): `load(total)` makes `total` reservations and returns the time and
    /// latencies. Returns the time scaled back to `iters`, for `iter_custom`.
    pub fn sample(
        &mut self,
        iters: u64,
        callers: usize,
        load: impl FnOnce(u64) -> (Duration, Vec<u64>),
    ) -> Duration {
        let total = iters.max(callers as u64);
        let (took, latencies) = load(total);
        self.reservations += total;
        self.elapsed += took;
        self.latencies_us.extend(latencies);
        took.mul_f64(iters as f64 / total as f64)
    }

    /// Reservations per second over every sample.
    pub fn rate(&self) -> f64 {
        self.reservations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Prints a bench's markdown table under `title` and writes its rows, JSON objects, to
/// `target/stockade-bench/{name}.json` for anyone who wants to plot or compare them.
pub fn publish(title: &str, table: &str, name: &str, json_rows: &[String]) {
    #[allow(clippy::print_stdout)] // a bench's report is its output
    {
        println!("\n{title}\n\n{table}");
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/stockade-bench");
    let file = dir.join(format!("{name}.json"));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, format!("[{}]\n", json_rows.join(","))));
    if let Err(e) = written {
        eprintln!("could not write {}: {e}", file.display());
    }
}

/// The callers' runtime every bench uses: two workers, as many as the machine has cores.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("a bench cannot run without its runtime: {e}"),
    }
}

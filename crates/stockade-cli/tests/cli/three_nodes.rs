//! Three `stockade serve` nodes on one PostgreSQL log, behind HAProxy with the shipped
//! `ops/haproxy/stockade.cfg`, sell a scarce SKU to a thousand buyers while one node is
//! SIGKILLed and restarted mid-sale.
//!
//! Half the buyers go through the load balancer with the `X-Stockade-Sku` header (so to
//! the SKU's owner); the other half go straight to a node chosen by their number, as a
//! client that ignores the routing would, so every node writes the SKU and the fence
//! (the expected revision) decides every race. A request whose answer was lost to the
//! kill is retried with its key and body through the load balancer, so it lands on
//! another node: the shared idempotency table and the deterministic ids must recognise
//! it. Then:
//! - 0 oversold: the audit of the log finds no oversell and no breach, and the units sold
//!   and held never exceed the stock;
//! - 0 acknowledged reservations lost: every acknowledged hold is in the log, every
//!   acknowledged commit is committed there, and every node answers for each alike;
//! - every node's read models equal a rebuild from the log;
//! - notices exactly once per node: each node's live stream (resumed with `Last-Event-ID`
//!   across its restart) carries every `seq` once with no gap and every version of the
//!   SKU once, and each node's notice table holds one notice per event.
//!
//! Needs `STOCKADE_PG_URL` and `haproxy` (`.ci/run` provides both); without them it says
//! it was skipped, and under CI it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockade_projections::{NoticeHub, Projector, ReadModels};
use stockade_tests::projection::dump;

const ADMIN: &str = "nodes-admin-token-000001";
const WEB: &str = "nodes-web-token-00000001";
const SECRET: &str = "three-nodes-share-this-id-secret-0001";
const SKU: &str = "DROP-SCARCE";
const STOCK: u64 = 300;
const BUYERS: usize = 1000;
const AT_ONCE: usize = 48;

struct Node {
    child: Option<Child>,
    listen: String,
    dir: PathBuf,
}

impl Node {
    fn base(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// A failed test leaves no process behind.
impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Balancer(Child);

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the processes' own output goes: the terminal with `NODES_DEBUG` set.
fn debug() -> Stdio {
    if std::env::var_os("NODES_DEBUG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

fn start(node: &mut Node, url: &str, schema: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args([
            "serve",
            "--store",
            "postgres",
            "--listen",
            &node.listen,
            "--data-dir",
        ])
        .arg(&node.dir)
        .env_remove("STOCKADE_ESDB_URL")
        .env_remove("STOCKADE_CONFIG")
        .env_remove("STOCKADE_READ_TOKENS")
        .env_remove("STOCKADE_STORE")
        .env("STOCKADE_PG_URL", url)
        .env("STOCKADE_PG_SCHEMA", schema)
        .env("STOCKADE_ID_SECRET", SECRET)
        .env("STOCKADE_ADMIN_TOKEN", ADMIN)
        .env("STOCKADE_CHANNEL_TOKENS", format!("web:{WEB}"))
        .env("STOCKADE_WORKERS", "1")
        .stdout(Stdio::piped())
        .stderr(debug())
        .spawn()
        .expect("start stockade serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("listening on http://"));
    assert!(listening, "node {} did not start", node.listen);
    std::thread::spawn(move || lines.for_each(drop));
    node.child = Some(child);
}

/// An answer, or `None` when none came whole (a node died, or was not there).
async fn send(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Option<(u16, Value)> {
    let response = http
        .post(url)
        .bearer_auth(WEB)
        .header("idempotency-key", key)
        .header("x-stockade-sku", SKU)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(Value::Null);
    Some((status, json))
}

/// A read as the admin, which must answer with JSON.
async fn read(http: &reqwest::Client, url: String) -> Value {
    let response = http.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Sends to `first`, then, while no definite answer comes (no answer, or 502/503 from
/// the balancer while a node is down), the same key and body through the balancer.
async fn until_answered(
    http: &reqwest::Client,
    first: &str,
    lb: &str,
    path: &str,
    key: &str,
    body: &Value,
    retried: &AtomicU64,
) -> (u16, Value) {
    let mut base = first.to_owned();
    let mut last = None;
    let since = Instant::now();
    for attempt in 0.. {
        if since.elapsed() > Duration::from_secs(60) {
            break;
        }
        match send(http, &format!("{base}{path}"), key, body).await {
            Some((status, json)) if !matches!(status, 502..=504) => return (status, json),
            other => {
                last = other;
                if attempt == 0 {
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                base = lb.to_owned();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("{path} under key {key}: no answer in 60 s; the last was {last:?}");
}

#[derive(Debug, Default)]
struct Outcomes {
    held: BTreeMap<String, usize>,
    committed: HashSet<String>,
    released: HashSet<String>,
    refused: u64,
}

/// One node's live notices, read from its SSE stream and resumed with `Last-Event-ID`
/// whenever the stream breaks (the node was killed), until `stop`.
#[derive(Debug, Default)]
struct Heard {
    /// (seq, sku, version) in arrival order.
    notices: Vec<(u64, String, u64)>,
    connected: bool,
    reconnects: u64,
}

async fn follow(base: String, heard: Arc<Mutex<Heard>>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut pending = String::new();
    while !stop.load(Ordering::Acquire) {
        let last = heard.lock().unwrap().notices.last().map(|n| n.0);
        let mut request = http.get(format!("{base}/api/events")).bearer_auth(ADMIN);
        if let Some(seq) = last {
            request = request.header("last-event-id", seq.to_string());
        }
        let Ok(mut response) = request.send().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        pending.clear();
        loop {
            let chunk = tokio::select! {
                chunk = response.chunk() => chunk,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Acquire) { return; }
                    continue;
                }
            };
            let Ok(Some(chunk)) = chunk else { break };
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let Some(data) = line.trim_end().strip_prefix("data:") else {
                    continue;
                };
                let Ok(message) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                let mut heard = heard.lock().unwrap();
                match message["type"].as_str() {
                    Some("hello") => heard.connected = true,
                    Some("notice") => heard.notices.push((
                        message["seq"].as_u64().unwrap(),
                        message["sku"].as_str().unwrap().to_owned(),
                        message["version"].as_u64().unwrap(),
                    )),
                    _ => {}
                }
            }
        }
        heard.lock().unwrap().reconnects += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn haproxy() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("haproxy"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the three-node test, but haproxy is not installed (`.ci/run` installs it)"
        );
        eprintln!("note: SKIPPED the three-node test: haproxy is not installed");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behind_haproxy_lose_nothing_when_one_is_killed_mid_sale() {
    let Some(url) = stockade_postgres::testkit::live_url("three-node test") else {
        return;
    };
    let Some(haproxy) = haproxy() else {
        return;
    };
    let schema = stockade_postgres::testkit::fresh_schema();
    let root = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node {
            child: None,
            listen: format!("127.0.0.1:{}", crate::unused_port()),
            dir: root.path().join(format!("node{}", i + 1)),
        })
        .collect();
    for node in &mut nodes {
        start(node, &url, &schema);
    }
    let lb_listen = format!("127.0.0.1:{}", crate::unused_port());
    let lb = format!("http://{lb_listen}");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/haproxy/stockade.cfg");
    let _balancer = Balancer(
        Command::new(&haproxy)
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .env("STOCKADE_LB_BIND", &lb_listen)
            .env("STOCKADE_NODE1", &nodes[0].listen)
            .env("STOCKADE_NODE2", &nodes[1].listen)
            .env("STOCKADE_NODE3", &nodes[2].listen)
            .stdout(debug())
            .stderr(debug())
            .spawn()
            .expect("start haproxy"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // The balancer answers once its health checks have seen a node ready.
    let since = Instant::now();
    loop {
        let ready = http.get(format!("{lb}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "haproxy never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every node's live notices, from before the SKU exists.
    let stop = Arc::new(AtomicBool::new(false));
    let heard: Vec<Arc<Mutex<Heard>>> = (0..3).map(|_| Arc::default()).collect();
    let followers: Vec<_> = nodes
        .iter()
        .zip(&heard)
        .map(|(n, h)| tokio::spawn(follow(n.base(), h.clone(), stop.clone())))
        .collect();
    let since = Instant::now();
    while !heard.iter().all(|h| h.lock().unwrap().connected) {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "a node's stream never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let registered = http
        .post(format!("{lb}/api/skus"))
        .bearer_auth(ADMIN)
        .header("x-stockade-sku", SKU)
        .json(&json!({"sku": SKU, "pool": "physical", "on_hand": STOCK}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);

    // The sale: a thousand buyers, a few dozen at a time.
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let retried = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let bases: Vec<String> = nodes.iter().map(Node::base).collect();
    let buyers: Vec<_> = (0..BUYERS)
        .map(|i| {
            let (http, lb, gate) = (http.clone(), lb.clone(), gate.clone());
            let (outcomes, retried, done) = (outcomes.clone(), retried.clone(), done.clone());
            let first = if i % 2 == 0 {
                lb.clone()
            } else {
                bases[i % 3].clone()
            };
            tokio::spawn(async move {
                let _turn = gate.acquire_owned().await.unwrap();
                let body = json!({"items": [{"sku": SKU, "qty": 1}], "ttl_seconds": 3600});
                let (status, answer) = until_answered(
                    &http,
                    &first,
                    &lb,
                    "/api/reservations",
                    &format!("buy-{i}"),
                    &body,
                    &retried,
                )
                .await;
                let id = match status {
                    201 => answer["reservation_id"].as_str().unwrap().to_owned(),
                    409 if answer["error"] == "insufficient_stock" => {
                        outcomes.lock().unwrap().refused += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    other => panic!("buyer {i}: reserve answered {other} {answer}"),
                };
                outcomes.lock().unwrap().held.insert(id.clone(), i);
                // Most buy; some walk away; the rest keep their hold.
                let step = match i % 5 {
                    0..=2 => Some("commit"),
                    3 => Some("release"),
                    _ => None,
                };
                if let Some(step) = step {
                    let (status, answer) = until_answered(
                        &http,
                        &first,
                        &lb,
                        &format!("/api/reservations/{id}/{step}"),
                        &format!("{step}-{i}"),
                        &json!({}),
                        &retried,
                    )
                    .await;
                    assert_eq!(status, 200, "buyer {i}: {step} answered {answer}");
                    let mut outcomes = outcomes.lock().unwrap();
                    if step == "commit" {
                        outcomes.committed.insert(id);
                    } else {
                        outcomes.released.insert(id);
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();

    // Mid-sale, SIGKILL the first node, and restart it on its port a moment later.
    while done.load(Ordering::Relaxed) < (BUYERS / 8) as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut killed = nodes[0].child.take().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let killed_at = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(700)).await;
    start(&mut nodes[0], &url, &schema);
    for buyer in buyers {
        buyer.await.unwrap();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let retried = retried.load(Ordering::Relaxed);

    // The log, read by the audit with its own arithmetic.
    let store: Arc<dyn stockade_store::EventStore> = Arc::new(
        stockade_postgres::PostgresStore::connect(
            stockade_postgres::PgConfig::new(url.clone()).schema(schema.clone()),
        )
        .await
        .unwrap(),
    );
    let report = stockade_engine::audit::check_log(&store).await.unwrap();
    assert_eq!(report.violations, Vec::<String>::new());
    assert_eq!(report.oversold_units, 0);
    let sku = stockade_domain::Sku::new(SKU).unwrap();
    let in_log = report.reservations.get(&sku).cloned().unwrap_or_default();
    let committed_in_log = report.commits.get(&sku).cloned().unwrap_or_default();
    for (id, buyer) in &outcomes.held {
        let parsed: stockade_domain::ReservationId = id.parse().unwrap();
        assert!(
            in_log.contains(&parsed),
            "buyer {buyer}'s hold {id} is not in the log"
        );
    }
    for id in &outcomes.committed {
        let parsed: stockade_domain::ReservationId = id.parse().unwrap();
        assert!(
            committed_in_log.contains(&parsed),
            "acknowledged commit {id} not in the log"
        );
    }
    assert_eq!(
        in_log.len(),
        outcomes.held.len(),
        "the log holds reservations nobody was told of"
    );
    let sold = outcomes.committed.len() as u64;
    let holding = (outcomes.held.len() - outcomes.committed.len() - outcomes.released.len()) as u64;
    assert!(
        sold + holding <= STOCK,
        "oversold: {sold} sold and {holding} held of {STOCK}"
    );
    assert_eq!(outcomes.held.len() as u64 + outcomes.refused, BUYERS as u64);
    // Scarce: the stock ran out, so buyers were refused (units released went again).
    assert!(outcomes.refused > 0 && outcomes.held.len() as u64 >= STOCK);

    // A key is bound to its first body on every node: the shared table refuses a changed
    // body under a buyer's key wherever it lands, before anything runs.
    for node in &nodes {
        let changed = json!({"items": [{"sku": SKU, "qty": 2}], "ttl_seconds": 3600});
        let (status, answer) = send(
            &http,
            &format!("{}/api/reservations", node.base()),
            "buy-1",
            &changed,
        )
        .await
        .expect("a node answers");
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("idempotency_key_reused")),
            "{}: {answer}",
            node.listen
        );
    }

    // Every node answers alike, once it has read the whole log.
    let version = store
        .read_stream(&stockade_store::StreamName::for_sku(&sku), 0, usize::MAX)
        .await
        .unwrap()
        .len() as u64;
    for node in &nodes {
        let since = Instant::now();
        loop {
            let level = read(
                &http,
                format!("{}/api/inventory/products/{SKU}", node.base()),
            )
            .await;
            if level["version"] == version {
                assert_eq!(level["on_hand"], STOCK - sold, "{}: {level}", node.listen);
                assert_eq!(level["reserved"], holding, "{}: {level}", node.listen);
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "{} stuck at {level}, the log is at version {version}",
                node.listen
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for id in outcomes.committed.iter().take(25) {
            let status = read(&http, format!("{}/api/reservations/{id}", node.base())).await;
            assert_eq!(status["status"], "committed", "{}: {status}", node.listen);
        }
    }

    // Notices: every node's live stream carried each SKU version once, and each seq once
    // with no gap, across the killed node's restart.
    let since = Instant::now();
    while heard.iter().any(|h| {
        h.lock()
            .unwrap()
            .notices
            .iter()
            .filter(|n| n.1 == SKU)
            .count() as u64
            != version
    }) {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "a node's stream never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Release);
    for follower in followers {
        follower.await.unwrap();
    }
    for (node, heard) in nodes.iter().zip(&heard) {
        let heard = heard.lock().unwrap();
        let seqs: Vec<u64> = heard.notices.iter().map(|n| n.0).collect();
        let first = seqs[0];
        assert_eq!(
            seqs,
            (first..first + seqs.len() as u64).collect::<Vec<_>>(),
            "{}: a notice twice or a gap",
            node.listen
        );
        let versions: Vec<u64> = heard
            .notices
            .iter()
            .filter(|n| n.1 == SKU)
            .map(|n| n.2)
            .collect();
        assert_eq!(
            versions,
            (1..=version).collect::<Vec<_>>(),
            "{}",
            node.listen
        );
    }
    let reconnects = heard[0].lock().unwrap().reconnects;
    assert!(reconnects >= 1, "the killed node's stream never broke");

    // Stop the nodes; each one's read models equal a rebuild from the log, and hold one
    // notice per event.
    for node in &mut nodes {
        let mut child = node.child.take().unwrap();
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        assert!(
            child.wait().unwrap().success(),
            "{} did not stop cleanly",
            node.listen
        );
    }
    let fresh = ReadModels::open(&root.path().join("rebuilt.db")).unwrap();
    let mut rebuilder = Projector::new(store.clone(), fresh.clone(), NoticeHub::new());
    let rebuilt_at = rebuilder.rebuild().await.unwrap();
    let rebuilt = dump(&fresh).await;
    for node in &nodes {
        let models = ReadModels::open(&node.dir.join("projections.db")).unwrap();
        let live = dump(&models).await;
        assert_eq!(live.len(), rebuilt.len(), "{}", node.listen);
        for (a, b) in live.iter().zip(&rebuilt) {
            assert_eq!(a, b, "{}: read models differ from the rebuild", node.listen);
        }
        let notices = models.notices(0, usize::MAX).await.unwrap();
        assert_eq!(notices.len() as u64, rebuilt_at.events, "{}", node.listen);
        let ids: HashSet<_> = notices.iter().map(|n| n.event_id).collect();
        assert_eq!(ids.len(), notices.len(), "{}: a notice twice", node.listen);
    }
    eprintln!(
        "three nodes: {} held ({} bought, {} released, {holding} still held), {} refused, \
         node 1 killed after {killed_at} buyers, {retried} requests retried through the \
         balancer, {} events, its stream resumed {reconnects} time(s)",
        outcomes.held.len(),
        sold,
        outcomes.released.len(),
        outcomes.refused,
        report.events
    );
    assert!(retried > 0, "the kill interrupted no request");
}

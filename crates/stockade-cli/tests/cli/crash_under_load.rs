//! `stockade serve` killed with SIGKILL under load, again and again, loses nothing.
//!
//! Eight buyers reserve (one or two lines, under idempotency keys), commit and release,
//! and change live holds (extend them, commit or release one unit of a line, amend a
//! line's quantity or add a line) over HTTP while the server is killed at random moments,
//! at least twenty times. A
//! request whose answer was lost is remembered, and retried with its key and body after
//! the restart. Then, with the buyers paused:
//! - before any retry, once the restarted server has done its start-up pass (a keyed
//!   request waits for it): every order cut short between its lines' appends is released,
//!   exactly those lines (compared with the log as the kill left it, read while no server
//!   runs), so every order is all or nothing without a client retry;
//! - every retry has a definite outcome, and an acknowledged request retried gets its
//!   original answer (`Idempotent-Replayed: true`, the same reservation);
//! - every acknowledged reservation is in the state its last acknowledged step left it
//!   (a sample each round, all of them at the end);
//! - per SKU: reserved = the units of the live holds, on hand = stock − the units sold,
//!   available = on hand − reserved. An order is whole or absent: a line of an
//!   unacknowledged order cannot be held alone without showing up in these sums;
//! - at the end the log, reopened, passes the audit: no oversell, no breach. The scarce
//!   SKU has a purchase limit and every order names one of a dozen customers, so the
//!   audit's own count also holds every customer to the limit across the kills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use stockade_tests::projection::Lcg;
use tokio::sync::watch;

const ADMIN: &str = "crash-admin-token-000001";
const WEB: &str = "crash-web-token-00000001";
const KILLS: usize = 22;
const BUYERS: usize = 8;
/// Customers the orders are for, and what each may hold and buy of the scarce SKU: 12 × 6
/// is more than its stock, so both the limit and the stock refuse orders.
const CUSTOMERS: u64 = 12;
const PER_CUSTOMER: u64 = 6;
/// Ample stock on three SKUs, and a scarce one so refusals happen too.
const SKUS: [(&str, u64); 4] = [
    ("CRASH-A", 100_000),
    ("CRASH-B", 100_000),
    ("CRASH-C", 100_000),
    ("CRASH-SCARCE", 40),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Held,
    Committed,
    Released,
}

#[derive(Debug, Clone)]
struct Reservation {
    lines: Vec<(String, u64)>,
    state: State,
    /// Units sold by partial commits while it was held.
    sold: Vec<(String, u64)>,
}

/// A change to a live hold, and what it does to the model once acknowledged.
#[derive(Debug, Clone)]
enum Change {
    Extend,
    /// One unit of a line sold (`true`) or given back.
    Part {
        sku: String,
        sell: bool,
    },
    /// The lines as the amendment leaves them.
    Amend {
        lines: Vec<(String, u64)>,
    },
}

/// A request whose answer was lost.
#[derive(Debug, Clone)]
enum Pending {
    Reserve {
        key: String,
        body: Value,
    },
    Resolve {
        key: String,
        id: String,
        commit: bool,
    },
    Change {
        key: String,
        id: String,
        path: String,
        body: Value,
        change: Change,
    },
}

#[derive(Debug, Default)]
struct Model {
    reservations: BTreeMap<String, Reservation>,
    /// Retried orders the restart had released because it found them cut short.
    cut_short: usize,
    pending: Vec<Pending>,
    /// Acknowledged reservations by key and body, to retry after a restart.
    acknowledged: Vec<(String, Value, String)>,
    refused: u64,
    /// Of `refused`, by the scarce SKU's purchase limit.
    limited: u64,
    /// Changes of live holds acknowledged (extensions, partial commits and releases,
    /// amendments).
    changes: u64,
    /// What happened to each reservation, for a failure's message.
    history: HashMap<String, Vec<String>>,
}

struct Server {
    child: Child,
    base: String,
}

/// A failed test leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start(data_dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("STOCKADE_ESDB_URL")
        .env_remove("STOCKADE_CONFIG")
        .env_remove("STOCKADE_READ_TOKENS")
        .env("STOCKADE_ADMIN_TOKEN", ADMIN)
        .env("STOCKADE_CHANNEL_TOKENS", format!("web:{WEB}"))
        .env("STOCKADE_WORKERS", "2")
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("CRASH_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start stockade serve");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.split("listening on http://").nth(1) {
            addr = Some(a.trim().to_owned());
            break;
        }
    }
    // Keep reading: the rest of the banner must find a reader.
    std::thread::spawn(move || lines.for_each(drop));
    Server {
        child,
        base: format!("http://{}", addr.expect("no listening line")),
    }
}

/// An answer, or `None` when none came whole (the server died).
async fn send(
    http: &reqwest::Client,
    url: String,
    key: &str,
    body: &Value,
) -> Option<(u16, bool, Value)> {
    let response = http
        .post(url)
        .bearer_auth(WEB)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            if std::env::var_os("CRASH_DEBUG").is_some() {
                eprintln!("send: {e:?}");
            }
        })
        .ok()?;
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let bytes = response.bytes().await.ok()?;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Some((status, replayed, json))
}

fn reservation_of(answer: &Value) -> (String, Vec<(String, u64)>) {
    let id = answer["reservation_id"].as_str().unwrap().to_owned();
    let lines = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap().to_owned(),
                l["qty"].as_u64().unwrap(),
            )
        })
        .collect();
    (id, lines)
}

/// Applies one definite answer to a reservation request to the model.
fn reserved(model: &mut Model, key: &str, body: &Value, answer: (u16, bool, Value)) {
    match answer.0 {
        201 => {
            let (id, lines) = reservation_of(&answer.2);
            model.reservations.entry(id.clone()).or_insert(Reservation {
                lines,
                state: State::Held,
                sold: Vec::new(),
            });
            model
                .history
                .entry(id.clone())
                .or_default()
                .push(format!("reserve {key} replayed={}", answer.1));
            model.acknowledged.push((key.to_owned(), body.clone(), id));
        }
        409 if answer.2["error"] == "insufficient_stock" => model.refused += 1,
        409 if answer.2["error"] == "purchase_limit" => {
            model.refused += 1;
            model.limited += 1;
        }
        // A retry of an order cut short by the kill: the restart released the lines that
        // had landed before it took the key again. Never an order acknowledged before.
        409 if answer.2["error"] == "already_resolved"
            && answer.2["resolution"] == "released"
            && answer.2["reservation_id"]
                .as_str()
                .is_some_and(|id| !model.reservations.contains_key(id)) =>
        {
            model.cut_short += 1
        }
        other => panic!("reserve {body}: unexpected {other} {}", answer.2),
    }
}

fn resolved(model: &mut Model, id: &str, commit: bool, answer: (u16, bool, Value)) {
    assert_eq!(
        answer.0,
        200,
        "resolve {id}: {}; history {:?}",
        answer.2,
        model.history.get(id)
    );
    let expected = if commit { "committed" } else { "released" };
    assert_eq!(answer.2["status"], expected, "{}", answer.2);
    model
        .history
        .entry(id.to_owned())
        .or_default()
        .push(format!("{expected} replayed={} {}", answer.1, answer.2));
    let reservation = model.reservations.get_mut(id).unwrap();
    reservation.state = if commit {
        State::Committed
    } else {
        State::Released
    };
}

/// Applies one definite answer to a change of a live hold to the model.
fn changed(model: &mut Model, id: &str, change: &Change, answer: (u16, bool, Value)) {
    assert_eq!(
        answer.0,
        200,
        "change {change:?} of {id}: {}; model {:?}; history {:?}",
        answer.2,
        model.reservations.get(id),
        model.history.get(id)
    );
    model
        .history
        .entry(id.to_owned())
        .or_default()
        .push(format!("{change:?} replayed={} {}", answer.1, answer.2));
    model.changes += 1;
    let reservation = model.reservations.get_mut(id).unwrap();
    match change {
        Change::Extend => {}
        Change::Part { sku, sell } => {
            let line = reservation
                .lines
                .iter_mut()
                .find(|(s, _)| s == sku)
                .unwrap();
            line.1 -= 1;
            if *sell {
                reservation.sold.push((sku.clone(), 1));
            }
        }
        Change::Amend { lines } => reservation.lines = lines.clone(),
    }
}

/// A change to one of a buyer's live holds: `(path, body, change)`. Amendments touch the
/// ample SKUs only, so they are never refused and always apply once acknowledged.
fn pick_change(rng: &mut Lcg, r: &Reservation) -> (&'static str, Value, Change) {
    let big: Vec<&(String, u64)> = r.lines.iter().filter(|(_, q)| *q >= 2).collect();
    match rng.below(4) {
        1 | 2 if !big.is_empty() => {
            let sku = big[rng.below(big.len() as u64) as usize].0.clone();
            let sell = rng.below(2) == 1;
            let body = json!({"items": [{"sku": sku, "qty": 1}]});
            let path = if sell { "commit" } else { "release" };
            (path, body, Change::Part { sku, sell })
        }
        3 if r.lines.iter().all(|(s, _)| s != "CRASH-SCARCE") => {
            let mut lines = r.lines.clone();
            let ample: Vec<&str> = SKUS[..3].iter().map(|(s, _)| *s).collect();
            let sku = ample[rng.below(3) as usize];
            let qty = 1 + rng.below(3);
            match lines.iter_mut().find(|(s, _)| s == sku) {
                Some(line) => line.1 = qty,
                None => lines.push((sku.to_owned(), qty)),
            }
            if lines == r.lines {
                return ("extend", json!({"ttl_seconds": 7200}), Change::Extend);
            }
            let body = json!({"items": [{"sku": sku, "qty": qty}]});
            ("amend", body, Change::Amend { lines })
        }
        _ => ("extend", json!({"ttl_seconds": 7200}), Change::Extend),
    }
}

async fn buyer(
    n: usize,
    http: reqwest::Client,
    model: Arc<Mutex<Model>>,
    mut base: watch::Receiver<Option<String>>,
    busy: Arc<AtomicUsize>,
    sequence: Arc<AtomicU64>,
) {
    let mut rng = Lcg(n as u64 * 7919 + 1);
    let mut mine: Vec<String> = Vec::new();
    loop {
        let Ok(url) = base
            .wait_for(Option::is_some)
            .await
            .map(|b| b.clone().unwrap())
        else {
            return;
        };
        busy.fetch_add(1, Ordering::AcqRel);
        let mut lost = false;
        // Change or resolve one of this buyer's holds now and then; otherwise reserve.
        let roll = rng.below(6);
        if !mine.is_empty() && roll == 1 {
            let id = mine[rng.below(mine.len() as u64) as usize].clone();
            let held = model.lock().unwrap().reservations[&id].clone();
            let (path, body, change) = pick_change(&mut rng, &held);
            let key = format!("change-{}", sequence.fetch_add(1, Ordering::AcqRel));
            let answer = send(
                &http,
                format!("{url}/api/reservations/{id}/{path}"),
                &key,
                &body,
            )
            .await;
            let mut model = model.lock().unwrap();
            match answer {
                Some(answer) => changed(&mut model, &id, &change, answer),
                None => {
                    lost = true;
                    model.pending.push(Pending::Change {
                        key,
                        id,
                        path: path.to_owned(),
                        body,
                        change,
                    })
                }
            }
        } else if !mine.is_empty() && roll <= 2 {
            let id = mine.swap_remove(rng.below(mine.len() as u64) as usize);
            let commit = rng.below(2) == 0;
            let key = format!("resolve-{id}");
            let path = if commit { "commit" } else { "release" };
            let answer = send(
                &http,
                format!("{url}/api/reservations/{id}/{path}"),
                &key,
                &json!({}),
            )
            .await;
            let mut model = model.lock().unwrap();
            match answer {
                Some(answer) => resolved(&mut model, &id, commit, answer),
                None => {
                    lost = true;
                    model.pending.push(Pending::Resolve { key, id, commit })
                }
            }
        } else {
            let mut lines = vec![SKUS[rng.below(4) as usize].0];
            // Half the orders have two lines, so that kills land between lines often
            // enough for every run to see orders cut short.
            if rng.below(2) == 0 {
                let other = SKUS[rng.below(3) as usize].0;
                if other != lines[0] {
                    lines.push(other);
                }
            }
            let items: Vec<Value> = lines
                .iter()
                .map(|sku| json!({"sku": sku, "qty": 1 + rng.below(3)}))
                .collect();
            // A dozen customers shared by the buyers: one customer's orders race each other
            // from several tasks, against the scarce SKU's limit.
            let customer = format!("crash-{}", rng.below(CUSTOMERS));
            let body = json!({"items": items, "ttl_seconds": 3600, "customer": customer});
            let key = format!("buy-{}", sequence.fetch_add(1, Ordering::AcqRel));
            let answer = send(&http, format!("{url}/api/reservations"), &key, &body).await;
            let mut model = model.lock().unwrap();
            match answer {
                Some(answer) => {
                    if answer.0 == 201 {
                        mine.push(answer.2["reservation_id"].as_str().unwrap().to_owned());
                    }
                    reserved(&mut model, &key, &body, answer);
                }
                None => {
                    lost = true;
                    model.pending.push(Pending::Reserve { key, body })
                }
            }
        }
        busy.fetch_sub(1, Ordering::AcqRel);
        if lost {
            // The answer was lost (the kill, or a timeout): what this buyer holds is in
            // doubt until the retry after the next restart, so it waits for that rather
            // than pick its next change from a stale view.
            if base.wait_for(Option::is_none).await.is_err() {
                return;
            }
        }
    }
}

/// Units of `sku` in holds the model knows to be live.
fn held_units(model: &Model, sku: &str) -> u64 {
    model
        .reservations
        .values()
        .filter(|r| r.state == State::Held)
        .flat_map(|r| &r.lines)
        .filter(|(s, _)| s == sku)
        .map(|(_, q)| q)
        .sum()
}

/// Per SKU, the range `reserved` may be in while `pending` requests are undecided: a lost
/// reservation may have landed (more), a lost commit or release may have too (less).
fn in_doubt(model: &Model, pending: &[Pending]) -> BTreeMap<String, (u64, u64)> {
    let mut bounds: BTreeMap<String, (u64, u64)> = SKUS
        .iter()
        .map(|(sku, _)| {
            let held = held_units(model, sku);
            ((*sku).to_owned(), (held, held))
        })
        .collect();
    for p in pending {
        match p {
            Pending::Reserve { body, .. } => {
                for item in body["items"].as_array().unwrap() {
                    let sku = item["sku"].as_str().unwrap();
                    bounds.get_mut(sku).unwrap().1 += item["qty"].as_u64().unwrap();
                }
            }
            Pending::Resolve { id, .. } => {
                for (sku, qty) in &model.reservations[id].lines {
                    let b = bounds.get_mut(sku).unwrap();
                    b.0 = b.0.saturating_sub(*qty);
                }
            }
            Pending::Change { id, change, .. } => match change {
                Change::Extend => {}
                Change::Part { sku, .. } => {
                    let b = bounds.get_mut(sku).unwrap();
                    b.0 = b.0.saturating_sub(1);
                }
                Change::Amend { lines } => {
                    let before = &model.reservations[id].lines;
                    for (sku, qty) in lines {
                        let was = before.iter().find(|(s, _)| s == sku).map_or(0, |l| l.1);
                        let b = bounds.get_mut(sku).unwrap();
                        if *qty > was {
                            b.1 += qty - was;
                        } else {
                            b.0 = b.0.saturating_sub(was - qty);
                        }
                    }
                }
            },
        }
    }
    bounds
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    let response = http.get(url).send().await.expect("server up");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// Checks the server against the model: SKU sums always, reservations (a sample, or all).
async fn verify(
    http: &reqwest::Client,
    base: &str,
    reservations: &BTreeMap<String, Reservation>,
    history: &HashMap<String, Vec<String>>,
    all: bool,
    rng: &mut Lcg,
) {
    let mut held: HashMap<&str, u64> = HashMap::new();
    let mut sold: HashMap<&str, u64> = HashMap::new();
    for r in reservations.values() {
        for (sku, qty) in &r.lines {
            match r.state {
                State::Held => *held.entry(sku).or_default() += qty,
                State::Committed => *sold.entry(sku).or_default() += qty,
                State::Released => {}
            }
        }
        for (sku, qty) in &r.sold {
            *sold.entry(sku).or_default() += qty;
        }
    }
    for (sku, stock) in SKUS {
        let level = get(http, format!("{base}/api/inventory/products/{sku}")).await;
        let reserved = held.get(sku).copied().unwrap_or(0);
        if level["reserved"] != reserved && std::env::var_os("CRASH_DEBUG").is_some() {
            for (id, r) in reservations {
                let status = get(http, format!("{base}/api/reservations/{id}")).await;
                let server: Vec<(String, u64)> = status["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|i| i["state"] == "held")
                    .map(|i| {
                        (
                            i["sku"].as_str().unwrap().to_owned(),
                            i["qty"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                let mut model: Vec<(String, u64)> = if r.state == State::Held {
                    r.lines.clone()
                } else {
                    Vec::new()
                };
                let mut server = server;
                server.sort();
                model.sort();
                if server != model {
                    eprintln!(
                        "DIFF {id}: server {server:?} model {model:?} {status}; history {:?}",
                        history.get(id)
                    );
                }
            }
        }
        let on_hand = stock - sold.get(sku).copied().unwrap_or(0);
        assert_eq!(level["reserved"], reserved, "{sku}: {level}");
        assert_eq!(level["on_hand"], on_hand, "{sku}: {level}");
        assert_eq!(level["available"], on_hand - reserved, "{sku}: {level}");
    }
    let ids: Vec<&String> = reservations.keys().collect();
    let sample: Vec<&String> = if all {
        ids
    } else {
        (0..50.min(ids.len()))
            .map(|_| ids[rng.below(ids.len() as u64) as usize])
            .collect()
    };
    for id in sample {
        let status = get(http, format!("{base}/api/reservations/{id}")).await;
        let expected = match reservations[id].state {
            State::Held => "held",
            State::Committed => "committed",
            State::Released => "released",
        };
        assert_eq!(
            status["status"],
            expected,
            "{id}: {status}; history {:?}",
            history.get(id)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_acknowledged() {
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("CRASH_DEBUG").is_some() {
        // Kept for a post-mortem.
        dir.disable_cleanup(true);
        eprintln!("data directory {}", dir.path().display());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let first = start(dir.path());
    for (sku, stock) in SKUS {
        let answer = http
            .post(format!("{}/api/skus", first.base))
            .bearer_auth(ADMIN)
            .json(&json!({"sku": sku, "pool": "physical", "on_hand": stock}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
    }
    let limited = http
        .put(format!(
            "{}/api/inventory/products/CRASH-SCARCE/fair-selling",
            first.base
        ))
        .bearer_auth(ADMIN)
        .json(&json!({"per_customer": PER_CUSTOMER, "window_seconds": 86_400}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status().as_u16(), 200);

    let model = Arc::new(Mutex::new(Model::default()));
    let (publish, base) = watch::channel(Some(first.base.clone()));
    let busy = Arc::new(AtomicUsize::new(0));
    let sequence = Arc::new(AtomicU64::new(0));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|n| {
            tokio::spawn(buyer(
                n,
                http.clone(),
                model.clone(),
                base.clone(),
                busy.clone(),
                sequence.clone(),
            ))
        })
        .collect();

    let mut rng = Lcg(20261201);
    let mut server = first;
    let (mut retried, mut replays_checked, mut orphaned) = (0, 0, 0u64);
    let mut cut_short = 0;
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(350))).await;
        // SIGKILL: no signal handler, no flush, whatever was in flight.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        publish.send_replace(None);
        while busy.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The log as the kill left it: holds of orders cut short between their lines.
        let before = log_holds(dir.path()).await;
        server = start(dir.path());
        let base = server.base.clone();
        // A keyed request waits for the start-up pass that releases those orders (this
        // one is refused for want of stock, so it changes nothing).
        let probe = json!({"items": [{"sku": "CRASH-A", "qty": 1_000_000}]});
        let (status, _, answer) = send(
            &http,
            format!("{base}/api/reservations"),
            &format!("probe-{kill}"),
            &probe,
        )
        .await
        .expect("the restarted server answers");
        assert_eq!(
            (status, answer["error"].as_str()),
            (409, Some("insufficient_stock"))
        );
        // With no client retry yet, exactly the lines of orders cut short were released.
        for (sku, _) in SKUS {
            let level = get(&http, format!("{base}/api/inventory/products/{sku}")).await;
            let live = before.live.get(sku).copied().unwrap_or(0);
            let cut = before.cut.get(sku).copied().unwrap_or(0);
            assert_eq!(
                level["reserved"].as_u64(),
                Some(live - cut),
                "{sku}: the log held {live} units, {cut} of them in orders cut short: {level}"
            );
        }
        cut_short += before.cut_short;

        // Before any retry: what the log holds differs from what was acknowledged only by
        // requests whose answers were lost (a line of an interrupted order may be held
        // until its retry or its TTL); nothing acknowledged is missing.
        let (bounds, pending) = {
            let mut model = model.lock().unwrap();
            let pending = std::mem::take(&mut model.pending);
            (in_doubt(&model, &pending), pending)
        };
        for (sku, (low, high)) in &bounds {
            let level = get(&http, format!("{base}/api/inventory/products/{sku}")).await;
            let reserved = level["reserved"].as_u64().unwrap();
            assert!(
                (*low..=*high).contains(&reserved),
                "{sku}: reserved {reserved} outside [{low}, {high}] before retries"
            );
            let acknowledged = held_units(&model.lock().unwrap(), sku);
            orphaned += reserved.saturating_sub(acknowledged);
        }
        // Every request whose answer was lost gets one now, under its key.
        for request in pending {
            retried += 1;
            match request {
                Pending::Reserve { key, body } => {
                    let answer = send(&http, format!("{base}/api/reservations"), &key, &body)
                        .await
                        .expect("the restarted server answers");
                    reserved(&mut model.lock().unwrap(), &key, &body, answer);
                }
                Pending::Resolve { key, id, commit } => {
                    let path = if commit { "commit" } else { "release" };
                    let answer = send(
                        &http,
                        format!("{base}/api/reservations/{id}/{path}"),
                        &key,
                        &json!({}),
                    )
                    .await
                    .expect("the restarted server answers");
                    resolved(&mut model.lock().unwrap(), &id, commit, answer);
                }
                Pending::Change {
                    key,
                    id,
                    path,
                    body,
                    change,
                } => {
                    let answer = send(
                        &http,
                        format!("{base}/api/reservations/{id}/{path}"),
                        &key,
                        &body,
                    )
                    .await
                    .expect("the restarted server answers");
                    changed(&mut model.lock().unwrap(), &id, &change, answer);
                }
            }
        }
        // An acknowledged request sent again gets its original answer: the same hold,
        // replayed. (One released since answers `already_resolved` for it: the engine
        // cannot tell that release from the rollback of a refused first attempt.)
        let again: Vec<(String, Value, String, State)> = {
            let model = model.lock().unwrap();
            (0..4.min(model.acknowledged.len()))
                .map(|_| {
                    let at = rng.below(model.acknowledged.len() as u64) as usize;
                    let (key, body, id) = model.acknowledged[at].clone();
                    let state = model.reservations[&id].state;
                    (key, body, id, state)
                })
                .collect()
        };
        for (key, body, id, state) in again {
            let (status, replayed, answer) =
                send(&http, format!("{base}/api/reservations"), &key, &body)
                    .await
                    .unwrap();
            assert_eq!(answer["reservation_id"], id.as_str(), "{key}: {answer}");
            if state == State::Released {
                assert_eq!(
                    (status, answer["error"].as_str()),
                    (409, Some("already_resolved")),
                    "{key}: {answer}"
                );
            } else {
                let now = get(&http, format!("{base}/api/reservations/{id}")).await;
                let model = model.lock().unwrap();
                assert_eq!(
                    (status, replayed),
                    (201, true),
                    "{key} {body}: {answer}; model {:?}; server {now}; history {:?}",
                    model.reservations[&id],
                    model.history.get(&id)
                );
            }
            replays_checked += 1;
        }
        let (snapshot, history) = {
            let model = model.lock().unwrap();
            (model.reservations.clone(), model.history.clone())
        };
        verify(
            &http,
            &base,
            &snapshot,
            &history,
            kill == KILLS - 1,
            &mut rng,
        )
        .await;
        publish.send_replace(Some(base));
    }

    // Stop the buyers, then the server, gracefully; audit the log it leaves.
    publish.send_replace(None);
    drop(publish);
    for b in buyers {
        b.await.unwrap();
    }
    let pending = model.lock().unwrap().pending.len();
    assert_eq!(
        pending, 0,
        "a request stopped mid-flight by the end of the test"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.child.wait().unwrap().success());
    let store: Arc<dyn stockade_store::EventStore> =
        Arc::new(stockade_store::SqliteStore::open(dir.path().join("stockade.db")).unwrap());
    let report = stockade_engine::audit::check_log(&store).await.unwrap();
    assert_eq!(report.violations, Vec::<String>::new());
    assert_eq!(report.oversold_units, 0);
    let model = model.lock().unwrap();
    let held = model.reservations.len() as u64;
    eprintln!(
        "crash test: {KILLS} SIGKILLs, {held} reservations acknowledged ({} refused, {} of them by the purchase limit), {} changes of live holds, {retried} lost answers retried, {replays_checked} replays checked, {orphaned} units held by unacknowledged requests before their retry, {cut_short} orders cut short by a kill and released at the restart ({} of them retried), {} events in the log",
        model.refused, model.limited, model.changes, model.cut_short, report.events
    );
    assert!(model.limited > 0, "no order met the purchase limit");
    assert!(
        model.changes > 100,
        "too few changes of live holds: {}",
        model.changes
    );
    assert!(held > 200, "too little load to mean anything: {held}");
    assert!(retried > 0, "no kill landed mid-request");
    assert!(cut_short > 0, "no kill landed between an order's lines");
}

/// What a log holds, read while no server runs: per SKU, the units of live holds, and of
/// those the units of live lines of reservations cut short (some recorded line never
/// landed); and how many reservations are cut short with a line still live.
#[derive(Debug, Default)]
struct LogHolds {
    live: HashMap<String, u64>,
    cut: HashMap<String, u64>,
    cut_short: usize,
}

async fn log_holds(path: &std::path::Path) -> LogHolds {
    use stockade_domain::Event;
    #[derive(Default)]
    struct Seen {
        lines: Vec<String>,
        landed: Vec<(String, u64)>,
        resolved: Vec<String>,
    }
    let store: Arc<dyn stockade_store::EventStore> =
        Arc::new(stockade_store::SqliteStore::open(path.join("stockade.db")).unwrap());
    let mut seen: HashMap<String, Seen> = HashMap::new();
    stockade_store::scan_all(
        store.as_ref(),
        stockade_store::Position::START,
        4096,
        |recorded| {
            let sku = recorded
                .stream
                .sku()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let Ok((event, _)) = stockade_store::codec::decode(recorded) else {
                return Ok(());
            };
            let (id, resolved) = match event {
                Event::StockReserved(e) => {
                    let s = seen.entry(e.reservation_id.to_string()).or_default();
                    s.landed.push((sku, e.qty.get()));
                    if s.lines.is_empty() {
                        s.lines = e.lines.iter().map(|l| l.to_string()).collect();
                    }
                    return Ok(());
                }
                Event::ReservationCommitted(e) => (e.reservation_id, sku),
                Event::ReservationReleased(e) => (e.reservation_id, sku),
                Event::ReservationExpired(e) => (e.reservation_id, sku),
                // A live hold changed: its line now holds `remaining` or `total`.
                Event::ReservationReduced(e) => {
                    let s = seen.entry(e.reservation_id.to_string()).or_default();
                    if let Some(line) = s.landed.iter_mut().find(|(l, _)| *l == sku) {
                        line.1 = e.remaining.get();
                    }
                    return Ok(());
                }
                Event::ReservationIncreased(e) => {
                    let s = seen.entry(e.reservation_id.to_string()).or_default();
                    if let Some(line) = s.landed.iter_mut().find(|(l, _)| *l == sku) {
                        line.1 = e.total.get();
                    }
                    return Ok(());
                }
                _ => return Ok(()),
            };
            seen.entry(id.to_string())
                .or_default()
                .resolved
                .push(resolved);
            Ok(())
        },
    )
    .await
    .unwrap();
    let mut holds = LogHolds::default();
    for s in seen.values() {
        let whole = s
            .lines
            .iter()
            .all(|sku| s.landed.iter().any(|(l, _)| l == sku));
        let mut live = false;
        for (sku, qty) in s.landed.iter().filter(|(sku, _)| !s.resolved.contains(sku)) {
            live = true;
            *holds.live.entry(sku.clone()).or_default() += qty;
            if !whole {
                *holds.cut.entry(sku.clone()).or_default() += qty;
            }
        }
        if live && !whole {
            holds.cut_short += 1;
        }
    }
    holds
}

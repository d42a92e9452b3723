//! The operator tools, run as the real `stockade` binary on real SQLite logs: replay at
//! past instants, the audit history, `audit verify` on simulation logs and on hand-made
//! violations (tests/fixtures/audit), reconciliation, and the dead-letter queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stockade_domain::{Quantity, Timestamp};
use stockade_engine::{
    Adjustment, Clock, Inventory, InventoryConfig, ManualClock, Origin, ReserveOptions,
};
use stockade_projections::{NoticeHub, Projector, ReadModels};
use stockade_tests::engine::{checked_log, physical, sku, test_engine};
use stockade_tests::fixtures::{audit_fixtures, load_log};
use stockade_tests::http_receiver::{Behaviour, Receiver};

/// Runs `stockade args...` to completion (off the async threads).
async fn stockade(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_stockade"))
            .args(&args)
            .env_remove("STOCKADE_CONFIG")
            .env_remove("STOCKADE_DATA_DIR")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

fn dir_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_owned()
}

/// Builds the read models of `dir`'s log, as a server's projector would have.
async fn project(dir: &Path) -> ReadModels {
    let store = Arc::new(stockade_store::SqliteStore::open(dir.join("stockade.db")).unwrap());
    let models = ReadModels::open(&dir.join("projections.db")).unwrap();
    let mut projector = Projector::new(store, models.clone(), NoticeHub::new());
    projector.catch_up().await.unwrap();
    models
}

/// Waits until `inventory`'s log holds `n` expiries (the timer writes them in the
/// background).
async fn expiries_reach(inventory: &Inventory, n: u64) {
    let deadline = tokio::time::Instant::now() + stockade_tests::PATIENCE;
    loop {
        let expired = checked_log(&inventory.store()).await.expired;
        if expired >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{expired} of {n} expiries"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_at_a_past_instant_shows_what_stock_returned_then() {
    let dir = tempfile::tempdir().unwrap();
    let start = Timestamp::from_millis(1_800_000_000_000);
    let clock = ManualClock::new(start);
    let inventory = Inventory::open(
        InventoryConfig::sqlite(dir.path())
            .engine(test_engine())
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let (tee, cap) = (sku("TEE"), sku("CAP"));
    let origin = Origin::default();
    inventory
        .register(&tee, physical(10), &origin)
        .await
        .unwrap();
    inventory
        .register(&cap, physical(3), &origin)
        .await
        .unwrap();
    // Holds made on the second lapse on the half second, between two reads.
    let short = ReserveOptions {
        ttl: Some(Duration::from_millis(2_500)),
        ..ReserveOptions::default()
    };
    // A recorded run: each second some buyers act at once, then both SKUs are read.
    let mut reads = Vec::new();
    let mut held = Vec::new();
    let mut resolved = Vec::new();
    for step in 0..8u64 {
        let mut calls = Vec::new();
        for n in 0..3u64 {
            let (inventory, item, options) = (
                inventory.clone(),
                if n % 2 == 0 { tee.clone() } else { cap.clone() },
                short.clone(),
            );
            calls.push(tokio::spawn(async move {
                inventory.reserve(&item, Quantity::new(1), options).await
            }));
        }
        for call in calls {
            if let Ok(r) = call.await.unwrap() {
                held.push((r.id, r.expires_at));
            }
        }
        match step {
            2 => {
                inventory.commit(held[3].0, &origin).await.unwrap();
                inventory.release(held[4].0, &origin).await.unwrap();
                resolved.extend([held[3].0, held[4].0]);
            }
            4 => {
                let delivery = Adjustment {
                    location: None,
                    change: stockade_domain::StockChange::Delta(4),
                    reason: "goods received".into(),
                    reference: None,
                    expected_version: None,
                };
                inventory.adjust(&cap, delivery, &origin).await.unwrap();
            }
            _ => {}
        }
        for item in [&tee, &cap] {
            reads.push((item.clone(), inventory.stock(item).await.unwrap()));
        }
        // Half a second on, holds lapse and the engine writes their expiries (at that
        // instant); wait for them, so that the next read's instant is unambiguous.
        clock.advance(Duration::from_millis(500));
        let now = clock.now();
        let lapsed = held
            .iter()
            .filter(|(id, expires)| *expires <= now && !resolved.contains(id))
            .count() as u64;
        expiries_reach(&inventory, lapsed).await;
        clock.advance(Duration::from_millis(500));
    }
    inventory.shutdown().await;

    let d = dir_arg(dir.path());
    for (item, read) in &reads {
        let at = read.as_of.to_string();
        let out = stockade(&[
            "replay",
            "--data-dir",
            &d,
            "--sku",
            item.as_str(),
            "--at",
            &at,
            "--format",
            "json",
        ])
        .await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let replayed = &json(&out)["skus"][0];
        assert_eq!(replayed["version"], read.version, "{item} at {at}");
        // The figures under the API's names: what `GET /api/inventory/products` says.
        let view = &read.view;
        let limited = |a: stockade_domain::state::Availability| match a {
            stockade_domain::state::Availability::Limited(q) => Some(q.get()),
            stockade_domain::state::Availability::Unlimited => None,
        };
        assert_eq!(
            (
                replayed["on_hand"].as_u64(),
                replayed["reserved"].as_u64(),
                replayed["sold"].as_u64(),
                replayed["available"].as_u64(),
                replayed["live_reservations"].as_u64(),
            ),
            (
                view.limit.map(|q| q.get()),
                Some(view.reserved.get()),
                Some(view.sold.get()),
                limited(view.available),
                Some(view.live_reservations as u64),
            ),
            "{item} at {at}: {replayed}"
        );
        assert!(replayed.get("view").is_none() && replayed.get("limit").is_none());
    }
    // All SKUs at once, by position: the whole log is the last read of each.
    let out = stockade(&["replay", "--data-dir", &d, "--format", "json"]).await;
    assert_eq!(json(&out)["skus"].as_array().unwrap().len(), 2);
    let first = stockade(&["replay", "--data-dir", &d, "--position", "1"]).await;
    let table = stdout(&first);
    assert!(table.contains("TEE") && !table.contains("CAP"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_a_simulation_log_and_its_read_models() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir_arg(dir.path());
    let sim = stockade(&[
        "simulate",
        "flash-sale",
        "--data-dir",
        &d,
        "--skus",
        "3",
        "--stock",
        "400",
        "--buyers",
        "3000",
        "--concurrency",
        "64",
        "--ttl",
        "1",
        "--abandon-rate",
        "0.2",
    ])
    .await;
    assert_eq!(code(&sim), 0, "{}{}", stdout(&sim), stderr(&sim));
    let out = stockade(&["audit", "verify", "--data-dir", &d]).await;
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("The log keeps every invariant."));

    project(dir.path()).await;
    let out = stockade(&["audit", "verify", "--data-dir", &d, "--format", "json"]).await;
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let verdict = json(&out);
    assert_eq!(verdict["read_models_checked"], true);
    assert!(verdict["reserved"].as_u64().unwrap() >= 1200, "{verdict}");
    assert_eq!(verdict["oversold_units"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_position_of_every_hand_made_violation() {
    let fixtures = audit_fixtures();
    assert!(fixtures.len() >= 6, "{fixtures:?}");
    for name in fixtures {
        let dir = tempfile::tempdir().unwrap();
        let fixture = load_log(&name, dir.path()).await;
        let out = stockade(&["audit", "verify", "--data-dir", &dir_arg(dir.path())]).await;
        let text = stdout(&out);
        if fixture.expect.is_empty() {
            assert_eq!(code(&out), 0, "{name}: {}\n{text}", fixture.about);
            continue;
        }
        assert_eq!(
            code(&out),
            1,
            "{name}: {}\n{text}{}",
            fixture.about,
            stderr(&out)
        );
        for expected in &fixture.expect {
            assert!(
                text.contains(expected),
                "{name}: no {expected:?} in\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_says_when_what_who_why_and_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    load_log("clean.jsonl", dir.path()).await;
    let d = dir_arg(dir.path());
    let table = stdout(&stockade(&["audit", "--data-dir", &d]).await);
    assert!(table.contains("admin via backoffice"), "{table}");
    assert!(table.contains("goods received (po-7)"), "{table}");
    assert!(table.contains("3 → 13"), "{table}");
    // An adjustment's qty column is its change, not the new on hand.
    assert!(table.contains("+10"), "{table}");

    let all = json(&stockade(&["audit", "--data-dir", &d, "--format", "json"]).await);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[2]["event"], "ReservationCommitted");
    assert_eq!(all[2]["before"]["on_hand"], 5);
    assert_eq!(all[2]["after"]["on_hand"], 3);
    assert_eq!(all[1]["principal"], "channel:web");
    assert_eq!(all[1]["idempotency_key"], "checkout-1");

    let order = "o-00000000-0000-0000-0000-000000000001";
    let one = json(
        &stockade(&[
            "audit",
            "--data-dir",
            &d,
            "--order",
            order,
            "--format",
            "json",
        ])
        .await,
    );
    let events: Vec<&str> = one
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["StockReserved", "ReservationCommitted"]);

    let csv = stdout(
        &stockade(&[
            "audit",
            "--data-dir",
            &d,
            "--from",
            "2026-11-27T09:00:03Z",
            "--to",
            "2026-11-27T09:00:05Z",
            "--format",
            "csv",
        ])
        .await,
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("position,at,recorded_at,sku"));
    assert!(lines[1].contains("StockReserved") && lines[2].contains("ReservationExpired"));

    let bad = stockade(&["audit", "--data-dir", &d, "--from", "tomorrow"]).await;
    assert_eq!(code(&bad), 2);
    let bad = stockade(&[
        "audit",
        "--data-dir",
        &d,
        "--from",
        "2026-11-27T10:00:00Z",
        "--to",
        "2026-11-27T09:00:00Z",
    ])
    .await;
    assert_eq!(code(&bad), 2);
    assert_eq!(stderr(&bad).lines().count(), 1, "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_found_then_repaired_and_counts_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    load_log("clean.jsonl", dir.path()).await;
    let d = dir_arg(dir.path());
    let models = project(dir.path()).await;
    let mut row = models.stock(&sku("A")).await.unwrap().unwrap();
    row.level.available = Some(99);
    models.put_stock_row(row).await.unwrap();
    drop(models);

    let out = stockade(&["audit", "verify", "--data-dir", &d]).await;
    assert_eq!(code(&out), 1);
    assert!(
        stdout(&out).contains("read model: A at version 6 shows"),
        "{}",
        stdout(&out)
    );

    let preview = stockade(&["reconcile", "--data-dir", &d, "--dry-run"]).await;
    assert_eq!(code(&preview), 0, "{}", stderr(&preview));
    assert!(
        stdout(&preview).contains("would repair 1 row"),
        "{}",
        stdout(&preview)
    );
    assert_eq!(
        code(&stockade(&["audit", "verify", "--data-dir", &d]).await),
        1
    );
    let fixed = stockade(&["reconcile", "--data-dir", &d]).await;
    assert!(
        stdout(&fixed).contains("repaired 1 row"),
        "{}",
        stdout(&fixed)
    );
    let line = stdout(&fixed)
        .lines()
        .find(|l| l.contains("available"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        line.contains("99") && line.contains("13"),
        "{}",
        stdout(&fixed)
    );
    assert_eq!(
        code(&stockade(&["audit", "verify", "--data-dir", &d]).await),
        0
    );

    // At 09:00:07 the log says 13 on hand; 10 were counted.
    let counts = dir.path().join("counts.csv");
    std::fs::write(
        &counts,
        "sku,counted_on_hand,counted_at\nA,10,2026-11-27T09:00:07Z\n",
    )
    .unwrap();
    let c = dir_arg(&counts);
    let dry = json(
        &stockade(&[
            "reconcile",
            "--data-dir",
            &d,
            "--counts",
            &c,
            "--dry-run",
            "--format",
            "json",
        ])
        .await,
    );
    assert_eq!(dry["counts"][0]["outcome"], "would apply");
    assert_eq!(dry["counts"][0]["delta"], -3);
    // The shape `POST /api/counts` answers with: times as RFC 3339, as on every channel.
    assert_eq!(dry["counts"][0]["counted_at"], "2026-11-27T09:00:07.000Z");
    let applied = json(
        &stockade(&[
            "reconcile",
            "--data-dir",
            &d,
            "--counts",
            &c,
            "--format",
            "json",
        ])
        .await,
    );
    assert_eq!(applied["counts"][0]["outcome"], "applied");
    let again = json(
        &stockade(&[
            "reconcile",
            "--data-dir",
            &d,
            "--counts",
            &c,
            "--format",
            "json",
        ])
        .await,
    );
    assert_eq!(again["counts"][0]["outcome"], "already applied");
    let history = stdout(&stockade(&["audit", "--data-dir", &d, "--sku", "A"]).await);
    assert!(history.contains("physical count"), "{history}");
    assert!(history.contains("13 → 10"), "{history}");

    std::fs::write(&counts, "sku,qty\nA,1\n").unwrap();
    let bad = stockade(&["reconcile", "--data-dir", &d, "--counts", &c]).await;
    assert_eq!(code(&bad), 2);
    assert!(
        stderr(&bad).contains("line 1: expected the header"),
        "{}",
        stderr(&bad)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_once_the_endpoint_works() {
    let dir = tempfile::tempdir().unwrap();
    load_log("clean.jsonl", dir.path()).await;
    let d = dir_arg(dir.path());
    let models = project(dir.path()).await;
    let notices = models.notices(0, 10).await.unwrap();
    for notice in &notices[..3] {
        models
            .dead_letter("webhook:market", notice, "503 Service Unavailable", 8)
            .await
            .unwrap();
    }
    drop(models);

    let list = stockade(&["dlq", "list", "--data-dir", &d]).await;
    assert!(
        stdout(&list).contains("3 dead letter(s)"),
        "{}",
        stdout(&list)
    );
    assert!(stdout(&list).contains("503 Service Unavailable"));

    let receiver = Receiver::start(Behaviour::Down).await;
    let config = dir.path().join("stockade.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nname = \"market\"\nurl = \"{}\"\nsecret = \"whsec_0123456789abcdef\"\n",
            receiver.url
        ),
    )
    .unwrap();
    let cfg = dir_arg(&config);
    let failing = stockade(&["dlq", "replay", "--data-dir", &d, "--config", &cfg]).await;
    assert_eq!(
        code(&failing),
        1,
        "{}{}",
        stdout(&failing),
        stderr(&failing)
    );
    let listed = json(&stockade(&["dlq", "list", "--data-dir", &d, "--format", "json"]).await);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["attempts"], 9);
    // The notice in the one shape every channel uses (the streams' `NoticeOut`).
    let notice = &listed[0]["notice"];
    let expected: std::collections::BTreeSet<&str> = [
        "seq",
        "sku",
        "version",
        "previous",
        "current",
        "previous_status",
        "status",
        "cause",
        "scopes",
        "committed_at",
        "event_id",
    ]
    .into();
    let keys: std::collections::BTreeSet<&str> = notice
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, expected, "{notice}");
    assert!(notice["committed_at"].is_string(), "{notice}");
    assert_eq!(listed[0]["endpoint"], "market", "{listed}");

    receiver.set(Behaviour::Up);
    let done = stockade(&[
        "dlq",
        "replay",
        "--data-dir",
        &d,
        "--config",
        &cfg,
        "--format",
        "json",
    ])
    .await;
    assert_eq!(code(&done), 0, "{}{}", stdout(&done), stderr(&done));
    assert_eq!(json(&done)["endpoints"][0]["delivered"], 3);
    assert_eq!(receiver.delivered().len(), 3);
    let empty = stockade(&["dlq", "list", "--data-dir", &d]).await;
    assert!(stdout(&empty).contains("empty"), "{}", stdout(&empty));
    let unknown = stockade(&[
        "dlq",
        "replay",
        "--data-dir",
        &d,
        "--config",
        &cfg,
        "--endpoint",
        "nope",
    ])
    .await;
    assert_eq!(code(&unknown), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_log_is_one_line_and_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["replay"],
        vec!["audit"],
        vec!["audit", "verify"],
        vec!["reconcile", "--dry-run"],
    ] {
        let mut args = args.clone();
        let d = dir_arg(dir.path());
        args.extend(["--data-dir", &d]);
        let out = stockade(&args).await;
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(
            stderr(&out).starts_with("error: no log at"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = stockade(&["dlq", "list", "--data-dir", &dir_arg(dir.path())]).await;
    assert_eq!(code(&out), 2);
    // A command group without its subcommand is a usage error.
    assert_eq!(code(&stockade(&["dlq"]).await), 2);
    assert!(
        !dir.path().join("stockade.db").exists(),
        "a read created a log"
    );
}

/// The newcomer's finding: a count applied by `stockade reconcile` beside a running server
/// left the server's exact read (`GET /api/inventory/products/{sku}`, from the engine's
/// durable state) at the old figure until the SKU's next write, while the list said the
/// new one. The server's projector follows every append, a tool's too, and tells the
/// engine, whose actor re-reads what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_applied_beside_a_running_server_reaches_its_exact_read() {
    use stockade_tests::server::{Client, TestServer, config};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("BOLT", 20).await;
    let before = client.get("/api/inventory/products/BOLT", None).await;
    assert_eq!(before.body["on_hand"], 20);

    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let counts = dir.path().join("counts.csv");
    std::fs::write(
        &counts,
        format!("sku,counted_on_hand,counted_at\nBOLT,12,{now}\n"),
    )
    .unwrap();
    let applied = stockade(&[
        "reconcile",
        "--data-dir",
        &dir_arg(dir.path()),
        "--counts",
        &dir_arg(&counts),
    ])
    .await;
    assert_eq!(
        code(&applied),
        0,
        "{}{}",
        stdout(&applied),
        stderr(&applied)
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut exact = before.body;
    while tokio::time::Instant::now() < deadline {
        exact = client.get("/api/inventory/products/BOLT", None).await.body;
        if exact["on_hand"] == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        exact["on_hand"], 12,
        "the exact read stayed behind: {exact}"
    );
    assert_eq!(exact["version"], 2, "{exact}");
    // The engine decides on the new figure too: 12 can be held, 13 cannot.
    assert_eq!(client.try_reserve("BOLT", 13).await, Some(409));
    assert_eq!(client.try_reserve("BOLT", 12).await, Some(201));
    server.stop().unwrap();
}

/// The newcomer's finding: `stockade dlq replay` emptied the queue from the command line,
/// and the running server's `stockade_dlq_depth` stayed at 1 until a restart. It is now
/// read from the read models at each scrape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dlq_gauge_follows_a_replay_made_beside_the_server() {
    use stockade_tests::server::{Client, TestServer, config};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("GAUGE", 5).await;
    let models = ReadModels::open(&dir.path().join("projections.db")).unwrap();
    let mut notices = Vec::new();
    for _ in 0..100 {
        notices = models.notices(0, 10).await.unwrap();
        if !notices.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    models
        .dead_letter("webhook:market", &notices[0], "503 Service Unavailable", 8)
        .await
        .unwrap();
    let depth = |text: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix("stockade_dlq_depth ")?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    let before = client.get("/metrics", None).await.text;
    assert_eq!(depth(&before), Some(1.0), "{before}");

    let receiver = Receiver::start(Behaviour::Up).await;
    let config_file = dir.path().join("stockade.toml");
    std::fs::write(
        &config_file,
        format!(
            "[[webhooks]]\nname = \"market\"\nurl = \"{}\"\nsecret = \"whsec_0123456789abcdef\"\n",
            receiver.url
        ),
    )
    .unwrap();
    let replayed = stockade(&[
        "dlq",
        "replay",
        "--data-dir",
        &dir_arg(dir.path()),
        "--config",
        &dir_arg(&config_file),
    ])
    .await;
    assert_eq!(
        code(&replayed),
        0,
        "{}{}",
        stdout(&replayed),
        stderr(&replayed)
    );
    let after = client.get("/metrics", None).await.text;
    assert_eq!(depth(&after), Some(0.0), "{after}");
    server.stop().unwrap();
}

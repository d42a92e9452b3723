//! `stockade simulate flash-sale` as a user runs it: the binary, its exit status, its JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// The binary, without a server URL from the developer's environment (the live test
/// passes one explicitly).
fn stockade(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(args)
        .env_remove("STOCKADE_ESDB_URL")
        .env_remove("STOCKADE_PG_URL")
        .output()
        .expect("run the stockade binary")
}

/// 2 SKUs × 50 units, 2000 buyers, 200 at a time, nobody walks away, on the store
/// `store_args` choose: exactly the stock sells, and the log check passes.
fn small_sale(store_args: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "simulate",
        "flash-sale",
        "--skus",
        "2",
        "--stock",
        "50",
        "--buyers",
        "2000",
        "--concurrency",
        "200",
        "--abandon-rate",
        "0",
        "--json",
    ];
    args.extend_from_slice(store_args);
    let out = stockade(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["reserved"], 100);
    assert_eq!(report["committed"], 100);
    assert_eq!(report["rejected"], 1900);
    assert_eq!(report["oversold"], 0);
    assert_eq!(report["missing_acknowledged"], 0);
    assert_eq!(report["missing_committed"], 0);
    assert_eq!(report["errors"], 0);
    report
}

#[test]
fn a_small_sale_on_sqlite_sells_exactly_the_stock_and_passes_the_log_check() {
    let dir = tempfile::tempdir().unwrap();
    let report = small_sale(&["--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(report["store"], "sqlite");
    // The log it checked is the one on disk; a second run beside the first counts only
    // its own SKUs.
    assert!(dir.path().join("stockade.db").exists());
    let again = stockade(&[
        "simulate",
        "flash-sale",
        "--stock",
        "10",
        "--buyers",
        "50",
        "--abandon-rate",
        "0",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["reserved"], 10);
}

#[test]
fn abandoned_holds_lapse_and_their_stock_sells_again() {
    let out = stockade(&[
        "simulate",
        "flash-sale",
        "--store",
        "memory",
        "--stock",
        "20",
        "--buyers",
        "400",
        "--abandon-rate",
        "0.5",
        "--ttl",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let abandoned = report["abandoned"].as_u64().unwrap();
    assert!(abandoned > 0);
    assert_eq!(report["expired"].as_u64().unwrap(), abandoned);
    assert_eq!(report["oversold"], 0);
}

#[test]
fn bad_flags_exit_non_zero_with_a_message() {
    for args in [
        &["simulate", "flash-sale", "--qty", "0"][..],
        &["simulate", "flash-sale", "--qty", "18446744073709551616"],
        &["simulate", "flash-sale", "--abandon-rate", "1.5"],
        &["simulate", "flash-sale", "--store", "mysql"],
        // PostgreSQL without a URL, with a bad one, and a URL for another store.
        &["simulate", "flash-sale", "--store", "postgres"],
        &[
            "simulate",
            "flash-sale",
            "--store",
            "postgres",
            "--pg-url",
            "nonsense",
        ],
        &[
            "simulate",
            "flash-sale",
            "--store",
            "postgres",
            "--pg-url",
            "postgres://x/y",
            "--pg-schema",
            "Bad-Schema",
        ],
        &[
            "simulate",
            "flash-sale",
            "--store",
            "sqlite",
            "--pg-url",
            "postgres://localhost/shop",
        ],
        &[
            "simulate",
            "flash-sale",
            "--store",
            "memory",
            "--data-dir",
            "/tmp/x",
        ],
        &["simulate", "flash-sale", "--store", "esdb"],
        &[
            "simulate",
            "flash-sale",
            "--store",
            "esdb",
            "--esdb-url",
            "http://localhost:2113",
        ],
        &[
            "simulate",
            "flash-sale",
            "--store",
            "sqlite",
            "--esdb-url",
            "esdb://localhost:2113",
        ],
    ] {
        let out = stockade(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn an_unreachable_eventstoredb_is_a_one_line_error_not_a_hang() {
    let url = format!(
        "esdb://127.0.0.1:{}?tls=false&maxDiscoverAttempts=2&discoveryInterval=50",
        crate::unused_port()
    );
    let started = std::time::Instant::now();
    let out = stockade(&[
        "simulate",
        "flash-sale",
        "--store",
        "esdb",
        "--esdb-url",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(stderr.contains("cannot reach EventStoreDB"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    // Bounded by the store's 10 s deadline, with room for a slow machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// The same sale against a live EventStoreDB when `STOCKADE_ESDB_URL` names one.
#[test]
fn a_small_sale_on_a_live_eventstoredb_passes_the_log_check() {
    let Some(live) = stockade_esdb::testkit::live_config("`simulate flash-sale --store esdb`")
    else {
        return;
    };
    let report = small_sale(&[
        "--store",
        "esdb",
        "--esdb-url",
        &live.url,
        "--esdb-namespace",
        &live.namespace,
    ]);
    assert_eq!(report["store"], "eventstoredb");
}

/// A quarter of the buyers want a kit of both SKUs (one of each); the rest one unit of a
/// SKU. Kit orders and single buyers compete for the same units: the stock sells, never
/// more, and every acknowledged hold of a kit's components is in the log.
#[test]
fn a_sale_with_a_kit_sells_no_unit_twice_and_passes_the_log_check() {
    let out = stockade(&[
        "simulate",
        "flash-sale",
        "--skus",
        "2",
        "--stock",
        "60",
        "--buyers",
        "1000",
        "--concurrency",
        "100",
        "--kit-share",
        "0.25",
        "--abandon-rate",
        "0.2",
        "--ttl",
        "1",
        "--store",
        "memory",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kits = report["kits_reserved"].as_u64().unwrap();
    let reserved = report["reserved"].as_u64().unwrap();
    assert!(kits > 0, "{report}");
    assert!(reserved > kits, "{report}");
    assert_eq!(report["oversold"], 0);
    assert_eq!(report["missing_acknowledged"], 0);
    assert_eq!(report["missing_committed"], 0);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["log_violations"], serde_json::json!([]));
    // Every abandoned hold, a kit's two included, lapsed and was written as expired.
    assert_eq!(report["expired"], report["abandoned_holds"], "{report}");
}

/// Each SKU's stock spread over 7 locations, half the buyers insisting on one: buyers
/// race for the last units at each location, and still the stock sells exactly once,
/// judged location by location by the log check.
#[test]
fn a_sale_over_locations_sells_each_location_once_and_passes_the_log_check() {
    let out = stockade(&[
        "simulate",
        "flash-sale",
        "--skus",
        "2",
        "--stock",
        "60",
        "--locations",
        "7",
        "--buyers",
        "1000",
        "--concurrency",
        "100",
        "--abandon-rate",
        "0",
        "--store",
        "memory",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["locations"], 7);
    let named = report["reserved_at_named_location"].as_u64().unwrap();
    assert!(named > 0, "{report}");
    // Nobody walks away: every unit of every location is sold, and none twice.
    assert_eq!(report["reserved"], 120, "{report}");
    assert_eq!(report["committed"], 120, "{report}");
    assert_eq!(report["oversold"], 0);
    assert_eq!(report["log_violations"], serde_json::json!([]));
    assert_eq!(report["errors"], 0);
    let bad = stockade(&["simulate", "flash-sale", "--locations", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// A preorder launch: nothing on hand, 30 units may be backordered per SKU and 20 arrive
/// during the sale. Every hold waits at first; no more than limit + arrivals is ever
/// promised; the arrivals fill the line (the log check holds each fill to line order and
/// every sale to stock ahead of it), and every buyer whose line was filled buys.
#[test]
fn a_preorder_launch_is_filled_in_line_order_as_stock_arrives() {
    let out = stockade(&[
        "simulate",
        "flash-sale",
        "--skus",
        "2",
        "--stock",
        "0",
        "--backorder-limit",
        "30",
        "--incoming",
        "20",
        "--arrivals",
        "4",
        "--arrival-every-ms",
        "50",
        "--buyers",
        "400",
        "--concurrency",
        "50",
        "--abandon-rate",
        "0",
        "--ttl",
        "60",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reserved = report["reserved"].as_u64().unwrap();
    assert!((60..=100).contains(&reserved), "{report}");
    assert_eq!(
        report["backordered"], reserved,
        "nothing was on hand: {report}"
    );
    // 20 units arrived per SKU: 40 holds of one unit filled, and bought.
    assert_eq!(report["fills"], 40, "{report}");
    assert_eq!(report["committed_after_fill"], 40, "{report}");
    assert_eq!(report["still_waiting"], reserved - 40, "{report}");
    assert_eq!(report["oversold"], 0);
    assert_eq!(report["log_violations"], serde_json::json!([]));
    assert_eq!(report["errors"], 0);
    // Refused: the bad combination is a one-line error and a non-zero exit.
    let bad = stockade(&[
        "simulate",
        "flash-sale",
        "--backorder-limit",
        "5",
        "--locations",
        "2",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--locations 1"));
}

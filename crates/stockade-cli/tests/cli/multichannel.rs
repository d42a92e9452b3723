//! `stockade simulate multichannel`, run as the real binary: push keeps phantom-stock
//! attempts to those made while a notice was in flight, a 15-minute poll does not, and the
//! run's log passes `stockade audit verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;

fn stockade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(args)
        .output()
        .unwrap()
}

fn report(args: &[&str]) -> Value {
    let mut all = vec!["simulate", "multichannel", "--json"];
    all.extend_from_slice(args);
    let out = stockade(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn push_leaves_only_in_flight_phantoms_and_a_fifteen_minute_poll_many() {
    let push = report(&["--sync", "push"]);
    let poll = report(&["--sync", "poll", "--poll-interval", "15m"]);
    for c in push["channels"].as_array().unwrap() {
        assert_eq!(c["phantom"], c["phantom_in_flight"], "{c}");
    }
    let (pushed, polled) = (n(&push["total"]["phantom"]), n(&poll["total"]["phantom"]));
    assert!(polled >= 50, "poll: {}", poll["total"]);
    assert!(polled >= 10 * pushed.max(1), "push {pushed}, poll {polled}");
    assert_eq!(n(&poll["total"]["phantom_in_flight"]), 0);
    // The polled copies are minutes old; an assistant cannot trust them.
    assert!(poll["total"]["staleness_p99_seconds"].as_f64().unwrap() > 60.0);
    assert!(push["total"]["freshness_score"].as_f64().unwrap() > 0.95);
    assert!(poll["total"]["freshness_score"].as_f64().unwrap() < 0.1);
    assert!(poll["total"]["leakage_per_day"].as_f64().unwrap() > 0.0);
    for r in [&push, &poll] {
        assert_eq!(r["oversold_units"], 0);
        assert_eq!(r["errors"], 0, "{}", r["first_error"]);
        assert_eq!(r["notices"], r["log_events"]);
    }
}

#[test]
fn slow_notices_make_phantoms_and_each_one_is_in_flight() {
    let slow = report(&[
        "--sync",
        "push",
        "--push-latency",
        "20s",
        "--duration",
        "12h",
    ]);
    let total = &slow["total"];
    assert!(n(&total["phantom"]) > 0, "{total}");
    assert_eq!(total["phantom"], total["phantom_in_flight"]);
}

#[test]
fn the_log_of_a_day_passes_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    report(&["--sync", "poll", "--data-dir", d, "--seed", "11"]);
    let out = stockade(&["audit", "verify", "--data-dir", d]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_parameters_are_one_line_and_exit_two() {
    for args in [
        ["--poll-interval", "0s"],
        ["--poll-interval", "15 minutes"],
        ["--churn-multiplier", "1.5"],
        ["--average-order-value", "-3"],
    ] {
        let mut all = vec!["simulate", "multichannel"];
        all.extend_from_slice(&args);
        let out = stockade(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

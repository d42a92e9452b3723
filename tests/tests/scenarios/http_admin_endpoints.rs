//! The admin's REST endpoints over HTTP: physical counts previewed then applied, alerts,
//! dead letters, an order's lines, each for the admin token only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stockade_domain::Timestamp;
use stockade_tests::server::{ADMIN, Client, TestServer, WEB, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_alerts_dead_letters_and_orders_for_the_admin() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("BOLT", 20).await;

    // A count: previewed, then applied; the preview writes nothing.
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let csv = format!("sku,counted_on_hand,counted_at\nBOLT,12,{now}\n").into_bytes();
    let post = |path: &'static str, token: &'static str, body: Vec<u8>| {
        let client = client.clone();
        async move {
            client
                .send(
                    "POST",
                    path,
                    Some(token),
                    &[("content-type", "text/csv")],
                    Some(body),
                )
                .await
        }
    };
    let preview = post("/api/counts?dry_run=true", ADMIN, csv.clone()).await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert_eq!(
        preview.body["counts"][0]["outcome"], "would apply",
        "{}",
        preview.text
    );
    assert_eq!(preview.body["counts"][0]["delta"], -8);
    assert_eq!(
        client.get("/api/inventory/products/BOLT", None).await.body["on_hand"],
        20
    );
    let applied = post("/api/counts", ADMIN, csv.clone()).await;
    assert_eq!(
        applied.body["counts"][0]["outcome"], "applied",
        "{}",
        applied.text
    );
    assert_eq!(
        client.get("/api/inventory/products/BOLT", None).await.body["on_hand"],
        12
    );
    let bad = post("/api/counts", ADMIN, b"sku,qty\nBOLT,1\n".to_vec()).await;
    assert_eq!(
        (bad.status, bad.body["error"].as_str()),
        (422, Some("invalid_counts"))
    );
    assert_eq!(bad.body["line"], 1);
    assert_eq!(post("/api/counts", WEB, csv).await.status, 403);

    // An order's lines, and a low-stock alert once the read models follow.
    let held = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "BOLT", "qty": 10}], "order_id": "ORD-ADMIN-1"}),
        )
        .await;
    assert_eq!(held.status, 201);
    let order = client.get("/api/orders/ORD-ADMIN-1", Some(ADMIN)).await;
    let mut lines = order.body["lines"].clone();
    for _ in 0..100 {
        if lines.as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        lines = client
            .get("/api/orders/ORD-ADMIN-1", Some(ADMIN))
            .await
            .body["lines"]
            .clone();
    }
    assert_eq!(lines[0]["sku"], "BOLT", "{lines}");
    assert_eq!(lines[0]["qty"], 10);
    assert_eq!(
        client.get("/api/orders/ORD-NONE", Some(ADMIN)).await.status,
        404
    );
    assert_eq!(
        client
            .get("/api/orders/ORD-ADMIN-1", Some(WEB))
            .await
            .status,
        403
    );
    let mut kinds = Vec::new();
    for _ in 0..100 {
        let alerts = client.get("/api/alerts", Some(ADMIN)).await.body;
        kinds = alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_owned())
            .collect();
        if kinds.iter().any(|k| k == "low_stock") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(kinds.iter().any(|k| k == "low_stock"), "{kinds:?}");
    assert_eq!(client.get("/api/alerts", Some(WEB)).await.status, 403);
    // Acknowledged: gone from the open ones, kept in the list with who and when.
    let alerts = client.get("/api/alerts", Some(ADMIN)).await.body;
    let seq = alerts["items"][0]["seq"].as_u64().unwrap();
    let ack = |token: &'static str, seq: u64| {
        let client = client.clone();
        async move {
            client
                .post(&format!("/api/alerts/{seq}/ack"), Some(token), json!({}))
                .await
        }
    };
    assert_eq!(ack(WEB, seq).await.status, 403);
    assert_eq!(ack(ADMIN, seq).await.status, 200);
    assert_eq!(ack(ADMIN, 999_999).await.status, 404);
    let open = client.get("/api/alerts?open=true", Some(ADMIN)).await.body;
    assert!(
        !open["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["seq"] == seq),
        "{open}"
    );
    let all = client.get("/api/alerts", Some(ADMIN)).await.body;
    assert_eq!(all["items"][0]["acknowledged_by"], "admin", "{all}");

    // No webhook here: an empty queue, and a replay with no endpoint to try.
    let letters = client.get("/api/dead-letters", Some(ADMIN)).await;
    assert_eq!(letters.body["items"], json!([]), "{}", letters.text);
    let replayed = client
        .post("/api/dead-letters/replay", Some(ADMIN), json!({}))
        .await;
    assert_eq!(replayed.body["endpoints"], json!([]), "{}", replayed.text);
    assert_eq!(client.get("/api/dead-letters", Some(WEB)).await.status, 403);

    // Health: the read models catch up with the log.
    let mut health = serde_json::Value::Null;
    for _ in 0..100 {
        health = client.get("/api/health", Some(ADMIN)).await.body;
        if health["projection"]["caught_up"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(health["projection"]["caught_up"], true, "{health}");
    assert_eq!(health["dead_letters"], 0);
    assert_eq!(health["webhooks"], json!([]));
    assert_eq!(client.get("/api/health", Some(WEB)).await.status, 403);

    // A repaired read-model row is listed as a correction.
    let models =
        stockade_projections::ReadModels::open(&dir.path().join("projections.db")).unwrap();
    let bolt = stockade_domain::Sku::new("BOLT").unwrap();
    let expected = models.stock(&bolt).await.unwrap().unwrap();
    let mut found = expected.clone();
    found.level.reserved += 1;
    let correction = stockade_projections::reconcile::Correction {
        locations: Vec::new(),
        sku: "BOLT".into(),
        found,
        expected,
    };
    models.repair(&correction).await.unwrap();
    let listed = client.get("/api/corrections", Some(ADMIN)).await.body;
    assert_eq!(listed["items"][0]["sku"], "BOLT", "{listed}");
    assert!(listed["items"][0]["expected"].is_object(), "{listed}");
    assert_eq!(client.get("/api/corrections", Some(WEB)).await.status, 403);
    server.stop().unwrap();
}

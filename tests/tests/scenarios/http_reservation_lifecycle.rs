//! The reservation lifecycle over HTTP and MCP: extend a hold, commit or release part of
//! it per line and quantity, amend its lines, each keyed exactly once; bad input (a lapsed
//! hold, more than held, every line to 0, a TTL out of range) is a 4xx with nothing written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use stockade_tests::mcp::McpClient;
use stockade_tests::server::{Answer, Client, TestServer, WEB, config};

/// (reserved, on hand) of `sku` now, from the exact read.
async fn figures(client: &Client, sku: &str) -> (u64, u64) {
    let read = client
        .get(&format!("/api/inventory/products/{sku}"), None)
        .await;
    (
        read.body["reserved"].as_u64().unwrap(),
        read.body["on_hand"].as_u64().unwrap(),
    )
}

fn items(answer: &Answer) -> Vec<(String, u64)> {
    answer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().unwrap().to_owned(),
                i["qty"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn keyed(client: &Client, path: &str, key: &str, body: Value) -> Answer {
    client
        .send(
            "POST",
            path,
            Some(WEB),
            &[("Idempotency-Key", key)],
            Some(body.to_string().into_bytes()),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_is_extended_shipped_in_parts_and_amended() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    for (sku, n) in [("TEE", 10), ("MUG", 10), ("CAP", 3)] {
        client.register(sku, n).await;
    }
    let held = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "TEE", "qty": 3}, {"sku": "MUG", "qty": 2}], "ttl_seconds": 60}),
        )
        .await;
    assert_eq!(held.status, 201, "{}", held.text);
    let id = held.body["reservation_id"].as_str().unwrap().to_owned();
    let path = |rest: &str| format!("/api/reservations/{id}/{rest}");

    // Extend: every line, keyed; the retry is answered as the first time.
    let extended = keyed(
        &client,
        &path("extend"),
        "3ds-1",
        json!({"ttl_seconds": 1800}),
    )
    .await;
    assert_eq!(extended.status, 200, "{}", extended.text);
    assert_ne!(extended.body["expires_at"], held.body["expires_at"]);
    let again = keyed(
        &client,
        &path("extend"),
        "3ds-1",
        json!({"ttl_seconds": 1800}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["expires_at"], extended.body["expires_at"]);
    let shorter = client
        .post(&path("extend"), Some(WEB), json!({"ttl_seconds": 30}))
        .await;
    assert_eq!(
        (shorter.status, shorter.body["error"].as_str()),
        (422, Some("not_an_extension"))
    );
    for bad in [
        json!({"ttl_seconds": 0}),
        json!({"ttl_seconds": 604_801}),
        json!({}),
    ] {
        let refused = client.post(&path("extend"), Some(WEB), bad).await;
        assert_eq!(refused.status, 422, "{}", refused.text);
    }

    // Ship one tee now: a keyed partial commit, sold once.
    let part = json!({"items": [{"sku": "TEE", "qty": 1}]});
    let sold = keyed(&client, &path("commit"), "ship-1", part.clone()).await;
    assert_eq!(sold.status, 200, "{}", sold.text);
    assert_eq!(items(&sold), vec![("TEE".into(), 1)]);
    keyed(&client, &path("commit"), "ship-1", part).await;
    assert_eq!(figures(&client, "TEE").await, (2, 9));
    // More than held, a line the reservation does not have, a zero: 4xx, nothing sold.
    for (bad, code) in [
        (json!({"items": [{"sku": "TEE", "qty": 3}]}), "exceeds_hold"),
        (
            json!({"items": [{"sku": "CAP", "qty": 1}]}),
            "invalid_request",
        ),
        (
            json!({"items": [{"sku": "TEE", "qty": 0}]}),
            "invalid_quantity",
        ),
        (json!({"items": []}), "invalid_field"),
    ] {
        let refused = client.post(&path("commit"), Some(WEB), bad).await;
        assert_eq!(
            (refused.status, refused.body["error"].as_str()),
            (422, Some(code)),
            "{}",
            refused.text
        );
    }
    assert_eq!(figures(&client, "TEE").await, (2, 9));

    // Amend: the mug line to 1, a cap added; then one that cannot grow changes nothing.
    let amended = client
        .post(
            &path("amend"),
            Some(WEB),
            json!({"items": [{"sku": "MUG", "qty": 1}, {"sku": "CAP", "qty": 2}]}),
        )
        .await;
    assert_eq!(amended.status, 200, "{}", amended.text);
    assert_eq!(
        items(&amended),
        vec![("TEE".into(), 2), ("MUG".into(), 1), ("CAP".into(), 2)]
    );
    let too_many = client
        .post(
            &path("amend"),
            Some(WEB),
            json!({"items": [{"sku": "MUG", "qty": 5}, {"sku": "CAP", "qty": 4}]}),
        )
        .await;
    assert_eq!(
        (too_many.status, too_many.body["error"].as_str()),
        (409, Some("insufficient_stock"))
    );
    assert_eq!(figures(&client, "MUG").await, (1, 10));
    let nothing_left = client
        .post(
            &path("amend"),
            Some(WEB),
            json!({"items": [{"sku": "TEE", "qty": 0}, {"sku": "MUG", "qty": 0}, {"sku": "CAP", "qty": 0}]}),
        )
        .await;
    assert_eq!(nothing_left.status, 422, "{}", nothing_left.text);

    // The rest commits whole, by its id.
    let committed = client.post(&path("commit"), Some(WEB), json!({})).await;
    assert_eq!(committed.status, 200, "{}", committed.text);
    assert_eq!(figures(&client, "TEE").await, (0, 7));
    assert_eq!(figures(&client, "MUG").await, (0, 9));
    assert_eq!(figures(&client, "CAP").await, (0, 1));
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_hold_cannot_be_extended_and_an_assistant_changes_its_order_over_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("TEE", 10).await;
    let held = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "TEE", "qty": 1}], "ttl_seconds": 1}),
        )
        .await;
    let id = held.body["reservation_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let late = client
        .post(
            &format!("/api/reservations/{id}/extend"),
            Some(WEB),
            json!({"ttl_seconds": 600}),
        )
        .await;
    assert_eq!(late.status, 409, "{}", late.text);
    assert!(
        matches!(
            late.body["error"].as_str(),
            Some("lapsed" | "already_resolved")
        ),
        "{}",
        late.text
    );

    let assistant = McpClient::http(&server.base, Some(WEB)).await;
    let created = assistant
        .call(
            "orders.create",
            json!({"items": [{"sku": "TEE", "qty": 4}], "idempotency_key": "chat-1"}),
        )
        .await;
    assert!(!created.is_error, "{:?}", created.texts);
    let id = created.structured["reservation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let amended = assistant
        .call(
            "orders.amend",
            json!({"reservation_id": id, "items": [{"sku": "TEE", "qty": 2}]}),
        )
        .await;
    assert!(!amended.is_error, "{:?}", amended.texts);
    assert_eq!(amended.structured["items"][0]["qty"], 2);
    let extended = assistant
        .call(
            "orders.extend",
            json!({"reservation_id": id, "ttl_seconds": 3600}),
        )
        .await;
    assert!(!extended.is_error, "{:?}", extended.texts);
    let refused = assistant
        .call(
            "orders.confirm",
            json!({"reservation_id": id, "items": [{"sku": "TEE", "qty": 3}]}),
        )
        .await;
    assert!(refused.is_error);
    assert!(
        refused.body_text().contains("exceeds_hold")
            && refused.body_text().contains("Nothing was changed"),
        "{:?}",
        refused.texts
    );
    let confirmed = assistant
        .call(
            "orders.confirm",
            json!({"reservation_id": id, "items": [{"sku": "TEE", "qty": 1}]}),
        )
        .await;
    assert!(!confirmed.is_error, "{:?}", confirmed.texts);
    assert_eq!(figures(&client, "TEE").await, (1, 9));
    server.stop().unwrap();
}

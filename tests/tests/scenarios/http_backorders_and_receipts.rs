//! Backorders and incoming stock over HTTP and MCP: a preorder launch (nothing on hand, a
//! purchase order due), lines held as backordered with the ETA they wait for, statuses
//! `preorder` then `backorder` in the exact read and the read model, an arrival that fills
//! the line first in, first out, and bad input (an ETA in the past, an unknown receipt,
//! a commit of waiting units) each a 4xx with nothing written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use stockade_tests::mcp::McpClient;
use stockade_tests::server::{ADMIN, Client, TestServer, WEB, config};

/// The read model's row of `sku` once it shows `status` (it follows the log by ms).
async fn listed_as(client: &Client, sku: &str, status: &str) -> serde_json::Value {
    for _ in 0..200 {
        let page = client
            .get(&format!("/api/inventory/products?prefix={sku}"), None)
            .await;
        if let Some(item) = page.body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["sku"] == sku))
            && item["status"] == status
        {
            return item.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let page = client
        .get(&format!("/api/inventory/products?prefix={sku}"), None)
        .await;
    panic!("{sku} never listed as {status}: {}", page.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preorder_launch_is_held_backordered_and_filled_as_stock_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("CONSOLE", 0).await;
    let product = "/api/inventory/products/CONSOLE";

    let limit = client
        .post(
            &format!("{product}/backorders"),
            Some(ADMIN),
            json!({"limit": 5}),
        )
        .await;
    assert_eq!(limit.status, 200, "{}", limit.text);
    assert_eq!(limit.body["backorder_limit"], 5);
    let po = client
        .post(
            &format!("{product}/receipts"),
            Some(ADMIN),
            json!({"reference": "PO-1", "qty": 3, "eta": "2099-01-15T09:00:00Z"}),
        )
        .await;
    assert_eq!(po.status, 201, "{}", po.text);
    assert_eq!(po.body["remaining"], 3);
    let read = client.get(product, None).await;
    assert_eq!(read.body["status"], "preorder", "{}", read.text);
    assert_eq!(read.body["incoming"], 3);
    assert_eq!(read.body["next_eta"], "2099-01-15T09:00:00.000Z");
    listed_as(&client, "CONSOLE", "preorder").await;

    let first = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "CONSOLE", "qty": 2}]}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["items"][0]["backordered"], 2);
    assert_eq!(first.body["items"][0]["eta"], "2099-01-15T09:00:00.000Z");
    let second = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "CONSOLE", "qty": 2}]}),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    // The PO brings 3: the second's two wait for it (units 3 and 4), but only one is
    // covered by it, so no ETA can be promised for the last.
    assert_eq!(second.body["items"][0]["backordered"], 2);
    assert!(second.body["items"][0]["eta"].is_null(), "{}", second.text);
    // The limit is reached beyond that.
    let refused = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "CONSOLE", "qty": 2}]}),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.body["error"], "insufficient_stock");

    let first_id = first.body["reservation_id"].as_str().unwrap().to_owned();
    let commit = client
        .post(
            &format!("/api/reservations/{first_id}/commit"),
            Some(WEB),
            json!({}),
        )
        .await;
    assert_eq!(commit.status, 409, "{}", commit.text);
    assert_eq!(commit.body["error"], "backordered");

    // Bad receipts: nothing written.
    let version = client.get(product, None).await.body["version"].clone();
    for (body, code) in [
        (
            json!({"reference": "PO-2", "qty": 1, "eta": "2001-01-01T00:00:00Z"}),
            "invalid_receipt",
        ),
        (
            json!({"reference": "PO-2", "qty": 1, "eta": "next tuesday"}),
            "invalid_field",
        ),
        (
            json!({"reference": "PO-1", "qty": 9, "eta": "2099-01-15T09:00:00Z"}),
            "duplicate_receipt",
        ),
    ] {
        let answer = client
            .post(&format!("{product}/receipts"), Some(ADMIN), body)
            .await;
        assert!(
            (400..500).contains(&answer.status),
            "{}: {}",
            answer.status,
            answer.text
        );
        assert_eq!(answer.body["error"], code, "{}", answer.text);
    }
    let unknown = client
        .post(
            &format!("{product}/receipts/NOPE/receive"),
            Some(ADMIN),
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.body["error"], "unknown_receipt");
    assert_eq!(client.get(product, None).await.body["version"], version);

    // The PO arrives over MCP: the first reservation is filled whole, the second in part.
    let admin = McpClient::http(&server.base, Some(ADMIN)).await;
    let arrived = admin
        .call(
            "inventory.receiveReceipt",
            json!({"sku": "CONSOLE", "reference": "PO-1"}),
        )
        .await;
    assert!(!arrived.is_error, "{:?}", arrived.texts);
    let filled = arrived.structured["filled"].as_array().unwrap().clone();
    assert_eq!(filled.len(), 2, "{filled:?}");
    assert_eq!(filled[0]["reservation_id"], first_id.as_str());
    assert_eq!(
        (filled[0]["qty"].clone(), filled[1]["qty"].clone()),
        (json!(2), json!(1))
    );
    let status = client
        .get(&format!("/api/reservations/{first_id}"), None)
        .await;
    assert!(
        status.body["items"][0]["backordered"].is_null(),
        "{}",
        status.text
    );
    let commit = client
        .post(
            &format!("/api/reservations/{first_id}/commit"),
            Some(WEB),
            json!({}),
        )
        .await;
    assert_eq!(commit.status, 200, "{}", commit.text);
    // One unit on hand covers the second's first; its last still waits: a backorder SKU.
    let read = client.get(product, None).await;
    assert_eq!(
        (
            read.body["on_hand"].clone(),
            read.body["backordered"].clone(),
            read.body["status"].clone()
        ),
        (json!(1), json!(1), json!("backorder")),
        "{}",
        read.text
    );
    listed_as(&client, "CONSOLE", "backorder").await;
}

/// Backorders per location: a limit names its location at a SKU stocked at several (422
/// without one); only that location sells beyond its stock, and its waiting line shows
/// in its own figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_takes_backorders_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    let registered = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "DESK", "pool": "physical", "locations": [
                {"location": "berlin", "on_hand": 1, "priority": 1},
                {"location": "munich", "on_hand": 1, "priority": 2}
            ]}),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let product = "/api/inventory/products/DESK";
    let unnamed = client
        .post(
            &format!("{product}/backorders"),
            Some(ADMIN),
            json!({"limit": 4}),
        )
        .await;
    assert_eq!(unnamed.status, 422, "{}", unnamed.text);
    assert_eq!(unnamed.body["error"], "location_required");
    let set = client
        .post(
            &format!("{product}/backorders"),
            Some(ADMIN),
            json!({"limit": 4, "location": "berlin"}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["location"], "berlin");
    let at = |location: &str, qty: u64| json!({"items": [{"sku": "DESK", "qty": qty, "location": location}]});
    let berlin = client
        .post("/api/reservations", Some(WEB), at("berlin", 3))
        .await;
    assert_eq!(berlin.status, 201, "{}", berlin.text);
    assert_eq!(berlin.body["items"][0]["backordered"], 2, "{}", berlin.text);
    let munich = client
        .post("/api/reservations", Some(WEB), at("munich", 2))
        .await;
    assert_eq!(munich.status, 409, "{}", munich.text);
    let read = client.get(product, None).await;
    assert_eq!(read.body["backordered"], 2, "{}", read.text);
    let berlin_row = &read.body["locations"][0];
    assert_eq!(
        (
            berlin_row["location"].clone(),
            berlin_row["backorder_limit"].clone(),
            berlin_row["backordered"].clone(),
            berlin_row["status"].clone()
        ),
        (json!("berlin"), json!(4), json!(2), json!("backorder")),
        "{}",
        read.text
    );
}

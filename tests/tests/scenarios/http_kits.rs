//! Kits over HTTP and MCP: registered with their components, read with a derived
//! availability and version, ordered as one item that holds the components; an assistant
//! that read a kit is told when a component moves; bad kits are a 4xx, nothing written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stockade_tests::mcp::McpClient;
use stockade_tests::server::{ADMIN, Client, READER, TestServer, WEB, config};

/// MUG (10) and TEA (5) registered, then the kit GIFT of two mugs and a tea, over HTTP.
async fn gift_shop(client: &Client) {
    client.register("MUG", 10).await;
    client.register("TEA", 5).await;
    let kit = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "GIFT", "pool": "kit",
                   "components": [{"sku": "MUG", "qty": 2}, {"sku": "TEA", "qty": 1}]}),
        )
        .await;
    assert_eq!(kit.status, 201, "{}", kit.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kit_is_registered_read_and_ordered_as_its_components() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    gift_shop(&client).await;

    let read = client.get("/api/inventory/products/GIFT", None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["pool"], "kit");
    assert_eq!(read.body["available"], 5);
    assert_eq!(
        read.body["components"],
        json!([{"sku": "MUG", "qty": 2}, {"sku": "TEA", "qty": 1}])
    );
    let version = read.body["version"].as_u64().unwrap();

    let held = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "GIFT", "qty": 2}, {"sku": "MUG", "qty": 1}]}),
        )
        .await;
    assert_eq!(held.status, 201, "{}", held.text);
    let mut items: Vec<(String, u64)> = held.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["sku"].as_str().unwrap().to_owned(),
                i["qty"].as_u64().unwrap(),
            )
        })
        .collect();
    items.sort();
    assert_eq!(items, [("MUG".to_owned(), 5), ("TEA".to_owned(), 2)]);

    let after = client.get("/api/inventory/products/GIFT", None).await;
    assert_eq!(after.body["available"], 2, "min(5 / 2, 3 / 1)");
    assert!(after.body["version"].as_u64().unwrap() > version);

    // Committed by id: the components are sold.
    let id = held.body["reservation_id"].as_str().unwrap();
    let done = client
        .post(
            &format!("/api/reservations/{id}/commit"),
            Some(WEB),
            json!({}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(client.available("MUG").await, Some(5));
    assert_eq!(client.available("TEA").await, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_kits_are_a_4xx_and_nothing_is_registered() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("MUG", 10).await;
    let cases = [
        (
            json!({"sku": "K1", "pool": "kit", "components": [{"sku": "GHOST", "qty": 1}]}),
            "invalid_pool",
            "component GHOST is not registered",
        ),
        (
            json!({"sku": "K2", "pool": "kit", "components": [{"sku": "MUG", "qty": 0}]}),
            "invalid_pool",
            "at least 1",
        ),
        (
            json!({"sku": "K3", "pool": "kit", "components": [{"sku": "K3", "qty": 1}]}),
            "invalid_pool",
            "cannot contain itself",
        ),
        (
            json!({"sku": "K4", "pool": "kit"}),
            "invalid_field",
            "needs its components",
        ),
        (
            json!({"sku": "K5", "pool": "kit", "on_hand": 3, "components": [{"sku": "MUG", "qty": 1}]}),
            "invalid_field",
            "on_hand does not apply",
        ),
        (
            json!({"sku": "K6", "pool": "physical", "on_hand": 3, "components": [{"sku": "MUG", "qty": 1}]}),
            "invalid_field",
            "components does not apply",
        ),
        (
            json!({"sku": "K7", "pool": "kit", "components": [{"sku": "NOT OK", "qty": 1}]}),
            "invalid_sku",
            "",
        ),
    ];
    for (body, code, says) in cases {
        let sku = body["sku"].as_str().unwrap().to_owned();
        let answer = client.post("/api/skus", Some(ADMIN), body).await;
        assert_eq!(answer.status, 422, "{sku}: {}", answer.text);
        assert_eq!(answer.body["error"], code, "{sku}: {}", answer.text);
        assert!(
            answer.body["message"].as_str().unwrap().contains(says),
            "{sku}: {}",
            answer.text
        );
        let read = client
            .get(&format!("/api/inventory/products/{sku}"), None)
            .await;
        assert_eq!(read.status, 404, "{sku} must not exist: {}", read.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_that_read_a_kit_is_told_when_a_component_moves() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    gift_shop(&web).await;

    let mut assistant = McpClient::http(&server.base, Some(READER)).await;
    let read = assistant
        .call("inventory.getStock", json!({"sku": "GIFT"}))
        .await;
    assert!(!read.is_error, "{read:?}");
    assert_eq!(read.structured["available"], 5);
    let quiet = assistant.call("reference.poolTypes", json!({})).await;
    assert!(quiet.system_blocks().is_empty(), "{quiet:?}");

    // A kit's updates are its derived notices: a subscription to it is taken.
    #[allow(deprecated)]
    let subscribed = assistant
        .service
        .subscribe(rmcp::model::SubscribeRequestParams::new(
            "inventory://sku/GIFT",
        ))
        .await;
    assert!(subscribed.is_ok(), "{subscribed:?}");

    // The kit's own stream does not change; a tea sold on the web moves what it read.
    web.checkout("TEA", 1).await;
    // The kit's subscription fires: the tea moved what the kit offers (min(10/2, 4) = 4).
    assert_eq!(
        assistant
            .next_update(std::time::Duration::from_secs(5))
            .await
            .as_deref(),
        Some("inventory://sku/GIFT")
    );
    let told = assistant.call("reference.poolTypes", json!({})).await;
    let blocks = told.system_blocks();
    assert_eq!(blocks.len(), 1, "{told:?}");
    assert!(blocks[0].contains("inventory.TEA"), "{}", blocks[0]);
    assistant.close().await;
}

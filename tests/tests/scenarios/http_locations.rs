//! A SKU at several locations over HTTP: registered with its locations, read per location,
//! reserved where a line asks or where the strategy puts it (the answer says where),
//! counted per location, and moved between locations by a transfer; the read model follows
//! it; bad input is a 4xx that writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use stockade_tests::mcp::McpClient;
use stockade_tests::server::{ADMIN, Client, READER, Sse, TestServer, WEB, config};

const HUB: &str = "/api/inventory/products/HUB";

/// (location, on_hand, reserved, available, incoming) of each location, as read.
fn figures(read: &Value) -> Vec<(String, u64, u64, u64, u64)> {
    read["locations"]
        .as_array()
        .unwrap_or_else(|| panic!("no locations in {read}"))
        .iter()
        .map(|l| {
            let n = |k: &str| l[k].as_u64().unwrap();
            (
                l["location"].as_str().unwrap().to_owned(),
                n("on_hand"),
                n("reserved"),
                n("available"),
                n("incoming"),
            )
        })
        .collect()
}

fn row(
    name: &str,
    on_hand: u64,
    reserved: u64,
    available: u64,
    incoming: u64,
) -> (String, u64, u64, u64, u64) {
    (name.to_owned(), on_hand, reserved, available, incoming)
}

/// A server with HUB registered at `locations` (the registration's JSON array); the
/// directory is returned to outlive the server.
async fn serve_hub(locations: Value) -> (tempfile::TempDir, TestServer, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    let registered = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "HUB", "pool": "physical", "locations": locations}),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    (dir, server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_at_several_locations_is_reserved_counted_and_moved_per_location() {
    let (_dir, _server, client) = serve_hub(json!([
        {"location": "berlin", "on_hand": 3, "priority": 1},
        {"location": "munich", "on_hand": 5, "priority": 2},
        {"location": "hamburg", "on_hand": 8, "safety_stock": 1, "priority": 3}
    ]))
    .await;
    let read = client.get(HUB, Some(READER)).await;
    assert_eq!(read.body["on_hand"], 16);
    assert_eq!(read.body["available"], 15);
    assert_eq!(
        figures(&read.body),
        [
            row("berlin", 3, 0, 3, 0),
            row("munich", 5, 0, 5, 0),
            row("hamburg", 8, 0, 7, 0)
        ]
    );

    // Where each line's units come from is decided by the SKU's writer, and answered.
    let cases = [
        (
            json!({"sku": "HUB", "qty": 2}),
            json!([{"location": "berlin", "qty": 2}]),
        ),
        (
            json!({"sku": "HUB", "qty": 2, "location": "hamburg"}),
            json!([{"location": "hamburg", "qty": 2}]),
        ),
        (
            json!({"sku": "HUB", "qty": 9, "allow_split": true, "strategy": "most_stock"}),
            json!([{"location": "munich", "qty": 5}, {"location": "hamburg", "qty": 4}]),
        ),
    ];
    let mut ids = Vec::new();
    for (item, parts) in cases {
        let held = client
            .post("/api/reservations", Some(WEB), json!({"items": [item]}))
            .await;
        assert_eq!(held.status, 201, "{item}: {}", held.text);
        assert_eq!(held.body["items"][0]["parts"], parts, "{item}");
        ids.push(held.body["reservation_id"].as_str().unwrap().to_owned());
    }
    let read = client.get(HUB, Some(READER)).await;
    assert_eq!(
        figures(&read.body),
        [
            row("berlin", 3, 2, 1, 0),
            row("munich", 5, 5, 0, 0),
            row("hamburg", 8, 6, 1, 0)
        ]
    );

    // Sold from where it was held; released back to where it was held.
    let sold = client
        .post(
            &format!("/api/reservations/{}/commit", ids[0]),
            Some(WEB),
            json!({}),
        )
        .await;
    assert_eq!(sold.status, 200, "{}", sold.text);
    let back = client
        .post(
            &format!("/api/reservations/{}/release", ids[2]),
            Some(WEB),
            json!({}),
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    let read = client.get(HUB, Some(READER)).await;
    assert_eq!(
        figures(&read.body),
        [
            row("berlin", 1, 0, 1, 0),
            row("munich", 5, 0, 5, 0),
            row("hamburg", 8, 2, 5, 0)
        ]
    );

    // A count names its location.
    let counted = client
        .post(
            &format!("{HUB}/adjustments"),
            Some(ADMIN),
            json!({"counted_on_hand": 4, "reason": "cycle count", "location": "munich"}),
        )
        .await;
    assert_eq!(counted.status, 200, "{}", counted.text);
    assert_eq!(counted.body["location"], "munich");
    assert_eq!(
        (
            counted.body["previous"].as_u64(),
            counted.body["current"].as_u64()
        ),
        (Some(5), Some(4))
    );

    // A transfer: out of Hamburg now, into Berlin when received.
    let shipped = client
        .post(
            &format!("{HUB}/transfers"),
            Some(ADMIN),
            json!({"transfer_id": "TR-1", "from": "hamburg", "to": "berlin", "qty": 3}),
        )
        .await;
    assert_eq!(shipped.status, 201, "{}", shipped.text);
    assert_eq!(shipped.body["state"], "in_transit");
    let read = client.get(HUB, Some(READER)).await;
    assert_eq!(read.body["in_transit"], 3);
    assert_eq!(
        figures(&read.body),
        [
            row("berlin", 1, 0, 1, 3),
            row("munich", 4, 0, 4, 0),
            row("hamburg", 5, 2, 2, 0)
        ]
    );
    let received = client
        .post(
            &format!("{HUB}/transfers/TR-1/receive"),
            Some(ADMIN),
            json!({}),
        )
        .await;
    assert_eq!(received.status, 200, "{}", received.text);
    assert_eq!(received.body["state"], "received");
    let read = client.get(HUB, Some(READER)).await;
    assert_eq!(
        figures(&read.body)[0],
        row("berlin", 4, 0, 4, 0),
        "{}",
        read.text
    );
    assert_eq!(read.body["on_hand"], 13);

    // The read model folds every one of those events to the same totals.
    let version = read.body["version"].as_u64().unwrap();
    let mut listed = Value::Null;
    for _ in 0..100 {
        let list = client
            .get("/api/inventory/products?prefix=HUB", Some(READER))
            .await;
        listed = list.body["items"][0].clone();
        if listed["version"].as_u64() == Some(version) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["version"].as_u64(), Some(version), "{listed}");
    assert_eq!(listed["on_hand"], 13);
    assert_eq!(listed["reserved"], 2);
    assert_eq!(listed["available"], read.body["available"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_location_input_is_a_4xx_and_writes_nothing() {
    let (_dir, _server, client) = serve_hub(json!([
        {"location": "berlin", "on_hand": 3},
        {"location": "munich", "on_hand": 5}
    ]))
    .await;
    let version = client.get(HUB, Some(READER)).await.body["version"].clone();

    let writes: [(&str, &str, Value, u16, &str); 8] = [
        (
            "/api/reservations",
            WEB,
            json!({"items": [{"sku": "HUB", "qty": 1, "location": "paris"}]}),
            422,
            "unknown_location",
        ),
        (
            "/api/reservations",
            WEB,
            json!({"items": [{"sku": "HUB", "qty": 1, "location": "no place"}]}),
            422,
            "invalid_field",
        ),
        (
            "/api/reservations",
            WEB,
            json!({"items": [{"sku": "HUB", "qty": 6}]}),
            409,
            "insufficient_stock",
        ),
        (
            "/api/reservations",
            WEB,
            json!({"items": [{"sku": "HUB", "qty": 1, "strategy": "cheapest"}]}),
            422,
            "invalid_body",
        ),
        (
            "/api/inventory/products/HUB/adjustments",
            ADMIN,
            json!({"delta": 1, "reason": "found one"}),
            422,
            "location_required",
        ),
        (
            "/api/inventory/products/HUB/transfers",
            ADMIN,
            json!({"transfer_id": "T1", "from": "berlin", "to": "munich", "qty": 4}),
            409,
            "insufficient_stock",
        ),
        (
            "/api/inventory/products/HUB/transfers",
            ADMIN,
            json!({"transfer_id": "T1", "from": "berlin", "to": "berlin", "qty": 1}),
            422,
            "invalid_transfer",
        ),
        (
            "/api/inventory/products/HUB/transfers/T9/receive",
            ADMIN,
            json!({}),
            404,
            "unknown_transfer",
        ),
    ];
    for (path, token, body, status, code) in writes {
        let answer = client.post(path, Some(token), body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert_eq!(answer.body["error"], code, "{body}: {}", answer.text);
    }
    assert_eq!(
        client.get(HUB, Some(READER)).await.body["version"],
        version,
        "nothing was written"
    );

    let registrations = [
        (
            json!({"sku": "B1", "pool": "physical", "on_hand": 3,
                   "locations": [{"location": "berlin", "on_hand": 3}]}),
            "invalid_field",
        ),
        (
            json!({"sku": "B2", "pool": "physical", "locations": [
                {"location": "berlin", "on_hand": 3}, {"location": "berlin", "on_hand": 1}]}),
            "invalid_pool",
        ),
        (
            json!({"sku": "B3", "pool": "physical", "locations": []}),
            "invalid_field",
        ),
        (
            json!({"sku": "B4", "pool": "digital",
                   "locations": [{"location": "berlin", "on_hand": 3}]}),
            "invalid_field",
        ),
    ];
    for (body, code) in registrations {
        let answer = client.post("/api/skus", Some(ADMIN), body.clone()).await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.text);
        assert_eq!(answer.body["error"], code, "{body}: {}", answer.text);
        let sku = body["sku"].as_str().unwrap();
        let read = client
            .get(&format!("/api/inventory/products/{sku}"), Some(READER))
            .await;
        assert_eq!(read.status, 404, "{sku} was not registered");
    }
}

/// The same over MCP: an assistant sees each location in `inventory.getStock`, orders
/// from a named location and is told where its units are, and an admin moves stock with
/// `inventory.transfer` and `inventory.receiveTransfer`; a reader may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_over_mcp_read_order_and_transfer() {
    let (_dir, server, _client) = serve_hub(json!([
        {"location": "berlin", "on_hand": 2, "priority": 1},
        {"location": "munich", "on_hand": 5, "priority": 2}
    ]))
    .await;

    let shop = McpClient::http(&server.base, Some(WEB)).await;
    let read = shop.call("inventory.getStock", json!({"sku": "HUB"})).await;
    assert!(!read.is_error, "{read:?}");
    assert_eq!(read.structured["locations"][1]["location"], "munich");
    assert_eq!(read.structured["locations"][1]["available"], 5);
    let held = shop
        .call(
            "orders.create",
            json!({"items": [{"sku": "HUB", "qty": 3, "location": "munich"}]}),
        )
        .await;
    assert!(!held.is_error, "{held:?}");
    assert_eq!(
        held.structured["items"][0]["parts"],
        json!([{"location": "munich", "qty": 3}])
    );
    let elsewhere = shop
        .call(
            "orders.create",
            json!({"items": [{"sku": "HUB", "qty": 1, "location": "paris"}]}),
        )
        .await;
    assert!(elsewhere.is_error, "{elsewhere:?}");
    assert!(
        elsewhere.body_text().contains("unknown_location"),
        "{elsewhere:?}"
    );

    let reader = McpClient::http(&server.base, Some(READER)).await;
    let refused = reader
        .call(
            "inventory.transfer",
            json!({"sku": "HUB", "transfer_id": "T1", "from": "munich", "to": "berlin", "qty": 1}),
        )
        .await;
    assert!(refused.is_error, "{refused:?}");
    assert!(refused.body_text().contains("admin"), "{refused:?}");

    let admin = McpClient::http(&server.base, Some(ADMIN)).await;
    let beyond = admin
        .call(
            "inventory.transfer",
            json!({"sku": "HUB", "transfer_id": "T1", "from": "munich", "to": "berlin", "qty": 3}),
        )
        .await;
    assert!(beyond.is_error, "{beyond:?}");
    assert!(
        beyond.body_text().contains("insufficient_stock"),
        "{beyond:?}"
    );
    let shipped = admin
        .call(
            "inventory.transfer",
            json!({"sku": "HUB", "transfer_id": "T1", "from": "munich", "to": "berlin", "qty": 2}),
        )
        .await;
    assert!(!shipped.is_error, "{shipped:?}");
    assert_eq!(shipped.structured["state"], "in_transit");
    let received = admin
        .call(
            "inventory.receiveTransfer",
            json!({"sku": "HUB", "transfer_id": "T1"}),
        )
        .await;
    assert!(!received.is_error, "{received:?}");
    assert_eq!(received.structured["state"], "received");
    let again = admin
        .call(
            "inventory.receiveTransfer",
            json!({"sku": "HUB", "transfer_id": "T1"}),
        )
        .await;
    assert!(again.is_error, "{again:?}");
    assert!(again.body_text().contains("unknown_transfer"), "{again:?}");

    let read = admin
        .call("inventory.getStock", json!({"sku": "HUB"}))
        .await;
    let on_hand: Vec<u64> = read.structured["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["on_hand"].as_u64().unwrap())
        .collect();
    assert_eq!(on_hand, [4, 3], "{read:?}");
    // The shop's read of HUB went stale with the transfer: it is told so.
    let told = shop.call("reference.poolTypes", json!({})).await;
    assert!(
        told.system_blocks().iter().any(|b| b.contains("HUB")),
        "{told:?}"
    );
}

/// A storefront that shows one store: it lists what that location stocks, and its stream
/// carries only the notices that move that location, showing only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storefront_lists_and_follows_one_location() {
    let (_dir, server, client) = serve_hub(json!([
        {"location": "berlin", "on_hand": 4, "priority": 1},
        {"location": "munich", "on_hand": 5, "priority": 2}
    ]))
    .await;
    assert_eq!(client.register("PLAIN", 5).await.status, 201);

    let mut berlin = Sse::open(&server, "/api/events?location=berlin", &[]).await;
    let item = |location: &str| json!({"items": [{"sku": "HUB", "qty": 1, "location": location}]});
    for location in ["munich", "berlin"] {
        let held = client
            .post("/api/reservations", Some(WEB), item(location))
            .await;
        assert_eq!(held.status, 201, "{}", held.text);
    }
    client.checkout("PLAIN", 1).await;
    // The Munich hold and the plain SKU's sale are not Berlin's: the first notice is the
    // Berlin hold, naming Berlin alone.
    let notice = berlin.notice().await;
    assert_eq!(notice["sku"], "HUB", "{notice}");
    assert_eq!(notice["cause"]["command"], "reserve", "{notice}");
    let locations = notice["locations"].as_array().unwrap();
    assert_eq!(locations.len(), 1, "{notice}");
    assert_eq!(locations[0]["location"], "berlin");
    assert_eq!(locations[0]["previous"]["available"], 4);
    assert_eq!(locations[0]["current"]["available"], 3);
    assert_eq!(locations[0]["status"], "low_stock");
    assert!(
        berlin.next(Duration::from_millis(300)).await.is_none(),
        "nothing else moved Berlin"
    );

    // The list of what Berlin stocks: HUB, with its figures there.
    let listed = client
        .get("/api/inventory/products?location=berlin", Some(READER))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", listed.text);
    assert_eq!(items[0]["sku"], "HUB");
    assert_eq!(items[0]["available"], 7);
    assert_eq!(items[0]["locations"][0]["location"], "berlin");
    assert_eq!(items[0]["locations"][0]["available"], 3);
    assert_eq!(items[0]["locations"][0]["status"], "low_stock");
    let nowhere = client
        .get("/api/inventory/products?location=rome", Some(READER))
        .await;
    assert_eq!(nowhere.body["items"], json!([]), "{}", nowhere.text);
    for bad in [
        "/api/inventory/products?location=not%20ok",
        "/api/events?location=not%20ok",
    ] {
        let refused = client.get(bad, Some(READER)).await;
        assert_eq!(refused.status, 422, "{bad}: {}", refused.text);
    }
}

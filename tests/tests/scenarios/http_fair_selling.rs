//! Fair selling over HTTP and MCP: an admin sets a purchase limit and a waitlist hold; a
//! customer's second order is refused with what remains; customers line up on a sold-out
//! SKU through the web and an assistant; freed stock becomes the first waiter's hold,
//! pushed as a `waitlist_hold` notice on SSE (with the hold id the join promised, on the
//! waiter's channel) and told to the assistant's MCP session; bad input (a limit of 0, a
//! malformed customer id, joining twice, leaving twice) is each a clear 4xx with nothing
//! written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use stockade_tests::PATIENCE;
use stockade_tests::mcp::McpClient;
use stockade_tests::server::{ADMIN, ASSISTANT, Answer, Client, Sse, TestServer, WEB, config};

async fn put(client: &Client, path: &str, token: &str, body: serde_json::Value) -> Answer {
    let bytes = serde_json::to_vec(&body).unwrap();
    client
        .send("PUT", path, Some(token), &[], Some(bytes))
        .await
}

async fn delete(client: &Client, path: &str, token: &str) -> Answer {
    client.send("DELETE", path, Some(token), &[], None).await
}

fn order(sku: &str, qty: u64, customer: &str) -> serde_json::Value {
    json!({"items": [{"sku": sku, "qty": qty}], "customer": customer})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_the_waitlist_over_http_sse_and_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("DROP", 2).await;
    let product = "/api/inventory/products/DROP";
    let rules = format!("{product}/fair-selling");

    // Bad rules, each a 4xx, nothing written.
    let version = client.get(product, None).await.body["version"].clone();
    for (body, status, code) in [
        (
            json!({"per_customer": 0, "window_seconds": 60}),
            422,
            "invalid_field",
        ),
        (json!({"per_customer": 2}), 422, "invalid_field"),
        (json!({"window_seconds": 60}), 422, "invalid_field"),
        (
            json!({"per_customer": 2, "window_seconds": 0}),
            422,
            "invalid_rules",
        ),
        (json!({"waitlist_hold_seconds": 0}), 422, "invalid_rules"),
        (
            json!({"per_customer": "two", "window_seconds": 60}),
            422,
            "invalid_body",
        ),
        (
            json!({"per_customer": 2, "window_seconds": 60, "extra": 1}),
            422,
            "invalid_body",
        ),
    ] {
        let answer = put(&client, &rules, ADMIN, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert_eq!(answer.body["error"], code, "{body}: {}", answer.text);
    }
    // Only admins set rules.
    let forbidden = put(
        &client,
        &rules,
        WEB,
        json!({"per_customer": 1, "window_seconds": 60}),
    )
    .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    assert_eq!(client.get(product, None).await.body["version"], version);

    let set = put(
        &client,
        &rules,
        ADMIN,
        json!({"per_customer": 1, "window_seconds": 86400, "waitlist_hold_seconds": 300}),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["purchase_limit"]["per_customer"], 1);
    assert_eq!(set.body["purchase_limit"]["window_seconds"], 86400);
    assert_eq!(set.body["waitlist_hold_seconds"], 300);
    let read = client.get(product, None).await;
    assert_eq!(
        read.body["purchase_limit"]["per_customer"], 1,
        "{}",
        read.text
    );

    // Orders: the customer is required and well-formed; the limit counts across orders.
    let anonymous = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "DROP", "qty": 1}]}),
        )
        .await;
    assert_eq!(anonymous.status, 422, "{}", anonymous.text);
    assert_eq!(anonymous.body["error"], "customer_required");
    let malformed = client
        .post(
            "/api/reservations",
            Some(WEB),
            order("DROP", 1, "ann smith!"),
        )
        .await;
    assert_eq!(malformed.status, 422, "{}", malformed.text);
    assert_eq!(malformed.body["field"], "customer");
    let ann = client
        .post(
            "/api/reservations",
            Some(WEB),
            order("DROP", 1, "ann@example.com"),
        )
        .await;
    assert_eq!(ann.status, 201, "{}", ann.text);
    let again = client
        .post(
            "/api/reservations",
            Some(WEB),
            order("DROP", 1, "ann@example.com"),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["error"], "purchase_limit");
    assert_eq!(again.body["remaining"], 0);
    assert_eq!(again.body["limit"], 1);
    let bob = client
        .post("/api/reservations", Some(WEB), order("DROP", 1, "bob"))
        .await;
    assert_eq!(bob.status, 201, "{}", bob.text);

    // Sold out: customers line up, one through an assistant, one through the web.
    let mut sse = Sse::open(&server, "/api/events?sku=DROP", &[]).await;
    let assistant = McpClient::http(&server.base, Some(ASSISTANT)).await;
    let cat = assistant
        .call(
            "inventory.joinWaitlist",
            json!({"sku": "DROP", "customer": "cat", "qty": 1}),
        )
        .await;
    assert!(!cat.is_error, "{:?}", cat.texts);
    assert_eq!(cat.structured["position"], 1);
    let cat_hold = cat.structured["hold_id"].as_str().unwrap().to_owned();
    let waitlist = format!("{product}/waitlist");
    let dan = client
        .post(&waitlist, Some(WEB), json!({"customer": "dan", "qty": 1}))
        .await;
    assert_eq!(dan.status, 201, "{}", dan.text);
    assert_eq!(dan.body["position"], 2);
    assert_eq!(dan.body["units_ahead"], 1);
    for (body, status, code) in [
        (json!({"customer": "dan", "qty": 1}), 409, "already_waiting"),
        (
            json!({"customer": "eve", "qty": 0}),
            422,
            "invalid_quantity",
        ),
        (json!({"customer": "", "qty": 1}), 422, "invalid_field"),
        (json!({"customer": "eve", "qty": 2}), 409, "purchase_limit"),
        (json!({"qty": 1}), 422, "invalid_body"),
    ] {
        let answer = client.post(&waitlist, Some(WEB), body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert_eq!(answer.body["error"], code, "{body}: {}", answer.text);
    }
    let place = client.get(&format!("{waitlist}/dan"), Some(WEB)).await;
    assert_eq!(place.status, 200, "{}", place.text);
    assert_eq!(
        (
            place.body["position"].clone(),
            place.body["remaining"].clone()
        ),
        (json!(2), json!(1))
    );
    let position = assistant
        .call(
            "inventory.waitlistPosition",
            json!({"sku": "DROP", "customer": "cat"}),
        )
        .await;
    assert_eq!(position.structured["position"], 1, "{:?}", position.texts);
    // A newcomer queues behind them.
    let late = client
        .post("/api/reservations", Some(WEB), order("DROP", 1, "eve"))
        .await;
    assert_eq!(late.status, 409, "{}", late.text);
    assert_eq!(late.body["error"], "waitlisted");
    assert_eq!(late.body["waiting"], 2);
    // An admin sees the line.
    let line = client.get(&rules, Some(ADMIN)).await;
    assert_eq!(line.body["waiting"], 2, "{}", line.text);
    assert_eq!(line.body["places"][0]["customer"], "cat");

    // Ann gives her unit back: it becomes cat's hold, told on SSE and to her session.
    let ann_id = ann.body["reservation_id"].as_str().unwrap();
    let released = client
        .post(
            &format!("/api/reservations/{ann_id}/release"),
            Some(WEB),
            json!({}),
        )
        .await;
    assert_eq!(released.status, 200, "{}", released.text);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let served = loop {
        let notice = sse.notice().await;
        if notice["cause"]["command"] == "waitlist_hold" {
            break notice;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no waitlist_hold notice"
        );
    };
    assert_eq!(
        served["cause"]["reservation_id"],
        cat_hold.as_str(),
        "{served}"
    );
    assert_eq!(served["cause"]["channel"], "assistant", "{served}");
    let held = client
        .get(&format!("/api/reservations/{cat_hold}"), Some(WEB))
        .await;
    assert_eq!(held.status, 200, "{}", held.text);
    assert_eq!(held.body["status"], "held", "{}", held.text);
    // The assistant's next result names the hold.
    // Within PATIENCE: the hold's notice reaches the session once the projector has it.
    let mut told = None;
    for _ in 0..200 {
        let next = assistant
            .call("inventory.getStock", json!({"sku": "DROP"}))
            .await;
        if let Some(block) = next
            .system_blocks()
            .into_iter()
            .find(|b| b.contains("Waitlist hold"))
        {
            told = Some(block.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let told = told.expect("the assistant is told of the waitlist hold");
    assert!(told.contains(&cat_hold), "{told}");
    // Cat is served: her place is gone; dan is first now.
    let gone = assistant
        .call(
            "inventory.waitlistPosition",
            json!({"sku": "DROP", "customer": "cat"}),
        )
        .await;
    assert!(gone.is_error, "{:?}", gone.texts);
    let place = client.get(&format!("{waitlist}/dan"), Some(WEB)).await;
    assert_eq!(place.body["position"], 1, "{}", place.text);

    // Dan leaves; leaving twice is a 404.
    let left = delete(&client, &format!("{waitlist}/dan"), WEB).await;
    assert_eq!(left.status, 200, "{}", left.text);
    let twice = delete(&client, &format!("{waitlist}/dan"), WEB).await;
    assert_eq!(twice.status, 404, "{}", twice.text);
    assert_eq!(twice.body["error"], "not_waiting");
    // The line is empty: new orders are taken again (none is left to take, though).
    let eve = client
        .post("/api/reservations", Some(WEB), order("DROP", 1, "eve"))
        .await;
    assert_eq!(eve.status, 409, "{}", eve.text);
    assert_eq!(eve.body["error"], "insufficient_stock");
    assistant.close().await;
}

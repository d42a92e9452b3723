//! A reservation made over HTTP with a short TTL stops counting the moment it lapses, is
//! written as expired by the engine's timer, and cannot be committed afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use stockade_tests::server::{Client, Sse, TestServer, WEB, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_with_a_one_second_ttl_lapses_and_its_stock_returns() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("TTL-1", 3).await;
    let mut events = Sse::open(&server, "/api/events?sku=TTL-1", &[]).await;
    let held = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "TTL-1", "qty": 3}], "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(held.status, 201, "{}", held.text);
    let id = held.body["reservation_id"].as_str().unwrap().to_owned();
    assert_eq!(client.available("TTL-1").await, Some(0));
    assert_eq!(
        client.reserve("TTL-1", 1).await.status,
        409,
        "sold out while held"
    );

    // The reserve notice (after the registration's, if the projector had not published
    // it yet when the stream opened), then, about a second later, the expiry notice.
    let mut reserved = events.notice().await;
    if reserved["cause"]["command"] == "register" {
        reserved = events.notice().await;
    }
    assert_eq!(reserved["cause"]["command"], "reserve");
    assert_eq!(reserved["current"]["available"], 0);
    let expired = events.notice().await;
    assert_eq!(expired["cause"]["command"], "expire");
    assert_eq!(expired["current"]["available"], 3);
    assert_eq!(expired["previous_status"], "out_of_stock");

    assert_eq!(client.available("TTL-1").await, Some(3));
    let status = client.get(&format!("/api/reservations/{id}"), None).await;
    assert_eq!(status.body["status"], "expired", "{}", status.text);
    let late = client
        .send(
            "POST",
            &format!("/api/reservations/{id}/commit"),
            Some(WEB),
            &[],
            None,
        )
        .await;
    assert_eq!(late.status, 409, "{}", late.text);
    assert!(
        ["already_resolved", "lapsed"].contains(&late.body["error"].as_str().unwrap()),
        "{}",
        late.text
    );
    // And the stock can be sold again.
    assert_eq!(client.reserve("TTL-1", 3).await.status, 201);
    drop(events);
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.stop().unwrap();
}

//! Overload is answered quickly instead of queued without bound: past the bound on
//! requests in flight, 503 at once; past the bound on live streams, 503; past a SKU's
//! mailbox, 429. Each with `Retry-After` and a JSON error, and the server serves on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use stockade_tests::server::{Client, Sse, TestServer, WEB, config};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_bounds_are_shed_with_503_and_429() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_concurrent_requests = 1;
    cfg.limits.max_streams = 1;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("SHED-1", 1000).await;

    // One request in flight: its body is still arriving.
    let mut slow = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /api/reservations HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {WEB}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"items\":",
        server.addr()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shed = client.reserve("SHED-1", 1).await;
    assert_eq!(shed.status, 503, "{}", shed.text);
    assert_eq!(shed.body["error"], "overloaded");
    assert_eq!(shed.headers["retry-after"], "1");
    // Once it is gone, requests are admitted again.
    drop(slow);
    let mut admitted = 0;
    for _ in 0..50 {
        if client.reserve("SHED-1", 1).await.status == 201 {
            admitted += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(admitted, 1, "the slot is given back");

    // Streams have their own bound, and do not take request slots.
    let _open = Sse::open(&server, "/api/events", &[]).await;
    assert_eq!(client.reserve("SHED-1", 1).await.status, 201);
    let refused = client.get("/api/events", None).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.body["error"], "too_many_streams");
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_with_a_full_mailbox_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.engine.mailbox_capacity = 4;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("SHED-2", 100_000).await;
    let answers = futures::future::join_all((0..300).map(|_| {
        let client = client.clone();
        async move { client.reserve("SHED-2", 1).await }
    }))
    .await;
    let held = answers.iter().filter(|a| a.status == 201).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(held + busy.len(), answers.len(), "only 201 or 429");
    assert!(!busy.is_empty(), "300 at once overflow a mailbox of 4");
    assert_eq!(busy[0].body["error"], "overloaded");
    assert_eq!(busy[0].headers["retry-after"], "1");
    // Exactly the acknowledged holds were taken.
    assert_eq!(
        client.available("SHED-2").await,
        Some(100_000 - held as u64)
    );
    server.stop().unwrap();
}

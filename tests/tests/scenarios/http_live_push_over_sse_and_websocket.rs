//! Live push: a change reaches SSE and WebSocket readers as a notice; an SSE reader that
//! reconnects with `Last-Event-ID` gets exactly what it missed; one too far behind gets
//! `resync`; filters keep other SKUs out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use stockade_tests::server::{ADMIN, Client, Sse, TestServer, Ws, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_reach_sse_and_websocket_readers_and_resume_where_they_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.stream.replay_max = 5;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);

    let mut sse = Sse::open(&server, "/api/events", &[]).await;
    let hello = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["last_seq"], 0);
    let mut ws = Ws::open(&server, "/api/ws?sku=PUSH-A").await.unwrap();
    assert_eq!(
        ws.next(Duration::from_secs(5)).await.unwrap()["type"],
        "hello"
    );

    client.register("PUSH-A", 4).await;
    client.register("PUSH-B", 4).await;
    let held = client.reserve("PUSH-A", 3).await;
    assert_eq!(held.status, 201);

    // SSE: every SKU, in order, with the seq as the event id.
    let registered_a = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(registered_a.event, "notice");
    assert_eq!(registered_a.id.as_deref(), Some("1"));
    assert_eq!(registered_a.data["sku"], "PUSH-A");
    assert_eq!(registered_a.data["cause"]["command"], "register");
    assert_eq!(sse.notice().await["sku"], "PUSH-B");
    let reserved = sse.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(reserved.id.as_deref(), Some("3"));
    let n = &reserved.data;
    assert_eq!(n["type"], "notice");
    assert_eq!(n["version"], 2);
    assert_eq!(n["previous"]["available"], 4);
    assert_eq!(n["current"]["available"], 1);
    assert_eq!(n["status"], "low_stock");
    assert_eq!(n["cause"]["channel"], "web");
    assert_eq!(n["scopes"][0], "inventory.PUSH-A");
    assert!(n["committed_at"].as_str().unwrap().ends_with('Z'));
    assert!(n["event_id"].is_string());

    // WebSocket, filtered to PUSH-A: the same two notices of A, none of B.
    let w1 = ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (w1["type"].as_str(), w1["seq"].as_u64()),
        (Some("notice"), Some(1))
    );
    let w2 = ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(w2["seq"], 3);
    assert_eq!(w2, *n, "WebSocket and SSE carry the same message");

    // A reader that was away since seq 1 resumes with exactly what it missed.
    let mut resumed = Sse::open(&server, "/api/events", &[("last-event-id", "1")]).await;
    assert_eq!(
        resumed.next(Duration::from_secs(5)).await.unwrap().event,
        "hello"
    );
    let seqs = [
        resumed.notice().await["seq"].as_u64(),
        resumed.notice().await["seq"].as_u64(),
    ];
    assert_eq!(seqs, [Some(2), Some(3)]);
    // ...and then goes on live.
    client.reserve("PUSH-B", 1).await;
    assert_eq!(resumed.notice().await["seq"], 4);
    assert_eq!(sse.notice().await["seq"], 4);

    // Further behind than the replay allows (5): resync, and the stream ends.
    for _ in 0..5 {
        let adjusted = client
            .post(
                "/api/inventory/products/PUSH-B/adjustments",
                Some(ADMIN),
                json!({"delta": 1, "reason": "received"}),
            )
            .await;
        assert_eq!(adjusted.status, 200, "{}", adjusted.text);
    }
    assert_eq!(sse.notice().await["seq"], 5);
    for _ in 6..=9 {
        sse.notice().await;
    }
    let mut stale = Sse::open(&server, "/api/events", &[("last-event-id", "2")]).await;
    let resync = stale.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(resync.event, "resync", "{resync:?}");
    assert_eq!(resync.data["last_seq"], 2);
    assert_eq!(
        stale.next(Duration::from_secs(2)).await,
        None,
        "the stream ends"
    );
    // Within the replay window it replays; ahead of the server it resyncs.
    let mut near = Sse::open(&server, "/api/events", &[("last-event-id", "5")]).await;
    near.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(near.notice().await["seq"], 6);
    let mut ahead = Sse::open(&server, "/api/events", &[("last-event-id", "99")]).await;
    assert_eq!(
        ahead.next(Duration::from_secs(5)).await.unwrap().event,
        "resync"
    );
    // The WebSocket resumes with ?after= (the same window applies), and the first reader,
    // filtered to A, saw none of B's notices meanwhile.
    let mut ws_again = Ws::open(&server, "/api/ws?after=5&sku=PUSH-B")
        .await
        .unwrap();
    assert_eq!(
        ws_again.next(Duration::from_secs(5)).await.unwrap()["type"],
        "hello"
    );
    assert_eq!(
        ws_again.next(Duration::from_secs(5)).await.unwrap()["seq"],
        6
    );
    let mut ws_stale = Ws::open(&server, "/api/ws?after=0").await.unwrap();
    assert_eq!(
        ws_stale.next(Duration::from_secs(5)).await.unwrap()["type"],
        "resync"
    );
    assert_eq!(
        ws.next(Duration::from_millis(300)).await,
        None,
        "nothing for A"
    );
    server.stop().unwrap();
}

/// The review's attack: an unauthenticated client sends one huge text frame. The server
/// has nothing to read from clients; it closes the connection from the frame's header,
/// without buffering the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_declaring_a_huge_frame_is_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let mut ws = Ws::open(&server, "/api/ws").await.unwrap();
    assert_eq!(
        ws.next(Duration::from_secs(5)).await.unwrap()["type"],
        "hello"
    );
    // A masked text frame announcing 64 MiB, then the first 64 KiB of it.
    let mut frame = vec![0x81, 0xff];
    frame.extend_from_slice(&(64u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[7, 7, 7, 7]);
    ws.send_raw(&frame).await.unwrap();
    // Writing may fail once the server has closed; either way nothing more arrives.
    let _ = ws.send_raw(&vec![b'x'; 64 * 1024]).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while ws.next(Duration::from_secs(30)).await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection stays open, buffering the frame"
    );
    // And the connection is cut, not drained: the client cannot go on sending.
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    while sent < 256 {
        match tokio::time::timeout(Duration::from_secs(5), ws.send_raw(&chunk)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    assert!(
        sent < 256,
        "the server read and discarded {sent} MiB after closing"
    );
    // The server still serves everyone else.
    let client = Client::new(&server);
    client.register("AFTER-WS", 1).await;
}

/// The keys of a JSON value, recursively (`a`, `a.b`, ...), array items not included.
fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let path = format!("{prefix}{k}");
            out.push(path.clone());
            key_paths(v, &format!("{path}."), out);
        }
    }
}

/// The newcomer's finding: the page showed one notice shape, the streams sent another, the
/// dead-letter listing a third. Now the page's example, SSE and WebSocket carry the same
/// keys (the streams add their envelope's `type`), and SSE and WebSocket the same values.
/// (`dlq list --format json` prints the same type, `NoticeOut`: see the operator tools.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_has_one_shape_on_every_channel() {
    let guide = include_str!("../../../docs/notices.md");
    let start = guide.find("## The notice").unwrap();
    let block = start + guide[start..].find("```json\n").unwrap() + "```json\n".len();
    let end = block + guide[block..].find("```").unwrap();
    let example: serde_json::Value = serde_json::from_str(&guide[block..end]).unwrap();
    let mut documented = Vec::new();
    key_paths(&example, "", &mut documented);
    documented.sort();

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    let mut sse = Sse::open(&server, "/api/events", &[]).await;
    assert_eq!(
        sse.next(Duration::from_secs(5)).await.unwrap().event,
        "hello"
    );
    let mut ws = Ws::open(&server, "/api/ws").await.unwrap();
    assert_eq!(
        ws.next(Duration::from_secs(5)).await.unwrap()["type"],
        "hello"
    );
    client.register("SHAPE-1", 4).await;
    let held = client
        .post(
            "/api/reservations",
            Some(stockade_tests::server::WEB),
            serde_json::json!({"items": [{"sku": "SHAPE-1", "qty": 1}], "order_id": "order-77"}),
        )
        .await;
    assert_eq!(held.status, 201);

    let _registered = sse.notice().await;
    let mut over_sse = sse.notice().await;
    assert_eq!(over_sse["type"], "notice");
    over_sse.as_object_mut().unwrap().remove("type");
    let _registered = ws.next(Duration::from_secs(5)).await.unwrap();
    let mut over_ws = ws.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(over_ws["type"], "notice");
    over_ws.as_object_mut().unwrap().remove("type");
    assert_eq!(over_sse, over_ws, "SSE and WebSocket send the same notice");
    let mut sent = Vec::new();
    key_paths(&over_sse, "", &mut sent);
    sent.sort();
    assert_eq!(sent, documented, "the notice has the documented keys");
    assert!(
        over_sse["committed_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{over_sse}"
    );
    server.stop().unwrap();
}

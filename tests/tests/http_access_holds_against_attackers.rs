//! Access under attack, over real sockets on loopback: what the review's black-box probe
//! tried against `stockade serve`, each as a test that failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stockade_server::config::ResolveSetting;
use stockade_tests::server::{ADMIN, Answer, Client, POS, TestServer, WEB, config};

async fn keyed_reserve(client: &Client, sku: &str, key: &str) -> Answer {
    client
        .send(
            "POST",
            "/api/reservations",
            Some(WEB),
            &[("idempotency-key", key)],
            Some(
                json!({"items": [{"sku": sku, "qty": 1}]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
}

/// A keyed reservation's id was a hash of channel and key over a constant: any two
/// installations gave `web` + `cart-1` the same id, so anyone could compute a shop's ids.
/// Now it is derived with the installation's secret: two servers differ, one server
/// keeps its ids across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_reservation_ids_cannot_be_computed_from_the_key() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ids = Vec::new();
    for dir in [&one, &two] {
        let server = TestServer::start(config(dir.path()));
        let client = Client::new(&server);
        client.register("SECRET-1", 5).await;
        let held = keyed_reserve(&client, "SECRET-1", "cart-1").await;
        assert_eq!(held.status, 201, "{}", held.text);
        ids.push(held.body["reservation_id"].as_str().unwrap().to_owned());
        server.stop().unwrap();
    }
    assert_ne!(ids[0], ids[1], "two installations derive the same id");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(one.path().join("stockade.secret")) & 0o777, 0o600);
        assert_eq!(mode(one.path().join("stockade.db")) & 0o777, 0o600);
    }

    // The same installation, restarted: the retry names the same reservation.
    let server = TestServer::start(config(one.path()));
    let client = Client::new(&server);
    let again = keyed_reserve(&client, "SECRET-1", "cart-1").await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.body["reservation_id"], ids[0].as_str());
    server.stop().unwrap();
}

/// With `resolve = "owner"`, only the channel that made a reservation (or one named as
/// acting for it) may commit or release it; the admin and the default policy are shown
/// for contrast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_owner_resolution_another_channel_cannot_release_a_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.auth.resolve = ResolveSetting::Owner;
    cfg.auth
        .resolve_for
        .insert("assistant".into(), vec!["web".into()]);
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("OWNED", 5).await;
    let held = client.reserve("OWNED", 1).await;
    assert_eq!(held.status, 201, "{}", held.text);
    let id = held.body["reservation_id"].as_str().unwrap().to_owned();

    let release = format!("/api/reservations/{id}/release");
    let by_pos = client.post(&release, Some(POS), json!({})).await;
    assert_eq!(
        (by_pos.status, by_pos.body["error"].as_str()),
        (403, Some("not_owner")),
        "{}",
        by_pos.text
    );
    let status = client.get(&format!("/api/reservations/{id}"), None).await;
    assert_eq!(status.body["status"], "held", "nothing was written");
    // The assistant acts for web.
    let by_delegate = client
        .post(&release, Some(stockade_tests::server::ASSISTANT), json!({}))
        .await;
    assert_eq!(by_delegate.status, 200, "{}", by_delegate.text);

    // The owner itself may.
    let held = client.reserve("OWNED", 1).await;
    let id = held.body["reservation_id"].as_str().unwrap().to_owned();
    let by_web = client
        .post(
            &format!("/api/reservations/{id}/commit"),
            Some(WEB),
            json!({}),
        )
        .await;
    assert_eq!(by_web.status, 200, "{}", by_web.text);
    // Admin tokens register and adjust; they do not resolve reservations at all.
    let by_admin = client
        .post(
            &format!("/api/reservations/{id}/commit"),
            Some(ADMIN),
            json!({}),
        )
        .await;
    assert_eq!(by_admin.status, 403, "{}", by_admin.text);
    server.stop().unwrap();
}

/// The review's slow-body attack: anonymous clients send `POST /mcp` bodies a byte at a
/// time. They used to hold the global request slots for 30 s, so health checks, reads and
/// authenticated writes all got 503. Anonymous bodies now have a budget of their own and
/// a 5 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_anonymous_bodies_cannot_starve_anyone_else() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_concurrent_requests = 16;
    cfg.limits.max_anonymous_bodies = 4;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("BUSY", 5).await;

    let mut trickles = Vec::new();
    for _ in 0..25 {
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{{",
            server.addr()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        trickles.push(stream);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Everyone else is served meanwhile.
    assert_eq!(client.get("/healthz", None).await.status, 200);
    assert_eq!(
        client
            .get("/api/inventory/products/BUSY", Some(WEB))
            .await
            .status,
        200
    );
    assert_eq!(client.reserve("BUSY", 1).await.status, 201);

    // The trickles are answered: 503 past their budget at once, 408 at the deadline.
    let mut statuses = Vec::new();
    for mut stream in trickles {
        let mut answer = vec![0u8; 64];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(15), stream.read(&mut answer))
                .await;
        let n = read.expect("answered before 15 s").unwrap_or(0);
        statuses.push(
            String::from_utf8_lossy(&answer[..n])
                .chars()
                .skip(9)
                .take(3)
                .collect::<String>(),
        );
    }
    assert!(
        statuses.iter().all(|s| s == "503" || s == "408"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "408").count(),
        4,
        "{statuses:?}"
    );
    server.stop().unwrap();
}

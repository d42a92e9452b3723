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

/// One raw HTTP/1.1 request; the status line and the whole answer.
async fn raw(server: &TestServer, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The review's smaller findings, each as it was probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_hosts_and_echoes_are_handled_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("STRICT", 5).await;
    let addr = server.addr();

    // A header sent twice is refused, so a proxy and this server cannot disagree.
    let twice = |name: &str, a: &str, b: &str| {
        let body = r#"{"items":[{"sku":"STRICT","qty":1}]}"#;
        format!(
            "POST /api/reservations HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nAuthorization: Bearer {WEB}\r\n{name}: {a}\r\n\
             {name}: {b}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let (status, text) = raw(&server, twice("Idempotency-Key", "a", "b")).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("duplicate_header"), "{text}");
    let doubled_auth = format!(
        "GET /api/inventory/products/STRICT HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {WEB}\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
    );
    let (status, text) = raw(&server, doubled_auth).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        client
            .get("/api/inventory/products/STRICT", None)
            .await
            .body["reserved"],
        0,
        "nothing was reserved"
    );

    // Host is checked on every route when listening on loopback, and parsed strictly.
    for host in ["evil.com", "evil.com@127.0.0.1", "127.0.0.1/x"] {
        for path in ["/healthz", "/api/inventory/products", "/mcp"] {
            let (status, text) = raw(
                &server,
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            )
            .await;
            assert_eq!(status, 403, "{host} {path}: {text}");
        }
    }
    let (status, text) = raw(
        &server,
        format!(
            "GET /api/inventory/products HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.com\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("origin_not_allowed"), "{text}");

    // 401 says which scheme; 405 says which methods.
    let unauthorized = client
        .post("/api/skus", None, json!({"sku": "X", "pool": "physical"}))
        .await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(
        unauthorized
            .headers
            .get("www-authenticate")
            .map(String::as_str),
        Some("Bearer realm=\"stockade\"")
    );
    let wrong = client
        .send("PUT", "/api/skus", Some(ADMIN), &[], None)
        .await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.headers.get("allow").map(String::as_str), Some("POST"));

    // Error bodies quote inputs briefly, in our words.
    let long = format!("/{}", "p".repeat(8000));
    let missing = client.get(&long, None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.text.len() < 400, "{} bytes", missing.text.len());
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let nested = client
        .send(
            "POST",
            "/api/reservations",
            Some(WEB),
            &[],
            Some(format!("{{\"items\":{deep}}}").into_bytes()),
        )
        .await;
    assert!((400..500).contains(&nested.status), "{}", nested.text);
    assert!(!nested.text.contains("recursion"), "{}", nested.text);
    let query = client.get("/api/inventory/products?limit=many", None).await;
    assert_eq!(query.status, 422, "{}", query.text);
    assert!(!query.text.contains("Query deserialize"), "{}", query.text);

    // The dashboard cannot be framed and runs only its own script.
    let page = client.get("/", None).await;
    assert_eq!(
        page.headers.get("x-frame-options").map(String::as_str),
        Some("DENY")
    );
    let policy = page
        .headers
        .get("content-security-policy")
        .cloned()
        .unwrap_or_default();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("script-src 'sha256-"), "{policy}");
    server.stop().unwrap();
}

/// With `limits.anonymous_per_second`, one address without a token gets its burst and then
/// 429s, while token holders are not counted against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_from_one_address_are_rate_limited_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.anonymous_per_second = 5;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("LIMITED", 5).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let answer = client.get("/api/inventory/products/LIMITED", None).await;
        if answer.status == 429 {
            assert_eq!(answer.body["error"], "rate_limited", "{}", answer.text);
            assert_eq!(
                answer.headers.get("retry-after").map(String::as_str),
                Some("1")
            );
        }
        statuses.push(answer.status);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 15, "{statuses:?}");
    assert!(
        statuses[..10].iter().all(|s| *s == 200),
        "the burst: {statuses:?}"
    );
    // A token holder is not limited.
    for _ in 0..30 {
        assert_eq!(
            client
                .get("/api/inventory/products/LIMITED", Some(WEB))
                .await
                .status,
            200
        );
    }
    server.stop().unwrap();
}

//! The storefront indicator in a real browser: a shop page served from another origin
//! embeds `/stock.js` and two `<stockade-stock>` elements for one SKU. Headless Chromium
//! shows the level, the change within 2 s of a reservation made over HTTP, and the page
//! catches up by itself after the server restarts on the same address. A screenshot is
//! kept in `target/test-artifacts/storefront.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use stockade_tests::browser::{Driver, chromedriver_or_skip};
use stockade_tests::server::{Client, TestServer, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The page must show a change within this long.
const WITHIN: Duration = Duration::from_secs(2);

/// Serves `page` to every request on a port of its own: the shop, another origin.
async fn shop(page: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let page = page.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    origin
}

fn label(id: &str) -> String {
    format!(
        "const e = document.getElementById('{id}'); \
         return e && e.shadowRoot ? e.shadowRoot.querySelector('span').textContent : null;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indicator_on_another_origin_follows_stock_live() {
    let Some(chromedriver) = chromedriver_or_skip("storefront_indicator_in_a_browser") else {
        return;
    };
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let page = format!(
        "<!doctype html><html><head><title>Shop</title>\
         <style>stockade-stock{{--stockade-color-low:#b35900;display:block}}</style></head>\
         <body><h1>Tee, medium</h1>\
         <stockade-stock id=\"a\" sku=\"FRONT-1\" low-at=\"3\"></stockade-stock>\
         <stockade-stock id=\"b\" sku=\"FRONT-1\" text-out=\"Gone, sorry\"></stockade-stock>\
         <script src=\"http://{addr}/stock.js\"></script></body></html>"
    );
    let origin = shop(page).await;

    let dir = tempfile::tempdir().unwrap();
    let configured = || {
        let mut cfg = config(dir.path());
        cfg.cors.allowed_origins = vec![origin.clone()];
        cfg
    };
    let server = TestServer::start_at(configured(), &addr);
    let client = Client::new(&server);
    client.register("FRONT-1", 5).await;

    // Only the allowed origin may read across origins; writes never.
    let read = client
        .send(
            "GET",
            "/api/inventory/products/FRONT-1",
            None,
            &[("origin", origin.as_str())],
            None,
        )
        .await;
    assert_eq!(
        read.headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some(origin.as_str())
    );
    let other = client
        .send(
            "GET",
            "/api/inventory/products/FRONT-1",
            None,
            &[("origin", "http://127.0.0.1:1")],
            None,
        )
        .await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));

    let mut driver = Driver::start(&chromedriver).await;
    driver.open_session().await;
    driver.go(&format!("{origin}/product")).await;
    driver
        .until(&label("a"), &json!("In stock"), Duration::from_secs(20))
        .await;
    let role = "const s = document.getElementById('a').shadowRoot.querySelector('span'); \
                return s.getAttribute('role') + ' ' + s.getAttribute('aria-live');";
    assert_eq!(driver.script(role).await, json!("status polite"));

    // A reservation over HTTP shows within 2 s, on both elements.
    assert_eq!(client.reserve("FRONT-1", 3).await.status, 201);
    let took = driver
        .until(&label("a"), &json!("Only 2 left"), WITHIN)
        .await;
    println!("the indicator showed the reservation after {took:?}");
    driver
        .until(&label("b"), &json!("Only 2 left"), WITHIN)
        .await;
    // One shared connection for both elements: the server has one stream open.
    let metrics = client.get("/metrics", None).await.text;
    let open = metrics.lines().find_map(|l| {
        l.strip_prefix("stockade_streams_open ")?
            .trim()
            .parse::<f64>()
            .ok()
    });
    assert_eq!(open, Some(1.0), "{metrics}");

    // The server restarts on the same address; the page reconnects and catches up.
    server.stop().unwrap();
    let server = TestServer::start_at(configured(), &addr);
    let client = Client::new(&server);
    assert_eq!(client.reserve("FRONT-1", 2).await.status, 201);
    driver
        .until(&label("b"), &json!("Gone, sorry"), Duration::from_secs(20))
        .await;
    driver.until(&label("a"), &json!("Sold out"), WITHIN).await;

    let artifact =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/storefront.png");
    driver.screenshot(&artifact).await;
    server.stop().unwrap();
}

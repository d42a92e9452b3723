//! The dashboard in a real browser: headless Chromium, driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver`, which `.ci/run` installs),
//! opens `/`, a reservation is made over HTTP, and the page shows the new availability
//! within 2 s, asserted on the DOM. A screenshot is kept in
//! `target/test-artifacts/dashboard.png`.
//!
//! Without chromedriver the test says SKIPPED and passes, except under CI (`CI` set),
//! where a missing browser is a failure: CI must prove the page works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use stockade_tests::browser::{Driver, chromedriver_or_skip};
use stockade_tests::server::{ADMIN, Client, TestServer, config};

/// The page must show a change within this long.
const WITHIN: Duration = Duration::from_secs(2);

fn cell(sku: &str, field: &str) -> String {
    format!(
        "const c = document.querySelector('tr[data-sku=\"{sku}\"] [data-field=\"{field}\"]'); \
         return c ? c.textContent.trim() : null;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_reservation_within_two_seconds() {
    let Some(chromedriver) = chromedriver_or_skip("dashboard_in_a_browser") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("DASH-TEE", 5).await;
    client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "DASH-EBOOK", "pool": "digital"}),
        )
        .await;

    let mut driver = Driver::start(&chromedriver).await;
    driver.open_session().await;
    driver.go(&server.url("/")).await;
    // Loaded and live.
    let ready = "return document.body.dataset.ready === 'true' \
                 && document.getElementById('conn').dataset.state === 'live';";
    driver
        .until(ready, &json!(true), Duration::from_secs(20))
        .await;
    driver
        .until(&cell("DASH-TEE", "available"), &json!("5"), WITHIN)
        .await;
    driver
        .until(&cell("DASH-EBOOK", "available"), &json!("∞"), WITHIN)
        .await;

    // A reservation over HTTP shows up within 2 s, with the low-stock mark.
    assert_eq!(client.reserve("DASH-TEE", 2).await.status, 201);
    let took = driver
        .until(&cell("DASH-TEE", "available"), &json!("3"), WITHIN)
        .await;
    println!("dashboard showed the reservation after {took:?}");
    let status = "return document.querySelector('tr[data-sku=\"DASH-TEE\"]').dataset.status;";
    driver.until(status, &json!("low_stock"), WITHIN).await;
    assert_eq!(
        driver.script(&cell("DASH-TEE", "reserved")).await,
        json!("2")
    );

    // Sold out is marked too; and a SKU registered after the page loaded appears.
    assert_eq!(client.reserve("DASH-TEE", 3).await.status, 201);
    driver.until(status, &json!("out_of_stock"), WITHIN).await;
    client.register("DASH-CAP", 9).await;
    driver
        .until(&cell("DASH-CAP", "available"), &json!("9"), WITHIN)
        .await;

    // A moment for the rate chart to draw the last second's bar, for the screenshot.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let artifact =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/dashboard.png");
    driver.screenshot(&artifact).await;
    let png = std::fs::read(&artifact).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    println!("screenshot: {}", artifact.display());
    let session = driver.path("");
    driver.call(reqwest::Method::DELETE, &session, None).await;
    server.stop().unwrap();
}

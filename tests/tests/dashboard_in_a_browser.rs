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
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stockade_tests::server::{ADMIN, Client, TestServer, config};

/// The page must show a change within this long.
const WITHIN: Duration = Duration::from_secs(2);

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: Option<String>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromedriver: &PathBuf) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            session: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await;
            if let Ok(r) = status
                && r.status().is_success()
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("WebDriver call");
        let status = response.status();
        let value: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {value}");
        value["value"].clone()
    }

    async fn open_session(&mut self) {
        let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
        let mut options = json!({
            "args": ["--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--window-size=1200,800"]
        });
        if let Some(binary) = chromium {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}});
        let value = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        self.session = Some(value["sessionId"].as_str().unwrap().to_owned());
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session.as_deref().unwrap())
    }

    async fn go(&self, url: &str) {
        self.call(
            reqwest::Method::POST,
            &self.path("/url"),
            Some(json!({"url": url})),
        )
        .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            &self.path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Polls `script` until it returns `want`; returns how long that took.
    async fn until(&self, script: &str, want: &Value, patience: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let got = self.script(script).await;
            if &got == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < patience,
                "the page shows {got}, not {want}, after {patience:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn screenshot(&self, to: &PathBuf) {
        let png = self
            .call(reqwest::Method::GET, &self.path("/screenshot"), None)
            .await;
        let bytes = decode_base64(png.as_str().unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= u32::from(value(*c)) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn cell(sku: &str, field: &str) -> String {
    format!(
        "const c = document.querySelector('tr[data-sku=\"{sku}\"] [data-field=\"{field}\"]'); \
         return c ? c.textContent.trim() : null;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_reservation_within_two_seconds() {
    let Some(chromedriver) = find(&["chromedriver"]) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is missing: CI must install chromium and chromium-driver (.ci/run does)"
        );
        println!(
            "SKIPPED dashboard_in_a_browser: chromedriver not found (apt-get install chromium chromium-driver)"
        );
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

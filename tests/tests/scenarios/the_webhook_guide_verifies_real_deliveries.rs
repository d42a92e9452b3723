//! `docs/notices.md` tells a receiver how to check a webhook's signature, in Python. This
//! runs that function, taken from the page as it stands, in a plain Python HTTP server
//! that `stockade serve` delivers real notices to: every delivery must verify, with the
//! header names as sent and lower-cased, and a tampered body must not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use stockade_server::config::WebhookConfig;
use stockade_tests::server::{Client, TestServer, config};

const SECRET: &str = "whsec_guide_test_0001";

/// The ```python block of the webhooks section.
fn guide_snippet() -> String {
    let guide = include_str!("../../../docs/notices.md");
    let start = guide.find("```python\n").expect("a Python snippet") + "```python\n".len();
    let end = start + guide[start..].find("```").expect("its end");
    guide[start..end].to_owned()
}

/// A receiver around the guide's `verify`; one line per delivery on stdout.
fn receiver_script(snippet: &str) -> String {
    format!(
        r#"{snippet}
import http.server, sys

SECRET = b"{SECRET}"

class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        as_sent = dict(self.headers.items())
        lowered = {{k.lower(): v for k, v in self.headers.items()}}
        ok = verify(SECRET, as_sent, body) and verify(SECRET, lowered, body)
        tampered = verify(SECRET, as_sent, body + b" ")
        print("ok" if ok and not tampered else "bad", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
"#
    )
}

struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_signature_check_verifies_real_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("receiver.py");
    std::fs::write(&script, receiver_script(&guide_snippet())).unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (CI installs it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _python = Python(child);
    let port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    let mut cfg = config(&dir.path().join("data"));
    cfg.webhooks.push(WebhookConfig {
        name: "guide".into(),
        url: format!("http://127.0.0.1:{port}/hook"),
        secret: SECRET.into(),
        coalesce_ms: None,
    });
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("HOOKED", 5).await;
    assert_eq!(client.reserve("HOOKED", 2).await.status, 201);

    // The registration and the hold: two deliveries, both verified.
    for n in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("delivery {n} did not arrive"))
            .expect("the receiver is running");
        assert_eq!(
            line, "ok",
            "delivery {n} did not verify with the guide's code"
        );
    }
    server.stop().unwrap();
}

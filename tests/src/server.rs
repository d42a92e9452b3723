//! `stockade serve` in-process on 127.0.0.1 port 0, and small clients for it: JSON over
//! HTTP, an SSE reader and a WebSocket reader, all over real sockets.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use stockade_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const ADMIN: &str = "test-admin-token-000001";
pub const WEB: &str = "test-web-token-00000001";
pub const POS: &str = "test-pos-token-00000001";
pub const READER: &str = "test-read-token-0000001";
/// A channel token for an assistant (MCP over HTTP).
pub const ASSISTANT: &str = "test-assistant-token-01";

/// A server on its own thread until dropped.
pub struct TestServer {
    pub base: String,
    pub data_dir: PathBuf,
    server: Option<stockade_server::Background>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("base", &self.base)
            .finish()
    }
}

/// A configuration with the four test tokens, on `data_dir`, public reads.
pub fn config(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig {
        data_dir: data_dir.to_owned(),
        ..ServerConfig::default()
    };
    config.auth.admin_tokens = vec![ADMIN.into()];
    config.auth.channel_tokens = BTreeMap::from([
        ("web".into(), WEB.into()),
        ("pos".into(), POS.into()),
        ("assistant".into(), ASSISTANT.into()),
    ]);
    config.auth.read_tokens = vec![READER.into()];
    config.reconcile.every_seconds = 0;
    config.limits.workers = 2;
    config
}

impl TestServer {
    /// Starts a server with `config` and waits until it listens.
    pub fn start(config: ServerConfig) -> Self {
        Self::start_at(config, "127.0.0.1:0")
    }

    /// As `start`, on `addr` (a restart on the port a page already points at).
    pub fn start_at(config: ServerConfig, addr: &str) -> Self {
        let listener = TcpListener::bind(addr).expect("bind the test server's address");
        let data_dir = config.data_dir.clone();
        let server = match stockade_server::spawn(config, listener) {
            Ok(server) => server,
            Err(e) => panic!("server did not start: {e}"),
        };
        Self {
            base: format!("http://{}", server.local_addr()),
            data_dir,
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// Shuts down gracefully and waits; returns what `run_until` returned.
    pub fn stop(mut self) -> Result<(), String> {
        match self.server.take() {
            Some(server) => server.stop().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// An answer: status, headers (lower-case names), JSON body (`Null` if not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub text: String,
}

/// A JSON client with an optional bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(server: &TestServer) -> Self {
        Self::at(&server.base)
    }

    /// A client of the server at `base` (`http://127.0.0.1:port`).
    pub fn at(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(crate::PATIENCE)
                .build()
                .expect("client"),
            base: base.to_owned(),
        }
    }

    /// Sends `method path` with `token`, extra `headers` and a raw `body`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send("GET", path, token, &[], None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(
            "POST",
            path,
            token,
            &[],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// Registers a physical SKU with `on_hand` units (admin).
    pub async fn register(&self, sku: &str, on_hand: u64) -> Answer {
        let answer = self
            .post(
                "/api/skus",
                Some(ADMIN),
                serde_json::json!({"sku": sku, "pool": "physical", "on_hand": on_hand}),
            )
            .await;
        assert_eq!(answer.status, 201, "register {sku}: {}", answer.text);
        answer
    }

    /// A web checkout: `qty` of `sku` reserved, then committed, as the web channel.
    pub async fn checkout(&self, sku: &str, qty: u64) {
        let held = self.reserve(sku, qty).await;
        assert_eq!(held.status, 201, "web reserve: {}", held.text);
        let id = held.body["reservation_id"]
            .as_str()
            .expect("reservation_id");
        let done = self
            .post(
                &format!("/api/reservations/{id}/commit"),
                Some(WEB),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(done.status, 200, "web commit: {}", done.text);
    }

    /// Reserves `qty` of `sku` as the web channel.
    pub async fn reserve(&self, sku: &str, qty: u64) -> Answer {
        self.post(
            "/api/reservations",
            Some(WEB),
            serde_json::json!({"items": [{"sku": sku, "qty": qty}]}),
        )
        .await
    }

    /// Reserves `qty` of `sku` as the web channel; the status, or `None` when no answer
    /// came (the server went away).
    pub async fn try_reserve(&self, sku: &str, qty: u64) -> Option<u16> {
        let body = serde_json::json!({"items": [{"sku": sku, "qty": qty}]});
        let response = self
            .http
            .post(format!("{}/api/reservations", self.base))
            .bearer_auth(WEB)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        // The answer counts only if it arrived whole.
        response.bytes().await.ok()?;
        Some(status)
    }

    pub async fn available(&self, sku: &str) -> Option<u64> {
        let answer = self
            .get(&format!("/api/inventory/products/{sku}"), None)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["available"].as_u64()
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// Reads `GET /api/events` as it arrives.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sse").finish_non_exhaustive()
    }
}

impl Sse {
    /// Opens the stream at `path` (e.g. `/api/events?sku=A`) with optional headers.
    pub async fn open(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = reqwest::Client::new().get(server.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("open SSE");
        assert_eq!(response.status().as_u16(), 200, "SSE status");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keepalive comments skipped), or `None` when the stream ends or
    /// nothing arrives within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut any = false;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(v).expect("SSE data is JSON");
                        any = true;
                    }
                }
                if any {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `notice` event, skipping `hello`; panics on anything else.
    pub async fn notice(&mut self) -> Value {
        loop {
            let event = self.next(crate::PATIENCE).await.expect("a notice");
            match event.event.as_str() {
                "hello" => continue,
                "notice" => return event.data,
                other => panic!("expected a notice, got {other}: {:?}", event.data),
            }
        }
    }
}

/// A minimal WebSocket client (RFC 6455): the upgrade, then unmasked server frames.
pub struct Ws {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ws").finish_non_exhaustive()
    }
}

impl Ws {
    pub async fn open(server: &TestServer, path: &str) -> Result<Self, String> {
        let mut stream = tokio::net::TcpStream::connect(server.addr())
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = tokio::time::timeout(crate::PATIENCE, stream.read(&mut chunk))
                .await
                .map_err(|_| "no upgrade answer".to_owned())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during upgrade".into());
            }
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(head);
        }
        // The accept key for the RFC's sample nonce.
        if !head
            .to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=")
        {
            return Err(format!("wrong accept key: {head}"));
        }
        buffer.drain(..head_end);
        Ok(Self { stream, buffer })
    }

    /// Writes raw bytes on the connection (a client frame, whole or in part).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next text frame as JSON (pings and other control frames skipped), or `None` on
    /// close or after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((opcode, payload, used)) = frame(&self.buffer) {
                self.buffer.drain(..used);
                match opcode {
                    0x1 => return Some(serde_json::from_slice(&payload).expect("JSON frame")),
                    0x8 => return None,
                    _ => continue,
                }
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

/// One complete unmasked frame at the start of `b`: (opcode, payload, bytes used).
fn frame(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    let (len, mut at) = match b[1] & 0x7f {
        126 => (u64::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    if b[1] & 0x80 != 0 {
        at += 4; // masked (servers never mask, but skip the key if one did)
    }
    let end = at + usize::try_from(len).ok()?;
    (b.len() >= end).then(|| (opcode, b[at..end].to_vec(), end))
}

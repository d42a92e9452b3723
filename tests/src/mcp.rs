//! A real MCP client (rmcp's) for the scenarios: over streamable HTTP against
//! `stockade serve`, or over stdio against a `stockade mcp` child process. It keeps every
//! `notifications/resources/updated` it receives for the test to wait on.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, ProtocolVersion,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::mpsc;

/// The client side: pins the session lifecycle (initialize, then a session), and passes
/// resource updates to the test.
#[derive(Debug, Clone)]
pub struct Watcher {
    updates: mpsc::UnboundedSender<String>,
    /// Speak a revision with `initialize` and sessions (false: rmcp's latest).
    legacy: bool,
}

impl ClientHandler for Watcher {
    fn get_info(&self) -> ClientConfig {
        if self.legacy {
            ClientConfig::default().with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
        } else {
            ClientConfig::default()
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.updates.send(params.uri);
    }
}

/// A connected MCP client.
pub struct McpClient {
    pub service: RunningService<RoleClient, Watcher>,
    updates: mpsc::UnboundedReceiver<String>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpClient")
    }
}

/// One tool result, taken apart.
#[derive(Debug, Clone)]
pub struct ToolAnswer {
    pub is_error: bool,
    /// The text blocks, in order.
    pub texts: Vec<String>,
    pub structured: Value,
}

impl ToolAnswer {
    fn from(result: CallToolResult) -> Self {
        let texts = result
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.clone()))
            .collect();
        Self {
            is_error: result.is_error == Some(true),
            texts,
            structured: result.structured_content.unwrap_or(Value::Null),
        }
    }

    /// The `[System: ...]` blocks the result begins with.
    pub fn system_blocks(&self) -> Vec<&str> {
        self.texts
            .iter()
            .take_while(|t| t.starts_with("[System:"))
            .map(String::as_str)
            .collect()
    }

    /// Everything after the system blocks.
    pub fn body_text(&self) -> String {
        self.texts
            .iter()
            .skip_while(|t| t.starts_with("[System:"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl McpClient {
    fn watcher(legacy: bool) -> (Watcher, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Watcher {
                updates: tx,
                legacy,
            },
            rx,
        )
    }

    fn http_config(base: &str, token: Option<&str>) -> StreamableHttpClientTransportConfig {
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
        match token {
            Some(token) => config.auth_header(token.to_owned()),
            None => config,
        }
    }

    /// Connects to `{base}/mcp` with `token` (none: anonymous), in a session.
    pub async fn http(base: &str, token: Option<&str>) -> Self {
        let (watcher, updates) = Self::watcher(true);
        let service = tokio::time::timeout(
            crate::PATIENCE,
            watcher.serve(StreamableHttpClientTransport::from_config(
                Self::http_config(base, token),
            )),
        )
        .await
        .expect("MCP initialize timed out")
        .expect("MCP initialize over HTTP");
        Self { service, updates }
    }

    /// Connects to `{base}/mcp` speaking 2026-07-28, which has no sessions.
    pub async fn http_sessionless(base: &str, token: Option<&str>) -> Self {
        let (watcher, updates) = Self::watcher(false);
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        let service = tokio::time::timeout(
            crate::PATIENCE,
            watcher.serve_with_lifecycle(
                StreamableHttpClientTransport::from_config(Self::http_config(base, token)),
                lifecycle,
            ),
        )
        .await
        .expect("MCP discover timed out")
        .expect("MCP discover over HTTP");
        Self { service, updates }
    }

    /// Connects over any transport (a child process's stdio).
    pub async fn over<T, E, A>(transport: T) -> Self
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let (watcher, updates) = Self::watcher(true);
        let service = tokio::time::timeout(crate::PATIENCE, watcher.serve(transport))
            .await
            .expect("MCP initialize timed out")
            .expect("MCP initialize");
        Self { service, updates }
    }

    /// Calls `tool` with `args`; a protocol error fails the test (tools answer in band).
    pub async fn call(&self, tool: &str, args: Value) -> ToolAnswer {
        match self.try_call(tool, args).await {
            Ok(answer) => answer,
            Err(e) => panic!("{tool}: protocol error instead of a tool result: {e}"),
        }
    }

    /// Calls `tool`, returning a protocol error as `Err`.
    pub async fn try_call(&self, tool: &str, args: Value) -> Result<ToolAnswer, String> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        } else if !args.is_null() {
            panic!("tool arguments must be an object");
        }
        tokio::time::timeout(crate::PATIENCE, self.service.call_tool(params))
            .await
            .map_err(|_| format!("{tool}: timed out"))?
            .map(ToolAnswer::from)
            .map_err(|e| e.to_string())
    }

    /// The next `notifications/resources/updated` URI, if one comes within `wait`.
    pub async fn next_update(&mut self, wait: Duration) -> Option<String> {
        tokio::time::timeout(wait, self.updates.recv())
            .await
            .ok()
            .flatten()
    }

    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

/// The blocks the reference scenarios expect, exactly.
pub const ORDER_INVALIDATION: &str =
    "[System: Cache invalidated for inventory.*, orders.*, products.* — caused by orders.create]";

/// The reference scenario: the assistant reads 3 units of `sku`; a customer buys 2 on
/// the website; the assistant, answering from its context, orders 3. The very next tool
/// result after the checkout must name the stale read, and the order must be refused
/// with the availability now. `web` is a REST client of the same engine; `sku` is
/// registered here with 3 units.
pub async fn stale_read_after_a_web_checkout(
    mcp: &McpClient,
    web: &crate::server::Client,
    sku: &str,
) {
    web.register(sku, 3).await;
    let read = mcp
        .call("inventory.getStock", serde_json::json!({"sku": sku}))
        .await;
    assert!(!read.is_error, "{read:?}");
    assert!(
        read.system_blocks().is_empty(),
        "a first read has nothing to tell: {read:?}"
    );
    assert_eq!(read.structured["available"], 3);
    let version = read.structured["version"].as_u64().expect("version");
    assert!(read.structured["as_of"].is_string(), "{read:?}");

    web.checkout(sku, 2).await;

    let order = mcp
        .call(
            "orders.create",
            serde_json::json!({"items": [{"sku": sku, "qty": 3}], "ttl_seconds": 600}),
        )
        .await;
    assert!(order.is_error, "3 of 1 must be refused: {order:?}");
    let blocks = order.system_blocks();
    assert_eq!(
        blocks.len(),
        1,
        "only the stale-read block (a failed write adds nothing): {order:?}"
    );
    let expected = format!(
        "[System: Stale reads — inventory.{sku} v{version} → v{} (now 1 available), caused by web checkout. \
         Read them again before quoting or promising stock.]",
        version + 2
    );
    assert_eq!(blocks[0], expected);
    let body = order.body_text();
    assert!(body.contains("insufficient_stock"), "{body}");
    assert!(
        body.contains(&format!("Now: {sku} has 1 available")),
        "{body}"
    );
    assert!(body.contains("Nothing was reserved"), "{body}");
    assert_eq!(order.structured["available"], 1, "{order:?}");
    assert_eq!(order.structured["current"]["available"], 1, "{order:?}");
    assert_eq!(
        web.available(sku).await,
        Some(1),
        "the refused order held nothing"
    );

    // Told once: the next result carries no block, and a fresh read shows the truth.
    let again = mcp
        .call("inventory.getStock", serde_json::json!({"sku": sku}))
        .await;
    assert!(again.system_blocks().is_empty(), "{again:?}");
    assert_eq!(again.structured["available"], 1);
}

/// The self-mutation variant: the assistant's own `orders.create` for 2 makes its read of
/// 3 stale, and says so itself; its own write is not reported again as staleness. Then
/// an order decided on the old version is refused with the stock now. `sku` is
/// registered here with 3 units.
pub async fn own_order_invalidates_its_read(
    mcp: &McpClient,
    web: &crate::server::Client,
    sku: &str,
) {
    web.register(sku, 3).await;
    let read = mcp
        .call("inventory.getStock", serde_json::json!({"sku": sku}))
        .await;
    assert_eq!(read.structured["available"], 3, "{read:?}");
    let version = read.structured["version"].as_u64().expect("version");

    let order = mcp
        .call(
            "orders.create",
            serde_json::json!({"items": [{"sku": sku, "qty": 2}], "idempotency_key": format!("{sku}-first")}),
        )
        .await;
    assert!(!order.is_error, "{order:?}");
    assert_eq!(order.texts[0], ORDER_INVALIDATION, "{order:?}");
    assert_eq!(order.system_blocks().len(), 1, "{order:?}");
    assert_eq!(order.structured["status"], "held");
    assert_eq!(order.structured["items"][0]["version"], version + 1);

    let after = mcp
        .call("inventory.getStock", serde_json::json!({"sku": sku}))
        .await;
    assert!(
        after.system_blocks().is_empty(),
        "own write reported as stale: {after:?}"
    );
    assert_eq!(after.structured["available"], 1);

    // Decided on the version read before the order: refused, with the stock now.
    let stale_order = mcp
        .call(
            "orders.create",
            serde_json::json!({"items": [{"sku": sku, "qty": 1}], "expected_versions": {sku: version}}),
        )
        .await;
    assert!(stale_order.is_error, "{stale_order:?}");
    assert!(stale_order.system_blocks().is_empty(), "{stale_order:?}");
    assert_eq!(stale_order.structured["error"], "version_conflict");
    assert_eq!(stale_order.structured["current"]["available"], 1);
    assert_eq!(stale_order.structured["current_version"], version + 1);
    assert_eq!(web.available(sku).await, Some(1));

    // Confirming the held order is a write too: it begins with its invalidation block.
    let id = order.structured["reservation_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let confirmed = mcp
        .call("orders.confirm", serde_json::json!({"reservation_id": id}))
        .await;
    assert!(!confirmed.is_error, "{confirmed:?}");
    assert_eq!(
        confirmed.texts[0],
        "[System: Cache invalidated for inventory.*, orders.*, products.* — caused by orders.confirm]"
    );
    assert_eq!(confirmed.structured["status"], "committed");

    // Its own writes moved its read along; a sale by someone else after them is told.
    web.checkout(sku, 1).await;
    let next = mcp.call("reference.poolTypes", serde_json::json!({})).await;
    let blocks = next.system_blocks();
    assert_eq!(blocks.len(), 1, "{next:?}");
    assert!(
        blocks[0].contains(&format!("inventory.{sku} v"))
            && blocks[0].contains("(now 0 available), caused by web checkout"),
        "{}",
        blocks[0]
    );
}

/// Bad arguments, on any transport: each a tool error whose text names the fault, never a
/// protocol error, and nothing held.
pub async fn bad_arguments_are_tool_errors(mcp: &McpClient, sku: &str) {
    let table = [
        (
            "inventory.getStock",
            serde_json::json!({}),
            "missing field `sku`",
        ),
        (
            "inventory.getStock",
            serde_json::json!({"sku": 7}),
            "invalid type",
        ),
        (
            "inventory.getStock",
            serde_json::json!({"sku": "NOPE-1"}),
            "unknown_sku",
        ),
        (
            "orders.create",
            serde_json::json!({"items": [{"sku": sku, "qty": 0}]}),
            "invalid_quantity",
        ),
        (
            "orders.create",
            serde_json::json!({"items": [{"sku": sku, "qty": "2"}]}),
            "invalid type",
        ),
        (
            "orders.create",
            serde_json::json!({"items": [{"sku": "NOPE-1", "qty": 1}]}),
            "unknown_sku",
        ),
        (
            "orders.create",
            serde_json::json!({"itemz": []}),
            "unknown field `itemz`",
        ),
    ];
    for (tool, args, expected) in table {
        let answer = mcp.call(tool, args.clone()).await;
        assert!(answer.is_error, "{tool} {args}: {answer:?}");
        let text = answer.body_text();
        assert!(
            text.contains(expected),
            "{tool} {args}: {expected:?} not in {text:?}"
        );
    }
}

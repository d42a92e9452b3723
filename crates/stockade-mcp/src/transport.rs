//! The two ways in: streamable HTTP (one session per MCP session, served by `stockade
//! serve` at `/mcp` through its bridge) and stdio (the process is the session).
//!
//! Protocol revisions: clients that still `initialize` (2025-11-25 and older) get a
//! session over HTTP, and with it the read ledger. A 2026-07-28 client speaks without
//! sessions; each of its requests gets a fresh handler, so over HTTP it gets the
//! cache-control tags, invalidation blocks, versions and `expected_versions` checks, but
//! no cross-channel staleness block. Over stdio both revisions keep the ledger.

use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::server::{Backend, McpCaller, StockadeMcp};

/// The HTTP transport, as the bridge calls it.
pub type HttpService = StreamableHttpService<StockadeMcp, LocalSessionManager>;

/// How the HTTP transport behaves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// A session with no message for this long is closed (its ledger with it).
    pub session_idle: Duration,
    /// `Host` values accepted (DNS-rebinding protection); empty accepts any, for a
    /// server behind a proxy or a name.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin` values accepted; empty checks none.
    pub allowed_origins: Vec<String>,
    /// Cancelled at shutdown: open SSE streams end instead of holding the grace period.
    pub cancel: CancellationToken,
}

/// Keep-alive comments on open SSE streams, as on `/api/events`.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn http_service(backend: Arc<Backend>, options: HttpOptions) -> HttpService {
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(options.session_idle);
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(options.cancel)
        .with_sse_keep_alive(Some(SSE_KEEP_ALIVE));
    let config = if options.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(options.allowed_hosts)
    };
    let config = if options.allowed_origins.is_empty() {
        config.disable_allowed_origins()
    } else {
        config.with_allowed_origins(options.allowed_origins)
    };
    StreamableHttpService::new(
        move || Ok(StockadeMcp::over_http(backend.clone())),
        Arc::new(sessions),
        config,
    )
}

/// Serves one session on stdin/stdout until the client closes it. A client that hangs
/// up, even before it initialized, has finished: that is not an error.
pub async fn serve_stdio(backend: Arc<Backend>, caller: McpCaller) -> Result<(), String> {
    let running = match StockadeMcp::local(backend, caller)
        .serve(rmcp::transport::stdio())
        .await
    {
        Ok(running) => running,
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => {
            tracing::info!("mcp: stdin closed before the client initialized");
            return Ok(());
        }
        Err(e) => return Err(format!("MCP over stdio: {e}")),
    };
    running
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("MCP over stdio: {e}"))
}

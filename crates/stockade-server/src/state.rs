//! [`AppState`]: what every handler shares. One per server, behind an `Arc`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use actix_web::HttpMessage;
use actix_web::HttpRequest;
use stockade_domain::{Channel, Sku};
use stockade_engine::{Inventory, Origin};
use stockade_projections::{NoticeHub, ReadModels};
use stockade_wire::ApiError;
use tokio::sync::watch;

use crate::auth::{Caller, Need, Role, Tokens, bearer};
use crate::config::ServerConfig;
use crate::error::HttpError;
use crate::keys::RequestKeys;

/// Longest `X-Request-Id` kept as an event's causation id.
const MAX_REQUEST_ID: usize = 256;

#[derive(Debug)]
pub struct AppState {
    pub config: ServerConfig,
    pub inventory: Inventory,
    pub models: ReadModels,
    pub hub: NoticeHub,
    pub tokens: Tokens,
    pub keys: RequestKeys,
    /// Low-stock thresholds read from the read models, by SKU. This server is the only
    /// writer of thresholds (at registration), so the cache never goes stale.
    pub thresholds: Mutex<HashMap<Sku, u64>>,
    /// Requests being handled (streams and anonymous bodies excluded).
    pub in_flight: AtomicUsize,
    /// Requests with a body and no valid credentials being handled.
    pub anonymous_in_flight: AtomicUsize,
    /// Open SSE and WebSocket streams.
    pub streams: AtomicUsize,
    /// Turns true when the server begins to shut down: streams end, readiness fails.
    pub stop_streams: watch::Receiver<bool>,
    pub closing: AtomicBool,
    /// What MCP sessions share (also over stdio, when `stockade mcp` runs this server).
    pub mcp_backend: std::sync::Arc<stockade_mcp::Backend>,
    /// The `/mcp` transport; `None` when turned off.
    pub mcp: Option<McpService>,
    /// Who opened each MCP session.
    pub mcp_sessions: crate::routes::mcp::Sessions,
    /// The `Host` and `Origin` every request must carry (DNS-rebinding protection).
    pub host_check: crate::host::HostCheck,
    /// Requests a second per address for callers without a token.
    pub anonymous_limit: crate::limit::AnonymousLimit,
}

/// rmcp's HTTP service, shared by every worker (sessions live in it).
pub struct McpService(pub stockade_mcp::HttpService);

impl std::fmt::Debug for McpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpService")
    }
}

impl AppState {
    /// Checks the request's bearer token (or, where `query_token` is given, an
    /// `access_token` query parameter, for EventSource and WebSocket clients that cannot
    /// set headers) against what the endpoint needs.
    pub fn authorize(
        &self,
        req: &HttpRequest,
        need: Need,
        query_token: Option<&str>,
    ) -> Result<Option<Caller>, HttpError> {
        single(req, actix_web::http::header::AUTHORIZATION.as_str())?;
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| {
                v.to_str().ok().and_then(bearer).ok_or_else(|| {
                    HttpError(ApiError::new(
                        stockade_wire::ErrorKind::Unauthorized,
                        stockade_wire::Code::Unauthorized,
                        "the Authorization header must be `Bearer <token>`",
                    ))
                })
            })
            .transpose()?;
        // The middleware has already looked the header's token up (to budget anonymous
        // callers): reuse its answer rather than hash the token again.
        let looked = req.extensions().get::<crate::routes::LookedUp>().cloned();
        if let (Some(token), Some(looked)) = (header, looked)
            && looked.token == token
        {
            return Ok(self.tokens.check(Some(looked.caller.as_ref()), need)?);
        }
        Ok(self.tokens.authorize(header.or(query_token), need)?)
    }

    /// Who is asking, through which channel, under which key, for the engine; nobody in
    /// particular for an anonymous caller.
    pub fn origin(&self, req: &HttpRequest, caller: Option<&Caller>) -> Result<Origin, HttpError> {
        let Some(caller) = caller else {
            return Ok(Origin::default());
        };
        let channel: Option<Channel> = match &caller.role {
            Role::Channel(channel) => Some(channel.clone()),
            Role::Admin | Role::Reader => None,
        };
        let idempotency_key = header(req, "idempotency-key")?;
        let causation_id = header(req, "x-request-id")?
            .filter(|id| id.chars().count() <= MAX_REQUEST_ID && !id.chars().any(char::is_control));
        Ok(Origin {
            principal: Some(caller.principal.clone()),
            channel,
            idempotency_key,
            causation_id,
        })
    }

    /// The low-stock threshold of `sku`.
    pub async fn threshold(&self, sku: &Sku) -> Result<u64, HttpError> {
        if let Some(t) = self.lock_thresholds().get(sku) {
            return Ok(*t);
        }
        let t = self.models.threshold(sku).await?;
        self.lock_thresholds().insert(sku.clone(), t);
        Ok(t)
    }

    pub fn remember_threshold(&self, sku: &Sku, threshold: u64) {
        self.lock_thresholds().insert(sku.clone(), threshold);
    }

    fn lock_thresholds(&self) -> std::sync::MutexGuard<'_, HashMap<Sku, u64>> {
        self.thresholds.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A header as text; a header that is not visible ASCII is a 400, not ignored.
pub fn header(req: &HttpRequest, name: &str) -> Result<Option<String>, HttpError> {
    single(req, name)?;
    req.headers()
        .get(name)
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                HttpError(ApiError::new(
                    stockade_wire::ErrorKind::BadRequest,
                    stockade_wire::Code::BadHeader,
                    format!("the {name} header must be visible ASCII"),
                ))
            })
        })
        .transpose()
}

/// Refuses a request that sends `name` more than once: taking one of them silently would
/// let a proxy and this server act on different values (another token, another key).
fn single(req: &HttpRequest, name: &str) -> Result<(), HttpError> {
    if req.headers().get_all(name).nth(1).is_some() {
        return Err(HttpError(ApiError::new(
            stockade_wire::ErrorKind::BadRequest,
            stockade_wire::Code::DuplicateHeader,
            format!("the {name} header was sent more than once; send it once"),
        )));
    }
    Ok(())
}

//! `/mcp`: the MCP streamable HTTP transport, bridged from actix-web to rmcp.
//!
//! actix-web speaks `http` 0.2 and rmcp `http` 1, so each request is copied across:
//! the bearer token is checked here exactly as for the REST API (and dropped before the
//! request goes on), the caller it names rides in the request's extensions for the tools
//! to read, and the body is read with the same bounds as every other body. rmcp's answer
//! is copied back: JSON in one piece, an SSE stream as a stream.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use http_body_util::{BodyDataStream, BodyExt, Full};
use stockade_mcp::{Access, McpCaller};
use stockade_wire::{ApiError, ErrorKind};

use crate::auth::{Caller, Need, Role};
use crate::body;
use crate::error::{HttpError, Result};
use crate::state::AppState;

/// Hop-by-hop or framing headers: the side that sends the message sets its own.
const NOT_COPIED: [&str; 4] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

/// `GET`, `POST` and `DELETE /mcp`.
pub async fn endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let Some(service) = state.mcp.as_ref() else {
        return Err(HttpError(ApiError::new(
            ErrorKind::NotFound,
            "not_found",
            "MCP is turned off on this server (mcp.enabled = false)",
        )));
    };
    let caller = mcp_caller(state.authorize(&req, Need::Read, None)?);
    let bytes = if req.method() == actix_web::http::Method::POST {
        body::read(&req, payload, state.config.limits.max_body_bytes).await?
    } else {
        web::Bytes::new()
    };
    let mut builder = http1::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        if name == actix_web::http::header::AUTHORIZATION || NOT_COPIED.contains(&name.as_str()) {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let mut request = builder.body(Full::new(bytes)).map_err(|e| {
        HttpError(ApiError::new(
            ErrorKind::BadRequest,
            "bad_request",
            format!("the request cannot be passed to MCP: {e}"),
        ))
    })?;
    request.extensions_mut().insert(caller);

    let (parts, body) = service.0.handle(request).await.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        if !NOT_COPIED.contains(&name.as_str()) {
            response.append_header((name.as_str(), value.as_bytes()));
        }
    }
    let is_stream = parts
        .headers
        .get(http1::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream {
        return Ok(response.streaming(BodyDataStream::new(body)));
    }
    // The body is in memory already (rmcp's bodies never fail: `Infallible`).
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    Ok(response.body(bytes))
}

/// The REST caller as the MCP tools see it; anonymous where reads are public.
fn mcp_caller(caller: Option<Caller>) -> McpCaller {
    match caller {
        None => McpCaller::anonymous(),
        Some(Caller { role, principal }) => McpCaller {
            access: match role {
                Role::Admin => Access::Admin,
                Role::Channel(channel) => Access::Channel(channel),
                Role::Reader => Access::Reader,
            },
            principal: Some(principal),
        },
    }
}

//! `/mcp`: the MCP streamable HTTP transport, bridged from actix-web to rmcp.
//!
//! actix-web speaks `http` 0.2 and rmcp `http` 1, so each request is copied across:
//! the bearer token is checked here exactly as for the REST API (and dropped before the
//! request goes on), the caller it names rides in the request's extensions for the tools
//! to read, and the body is read with the same bounds as every other body. rmcp's answer
//! is copied back: JSON in one piece, an SSE stream as a stream.
//!
//! The bridge also keeps what rmcp does not:
//! - who opened each session (at `initialize`): a request naming the session under any
//!   other principal (or none) is refused with 403 before rmcp sees it, GET and DELETE
//!   included, so a leaked `Mcp-Session-Id` lends nobody the session;
//! - bounds on open sessions: per principal, in total, and for anonymous callers on a
//!   budget of their own with a shorter idle time (an `initialize` past one gets 503);
//! - the server's load accounting: a call answered as a stream counts as in flight until
//!   the stream ends, and the standalone GET stream takes a slot of `max_streams`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use http_body_util::{BodyDataStream, BodyExt, Full};
use stockade_domain::Principal;
use stockade_mcp::{Access, McpCaller};
use stockade_wire::{ApiError, Code, ErrorKind};

use crate::auth::{Caller, Need, Role};
use crate::body;
use crate::error::{HttpError, Result};
use crate::routes::InFlight;
use crate::state::{AppState, header};
use crate::stream::StreamSlot;

const SESSION_HEADER: &str = "mcp-session-id";

/// Who opened each MCP session, and when it was last used.
///
/// Sessions are bounded per principal: each token may hold `max_sessions_per_principal`,
/// all tokens together `max_sessions`, and sessions without a token have a budget of
/// their own (`max_anonymous_sessions`) and a shorter idle time. So no principal, and no
/// crowd of anonymous clients, can take the sessions another principal needs.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<SessionTable>,
}

#[derive(Debug, Default)]
struct SessionTable {
    owners: HashMap<String, (Option<Principal>, Instant)>,
    /// Anonymous sessions this table stopped counting while rmcp may still keep them (until
    /// its own idle time): refused, so that a forgotten session cannot be used uncounted.
    retired: HashMap<String, Instant>,
}

/// The bounds `Sessions::admit` applies.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max: usize,
    pub per_principal: usize,
    pub anonymous: usize,
    pub idle: Duration,
    pub anonymous_idle: Duration,
}

impl SessionLimits {
    pub fn from_config(c: &crate::config::McpConfig) -> Self {
        Self {
            max: c.max_sessions,
            per_principal: c.max_sessions_per_principal,
            anonymous: c.max_anonymous_sessions,
            idle: Duration::from_secs(c.session_idle_seconds),
            anonymous_idle: Duration::from_secs(c.anonymous_session_idle_seconds),
        }
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionTable> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a request for session `id` from anyone but its owner, and for an anonymous
    /// session that went idle. An id never seen passes: rmcp answers it with 404, as the
    /// protocol wants.
    fn check(&self, id: &str, principal: Option<&Principal>) -> Result<()> {
        let mut table = self.lock();
        if table.retired.contains_key(id) {
            return Err(HttpError(ApiError::new(
                ErrorKind::NotFound,
                Code::SessionExpired,
                "this MCP session was idle too long; initialize a new one",
            )));
        }
        match table.owners.get_mut(id) {
            Some((owner, seen)) if owner.as_ref() == principal => {
                *seen = Instant::now();
                Ok(())
            }
            Some(_) => Err(HttpError(ApiError::new(
                ErrorKind::Forbidden,
                Code::SessionOwner,
                "this MCP session was opened by another principal; initialize a session of your own",
            ))),
            None => Ok(()),
        }
    }

    /// Whether `principal` may open one more session, after forgetting the sessions idle
    /// past their time (rmcp has closed the others by then).
    fn admit(&self, principal: Option<&Principal>, limits: SessionLimits) -> Result<()> {
        let mut table = self.lock();
        let SessionTable { owners, retired } = &mut *table;
        retired.retain(|_, at| at.elapsed() < limits.idle);
        owners.retain(|id, (owner, seen)| {
            let idle = match owner {
                None => limits.anonymous_idle,
                Some(_) => limits.idle,
            };
            let keep = seen.elapsed() < idle;
            if !keep && owner.is_none() {
                retired.insert(id.clone(), Instant::now());
            }
            keep
        });
        let full = |what: &str| {
            Err(unavailable(
                Code::TooManySessions,
                &format!("{what} as many MCP sessions open as allowed; close one or retry later"),
            ))
        };
        let Some(principal) = principal else {
            let anonymous = owners.values().filter(|(o, _)| o.is_none()).count();
            return match anonymous >= limits.anonymous {
                true => full("callers without a token have"),
                false => Ok(()),
            };
        };
        let (mut total, mut own) = (0usize, 0usize);
        for (owner, _) in owners.values() {
            if let Some(owner) = owner {
                total += 1;
                own += usize::from(owner == principal);
            }
        }
        if own >= limits.per_principal {
            return full("this token has");
        }
        if total >= limits.max {
            return full("the server has");
        }
        Ok(())
    }

    fn opened(&self, id: String, principal: Option<Principal>) {
        self.lock().owners.insert(id, (principal, Instant::now()));
    }

    fn closed(&self, id: &str) {
        self.lock().owners.remove(id);
    }
}

/// Whether `body` is a JSON-RPC `initialize` request (the one that opens a session).
fn is_initialize(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("method").and_then(|m| m.as_str()) == Some("initialize"))
}

fn unavailable(code: Code, message: &str) -> HttpError {
    HttpError(ApiError::new(ErrorKind::Unavailable, code, message))
}

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
            Code::NotFound,
            "MCP is turned off on this server (mcp.enabled = false)",
        )));
    };
    let caller = mcp_caller(state.authorize(&req, Need::Read, None)?);
    let method = req.method().clone();
    let session = header(&req, SESSION_HEADER)?;
    if let Some(id) = &session {
        state.mcp_sessions.check(id, caller.principal.as_ref())?;
    }
    let bytes = if method == actix_web::http::Method::POST {
        body::read(&req, payload, state.config.limits.max_body_bytes).await?
    } else {
        web::Bytes::new()
    };
    if session.is_none() && is_initialize(&bytes) {
        state.mcp_sessions.admit(
            caller.principal.as_ref(),
            SessionLimits::from_config(&state.config.mcp),
        )?;
    }
    // The standalone GET stream stays open for the session's life: it is a stream.
    let slot = if method == actix_web::http::Method::GET {
        Some(
            StreamSlot::take(&state.clone().into_inner()).ok_or_else(|| {
                unavailable(
                    Code::TooManyStreams,
                    "the server has as many streams open as it allows",
                )
            })?,
        )
    } else {
        None
    };
    let principal = caller.principal.clone();
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
            Code::BadRequest,
            format!("the request cannot be passed to MCP: {e}"),
        ))
    })?;
    request.extensions_mut().insert(caller);

    let (parts, body) = service.0.handle(request).await.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_success() {
        match (&session, parts.headers.get(SESSION_HEADER)) {
            (None, Some(opened)) => {
                if let Ok(id) = opened.to_str() {
                    state.mcp_sessions.opened(id.to_owned(), principal);
                }
            }
            (Some(id), _) if method == actix_web::http::Method::DELETE => {
                state.mcp_sessions.closed(id);
            }
            _ => {}
        }
    }
    if method == actix_web::http::Method::DELETE && status == StatusCode::ACCEPTED {
        // The session is gone: say so as 204, which every client reads as done (the
        // official Python SDK logs "Session termination failed: 202" otherwise).
        return Ok(HttpResponse::NoContent().finish());
    }
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
        // Held until the stream ends: a POST's stream carries the call's answer, so the
        // call is in flight until then; the GET stream holds its stream slot.
        let call =
            (method == actix_web::http::Method::POST).then(|| InFlight::enter(state.clone()));
        let held = (slot, call);
        let stream = BodyDataStream::new(body).map(move |item| {
            let _ = &held;
            item
        });
        return Ok(response.streaming(stream));
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

//! The route table, and the middleware every request passes: a bound on requests in
//! flight (past it, 503 at once rather than a queue), and the HTTP metrics.
//!
//! - [`api`]: SKUs, stock, adjustments, reservations.
//! - [`fair`]: purchase limits and the waitlist.
//! - [`push`]: SSE and WebSocket streams.
//! - [`ops`]: health, readiness, metrics, the dashboard.
//! - [`mcp`]: the MCP endpoint, bridged to rmcp.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use stockade_wire::{ApiError, Code, ErrorKind};

use crate::error::{HttpError, no_route, wrong_method};
use crate::state::AppState;

pub mod admin;
pub mod api;
pub mod bulk;
pub mod fair;
pub mod mcp;
pub mod ops;
pub mod push;

/// Every route of `stockade serve`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Each resource names the methods it takes: a 405 lists them in `Allow`.
    let resource = |path: &str, allow: &'static str| {
        web::resource(path).default_service(web::to(move |req| wrong_method(req, allow)))
    };
    // Matched in order: the hot path first, and static paths before patterns, so a
    // reservation never pays for trying the `{sku}` patterns.
    cfg.service(resource("/api/reservations", "POST").route(web::post().to(api::reserve)))
        .service(resource("/", "GET").route(web::get().to(ops::dashboard)))
        .service(resource("/stock.js", "GET").route(web::get().to(ops::stock_script)))
        .service(resource("/healthz", "GET").route(web::get().to(ops::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(ops::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(ops::metrics)))
        .service(resource("/api/skus", "POST").route(web::post().to(api::register)))
        .service(resource("/api/skus/import", "POST").route(web::post().to(bulk::import)))
        .service(resource("/api/counts", "POST").route(web::post().to(admin::counts)))
        .service(resource("/api/alerts", "GET").route(web::get().to(admin::alerts)))
        .service(resource("/api/health", "GET").route(web::get().to(admin::health)))
        .service(resource("/api/corrections", "GET").route(web::get().to(admin::corrections)))
        .service(
            resource("/api/alerts/{seq}/ack", "POST").route(web::post().to(admin::acknowledge)),
        )
        .service(resource("/api/dead-letters", "GET").route(web::get().to(admin::dead_letters)))
        .service(resource("/api/dead-letters/replay", "POST").route(web::post().to(admin::replay)))
        .service(resource("/api/orders/{order_id}", "GET").route(web::get().to(admin::order)))
        .service(resource("/api/skus/export", "GET").route(web::get().to(bulk::export_skus)))
        .service(
            resource("/api/reservations/export", "GET")
                .route(web::get().to(bulk::export_reservations)),
        )
        .service(
            resource("/mcp", "GET, POST, DELETE")
                .route(web::post().to(mcp::endpoint))
                .route(web::get().to(mcp::endpoint))
                .route(web::delete().to(mcp::endpoint)),
        )
        .service(resource("/api/events", "GET").route(web::get().to(push::events)))
        .service(resource("/api/ws", "GET").route(web::get().to(push::websocket)))
        .service(resource("/api/inventory/products", "GET").route(web::get().to(api::list)))
        .service(resource("/api/inventory/products/{sku}", "GET").route(web::get().to(api::stock)))
        .service(
            resource("/api/inventory/products/{sku}/adjustments", "POST")
                .route(web::post().to(api::adjust)),
        )
        .service(
            resource("/api/inventory/products/{sku}/transfers", "POST")
                .route(web::post().to(api::ship_transfer)),
        )
        .service(
            resource(
                "/api/inventory/products/{sku}/transfers/{id}/receive",
                "POST",
            )
            .route(web::post().to(api::receive_transfer)),
        )
        .service(
            resource("/api/inventory/products/{sku}/backorders", "POST")
                .route(web::post().to(api::set_backorder_limit)),
        )
        .service(
            resource("/api/inventory/products/{sku}/receipts", "POST")
                .route(web::post().to(api::expect_receipt)),
        )
        .service(
            resource(
                "/api/inventory/products/{sku}/receipts/{reference}/receive",
                "POST",
            )
            .route(web::post().to(api::receive_receipt)),
        )
        .service(
            resource(
                "/api/inventory/products/{sku}/receipts/{reference}/cancel",
                "POST",
            )
            .route(web::post().to(api::cancel_receipt)),
        )
        .service(
            resource("/api/inventory/products/{sku}/fair-selling", "GET, PUT")
                .route(web::get().to(fair::get))
                .route(web::put().to(fair::set)),
        )
        .service(
            resource("/api/inventory/products/{sku}/waitlist", "POST")
                .route(web::post().to(fair::join)),
        )
        .service(
            resource(
                "/api/inventory/products/{sku}/waitlist/{customer}",
                "GET, DELETE",
            )
            .route(web::get().to(fair::place))
            .route(web::delete().to(fair::leave)),
        )
        .service(resource("/api/reservations/{id}", "GET").route(web::get().to(api::reservation)))
        .service(
            resource("/api/reservations/{id}/commit", "POST").route(web::post().to(api::commit)),
        )
        .service(
            resource("/api/reservations/{id}/release", "POST").route(web::post().to(api::release)),
        )
        .service(
            resource("/api/reservations/{id}/extend", "POST").route(web::post().to(api::extend)),
        )
        .service(resource("/api/reservations/{id}/amend", "POST").route(web::post().to(api::amend)))
        .default_service(web::to(no_route));
}

/// Streams are bounded by `max_streams` instead: they stay open for hours.
fn is_stream(path: &str) -> bool {
    path == "/api/events" || path == "/api/ws"
}

/// Sheds requests past `max_concurrent_requests` with 503, and records every answer.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    if let Err(refusal) = state.host_check.check(
        req.headers()
            .get(actix_web::http::header::HOST)
            .and_then(|v| v.to_str().ok()),
        req.headers()
            .get(actix_web::http::header::ORIGIN)
            .and_then(|v| v.to_str().ok()),
    ) {
        let (code, what) = match refusal {
            crate::host::Refusal::Host => (Code::HostNotAllowed, "Host"),
            crate::host::Refusal::Origin => (Code::OriginNotAllowed, "Origin"),
        };
        let error = HttpError(ApiError::new(
            ErrorKind::Forbidden,
            code,
            format!("this server does not answer requests with that {what} header"),
        ));
        return Ok(req.into_response(error.error_response().map_into_right_body()));
    }
    let anonymous = !authenticated(&req, &state);
    if anonymous
        && let Some(peer) = req.peer_addr()
        && !state.anonymous_limit.allow(peer.ip())
    {
        metrics::counter!("stockade_http_shed_total").increment(1);
        let error = HttpError(ApiError::new(
            ErrorKind::TooManyRequests,
            Code::RateLimited,
            "this address sends more requests without a token than the server takes; slow down",
        ));
        return Ok(req.into_response(error.error_response().map_into_right_body()));
    }
    let cors = cross_origin(&req, &state);
    if let (Some(origin), true) = (&cors, req.method() == actix_web::http::Method::OPTIONS) {
        // A preflight for a public read from an allowed origin.
        let response = actix_web::HttpResponse::NoContent()
            .insert_header(("Access-Control-Allow-Origin", origin.as_str()))
            .insert_header(("Access-Control-Allow-Methods", "GET"))
            .insert_header(("Access-Control-Allow-Headers", "Last-Event-ID"))
            .insert_header(("Access-Control-Max-Age", "600"))
            .insert_header(("Vary", "Origin"))
            .finish()
            .map_into_right_body();
        return Ok(req.into_response(response));
    }
    let counted = !is_stream(req.path());
    // A body from a caller without valid credentials is read on its own budget, within a
    // shorter deadline (see `body`): it cannot starve anyone else.
    let anonymous_body = counted && has_body(&req) && anonymous;
    if anonymous_body {
        actix_web::HttpMessage::extensions_mut(&req).insert(AnonymousBody);
    }
    if counted {
        let (count, max) = match anonymous_body {
            true => (
                &state.anonymous_in_flight,
                state.config.limits.max_anonymous_bodies,
            ),
            false => (
                &state.in_flight,
                state.config.limits.max_concurrent_requests,
            ),
        };
        let admitted = count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            metrics::counter!("stockade_http_shed_total").increment(1);
            let error = HttpError(ApiError::new(
                ErrorKind::Unavailable,
                Code::Overloaded,
                "the server has as many requests in flight as it allows; retry shortly",
            ));
            let response = error.error_response().map_into_right_body();
            return Ok(req.into_response(response));
        }
    }
    let _in_flight = counted.then(|| InFlight {
        state: state.clone(),
        anonymous: anonymous_body,
    });
    let started = Instant::now();
    let mut response = next.call(req).await?;
    if let Some(origin) = cors
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&origin)
    {
        let headers = response.headers_mut();
        headers.insert(actix_web::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            actix_web::http::header::VARY,
            actix_web::http::header::HeaderValue::from_static("Origin"),
        );
    }
    if state.closing.load(Ordering::Acquire) {
        // Shutting down: close keep-alive connections after this answer, so the grace
        // period drains them instead of serving their next requests until it runs out.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16().to_string();
    metrics::counter!("stockade_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    if counted {
        metrics::histogram!("stockade_http_request_seconds", "route" => route)
            .record(started.elapsed().as_secs_f64());
    }
    Ok(response.map_into_left_body())
}

/// The request's `Origin`, when it is one of `cors.allowed_origins` and the request is a
/// public read (the storefront indicator's script, stock, the live stream): then the
/// answer carries `Access-Control-Allow-Origin`. Writes never do.
fn cross_origin(req: &ServiceRequest, state: &AppState) -> Option<String> {
    let allowed = &state.config.cors.allowed_origins;
    if allowed.is_empty() {
        return None;
    }
    let read = matches!(
        *req.method(),
        actix_web::http::Method::GET
            | actix_web::http::Method::HEAD
            | actix_web::http::Method::OPTIONS
    );
    let path = req.path();
    let public = path == "/stock.js"
        || path == "/api/events"
        || path == "/api/inventory/products"
        || path.starts_with("/api/inventory/products/") && !path.ends_with("/adjustments");
    if !(read && public) {
        return None;
    }
    let origin = req
        .headers()
        .get(actix_web::http::header::ORIGIN)?
        .to_str()
        .ok()?;
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(origin))
        .map(|_| origin.to_owned())
}

/// Marks a request whose body comes from a caller without valid credentials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnonymousBody;

/// Whether the request says a body follows.
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if headers.contains_key(actix_web::http::header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(actix_web::http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().map_or(true, |v| v.trim() != "0"))
}

/// Whether the request carries a token this server knows (the handler still checks that
/// its role may do what it asks).
fn authenticated(req: &ServiceRequest, state: &AppState) -> bool {
    let Some(token) = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
    else {
        return false;
    };
    let caller = state.tokens.find(token).cloned();
    let known = caller.is_some();
    actix_web::HttpMessage::extensions_mut(req).insert(LookedUp {
        token: token.to_owned(),
        caller,
    });
    known
}

/// The header token the middleware looked up, and whom it names: `AppState::authorize`
/// reuses it instead of hashing the token a second time per request.
#[derive(Debug, Clone)]
pub(crate) struct LookedUp {
    pub token: String,
    pub caller: Option<crate::auth::Caller>,
}

/// One request in flight; counted out when dropped, even if the handler failed.
pub(crate) struct InFlight {
    state: web::Data<AppState>,
    anonymous: bool,
}

impl InFlight {
    /// Counts in work that outlives its response head (an MCP call answered as a
    /// stream): admission was the middleware's; this keeps the count true.
    pub(crate) fn enter(state: web::Data<AppState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Self {
            state,
            anonymous: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let count = match self.anonymous {
            true => &self.state.anonymous_in_flight,
            false => &self.state.in_flight,
        };
        count.fetch_sub(1, Ordering::AcqRel);
    }
}

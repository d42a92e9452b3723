//! The operator's REST endpoints, everything an admin console needs beyond stock and
//! reservations (all admin-only, enforced here):
//! - `POST /api/counts` (`?dry_run=true`): a physical-count CSV, previewed or applied, as
//!   `stockade reconcile --counts` does from the command line;
//! - `GET /api/alerts` (`?open=true`: unacknowledged only) and `POST /api/alerts/{seq}/ack`:
//!   low-stock, out-of-stock and short alerts, oldest first, paged by `seq`, and an
//!   operator's acknowledgement of one (kept apart from the derived tables, so a rebuild
//!   keeps it);
//! - `GET /api/dead-letters` and `POST /api/dead-letters/replay`: the webhook notices given
//!   up on, and one more try of each with the configured endpoints;
//! - `GET /api/orders/{order_id}`: an order's reservation lines;
//! - `GET /api/corrections`: the read-model rows the reconciler found wrong and repaired;
//! - `GET /api/health`: how far the read models are behind the log, and each webhook
//!   endpoint's backlog and dead letters.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use stockade_projections::webhook::{Endpoint, Sender, replay_dead_letters};
use stockade_wire::{
    ApiError, Code, CountOut, DeadLetterOut, DeadLetterReplayOut, EndpointReplayOut, ErrorKind,
};

use crate::auth::Need;
use crate::body;
use crate::error::{HttpError, Result};
use crate::routes::api::{serde_urlencoded_query, shared};
use crate::routes::bulk::ReservationLineOut;
use crate::state::AppState;

/// The largest count file accepted.
const MAX_COUNTS_BYTES: usize = 8 * 1024 * 1024;
/// Most alerts per page.
const MAX_ALERTS: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountsQuery {
    #[serde(default)]
    dry_run: Option<bool>,
}

/// `POST /api/counts`.
pub async fn counts(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let query: CountsQuery = serde_urlencoded_query(req.query_string())?;
    let bytes = body::read(&req, payload, MAX_COUNTS_BYTES).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        HttpError(ApiError::new(
            ErrorKind::BadRequest,
            Code::MalformedCounts,
            "the count file is not UTF-8",
        ))
    })?;
    let counts = stockade_projections::reconcile::parse_counts(text).map_err(|e| {
        HttpError(
            ApiError::new(ErrorKind::Unprocessable, Code::InvalidCounts, e.to_string())
                .with("line", e.line),
        )
    })?;
    let state = shared(&state);
    let dry_run = query.dry_run.unwrap_or(false);
    let outcomes = actix_web::rt::spawn(async move {
        stockade_projections::reconcile::apply_counts(&state.inventory, &counts, dry_run).await
    })
    .await
    .map_err(|e| {
        HttpError(ApiError::new(
            ErrorKind::Unavailable,
            Code::Unavailable,
            format!("the counts' task ended early: {e}"),
        ))
    })??;
    let counts: Vec<CountOut> = outcomes.iter().map(CountOut::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "dry_run": dry_run, "counts": counts })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
    /// Only the alerts nobody has acknowledged.
    #[serde(default)]
    open: Option<bool>,
}

/// A page's size: 100 unless asked, at most `MAX_ALERTS`.
fn page_size(limit: Option<usize>) -> Result<usize> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > MAX_ALERTS {
        return Err(HttpError(ApiError::invalid(
            "limit",
            format!("limit must be 1-{MAX_ALERTS}"),
        )));
    }
    Ok(limit)
}

/// `GET /api/alerts`.
pub async fn alerts(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let query: AlertsQuery = serde_urlencoded_query(req.query_string())?;
    let limit = page_size(query.limit)?;
    let after = query.after.unwrap_or(0);
    let alerts = match query.open {
        Some(true) => state.models.open_alerts(after, limit).await?,
        _ => state.models.alerts(after, limit).await?,
    };
    let items: Vec<serde_json::Value> = alerts
        .iter()
        .map(|a| {
            serde_json::json!({
                "seq": a.seq, "sku": a.sku, "kind": a.kind, "available": a.available,
                "threshold": a.threshold, "version": a.version, "at": a.at.to_string(),
                "acknowledged_at": a.acknowledged.as_ref().map(|(at, _)| at.to_string()),
                "acknowledged_by": a.acknowledged.as_ref().map(|(_, by)| by.clone()),
            })
        })
        .collect();
    let next_after = (alerts.len() == limit).then(|| alerts.last().map(|a| a.seq));
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "items": items, "next_after": next_after.flatten() })))
}

/// `POST /api/alerts/{seq}/ack`: the operator has seen it.
pub async fn acknowledge(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let caller = state.authorize(&req, Need::Admin, None)?;
    let Ok(seq) = path.parse::<u64>() else {
        return Err(HttpError(ApiError::new(
            ErrorKind::NotFound,
            Code::NotFound,
            "alerts are named by their seq (a number)",
        )));
    };
    let by = caller.map_or_else(|| "admin".to_owned(), |c| c.principal.to_string());
    if !state.models.acknowledge_alert(seq, &by).await? {
        return Err(HttpError(ApiError::new(
            ErrorKind::NotFound,
            Code::NotFound,
            format!("alert {seq} not found"),
        )));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "seq": seq, "acknowledged": true })))
}

/// `GET /api/dead-letters`.
pub async fn dead_letters(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let letters = state.models.dead_letters(None).await?;
    let items: Vec<DeadLetterOut> = letters.iter().map(DeadLetterOut::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `POST /api/dead-letters/replay`: one more try of every dead letter, with the endpoints
/// of this server's configuration.
pub async fn replay(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let mut endpoints = Vec::new();
    for hook in &state.config.webhooks {
        let sender = Sender::new(
            Endpoint::new(&hook.name, &hook.url, &hook.secret),
            stockade_wire::webhook::body,
        )?;
        let report = replay_dead_letters(&state.models, &sender).await?;
        endpoints.push(EndpointReplayOut::new(&hook.name, &report));
    }
    if let Ok(depth) = state.models.dead_letter_count().await {
        metrics::gauge!("stockade_dlq_depth").set(depth as f64);
    }
    Ok(HttpResponse::Ok().json(DeadLetterReplayOut {
        endpoints,
        unconfigured: None,
    }))
}

/// `GET /api/orders/{order_id}`.
pub async fn order(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let order = stockade_wire::request::order_id(&path)?;
    let rows = state.models.order(order.as_str()).await?;
    if rows.is_empty() {
        return Err(HttpError(ApiError::new(
            ErrorKind::NotFound,
            Code::NotFound,
            format!("order {order} not found"),
        )));
    }
    let lines: Vec<ReservationLineOut> = rows.into_iter().map(ReservationLineOut::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "order_id": order.as_str(), "lines": lines })))
}

/// `GET /api/health`.
pub async fn health(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let head = state.inventory.store().head().await.map_err(|e| {
        HttpError(ApiError::new(
            ErrorKind::Unavailable,
            Code::Unavailable,
            e.to_string(),
        ))
    })?;
    let checkpoint = state.models.checkpoint().await?;
    let letters = state.models.dead_letters(None).await?;
    let mut webhooks = Vec::new();
    for hook in &state.config.webhooks {
        let channel = format!("webhook:{}", hook.name);
        let cursor = state.models.cursor_or_start(&channel).await?;
        webhooks.push(serde_json::json!({
            "endpoint": hook.name,
            "delivered_up_to": cursor,
            "backlog": checkpoint.events.saturating_sub(cursor),
            "dead_letters": letters.iter().filter(|l| l.channel == channel).count(),
        }));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "projection": {
            "log_head": head.to_string(),
            "projected_to": checkpoint.position.to_string(),
            "caught_up": checkpoint.position >= head,
            "notices": checkpoint.events,
        },
        "dead_letters": letters.len(),
        "webhooks": webhooks,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectionsQuery {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /api/corrections`.
pub async fn corrections(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Admin, None)?;
    let query: CorrectionsQuery = serde_urlencoded_query(req.query_string())?;
    let limit = page_size(query.limit)?;
    let rows = state
        .models
        .corrections(query.after.unwrap_or(0), limit)
        .await?;
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|(seq, sku, found, expected)| {
            serde_json::json!({"seq": seq, "sku": sku, "found": parse(found), "expected": parse(expected)})
        })
        .collect();
    let next_after = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.0))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_after": next_after })))
}

//! Operations endpoints: `/healthz` (the process answers), `/readyz` (it can serve: the
//! store and the read models answer, and it is not shutting down), `/metrics`
//! (Prometheus text), and the dashboard page at `/`.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::auth::Need;
use crate::error::Result;
use crate::state::AppState;
use crate::telemetry;

/// The dashboard: one self-contained page, compiled into the binary.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.closing.load(Ordering::Acquire) {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "shutting_down"}));
    }
    let head = state.inventory.store().head().await;
    let checkpoint = state.models.checkpoint().await;
    match (head, checkpoint) {
        (Ok(head), Ok(checkpoint)) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "log_position": head.to_string(),
            "projected_position": checkpoint.position.to_string(),
            "notices": checkpoint.events,
            "projection_caught_up": checkpoint.position >= head,
        })),
        (head, checkpoint) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "store": head.err().map(|e| e.to_string()),
            "read_models": checkpoint.err().map(|e| e.to_string()),
        })),
    }
}

pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse> {
    state.authorize(&req, Need::Read, None)?;
    // The engine keeps plain counters; they are copied into the registry when scraped.
    let stats = state.inventory.stats();
    metrics::gauge!("stockade_active_skus").set(state.inventory.active_skus() as f64);
    metrics::gauge!("stockade_engine_appends").set(stats.appends as f64);
    metrics::gauge!("stockade_engine_commands").set(stats.commands as f64);
    metrics::gauge!("stockade_engine_conflicts").set(stats.conflicts as f64);
    metrics::gauge!("stockade_engine_max_batch").set(stats.max_batch as f64);
    Ok(match telemetry::handle() {
        Some(handle) => {
            handle.run_upkeep();
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4")
                .body(handle.render())
        }
        None => HttpResponse::ServiceUnavailable()
            .json(json!({"error": "unavailable", "message": "another metrics recorder is installed in this process"})),
    })
}

pub async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(DASHBOARD)
}

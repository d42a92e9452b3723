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
/// The storefront indicator (`<stockade-stock>`), see `docs/storefront.md`.
const STOCK_SCRIPT: &str = include_str!("../../assets/stock.js");

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
    // Read at each scrape, not only when this process changes it: `stockade dlq replay`
    // run beside the server empties the queue from another process.
    if let Ok(depth) = state.models.dead_letter_count().await {
        metrics::gauge!("stockade_dlq_depth").set(depth as f64);
    }
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
    static POLICY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| content_security_policy(DASHBOARD));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("Content-Security-Policy", policy.as_str()))
        // For browsers that predate `frame-ancestors`.
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(DASHBOARD)
}

/// `GET /stock.js`: the storefront indicator, for any shop page to embed.
pub async fn stock_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(STOCK_SCRIPT)
}

/// The dashboard's policy: its own inline script and style (by hash) and nothing else;
/// requests to this origin only; never framed (no clickjacking of an operator's session).
fn content_security_policy(page: &str) -> String {
    let hashes = |open: &str, close: &str| -> String {
        let mut out = String::new();
        let mut rest = page;
        while let Some(start) = rest.find(open) {
            let body = &rest[start + open.len()..];
            let Some(end) = body.find(close) else { break };
            let digest = ring::digest::digest(&ring::digest::SHA256, &body.as_bytes()[..end]);
            out.push_str(&format!(" 'sha256-{}'", base64(digest.as_ref())));
            rest = &body[end..];
        }
        out
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes("<script>", "</script>"),
        hashes("<style>", "</style>")
    )
}

/// Standard base64 with padding (RFC 4648), for CSP hashes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn the_policy_names_the_inline_script_and_style_and_forbids_framing() {
        let policy = content_security_policy(DASHBOARD);
        assert!(policy.contains("script-src 'sha256-"), "{policy}");
        assert!(policy.contains("style-src 'sha256-"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
    }
}

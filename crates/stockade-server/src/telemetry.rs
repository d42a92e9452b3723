//! Prometheus metrics: one process-wide recorder, rendered by `GET /metrics`, plus the
//! HTTP layer's own counters and latency histograms.
//!
//! The recorder is installed once per process; a second server in the same process (a
//! test) shares it. Histograms are exported as buckets, so that p99s can be computed
//! across instances.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds: from a fraction of a millisecond (an in-memory read) to a stalled disk.
const BUCKETS: [f64; 16] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
    30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets. Until then the
/// exporter keeps every sample: with nobody scraping `/metrics`, a histogram recorded per
/// notice or per request grew without bound (the soak in `docs/reliability.md` found it).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's recorder, installed on first use; `None` if another recorder was
/// installed first by the embedding program (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    let upkeep = handle.clone();
                    let started = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = started {
                        tracing::warn!(error = %e, "metrics upkeep not started; /metrics renders drain samples");
                    }
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        "stockade_http_requests_total",
        "HTTP requests answered, by route and status"
    );
    metrics::describe_histogram!(
        "stockade_http_request_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by route"
    );
    metrics::describe_counter!(
        "stockade_http_shed_total",
        "Requests refused at once because the server had too many in flight"
    );
    metrics::describe_counter!(
        "stockade_reservations_total",
        "Reservation requests, by outcome (held, refused, error)"
    );
    metrics::describe_gauge!("stockade_streams_open", "Open SSE and WebSocket streams");
    metrics::describe_counter!(
        "stockade_delivery_total",
        "Notices sent on push streams, by channel"
    );
}

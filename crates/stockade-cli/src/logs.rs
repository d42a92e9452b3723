//! Where the command's logs go (stderr, warnings and errors), and how loud a client can
//! make them. Libraries that speak to clients (the HTTP server, the MCP transport) log a
//! malformed or abandoned request at ERROR, so any client could fill an operator's log
//! with errors that are not the server's. Their events are shown as WARN at most, and at
//! most [`PER_MINUTE`] a minute each; the rest of a minute's are dropped.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::subscriber::Interest;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets, dynamic_filter_fn};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Events a client-facing library may log per minute.
pub const PER_MINUTE: u64 = 20;

/// Targets whose errors a client can cause.
const CLIENT_FACING: [&str; 5] = ["actix_http", "actix_web", "actix_ws", "rmcp", "h2"];

fn client_facing(target: &str) -> bool {
    CLIENT_FACING
        .iter()
        .any(|t| target == *t || target.strip_prefix(t).is_some_and(|r| r.starts_with("::")))
}

/// Installs the subscriber for the process.
pub fn init() {
    let targets = Targets::new()
        .with_default(LevelFilter::WARN)
        // The EventStoreDB client logs every failed connection attempt, which the backend
        // already reports in its errors.
        .with_target("kurrentdb", LevelFilter::OFF);
    let budget = Budget::default();
    // Dynamic: asked for every event (a plain filter's answer is cached per call site,
    // which would spend the budget once and never again).
    // Asked per event only where it counts: client-facing targets at WARN and above. Every
    // other call site is decided once (a plain filter's cached answer would spend the
    // budget once and never again), and nothing below WARN is ever asked, so the hot
    // paths' debug and trace events stay disabled at their call sites.
    let limited = dynamic_filter_fn(move |meta, _| {
        *meta.level() <= Level::WARN && (!client_facing(meta.target()) || budget.take())
    })
    .with_max_level_hint(LevelFilter::WARN)
    .with_callsite_filter(|meta| {
        match (*meta.level() <= Level::WARN, client_facing(meta.target())) {
            (false, _) => Interest::never(),
            (true, true) => Interest::sometimes(),
            (true, false) => Interest::always(),
        }
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour for a person at a terminal; plain text for a file or a collector.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .event_format(Demoted::default())
                .with_filter(targets)
                .with_filter(limited),
        )
        .init();
}

/// A shared per-minute allowance.
#[derive(Default)]
struct Budget {
    minute: AtomicU64,
    used: AtomicU64,
}

impl Budget {
    fn take(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60);
        if self.minute.swap(now, Ordering::AcqRel) != now {
            self.used.store(0, Ordering::Release);
        }
        self.used.fetch_add(1, Ordering::AcqRel) < PER_MINUTE
    }
}

/// The default format, but an ERROR from a client-facing library is written as WARN.
#[derive(Default)]
struct Demoted {
    inner: format::Format,
}

impl<S, N> FormatEvent<S, N> for Demoted
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        if *meta.level() == Level::ERROR && client_facing(meta.target()) {
            SystemTime.format_time(&mut writer)?;
            write!(writer, "  WARN {}: ", meta.target())?;
            ctx.field_format().format_fields(writer.by_ref(), event)?;
            return writeln!(writer);
        }
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_facing_targets_are_matched_by_crate() {
        assert!(client_facing("rmcp"));
        assert!(client_facing(
            "rmcp::transport::streamable_http_server::tower"
        ));
        assert!(!client_facing("rmcpx"));
        assert!(!client_facing("stockade_server::routes"));
    }

    #[test]
    fn the_budget_runs_out_within_a_minute() {
        let budget = Budget::default();
        let allowed = (0..PER_MINUTE * 2).filter(|_| budget.take()).count() as u64;
        // A minute boundary may fall inside the loop: at most two minutes' worth.
        assert!(
            (PER_MINUTE..=PER_MINUTE * 2).contains(&allowed),
            "{allowed}"
        );
    }
}

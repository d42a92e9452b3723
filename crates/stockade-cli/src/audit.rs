//! `stockade audit`: the history of stock (when, what, who, why, before and after), and
//! `stockade audit verify`: the whole log checked against its invariants.
//!
//! Verify reads the log once with the engine's independent checker (`audit::check_log`,
//! which shares no bookkeeping with the domain), then compares every read-model row with
//! the state folded from the log at the row's version. Each violation is printed with its
//! log position; the exit status is 1 if there is any.

use std::sync::Arc;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use stockade_domain::{OrderId, Sku, Timestamp};
use stockade_engine::audit::check_log_with;
use stockade_engine::replay::{Entry, Figures, HistoryFilter, history, history_each};
use stockade_projections::reconcile::Reconciler;
use stockade_store::EventStore;

use crate::args::{parse_duration, parse_order, parse_sku};
use crate::log::{Format, LogArgs, csv_line, json, qty};
use crate::report::Table;

/// `audit verify --key-retention`'s default: the engine's default key window, 8 days.
const KEY_RETENTION_DEFAULT: &str = "192h";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Audit {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    #[command(flatten)]
    history: History,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the whole log against its invariants; exit status 1 on any violation.
    Verify(Verify),
}

#[derive(Debug, Args)]
struct History {
    #[command(flatten)]
    log: LogArgs,
    /// Only this SKU.
    #[arg(long, value_parser = parse_sku)]
    sku: Option<Sku>,
    /// Only this order's reservations and what resolved them.
    #[arg(long, value_parser = parse_order)]
    order: Option<OrderId>,
    /// Events decided at or after this instant (RFC 3339).
    #[arg(long)]
    from: Option<Timestamp>,
    /// Events decided at or before this instant (RFC 3339).
    #[arg(long)]
    to: Option<Timestamp>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct Verify {
    #[command(flatten)]
    log: LogArgs,
    /// How long the engine that wrote the log recognises idempotency keys (its
    /// `idempotency_retention`; 8 days by default, 24h for logs written before the
    /// history indexes): a key seen again after this is a new request.
    #[arg(long, default_value = KEY_RETENTION_DEFAULT, value_parser = parse_duration)]
    key_retention: std::time::Duration,
    /// `json` prints one object with the counts and every violation.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// The report, and whether the log is clean.
pub async fn run(args: Audit) -> Result<(String, bool), String> {
    match args.command {
        Some(AuditCommand::Verify(verify)) => run_verify(verify).await,
        None => run_history(args.history).await.map(|text| (text, true)),
    }
}

async fn run_history(args: History) -> Result<String, String> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(format!("--from {from} is after --to {to}"));
    }
    let store = args.log.open_store().await?;
    let filter = HistoryFilter {
        sku: args.sku,
        order: args.order,
        from: args.from,
        to: args.to,
    };
    match args.format {
        // Streamed: a whole log's history need not fit in memory.
        Format::Json | Format::Csv => {
            stream_history(store.as_ref(), &filter, args.format).await?;
            Ok(String::new())
        }
        Format::Table => {
            let entries = history(store.as_ref(), &filter)
                .await
                .map_err(|e| e.to_string())?;
            let mut t = Table::new([
                "position",
                "at",
                "sku",
                "event",
                "qty",
                "who",
                "why",
                "on hand",
                "reserved",
                "available",
            ])
            .text_columns(&[1, 2, 3, 5, 6]);
            for e in &entries {
                t.row(table_cells(e));
            }
            Ok(if t.is_empty() {
                "No events match.".to_owned()
            } else {
                format!("{} event(s)\n\n{}", entries.len(), t.render())
            })
        }
    }
}

/// Writes the history to stdout as it is read: a JSON array, or CSV with a header. A
/// reader that has gone (`| head`) ends the listing quietly.
async fn stream_history(
    store: &dyn stockade_store::EventStore,
    filter: &HistoryFilter,
    format: Format,
) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut first = true;
    let mut failed: Option<String> = None;
    let opening = match format {
        Format::Json => "[".to_owned(),
        _ => csv_line(&CSV_HEADER),
    };
    if writeln!(out, "{opening}").is_err() {
        return Ok(());
    }
    history_each(store, filter, |e| {
        let line = match format {
            Format::Json => match serde_json::to_string(&e) {
                Ok(json) => format!("{}  {json}", if first { "" } else { ",\n" }),
                Err(err) => {
                    failed = Some(format!("render JSON: {err}"));
                    return false;
                }
            },
            _ => csv_line(&csv_cells(&e)),
        };
        first = false;
        match format {
            Format::Json => write!(out, "{line}").is_ok(),
            _ => writeln!(out, "{line}").is_ok(),
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    if format == Format::Json {
        let _ = writeln!(out, "{}]", if first { "" } else { "\n" });
    }
    let _ = out.flush();
    Ok(())
}

const CSV_HEADER: [&str; 23] = [
    "position",
    "at",
    "recorded_at",
    "sku",
    "revision",
    "event",
    "qty",
    "delta",
    "principal",
    "channel",
    "order_id",
    "reservation_id",
    "reason",
    "reference",
    "correlation_id",
    "idempotency_key",
    "on_hand_before",
    "on_hand_after",
    "reserved_before",
    "reserved_after",
    "available_before",
    "available_after",
    "inconsistent",
];

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn figure(f: Option<Figures>, pick: fn(&Figures) -> Option<u64>) -> String {
    f.map_or_else(String::new, |f| qty(pick(&f)))
}

fn change(e: &Entry, pick: fn(&Figures) -> Option<u64>) -> String {
    let (before, after) = (figure(e.before, pick), figure(e.after, pick));
    if before == after || before.is_empty() {
        after
    } else {
        format!("{before} → {after}")
    }
}

fn limit(f: &Figures) -> Option<u64> {
    f.limit
}
fn reserved(f: &Figures) -> Option<u64> {
    Some(f.reserved)
}
fn available(f: &Figures) -> Option<u64> {
    f.available
}

fn table_cells(e: &Entry) -> [String; 10] {
    let who = match (&e.principal, &e.channel) {
        (Some(p), Some(c)) => format!("{p} via {c}"),
        (Some(p), None) => p.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => String::new(),
    };
    let mut why = opt(&e.reason);
    if let Some(order) = &e.order_id {
        why = format!("order {order}; {why}");
    }
    if let Some(reference) = &e.reference {
        why = format!("{why} ({reference})");
    }
    if let Some(problem) = &e.inconsistent {
        why = format!("{why} [INCONSISTENT: {problem}]");
    }
    let event = match e.reservation_id {
        Some(id) => format!("{} {id}", e.event),
        None => e.event.to_owned(),
    };
    [
        e.position.to_string(),
        e.at.to_string(),
        e.sku.to_string(),
        event,
        // A reservation's units, or an adjustment's change (signed).
        e.qty
            .map(|q| q.to_string())
            .or_else(|| e.delta.map(|d| format!("{d:+}")))
            .unwrap_or_default(),
        who,
        why,
        change(e, limit),
        change(e, reserved),
        change(e, available),
    ]
}

fn csv_cells(e: &Entry) -> [String; 23] {
    [
        e.position.to_string(),
        e.at.to_string(),
        e.recorded_at.to_string(),
        e.sku.to_string(),
        e.revision.to_string(),
        e.event.to_owned(),
        e.qty.map(|q| q.to_string()).unwrap_or_default(),
        e.delta.map(|d| d.to_string()).unwrap_or_default(),
        opt(&e.principal),
        opt(&e.channel),
        opt(&e.order_id),
        e.reservation_id.map(|r| r.to_string()).unwrap_or_default(),
        opt(&e.reason),
        opt(&e.reference),
        opt(&e.correlation_id),
        opt(&e.idempotency_key),
        figure(e.before, limit),
        figure(e.after, limit),
        figure(e.before, reserved),
        figure(e.after, reserved),
        figure(e.before, available),
        figure(e.after, available),
        opt(&e.inconsistent),
    ]
}

/// What `audit verify --format json` prints.
#[derive(Debug, Serialize)]
struct Verdict {
    events: u64,
    skus: u64,
    reserved: u64,
    committed: u64,
    released: u64,
    expired: u64,
    oversold_units: u64,
    read_models_checked: bool,
    violations: Vec<String>,
}

async fn run_verify(args: Verify) -> Result<(String, bool), String> {
    let store = args.log.open_store().await?;
    let head = store
        .head()
        .await
        .map_err(|e| format!("read the log: {e}"))?;
    let bar = ProgressBar::new(head.commit);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} verify [{bar:40}] {percent:>3}% {msg} ({elapsed} elapsed, {eta} left)",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    bar.set_message("reading the log");
    let report = check_log_with(
        &store,
        |_| true,
        args.key_retention,
        |p| bar.set_position(p.commit),
    )
    .await
    .map_err(|e| format!("read the log: {e}"))?;
    bar.finish_and_clear();
    let mut violations = report.violations;
    let models = args.log.open_models().await?;
    let read_models_checked = models.is_some();
    if let Some(models) = models {
        violations.extend(check_read_models(&store, models).await?);
    }
    let clean = violations.is_empty();
    let verdict = Verdict {
        events: report.events,
        skus: report.skus,
        reserved: report.reserved,
        committed: report.committed,
        released: report.released,
        expired: report.expired,
        oversold_units: report.oversold_units,
        read_models_checked,
        violations,
    };
    let text = match args.format {
        Format::Json => json(&verdict)?,
        Format::Csv => return Err("audit verify prints a table or JSON".into()),
        Format::Table => {
            let mut t = Table::new(["", ""]);
            t.row(["events", &verdict.events.to_string()]);
            t.row(["SKUs", &verdict.skus.to_string()]);
            t.row(["reservations", &verdict.reserved.to_string()]);
            t.row(["commits", &verdict.committed.to_string()]);
            t.row(["releases", &verdict.released.to_string()]);
            t.row(["expiries", &verdict.expired.to_string()]);
            t.row(["oversold units", &verdict.oversold_units.to_string()]);
            t.row([
                "read models",
                if read_models_checked {
                    "compared with the log"
                } else {
                    "none in the data directory"
                },
            ]);
            t.row(["violations", &verdict.violations.len().to_string()]);
            let mut out = t.render_untitled();
            if clean {
                out.push_str("\nThe log keeps every invariant.\n");
            } else {
                out.push('\n');
                for v in &verdict.violations {
                    out.push_str(&format!("VIOLATION {v}\n"));
                }
            }
            out
        }
    };
    Ok((text, clean))
}

/// Every read-model row that differs from the state the log folds to at the row's version,
/// and read models that claim to be past the end of the log.
async fn check_read_models(
    store: &Arc<dyn EventStore>,
    models: stockade_projections::ReadModels,
) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    // The checkpoint first, then the head: beside a running server both move on, and the
    // projector never passes the log, so only read models from elsewhere can be ahead.
    let checkpoint = models
        .checkpoint()
        .await
        .map_err(|e| format!("read the read models: {e}"))?;
    let head = store
        .head()
        .await
        .map_err(|e| format!("read the log: {e}"))?;
    if checkpoint.position > head {
        found.push(format!(
            "position {}: the read models are past the log's head {head} (from another log?)",
            checkpoint.position
        ));
        return Ok(found);
    }
    let corrections = Reconciler::new(store.clone(), models)
        .reconcile(true)
        .await
        .map_err(|e| format!("read model row beyond the log: {e}"))?;
    for c in corrections {
        let show = |r: &stockade_projections::StockRow| {
            format!(
                "on hand {}, reserved {}, available {}, {}",
                qty(r.level.on_hand),
                r.level.reserved,
                qty(r.level.available),
                r.status.as_str()
            )
        };
        found.push(format!(
            "read model: {} at version {} shows {} but the log folds to {}",
            c.sku,
            c.found.version,
            show(&c.found),
            show(&c.expected)
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_assumes_the_engines_default_key_window() {
        assert_eq!(
            parse_duration(KEY_RETENTION_DEFAULT),
            Ok(stockade_engine::config::DEFAULT_IDEMPOTENCY_RETENTION)
        );
    }
}

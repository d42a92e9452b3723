//! `stockade replay`: the stock of every SKU (or one) at a past position or instant,
//! folded from the log alone.

use clap::Args;
use serde::Serialize;
use stockade_domain::{Sku, Timestamp};
use stockade_engine::replay::{Cut, Replayed, replay};
use stockade_store::Position;

use crate::args::parse_sku;
use crate::log::{Format, LogArgs, csv_line, json, qty};
use crate::report::Table;

#[derive(Debug, Args)]
pub struct Replay {
    #[command(flatten)]
    log: LogArgs,
    /// Only this SKU.
    #[arg(long, value_parser = parse_sku)]
    sku: Option<Sku>,
    /// The instant (RFC 3339, e.g. 2026-11-27T09:00:00Z): every event decided by then,
    /// with holds lapsed by then left out.
    #[arg(long, conflicts_with = "position")]
    at: Option<Timestamp>,
    /// The log position: every event at or before it.
    #[arg(long)]
    position: Option<Position>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Serialize)]
struct Output<'a> {
    /// The instant the views are taken at (RFC 3339).
    at: String,
    position: Option<String>,
    skus: &'a [Replayed],
}

pub async fn run(args: Replay) -> Result<String, String> {
    let store = args.log.open_store().await?;
    let cut = match (args.at, args.position) {
        (Some(at), _) => Cut::Instant(at),
        (None, Some(position)) => Cut::Position(position),
        (None, None) => Cut::Head,
    };
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let (skus, at) = replay(store.as_ref(), args.sku.as_ref(), cut, now)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(sku) = &args.sku
        && skus.is_empty()
    {
        return Err(format!("{sku} is not registered at that point of the log"));
    }
    Ok(match args.format {
        Format::Json => json(&Output {
            at: at.to_string(),
            position: args.position.map(|p| p.to_string()),
            skus: &skus,
        })?,
        Format::Csv => {
            let mut out = csv_line(&[
                "sku",
                "pool",
                "version",
                "position",
                "limit",
                "safety_stock",
                "reserved",
                "sold",
                "available",
                "shortfall",
                "live_reservations",
            ]);
            out.push('\n');
            for r in &skus {
                out.push_str(&csv_line(&cells(r)));
                out.push('\n');
            }
            out
        }
        Format::Table => {
            let mut t = Table::new([
                "sku",
                "pool",
                "version",
                "position",
                "on hand / limit",
                "safety",
                "reserved",
                "sold",
                "available",
                "short",
                "holds",
            ])
            .text_columns(&[1]);
            for r in &skus {
                t.row(cells(r));
            }
            let cut = match cut {
                Cut::Head => "the head of the log".to_owned(),
                Cut::Position(p) => format!("position {p}"),
                Cut::Instant(i) => format!("instant {i}"),
            };
            format!(
                "Stock at {cut}, viewed at {at}: {} SKU(s)\n\n{}",
                skus.len(),
                t.render()
            )
        }
    })
}

fn cells(r: &Replayed) -> [String; 11] {
    let v = &r.view;
    let available = match v.available {
        stockade_domain::Availability::Unlimited => None,
        stockade_domain::Availability::Limited(q) => Some(q.get()),
    };
    [
        r.sku.to_string(),
        v.pool.as_str().to_owned(),
        r.version.to_string(),
        r.position.to_string(),
        qty(v.limit.map(|q| q.get())),
        v.safety_stock.to_string(),
        v.reserved.to_string(),
        v.sold.to_string(),
        qty(available),
        v.shortfall.to_string(),
        v.live_reservations.to_string(),
    ]
}

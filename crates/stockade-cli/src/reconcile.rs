//! `stockade reconcile`: the read models checked against the log (and repaired), and
//! physical counts applied as deltas, printing what changed or, with `--dry-run`, what
//! would.
//!
//! It may run beside `stockade serve`: a repair only overwrites a row still at the version
//! it checked, and a count's adjustment is appended at the revision this engine read, so a
//! server that wrote meanwhile makes it retry on fresh state, and the server's actor for
//! that SKU, meeting the count's event, reloads and carries on.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use stockade_engine::{Inventory, InventoryConfig};
use stockade_projections::StockRow;
use stockade_projections::reconcile::{
    Correction, Reconciler, apply_counts, parse_counts, preview_counts,
};
use stockade_wire::CountOut;

use crate::log::{Format, LogArgs, json, qty};
use crate::report::Table;

#[derive(Debug, Args)]
pub struct Reconcile {
    #[command(flatten)]
    log: LogArgs,
    /// Physical counts to apply: a CSV with the header sku,counted_on_hand,counted_at.
    #[arg(long)]
    counts: Option<PathBuf>,
    /// Only say what would change.
    #[arg(long)]
    dry_run: bool,
    /// `json` prints the corrections and count outcomes as one object.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Serialize)]
struct Output {
    dry_run: bool,
    read_models_checked: bool,
    corrections: Vec<Correction>,
    /// The same shape `POST /api/counts` answers with.
    counts: Vec<CountOut>,
}

/// Outcomes of a count that are not a refusal.
const FINE: [&str; 4] = ["applied", "would apply", "no change", "already applied"];

/// The report, and whether every count could be applied.
pub async fn run(args: Reconcile) -> Result<(String, bool), String> {
    if args.format == Format::Csv {
        return Err("reconcile prints a table or JSON".into());
    }
    // The counts file first: a typo should stop the command before it changes anything.
    let counts = match &args.counts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("read {}: {e}", path.display()))?;
            parse_counts(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let store = args.log.open_store().await?;
    let models = args.log.open_models().await?;
    let read_models_checked = models.is_some();
    let corrections = match models {
        Some(models) => Reconciler::new(store.clone(), models)
            .reconcile(args.dry_run)
            .await
            .map_err(|e| format!("reconcile the read models: {e}"))?,
        None => Vec::new(),
    };
    // The engine is opened only to apply counts: opening it wakes SKUs with lapsed holds,
    // which then write their expiries, and a dry run writes nothing.
    let outcomes = if counts.is_empty() || args.dry_run {
        preview_counts(&store, &counts)
            .await
            .map_err(|e| format!("read the counts' SKUs: {e}"))?
    } else {
        drop(store);
        let (config, _) = args.log.store_config()?;
        let inventory = Inventory::open(InventoryConfig::with_store(config))
            .await
            .map_err(|e| format!("open the log: {e}"))?;
        let outcomes = apply_counts(&inventory, &counts, false)
            .await
            .map_err(|e| format!("apply the counts: {e}"));
        inventory.shutdown().await;
        outcomes?
    };
    let clean = outcomes.iter().all(|o| FINE.contains(&o.outcome.as_str()));
    let output = Output {
        dry_run: args.dry_run,
        read_models_checked,
        corrections,
        counts: outcomes.iter().map(CountOut::from).collect(),
    };
    let text = match args.format {
        Format::Json => json(&output)?,
        _ => render(&output),
    };
    Ok((text, clean))
}

fn render(output: &Output) -> String {
    let mut out = String::new();
    let verb = if output.dry_run {
        "would repair"
    } else {
        "repaired"
    };
    if !output.read_models_checked {
        out.push_str("No read models in the data directory: nothing to compare.\n");
    } else if output.corrections.is_empty() {
        out.push_str("Read models: every row matches the log.\n");
    } else {
        out.push_str(&format!(
            "Read models: {verb} {} row(s)\n\n",
            output.corrections.len()
        ));
        let mut t = Table::new(["sku", "version", "field", "found", "expected"]).text_columns(&[2]);
        for c in &output.corrections {
            for (field, found, expected) in differences(&c.found, &c.expected) {
                t.row([
                    c.sku.clone(),
                    c.found.version.to_string(),
                    field.to_owned(),
                    found,
                    expected,
                ]);
            }
        }
        out.push_str(&t.render());
    }
    if !output.counts.is_empty() {
        out.push_str(&format!("\nCounts: {}\n\n", output.counts.len()));
        let mut t = Table::new([
            "sku",
            "counted at",
            "counted",
            "on hand then",
            "delta",
            "outcome",
            "version",
        ])
        .text_columns(&[1, 5]);
        for c in &output.counts {
            t.row([
                c.sku.clone(),
                c.counted_at.clone(),
                c.counted.to_string(),
                c.on_hand_then.map(|q| q.to_string()).unwrap_or_default(),
                format!("{:+}", c.delta),
                c.outcome.clone(),
                c.version.map(|v| v.to_string()).unwrap_or_default(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// The fields in which two rows differ.
fn differences(found: &StockRow, expected: &StockRow) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let mut field = |name, a: String, b: String| {
        if a != b {
            out.push((name, a, b));
        }
    };
    field(
        "on hand",
        qty(found.level.on_hand),
        qty(expected.level.on_hand),
    );
    field(
        "reserved",
        found.level.reserved.to_string(),
        expected.level.reserved.to_string(),
    );
    field(
        "available",
        qty(found.level.available),
        qty(expected.level.available),
    );
    field(
        "status",
        found.status.as_str().to_owned(),
        expected.status.as_str().to_owned(),
    );
    field(
        "pool",
        found.pool.as_str().to_owned(),
        expected.pool.as_str().to_owned(),
    );
    field(
        "updated at",
        found.updated_at.to_string(),
        expected.updated_at.to_string(),
    );
    out
}

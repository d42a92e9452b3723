//! Reconciliation: the read models checked against the log, and physical counts applied
//! without erasing the sales made after them.
//!
//! **Drift.** [`Reconciler::reconcile`] compares every stock row with the state folded from
//! the SKU's stream up to the row's own version. A row that differs is overwritten, but
//! only if it is still at that version: a row the projector has moved on meanwhile is
//! checked again next time, never rolled back. Each correction is logged, stored in the
//! `corrections` table and counted (`stockade_reconciliation_corrections_total`). Folded
//! states are kept between runs and only folded forward, because the log only grows, but
//! only up to a budget of live holds ([`KEEP_HOLDS`]) and of SKUs ([`KEEP_SKUS`]): a SKU
//! past it (a hot SKU with a sale's worth of holds, or one of a million) is folded from its
//! latest snapshot each run and then dropped, so the reconciler never keeps another copy
//! of the largest states, nor one per SKU of a large catalogue.
//!
//! **Counts.** A physical count says "at `counted_at` there were N on hand". The log says
//! how many it held at that instant. The difference is applied now as a delta, so every
//! sale recorded after the count still counts. Setting N outright would erase them. Each
//! count is recorded with a reference naming it, and a count already in the log is
//! skipped, so applying the same file twice changes nothing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde::Serialize;
use stockade_domain::{Channel, Event, PoolKind, Quantity, Sku, SkuState, StockChange, Timestamp};
use stockade_engine::{Adjustment, Inventory, Origin};
use stockade_store::{EventStore, StreamName, codec};

use crate::ProjectionError;
use crate::db::ReadModels;
use crate::fold::Folded;
use crate::model::{Level, LocationLevel, LocationRow, StockRow, is_short, status_of};
use crate::webhook::PHYSICAL_COUNT_REASON;

/// How often the periodic job runs by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
/// Stock rows compared per read-model query.
const PAGE: usize = 500;
/// Events read per page when folding.
const FOLD_PAGE: usize = 4096;
/// Live holds, summed over the folded states kept between runs, beyond which a state is
/// not kept (about 100 bytes each).
pub const KEEP_HOLDS: usize = 65_536;
/// Most folded states kept between runs, whatever their size: with a million SKUs, the
/// rest are folded from their snapshots each run.
pub const KEEP_SKUS: usize = 10_000;

/// One repaired row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Correction {
    pub sku: String,
    pub found: StockRow,
    pub expected: StockRow,
    /// The SKU's locations whose rows differ from the log (found, if there was a row, and
    /// expected); repaired with the SKU's row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<(Option<LocationRow>, LocationRow)>,
}

/// Compares the read models with the log.
pub struct Reconciler {
    store: Arc<dyn EventStore>,
    models: ReadModels,
    states: HashMap<StreamName, Folded>,
    /// Live holds in `states`, at most `budget`.
    kept_holds: usize,
    budget: usize,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("folded_skus", &self.states.len())
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    pub fn new(store: Arc<dyn EventStore>, models: ReadModels) -> Self {
        Self::with_hold_budget(store, models, KEEP_HOLDS)
    }

    /// A reconciler that keeps folded states between runs only while their live holds sum
    /// to at most `budget` (0: keeps none, every run starts from snapshots).
    pub fn with_hold_budget(store: Arc<dyn EventStore>, models: ReadModels, budget: usize) -> Self {
        Self {
            store,
            models,
            states: HashMap::new(),
            kept_holds: 0,
            budget,
        }
    }

    /// SKUs whose folded state is kept for the next run.
    pub fn kept(&self) -> usize {
        self.states.len()
    }

    /// Checks every stock row; repairs the ones that differ unless `dry_run`. Returns the
    /// corrections made (or that would be made).
    pub async fn reconcile(&mut self, dry_run: bool) -> Result<Vec<Correction>, ProjectionError> {
        let mut corrections = Vec::new();
        let mut after: Option<Sku> = None;
        loop {
            let rows = self.models.stock_page(after.clone(), PAGE).await?;
            let Some(last) = rows.last() else {
                return Ok(corrections);
            };
            after = Some(last.sku.clone());
            for row in rows {
                let (found, expected, locations) = if row.pool == PoolKind::Kit {
                    match self.expected_kit(&row.sku).await? {
                        Some((found, expected)) => (found, expected, Vec::new()),
                        None => continue,
                    }
                } else {
                    let (expected, locations) = self.expected(&row).await?;
                    (row, expected, locations)
                };
                if expected == found && locations.is_empty() {
                    continue;
                }
                let correction = Correction {
                    sku: found.sku.to_string(),
                    found,
                    expected,
                    locations,
                };
                if !dry_run && !self.models.repair(&correction).await? {
                    continue; // the projector moved the row meanwhile: next run
                }
                tracing::warn!(sku = %correction.sku, found = ?correction.found,
                    expected = ?correction.expected, dry_run, "read model drifted from the log");
                if !dry_run {
                    metrics::counter!("stockade_reconciliation_corrections_total").increment(1);
                }
                corrections.push(correction);
            }
        }
    }

    /// Runs [`Reconciler::reconcile`] every `every` until `shutdown` completes.
    pub async fn run(mut self, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = &mut shutdown => return,
            }
            if let Err(e) = self.reconcile(false).await {
                tracing::error!(error = %e, "reconciliation failed; trying again next time");
                self.states.clear();
                self.kept_holds = 0;
            }
        }
    }

    /// A kit's row as stored and as its parts' rows make it (read together, so both
    /// see the same batch): a kit's row is derived from other rows, each of which is
    /// checked against its own stream. `None` if the kit has no parts on record.
    async fn expected_kit(
        &mut self,
        kit: &Sku,
    ) -> Result<Option<(StockRow, StockRow)>, ProjectionError> {
        let Some((found, parts, rows)) = self.models.kit_inputs(kit).await? else {
            return Ok(None);
        };
        let threshold = self.models.threshold(kit).await?;
        // The kit's own stream says when it was registered (its row shows no earlier).
        let stream = StreamName::for_sku(kit);
        let registered_at = self.fold_to(&stream, parts.own_version).await?.last_at;
        let expected = crate::db::kit_row(kit, &parts, &rows, threshold, registered_at)
            .ok_or_else(|| {
                ProjectionError::Inconsistent(format!("kit {kit} has a part with no row"))
            })?;
        Ok(Some((found, expected)))
    }

    /// The row the log says `row`'s SKU should have at `row.version`, and each location
    /// row that differs from what the log says (read at the same version; skipped if the
    /// projector moved the SKU meanwhile, for the next run to check).
    async fn expected(
        &mut self,
        row: &StockRow,
    ) -> Result<(StockRow, Vec<(Option<LocationRow>, LocationRow)>), ProjectionError> {
        let stream = StreamName::for_sku(&row.sku);
        let threshold = self.models.threshold(&row.sku).await?;
        let folded = self.fold_to(&stream, row.version).await?;
        let stock = folded.state.stock().ok_or_else(|| {
            ProjectionError::Inconsistent(format!(
                "{stream} has no registration before version {}",
                row.version
            ))
        })?;
        let view = stock.view(folded.last_at);
        let level = Level::of(&view);
        let expected = StockRow {
            sku: row.sku.clone(),
            pool: view.pool,
            level,
            status: status_of(&level, is_short(&view), threshold),
            version: row.version,
            updated_at: folded.last_at,
        };
        self.keep(stream, folded);
        let mut drifted = Vec::new();
        if !view.locations.is_empty()
            && let Some((at, stored)) = self.models.stock_with_locations(&row.sku).await?
            && at == row.version
        {
            for location in &view.locations {
                let level = LocationLevel::of(location);
                let found = stored.iter().find(|r| r.level.location == level.location);
                let status = level.status(threshold);
                if found.is_some_and(|f| f.level == level && f.status == status) {
                    continue;
                }
                drifted.push((
                    found.cloned(),
                    LocationRow {
                        sku: row.sku.clone(),
                        level,
                        status,
                        // When it last moved is not kept by the fold: the repair stamps
                        // the SKU's version and instant.
                        version: row.version,
                        updated_at: expected.updated_at,
                    },
                ));
            }
        }
        Ok((expected, drifted))
    }

    /// The state of `stream` after exactly `version` events: a kept fold moved forward,
    /// else the latest snapshot before `version` moved forward, else a fold from the start.
    async fn fold_to(
        &mut self,
        stream: &StreamName,
        version: u64,
    ) -> Result<Folded, ProjectionError> {
        let kept = self.states.remove(stream);
        if let Some(k) = &kept {
            self.kept_holds = self.kept_holds.saturating_sub(live_holds(k));
        }
        // The log only grows: a fold kept from an earlier run moves forward; a row at an
        // older version than the fold is checked by folding again.
        let mut folded = match kept {
            Some(k) if k.version <= version => k,
            _ => {
                match stockade_engine::snapshot_at_or_before(&self.store, stream, version).await? {
                    Some((state, at)) => Folded {
                        last_at: state
                            .stock()
                            .map_or(Timestamp::EPOCH, |s| s.last_event_at()),
                        state,
                        version: at,
                    },
                    None => Folded::default(),
                }
            }
        };
        folded
            .advance_to(self.store.as_ref(), stream, version)
            .await?;
        Ok(folded)
    }

    /// Keeps `folded` for the next run if the budget of live holds allows it.
    fn keep(&mut self, stream: StreamName, folded: Folded) {
        let holds = live_holds(&folded);
        if self.kept_holds.saturating_add(holds) <= self.budget && self.states.len() < KEEP_SKUS {
            self.kept_holds += holds;
            self.states.insert(stream, folded);
        }
    }
}

fn live_holds(folded: &Folded) -> usize {
    folded.state.stock().map_or(0, |s| s.live_count())
}

/// One line of a counts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub sku: Sku,
    pub counted_on_hand: u64,
    pub counted_at: Timestamp,
}

/// A counts file that cannot be read: the line and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CountsError {
    pub line: usize,
    pub message: String,
}

/// Reads `sku,counted_on_hand,counted_at` lines (with that header) into counts.
/// `counted_at` is RFC 3339 in UTC, e.g. `2026-11-27T09:00:00Z`.
pub fn parse_counts(csv: &str) -> Result<Vec<Count>, CountsError> {
    let mut lines = csv
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let error = |line: usize, message: String| CountsError {
        line: line + 1,
        message,
    };
    match lines.next() {
        Some((_, header))
            if header
                .split(',')
                .map(str::trim)
                .eq(["sku", "counted_on_hand", "counted_at"]) => {}
        Some((n, header)) => {
            return Err(error(
                n,
                format!("expected the header sku,counted_on_hand,counted_at, found {header:?}"),
            ));
        }
        None => return Err(error(0, "the file is empty".into())),
    }
    lines
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [sku, counted, at] = fields[..] else {
                return Err(error(
                    n,
                    format!("expected 3 fields, found {}", fields.len()),
                ));
            };
            Ok(Count {
                sku: Sku::new(sku).map_err(|e| error(n, e.to_string()))?,
                counted_on_hand: counted
                    .parse()
                    .map_err(|_| error(n, format!("{counted:?} is not a whole number of units")))?,
                counted_at: at
                    .parse()
                    .map_err(|e: stockade_domain::InvalidTimestamp| error(n, e.to_string()))?,
            })
        })
        .collect()
}

/// What happened to one count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountOutcome {
    pub sku: String,
    pub counted_at: Timestamp,
    pub counted: u64,
    /// On hand at `counted_at`, by the log.
    pub on_hand_then: Option<u64>,
    /// Units added (positive) or removed (negative) now.
    pub delta: i64,
    /// `applied`, `would apply` (dry run), `no change`, `already applied`, or why not.
    pub outcome: String,
    /// The SKU's version after the adjustment, when one was made.
    pub version: Option<u64>,
}

/// The reference a count's adjustment carries; it is how a repeated count is recognised.
pub fn count_reference(count: &Count) -> String {
    format!("count of {} at {}", count.counted_on_hand, count.counted_at)
}

/// Applies `counts` through `inventory`, each as the delta between the count and what the
/// log held at the count's instant. With `dry_run`, only says what it would do.
pub async fn apply_counts(
    inventory: &Inventory,
    counts: &[Count],
    dry_run: bool,
) -> Result<Vec<CountOutcome>, ProjectionError> {
    let store = inventory.store();
    run_counts(&store, (!dry_run).then_some(inventory), counts).await
}

/// What [`apply_counts`] would do, from the log alone: nothing is written.
pub async fn preview_counts(
    store: &Arc<dyn EventStore>,
    counts: &[Count],
) -> Result<Vec<CountOutcome>, ProjectionError> {
    run_counts(store, None, counts).await
}

/// Applies `counts` through `inventory`, or only previews them when there is none.
async fn run_counts(
    store: &Arc<dyn EventStore>,
    inventory: Option<&Inventory>,
    counts: &[Count],
) -> Result<Vec<CountOutcome>, ProjectionError> {
    let mut outcomes = Vec::with_capacity(counts.len());
    for count in counts {
        let (then, already) = on_hand_at(store, count).await?;
        let mut outcome = CountOutcome {
            sku: count.sku.to_string(),
            counted_at: count.counted_at,
            counted: count.counted_on_hand,
            on_hand_then: then.as_ref().ok().map(|q| q.get()),
            delta: 0,
            outcome: String::new(),
            version: None,
        };
        let on_hand_then = match then {
            Ok(q) => q.get(),
            Err(why) => {
                outcome.outcome = why;
                outcomes.push(outcome);
                continue;
            }
        };
        let delta = i128::from(count.counted_on_hand) - i128::from(on_hand_then);
        let Ok(delta) = i64::try_from(delta) else {
            outcome.outcome = "refused: the difference is out of range".into();
            outcomes.push(outcome);
            continue;
        };
        outcome.delta = delta;
        outcome.outcome = if already {
            "already applied".into()
        } else if delta == 0 {
            "no change".into()
        } else if let Some(inventory) = inventory {
            let adjustment = Adjustment {
                location: None,
                change: StockChange::Delta(outcome.delta),
                reason: PHYSICAL_COUNT_REASON.into(),
                reference: Some(count_reference(count)),
                expected_version: None,
            };
            let channel =
                Channel::new("reconcile").map_err(|e| ProjectionError::ReadModel(e.to_string()))?;
            // The same count twice, even at once, is one adjustment.
            let origin = Origin::channel(channel).idempotency_key(format!(
                "{}:{}",
                count.sku,
                count_reference(count)
            ));
            match inventory.adjust(&count.sku, adjustment, &origin).await {
                Ok(done) => {
                    outcome.version = Some(done.version);
                    "applied".into()
                }
                Err(e) => format!("refused: {e}"),
            }
        } else {
            "would apply".into()
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// On hand for `count`'s SKU at its instant (or why there is no answer), and whether the
/// same count is already in the log.
async fn on_hand_at(
    store: &Arc<dyn EventStore>,
    count: &Count,
) -> Result<(Result<Quantity, String>, bool), ProjectionError> {
    let stream = StreamName::for_sku(&count.sku);
    let reference = count_reference(count);
    let mut state = SkuState::default();
    let mut then: Option<Result<Quantity, String>> = None;
    let mut already = false;
    let mut newer: Option<Timestamp> = None;
    let mut corrected_later: i128 = 0;
    let mut from = 0;
    loop {
        let page = store.read_stream(&stream, from, FOLD_PAGE).await?;
        if page.is_empty() {
            break;
        }
        for recorded in &page {
            from = recorded.version();
            let (event, _) = codec::decode_stored(recorded)?;
            if let Event::StockAdjusted(e) = &event
                && e.reason == PHYSICAL_COUNT_REASON
            {
                let counted_at = e.reference.as_deref().and_then(counted_at_of);
                if e.reference.as_deref() == Some(reference.as_str()) {
                    already = true;
                } else if let Some(at) = counted_at {
                    if at > count.counted_at {
                        // A later count already set the truth after this one.
                        newer = Some(newer.map_or(at, |n: Timestamp| n.max(at)));
                    } else if event.at() > count.counted_at {
                        // An earlier count applied after this count's instant: what it
                        // corrected was already true when this count was taken.
                        corrected_later +=
                            i128::from(e.current.get()) - i128::from(e.previous.get());
                    }
                }
            }
            if then.is_none() && event.at() > count.counted_at {
                then = Some(physical_on_hand(&state));
            }
            if then.is_none() {
                state.apply(&event).map_err(|e| {
                    ProjectionError::Inconsistent(format!("{stream} at {}: {e}", recorded.revision))
                })?;
            }
        }
    }
    let then = then.unwrap_or_else(|| physical_on_hand(&state));
    if already {
        return Ok((then, true));
    }
    if let Some(at) = newer {
        return Ok((
            Err(format!("older than the count at {at}, already applied")),
            false,
        ));
    }
    let then = then.and_then(|q| {
        u64::try_from(i128::from(q.get()) + corrected_later)
            .map(Quantity::new)
            .map_err(|_| "the counts in the log do not add up".to_owned())
    });
    Ok((then, false))
}

/// The instant in a count adjustment's reference (`count of N at T`).
fn counted_at_of(reference: &str) -> Option<Timestamp> {
    reference
        .strip_prefix("count of ")?
        .split_once(" at ")?
        .1
        .parse()
        .ok()
}

fn physical_on_hand(state: &SkuState) -> Result<Quantity, String> {
    match state.stock() {
        None => Err("not registered at the time of the count".into()),
        Some(stock) if stock.pool_kind() != PoolKind::Physical => Err(format!(
            "a {} pool has nothing on hand to count",
            stock.pool_kind().as_str()
        )),
        Some(stock) => stock
            .limit()
            .ok_or_else(|| "no on-hand quantity recorded".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_are_read_and_bad_lines_named() {
        let counts = parse_counts(
            "sku,counted_on_hand,counted_at\nTEE-M, 18 ,2026-11-27T09:00:00Z\n\nCAP,0,2026-11-27T09:30:00.250Z\n",
        )
        .unwrap();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].counted_on_hand, 18);
        assert_eq!(
            counts[1].counted_at,
            Timestamp::from_millis(1_795_771_800_250)
        );
        let err = parse_counts("sku,qty\nA,1").unwrap_err();
        assert_eq!(err.line, 1);
        let err =
            parse_counts("sku,counted_on_hand,counted_at\nA,-1,2026-11-27T09:00:00Z").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("whole number"), "{err}");
        let err = parse_counts("sku,counted_on_hand,counted_at\nA,1,yesterday").unwrap_err();
        assert!(err.message.contains("RFC 3339"), "{err}");
        let err = parse_counts("sku,counted_on_hand,counted_at\nA,1").unwrap_err();
        assert!(err.message.contains("3 fields"), "{err}");
        assert!(parse_counts("").is_err());
    }
}

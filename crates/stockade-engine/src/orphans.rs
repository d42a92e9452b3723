//! Recovery of reservations cut in half: a reservation over several SKUs is appended line
//! by line (each SKU has its own stream and writer), so a process that dies between those
//! appends leaves some lines held and the others never written. Nobody was told the
//! reservation exists, so nobody will commit or release it; left alone, its lines would
//! hold stock until their TTL (up to seven days).
//!
//! Every line's `StockReserved` records all the reservation's SKUs (`lines`), at no extra
//! write. At start-up, before keyed reservations are taken again, the engine finds the
//! live reservations whose recorded lines did not all land, and releases the lines that
//! did. Releasing is idempotent: a line already resolved answers "already resolved",
//! which is the outcome wanted. A keyed retry of such a reservation then finds it
//! released and is told so, as for any rolled-back order.
//!
//! Which reservations are examined:
//! - with an in-memory index (EventStoreDB), the start-up pass has read every line, so
//!   the incomplete ones are known without another read;
//! - with a store that indexes its events (SQLite), each live hold of a SKU woken at
//!   start-up is looked up by id: one indexed read per live hold. After a clean shutdown
//!   with no reservation in progress (see [`CleanMarker`]) there is nothing to find, and
//!   the pass is skipped.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use stockade_domain::{ReservationId, Sku};

use crate::actor::ReadLiveHolds;
use crate::engine::EngineCore;
use crate::error::Error;
use crate::locator::{Incomplete, Locator, incomplete_in};

/// Reservations looked up at once.
const LOOKUPS: usize = 16;
/// Events read per reservation; a reservation has at most `MAX_LINES` lines and a few
/// resolutions each.
const EVENTS_PER_RESERVATION: usize = 1_024;

/// What the pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub examined: usize,
    pub incomplete: usize,
    pub released: usize,
}

/// Finds the incomplete reservations among the live holds of `live_skus` and releases
/// their lines.
pub(crate) async fn release_incomplete(
    shared: &Arc<EngineCore>,
    locator: &Locator,
    live_skus: &[Sku],
) -> Result<Recovered, Error> {
    let mut report = Recovered::default();
    let found: Vec<Incomplete> = if locator.indexed() {
        let mut ids: Vec<ReservationId> = Vec::new();
        let mut seen = HashSet::new();
        for sku in live_skus {
            let live = shared.ask(sku, |reply| ReadLiveHolds { reply }).await?;
            ids.extend(live.into_iter().filter(|id| seen.insert(*id)));
        }
        report.examined = ids.len();
        let store = shared.store.clone();
        let lookups = futures::stream::iter(ids)
            .map(|id| {
                let store = store.clone();
                async move {
                    store
                        .read_subject(*id.as_uuid(), EVENTS_PER_RESERVATION)
                        .await
                        .map(|events| incomplete_in(id, &events))
                }
            })
            .buffer_unordered(LOOKUPS)
            .collect::<Vec<_>>()
            .await;
        let mut found = Vec::new();
        for lookup in lookups {
            if let Some(incomplete) =
                lookup.map_err(|e| Error::store("look up a reservation", &e))?
            {
                found.push(incomplete);
            }
        }
        found
    } else {
        let found = locator.incomplete();
        report.examined = locator.len();
        found
    };
    report.incomplete = found.len();
    for incomplete in found {
        let outcomes = shared
            .release_lines(
                incomplete.id,
                &incomplete.held,
                "recovery",
                incomplete.order_id.as_ref(),
            )
            .await;
        for (sku, outcome) in incomplete.held.iter().zip(outcomes) {
            match outcome {
                Ok(_) => report.released += 1,
                // Resolved already (by its TTL, or a pass before this one).
                Err(Error::Rejected { .. }) => {}
                Err(e) => {
                    tracing::warn!(%sku, id = %incomplete.id, error = %e,
                        "could not release a line of an incomplete reservation; it lapses at its TTL");
                }
            }
        }
    }
    Ok(report)
}

/// A file beside the embedded log that says the last engine stopped with no reservation
/// half-written, so the start-up pass has nothing to look for. Removed when an engine
/// opens (a crash then leaves none), written by `shutdown` when no multi-line reservation
/// is in progress.
#[derive(Debug, Clone)]
pub(crate) struct CleanMarker {
    path: PathBuf,
}

impl CleanMarker {
    pub(crate) const FILE: &'static str = "stockade.clean";

    pub(crate) fn new(data_dir: &std::path::Path) -> Self {
        Self {
            path: data_dir.join(Self::FILE),
        }
    }

    /// Whether the last engine left the marker; removes it either way. A marker that
    /// cannot be removed counts as absent (better a pass for nothing than a skipped one).
    pub(crate) fn take(&self) -> bool {
        let present = self.path.exists();
        present && std::fs::remove_file(&self.path).is_ok()
    }

    pub(crate) fn leave(&self) {
        if let Err(e) = std::fs::write(&self.path, b"stopped cleanly\n") {
            tracing::warn!(path = %self.path.display(), error = %e,
                "could not mark a clean stop; the next start examines the live holds");
        }
    }
}

//! A SKU's state folded from its stream, holds and all: the reconciler's reference, moved
//! forward as the log grows. (The projector keeps figures without holds: `runner.rs`.)

use stockade_domain::{Event, SkuState, Timestamp};
use stockade_store::{EventStore, StreamName, codec};

use crate::ProjectionError;

/// Events read per page when folding.
const PAGE: usize = 4096;

/// The state after the first `version` events of a stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct Folded {
    pub state: SkuState,
    /// Events folded in (the next event's revision).
    pub version: u64,
    /// When the last folded event happened: the instant a row built from this shows.
    pub last_at: Timestamp,
}

impl Folded {
    /// Folds in `event`, the stream's event at `revision`.
    pub fn apply(
        &mut self,
        stream: &StreamName,
        revision: u64,
        event: &Event,
    ) -> Result<(), ProjectionError> {
        self.state.apply(event).map_err(|e| {
            ProjectionError::Inconsistent(format!("{stream} at revision {revision}: {e}"))
        })?;
        self.version += 1;
        self.last_at = event.at();
        Ok(())
    }

    /// Reads and folds events of `stream` until `to` are in. A stream shorter than that
    /// contradicts whoever asked (a read-model row, a projected event): an error.
    pub async fn advance_to(
        &mut self,
        store: &dyn EventStore,
        stream: &StreamName,
        to: u64,
    ) -> Result<(), ProjectionError> {
        while self.version < to {
            let want = usize::try_from(to - self.version)
                .unwrap_or(usize::MAX)
                .min(PAGE);
            let page = store.read_stream(stream, self.version, want).await?;
            if page.is_empty() {
                return Err(ProjectionError::Inconsistent(format!(
                    "{stream} ends at version {}, before version {to}",
                    self.version
                )));
            }
            for recorded in &page {
                let (event, _) = codec::decode_stored(recorded)?;
                self.apply(stream, recorded.revision, &event)?;
            }
        }
        Ok(())
    }
}

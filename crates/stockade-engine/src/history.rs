//! History the engine asks of the log instead of keeping it: how a reservation that is no
//! longer live ended.
//!
//! On a store that indexes subjects this is one index lookup; on one that does not, a read
//! of the SKU's stream. Either way it is only needed on a rare path (a second commit of
//! the same reservation, a status read of an old one), never to decide a hold.

use std::sync::Arc;

use stockade_domain::{Event, ReservationId, Resolution};
use stockade_store::{EventStore, StoreError, StreamName, codec, scan_stream};

/// Most events read for one reservation's history: a hold and its resolution, and, for an
/// id whose key was used again after its window, the same again.
const SUBJECT_EVENTS: usize = 64;
/// Events read per page when a store has no subject index.
const PAGE: usize = 4_096;

/// The reservation an event resolves, and how.
pub(crate) fn resolution_of(event: &Event) -> Option<(ReservationId, Resolution)> {
    match event {
        Event::ReservationCommitted(e) => Some((e.reservation_id, Resolution::Committed)),
        Event::ReservationReleased(e) => Some((e.reservation_id, Resolution::Released)),
        Event::ReservationExpired(e) => Some((e.reservation_id, Resolution::Expired)),
        _ => None,
    }
}

/// How reservation `id` last ended in `stream`, if the log holds a resolution of it.
pub(crate) async fn resolution_in_log(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
    id: ReservationId,
) -> Result<Option<Resolution>, StoreError> {
    let mut last = None;
    let mut note = |recorded: &stockade_store::RecordedEvent| -> Result<(), StoreError> {
        if recorded.stream != *stream {
            return Ok(());
        }
        let (event, _) = codec::decode_stored(recorded)?;
        match (&event, resolution_of(&event)) {
            (_, Some((of, resolution))) if of == id => last = Some(resolution),
            // Held again after it ended (a key used again past its window): live again.
            (Event::StockReserved(e), _) if e.reservation_id == id => last = None,
            _ => {}
        }
        Ok(())
    };
    if store.indexed() {
        for recorded in store.read_subject(*id.as_uuid(), SUBJECT_EVENTS).await? {
            note(&recorded)?;
        }
        return Ok(last);
    }
    scan_stream(store.as_ref(), stream, 0, PAGE, note).await?;
    Ok(last)
}

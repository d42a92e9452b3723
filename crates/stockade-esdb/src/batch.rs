//! Splitting a batch so that no append exceeds the server's size limit.
//!
//! The engine already keeps its batches under the default limit, counted the way the
//! server counts (`plan::append_size`). Splitting matters when an operator runs the cluster
//! with a smaller `MaxAppendSize`: the batch then goes out as consecutive appends, each
//! expecting the revision the previous one ended at (see `EsdbStore::append`).

use std::ops::Range;

use stockade_store::plan::append_size;
use stockade_store::{EventData, StoreError};

/// Consecutive ranges of `events`, in order, each weighing at most `limit` bytes. An event
/// heavier than `limit` on its own can never be written: that is an error naming it.
pub fn split(events: &[EventData], limit: usize) -> Result<Vec<Range<usize>>, StoreError> {
    let mut chunks = Vec::new();
    let (mut start, mut weight) = (0usize, 0usize);
    for (i, event) in events.iter().enumerate() {
        let size = append_size(event);
        if size > limit {
            return Err(StoreError::InvalidRequest(format!(
                "event {} ({}) takes {size} bytes; EventStoreDB appends at most {limit}",
                event.event_id, event.event_type
            )));
        }
        if i > start && weight + size > limit {
            chunks.push(start..i);
            (start, weight) = (i, 0);
        }
        weight += size;
    }
    if start < events.len() {
        chunks.push(start..events.len());
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// An event weighing exactly `weight` bytes (type "E" counts twice).
    fn weighing(weight: usize) -> EventData {
        EventData {
            event_id: Uuid::new_v4(),
            event_type: "E".into(),
            data: vec![0; weight - 2],
            metadata: vec![],
            index: Default::default(),
        }
    }

    #[test]
    fn a_batch_under_the_limit_is_one_append() {
        let events: Vec<_> = (0..10).map(|_| weighing(100)).collect();
        assert_eq!(split(&events, 1000).unwrap(), vec![0..10]);
    }

    #[test]
    fn chunks_fill_up_to_the_limit_exactly_and_keep_order() {
        let events: Vec<_> = (0..7).map(|_| weighing(300)).collect();
        // 3 × 300 = 900 fits 900; the fourth starts a new chunk.
        assert_eq!(split(&events, 900).unwrap(), vec![0..3, 3..6, 6..7]);
        assert_eq!(split(&events, 899).unwrap(), vec![0..2, 2..4, 4..6, 6..7]);
    }

    #[test]
    fn the_type_name_counts_twice_as_the_server_counts_it() {
        let event = EventData {
            event_id: Uuid::new_v4(),
            event_type: "StockReserved".into(), // 13 bytes → 26
            data: vec![0; 70],
            metadata: vec![0; 4],
            index: Default::default(),
        };
        assert_eq!(append_size(&event), 100);
        assert!(split(std::slice::from_ref(&event), 100).is_ok());
        assert!(split(std::slice::from_ref(&event), 99).is_err());
    }

    #[test]
    fn one_event_over_the_limit_is_a_clear_error() {
        let events = vec![weighing(10), weighing(2048), weighing(10)];
        let err = split(&events, 1024).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::InvalidRequest(_)));
        assert!(text.contains(&events[1].event_id.to_string()), "{text}");
        assert!(text.contains("2048 bytes"), "{text}");
        assert!(text.contains("at most 1024"), "{text}");
    }

    #[test]
    fn nothing_to_split_is_no_chunk() {
        assert!(split(&[], 10).unwrap().is_empty());
    }
}

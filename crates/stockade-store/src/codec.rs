//! Domain events and snapshots to and from MessagePack (`application/msgpack`).
//!
//! Payloads are maps with named fields, so a later schema can add optional fields without
//! breaking old readers. The event type and metadata travel beside the payload; the schema
//! version is in the metadata and selects the decoder.

use serde::{Serialize, de::DeserializeOwned};
use stockade_domain::{Event, EventMetadata, SCHEMA_VERSION, SkuState};
use thiserror::Error;

use crate::{EventData, EventIndex, Lifecycle, Position, RecordedEvent, StoreError};

pub const CONTENT_TYPE: &str = "application/msgpack";

/// Layout of snapshot payloads; a snapshot of another layout is ignored (full replay).
/// Format 2: live holds only, compact (no resolved ids, no channel per hold).
/// Format 3: the same, with the figures (`tally`) apart from the holds (`holds`).
/// Format 4: a physical SKU's locations, transfers in transit, and where each hold is.
pub const SNAPSHOT_FORMAT: u16 = 4;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("unknown event type {event_type:?} at position {position}")]
    UnknownType {
        event_type: String,
        position: Position,
    },
    #[error(
        "{event_type} at position {position} has schema version {version}; this build reads {SCHEMA_VERSION}"
    )]
    UnsupportedSchema {
        event_type: String,
        position: Position,
        version: u16,
    },
    #[error("corrupt {part} of {event_type} at position {position}: {reason}")]
    Corrupt {
        event_type: String,
        part: &'static str,
        position: Position,
        reason: String,
    },
    #[error("snapshot unreadable: {0}")]
    Snapshot(String),
}

fn to_bytes<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(|e| CodecError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Packs a domain event and its metadata for the store.
pub fn encode(event: &Event, metadata: &EventMetadata) -> Result<EventData, CodecError> {
    let what = event.event_type();
    let data = match event {
        Event::SkuRegistered(e) => to_bytes(e, what),
        Event::StockAdjusted(e) => to_bytes(e, what),
        Event::StockReserved(e) => to_bytes(e, what),
        Event::ReservationCommitted(e) => to_bytes(e, what),
        Event::ReservationReleased(e) => to_bytes(e, what),
        Event::ReservationExpired(e) => to_bytes(e, what),
        Event::TransferShipped(e) => to_bytes(e, what),
        Event::TransferReceived(e) => to_bytes(e, what),
        Event::ReservationExtended(e) => to_bytes(e, what),
        Event::ReservationReduced(e) => to_bytes(e, what),
        Event::ReservationIncreased(e) => to_bytes(e, what),
        Event::BackorderLimitSet(e) => to_bytes(e, what),
        Event::ReceiptExpected(e) => to_bytes(e, what),
        Event::ReceiptReceived(e) => to_bytes(e, what),
        Event::ReceiptCancelled(e) => to_bytes(e, what),
        Event::BackorderFilled(e) => to_bytes(e, what),
        Event::FairSellingSet(e) => to_bytes(e, what),
        Event::WaitlistJoined(e) => to_bytes(e, what),
        Event::WaitlistLeft(e) => to_bytes(e, what),
    }?;
    Ok(EventData {
        event_id: metadata.event_id,
        event_type: what.to_owned(),
        data,
        metadata: to_bytes(metadata, "metadata")?,
        index: index_of(event, metadata),
    })
}

/// What the store files `event` under: a reservation's events under its id (the hold
/// opens it, a commit, release or expiry closes it, a change touches it), and every event under the order it
/// was written for. Found on disk, these replace the history the engine used to keep in
/// memory: "which SKUs hold reservation R", "which reservations has order O", "was R
/// resolved", "which SKUs hold live reservations".
pub fn index_of(event: &Event, metadata: &EventMetadata) -> EventIndex {
    let (subject, lifecycle) = match event {
        Event::StockReserved(e) => (Some(e.reservation_id), Lifecycle::Opens),
        Event::ReservationCommitted(e) => (Some(e.reservation_id), Lifecycle::Closes),
        Event::ReservationReleased(e) => (Some(e.reservation_id), Lifecycle::Closes),
        Event::ReservationExpired(e) => (Some(e.reservation_id), Lifecycle::Closes),
        Event::ReservationExtended(e) => (Some(e.reservation_id), Lifecycle::Touches),
        Event::ReservationReduced(e) => (Some(e.reservation_id), Lifecycle::Touches),
        Event::ReservationIncreased(e) => (Some(e.reservation_id), Lifecycle::Touches),
        Event::BackorderFilled(e) => (Some(e.reservation_id), Lifecycle::Touches),
        Event::SkuRegistered(_)
        | Event::StockAdjusted(_)
        | Event::TransferShipped(_)
        | Event::TransferReceived(_)
        | Event::BackorderLimitSet(_)
        | Event::ReceiptExpected(_)
        | Event::ReceiptReceived(_)
        | Event::ReceiptCancelled(_)
        | Event::FairSellingSet(_)
        | Event::WaitlistJoined(_)
        | Event::WaitlistLeft(_) => (None, Lifecycle::Touches),
    };
    let correlation = match event {
        Event::StockReserved(e) => e.order_id.as_ref().map(|o| o.as_str().to_owned()),
        _ => None,
    }
    .or_else(|| metadata.correlation_id.clone());
    EventIndex {
        subject: subject.map(|id| *id.as_uuid()),
        lifecycle,
        correlation,
    }
}

/// Unpacks a stored event. Any malformed byte gives an error naming the position.
pub fn decode(recorded: &RecordedEvent) -> Result<(Event, EventMetadata), CodecError> {
    let corrupt = |part: &'static str, e: rmp_serde::decode::Error| CodecError::Corrupt {
        event_type: recorded.event_type.clone(),
        part,
        position: recorded.position,
        reason: e.to_string(),
    };
    let metadata: EventMetadata =
        rmp_serde::from_slice(&recorded.metadata).map_err(|e| corrupt("metadata", e))?;
    if metadata.schema_version != SCHEMA_VERSION {
        return Err(CodecError::UnsupportedSchema {
            event_type: recorded.event_type.clone(),
            position: recorded.position,
            version: metadata.schema_version,
        });
    }
    fn data<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
    let bytes = &recorded.data;
    let event = match recorded.event_type.as_str() {
        "SkuRegistered" => data(bytes).map(Event::SkuRegistered),
        "StockAdjusted" => data(bytes).map(Event::StockAdjusted),
        "StockReserved" => data(bytes).map(Event::StockReserved),
        "ReservationCommitted" => data(bytes).map(Event::ReservationCommitted),
        "ReservationReleased" => data(bytes).map(Event::ReservationReleased),
        "ReservationExpired" => data(bytes).map(Event::ReservationExpired),
        "TransferShipped" => data(bytes).map(Event::TransferShipped),
        "TransferReceived" => data(bytes).map(Event::TransferReceived),
        "ReservationExtended" => data(bytes).map(Event::ReservationExtended),
        "ReservationReduced" => data(bytes).map(Event::ReservationReduced),
        "ReservationIncreased" => data(bytes).map(Event::ReservationIncreased),
        "BackorderLimitSet" => data(bytes).map(Event::BackorderLimitSet),
        "ReceiptExpected" => data(bytes).map(Event::ReceiptExpected),
        "ReceiptReceived" => data(bytes).map(Event::ReceiptReceived),
        "ReceiptCancelled" => data(bytes).map(Event::ReceiptCancelled),
        "BackorderFilled" => data(bytes).map(Event::BackorderFilled),
        "FairSellingSet" => data(bytes).map(Event::FairSellingSet),
        "WaitlistJoined" => data(bytes).map(Event::WaitlistJoined),
        "WaitlistLeft" => data(bytes).map(Event::WaitlistLeft),
        other => {
            return Err(CodecError::UnknownType {
                event_type: other.to_owned(),
                position: recorded.position,
            });
        }
    }
    .map_err(|e| corrupt("data", e))?;
    if metadata.event_id != recorded.event_id {
        return Err(CodecError::Corrupt {
            event_type: recorded.event_type.clone(),
            part: "metadata",
            position: recorded.position,
            reason: format!(
                "event id {} differs from the stored id {}",
                metadata.event_id, recorded.event_id
            ),
        });
    }
    Ok((event, metadata))
}

/// [`decode`], with a failure reported the way the store reports damaged data.
pub fn decode_stored(recorded: &RecordedEvent) -> Result<(Event, EventMetadata), StoreError> {
    decode(recorded).map_err(|e| StoreError::Corrupt {
        position: recorded.position,
        reason: e.to_string(),
    })
}

/// Packs a SKU's state for a snapshot.
pub fn encode_snapshot(state: &SkuState) -> Result<Vec<u8>, CodecError> {
    to_bytes(&(SNAPSHOT_FORMAT, state), "snapshot")
}

/// Unpacks a snapshot; an error means "replay from the start instead".
pub fn decode_snapshot(bytes: &[u8]) -> Result<SkuState, CodecError> {
    let (format, state): (u16, SkuState) =
        rmp_serde::from_slice(bytes).map_err(|e| CodecError::Snapshot(e.to_string()))?;
    if format != SNAPSHOT_FORMAT {
        return Err(CodecError::Snapshot(format!(
            "format {format}, this build reads {SNAPSHOT_FORMAT}"
        )));
    }
    state
        .validate()
        .map_err(|e| CodecError::Snapshot(e.to_string()))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use stockade_domain::testing::*;
    use stockade_domain::{Principal, Timestamp};
    use uuid::Uuid;

    use super::*;
    use crate::StreamName;

    #[test]
    fn metadata_written_with_explicit_nulls_still_reads_and_new_metadata_is_smaller() {
        // The first encoding wrote every optional field, `None` as nil.
        #[derive(serde::Serialize)]
        struct Explicit {
            event_id: Uuid,
            correlation_id: Option<String>,
            causation_id: Option<String>,
            idempotency_key: Option<String>,
            channel: Option<String>,
            principal: Option<String>,
            recorded_at: Timestamp,
            schema_version: u16,
        }
        let id = Uuid::from_u128(9);
        let old = rmp_serde::to_vec_named(&Explicit {
            event_id: id,
            correlation_id: None,
            causation_id: None,
            idempotency_key: None,
            channel: None,
            principal: None,
            recorded_at: secs(3),
            schema_version: 1,
        })
        .unwrap();
        let read: EventMetadata = rmp_serde::from_slice(&old).unwrap();
        let expected = EventMetadata::new(id, secs(3));
        assert_eq!(read, expected);
        let new = rmp_serde::to_vec_named(&expected).unwrap();
        assert!(new.len() + 60 < old.len(), "{} vs {}", new.len(), old.len());
    }

    fn recorded(data: EventData) -> RecordedEvent {
        RecordedEvent {
            stream: StreamName::for_sku(&sku()),
            revision: 0,
            position: Position::at(7),
            event_id: data.event_id,
            event_type: data.event_type,
            data: data.data,
            metadata: data.metadata,
            recorded_at: Timestamp::EPOCH,
        }
    }

    fn metadata() -> EventMetadata {
        let mut m = EventMetadata::new(Uuid::from_u128(42), secs(3));
        m.principal = Some(Principal::new("ops").unwrap());
        m.correlation_id = Some("order-1".into());
        m
    }

    #[test]
    fn every_event_type_round_trips() {
        use stockade_domain::StockChange;
        let events = [
            registered_physical(5, 1),
            reserved(1, 2, secs(1), secs(61)),
            committed(1, 2, secs(2)),
            released(1, 2, secs(2)),
            expired(1, 2, secs(61), secs(62)),
            adjusted(StockChange::Count(qty(3)), 5, 3, "count", &[1], secs(4)),
        ];
        for event in events {
            let back = decode(&recorded(encode(&event, &metadata()).unwrap())).unwrap();
            assert_eq!(back, (event, metadata()));
        }
    }

    #[test]
    fn corrupt_payloads_are_errors_naming_the_position() {
        let good = encode(&reserved(1, 2, secs(1), secs(61)), &metadata()).unwrap();
        let mut bad = recorded(good.clone());
        bad.data = vec![0xc1, 0xff, 0x00];
        assert!(matches!(
            decode(&bad),
            Err(CodecError::Corrupt {
                part: "data",
                position,
                ..
            }) if position == Position::at(7)
        ));
        let mut bad = recorded(good.clone());
        bad.data.truncate(bad.data.len() / 2);
        assert!(decode(&bad).is_err());
        let mut bad = recorded(good.clone());
        bad.metadata = b"garbage".to_vec();
        assert!(matches!(
            decode(&bad),
            Err(CodecError::Corrupt {
                part: "metadata",
                ..
            })
        ));
        let mut bad = recorded(good);
        bad.event_type = "StockTeleported".into();
        assert!(matches!(decode(&bad), Err(CodecError::UnknownType { .. })));
    }

    #[test]
    fn an_invalid_sku_inside_a_payload_is_an_error() {
        let event = registered_physical(5, 0);
        let mut data = encode(&event, &metadata()).unwrap();
        // Rewrite the SKU inside the payload to one the domain refuses.
        let pos = data.data.windows(5).position(|w| w == b"SKU-1").unwrap();
        data.data[pos + 3] = b' ';
        assert!(matches!(
            decode(&recorded(data)),
            Err(CodecError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_newer_schema_version_is_refused_not_misread() {
        let mut m = metadata();
        m.schema_version = SCHEMA_VERSION + 1;
        let data = encode(&committed(1, 1, secs(1)), &m).unwrap();
        assert!(matches!(
            decode(&recorded(data)),
            Err(CodecError::UnsupportedSchema { .. })
        ));
    }

    #[test]
    fn snapshots_round_trip_and_refuse_garbage() {
        let state =
            SkuState::from_events(&[registered_physical(5, 0), reserved(1, 2, secs(1), secs(9))])
                .unwrap();
        let bytes = encode_snapshot(&state).unwrap();
        assert_eq!(decode_snapshot(&bytes).unwrap(), state);
        assert!(decode_snapshot(b"\x93\x01").is_err());
    }
}

//! Translation between the store port's types and the EventStoreDB client's, with no I/O.
//!
//! Everything that decides what a server answer *means* lives here, so it can be tested
//! without a server: expectations, conflicts, errors, positions, event ids and payloads.

use bytes::Bytes;
use kurrentdb::{StreamPosition, StreamState};
use serde::{Deserialize, Serialize};
use stockade_domain::Timestamp;
use stockade_store::{
    CurrentRevision, EventData, ExpectedRevision, Position, RecordedEvent, Snapshot, StoreError,
    StreamName,
};
use uuid::Uuid;

/// Event type of the events in snapshot streams.
pub const SNAPSHOT_TYPE: &str = "StockadeSnapshot";
/// Namespace of snapshot event ids (a v5 UUID of the stream and revision).
const SNAPSHOT_IDS: Uuid = Uuid::from_u128(0x5f0c_1d2e_8a4b_4c6d_9e7f_a1b2_c3d4_e5f6);

pub fn stream_state(expected: ExpectedRevision) -> StreamState {
    match expected {
        ExpectedRevision::NoStream => StreamState::NoStream,
        ExpectedRevision::Exact(revision) => StreamState::StreamRevision(revision),
        ExpectedRevision::StreamExists => StreamState::StreamExists,
        ExpectedRevision::Any => StreamState::Any,
    }
}

pub fn current_revision(current: kurrentdb::CurrentRevision) -> CurrentRevision {
    match current {
        kurrentdb::CurrentRevision::Current(revision) => CurrentRevision::Current(revision),
        kurrentdb::CurrentRevision::NoStream => CurrentRevision::NoStream,
    }
}

/// Our positions carry the server's pair unchanged; ordering (commit, then prepare) agrees.
pub fn position(p: kurrentdb::Position) -> Position {
    Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

/// Where a read or subscription "after" `after` starts. The server's `$all` reads include
/// the event at the given position, so callers also drop events at or before `after`.
pub fn start_after(after: Position) -> StreamPosition<kurrentdb::Position> {
    if after == Position::START {
        StreamPosition::Start
    } else {
        StreamPosition::Position(kurrentdb::Position {
            commit: after.commit,
            prepare: after.prepare,
        })
    }
}

/// gRPC status codes a retry may outlive, among those the client passes through as
/// `Error::Grpc` (it reports UNAVAILABLE, UNKNOWN and INTERNAL as `ServerError`).
const CANCELLED: i32 = 1;
const RESOURCE_EXHAUSTED: i32 = 8;
const ABORTED: i32 = 10;
const INVALID_ARGUMENT: i32 = 3;

/// Whether a failed call may succeed if simply tried again later: the server or the
/// network was away, or the node was not the leader. Everything else (refusals, bad
/// requests, access denied) fails the same way again.
pub fn is_transient(e: &kurrentdb::Error) -> bool {
    use kurrentdb::Error as E;
    match e {
        E::ServerError(_)
        | E::NotLeaderException(_)
        | E::ConnectionClosed
        | E::GrpcConnectionError(_)
        | E::DeadlineExceeded => true,
        E::Grpc { code, .. } => {
            matches!(i32::from(*code), CANCELLED | RESOURCE_EXHAUSTED | ABORTED)
        }
        _ => false,
    }
}

/// What a failed append means for the caller. A wrong expected revision is a conflict
/// that names what the stream holds; a refused request (too large, malformed) is invalid;
/// anything else leaves the outcome unknown, and the caller reads to find out.
pub fn append_error(
    stream: &StreamName,
    expected: ExpectedRevision,
    e: kurrentdb::Error,
) -> StoreError {
    match e {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => StoreError::Conflict {
            stream: stream.clone(),
            expected,
            actual: current_revision(current),
        },
        other => call_error(&format!("append to {stream}"), other),
    }
}

/// A failed call other than an append's conflict.
pub fn call_error(what: &str, e: kurrentdb::Error) -> StoreError {
    use kurrentdb::Error as E;
    match e {
        E::Grpc { code, message } if i32::from(code) == INVALID_ARGUMENT => {
            StoreError::InvalidRequest(format!("{what}: EventStoreDB refused it: {message}"))
        }
        E::AccessDenied => StoreError::Unavailable(format!(
            "{what}: access denied; check the user in the connection string"
        )),
        E::ResourceDeleted => StoreError::Unavailable(format!(
            "{what}: the stream was deleted in EventStoreDB; Stockade never deletes its \
             streams, so an operator must restore it"
        )),
        E::NotLeaderException(leader) => StoreError::Unavailable(format!(
            "{what}: the node is not the leader (the leader is {}:{}); the client reconnects",
            leader.host, leader.port
        )),
        other => StoreError::Unavailable(format!("{what}: {other}")),
    }
}

/// A stream that does not exist reads as empty, as on every backend; other errors stand.
pub fn read_error<T: Default>(what: &str, e: kurrentdb::Error) -> Result<T, StoreError> {
    match e {
        kurrentdb::Error::ResourceNotFound => Ok(T::default()),
        other => Err(call_error(what, other)),
    }
}

/// Our event as the client sends it. The id is always ours (never one the client would
/// generate), so a retried batch carries the same ids and the server recognises it. The
/// payload is MessagePack; the client labels binary payloads `application/octet-stream`
/// because the server keeps only a JSON-or-not flag (see docs/adr/0004).
pub fn outgoing(event: EventData) -> kurrentdb::EventData {
    kurrentdb::EventData::binary(event.event_type, Bytes::from(event.data))
        .id(event.event_id)
        .metadata(Bytes::from(event.metadata))
}

/// A stored event as the server returned it, borrowed: the client's own type cannot be
/// built outside the client, and this one can (in tests).
#[derive(Debug, Clone, Copy)]
pub struct ServerEvent<'a> {
    pub stream_id: &'a str,
    pub revision: u64,
    pub position: kurrentdb::Position,
    pub id: Uuid,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub metadata: &'a [u8],
    pub created_millis: i64,
}

impl<'a> From<&'a kurrentdb::RecordedEvent> for ServerEvent<'a> {
    fn from(e: &'a kurrentdb::RecordedEvent) -> Self {
        Self {
            stream_id: e.stream_id(),
            revision: e.revision,
            position: e.position,
            id: e.id,
            event_type: &e.event_type,
            data: &e.data,
            metadata: &e.custom_metadata,
            created_millis: e.created.timestamp_millis(),
        }
    }
}

/// A stored event in the port's terms, its stream name without the store's namespace;
/// `None` if the event is not in one of this store's streams.
pub fn incoming(namespace: &str, event: ServerEvent<'_>) -> Option<RecordedEvent> {
    let name = event.stream_id.strip_prefix(namespace)?;
    let stream = StreamName::new(name).ok()?;
    Some(RecordedEvent {
        stream,
        revision: event.revision,
        position: position(event.position),
        event_id: event.id,
        event_type: event.event_type.to_owned(),
        data: event.data.to_vec(),
        metadata: event.metadata.to_vec(),
        recorded_at: Timestamp::from_millis(u64::try_from(event.created_millis).unwrap_or(0)),
    })
}

/// The snapshot stream beside `stream`. It must not start with `sku-`, or `$all` readers
/// filtering on that prefix would take snapshots for SKU events.
pub fn snapshot_stream(namespace: &str, stream: &StreamName) -> String {
    format!("{namespace}snapshot-{stream}")
}

/// A snapshot event's id: the same snapshot saved twice is one event.
pub fn snapshot_id(stream: &StreamName, revision: u64) -> Uuid {
    Uuid::new_v5(&SNAPSHOT_IDS, format!("{stream}@{revision}").as_bytes())
}

/// What a snapshot event carries beside the state: the revision it was taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotMeta {
    revision: u64,
}

pub fn snapshot_event(stream: &StreamName, snapshot: Snapshot) -> Result<EventData, StoreError> {
    let metadata = rmp_serde::to_vec_named(&SnapshotMeta {
        revision: snapshot.revision,
    })
    .map_err(|e| StoreError::InvalidRequest(format!("encode snapshot metadata: {e}")))?;
    Ok(EventData {
        event_id: snapshot_id(stream, snapshot.revision),
        event_type: SNAPSHOT_TYPE.to_owned(),
        data: snapshot.data,
        metadata,
        index: Default::default(),
    })
}

/// The snapshot a snapshot event holds; an unreadable one is reported, and the caller
/// replays the stream instead.
pub fn snapshot_of(event: ServerEvent<'_>) -> Result<Snapshot, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        position: position(event.position),
        reason: format!("snapshot in {}: {reason}", event.stream_id),
    };
    if event.event_type != SNAPSHOT_TYPE {
        return Err(corrupt(format!(
            "unexpected event type {}",
            event.event_type
        )));
    }
    let meta: SnapshotMeta =
        rmp_serde::from_slice(event.metadata).map_err(|e| corrupt(e.to_string()))?;
    Ok(Snapshot {
        revision: meta.revision,
        data: event.data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamName {
        StreamName::new("sku-TEE-M").unwrap()
    }

    #[test]
    fn every_expectation_maps_to_the_servers() {
        assert_eq!(
            stream_state(ExpectedRevision::NoStream),
            StreamState::NoStream
        );
        assert_eq!(
            stream_state(ExpectedRevision::Exact(41)),
            StreamState::StreamRevision(41)
        );
        assert_eq!(
            stream_state(ExpectedRevision::StreamExists),
            StreamState::StreamExists
        );
        assert_eq!(stream_state(ExpectedRevision::Any), StreamState::Any);
    }

    #[test]
    fn a_wrong_expected_version_is_a_conflict_naming_what_the_stream_holds() {
        let e = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamRevision(3),
            current: kurrentdb::CurrentRevision::Current(7),
        };
        assert_eq!(
            append_error(&stream(), ExpectedRevision::Exact(3), e),
            StoreError::Conflict {
                stream: stream(),
                expected: ExpectedRevision::Exact(3),
                actual: CurrentRevision::Current(7),
            }
        );
        let e = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamRevision(0),
            current: kurrentdb::CurrentRevision::NoStream,
        };
        assert!(matches!(
            append_error(&stream(), ExpectedRevision::Exact(0), e),
            StoreError::Conflict {
                actual: CurrentRevision::NoStream,
                ..
            }
        ));
    }

    #[test]
    fn refusals_are_invalid_and_outages_leave_the_outcome_unknown() {
        let too_big = kurrentdb::Error::Grpc {
            code: tonic::Code::InvalidArgument,
            message: "Maximum Append Size of 1048576 Exceeded.".into(),
        };
        let e = append_error(&stream(), ExpectedRevision::Any, too_big);
        assert!(
            matches!(&e, StoreError::InvalidRequest(m) if m.contains("1048576")),
            "{e}"
        );
        for outage in [
            kurrentdb::Error::DeadlineExceeded,
            kurrentdb::Error::ConnectionClosed,
            kurrentdb::Error::ServerError("restarting".into()),
            kurrentdb::Error::AccessDenied,
            kurrentdb::Error::ResourceDeleted,
        ] {
            let e = append_error(&stream(), ExpectedRevision::Exact(1), outage);
            assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
        }
        let e = call_error("read x", kurrentdb::Error::AccessDenied);
        assert!(e.to_string().contains("credentials") || e.to_string().contains("user"));
    }

    #[test]
    fn a_missing_stream_reads_as_empty_and_other_read_errors_stand() {
        let empty: Vec<RecordedEvent> =
            read_error("read sku-x", kurrentdb::Error::ResourceNotFound).unwrap();
        assert!(empty.is_empty());
        let none: Option<Snapshot> =
            read_error("read snapshot", kurrentdb::Error::ResourceNotFound).unwrap();
        assert_eq!(none, None);
        let failed: Result<Vec<RecordedEvent>, _> =
            read_error("read sku-x", kurrentdb::Error::ResourceDeleted);
        assert!(matches!(failed, Err(StoreError::Unavailable(_))));
        let failed: Result<Vec<RecordedEvent>, _> =
            read_error("read sku-x", kurrentdb::Error::DeadlineExceeded);
        assert!(matches!(failed, Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn transient_errors_are_told_apart_from_permanent_ones() {
        let grpc = |code| kurrentdb::Error::Grpc {
            code,
            message: String::new(),
        };
        assert!(is_transient(&kurrentdb::Error::ConnectionClosed));
        assert!(is_transient(&kurrentdb::Error::DeadlineExceeded));
        assert!(is_transient(&kurrentdb::Error::NotLeaderException(
            kurrentdb::Endpoint {
                host: "b".into(),
                port: 2113
            }
        )));
        assert!(is_transient(&grpc(tonic::Code::Aborted)));
        assert!(!is_transient(&grpc(tonic::Code::InvalidArgument)));
        assert!(!is_transient(&kurrentdb::Error::AccessDenied));
        assert!(!is_transient(&kurrentdb::Error::ResourceDeleted));
    }

    #[test]
    fn positions_keep_the_servers_pair_and_its_order() {
        let server = |commit, prepare| kurrentdb::Position { commit, prepare };
        // Events of a legacy explicit transaction share the position of the commit record
        // written after them; gRPC appends have both positions equal.
        let pairs = [
            server(100, 100),
            server(260, 180),
            server(260, 220),
            server(400, 400),
        ];
        let ours: Vec<Position> = pairs.iter().copied().map(position).collect();
        assert!(ours.windows(2).all(|w| w[0] < w[1]));
        assert!(pairs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            ours[2],
            Position {
                commit: 260,
                prepare: 220
            }
        );
        // Printed and parsed back, as checkpoints and the CLI carry them.
        for p in &ours {
            assert_eq!(p.to_string().parse::<Position>().unwrap(), *p);
        }
        assert_eq!(ours[2].to_string(), "260/220");
        assert_eq!(ours[0].to_string(), "100");
        // Reading after a position starts there; the start of the log is the server's start.
        assert_eq!(start_after(Position::START), StreamPosition::Start);
        assert_eq!(
            start_after(ours[2]),
            StreamPosition::Position(server(260, 220))
        );
        assert!("12/".parse::<Position>().is_err());
        assert!("x".parse::<Position>().is_err());
    }

    #[test]
    fn outgoing_events_keep_our_id_so_retries_are_recognised() {
        let id = Uuid::new_v4();
        let sent = outgoing(EventData {
            event_id: id,
            event_type: "StockReserved".into(),
            data: vec![0x80],
            metadata: vec![0x80],
            index: Default::default(),
        });
        // The client's fields are private; its Debug shows the id it will send.
        let shown = format!("{sent:?}");
        assert!(shown.contains(&format!("id_opt: Some({id})")), "{shown}");
    }

    #[test]
    fn snapshot_ids_are_derived_from_stream_and_revision() {
        let a = snapshot_id(&stream(), 1000);
        assert_eq!(a, snapshot_id(&stream(), 1000));
        assert_ne!(a, snapshot_id(&stream(), 2000));
        assert_ne!(a, snapshot_id(&StreamName::new("sku-OTHER").unwrap(), 1000));
        assert_eq!(a.get_version_num(), 5);
    }

    fn server_event<'a>(stream_id: &'a str, event: &'a EventData) -> ServerEvent<'a> {
        ServerEvent {
            stream_id,
            revision: 4,
            position: kurrentdb::Position {
                commit: 10,
                prepare: 12,
            },
            id: event.event_id,
            event_type: &event.event_type,
            data: &event.data,
            metadata: &event.metadata,
            created_millis: 1_700_000_000_000,
        }
    }

    #[test]
    fn incoming_events_lose_the_namespace_and_keep_everything_else() {
        let sent = EventData {
            event_id: Uuid::new_v4(),
            event_type: "StockReserved".into(),
            data: vec![1, 2, 3],
            metadata: vec![4, 5],
            index: Default::default(),
        };
        let got = incoming("t1-", server_event("t1-sku-TEE-M", &sent)).unwrap();
        assert_eq!(got.stream, stream());
        assert_eq!(got.revision, 4);
        assert_eq!(
            got.position,
            Position {
                commit: 10,
                prepare: 12
            }
        );
        assert_eq!(got.event_id, sent.event_id);
        assert_eq!(
            (got.data, got.metadata),
            (sent.data.clone(), sent.metadata.clone())
        );
        assert_eq!(got.recorded_at, Timestamp::from_millis(1_700_000_000_000));
        // Another namespace's stream is not ours.
        assert!(incoming("t1-", server_event("t2-sku-TEE-M", &sent)).is_none());
        assert!(incoming("", server_event("sku-TEE-M", &sent)).is_some());
    }

    #[test]
    fn snapshots_round_trip_and_their_stream_is_outside_the_sku_filter() {
        let snapshot = Snapshot {
            revision: 1234,
            data: vec![9, 9, 9],
        };
        let event = snapshot_event(&stream(), snapshot.clone()).unwrap();
        assert_eq!(event.event_id, snapshot_id(&stream(), 1234));
        let name = snapshot_stream("", &stream());
        assert_eq!(name, "snapshot-sku-TEE-M");
        assert!(!name.starts_with(StreamName::SKU_PREFIX));
        assert_eq!(snapshot_of(server_event(&name, &event)).unwrap(), snapshot);
        let mut wrong = event.clone();
        wrong.event_type = "StockReserved".into();
        assert!(matches!(
            snapshot_of(server_event(&name, &wrong)),
            Err(StoreError::Corrupt { .. })
        ));
    }
}

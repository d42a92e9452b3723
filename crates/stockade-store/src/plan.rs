//! The expected-revision rule and idempotent retries, decided once for every backend.
//!
//! A backend reads the stream's last revision, calls [`plan_append`], and either writes at
//! the planned revision or answers with the events already there.

use uuid::Uuid;

use crate::{
    AppendResult, CurrentRevision, EventData, ExpectedRevision, Position, StoreError, StreamName,
};

/// Most bytes one append may carry, as EventStoreDB's default `MaxAppendSize`, counted as
/// [`append_size`] counts them: the embedded store refuses what production would refuse.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// The bytes an event counts against [`MAX_APPEND_BYTES`]. This is EventStoreDB's own
/// measure (`Event.SizeOnDisk`): payload, metadata and the type name twice (the server
/// holds it as UTF-16; twice the UTF-8 length is never less).
pub fn append_size(event: &EventData) -> usize {
    event
        .data
        .len()
        .saturating_add(event.metadata.len())
        .saturating_add(event.event_type.len().saturating_mul(2))
}

/// Refuses a batch no backend should write: empty, larger than [`MAX_APPEND_BYTES`], or
/// holding an event without a type or with the nil id (EventStoreDB refuses both).
pub fn check_batch(events: &[EventData]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::InvalidRequest(
            "an append needs at least one event".into(),
        ));
    }
    if let Some(bad) = events
        .iter()
        .find(|e| e.event_id.is_nil() || e.event_type.is_empty())
    {
        return Err(StoreError::InvalidRequest(format!(
            "event {} has {}",
            bad.event_id,
            if bad.event_id.is_nil() {
                "the nil id"
            } else {
                "no type"
            }
        )));
    }
    let bytes = events
        .iter()
        .map(append_size)
        .fold(0usize, usize::saturating_add);
    if bytes > MAX_APPEND_BYTES {
        return Err(StoreError::InvalidRequest(format!(
            "an append of {bytes} bytes exceeds the {MAX_APPEND_BYTES}-byte limit; split it"
        )));
    }
    Ok(())
}

/// What to do with an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Write the batch; its first event gets this revision.
    Write { first_revision: u64 },
    /// The batch is already stored (a retry): answer with where it landed.
    AlreadyWritten(AppendResult),
}

/// Decides an append of events with `ids` to a stream whose last revision is `last`.
///
/// `stored(from, n)` returns the ids and positions of the stream's events at revisions
/// `from .. from + n` (fewer if the stream is shorter).
///
/// Idempotency: with `NoStream` or `Exact`, a batch whose ids sit exactly where the
/// expectation would have put them is a retry. With `Any` or `StreamExists` (as in
/// EventStoreDB, best effort) a batch whose ids are the stream's last events is a retry.
pub fn plan_append<F>(
    stream: &StreamName,
    expected: ExpectedRevision,
    last: Option<u64>,
    ids: &[Uuid],
    mut stored: F,
) -> Result<Plan, StoreError>
where
    F: FnMut(u64, usize) -> Result<Vec<(Uuid, Position)>, StoreError>,
{
    let n = ids.len();
    if n == 0 {
        return Err(StoreError::InvalidRequest(
            "an append needs at least one event".into(),
        ));
    }
    let next = match last {
        None => 0,
        Some(r) => r
            .checked_add(n as u64)
            .map(|_| r + 1)
            .ok_or_else(|| StoreError::InvalidRequest(format!("{stream} has no revisions left")))?,
    };
    let conflict = || StoreError::Conflict {
        stream: stream.clone(),
        expected,
        actual: CurrentRevision::from_last(last),
    };
    let mut matches_at = |from: u64| -> Result<Option<AppendResult>, StoreError> {
        let found = stored(from, n)?;
        let same = found.len() == n && found.iter().map(|(id, _)| id).eq(ids.iter());
        Ok(match (same, found.last()) {
            (true, Some(&(_, position))) => Some(AppendResult {
                revision: from + (n as u64 - 1),
                position,
                deduplicated: true,
            }),
            _ => None,
        })
    };
    let retry_at = match (expected, last) {
        (ExpectedRevision::NoStream, None) => return Ok(Plan::Write { first_revision: 0 }),
        (ExpectedRevision::Exact(r), Some(l)) if r == l => {
            return Ok(Plan::Write {
                first_revision: next,
            });
        }
        (ExpectedRevision::NoStream, Some(_)) => Some(0),
        (ExpectedRevision::Exact(r), Some(_)) => r.checked_add(1),
        (ExpectedRevision::Exact(_), None) | (ExpectedRevision::StreamExists, None) => {
            return Err(conflict());
        }
        (ExpectedRevision::StreamExists | ExpectedRevision::Any, Some(l)) => {
            // The tail of the stream, if it is long enough to hold the whole batch.
            if let Some(from) = (l + 1).checked_sub(n as u64)
                && let Some(done) = matches_at(from)?
            {
                return Ok(Plan::AlreadyWritten(done));
            }
            return Ok(Plan::Write {
                first_revision: next,
            });
        }
        (ExpectedRevision::Any, None) => return Ok(Plan::Write { first_revision: 0 }),
    };
    // The expectation failed: a retry of a batch that did land, or a real conflict.
    match retry_at {
        Some(from) if from < next => match matches_at(from)? {
            Some(done) => Ok(Plan::AlreadyWritten(done)),
            None => Err(conflict()),
        },
        _ => Err(conflict()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamName {
        StreamName::new("s").unwrap()
    }

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    fn event(event_type: &str, data: usize) -> EventData {
        EventData {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            data: vec![0; data],
            metadata: vec![0; 10],
            index: Default::default(),
        }
    }

    #[test]
    fn batches_are_weighed_as_eventstoredb_weighs_them() {
        // Type name twice, payload, metadata.
        assert_eq!(append_size(&event("Abc", 100)), 6 + 100 + 10);
        let exact = MAX_APPEND_BYTES - 10 - 2;
        assert!(check_batch(&[event("E", exact)]).is_ok());
        assert!(check_batch(&[event("E", exact + 1)]).is_err());
        let half = MAX_APPEND_BYTES / 2;
        assert!(check_batch(&[event("E", half), event("E", half)]).is_err());
    }

    #[test]
    fn events_the_server_would_refuse_are_refused_here() {
        let mut nil = event("E", 1);
        nil.event_id = Uuid::nil();
        assert!(
            matches!(check_batch(&[nil]), Err(StoreError::InvalidRequest(m)) if m.contains("nil"))
        );
        let untyped = event("", 1);
        assert!(
            matches!(check_batch(&[untyped]), Err(StoreError::InvalidRequest(m)) if m.contains("no type"))
        );
        assert!(check_batch(&[]).is_err());
    }

    /// A stream holding `held` ids at revisions 0.., positions 100...
    fn lookup(
        held: Vec<Uuid>,
    ) -> impl FnMut(u64, usize) -> Result<Vec<(Uuid, Position)>, StoreError> {
        move |from, n| {
            Ok(held
                .iter()
                .enumerate()
                .skip(from as usize)
                .take(n)
                .map(|(i, id)| (*id, Position::at(100 + i as u64)))
                .collect())
        }
    }

    #[test]
    fn matching_expectations_write_after_the_last_revision() {
        let s = stream();
        let plan = |e, last| plan_append(&s, e, last, &ids(1), lookup(vec![])).unwrap();
        assert_eq!(
            plan(ExpectedRevision::NoStream, None),
            Plan::Write { first_revision: 0 }
        );
        assert_eq!(
            plan(ExpectedRevision::Exact(4), Some(4)),
            Plan::Write { first_revision: 5 }
        );
        assert_eq!(
            plan(ExpectedRevision::StreamExists, Some(2)),
            Plan::Write { first_revision: 3 }
        );
        assert_eq!(
            plan(ExpectedRevision::Any, None),
            Plan::Write { first_revision: 0 }
        );
    }

    #[test]
    fn a_failed_expectation_reports_the_actual_revision() {
        let s = stream();
        let err = plan_append(
            &s,
            ExpectedRevision::Exact(1),
            Some(3),
            &ids(1),
            lookup(ids(4)),
        );
        assert_eq!(
            err,
            Err(StoreError::Conflict {
                stream: s.clone(),
                expected: ExpectedRevision::Exact(1),
                actual: CurrentRevision::Current(3),
            })
        );
        let err = plan_append(
            &s,
            ExpectedRevision::StreamExists,
            None,
            &ids(1),
            lookup(vec![]),
        );
        assert!(matches!(
            err,
            Err(StoreError::Conflict {
                actual: CurrentRevision::NoStream,
                ..
            })
        ));
    }

    #[test]
    fn a_retry_of_a_landed_batch_is_recognised() {
        let s = stream();
        let batch: Vec<Uuid> = ids(3)[1..].to_vec();
        let plan = plan_append(
            &s,
            ExpectedRevision::Exact(0),
            Some(2),
            &batch,
            lookup(ids(3)),
        );
        assert_eq!(
            plan,
            Ok(Plan::AlreadyWritten(AppendResult {
                revision: 2,
                position: Position::at(102),
                deduplicated: true,
            }))
        );
        let plan = plan_append(&s, ExpectedRevision::Any, Some(2), &batch, lookup(ids(3)));
        assert!(matches!(plan, Ok(Plan::AlreadyWritten(_))));
    }

    #[test]
    fn a_partly_matching_retry_is_a_conflict() {
        let s = stream();
        let batch = vec![Uuid::from_u128(2), Uuid::from_u128(99)];
        let plan = plan_append(
            &s,
            ExpectedRevision::Exact(0),
            Some(2),
            &batch,
            lookup(ids(3)),
        );
        assert!(matches!(plan, Err(StoreError::Conflict { .. })));
    }

    #[test]
    fn an_empty_batch_is_invalid() {
        let plan = plan_append(&stream(), ExpectedRevision::Any, None, &[], lookup(vec![]));
        assert!(matches!(plan, Err(StoreError::InvalidRequest(_))));
    }
}

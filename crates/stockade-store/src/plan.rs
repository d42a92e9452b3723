//! The expected-revision rule and idempotent retries, decided once for every backend.
//!
//! A backend reads the stream's last revision, calls [`plan_append`], and either writes at
//! the planned revision or answers with the events already there.

use uuid::Uuid;

use crate::{
    AppendResult, CurrentRevision, EventData, ExpectedRevision, Position, StoreError, StreamName,
};

/// Most bytes one append may carry (type names, payloads and metadata), as EventStoreDB's
/// default `MaxAppendSize`: the embedded store refuses what production would refuse.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// Refuses a batch no backend should write: empty, or larger than [`MAX_APPEND_BYTES`].
pub fn check_batch(events: &[EventData]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::InvalidRequest(
            "an append needs at least one event".into(),
        ));
    }
    let bytes = events
        .iter()
        .map(|e| e.event_type.len() + e.data.len() + e.metadata.len())
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
                .map(|(i, id)| (*id, Position(100 + i as u64)))
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
                position: Position(102)
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

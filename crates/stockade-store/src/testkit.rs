//! The conformance suite: every backend must pass every case here.
//!
//! A backend's test file instantiates it with [`conformance_suite!`], giving a factory that
//! returns a fresh, empty store; each case becomes its own `#[tokio::test]`.
//!
//! ```no_run
//! // In a backend's `tests/conformance.rs`:
//! stockade_store::conformance_suite!(|| async {
//!     stockade_store::testkit::Fixture::new(stockade_store::MemoryStore::new())
//! });
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use uuid::Uuid;

use crate::{
    AppendResult, CurrentRevision, EventData, EventStore, ExpectedRevision, Position,
    RecordedEvent, Snapshot, StoreError, StreamName, Subscription,
};

/// A store under test and whatever must live as long as it (a temporary directory).
pub struct Fixture<S> {
    pub store: S,
    _keep: Option<Box<dyn std::any::Any + Send>>,
}

impl<S> std::fmt::Debug for Fixture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fixture")
    }
}

impl<S> Fixture<S> {
    pub fn new(store: S) -> Self {
        Self { store, _keep: None }
    }

    pub fn keeping(store: S, keep: impl std::any::Any + Send) -> Self {
        Self {
            store,
            _keep: Some(Box::new(keep)),
        }
    }
}

/// A fresh SQLite store in a temporary directory. Its cross-process re-check is set to an
/// hour, so the subscription cases prove that commits wake subscribers by themselves.
pub fn sqlite_fixture() -> Fixture<crate::SqliteStore> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let config = crate::SqliteConfig::new(dir.path().join("events.db"))
        .cross_process_poll(Duration::from_secs(3600));
    let store = crate::SqliteStore::open_with(config).expect("open store");
    Fixture::keeping(store, dir)
}

/// What a conformance factory returns: a fixture, or (for a backend that needs a server
/// nobody configured) `None`, and then every case passes without running; the factory is
/// expected to have said why.
pub trait MaybeFixture<S> {
    fn into_fixture(self) -> Option<Fixture<S>>;
}

impl<S> MaybeFixture<S> for Fixture<S> {
    fn into_fixture(self) -> Option<Fixture<S>> {
        Some(self)
    }
}

impl<S> MaybeFixture<S> for Option<Fixture<S>> {
    fn into_fixture(self) -> Option<Fixture<S>> {
        self
    }
}

/// Instantiates every conformance case for a backend.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@cases $factory;
            no_stream_expectation,
            exact_expectation,
            stream_exists_expectation,
            any_expectation,
            conflict_reports_the_actual_revision,
            retry_at_the_same_expected_revision_writes_nothing_twice,
            retry_with_any_writes_nothing_twice,
            partly_matching_retry_is_a_conflict,
            empty_append_is_invalid,
            oversized_append_is_invalid,
            read_stream_pages_and_missing_streams,
            read_all_order_equals_commit_order,
            subscriber_sees_exactly_the_events_after_its_position_then_live_ones,
            subscriber_from_the_start_sees_everything,
            snapshots_keep_the_latest_only,
            concurrent_appenders_leave_no_gap_or_duplicate,
            history_is_found_by_id_subject_and_correlation
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let made = ($factory)().await;
                let Some(fixture) = $crate::testkit::MaybeFixture::into_fixture(made) else {
                    return;
                };
                $crate::testkit::$case(&fixture.store).await;
            }
        )*
    };
}

pub fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

/// An event with a fresh id whose payload names it, so reads can be checked by content.
pub fn event(label: &str) -> EventData {
    EventData {
        event_id: Uuid::new_v4(),
        event_type: "TestEvent".into(),
        data: label.as_bytes().to_vec(),
        metadata: b"{}".to_vec(),
        index: Default::default(),
    }
}

/// Appends and fails the test on any error.
pub async fn append_ok(
    store: &impl EventStore,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<EventData>,
) -> crate::AppendResult {
    match store.append(stream, expected, events).await {
        Ok(landed) => landed,
        Err(e) => panic!("append to {stream} at {expected} failed: {e}"),
    }
}

/// Appends, expecting a conflict that reports `actual` as the stream's revision.
pub async fn expect_conflict(
    store: &impl EventStore,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<EventData>,
    actual: CurrentRevision,
) {
    match store.append(stream, expected, events).await {
        Err(StoreError::Conflict { actual: got, .. }) => assert_eq!(got, actual),
        other => panic!("expected a conflict reporting {actual}, got {other:?}"),
    }
}

fn labels(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .collect()
}

pub async fn no_stream_expectation(store: &impl EventStore) {
    let s = stream("orders-1");
    let r = append_ok(
        store,
        &s,
        ExpectedRevision::NoStream,
        vec![event("a"), event("b")],
    )
    .await;
    assert_eq!(r.revision, 1);
    expect_conflict(
        store,
        &s,
        ExpectedRevision::NoStream,
        vec![event("c")],
        CurrentRevision::Current(1),
    )
    .await;
}

pub async fn exact_expectation(store: &impl EventStore) {
    let s = stream("sku-A");
    let r = append_ok(store, &s, ExpectedRevision::NoStream, vec![event("a")]).await;
    let r = append_ok(
        store,
        &s,
        ExpectedRevision::Exact(r.revision),
        vec![event("b")],
    )
    .await;
    assert_eq!(r.revision, 1);
    expect_conflict(
        store,
        &s,
        ExpectedRevision::Exact(0),
        vec![event("c")],
        CurrentRevision::Current(1),
    )
    .await;
    expect_conflict(
        store,
        &stream("sku-missing"),
        ExpectedRevision::Exact(0),
        vec![event("x")],
        CurrentRevision::NoStream,
    )
    .await;
    assert_eq!(
        labels(&store.read_stream(&s, 0, 10).await.unwrap()),
        ["a", "b"]
    );
}

pub async fn stream_exists_expectation(store: &impl EventStore) {
    let s = stream("sku-B");
    expect_conflict(
        store,
        &s,
        ExpectedRevision::StreamExists,
        vec![event("a")],
        CurrentRevision::NoStream,
    )
    .await;
    append_ok(store, &s, ExpectedRevision::Any, vec![event("a")]).await;
    let r = append_ok(store, &s, ExpectedRevision::StreamExists, vec![event("b")]).await;
    assert_eq!(r.revision, 1);
}

pub async fn any_expectation(store: &impl EventStore) {
    let s = stream("sku-C");
    for (i, label) in ["a", "b", "c"].into_iter().enumerate() {
        let r = append_ok(store, &s, ExpectedRevision::Any, vec![event(label)]).await;
        assert_eq!(r.revision, i as u64);
    }
}

pub async fn conflict_reports_the_actual_revision(store: &impl EventStore) {
    let s = stream("sku-D");
    append_ok(
        store,
        &s,
        ExpectedRevision::NoStream,
        (0..5).map(|i| event(&i.to_string())).collect(),
    )
    .await;
    let err = store
        .append(&s, ExpectedRevision::Exact(2), vec![event("late")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Conflict {
            stream: s.clone(),
            expected: ExpectedRevision::Exact(2),
            actual: CurrentRevision::Current(4),
        }
    );
}

pub async fn retry_at_the_same_expected_revision_writes_nothing_twice(store: &impl EventStore) {
    let s = stream("sku-E");
    let first = vec![event("a"), event("b")];
    let landed = append_ok(store, &s, ExpectedRevision::NoStream, first.clone()).await;
    // The reply was lost; the caller retries the same batch at the same expectation.
    let retried = append_ok(store, &s, ExpectedRevision::NoStream, first).await;
    assert_same_landing(&retried, &landed);
    let second = vec![event("c")];
    let landed = append_ok(store, &s, ExpectedRevision::Exact(1), second.clone()).await;
    append_ok(store, &s, ExpectedRevision::Any, vec![event("d")]).await;
    let retried = append_ok(store, &s, ExpectedRevision::Exact(1), second).await;
    assert_same_landing(&retried, &landed);
    assert_eq!(
        labels(&store.read_stream(&s, 0, 10).await.unwrap()),
        ["a", "b", "c", "d"]
    );
}

/// A retry answers where the first append landed, and says that it wrote nothing.
fn assert_same_landing(retried: &crate::AppendResult, landed: &crate::AppendResult) {
    assert_eq!(
        (retried.revision, retried.position),
        (landed.revision, landed.position)
    );
    assert!(!landed.deduplicated, "the first append wrote its events");
    assert!(retried.deduplicated, "the retry must say it wrote nothing");
}

pub async fn retry_with_any_writes_nothing_twice(store: &impl EventStore) {
    let s = stream("sku-F");
    append_ok(store, &s, ExpectedRevision::Any, vec![event("a")]).await;
    let batch = vec![event("b"), event("c")];
    let landed = append_ok(store, &s, ExpectedRevision::Any, batch.clone()).await;
    let retried = append_ok(store, &s, ExpectedRevision::Any, batch).await;
    assert_same_landing(&retried, &landed);
    assert_eq!(
        labels(&store.read_stream(&s, 0, 10).await.unwrap()),
        ["a", "b", "c"]
    );
}

pub async fn partly_matching_retry_is_a_conflict(store: &impl EventStore) {
    let s = stream("sku-G");
    let a = event("a");
    append_ok(
        store,
        &s,
        ExpectedRevision::NoStream,
        vec![a.clone(), event("b")],
    )
    .await;
    let err = store
        .append(&s, ExpectedRevision::NoStream, vec![a, event("other")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    assert_eq!(store.read_stream(&s, 0, 10).await.unwrap().len(), 2);
}

pub async fn empty_append_is_invalid(store: &impl EventStore) {
    let err = store
        .append(&stream("sku-H"), ExpectedRevision::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)));
    assert!(StreamName::new("").is_err());
    assert!(StreamName::new("bad\nname").is_err());
}

pub async fn oversized_append_is_invalid(store: &impl EventStore) {
    let s = stream("sku-big");
    let mut big = event("big");
    big.data = vec![0; crate::plan::MAX_APPEND_BYTES];
    let err = store
        .append(&s, ExpectedRevision::Any, vec![big])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err}");
    // Nothing was written, and the store goes on serving.
    assert!(store.read_stream(&s, 0, 1).await.unwrap().is_empty());
    append_ok(store, &s, ExpectedRevision::NoStream, vec![event("small")]).await;
}

pub async fn read_stream_pages_and_missing_streams(store: &impl EventStore) {
    let s = stream("sku-I");
    let batch: Vec<_> = (0..10).map(|i| event(&i.to_string())).collect();
    append_ok(store, &s, ExpectedRevision::NoStream, batch).await;
    append_ok(
        store,
        &stream("sku-other"),
        ExpectedRevision::Any,
        vec![event("x")],
    )
    .await;
    let page = store.read_stream(&s, 3, 4).await.unwrap();
    assert_eq!(labels(&page), ["3", "4", "5", "6"]);
    assert_eq!(
        page.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [3, 4, 5, 6]
    );
    assert!(page.iter().all(|e| e.stream == s));
    assert!(store.read_stream(&s, 10, 5).await.unwrap().is_empty());
    assert!(
        store
            .read_stream(&stream("sku-never"), 0, 5)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn read_all_order_equals_commit_order(store: &impl EventStore) {
    // Acknowledgement order across streams, one append after another, is commit order.
    let mut acked = Vec::new();
    for i in 0..30 {
        let s = stream(&format!("sku-{}", i % 4));
        let label = format!("e{i}");
        let r = append_ok(store, &s, ExpectedRevision::Any, vec![event(&label)]).await;
        acked.push((r.position, label));
    }
    let all = store.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(
        labels(&all),
        acked.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        acked.iter().map(|(p, _)| *p).collect::<Vec<_>>()
    );
    assert_eq!(store.head().await.unwrap(), acked.last().unwrap().0);
    // Paging after a position excludes it.
    let tail = store.read_all(all[9].position, 5).await.unwrap();
    assert_eq!(labels(&tail), labels(&all[10..15]));
}

pub async fn subscriber_sees_exactly_the_events_after_its_position_then_live_ones(
    store: &impl EventStore,
) {
    let s = stream("sku-J");
    let batch: Vec<_> = (0..6).map(|i| event(&format!("old{i}"))).collect();
    append_ok(store, &s, ExpectedRevision::NoStream, batch).await;
    let all = store.read_all(Position::START, 100).await.unwrap();
    let p = all[2].position;
    let mut sub = store.subscribe_all(p);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut sub).await);
    }
    assert_eq!(labels(&seen), ["old3", "old4", "old5"]);
    // Caught up and parked: a new commit must wake it.
    let (live, appended_at) = tokio::join!(next(&mut sub), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let at = Instant::now();
        append_ok(store, &s, ExpectedRevision::Any, vec![event("live")]).await;
        at
    });
    assert_eq!(labels(std::slice::from_ref(&live)), ["live"]);
    eprintln!(
        "live event delivered {:?} after its append began",
        appended_at.elapsed()
    );
    // And nothing else is pending.
    let extra = tokio::time::timeout(Duration::from_millis(50), sub.next()).await;
    assert!(extra.is_err(), "unexpected event after the live one");
}

pub async fn subscriber_from_the_start_sees_everything(store: &impl EventStore) {
    let mut sub = store.subscribe_all(Position::START);
    let producer = async {
        for i in 0..20 {
            let s = stream(&format!("sku-{}", i % 3));
            append_ok(
                store,
                &s,
                ExpectedRevision::Any,
                vec![event(&format!("e{i}"))],
            )
            .await;
        }
    };
    let consumer = async {
        let mut seen = Vec::new();
        while seen.len() < 20 {
            seen.push(next(&mut sub).await);
        }
        seen
    };
    let ((), seen) = tokio::join!(producer, consumer);
    assert_eq!(
        labels(&seen),
        (0..20).map(|i| format!("e{i}")).collect::<Vec<_>>()
    );
}

/// The next subscription event; a stuck subscription fails the test after 5 s.
async fn next(sub: &mut crate::Subscription) -> RecordedEvent {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("subscription delivered nothing within 5 s")
        .expect("subscription ended")
        .expect("subscription failed")
}

pub async fn snapshots_keep_the_latest_only(store: &impl EventStore) {
    let s = stream("sku-K");
    assert_eq!(store.load_snapshot(&s).await.unwrap(), None);
    let snap = |revision, data: &str| Snapshot {
        revision,
        data: data.as_bytes().to_vec(),
    };
    store.save_snapshot(&s, snap(3, "three")).await.unwrap();
    store.save_snapshot(&s, snap(7, "seven")).await.unwrap();
    // An older snapshot arriving late does not replace a newer one.
    store.save_snapshot(&s, snap(5, "five")).await.unwrap();
    assert_eq!(
        store.load_snapshot(&s).await.unwrap(),
        Some(snap(7, "seven"))
    );
    assert_eq!(store.load_snapshot(&stream("sku-L")).await.unwrap(), None);
}

/// Appends `e` after what `s` holds now, with the exact expected revision, reading the
/// stream again after every conflict (another writer came first) until it lands.
pub async fn append_at_end<S: EventStore + ?Sized>(
    store: &S,
    s: &StreamName,
    e: &EventData,
) -> AppendResult {
    loop {
        let last = store
            .read_stream(s, 0, usize::MAX)
            .await
            .unwrap()
            .last()
            .map(|e| e.revision);
        let expected = last.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        match store.append(s, expected, vec![e.clone()]).await {
            Ok(r) => return r,
            Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
            Err(other) => panic!("append failed: {other}"),
        }
    }
}

/// 32 tasks append to 4 shared streams with exact expected revisions, re-reading the
/// revision after every conflict. No stream may end with a gap or a duplicate.
pub async fn concurrent_appenders_leave_no_gap_or_duplicate<S: EventStore>(store: &S) {
    const TASKS: usize = 32;
    const PER_TASK: usize = 25;
    // `store` is a shared reference: each task's `async move` copies the reference.
    let tasks = (0..TASKS).map(|t| async move {
        let mut acked = Vec::new();
        for i in 0..PER_TASK {
            let s = stream(&format!("sku-shared-{}", (t + i) % 4));
            let e = event(&format!("t{t}-{i}"));
            let r = append_at_end(store, &s, &e).await;
            acked.push((s.clone(), r.revision, e.event_id));
        }
        acked
    });
    let acked: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(acked.len(), TASKS * PER_TASK);
    let mut per_stream: BTreeMap<StreamName, Vec<RecordedEvent>> = BTreeMap::new();
    for e in store.read_all(Position::START, usize::MAX).await.unwrap() {
        per_stream.entry(e.stream.clone()).or_default().push(e);
    }
    let mut ids = HashSet::new();
    for (s, events) in &per_stream {
        let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
        assert_eq!(
            revisions,
            (0..events.len() as u64).collect::<Vec<_>>(),
            "gap or duplicate in {s}"
        );
        for e in events {
            assert!(ids.insert(e.event_id), "event {} stored twice", e.event_id);
        }
    }
    assert_eq!(ids.len(), acked.len());
    for (s, revision, id) in acked {
        let at = &per_stream[&s][revision as usize];
        assert_eq!(at.event_id, id, "acknowledged revision holds another event");
    }
}

/// A reservation-shaped event, encoded by the codec so that every backend files it the
/// same way (an indexing one from `EventData::index`, a scanning one by decoding).
fn domain_event(event: stockade_domain::Event, order: Option<&str>) -> EventData {
    let meta = stockade_domain::EventMetadata {
        correlation_id: order.map(str::to_owned),
        ..stockade_domain::EventMetadata::new(
            Uuid::new_v4(),
            stockade_domain::Timestamp::from_millis(1_000),
        )
    };
    crate::codec::encode(&event, &meta).unwrap()
}

pub async fn history_is_found_by_id_subject_and_correlation(store: &impl EventStore) {
    use stockade_domain::{
        Channel, Event, OrderId, Quantity, ReservationCommitted, ReservationId, StockReserved,
        Timestamp,
    };
    let (a, b) = (stream("sku-H1"), stream("sku-H2"));
    let (r1, r2) = (
        ReservationId::from_uuid(Uuid::new_v4()),
        ReservationId::from_uuid(Uuid::new_v4()),
    );
    let order = format!("order-{}", Uuid::new_v4());
    let reserved = |id: ReservationId, order_id: Option<&str>| {
        Event::StockReserved(StockReserved {
            customer: None,
            waitlist: None,
            parts: Vec::new(),
            reservation_id: id,
            order_id: order_id.map(|o| OrderId::new(o).unwrap()),
            lines: Vec::new(),
            qty: Quantity::new(1),
            channel: Channel::new("web").unwrap(),
            at: Timestamp::from_millis(1_000),
            expires_at: Timestamp::from_millis(61_000),
        })
    };
    let committed = |id: ReservationId| {
        Event::ReservationCommitted(ReservationCommitted {
            reservation_id: id,
            qty: Quantity::new(1),
            at: Timestamp::from_millis(2_000),
        })
    };
    // r1 holds a line on both streams (one order); r2 on `b` only, without an order.
    let a1 = domain_event(reserved(r1, Some(&order)), Some(&order));
    let b1 = domain_event(reserved(r1, Some(&order)), Some(&order));
    let b2 = domain_event(reserved(r2, None), None);
    append_ok(
        store,
        &a,
        ExpectedRevision::NoStream,
        vec![event("x"), a1.clone()],
    )
    .await;
    append_ok(
        store,
        &b,
        ExpectedRevision::NoStream,
        vec![b1.clone(), b2.clone()],
    )
    .await;
    let mut open = store.streams_with_open_subjects().await.unwrap();
    open.retain(|s| *s == a || *s == b);
    assert_eq!(open, [a.clone(), b.clone()]);

    // Closing r1 on `a` leaves `a` with nothing open; `b` still holds r1 and r2.
    let c1 = domain_event(committed(r1), None);
    append_ok(store, &a, ExpectedRevision::Exact(1), vec![c1.clone()]).await;
    let mut open = store.streams_with_open_subjects().await.unwrap();
    open.retain(|s| *s == a || *s == b);
    assert_eq!(open, std::slice::from_ref(&b));

    let ids = |events: &[RecordedEvent]| events.iter().map(|e| e.event_id).collect::<Vec<_>>();
    let found = store
        .find_events(&a, &[c1.event_id, b2.event_id, a1.event_id])
        .await
        .unwrap();
    assert_eq!(
        ids(&found),
        [a1.event_id, c1.event_id],
        "only `a`'s, in revision order"
    );
    assert!(
        store
            .find_events(&a, &[Uuid::new_v4()])
            .await
            .unwrap()
            .is_empty()
    );

    let subject = store.read_subject(*r1.as_uuid(), 10).await.unwrap();
    assert_eq!(ids(&subject), [a1.event_id, b1.event_id, c1.event_id]);
    assert_eq!(store.read_subject(*r1.as_uuid(), 2).await.unwrap().len(), 2);
    let correlated = store.read_correlation(&order, 10).await.unwrap();
    assert_eq!(ids(&correlated), [a1.event_id, b1.event_id]);
    assert!(
        store
            .read_correlation("no-such-order", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A store that answers only the port's required methods, as EventStoreDB does: no
/// indexes, so the history lookups run on the port's scanning defaults (and the engine
/// keeps its in-memory fallbacks).
#[derive(Debug)]
pub struct Unindexed(pub std::sync::Arc<dyn EventStore>);

#[async_trait::async_trait]
impl EventStore for Unindexed {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        self.0.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_stream(stream, from, max).await
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_all(after, max).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.0.head().await
    }

    fn subscribe_all(&self, after: Position) -> Subscription {
        self.0.subscribe_all(after)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        self.0.save_snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError> {
        self.0.load_snapshot(stream).await
    }
}

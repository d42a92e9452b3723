//! Helpers for the engine scenarios: opening engines, a store that misbehaves on purpose,
//! and the independent log check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stockade_domain::Rejection;
use stockade_domain::{Component, LocationConfig, LocationId, PoolConfig, Quantity, Sku};
use stockade_engine::audit::{LogReport, check_log};
use stockade_engine::{
    EngineConfig, Error, Inventory, InventoryConfig, ManualClock, Origin, StoreConfig,
};
use stockade_store::{
    AppendResult, EventData, EventStore, ExpectedRevision, Position, RecordedEvent, Snapshot,
    StoreError, StreamName, Subscription,
};

pub fn sku(name: &str) -> Sku {
    Sku::new(name).unwrap()
}

pub fn physical(on_hand: u64) -> PoolConfig {
    PoolConfig::physical(Quantity::new(on_hand), Quantity::ZERO)
}

/// A kit of `components`, each `(sku, units per kit)`.
pub fn kit(components: &[(&Sku, u64)]) -> PoolConfig {
    PoolConfig::Kit {
        components: components
            .iter()
            .map(|(sku, qty)| Component {
                sku: (*sku).clone(),
                qty: Quantity::new(*qty),
            })
            .collect(),
    }
}

/// A location with `on_hand` units and no safety stock, at `priority`.
pub fn located(name: &str, on_hand: u64, priority: u32) -> LocationConfig {
    LocationConfig {
        location: LocationId::new(name).unwrap(),
        on_hand: Quantity::new(on_hand),
        safety_stock: Quantity::ZERO,
        priority,
    }
}

/// Engine settings for tests: two arbiters, whatever the machine.
pub fn test_engine() -> EngineConfig {
    EngineConfig {
        arbiters: 2,
        ..EngineConfig::default()
    }
}

pub async fn open_sqlite(dir: &std::path::Path) -> Inventory {
    Inventory::open(InventoryConfig::sqlite(dir).engine(test_engine()))
        .await
        .unwrap()
}

/// An engine on SQLite in `dir` whose time is `clock` (tests move it by hand).
pub async fn open_with_clock(dir: &std::path::Path, clock: &ManualClock) -> Inventory {
    Inventory::open(
        InventoryConfig::sqlite(dir)
            .engine(test_engine())
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap()
}

/// The domain's refusal in `result`; panics on anything else.
pub fn rejection(result: Result<impl std::fmt::Debug, Error>) -> Rejection {
    match result {
        Err(Error::Rejected { rejection, .. }) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub async fn open_on(store: Arc<dyn EventStore>, engine: EngineConfig) -> Inventory {
    Inventory::open(InventoryConfig::with_store(StoreConfig::Custom(store)).engine(engine))
        .await
        .unwrap()
}

pub async fn register(inventory: &Inventory, name: &str, on_hand: u64) -> Sku {
    let sku = sku(name);
    inventory
        .register(&sku, physical(on_hand), &Origin::default())
        .await
        .unwrap();
    sku
}

/// The independent check of everything in the store; fails the test on any breach.
pub async fn checked_log(store: &Arc<dyn EventStore>) -> LogReport {
    let report = check_log(store).await.unwrap();
    assert_eq!(report.violations, Vec::<String>::new(), "log breaches");
    assert_eq!(report.oversold_units, 0);
    report
}

/// What a [`FaultyStore`] does to an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Refused before anything is written.
    Fail,
    /// Written after a delay, even if the caller gave up waiting.
    Slow(Duration),
    /// Written, but the caller is told it failed (the reply was lost).
    LostReply,
    /// Refused after a delay, nothing written (a disk that hung, then said no).
    FailAfter(Duration),
    /// Held back until an append scheduled `ReleaseHeld` comes, then written, even if the
    /// caller gave up waiting (a request stuck on the wire).
    Held,
    /// Lets the held append land first, then writes this one.
    ReleaseHeld,
}

/// Where the held append is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeldState {
    Waiting,
    Released,
    Landed,
}

/// A store wrapper that injects faults into appends, by a deterministic schedule:
/// `schedule(n)` decides the fault of the `n`-th append.
pub struct FaultyStore {
    inner: Arc<dyn EventStore>,
    schedule: Box<dyn Fn(u64) -> Fault + Send + Sync>,
    appends: AtomicU64,
    pub injected: AtomicU64,
    /// While set, stream reads fail (a store that cannot be read back after a timeout).
    pub reads_fail: std::sync::atomic::AtomicBool,
    held: Arc<tokio::sync::watch::Sender<HeldState>>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    pub fn new(
        inner: Arc<dyn EventStore>,
        schedule: impl Fn(u64) -> Fault + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            schedule: Box::new(schedule),
            appends: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            reads_fail: std::sync::atomic::AtomicBool::new(false),
            held: Arc::new(tokio::sync::watch::channel(HeldState::Waiting).0),
        }
    }
}

#[async_trait]
impl EventStore for FaultyStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::Relaxed);
        let fault = (self.schedule)(n);
        if fault != Fault::None {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        match fault {
            Fault::None => self.inner.append(stream, expected, events).await,
            Fault::Fail => Err(StoreError::Unavailable("injected: disk said no".into())),
            Fault::FailAfter(delay) => {
                tokio::time::sleep(delay).await;
                Err(StoreError::Unavailable(
                    "injected: disk hung, then said no".into(),
                ))
            }
            Fault::Slow(delay) => {
                // Like a request already on the wire: it lands even if the caller stops
                // waiting for it.
                let (inner, stream) = (self.inner.clone(), stream.clone());
                let late = tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    inner.append(&stream, expected, events).await
                });
                late.await
                    .unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string())))
            }
            Fault::LostReply => {
                self.inner.append(stream, expected, events).await?;
                Err(StoreError::Unavailable("injected: reply lost".into()))
            }
            Fault::Held => {
                let (inner, stream, held) = (self.inner.clone(), stream.clone(), self.held.clone());
                let late = tokio::spawn(async move {
                    let mut state = held.subscribe();
                    let _ = state.wait_for(|s| *s != HeldState::Waiting).await;
                    let landed = inner.append(&stream, expected, events).await;
                    held.send_replace(HeldState::Landed);
                    landed
                });
                late.await
                    .unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string())))
            }
            Fault::ReleaseHeld => {
                let mut state = self.held.subscribe();
                self.held.send_replace(HeldState::Released);
                let _ = state.wait_for(|s| *s == HeldState::Landed).await;
                self.inner.append(stream, expected, events).await
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.reads_fail.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("injected: cannot read".into()));
        }
        self.inner.read_stream(stream, from, max).await
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, max).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }

    fn subscribe_all(&self, after: Position) -> Subscription {
        self.inner.subscribe_all(after)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream).await
    }

    fn indexed(&self) -> bool {
        self.inner.indexed()
    }

    async fn find_events(
        &self,
        stream: &StreamName,
        ids: &[uuid::Uuid],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.find_events(stream, ids).await
    }

    async fn read_subject(
        &self,
        subject: uuid::Uuid,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_subject(subject, max).await
    }

    async fn read_correlation(
        &self,
        correlation: &str,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_correlation(correlation, max).await
    }

    async fn streams_with_open_subjects(&self) -> Result<Vec<StreamName>, StoreError> {
        self.inner.streams_with_open_subjects().await
    }
}

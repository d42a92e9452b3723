//! The projection runner: events from the log, in commit order, into the read models.
//!
//! It subscribes to the store after the checkpoint (catch-up, then live) and takes events in
//! batches: whatever has arrived, up to `batch`. For each event it works out the change
//! from the domain's own view of the SKU just before and just after the event, at the
//! event's instant. It then commits all the batch's row changes, alerts and notices
//! together with the new checkpoint, and only then hands the notices to the hub. A crash
//! at any point therefore leaves the read models at some checkpoint, and the next run
//! resumes from it: every event takes effect exactly once, and every notice is produced
//! exactly once, with the same `seq`.
//!
//! SKU figures are kept in memory as a [`Ledger`]: without the holds, so a sale's hundreds
//! of thousands of live holds are not copied here too. When a hold ends, what it was (its
//! units, expiry, period and order) is read from the `reservations` rows, one query per
//! batch, or taken from a hold made earlier in the same batch. A SKU seen for the first
//! time since start-up is folded from its stream up to the event at hand (the holds of
//! that fold are known from the stream itself), so the runner never depends on anything
//! but the log and its own rows. The cache is bounded; an evicted SKU is folded again when
//! it next changes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use stockade_domain::{
    Event, EventMetadata, HoldFacts, Ledger, ReservationId, Sku, StockView, Timestamp,
};
use stockade_store::{EventStore, RecordedEvent, StreamName, codec};

use crate::ProjectionError;
use crate::db::{Change, Checkpoint, ReadModels, ReservationChange};
use crate::hub::NoticeHub;
use crate::model::{
    Cause, Level, Notice, ReservationState, Status, is_short, moved_locations, scopes,
};

/// The outbox is pruned once per this many notices.
const PRUNE_EVERY: u64 = 1024;

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Most events committed in one read-model transaction.
    pub batch: usize,
    /// Most SKU states kept in memory.
    pub state_cache: usize,
    /// Notices kept in the outbox for late readers (SSE resume, MCP ledgers); older ones
    /// are pruned unless a delivery channel has yet to read them.
    pub keep_notices: u64,
    /// After a failure, the runner waits this long before resubscribing...
    pub retry_min: Duration,
    /// ...doubling up to this.
    pub retry_max: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            batch: 4096,
            state_cache: 100_000,
            keep_notices: 100_000,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Projects the log into [`ReadModels`] and publishes notices to a [`NoticeHub`].
pub struct Projector {
    store: Arc<dyn EventStore>,
    models: ReadModels,
    hub: NoticeHub,
    config: ProjectorConfig,
    states: HashMap<StreamName, Tracked>,
    /// Holds made by recent batches and not ended yet: most holds end soon after they are
    /// made (a checkout commits within minutes), and then need no query.
    recent: RecentFacts,
    /// Told each batch's SKU versions (see `observe`).
    observer: Option<VersionObserver>,
}

/// Told a SKU and its stream's version after a batch (see `Projector::observe`).
type VersionObserver = Box<dyn Fn(&Sku, u64) + Send + Sync>;

/// Recent holds kept at hand: at most this many, in two generations of half as many.
const RECENT_FACTS: usize = 65_536;

/// A fixed-size cache of hold facts: entries go into the young generation; when it is
/// full it becomes the old one and the previous old one is dropped.
#[derive(Debug, Default)]
struct RecentFacts {
    young: Facts,
    old: Facts,
}

impl RecentFacts {
    fn take(&mut self, key: &(Sku, ReservationId)) -> Option<(HoldFacts, Option<String>)> {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    fn keep(&mut self, facts: Facts) {
        for (key, value) in facts {
            if self.young.len() >= RECENT_FACTS / 2 {
                self.old = std::mem::take(&mut self.young);
            }
            self.young.insert(key, value);
        }
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

/// A SKU's figures after its first `version` events.
#[derive(Debug, Default)]
struct Tracked {
    ledger: Ledger,
    version: u64,
    /// When the last folded event happened: the instant a row built from this shows.
    last_at: Timestamp,
}

/// What the holds of a batch were, by SKU and id, with their orders: read from the
/// `reservations` rows before the batch, and added to as the batch makes holds.
type Facts = HashMap<(Sku, ReservationId), (HoldFacts, Option<String>)>;

/// Events read per page when folding a SKU from its stream.
const FOLD_PAGE: usize = 4096;

impl Tracked {
    /// Folds `event`, the stream's event at `revision`; a resolution's hold is taken out
    /// of `facts`, a new hold put in, a changed hold's record replaced. Returns the
    /// order of the hold it names, and the hold's record after a change.
    fn apply(
        &mut self,
        stream: &StreamName,
        revision: u64,
        sku: &Sku,
        event: &Event,
        facts: &mut Facts,
    ) -> Result<(Option<String>, Option<HoldFacts>), ProjectionError> {
        let (ended, order) = match event {
            Event::StockReserved(e) => {
                let made = HoldFacts {
                    parts: e.parts.clone(),
                    qty: e.qty,
                    reserved_at: e.at,
                    expires_at: e.expires_at,
                };
                let order = e.order_id.as_ref().map(|o| o.to_string());
                facts.insert((sku.clone(), e.reservation_id), (made, order));
                (None, None)
            }
            // It ends nothing: its hold's order, if the record is at hand, names the notice.
            Event::BackorderFilled(e) => (
                None,
                facts
                    .get(&(sku.clone(), e.reservation_id))
                    .and_then(|(_, order)| order.clone()),
            ),
            other => match other
                .reservation_id()
                .and_then(|id| facts.remove(&(sku.clone(), id)))
            {
                Some((ended, order)) => (Some(ended), order),
                None => (None, None),
            },
        };
        let changed = ended.as_ref().and_then(|f| f.after(event));
        self.ledger.apply(event, ended).map_err(|e| {
            ProjectionError::Inconsistent(format!("{stream} at revision {revision}: {e}"))
        })?;
        // Still live: the next event about it needs its record as it now is.
        if let (Some(now), Some(id)) = (&changed, event.reservation_id()) {
            facts.insert((sku.clone(), id), (now.clone(), order.clone()));
        }
        self.version += 1;
        self.last_at = event.at();
        Ok((order, changed))
    }

    fn view(&self, at: Timestamp) -> Option<StockView> {
        self.ledger.view(at)
    }
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("cached_skus", &self.states.len())
            .finish_non_exhaustive()
    }
}

impl Projector {
    pub fn new(store: Arc<dyn EventStore>, models: ReadModels, hub: NoticeHub) -> Self {
        Self::with_config(store, models, hub, ProjectorConfig::default())
    }

    pub fn with_config(
        store: Arc<dyn EventStore>,
        models: ReadModels,
        hub: NoticeHub,
        config: ProjectorConfig,
    ) -> Self {
        Self {
            store,
            models,
            hub,
            config,
            states: HashMap::new(),
            recent: RecentFacts::default(),
            observer: None,
        }
    }

    /// Calls `observer(sku, version)` after each batch for every SKU the batch touched,
    /// with the stream's version after it (a server tells its engine, so that appends
    /// made by another process reach the engine's exact reads).
    pub fn observe(mut self, observer: impl Fn(&Sku, u64) + Send + Sync + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    pub fn models(&self) -> &ReadModels {
        &self.models
    }

    /// Projects everything committed so far, then returns the checkpoint.
    pub async fn catch_up(&mut self) -> Result<Checkpoint, ProjectionError> {
        let mut at = self.models.checkpoint().await?;
        loop {
            let page = self
                .store
                .read_all(at.position, self.config.batch.max(1))
                .await?;
            if page.is_empty() {
                self.hub.advance(at.position);
                return Ok(at);
            }
            self.project(page).await?;
            at = self.models.checkpoint().await?;
        }
    }

    /// Empties the read models and projects the whole log again. Notices get the same
    /// `seq` as the first time, so consumers that dedupe by it see nothing twice; they are
    /// not published again.
    pub async fn rebuild(&mut self) -> Result<Checkpoint, ProjectionError> {
        self.models.clear().await?;
        self.states.clear();
        self.recent.clear();
        let hub = std::mem::take(&mut self.hub);
        let done = self.catch_up().await;
        self.hub = hub;
        done
    }

    /// Follows the log until `shutdown` completes: catch-up from the checkpoint, then live.
    /// A failure (the store away, a read-model write refused) is logged and retried from
    /// the checkpoint with backoff; nothing is skipped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let mut delay = self.config.retry_min;
        loop {
            let outcome = {
                let follow = self.follow();
                tokio::select! {
                    outcome = follow => outcome,
                    () = &mut shutdown => return,
                }
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, retry_in = ?delay, "projection stopped; resuming from the checkpoint");
                metrics::counter!("stockade_projection_failures_total").increment(1);
            }
            self.states.clear();
            self.recent.clear();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut shutdown => return,
            }
            delay = delay.saturating_mul(2).min(self.config.retry_max);
        }
    }

    /// One subscription from the checkpoint, until it fails or ends.
    async fn follow(&mut self) -> Result<(), ProjectionError> {
        let from = self.models.checkpoint().await?;
        // Everything up to the checkpoint was published before (or by an earlier
        // process, whose readers are gone): readers waiting on the watermark must not
        // wait for a projection that will never come.
        self.hub.advance(from.position);
        let mut events = self.store.subscribe_all(from.position);
        loop {
            let Some(first) = events.next().await else {
                return Err(ProjectionError::Store(
                    stockade_store::StoreError::Unavailable("the subscription ended".into()),
                ));
            };
            let mut batch = vec![first?];
            // Whatever else has already arrived joins the batch; never wait for more.
            while batch.len() < self.config.batch {
                match events.next().now_or_never() {
                    Some(Some(Ok(event))) => batch.push(event),
                    Some(Some(Err(e))) => {
                        self.project(batch).await?;
                        return Err(e.into());
                    }
                    Some(None) | None => break,
                }
            }
            self.project(batch).await?;
        }
    }

    /// Applies `events` (in commit order) to the read models, then publishes their notices.
    pub async fn project(&mut self, events: Vec<RecordedEvent>) -> Result<(), ProjectionError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let to = last.position;
        let last_committed = last.recorded_at;
        let applied = self.changes_then_apply(&events, to).await;
        // The cached states ran ahead of the read models; if they did not commit, the
        // cache must not claim these events were applied.
        let notices = applied.inspect_err(|_| {
            self.states.clear();
            self.recent.clear();
        })?;
        record_metrics(&notices, last_committed);
        if let Some(observer) = &self.observer {
            // One call per SKU per batch, with the stream's version after the batch.
            let mut versions: HashMap<Sku, u64> = HashMap::new();
            for e in &events {
                if let Some(sku) = e.stream.sku() {
                    let v = versions.entry(sku).or_default();
                    *v = (*v).max(e.version());
                }
            }
            for (sku, version) in &versions {
                observer(sku, *version);
            }
        }
        // Prune now and then: when the last seq crosses a multiple of PRUNE_EVERY.
        let prune = matches!((notices.first(), notices.last()), (Some(first), Some(last))
            if first.seq.div_ceil(PRUNE_EVERY) != (last.seq + 1).div_ceil(PRUNE_EVERY));
        self.hub.publish(notices);
        self.hub.advance(to);
        if prune {
            self.models.prune_notices(self.config.keep_notices).await?;
        }
        Ok(())
    }

    async fn changes_then_apply(
        &mut self,
        events: &[RecordedEvent],
        to: stockade_store::Position,
    ) -> Result<Vec<Notice>, ProjectionError> {
        let mut decoded = Vec::with_capacity(events.len());
        for recorded in events {
            if let Some(sku) = recorded.stream.sku() {
                let (event, meta) = codec::decode_stored(recorded)?;
                decoded.push((recorded, sku, event, meta));
            }
        }
        // The holds this batch ends and did not make: kept from recent batches, else as
        // the read models recorded them.
        let made: std::collections::HashSet<(&Sku, ReservationId)> = decoded
            .iter()
            .filter_map(|(_, sku, event, _)| match event {
                Event::StockReserved(e) => Some((sku, e.reservation_id)),
                _ => None,
            })
            .collect();
        let mut facts: Facts = HashMap::new();
        let mut ending: Vec<(String, String)> = Vec::new();
        for (_, sku, event, _) in &decoded {
            // A filled backorder names its hold too: its notice carries the hold's order.
            let named = match event {
                Event::BackorderFilled(e) => Some(e.reservation_id),
                other => other.reservation_id(),
            };
            let Some(id) = named else {
                continue;
            };
            if matches!(event, Event::StockReserved(_)) || made.contains(&(sku, id)) {
                continue;
            }
            let key = (sku.clone(), id);
            match self.recent.take(&key) {
                Some(found) => {
                    facts.insert(key, found);
                }
                None => ending.push((sku.to_string(), id.to_string())),
            }
        }
        drop(made);
        for ((sku, id), found) in self.models.hold_facts(ending).await? {
            if let (Ok(sku), Ok(id)) = (Sku::new(sku), id.parse::<ReservationId>()) {
                facts.insert((sku, id), found);
            }
        }
        let mut changes = Vec::with_capacity(decoded.len());
        for (recorded, sku, event, meta) in decoded {
            if let Some(change) = self
                .change_for(recorded, sku, event, &meta, &mut facts)
                .await?
            {
                changes.push(change);
            }
        }
        // What is left: holds this batch made and did not end.
        self.recent.keep(facts);
        self.models.apply(changes, to).await
    }

    /// What `event` (`recorded`, of SKU `sku`) does to the read models, or `None` if it
    /// was already applied.
    async fn change_for(
        &mut self,
        recorded: &RecordedEvent,
        sku: Sku,
        event: Event,
        meta: &EventMetadata,
        facts: &mut Facts,
    ) -> Result<Option<Change>, ProjectionError> {
        if !self.bring_to(&recorded.stream, recorded.revision).await? {
            return Ok(None);
        }
        let Some(cached) = self.states.get_mut(&recorded.stream) else {
            return Ok(None);
        };
        let at = event.at();
        // Before: the row as it stands, seen at the previous event's instant. (Seen at
        // this event's instant, an expiry's hold would already have lapsed.)
        let before_view = cached.view(cached.last_at);
        let before = before_view.as_ref().map(|v| (Level::of(v), is_short(v)));
        // A resolution names its reservation, not its order: the hold's record has it.
        let (order_id, changed) =
            cached.apply(&recorded.stream, recorded.revision, &sku, &event, facts)?;
        let Some(view) = cached.view(at) else {
            return Ok(None);
        };
        // A kit's stock is its components' (ADR 0006): its own stream would show it out of
        // stock for ever. The read models derive its row from its parts' rows; here it
        // only brings its definition.
        let kit = match &event {
            Event::SkuRegistered(_) if view.pool == stockade_domain::PoolKind::Kit => {
                view.components.clone()
            }
            _ => Vec::new(),
        };
        let after = (Level::of(&view), is_short(&view));
        let notice = Notice {
            seq: 0,
            sku: sku.clone(),
            version: cached.version,
            previous: before.map_or(after.0, |b| b.0),
            current: after.0,
            previous_status: Status::InStock,
            status: Status::InStock,
            cause: {
                let mut cause = Cause::of(&event, meta);
                cause.order_id = cause.order_id.or(order_id);
                cause
            },
            scopes: scopes(&sku),
            committed_at: recorded.recorded_at,
            event_id: recorded.event_id,
            position: recorded.position,
            locations: Vec::new(),
        };
        Ok(Some(Change {
            locations: moved_locations(before_view.as_ref(), &view),
            kit,
            pool: view.pool,
            version: cached.version,
            before,
            after,
            at,
            reservation: match changed {
                Some(hold) => changed_reservation(&event, hold),
                None => reservation_change(&event),
            },
            notice,
            sku,
        }))
    }

    /// Makes the cached state of `stream` hold exactly its first `revision` events.
    /// Returns false if the event at `revision` is already in it (a repeat delivery).
    async fn bring_to(
        &mut self,
        stream: &StreamName,
        revision: u64,
    ) -> Result<bool, ProjectionError> {
        match self.states.get(stream) {
            Some(cached) if cached.version == revision => return Ok(true),
            Some(cached) if cached.version > revision => return Ok(false),
            _ => {}
        }
        let folded = self.fold(stream, revision).await?;
        if self.states.len() >= self.config.state_cache.max(1)
            && let Some(evict) = self.states.keys().next().cloned()
        {
            self.states.remove(&evict);
        }
        self.states.insert(stream.clone(), folded);
        Ok(true)
    }
}

impl Projector {
    /// The figures of `stream` after its first `to` events, folded from the stream; the
    /// holds its resolutions end are the ones it made.
    async fn fold(&self, stream: &StreamName, to: u64) -> Result<Tracked, ProjectionError> {
        let Some(sku) = stream.sku() else {
            return Err(ProjectionError::Inconsistent(format!(
                "{stream} is not a SKU's stream"
            )));
        };
        let mut tracked = Tracked::default();
        let mut facts = Facts::new();
        while tracked.version < to {
            let want = usize::try_from(to - tracked.version)
                .unwrap_or(usize::MAX)
                .min(FOLD_PAGE);
            let page = self
                .store
                .read_stream(stream, tracked.version, want)
                .await?;
            if page.is_empty() {
                return Err(ProjectionError::Inconsistent(format!(
                    "{stream} ends at version {}, before version {to}",
                    tracked.version
                )));
            }
            for recorded in &page {
                let (event, _) = codec::decode_stored(recorded)?;
                tracked.apply(stream, recorded.revision, &sku, &event, &mut facts)?;
            }
        }
        Ok(tracked)
    }
}

/// A live hold's row after `event` changed it to `hold`.
fn changed_reservation(event: &Event, hold: HoldFacts) -> Option<ReservationChange> {
    let sold = match event {
        Event::ReservationReduced(e) if e.outcome == stockade_domain::Resolution::Committed => {
            e.qty.get()
        }
        _ => 0,
    };
    Some(ReservationChange::Changed {
        id: event.reservation_id()?.to_string(),
        qty: hold.qty.get(),
        expires_at: hold.expires_at,
        parts: hold.parts,
        sold,
    })
}

fn reservation_change(event: &Event) -> Option<ReservationChange> {
    let resolved = |id: &stockade_domain::ReservationId, state, at| ReservationChange::Resolved {
        id: id.to_string(),
        state,
        at,
    };
    match event {
        Event::StockReserved(e) => Some(ReservationChange::Held {
            id: e.reservation_id.to_string(),
            order_id: e.order_id.as_ref().map(|o| o.to_string()),
            qty: e.qty.get(),
            channel: e.channel.to_string(),
            reserved_at: e.at,
            expires_at: e.expires_at,
            parts: e.parts.clone(),
        }),
        Event::ReservationCommitted(e) => Some(resolved(
            &e.reservation_id,
            ReservationState::Committed,
            e.at,
        )),
        Event::ReservationReleased(e) => Some(resolved(
            &e.reservation_id,
            ReservationState::Released,
            e.at,
        )),
        Event::ReservationExpired(e) => {
            Some(resolved(&e.reservation_id, ReservationState::Expired, e.at))
        }
        // A change of a hold is worked out from the hold's record (`changed_reservation`).
        Event::SkuRegistered(_)
        | Event::StockAdjusted(_)
        | Event::TransferShipped(_)
        | Event::TransferReceived(_)
        | Event::ReservationExtended(_)
        | Event::ReservationReduced(_)
        | Event::ReservationIncreased(_)
        | Event::BackorderLimitSet(_)
        | Event::ReceiptExpected(_)
        | Event::ReceiptReceived(_)
        | Event::ReceiptCancelled(_)
        | Event::BackorderFilled(_)
        | Event::FairSellingSet(_)
        | Event::WaitlistJoined(_)
        | Event::WaitlistLeft(_) => None,
    }
}

fn record_metrics(notices: &[Notice], last_committed: Timestamp) {
    // One counter update per status per batch: a rebuild projects millions of notices.
    let mut by_status: Vec<(Status, u64)> = Vec::with_capacity(4);
    for notice in notices {
        match by_status.iter_mut().find(|(s, _)| *s == notice.status) {
            Some((_, n)) => *n += 1,
            None => by_status.push((notice.status, 1)),
        }
    }
    for (status, n) in by_status {
        metrics::counter!("stockade_notices_total", "status" => status.as_str()).increment(n);
    }
    let lag = seconds_since(last_committed);
    metrics::gauge!("stockade_projection_lag_seconds").set(lag);
    metrics::histogram!("stockade_commit_to_projection_seconds").record(lag);
}

/// Seconds from `then` to now by the system clock (0 if `then` is in the future).
pub(crate) fn seconds_since(then: Timestamp) -> f64 {
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    now.as_millis().saturating_sub(then.as_millis()) as f64 / 1000.0
}

//! Replay: stock at any past cut of the log, and the history of who changed what.
//!
//! Both fold the log with the domain's own [`SkuState`], the same fold the actors recover
//! with, and nothing else: no snapshots, no read models. So a replay at an instant shows
//! what `stock` would have answered then, and it can be run on a copy of the log alone.
//!
//! A cut is a log position (exact: every event at or before it) or an instant (every event
//! decided at or before it, viewed at that instant, so holds that had lapsed by then are
//! not counted even if their expiry was written later).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use stockade_domain::{
    Availability, Event, EventMetadata, OrderId, PoolKind, ReservationId, Sku, SkuState, StockView,
    Timestamp,
};
use stockade_store::{EventStore, Position, RecordedEvent, StoreError, StreamName, codec};

/// Events read per page.
const PAGE: usize = 4_096;

/// Instants as RFC 3339 in the JSON people read, not milliseconds.
fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

/// Positions as the tools print them (`1200`, or `commit/prepare` on EventStoreDB).
fn position_text<S: serde::Serializer>(p: &Position, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

/// Where in the log to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Everything stored, viewed now.
    Head,
    /// Every event at or before this position, viewed at the last one's instant.
    Position(Position),
    /// Every event decided at or before this instant, viewed at it.
    Instant(Timestamp),
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("position {position}: {stream}: {reason} (run `stockade audit verify`)")]
    Inconsistent {
        position: Position,
        stream: String,
        reason: String,
    },
}

/// One SKU as of a cut. Serialized with the REST API's names and shapes (`on_hand`, a
/// number or `null` for `available`), flat: the same concept reads the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub sku: Sku,
    /// Events folded (the stream version `stock` reports).
    pub version: u64,
    /// Log position of the last event folded.
    #[serde(serialize_with = "position_text")]
    pub position: Position,
    #[serde(serialize_with = "rfc3339")]
    pub last_event_at: Timestamp,
    #[serde(flatten, serialize_with = "view_as_api")]
    pub view: StockView,
}

/// A view's figures under the API's names (see `StockOut` in `stockade-wire`).
fn view_as_api<S: serde::Serializer>(v: &StockView, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Figures {
        pool: PoolKind,
        on_hand: Option<u64>,
        safety_stock: u64,
        reserved: u64,
        sold: u64,
        available: Option<u64>,
        shortfall: u64,
        live_reservations: usize,
    }
    Figures {
        pool: v.pool,
        on_hand: v.limit.map(|q| q.get()),
        safety_stock: v.safety_stock.get(),
        reserved: v.reserved.get(),
        sold: v.sold.get(),
        available: match v.available {
            Availability::Unlimited => None,
            Availability::Limited(q) => Some(q.get()),
        },
        shortfall: v.shortfall.get(),
        live_reservations: v.live_reservations,
    }
    .serialize(s)
}

/// The state of every SKU (or only `sku`) at `cut`, in SKU order, and the instant the
/// views are taken at.
pub async fn replay(
    store: &dyn EventStore,
    sku: Option<&Sku>,
    cut: Cut,
    now: Timestamp,
) -> Result<(Vec<Replayed>, Timestamp), ReplayError> {
    let mut folds: HashMap<StreamName, Fold> = HashMap::new();
    // Streams whose next event is past an instant cut: the rest of them is ignored.
    let mut past: HashSet<StreamName> = HashSet::new();
    let mut latest: Option<Timestamp> = None;
    let wanted = sku.map(StreamName::for_sku);
    // A position cut is viewed at the instant of the log's last event before it, whatever
    // its stream: so one SKU reads the whole log up to the cut, and shows what it shows
    // among all the others.
    let read_only = match cut {
        Cut::Position(_) => None,
        Cut::Head | Cut::Instant(_) => wanted.clone(),
    };
    each_event(store, read_only.as_ref(), |recorded| {
        if let Cut::Position(end) = cut
            && recorded.position > end
        {
            return Ok(Step::Stop);
        }
        let Some(sku) = recorded.stream.sku() else {
            return Ok(Step::Next);
        };
        if past.contains(&recorded.stream) {
            return Ok(Step::Next);
        }
        let (event, _) = codec::decode_stored(recorded)?;
        if let Cut::Instant(at) = cut
            && event.at() > at
        {
            past.insert(recorded.stream.clone());
            return Ok(Step::Next);
        }
        latest = Some(latest.map_or(event.at(), |l| l.max(event.at())));
        if wanted.as_ref().is_some_and(|w| w != &recorded.stream) {
            return Ok(Step::Next);
        }
        let fold = folds
            .entry(recorded.stream.clone())
            .or_insert_with(|| Fold {
                sku,
                state: SkuState::default(),
                version: 0,
                position: Position::START,
                last_at: Timestamp::from_millis(0),
            });
        fold.state
            .apply(&event)
            .map_err(|e| inconsistent(recorded, &e))?;
        fold.version += 1;
        fold.position = recorded.position;
        fold.last_at = event.at();
        Ok(Step::Next)
    })
    .await?;
    let at = match cut {
        Cut::Head => now,
        Cut::Position(_) => latest.unwrap_or(now),
        Cut::Instant(at) => at,
    };
    let mut out: Vec<Replayed> = folds
        .into_values()
        .filter_map(|fold| {
            let view = fold.state.stock()?.view(at);
            Some(Replayed {
                sku: fold.sku,
                version: fold.version,
                position: fold.position,
                last_event_at: fold.last_at,
                view,
            })
        })
        .collect();
    out.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok((out, at))
}

struct Fold {
    sku: Sku,
    state: SkuState,
    version: u64,
    position: Position,
    last_at: Timestamp,
}

/// Which events a history shows.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub sku: Option<Sku>,
    /// The order's reservations and everything that resolved them.
    pub order: Option<OrderId>,
    /// Events decided at or after this instant.
    pub from: Option<Timestamp>,
    /// Events decided at or before this instant.
    pub to: Option<Timestamp>,
}

/// Stock figures around one event, as a person auditing it wants them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// On hand (physical), the license limit or the period's capacity; `None` unlimited.
    /// Named `on_hand`, as the API names it.
    #[serde(rename = "on_hand")]
    pub limit: Option<u64>,
    pub reserved: u64,
    /// `None` for unlimited.
    pub available: Option<u64>,
}

impl Figures {
    fn of(view: &StockView) -> Self {
        Figures {
            limit: view.limit.map(|q| q.get()),
            reserved: view.reserved.get(),
            available: match view.available {
                Availability::Unlimited => None,
                Availability::Limited(q) => Some(q.get()),
            },
        }
    }
}

/// One event of the history: when, what, who, why, and the stock before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    #[serde(serialize_with = "position_text")]
    pub position: Position,
    pub sku: Sku,
    pub revision: u64,
    /// When the decision was taken.
    #[serde(serialize_with = "rfc3339")]
    pub at: Timestamp,
    /// When the store committed it.
    #[serde(serialize_with = "rfc3339")]
    pub recorded_at: Timestamp,
    pub event: &'static str,
    pub pool: Option<PoolKind>,
    pub principal: Option<String>,
    pub channel: Option<String>,
    pub order_id: Option<String>,
    pub reservation_id: Option<ReservationId>,
    /// The units of a reservation.
    pub qty: Option<u64>,
    /// An adjustment's change to on hand (or the limit), signed: `after.on_hand` minus
    /// `before.on_hand`.
    pub delta: Option<i64>,
    /// The adjustment's reason, or what resolved a reservation.
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub correlation_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// `None` before the SKU's registration.
    pub before: Option<Figures>,
    pub after: Option<Figures>,
    /// Set when the event does not fit the state before it (see `stockade audit verify`).
    pub inconsistent: Option<String>,
}

/// The events that match `filter`, in log order.
pub async fn history(
    store: &dyn EventStore,
    filter: &HistoryFilter,
) -> Result<Vec<Entry>, ReplayError> {
    let mut entries = Vec::new();
    history_each(store, filter, |entry| {
        entries.push(entry);
        true
    })
    .await?;
    Ok(entries)
}

/// Hands each event that matches `filter` to `visit`, in log order, without keeping them
/// (a whole production log does not fit in memory as entries); `visit` returns `false`
/// to stop.
pub async fn history_each(
    store: &dyn EventStore,
    filter: &HistoryFilter,
    mut visit: impl FnMut(Entry) -> bool,
) -> Result<(), ReplayError> {
    let mut states: HashMap<StreamName, SkuState> = HashMap::new();
    // Reservations of the filtered order, so their commits and expiries are shown too.
    let mut of_order: HashSet<(StreamName, ReservationId)> = HashSet::new();
    let only = filter.sku.as_ref().map(StreamName::for_sku);
    each_event(store, only.as_ref(), |recorded| {
        let Some(sku) = recorded.stream.sku() else {
            return Ok(Step::Next);
        };
        let (event, meta) = codec::decode_stored(recorded)?;
        let state = states.entry(recorded.stream.clone()).or_default();
        let at = event.at();
        // An expiry's hold stopped counting when it lapsed, before the event was written:
        // the figures before are those of the moment before it lapsed.
        let before_at = match &event {
            Event::ReservationExpired(e) => {
                Timestamp::from_millis(e.expires_at.as_millis().saturating_sub(1)).min(at)
            }
            _ => at,
        };
        let before = state.stock().map(|s| Figures::of(&s.view(before_at)));
        let inconsistent = state.apply(&event).err().map(|e| e.to_string());
        let after = state.stock().map(|s| Figures::of(&s.view(at)));
        let pool = state.stock().map(|s| s.pool_kind());
        if let Some(order) = &filter.order {
            let in_order = match &event {
                Event::StockReserved(e) if e.order_id.as_ref() == Some(order) => {
                    of_order.insert((recorded.stream.clone(), e.reservation_id));
                    true
                }
                other => other
                    .reservation_id()
                    .is_some_and(|id| of_order.contains(&(recorded.stream.clone(), id))),
            };
            if !in_order {
                return Ok(Step::Next);
            }
        }
        if filter.from.is_some_and(|from| at < from) || filter.to.is_some_and(|to| at > to) {
            return Ok(Step::Next);
        }
        let entry = entry(
            recorded,
            sku,
            event,
            meta,
            pool,
            before,
            after,
            inconsistent,
        );
        Ok(if visit(entry) { Step::Next } else { Step::Stop })
    })
    .await
}

#[allow(clippy::too_many_arguments)]
fn entry(
    recorded: &RecordedEvent,
    sku: Sku,
    event: Event,
    meta: EventMetadata,
    pool: Option<PoolKind>,
    before: Option<Figures>,
    after: Option<Figures>,
    inconsistent: Option<String>,
) -> Entry {
    let mut entry = Entry {
        position: recorded.position,
        sku,
        revision: recorded.revision,
        at: event.at(),
        recorded_at: recorded.recorded_at,
        event: event.event_type(),
        pool,
        principal: meta.principal.map(|p| p.as_str().to_owned()),
        channel: meta.channel.map(|c| c.as_str().to_owned()),
        order_id: None,
        reservation_id: event.reservation_id(),
        qty: None,
        delta: None,
        reason: None,
        reference: None,
        correlation_id: meta.correlation_id,
        idempotency_key: meta.idempotency_key,
        before,
        after,
        inconsistent,
    };
    match event {
        Event::SkuRegistered(_) => entry.reason = Some("registered".into()),
        Event::StockAdjusted(e) => {
            let change = i128::from(e.current.get()) - i128::from(e.previous.get());
            entry.delta = Some(i64::try_from(change).unwrap_or(i64::MAX));
            entry.reason = Some(e.reason);
            entry.reference = e.reference;
        }
        Event::StockReserved(e) => {
            entry.qty = Some(e.qty.get());
            entry.order_id = e.order_id.map(|o| o.as_str().to_owned());
            // The channel is in the payload too; the metadata's is the same when present.
            entry.channel = entry.channel.or(Some(e.channel.as_str().to_owned()));
            entry.reason = Some(format!("hold until {}", e.expires_at));
        }
        Event::ReservationCommitted(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some("sold".into());
        }
        Event::ReservationReleased(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some("released by its holder".into());
        }
        Event::ReservationExpired(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some(format!("lapsed at {}", e.expires_at));
        }
        Event::TransferShipped(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some(format!(
                "transfer {} from {} to {}",
                e.transfer_id, e.from, e.to
            ));
            entry.reference = e.reference;
        }
        Event::TransferReceived(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some(format!("transfer {} received at {}", e.transfer_id, e.to));
        }
        Event::ReservationExtended(e) => {
            entry.reason = Some(format!(
                "extended from {} to {}",
                e.previous_expires_at, e.expires_at
            ));
        }
        Event::ReservationReduced(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some(match e.outcome {
                stockade_domain::Resolution::Committed => {
                    format!("part sold; {} still held", e.remaining)
                }
                _ => format!("part given back; {} still held", e.remaining),
            });
        }
        Event::ReservationIncreased(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some(format!("hold grown to {}", e.total));
        }
        Event::BackorderLimitSet(e) => {
            entry.qty = Some(e.limit.get());
            entry.reason = Some(format!("backorder limit {} (was {})", e.limit, e.previous));
        }
        Event::ReceiptExpected(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some(format!("expected at {} by {}", e.location, e.eta));
            entry.reference = Some(e.reference.as_str().to_owned());
        }
        Event::ReceiptReceived(e) => {
            entry.qty = Some(e.qty.get());
            entry.delta = i64::try_from(e.qty.get()).ok();
            entry.reason = Some(format!(
                "received at {}; {} still expected",
                e.location, e.remaining
            ));
            entry.reference = Some(e.reference.as_str().to_owned());
        }
        Event::ReceiptCancelled(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some("receipt cancelled".into());
            entry.reference = Some(e.reference.as_str().to_owned());
        }
        Event::BackorderFilled(e) => {
            entry.reservation_id = Some(e.reservation_id);
            entry.qty = Some(e.qty.get());
            entry.reason = Some(format!("backorder filled; {} still waiting", e.backordered));
        }
        Event::FairSellingSet(e) => {
            entry.reason = Some(match e.per_customer {
                Some(limit) => format!(
                    "purchase limit {limit} per customer over {} s; waitlist holds {} s",
                    e.window_ms / 1000,
                    e.waitlist_hold_ms / 1000
                ),
                None => format!(
                    "no purchase limit; waitlist holds {} s",
                    e.waitlist_hold_ms / 1000
                ),
            });
        }
        Event::WaitlistJoined(e) => {
            entry.qty = Some(e.qty.get());
            entry.reason = Some(format!(
                "{} joined the waitlist (place {})",
                e.customer, e.number
            ));
        }
        Event::WaitlistLeft(e) => {
            entry.reason = Some(format!(
                "{} left the waitlist (place {}): {}",
                e.customer,
                e.number,
                e.reason.as_str()
            ));
        }
    }
    entry
}

enum Step {
    Next,
    Stop,
}

/// Visits the events of `stream` (or of the whole log), in order, until `visit` stops.
async fn each_event(
    store: &dyn EventStore,
    stream: Option<&StreamName>,
    mut visit: impl FnMut(&RecordedEvent) -> Result<Step, ReplayError>,
) -> Result<(), ReplayError> {
    let mut after = Position::START;
    let mut from = 0;
    loop {
        let page = match stream {
            Some(stream) => store.read_stream(stream, from, PAGE).await?,
            None => store.read_all(after, PAGE).await?,
        };
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.position;
        from = last.version();
        for recorded in &page {
            if let Step::Stop = visit(recorded)? {
                return Ok(());
            }
        }
    }
}

fn inconsistent(recorded: &RecordedEvent, reason: &impl ToString) -> ReplayError {
    ReplayError::Inconsistent {
        position: recorded.position,
        stream: recorded.stream.as_str().to_owned(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use stockade_domain::testing::{committed, expired, registered_physical, reserved, secs, sku};
    use stockade_store::{EventStore, ExpectedRevision, MemoryStore};

    use super::*;

    async fn store_with(events: &[Event]) -> Arc<dyn EventStore> {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let stream = StreamName::for_sku(&sku());
        for event in events {
            let meta = EventMetadata::new(uuid::Uuid::new_v4(), event.at());
            let data = codec::encode(event, &meta).unwrap();
            store
                .append(&stream, ExpectedRevision::Any, vec![data])
                .await
                .unwrap();
        }
        store
    }

    fn available(r: &Replayed) -> Availability {
        r.view.available
    }

    #[tokio::test]
    async fn cuts_by_position_and_instant() {
        let store = store_with(&[
            registered_physical(5, 0),
            reserved(1, 2, secs(10), secs(20)),
            committed(1, 2, secs(15)),
            reserved(2, 1, secs(30), secs(40)),
        ])
        .await;
        let now = secs(100);
        let (all, _) = replay(store.as_ref(), None, Cut::Head, now).await.unwrap();
        assert_eq!(all[0].version, 4);
        assert_eq!(available(&all[0]), Availability::Limited(3.into()));
        let (at, when) = replay(store.as_ref(), None, Cut::Position(Position::at(2)), now)
            .await
            .unwrap();
        assert_eq!((at[0].version, when), (2, secs(10)));
        assert_eq!(available(&at[0]), Availability::Limited(3.into()));
        // At 35 the second hold is live; at 45 it has lapsed though no expiry was written.
        let (at, _) = replay(store.as_ref(), None, Cut::Instant(secs(35)), now)
            .await
            .unwrap();
        assert_eq!(available(&at[0]), Availability::Limited(2.into()));
        let (at, _) = replay(store.as_ref(), None, Cut::Instant(secs(45)), now)
            .await
            .unwrap();
        assert_eq!(available(&at[0]), Availability::Limited(3.into()));
        let (before, _) = replay(store.as_ref(), None, Cut::Instant(secs(1)), now)
            .await
            .unwrap();
        assert_eq!(before[0].version, 1);
    }

    #[tokio::test]
    async fn an_expiry_shows_the_hold_it_gave_back() {
        let store = store_with(&[
            registered_physical(5, 0),
            reserved(1, 2, secs(10), secs(20)),
            expired(1, 2, secs(20), secs(25)),
        ])
        .await;
        let entries = history(store.as_ref(), &HistoryFilter::default())
            .await
            .unwrap();
        let lapsed = &entries[2];
        assert_eq!(lapsed.before.unwrap().reserved, 2);
        assert_eq!(lapsed.after.unwrap().reserved, 0);
        assert_eq!(lapsed.after.unwrap().available, Some(5));
    }

    #[tokio::test]
    async fn history_shows_figures_and_follows_an_order() {
        let store = store_with(&[
            registered_physical(5, 0),
            reserved(1, 2, secs(10), secs(20)),
            committed(1, 2, secs(15)),
        ])
        .await;
        let entries = history(store.as_ref(), &HistoryFilter::default())
            .await
            .unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].before, None);
        let sold = &entries[2];
        assert_eq!(sold.event, "ReservationCommitted");
        assert_eq!(sold.before.unwrap().limit, Some(5));
        assert_eq!(sold.after.unwrap().limit, Some(3));
        assert_eq!(sold.after.unwrap().available, Some(3));
        let from = HistoryFilter {
            from: Some(secs(12)),
            ..HistoryFilter::default()
        };
        assert_eq!(history(store.as_ref(), &from).await.unwrap().len(), 1);
    }
}

//! Where a reservation lives: which SKUs hold lines of it, and which reservations an order
//! has. Callers commit or release by reservation id or order id alone, so the engine must
//! find the SKU actors that hold them. At start-up it also names the SKUs with live
//! reservations, to wake their expiry timers.
//!
//! On a store that indexes its events (SQLite, memory), the log answers all three: a
//! reservation's events are filed under its id, an order's under the order, and the store
//! counts the open reservations per stream. Start-up reads only those counts, however
//! long the log. In memory there is only a cache of the reservations this engine made
//! most recently, of fixed size ([`RECENT`]): a commit usually follows its hold soon, and
//! then needs no read.
//!
//! On a store that does not (EventStoreDB), this keeps an index in memory instead: built
//! at start-up by one pass over the log, kept up to date as this engine reserves, and
//! pruned once an entry is older than the longest hold plus the key window. Reservations
//! made by another engine on the same store after this one started are not indexed there;
//! scale-out routes a SKU (and so its reservations) to one node.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use stockade_domain::{Channel, Event, OrderId, ReservationId, Sku, Timestamp};
use stockade_store::{EventStore, Position, StoreError, StreamName, codec, scan_all};
use tokio::sync::watch;

use crate::error::Error;

/// Events read per page by the start-up pass.
const SCAN_PAGE: usize = 8_192;

#[derive(Debug, Clone)]
struct Group {
    skus: Vec<Sku>,
    order_id: Option<OrderId>,
    at: Timestamp,
    /// The channel that made it.
    channel: Option<Channel>,
    /// Every SKU of the reservation, as its lines recorded it (empty for one line).
    lines: Vec<Sku>,
}

/// Reservations whose SKUs a store with indexes keeps at hand: at most this many, in
/// two generations of half as many (about 100 bytes each).
pub(crate) const RECENT: usize = 65_536;

/// A fixed-size cache: entries go into the young generation; when it is full it becomes
/// the old one and the previous old one is dropped. Hits in either generation.
#[derive(Debug, Default)]
struct Recent {
    young: HashMap<ReservationId, Entry>,
    old: HashMap<ReservationId, Entry>,
}

/// What the cache keeps of a reservation: its SKUs and the channel that made it.
#[derive(Debug, Default)]
struct Entry {
    skus: Vec<Sku>,
    channel: Option<Channel>,
}

impl Recent {
    fn entry(&self, id: &ReservationId) -> Option<&Entry> {
        self.young.get(id).or_else(|| self.old.get(id))
    }

    #[cfg(test)]
    fn get(&self, id: &ReservationId) -> Option<Vec<Sku>> {
        self.entry(id).map(|e| e.skus.clone())
    }

    fn note(&mut self, id: ReservationId, sku: &Sku, channel: Option<&Channel>) {
        // A reservation's lines go in together, so one never straddles the two.
        if self.young.len() >= RECENT / 2 && !self.young.contains_key(&id) {
            // The old generation's table, emptied, becomes the young one: it keeps its
            // capacity, so the hot path does not grow a table from nothing (and rehash it
            // a dozen times) after every rotation.
            std::mem::swap(&mut self.old, &mut self.young);
            self.young.clear();
        }
        let entry = self.young.entry(id).or_default();
        if !entry.skus.contains(sku) {
            entry.skus.push(sku.clone());
        }
        if entry.channel.is_none() {
            entry.channel = channel.cloned();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Locator {
    /// The store, when it answers the lookups from its indexes; the maps stay empty then.
    indexed: Option<Arc<dyn EventStore>>,
    /// With an indexing store: the latest reservations' SKUs (a line is never taken away
    /// from a reservation, so a cached answer stays true).
    recent: std::sync::Mutex<Recent>,
    groups: DashMap<ReservationId, Group>,
    orders: DashMap<OrderId, Vec<ReservationId>>,
    ready: watch::Sender<Scan>,
}

/// Progress of the start-up pass.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scan {
    Running,
    Done,
    Failed(String),
}

/// Longest a lookup waits for the start-up pass before answering `Unavailable`.
const READY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// Most events read for one reservation (a hold and a resolution per line, at most
/// `MAX_LINES` lines, and a key used again after its window).
const RESERVATION_EVENTS: usize = 1_024;
/// Most events read for one order.
const ORDER_EVENTS: usize = 100_000;

impl Locator {
    pub(crate) fn new(store: &Arc<dyn EventStore>) -> Self {
        Self {
            indexed: store.indexed().then(|| store.clone()),
            recent: std::sync::Mutex::new(Recent::default()),
            groups: DashMap::new(),
            orders: DashMap::new(),
            ready: watch::channel(Scan::Running).0,
        }
    }

    /// Notes that `sku` holds a line of reservation `id`.
    pub(crate) fn add(
        &self,
        id: ReservationId,
        skus: &[Sku],
        order_id: Option<&OrderId>,
        channel: Option<&Channel>,
        at: Timestamp,
    ) {
        if self.indexed.is_some() {
            // The store filed it with the events; keep it at hand for the commit to come.
            // All lines under one lock: a lookup never sees part of a reservation.
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for sku in skus {
                recent.note(id, sku, channel);
            }
            return;
        }
        let mut group = self.groups.entry(id).or_insert_with(|| Group {
            skus: Vec::new(),
            order_id: order_id.cloned(),
            at,
            channel: channel.cloned(),
            lines: Vec::new(),
        });
        let new_group = group.skus.is_empty();
        for sku in skus {
            if !group.skus.contains(sku) {
                group.skus.push(sku.clone());
            }
        }
        drop(group);
        if let (Some(order), true) = (order_id, new_group) {
            let mut ids = self.orders.entry(order.clone()).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }

    /// The SKUs holding lines of `id`. Waits for the start-up pass, so that a reservation
    /// whose lines it has only partly indexed is never reported half.
    pub(crate) async fn skus(&self, id: &ReservationId) -> Result<Option<Vec<Sku>>, Error> {
        if self.indexed.is_some() {
            if let Some(skus) = self.cached(id, |e| Some(e.skus.clone())) {
                return Ok(Some(skus));
            }
            let mut skus: Vec<Sku> = Vec::new();
            for sku in held(&self.filed_under(id).await?).map(|(_, sku)| sku) {
                if !skus.contains(&sku) {
                    skus.push(sku);
                }
            }
            return Ok((!skus.is_empty()).then_some(skus));
        }
        self.wait_ready().await?;
        Ok(self.groups.get(id).map(|g| g.skus.clone()))
    }

    /// The channel that made reservation `id`, if it is known.
    pub(crate) async fn owner(&self, id: &ReservationId) -> Result<Option<Channel>, Error> {
        if self.indexed.is_some() {
            if let Some(channel) = self.cached(id, |e| e.channel.clone()) {
                return Ok(Some(channel));
            }
            return Ok(self
                .filed_under(id)
                .await?
                .iter()
                .filter(|e| e.event_type == "StockReserved")
                .find_map(|e| match codec::decode(e) {
                    Ok((Event::StockReserved(r), _)) if r.reservation_id == *id => Some(r.channel),
                    _ => None,
                }));
        }
        self.wait_ready().await?;
        Ok(self.groups.get(id).and_then(|g| g.channel.clone()))
    }

    /// What the cache of recent reservations says of `id`, through `pick`.
    fn cached<T>(&self, id: &ReservationId, pick: impl FnOnce(&Entry) -> Option<T>) -> Option<T> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id)
            .and_then(pick)
    }

    /// The events the store filed under reservation `id` (a store with indexes only).
    async fn filed_under(
        &self,
        id: &ReservationId,
    ) -> Result<Vec<stockade_store::RecordedEvent>, Error> {
        let Some(store) = &self.indexed else {
            return Ok(Vec::new());
        };
        store
            .read_subject(*id.as_uuid(), RESERVATION_EVENTS)
            .await
            .map_err(|e| Error::store("find the reservation", &e))
    }

    /// The reservations of `order` with their SKUs.
    pub(crate) async fn order(
        &self,
        order: &OrderId,
    ) -> Result<Vec<(ReservationId, Vec<Sku>)>, Error> {
        if let Some(store) = &self.indexed {
            let events = store
                .read_correlation(order.as_str(), ORDER_EVENTS)
                .await
                .map_err(|e| Error::store("find the order", &e))?;
            let mut found: Vec<(ReservationId, Vec<Sku>)> = Vec::new();
            for (id, sku) in held(&events) {
                match found.iter_mut().find(|(r, _)| *r == id) {
                    Some((_, skus)) if !skus.contains(&sku) => skus.push(sku),
                    Some(_) => {}
                    None => found.push((id, vec![sku])),
                }
            }
            return Ok(found);
        }
        self.wait_ready().await?;
        let ids = self
            .orders
            .get(order)
            .map(|ids| ids.clone())
            .unwrap_or_default();
        Ok(ids
            .into_iter()
            .filter_map(|id| self.groups.get(&id).map(|g| (id, g.skus.clone())))
            .collect())
    }

    async fn wait_ready(&self) -> Result<(), Error> {
        if *self.ready.borrow() == Scan::Done {
            return Ok(()); // the common case, without arming a timer
        }
        let mut state = self.ready.subscribe();
        let settled = tokio::time::timeout(READY_PATIENCE, state.wait_for(|s| *s != Scan::Running));
        match settled.await {
            Ok(Ok(s)) => match &*s {
                Scan::Failed(reason) => Err(Error::Unavailable(format!(
                    "the reservation index could not be built: {reason}"
                ))),
                _ => Ok(()),
            },
            // The sender lives as long as `self`; a timeout means a very long log.
            _ => Err(Error::Unavailable(
                "the reservation index is still being built; retry shortly".into(),
            )),
        }
    }

    /// Drops groups made before `before`.
    pub(crate) fn prune(&self, before: Timestamp) {
        if self.indexed.is_some() {
            return;
        }
        let mut dropped_orders = Vec::new();
        self.groups.retain(|_, g| {
            let keep = g.at >= before;
            if !keep && let Some(order) = &g.order_id {
                dropped_orders.push(order.clone());
            }
            keep
        });
        for order in dropped_orders {
            self.orders.remove_if_mut(&order, |_, ids| {
                ids.retain(|id| self.groups.contains_key(id));
                ids.is_empty()
            });
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// One pass over the log: indexes reservations made since `since`, marks the index
    /// ready, and returns the SKUs that still hold live reservations.
    pub(crate) async fn scan(
        &self,
        store: &Arc<dyn EventStore>,
        since: Timestamp,
    ) -> Result<Vec<Sku>, StoreError> {
        if let Some(store) = &self.indexed {
            let open = store.streams_with_open_subjects().await?;
            self.ready.send_replace(Scan::Done);
            return Ok(open.iter().filter_map(StreamName::sku).collect());
        }
        let mut live: HashMap<StreamName, i64> = HashMap::new();
        scan_all(store.as_ref(), Position::START, SCAN_PAGE, |recorded| {
            let delta = match recorded.event_type.as_str() {
                "StockReserved" => {
                    if let (Ok((Event::StockReserved(e), _)), Some(sku)) =
                        (codec::decode(recorded), recorded.stream.sku())
                        && e.at >= since
                    {
                        self.add(
                            e.reservation_id,
                            std::slice::from_ref(&sku),
                            e.order_id.as_ref(),
                            Some(&e.channel),
                            e.at,
                        );
                        if !e.lines.is_empty()
                            && let Some(mut group) = self.groups.get_mut(&e.reservation_id)
                        {
                            group.lines = e.lines;
                        }
                    }
                    1
                }
                "ReservationCommitted" | "ReservationReleased" | "ReservationExpired" => -1,
                _ => 0,
            };
            if delta != 0 {
                *live.entry(recorded.stream.clone()).or_default() += delta;
            }
            Ok(())
        })
        .await?;
        self.ready.send_replace(Scan::Done);
        Ok(live
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(stream, _)| stream.sku())
            .collect())
    }

    /// Whether lookups are answered by the store's indexes (else by the in-memory index).
    pub(crate) fn indexed(&self) -> bool {
        self.indexed.is_some()
    }

    /// From the in-memory index: reservations some of whose recorded lines never landed,
    /// with the SKUs that do hold a line and the order.
    pub(crate) fn incomplete(&self) -> Vec<Incomplete> {
        self.groups
            .iter()
            .filter(|g| g.lines.iter().any(|sku| !g.skus.contains(sku)))
            .map(|g| Incomplete {
                id: *g.key(),
                held: g.skus.clone(),
                order_id: g.order_id.clone(),
            })
            .collect()
    }

    /// Records that the pass failed: lookups answer `Unavailable` instead of waiting.
    pub(crate) fn failed(&self, reason: String) {
        self.ready.send_replace(Scan::Failed(reason));
    }
}

/// A reservation whose process stopped between its lines' appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incomplete {
    pub id: ReservationId,
    /// The SKUs where a line landed.
    pub held: Vec<Sku>,
    pub order_id: Option<OrderId>,
}

/// Whether the events filed under one reservation show it incomplete: a line recorded the
/// reservation's SKUs, and some of them hold no line.
pub(crate) fn incomplete_in(
    id: ReservationId,
    events: &[stockade_store::RecordedEvent],
) -> Option<Incomplete> {
    let mut held: Vec<Sku> = Vec::new();
    let mut lines: Vec<Sku> = Vec::new();
    let mut order_id = None;
    for e in events.iter().filter(|e| e.event_type == "StockReserved") {
        if let (Ok((Event::StockReserved(r), _)), Some(sku)) = (codec::decode(e), e.stream.sku())
            && r.reservation_id == id
        {
            if !held.contains(&sku) {
                held.push(sku);
            }
            if lines.is_empty() {
                lines = r.lines;
            }
            order_id = order_id.or(r.order_id);
        }
    }
    lines
        .iter()
        .any(|sku| !held.contains(sku))
        .then_some(Incomplete { id, held, order_id })
}

/// The lines held among `events` (a reservation's or an order's): each `StockReserved`'s
/// reservation and SKU, in commit order. An event that cannot be read is skipped here (the
/// SKU's actor reports it when it loads).
fn held(events: &[stockade_store::RecordedEvent]) -> impl Iterator<Item = (ReservationId, Sku)> {
    events
        .iter()
        .filter(|e| e.event_type == "StockReserved")
        .filter_map(|e| match (codec::decode(e), e.stream.sku()) {
            (Ok((Event::StockReserved(r), _)), Some(sku)) => Some((r.reservation_id, sku)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_cache_keeps_at_most_its_size_and_the_latest_entries() {
        let sku = Sku::new("A").expect("sku");
        let mut recent = Recent::default();
        for n in 0..(RECENT as u128 * 2) {
            recent.note(ReservationId::from_u128(n), &sku, None);
        }
        assert!(recent.young.len() + recent.old.len() <= RECENT);
        let last = ReservationId::from_u128(RECENT as u128 * 2 - 1);
        assert_eq!(recent.get(&last), Some(vec![sku.clone()]));
        assert_eq!(recent.get(&ReservationId::from_u128(0)), None);
        // A second line of the same reservation joins its entry.
        let other = Sku::new("B").expect("sku");
        recent.note(last, &other, None);
        assert_eq!(recent.get(&last), Some(vec![sku, other]));
    }
}

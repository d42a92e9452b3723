//! Where a reservation lives: which SKUs hold lines of it, and which reservations an order
//! has. Callers commit or release by reservation id or order id alone, so the engine must
//! find the SKU actors that hold them.
//!
//! Built at start-up by one pass over the log (which also finds the SKUs with live
//! reservations, to wake their expiry timers), then kept up to date as this engine
//! reserves. An entry is dropped once it is older than the longest possible hold plus the
//! resolution retention: by then every line is resolved and forgotten by its SKU too.
//!
//! Reservations made by another engine on the same store after this one started are not
//! indexed here; scale-out routes a SKU (and so its reservations) to one node.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use stockade_domain::{Event, OrderId, ReservationId, Sku, Timestamp};
use stockade_store::{EventStore, Position, StoreError, StreamName, codec};
use tokio::sync::watch;

/// Events read per page by the start-up pass.
const SCAN_PAGE: usize = 8_192;

#[derive(Debug, Clone)]
struct Group {
    skus: Vec<Sku>,
    order_id: Option<OrderId>,
    at: Timestamp,
}

#[derive(Debug)]
pub(crate) struct Locator {
    groups: DashMap<ReservationId, Group>,
    orders: DashMap<OrderId, Vec<ReservationId>>,
    ready: watch::Sender<bool>,
}

impl Locator {
    pub(crate) fn new() -> Self {
        Self {
            groups: DashMap::new(),
            orders: DashMap::new(),
            ready: watch::channel(false).0,
        }
    }

    /// Notes that `sku` holds a line of reservation `id`.
    pub(crate) fn add(
        &self,
        id: ReservationId,
        sku: &Sku,
        order_id: Option<&OrderId>,
        at: Timestamp,
    ) {
        let mut group = self.groups.entry(id).or_insert_with(|| Group {
            skus: Vec::new(),
            order_id: order_id.cloned(),
            at,
        });
        if !group.skus.contains(sku) {
            group.skus.push(sku.clone());
        }
        let new_group = group.skus.len() == 1;
        drop(group);
        if let (Some(order), true) = (order_id, new_group) {
            let mut ids = self.orders.entry(order.clone()).or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }

    /// The SKUs holding lines of `id`; waits for the start-up pass if not found yet.
    pub(crate) async fn skus(&self, id: &ReservationId) -> Option<Vec<Sku>> {
        if let Some(g) = self.groups.get(id) {
            return Some(g.skus.clone());
        }
        self.wait_ready().await;
        self.groups.get(id).map(|g| g.skus.clone())
    }

    /// The reservations of `order` with their SKUs.
    pub(crate) async fn order(&self, order: &OrderId) -> Vec<(ReservationId, Vec<Sku>)> {
        if !self.orders.contains_key(order) {
            self.wait_ready().await;
        }
        let ids = self
            .orders
            .get(order)
            .map(|ids| ids.clone())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.groups.get(&id).map(|g| (id, g.skus.clone())))
            .collect()
    }

    async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        // Errs only if the sender is gone, which is never while `self` exists.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Drops groups made before `before`.
    pub(crate) fn prune(&self, before: Timestamp) {
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
        let mut live: HashMap<StreamName, i64> = HashMap::new();
        let mut after = Position::START;
        loop {
            let page = store.read_all(after, SCAN_PAGE).await?;
            for recorded in &page {
                let delta = match recorded.event_type.as_str() {
                    "StockReserved" => {
                        if let (Ok((Event::StockReserved(e), _)), Some(sku)) =
                            (codec::decode(recorded), recorded.stream.sku())
                            && e.at >= since
                        {
                            self.add(e.reservation_id, &sku, e.order_id.as_ref(), e.at);
                        }
                        1
                    }
                    "ReservationCommitted" | "ReservationReleased" | "ReservationExpired" => -1,
                    _ => 0,
                };
                if delta != 0 {
                    *live.entry(recorded.stream.clone()).or_default() += delta;
                }
            }
            match page.last() {
                Some(last) if page.len() == SCAN_PAGE => after = last.position,
                _ => break,
            }
        }
        self.ready.send_replace(true);
        Ok(live
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(stream, _)| stream.sku())
            .collect())
    }

    /// Marks the index ready without a pass (the pass failed; lookups must not hang).
    pub(crate) fn give_up_waiting(&self) {
        self.ready.send_replace(true);
    }
}

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
}

#[derive(Debug)]
pub(crate) struct Locator {
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

impl Locator {
    pub(crate) fn new() -> Self {
        Self {
            groups: DashMap::new(),
            orders: DashMap::new(),
            ready: watch::channel(Scan::Running).0,
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

    /// The SKUs holding lines of `id`. Waits for the start-up pass, so that a reservation
    /// whose lines it has only partly indexed is never reported half.
    pub(crate) async fn skus(&self, id: &ReservationId) -> Result<Option<Vec<Sku>>, Error> {
        self.wait_ready().await?;
        Ok(self.groups.get(id).map(|g| g.skus.clone()))
    }

    /// The reservations of `order` with their SKUs.
    pub(crate) async fn order(
        &self,
        order: &OrderId,
    ) -> Result<Vec<(ReservationId, Vec<Sku>)>, Error> {
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
        scan_all(store.as_ref(), Position::START, SCAN_PAGE, |recorded| {
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

    /// Records that the pass failed: lookups answer `Unavailable` instead of waiting.
    pub(crate) fn failed(&self, reason: String) {
        self.ready.send_replace(Scan::Failed(reason));
    }
}

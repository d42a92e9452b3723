//! The fair-selling side of `stockade simulate flash-sale`: who each buyer is (a person,
//! or one of a few bots that place order after order), the claimer that buys waitlist
//! holds as they are served, and what the log says afterwards (units per customer, the
//! waitlist's conversions, and how long freed stock waited before it was held for the
//! next in line).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use stockade_domain::{CustomerId, Event, ReservationId, Resolution, Sku, Timestamp};
use stockade_engine::{Inventory, Origin, Percentiles};
use stockade_store::{EventStore, Position, StoreError, StreamName, codec, scan_stream};

use crate::args::{GOLDEN, splitmix};

/// The customer behind `buyer`: with `bots` bots, a `bot_share` of the attempts are one
/// of them (the same few ids, order after order); every other buyer is a person of their
/// own. Deterministic per (seed, buyer).
pub fn customer_of(
    seed: u64,
    buyer: u64,
    bots: u64,
    bot_share: f64,
) -> Result<(CustomerId, bool), String> {
    let coin = splitmix(seed ^ 0x626f_7473 ^ buyer.wrapping_mul(GOLDEN));
    let is_bot = bots > 0 && (bot_share >= 1.0 || (coin as f64 / u64::MAX as f64) < bot_share);
    let name = if is_bot {
        format!("bot-{}", splitmix(coin) % bots)
    } else {
        format!("buyer-{buyer}")
    };
    let id = CustomerId::new(name).map_err(|e| e.to_string())?;
    Ok((id, is_bot))
}

/// Whether customer ids name a bot (as [`customer_of`] makes them).
pub fn is_bot(customer: &CustomerId) -> bool {
    customer.as_str().starts_with("bot-")
}

/// Waitlist places the buyers took, and the holds the writer served them: the claimer
/// buys each hold once both are known (in either order), or lets it lapse when its
/// waiter walks away.
#[derive(Default)]
pub struct Waiters {
    /// Hold id → whether its waiter walks away from the hold.
    joined: HashMap<ReservationId, (Sku, bool)>,
    /// Hold ids the log showed served, not yet claimed.
    served: HashSet<ReservationId>,
    pub stats: WaitlistStats,
}

/// What happened on the waitlists, as the buyers lived it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WaitlistStats {
    pub joined: u64,
    /// Refused a place: already waiting, full, or past the limit.
    pub refused: u64,
    pub holds_served: u64,
    pub holds_bought: u64,
    pub holds_walked_away: u64,
    pub errors: u64,
}

impl Waiters {
    pub fn joined(&mut self, hold: ReservationId, sku: Sku, walks_away: bool) {
        self.stats.joined += 1;
        self.joined.insert(hold, (sku, walks_away));
    }

    fn served(&mut self, hold: ReservationId) {
        self.served.insert(hold);
    }

    /// Holds both served and joined, to claim now: (hold, SKU, walks away).
    fn ready(&mut self) -> Vec<(ReservationId, Sku, bool)> {
        let ready: Vec<ReservationId> = self
            .served
            .iter()
            .filter(|h| self.joined.contains_key(h))
            .copied()
            .collect();
        ready
            .into_iter()
            .filter_map(|h| {
                self.served.remove(&h);
                self.joined.remove(&h).map(|(sku, away)| (h, sku, away))
            })
            .collect()
    }
}

/// Follows the log from `from` and claims waitlist holds as they are served, until
/// `stop` is set and nothing is left to claim. Returns the holds it bought: (SKU, id).
pub async fn claim(
    inventory: Inventory,
    from: Position,
    waiters: Arc<Mutex<Waiters>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(Sku, ReservationId)> {
    let mut feed = inventory.store().subscribe_all(from);
    let mut bought = Vec::new();
    let lock = || waiters.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let next = tokio::time::timeout(Duration::from_millis(20), feed.next()).await;
        match next {
            Ok(Some(Ok(recorded))) => {
                if let Ok((Event::StockReserved(e), _)) = codec::decode(&recorded)
                    && e.waitlist.is_some()
                {
                    let mut w = lock();
                    w.stats.holds_served += 1;
                    w.served(e.reservation_id);
                }
            }
            Ok(Some(Err(_)) | None) => {
                // The feed broke (the engine is shutting down): nothing more to claim.
                lock().stats.errors += 1;
                return bought;
            }
            Err(_) if stop.load(std::sync::atomic::Ordering::Relaxed) => return bought,
            Err(_) => {}
        }
        let ready = lock().ready();
        for (hold, sku, walks_away) in ready {
            if walks_away {
                lock().stats.holds_walked_away += 1;
                continue;
            }
            match inventory.commit(hold, &Origin::default()).await {
                Ok(_) => {
                    lock().stats.holds_bought += 1;
                    bought.push((sku, hold));
                }
                // Lapsed before it was claimed: the next in line gets it.
                Err(_) => lock().stats.errors += 1,
            }
        }
    }
}

/// What the log says about fairness, over the run's SKUs.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Fairness {
    /// Units bought per customer: the most any one bought, and the limit.
    pub max_units_per_customer: u64,
    pub customers_who_bought: u64,
    pub bot_units: u64,
    pub person_units: u64,
    /// Freed units' wait before they were held for the first in line: from the latest
    /// freeing at or before each waitlist hold (a lapse counts at its expiry instant), or
    /// the place joining if later, to the hold's decision, in ms.
    pub freed_to_hold_ms: Percentiles,
    pub waitlist_holds: u64,
}

/// Reads the run's streams back and works out [`Fairness`].
pub async fn from_log(store: &Arc<dyn EventStore>, skus: &[Sku]) -> Result<Fairness, StoreError> {
    let mut bought: HashMap<CustomerId, u64> = HashMap::new();
    let mut waits_us: Vec<u64> = Vec::new();
    for sku in skus {
        let stream = StreamName::for_sku(sku);
        let mut owner: HashMap<ReservationId, CustomerId> = HashMap::new();
        // When units came free: a release, a count or receipt that found more, and a
        // hold's lapse at its expiry instant (its event may be written after the stock
        // it freed was already held for the next in line).
        let mut freed: Vec<Timestamp> = Vec::new();
        let mut joined_at: HashMap<u64, Timestamp> = HashMap::new();
        // Each waitlist hold: when it was decided, and when its place joined.
        let mut served: Vec<(Timestamp, Timestamp)> = Vec::new();
        scan_stream(store.as_ref(), &stream, 0, 4096, |recorded| {
            let (event, _) = codec::decode_stored(recorded)?;
            let mut sold = |id: &ReservationId, qty: u64| {
                if let Some(c) = owner.get(id) {
                    *bought.entry(c.clone()).or_default() += qty;
                }
            };
            match &event {
                Event::StockReserved(e) => {
                    if let Some(c) = &e.customer {
                        owner.insert(e.reservation_id, c.clone());
                    }
                    if let Some(n) = e.waitlist {
                        served.push((e.at, joined_at.remove(&n).unwrap_or(e.at)));
                    }
                }
                Event::WaitlistJoined(e) => {
                    joined_at.insert(e.number, e.at);
                }
                Event::ReservationCommitted(e) => sold(&e.reservation_id, e.qty.get()),
                Event::ReservationReduced(e) if e.outcome == Resolution::Committed => {
                    sold(&e.reservation_id, e.qty.get());
                }
                Event::ReservationReleased(e) => freed.push(e.at),
                Event::ReservationExpired(e) => freed.push(e.expires_at),
                Event::ReservationReduced(e) => freed.push(e.at),
                Event::StockAdjusted(e) if e.current > e.previous => freed.push(e.at),
                Event::ReceiptReceived(e) => freed.push(e.at),
                Event::TransferReceived(e) => freed.push(e.at),
                _ => {}
            }
            Ok::<_, StoreError>(())
        })
        .await?;
        // From the latest freeing at or before each hold (or its place joining, if
        // later) to the hold: how long the writer left freed stock unheld.
        freed.sort_unstable();
        for (at, joined) in served {
            let before = freed.partition_point(|t| *t <= at);
            let since = before
                .checked_sub(1)
                .map_or(joined, |i| freed[i].max(joined));
            let ms = at.as_millis().saturating_sub(since.as_millis());
            waits_us.push(ms.saturating_mul(1000));
        }
    }
    let waitlist_holds = waits_us.len() as u64;
    let (bots, people): (Vec<_>, Vec<_>) = bought.iter().partition(|(c, _)| is_bot(c));
    Ok(Fairness {
        max_units_per_customer: bought.values().copied().max().unwrap_or(0),
        customers_who_bought: bought.len() as u64,
        bot_units: bots.iter().map(|(_, n)| **n).sum(),
        person_units: people.iter().map(|(_, n)| **n).sum(),
        freed_to_hold_ms: Percentiles::of_micros(&mut waits_us),
        waitlist_holds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_are_a_few_ids_behind_their_share_of_attempts() {
        let people = (0..10_000)
            .map(|b| customer_of(7, b, 5, 0.3).unwrap())
            .filter(|(_, bot)| !bot)
            .count();
        assert!((6_700..7_300).contains(&people), "{people}");
        let bots: HashSet<String> = (0..10_000)
            .map(|b| customer_of(7, b, 5, 0.3).unwrap())
            .filter(|(_, bot)| *bot)
            .map(|(c, _)| c.to_string())
            .collect();
        assert_eq!(bots.len(), 5);
        assert!(
            bots.iter()
                .all(|c| is_bot(&CustomerId::new(c.clone()).unwrap()))
        );
        assert_eq!(
            (0..100)
                .filter(|b| customer_of(7, *b, 0, 1.0).unwrap().1)
                .count(),
            0
        );
    }
}

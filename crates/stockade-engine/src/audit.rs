//! An independent check of the log: did any SKU ever promise more than it had?
//!
//! Deliberately written without `SkuState` or `decide`: it re-derives holds and stock from
//! the raw events with its own arithmetic, so a bug in the domain's bookkeeping cannot hide
//! itself. It checks physical pools (the ones that can be oversold by selling what is not
//! on the shelf); other pools are counted but not judged.
//!
//! Rules, per SKU, walking its events in order at each event's own time `t`:
//! - a hold counts from its `StockReserved` until it is resolved or `expires_at <= t`;
//! - at every `StockReserved`, live holds (including the new one) must fit in
//!   `on_hand - safety_stock`, and at every commit the sale must fit in `on_hand`;
//! - a reservation is created once and resolved at most once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use stockade_domain::{Event, PoolConfig, ReservationId, Sku, Timestamp};
use stockade_store::{EventStore, Position, StoreError, StreamName, codec};

/// Events read per page.
const PAGE: usize = 8_192;

/// What the log shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    pub events: u64,
    pub skus: u64,
    pub reserved: u64,
    pub committed: u64,
    pub released: u64,
    pub expired: u64,
    /// Units promised or sold beyond stock, summed over every breach.
    pub oversold_units: u64,
    /// Every reservation created, per SKU.
    pub reservations: HashMap<Sku, HashSet<ReservationId>>,
    /// Human-readable breaches, with their log position.
    pub violations: Vec<String>,
}

#[derive(Default)]
struct SkuCheck {
    physical: Option<(u128, u128)>, // (on_hand, safety_stock)
    holds: HashMap<ReservationId, (u128, Timestamp)>,
    by_expiry: BTreeSet<(Timestamp, ReservationId)>,
    held: u128,
    resolved: HashSet<ReservationId>,
}

impl SkuCheck {
    /// Drops holds that lapsed by `t`.
    fn lapse(&mut self, t: Timestamp) {
        while let Some(&(at, id)) = self.by_expiry.first() {
            if at > t {
                break;
            }
            self.by_expiry.pop_first();
            if let Some((qty, _)) = self.holds.remove(&id) {
                self.held -= qty;
            }
        }
    }

    fn unhold(&mut self, id: &ReservationId) -> Option<u128> {
        let (qty, at) = self.holds.remove(id)?;
        self.by_expiry.remove(&(at, *id));
        self.held -= qty;
        Some(qty)
    }
}

/// Reads the whole log and checks it.
pub async fn check_log(store: &Arc<dyn EventStore>) -> Result<LogReport, StoreError> {
    let mut report = LogReport::default();
    let mut skus: HashMap<StreamName, SkuCheck> = HashMap::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, PAGE).await?;
        for recorded in &page {
            report.events += 1;
            let Some(sku) = recorded.stream.sku() else {
                continue;
            };
            let (event, _) = codec::decode(recorded).map_err(|e| StoreError::Corrupt {
                position: recorded.position,
                reason: e.to_string(),
            })?;
            let check = skus.entry(recorded.stream.clone()).or_default();
            let at = recorded.position;
            let t = event.at();
            check.lapse(t);
            match &event {
                Event::SkuRegistered(e) => {
                    report.skus += 1;
                    if let PoolConfig::Physical {
                        on_hand,
                        safety_stock,
                    } = e.pool
                    {
                        check.physical = Some((on_hand.get().into(), safety_stock.get().into()));
                    }
                }
                Event::StockAdjusted(e) => {
                    if let Some((on_hand, _)) = &mut check.physical {
                        *on_hand = e.current.get().into();
                    }
                }
                Event::StockReserved(e) => {
                    report.reserved += 1;
                    let qty = u128::from(e.qty.get());
                    let fresh = report
                        .reservations
                        .entry(sku.clone())
                        .or_default()
                        .insert(e.reservation_id);
                    if !fresh || check.resolved.contains(&e.reservation_id) {
                        report.violations.push(format!(
                            "position {at}: {sku} reservation {} created twice",
                            e.reservation_id
                        ));
                    }
                    check.holds.insert(e.reservation_id, (qty, e.expires_at));
                    check.by_expiry.insert((e.expires_at, e.reservation_id));
                    check.held += qty;
                    if let Some((on_hand, safety)) = check.physical {
                        let offer = on_hand.saturating_sub(safety);
                        if check.held > offer {
                            let over = check.held - offer;
                            report.oversold_units += over.min(qty) as u64;
                            report.violations.push(format!(
                                "position {at}: {sku} holds {} of {offer} on offer",
                                check.held
                            ));
                        }
                    }
                }
                Event::ReservationCommitted(e) => {
                    report.committed += 1;
                    let id = e.reservation_id;
                    let qty = check.unhold(&id);
                    if qty.is_none() {
                        report.violations.push(format!(
                            "position {at}: {sku} commits {id}, which holds nothing"
                        ));
                    }
                    check.resolved.insert(id);
                    if let Some((on_hand, _)) = &mut check.physical {
                        let sold = u128::from(e.qty.get());
                        if sold > *on_hand {
                            report.oversold_units += (sold - *on_hand) as u64;
                            report.violations.push(format!(
                                "position {at}: {sku} sells {sold} with {on_hand} on hand"
                            ));
                        }
                        *on_hand = on_hand.saturating_sub(sold);
                    }
                }
                Event::ReservationReleased(e) => {
                    report.released += 1;
                    resolve(check, e.reservation_id, &mut report, &sku, at);
                }
                Event::ReservationExpired(e) => {
                    // Written after the hold lapsed (it is already out of `holds`): only a
                    // second resolution is a breach.
                    report.expired += 1;
                    resolve(check, e.reservation_id, &mut report, &sku, at);
                }
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.position,
            _ => break,
        }
    }
    Ok(report)
}

fn resolve(
    check: &mut SkuCheck,
    id: ReservationId,
    report: &mut LogReport,
    sku: &Sku,
    at: Position,
) {
    check.unhold(&id);
    if !check.resolved.insert(id) {
        report
            .violations
            .push(format!("position {at}: {sku} resolves {id} twice"));
    }
}

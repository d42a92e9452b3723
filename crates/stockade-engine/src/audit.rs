//! An independent check of the log: did any SKU ever promise more than it had?
//!
//! Deliberately written without `SkuState` or `decide`: it re-derives holds and stock from
//! the raw events with its own arithmetic, so a bug in the domain's bookkeeping cannot hide
//! itself. Oversell is judged on physical pools (the ones that can be oversold by selling
//! what is not on the shelf); the lifecycle rules are checked on every pool.
//!
//! Rules, per SKU, walking its events in order at each event's own time `t`:
//! - a hold counts from its `StockReserved` until it is resolved or `expires_at <= t`;
//! - at every `StockReserved`, live holds (the new one included) must fit in
//!   `on_hand - safety_stock`; at every commit the sale must fit in `on_hand` and match
//!   the quantity held;
//! - a reservation id is created once while it is live or its key is still recognised
//!   (resolved less than the key window before: after that its key, and so its id, may
//!   come back);
//! - a reservation is resolved at most once, only if it was created, and an expiry is
//!   written only at or after the hold's `expires_at`;
//! - an adjustment starts from the stock the log says there was; a SKU registers once;
//! - a stream's revisions run 0, 1, 2, ... without gaps;
//! - an idempotency key (per principal) is applied once per stream: the events carrying it
//!   are one append (consecutive revisions); the key may come back only after the engine
//!   has forgotten it ([`KEY_RETENTION`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use stockade_domain::{Event, EventMetadata, PoolConfig, ReservationId, Sku, Timestamp};
use stockade_store::{EventStore, Position, StoreError, StreamName, codec, scan_all};

/// Events read per page.
const PAGE: usize = 8_192;

/// How long the engine remembers an idempotency key by default
/// (`EngineConfig::idempotency_retention`); a key seen again later is a new request, not
/// a second application.
pub const KEY_RETENTION: std::time::Duration = crate::config::DEFAULT_IDEMPOTENCY_RETENTION;

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
    /// Every reservation committed, per SKU.
    pub commits: HashMap<Sku, HashSet<ReservationId>>,
    /// Human-readable breaches, with their log position.
    pub violations: Vec<String>,
}

/// One idempotency key's application in a stream.
struct KeyUse {
    /// The last revision that carried the key.
    last: u64,
    /// When its append was decided.
    at: Timestamp,
    /// The event ids of that append (derived from the key, so a second application of
    /// the key repeats them).
    ids: Vec<uuid::Uuid>,
}

#[derive(Default)]
struct SkuCheck {
    registered: bool,
    physical: Option<(u128, u128)>, // (on_hand, safety_stock)
    /// A kit's stream: it holds nothing; its components hold for it.
    kit: bool,
    /// Live holds: quantity and expiry.
    holds: HashMap<ReservationId, (u128, Timestamp)>,
    by_expiry: BTreeSet<(Timestamp, ReservationId)>,
    held: u128,
    /// Created and not yet resolved (lapsed holds included: they still await their event).
    open: HashSet<ReservationId>,
    /// Resolved, with the instant.
    resolved: HashMap<ReservationId, Timestamp>,
    /// The revision the next event must have.
    next_revision: u64,
    /// Each (principal, key): where and when it was applied.
    keys: HashMap<(String, String), KeyUse>,
    /// How many keys were left after the last pruning.
    keys_pruned_at: usize,
}

impl SkuCheck {
    /// Drops holds that lapsed by `t` from what is held (they stay open until resolved).
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

    fn unhold(&mut self, id: &ReservationId) -> Option<(u128, Timestamp)> {
        let (qty, at) = self.holds.remove(id)?;
        self.by_expiry.remove(&(at, *id));
        self.held -= qty;
        Some((qty, at))
    }

    /// Whether `id` may not be held again at `t`: it is live, or it ended within the key
    /// window (ids are random or derived from a key, and a key's reuse within its window
    /// is answered from the log, never held again).
    fn remembers(&self, id: &ReservationId, t: Timestamp) -> bool {
        self.open.contains(id)
            || self
                .resolved
                .get(id)
                .is_some_and(|at| at.checked_add(KEY_RETENTION).is_none_or(|u| u >= t))
    }
}

/// Reads the whole log and checks it.
pub async fn check_log(store: &Arc<dyn EventStore>) -> Result<LogReport, StoreError> {
    check_log_of(store, |_| true).await
}

/// Checks the streams of the SKUs for which `only` holds (the whole log is read).
pub async fn check_log_of(
    store: &Arc<dyn EventStore>,
    only: impl Fn(&Sku) -> bool,
) -> Result<LogReport, StoreError> {
    check_log_with(store, only, KEY_RETENTION, |_| {}).await
}

/// [`check_log_of`] for an engine that remembers idempotency keys for `key_retention`,
/// calling `progress` with the position reached after every event (for a progress bar on
/// long logs).
pub async fn check_log_with(
    store: &Arc<dyn EventStore>,
    only: impl Fn(&Sku) -> bool,
    key_retention: std::time::Duration,
    mut progress: impl FnMut(Position),
) -> Result<LogReport, StoreError> {
    let mut report = LogReport::default();
    let mut skus: HashMap<StreamName, SkuCheck> = HashMap::new();
    scan_all(store.as_ref(), Position::START, PAGE, |recorded| {
        progress(recorded.position);
        let Some(sku) = recorded.stream.sku().filter(|s| only(s)) else {
            return Ok(());
        };
        report.events += 1;
        let (event, meta) = codec::decode_stored(recorded)?;
        let check = skus.entry(recorded.stream.clone()).or_default();
        check_record(
            check,
            key_retention,
            recorded.revision,
            &event,
            &meta,
            &sku,
            recorded.position,
            &mut report,
        );
        check_event(check, &event, &sku, recorded.position, &mut report);
        Ok(())
    })
    .await?;
    Ok(report)
}

/// The checks on where an event sits in its stream: its revision, and its idempotency key.
#[allow(clippy::too_many_arguments)]
fn check_record(
    check: &mut SkuCheck,
    key_retention: std::time::Duration,
    revision: u64,
    event: &Event,
    meta: &EventMetadata,
    sku: &Sku,
    at: Position,
    report: &mut LogReport,
) {
    let mut breach = |what: String| {
        report
            .violations
            .push(format!("position {at}: {sku} {what}"))
    };
    if revision != check.next_revision {
        breach(format!(
            "is at revision {revision}, expected {} (a gap or a repeat)",
            check.next_revision
        ));
    }
    check.next_revision = stockade_store::version_after(revision);
    if let Some(key) = &meta.idempotency_key {
        let principal = meta
            .principal
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let t = event.at();
        let scope = (principal, key.clone());
        // The events of one append under a key sit at consecutive revisions with distinct
        // ids. Anything else while the engine still remembers the key is a second
        // application: a later revision, or an id the key already produced.
        let same_append = match check.keys.get(&scope) {
            Some(used) if used.at.checked_add(key_retention).is_none_or(|u| u >= t) => {
                let next = used.last.checked_add(1) == Some(revision);
                if !next || used.ids.contains(&meta.event_id) {
                    breach(format!(
                        "applies idempotency key {key:?} again (last applied at revision {})",
                        used.last
                    ));
                }
                next
            }
            _ => false,
        };
        match check.keys.get_mut(&scope) {
            Some(used) if same_append => {
                used.last = revision;
                used.ids.push(meta.event_id);
            }
            _ => {
                check.keys.insert(
                    scope,
                    KeyUse {
                        last: revision,
                        at: t,
                        ids: vec![meta.event_id],
                    },
                );
            }
        }
        // Forget keys the engine has forgotten, in amortised constant time per event.
        if check.keys.len() >= check.keys_pruned_at.saturating_mul(2).max(1024) {
            check
                .keys
                .retain(|_, used| used.at.checked_add(key_retention).is_none_or(|u| u >= t));
            check.keys_pruned_at = check.keys.len();
        }
    }
}

fn check_event(
    check: &mut SkuCheck,
    event: &Event,
    sku: &Sku,
    at: Position,
    report: &mut LogReport,
) {
    let t = event.at();
    check.lapse(t);
    let mut breach = |what: String| {
        report
            .violations
            .push(format!("position {at}: {sku} {what}"))
    };
    match event {
        Event::SkuRegistered(e) => {
            if check.registered {
                breach("registered twice".into());
            }
            check.registered = true;
            report.skus += 1;
            if let PoolConfig::Physical {
                on_hand,
                safety_stock,
            } = e.pool
            {
                check.physical = Some((on_hand.get().into(), safety_stock.get().into()));
            }
            check.kit = matches!(e.pool, PoolConfig::Kit { .. });
        }
        Event::StockAdjusted(e) => {
            if let Some((on_hand, _)) = &mut check.physical {
                if u128::from(e.previous.get()) != *on_hand {
                    breach(format!(
                        "adjusts from {} but had {on_hand} on hand",
                        e.previous
                    ));
                }
                *on_hand = e.current.get().into();
            }
        }
        Event::StockReserved(e) => {
            let id = e.reservation_id;
            if check.kit {
                breach(format!(
                    "holds {} for {id}, but it is a kit: its components hold for it",
                    e.qty
                ));
            }
            if check.remembers(&id, t) {
                breach(format!("reservation {id} created twice"));
                // Count the new hold instead of the old one, not both.
                check.unhold(&id);
            }
            report.reserved += 1;
            report
                .reservations
                .entry(sku.clone())
                .or_default()
                .insert(id);
            check.open.insert(id);
            check.resolved.remove(&id);
            let qty = u128::from(e.qty.get());
            check.holds.insert(id, (qty, e.expires_at));
            check.by_expiry.insert((e.expires_at, id));
            check.held += qty;
            if let Some((on_hand, safety)) = check.physical {
                let offer = on_hand.saturating_sub(safety);
                if check.held > offer {
                    let over = check.held - offer;
                    report.oversold_units += over.min(qty) as u64;
                    breach(format!("holds {} of {offer} on offer", check.held));
                }
            }
        }
        Event::ReservationCommitted(e) => {
            report.committed += 1;
            let id = e.reservation_id;
            report.commits.entry(sku.clone()).or_default().insert(id);
            let sold = u128::from(e.qty.get());
            match check.unhold(&id) {
                None => breach(format!(
                    "commits {id}, which is not live (never reserved, resolved or lapsed)"
                )),
                Some((held, _)) if held != sold => {
                    breach(format!("commits {sold} of {id}, which holds {held}"))
                }
                Some(_) => {}
            }
            resolve(check, id, t, &mut breach);
            if let Some((on_hand, _)) = &mut check.physical {
                if sold > *on_hand {
                    report.oversold_units += (sold - *on_hand) as u64;
                    breach(format!("sells {sold} with {on_hand} on hand"));
                }
                *on_hand = on_hand.saturating_sub(sold);
            }
        }
        Event::ReservationReleased(e) => {
            report.released += 1;
            check.unhold(&e.reservation_id);
            resolve(check, e.reservation_id, t, &mut breach);
        }
        Event::ReservationExpired(e) => {
            report.expired += 1;
            // A hold still counted at `t` has not reached its expiry: written too early.
            if let Some((_, expires_at)) = check.unhold(&e.reservation_id) {
                breach(format!(
                    "expires {} at {t}, before its expiry {expires_at}",
                    e.reservation_id
                ));
            }
            resolve(check, e.reservation_id, t, &mut breach);
        }
    }
}

/// Marks `id` resolved at `t`; it must have been created and not resolved since.
fn resolve(check: &mut SkuCheck, id: ReservationId, t: Timestamp, breach: &mut impl FnMut(String)) {
    if !check.open.remove(&id) {
        if check.resolved.contains_key(&id) {
            breach(format!("resolves {id} twice"));
        } else {
            breach(format!("resolves {id}, which was never created"));
        }
    }
    check.resolved.insert(id, t);
}

#[cfg(test)]
mod tests {
    use stockade_domain::StockChange;
    use stockade_domain::testing::{
        adjusted, committed, expired, registered_physical, released, reserved, secs,
    };

    use super::*;

    fn check(events: &[Event]) -> LogReport {
        let sku = Sku::new("A").expect("sku");
        let mut state = SkuCheck::default();
        let mut report = LogReport::default();
        for (n, e) in events.iter().enumerate() {
            check_event(&mut state, e, &sku, Position::at(n as u64 + 1), &mut report);
        }
        report
    }

    /// Runs the stream checks on `(revision, event, key)` records.
    fn check_records(records: &[(u64, Event, Option<&str>)]) -> LogReport {
        let sku = Sku::new("A").expect("sku");
        let mut state = SkuCheck::default();
        let mut report = LogReport::default();
        for (n, (revision, e, key)) in records.iter().enumerate() {
            let meta = EventMetadata {
                idempotency_key: key.map(str::to_owned),
                ..EventMetadata::new(uuid::Uuid::new_v4(), e.at())
            };
            let at = Position::at(n as u64 + 1);
            check_record(
                &mut state,
                KEY_RETENTION,
                *revision,
                e,
                &meta,
                &sku,
                at,
                &mut report,
            );
            check_event(&mut state, e, &sku, at, &mut report);
        }
        report
    }

    #[test]
    fn gaps_and_keys_applied_twice_are_named() {
        let window = KEY_RETENTION.as_secs();
        let report = check_records(&[
            (0, registered_physical(5, 0), None),
            (1, reserved(1, 1, secs(1), secs(100)), Some("k1")),
            (3, reserved(2, 1, secs(2), secs(100)), Some("k2")),
            (4, reserved(3, 1, secs(3), secs(100)), Some("k1")),
            // Past the key window: a new request.
            (
                5,
                reserved(4, 1, secs(window + 10), secs(window + 100)),
                Some("k2"),
            ),
        ]);
        assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
        assert!(
            report.violations[0].starts_with("position 3: A is at revision 3, expected 2"),
            "{:?}",
            report.violations
        );
        assert!(
            report.violations[1].starts_with("position 4: A applies idempotency key \"k1\""),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn a_key_whose_event_id_comes_back_next_is_applied_twice() {
        let sku = Sku::new("A").expect("sku");
        let mut state = SkuCheck::default();
        let mut report = LogReport::default();
        let id = uuid::Uuid::new_v4();
        let events = [
            registered_physical(5, 0),
            reserved(1, 1, secs(1), secs(100)),
            reserved(2, 1, secs(2), secs(100)),
        ];
        for (n, e) in events.iter().enumerate() {
            let meta = EventMetadata {
                idempotency_key: (n > 0).then(|| "retry".to_owned()),
                ..EventMetadata::new(if n > 0 { id } else { uuid::Uuid::new_v4() }, e.at())
            };
            let at = Position::at(n as u64 + 1);
            check_record(
                &mut state,
                KEY_RETENTION,
                n as u64,
                e,
                &meta,
                &sku,
                at,
                &mut report,
            );
            check_event(&mut state, e, &sku, at, &mut report);
        }
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        assert!(report.violations[0].contains("applies idempotency key \"retry\" again"));
    }

    #[test]
    fn a_legal_history_passes() {
        let window = KEY_RETENTION.as_secs();
        let report = check(&[
            registered_physical(2, 0),
            reserved(1, 2, secs(0), secs(10)),
            // R1 lapsed at 10: its units are free before its expiry is written.
            reserved(2, 2, secs(10), secs(20)),
            expired(1, 2, secs(10), secs(11)),
            released(2, 2, secs(12)),
            // The id comes back (its key used again) once the key window has passed.
            reserved(2, 1, secs(12 + window + 1), secs(12 + window + 9)),
        ]);
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.oversold_units, 0);
    }

    #[test]
    fn holding_more_than_is_on_offer_is_an_oversell() {
        let report = check(&[
            registered_physical(3, 1),
            reserved(1, 1, secs(0), secs(10)),
            committed(1, 1, secs(1)),
            reserved(2, 2, secs(2), secs(10)),
        ]);
        assert_eq!(report.oversold_units, 1, "{:?}", report.violations);
    }

    #[test]
    fn a_kit_that_holds_stock_itself_is_a_breach() {
        use stockade_domain::testing::registered;
        use stockade_domain::{Component, PoolConfig, Quantity};
        let kit = PoolConfig::Kit {
            components: vec![Component {
                sku: Sku::new("MUG").expect("sku"),
                qty: Quantity::new(2),
            }],
        };
        assert!(check(&[registered(kit.clone())]).violations.is_empty());
        let report = check(&[registered(kit), reserved(1, 1, secs(0), secs(10))]);
        assert!(
            report.violations.join("\n").contains("it is a kit"),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn breaches_are_named() {
        let report = check(&[
            registered_physical(1, 0),
            reserved(1, 1, secs(0), secs(100)),
            expired(1, 1, secs(100), secs(5)),
            reserved(1, 1, secs(6), secs(100)),
            committed(7, 1, secs(7)),
            adjusted(StockChange::Delta(1), 9, 10, "recount", &[], secs(8)),
        ]);
        let text = report.violations.join("\n");
        assert!(text.contains("before its expiry"), "{text}");
        assert!(text.contains("created twice"), "{text}");
        assert!(text.contains("which is not live"), "{text}");
        assert!(text.contains("adjusts from 9"), "{text}");
    }
}

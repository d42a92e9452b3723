//! Idempotency keys: a retried request returns the outcome of the first, never a second one.
//!
//! A key is scoped to its principal (two clients may pick the same key) and to the SKU whose
//! actor keeps it. It is recognised for a retention window (default 8 days: the longest
//! hold plus a day of retries, as long as the HTTP layer remembers its requests) from the
//! event it produced.
//!
//! A key fixes the ids of the events it produces ([`event_id`]), so the log itself is the
//! record of which keys were used: on a store that indexes event ids, the actor asks it,
//! and keeps only a small cache of recent keys ([`KeyTable::cache`]). On a store that does
//! not, the actor keeps every key of the window in memory ([`KeyTable::complete`]), rebuilt
//! on recovery from the events' metadata and carried in snapshots. Either way an append
//! retried after a lost reply carries the same ids, and the store answers it without
//! writing twice.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stockade_domain::{
    Channel, Command, CustomerId, Event, EventMetadata, LocationId, OrderId, PoolConfig, Principal,
    Quantity, ReceiptRef, ReservationId, Resolution, StockChange, Timestamp, TransferId,
};
use stockade_store::StreamName;
use uuid::Uuid;

use crate::error::Error;

/// Longest idempotency key accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// Namespace of the name-based (v5) UUIDs derived from keys. Fixed forever: changing it
/// would make retries across an upgrade look like new requests.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b8e_5d1a_4c3b_9e7f_0a2d_4b6c_8e10);

/// A key as its principal sent it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyScope {
    /// Empty for requests without a principal (embedded use).
    pub principal: String,
    pub key: String,
}

impl KeyScope {
    /// Validates `key` (1-255 printable characters) and scopes it to `principal`.
    pub fn new(principal: Option<&Principal>, key: &str) -> Result<Self, Error> {
        let chars = key.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS || key.chars().any(char::is_control) {
            return Err(Error::Invalid(format!(
                "an idempotency key must be 1-{MAX_KEY_CHARS} printable characters"
            )));
        }
        Ok(Self {
            principal: principal.map(|p| p.as_str().to_owned()).unwrap_or_default(),
            key: key.to_owned(),
        })
    }

    /// The scope recorded in an event's metadata, if it carries a key.
    pub fn from_metadata(meta: &EventMetadata) -> Option<Self> {
        meta.idempotency_key.as_ref().map(|key| Self {
            principal: meta
                .principal
                .as_ref()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            key: key.clone(),
        })
    }

    /// A name-based id for whatever this key creates: the same key, scope and purpose give
    /// the same id on every node and after every restart.
    pub fn derive(&self, purpose: &str) -> Uuid {
        self.derive_in(&KEY_NAMESPACE, purpose)
    }

    /// As [`KeyScope::derive`], in another namespace (one derived from a secret).
    pub(crate) fn derive_in(&self, namespace: &Uuid, purpose: &str) -> Uuid {
        // Lengths first, so that no two (principal, key, purpose) triples share a name.
        let name = format!(
            "{}:{}:{}:{}:{purpose}",
            self.principal.len(),
            self.principal,
            self.key.len(),
            self.key
        );
        Uuid::new_v5(namespace, name.as_bytes())
    }
}

/// The id of the `index`-th event that the keyed command writes to `stream`.
pub fn event_id(scope: &KeyScope, stream: &StreamName, index: usize) -> Uuid {
    scope.derive(&format!("event:{stream}:{index}"))
}

/// What a command asks for, comparable with what an earlier command under the same key
/// recorded. The reservation id of a `Reserve` is left out: a retry made by a client that
/// lost the reply carries a fresh one, and must get the original back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fingerprint {
    Register(PoolConfig),
    Reserve {
        qty: Quantity,
        order_id: Option<OrderId>,
        channel: Channel,
        // Where a line asked its units to come from is not recorded on the event (its
        // outcome, the parts, is), so it is not compared: a retry gets the parts back.
        ttl_millis: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<CustomerId>,
    },
    Commit(ReservationId),
    Release(ReservationId),
    Expire(ReservationId),
    Extend {
        id: ReservationId,
        ttl_millis: u64,
    },
    /// Part of a hold sold (`sell`) or given back.
    Reduce {
        id: ReservationId,
        qty: Quantity,
        sell: bool,
    },
    /// A hold changed to `qty` units.
    Amend {
        id: ReservationId,
        qty: Quantity,
    },
    Adjust {
        change: StockChange,
        reason: String,
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<LocationId>,
    },
    Ship {
        transfer_id: TransferId,
        from: LocationId,
        to: LocationId,
        qty: Quantity,
    },
    Receive(TransferId),
    BackorderLimit(Quantity),
    Expect {
        reference: ReceiptRef,
        qty: Quantity,
        eta: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<LocationId>,
    },
    /// Units of a receipt arrived: `None` for all that were outstanding.
    ReceiveReceipt {
        reference: ReceiptRef,
        qty: Option<Quantity>,
    },
    CancelReceipt(ReceiptRef),
    /// Never a decision's first event, so never a key's record; here for totality.
    Filled(ReservationId),
    FairSelling {
        per_customer: Option<Quantity>,
        window_ms: u64,
        hold_ms: u64,
    },
    Join {
        customer: CustomerId,
        qty: Quantity,
        channel: Channel,
    },
    Leave(CustomerId),
    /// The engine's own serving of the waitlist: never keyed.
    Serve,
}

impl Fingerprint {
    pub fn of_command(command: &Command) -> Self {
        match command {
            Command::RegisterSku(c) => Fingerprint::Register(c.pool.clone()),
            Command::Reserve(c) => Fingerprint::Reserve {
                qty: c.qty,
                order_id: c.order_id.clone(),
                channel: c.channel.clone(),
                // Millisecond resolution, as the event records it.
                ttl_millis: u64::try_from(c.ttl.as_millis()).unwrap_or(u64::MAX),
                customer: c.customer.clone(),
            },
            Command::Commit(c) => Fingerprint::Commit(c.reservation_id),
            Command::Release(c) => Fingerprint::Release(c.reservation_id),
            Command::Expire(c) => Fingerprint::Expire(c.reservation_id),
            Command::Extend(c) => Fingerprint::Extend {
                id: c.reservation_id,
                ttl_millis: u64::try_from(c.ttl.as_millis()).unwrap_or(u64::MAX),
            },
            Command::Reduce(c) => Fingerprint::Reduce {
                id: c.reservation_id,
                qty: c.qty,
                sell: c.sell,
            },
            Command::Amend(c) => Fingerprint::Amend {
                id: c.reservation_id,
                qty: c.qty,
            },
            Command::Adjust(c) => Fingerprint::Adjust {
                change: c.change,
                reason: c.reason.clone(),
                reference: c.reference.clone(),
                location: c.location.clone(),
            },
            Command::ShipTransfer(c) => Fingerprint::Ship {
                transfer_id: c.transfer_id.clone(),
                from: c.from.clone(),
                to: c.to.clone(),
                qty: c.qty,
            },
            Command::ReceiveTransfer(c) => Fingerprint::Receive(c.transfer_id.clone()),
            Command::SetBackorderLimit(c) => Fingerprint::BackorderLimit(c.limit),
            Command::ExpectReceipt(c) => Fingerprint::Expect {
                reference: c.reference.clone(),
                qty: c.qty,
                eta: c.eta,
                location: c.location.clone(),
            },
            Command::ReceiveReceipt(c) => Fingerprint::ReceiveReceipt {
                reference: c.reference.clone(),
                qty: c.qty,
            },
            Command::CancelReceipt(c) => Fingerprint::CancelReceipt(c.reference.clone()),
            Command::SetFairSelling(c) => {
                let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                Fingerprint::FairSelling {
                    per_customer: c.per_customer,
                    // As decide records it: no window without a limit.
                    window_ms: if c.per_customer.is_some() {
                        ms(c.window)
                    } else {
                        0
                    },
                    hold_ms: ms(c.waitlist_hold),
                }
            }
            Command::JoinWaitlist(c) => Fingerprint::Join {
                customer: c.customer.clone(),
                qty: c.qty,
                channel: c.channel.clone(),
            },
            Command::LeaveWaitlist(c) => Fingerprint::Leave(c.customer.clone()),
            Command::ServeWaitlist => Fingerprint::Serve,
        }
    }

    /// The fingerprint of the command that produced `event` (exact: a reservation's TTL is
    /// `expires_at - at` because decide sets `expires_at = at + ttl`).
    pub fn of_event(event: &Event) -> Self {
        match event {
            Event::SkuRegistered(e) => Fingerprint::Register(e.pool.clone()),
            Event::StockReserved(e) => Fingerprint::Reserve {
                qty: e.qty,
                order_id: e.order_id.clone(),
                channel: e.channel.clone(),
                ttl_millis: e.expires_at.as_millis().saturating_sub(e.at.as_millis()),
                customer: e.customer.clone(),
            },
            Event::ReservationCommitted(e) => Fingerprint::Commit(e.reservation_id),
            Event::ReservationReleased(e) => Fingerprint::Release(e.reservation_id),
            Event::ReservationExpired(e) => Fingerprint::Expire(e.reservation_id),
            Event::ReservationExtended(e) => Fingerprint::Extend {
                id: e.reservation_id,
                ttl_millis: e.expires_at.as_millis().saturating_sub(e.at.as_millis()),
            },
            Event::ReservationReduced(e) => Fingerprint::Reduce {
                id: e.reservation_id,
                qty: e.qty,
                sell: e.outcome == Resolution::Committed,
            },
            Event::ReservationIncreased(e) => Fingerprint::Amend {
                id: e.reservation_id,
                qty: e.total,
            },
            Event::StockAdjusted(e) => Fingerprint::Adjust {
                change: e.change,
                reason: e.reason.clone(),
                reference: e.reference.clone(),
                location: e.location.clone(),
            },
            Event::TransferShipped(e) => Fingerprint::Ship {
                transfer_id: e.transfer_id.clone(),
                from: e.from.clone(),
                to: e.to.clone(),
                qty: e.qty,
            },
            Event::TransferReceived(e) => Fingerprint::Receive(e.transfer_id.clone()),
            Event::BackorderLimitSet(e) => Fingerprint::BackorderLimit(e.limit),
            // The location as recorded: a command that named none is matched in `answers`.
            Event::ReceiptExpected(e) => Fingerprint::Expect {
                reference: e.reference.clone(),
                qty: e.qty,
                eta: e.eta,
                location: Some(e.location.clone()),
            },
            Event::ReceiptReceived(e) => Fingerprint::ReceiveReceipt {
                reference: e.reference.clone(),
                qty: Some(e.qty),
            },
            Event::ReceiptCancelled(e) => Fingerprint::CancelReceipt(e.reference.clone()),
            Event::BackorderFilled(e) => Fingerprint::Filled(e.reservation_id),
            Event::FairSellingSet(e) => Fingerprint::FairSelling {
                per_customer: e.per_customer,
                window_ms: e.window_ms,
                hold_ms: e.waitlist_hold_ms,
            },
            Event::WaitlistJoined(e) => Fingerprint::Join {
                customer: e.customer.clone(),
                qty: e.qty,
                channel: e.channel.clone(),
            },
            Event::WaitlistLeft(e) => Fingerprint::Leave(e.customer.clone()),
        }
    }
}

impl Fingerprint {
    /// Whether the command with this fingerprint is the one that wrote `recorded`. Equal
    /// fingerprints are; so are the commands whose event is shaped by the hold they met
    /// rather than by what they asked: a reduction by the whole hold wrote its commit or
    /// release, and an amendment down wrote a reduction (or, to 0, a release).
    pub fn answers(&self, recorded: &Recorded) -> bool {
        if recorded.fingerprint == *self {
            return true;
        }
        match (self, &recorded.event) {
            (
                Fingerprint::Reduce {
                    id,
                    qty,
                    sell: true,
                },
                Event::ReservationCommitted(e),
            ) => e.reservation_id == *id && e.qty == *qty,
            (
                Fingerprint::Reduce {
                    id,
                    qty,
                    sell: false,
                },
                Event::ReservationReleased(e),
            ) => e.reservation_id == *id && e.qty == *qty,
            (Fingerprint::Amend { id, qty }, Event::ReservationReduced(e)) => {
                e.reservation_id == *id && e.outcome == Resolution::Released && e.remaining == *qty
            }
            (Fingerprint::Amend { id, qty }, Event::ReservationReleased(e)) => {
                e.reservation_id == *id && qty.is_zero()
            }
            // Where the SKU's one location was taken, or all outstanding units received.
            (
                Fingerprint::Expect {
                    reference,
                    qty,
                    eta,
                    location: None,
                },
                Event::ReceiptExpected(e),
            ) => e.reference == *reference && e.qty == *qty && e.eta == *eta,
            (
                Fingerprint::ReceiveReceipt {
                    reference,
                    qty: None,
                },
                Event::ReceiptReceived(e),
            ) => e.reference == *reference,
            _ => false,
        }
    }
}

/// The outcome recorded under a key: the event the command wrote and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub fingerprint: Fingerprint,
    pub event: Event,
    /// Stream version after the event (`stockade_store::version_after` its revision).
    pub version: u64,
}

/// Keys seen by one SKU: all of the retention window, or the most recent ones only.
#[derive(Debug, Clone)]
pub struct KeyTable {
    retention: Duration,
    /// `None`: every key of the window is here, so a miss means "never used". `Some(n)`:
    /// only the `n` most recent, and a miss must be asked of the log.
    capacity: Option<usize>,
    entries: HashMap<KeyScope, Recorded>,
    /// Insertion order by event time, for pruning. Event times never decrease along a
    /// stream, so the front is always the oldest.
    order: VecDeque<(Timestamp, KeyScope)>,
}

/// What a [`KeyTable`] knows of a key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyLookup<'a> {
    /// Used within the window, with this outcome.
    Found(&'a Recorded),
    /// Not used within the window.
    Absent,
    /// Not among the recent keys: the log knows.
    AskTheLog,
}

/// Recent keys a SKU keeps when the log answers the rest: enough for the retries that
/// follow a burst of timeouts, small enough to cost nothing per SKU.
pub const KEY_CACHE: usize = 256;

impl KeyTable {
    /// A table that holds every key of the window (for a store without an event-id index).
    pub fn complete(retention: Duration) -> Self {
        Self {
            retention,
            capacity: None,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// A cache of the `capacity` most recent keys, for a store that finds the rest.
    pub fn cache(retention: Duration, capacity: usize) -> Self {
        Self {
            capacity: Some(capacity.max(1)),
            ..Self::complete(retention)
        }
    }

    /// The table a SKU on `store` keeps.
    pub fn for_store(store: &dyn stockade_store::EventStore, retention: Duration) -> Self {
        if store.indexed() {
            Self::cache(retention, KEY_CACHE)
        } else {
            Self::complete(retention)
        }
    }

    /// Whether a miss means the key was not used (see [`KeyLookup`]).
    pub fn is_complete(&self) -> bool {
        self.capacity.is_none()
    }

    /// The outcome recorded under `scope`, unless it is older than the retention window.
    pub fn get(&self, scope: &KeyScope, now: Timestamp) -> Option<&Recorded> {
        self.entries
            .get(scope)
            .filter(|r| !self.is_past_retention(r.event.at(), now))
    }

    /// What the table knows of `scope` at `now`.
    pub fn lookup(&self, scope: &KeyScope, now: Timestamp) -> KeyLookup<'_> {
        match self.get(scope, now) {
            Some(recorded) => KeyLookup::Found(recorded),
            None if self.is_complete() => KeyLookup::Absent,
            None => KeyLookup::AskTheLog,
        }
    }

    /// Whether an outcome recorded at `at` still answers a retry at `now`.
    pub fn within_window(&self, at: Timestamp, now: Timestamp) -> bool {
        !self.is_past_retention(at, now)
    }

    /// Records the outcome of a keyed command (first outcome wins: the store never holds
    /// two events under one key, but a replayed table must not flip if it did).
    pub fn record(&mut self, scope: KeyScope, recorded: Recorded) {
        let at = recorded.event.at();
        self.prune(at);
        if !self.entries.contains_key(&scope) {
            self.order.push_back((at, scope.clone()));
            self.entries.insert(scope, recorded);
        }
        if let Some(capacity) = self.capacity {
            while self.entries.len() > capacity {
                let Some((_, oldest)) = self.order.pop_front() else {
                    break;
                };
                self.entries.remove(&oldest);
            }
        }
    }

    /// Records the key in an event read back from the store.
    pub fn observe(&mut self, event: &Event, meta: &EventMetadata, version: u64) {
        // A filled backorder follows the event that filled it, under the same key: the
        // key's record is that first event.
        if matches!(event, Event::BackorderFilled(_)) {
            return;
        }
        if let Some(scope) = KeyScope::from_metadata(meta) {
            self.record(
                scope,
                Recorded {
                    fingerprint: Fingerprint::of_event(event),
                    event: event.clone(),
                    version,
                },
            );
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries a snapshot carries (see [`Self::to_entries`]), without building
    /// them.
    pub fn snapshot_len(&self) -> usize {
        if self.is_complete() {
            self.entries.len()
        } else {
            0
        }
    }

    /// The live entries, oldest first, for a snapshot. A cache has none to keep: the log
    /// holds its keys.
    pub fn to_entries(&self) -> Vec<(KeyScope, Recorded)> {
        if !self.is_complete() {
            return Vec::new();
        }
        self.order
            .iter()
            .filter_map(|(_, scope)| self.entries.get(scope).map(|r| (scope.clone(), r.clone())))
            .collect()
    }

    /// Loads snapshot `entries` into `table`.
    pub fn with_entries(mut self, entries: Vec<(KeyScope, Recorded)>) -> Self {
        for (scope, recorded) in entries {
            self.record(scope, recorded);
        }
        self
    }

    fn is_past_retention(&self, at: Timestamp, now: Timestamp) -> bool {
        at.checked_add(self.retention)
            .is_some_and(|until| until < now)
    }

    fn prune(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.order.front() {
            if !self.is_past_retention(*at, now) {
                break;
            }
            if let Some((_, scope)) = self.order.pop_front() {
                self.entries.remove(&scope);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stockade_domain::testing::{commit, committed, reserve, reserved, secs};
    use stockade_domain::{Principal, Sku};

    use super::*;

    fn scope(principal: &str, key: &str) -> KeyScope {
        let principal = Principal::new(principal).ok();
        KeyScope::new(principal.as_ref(), key).expect("valid key")
    }

    #[test]
    fn keys_are_scoped_per_principal_and_derive_stable_ids() {
        let stream = StreamName::for_sku(&Sku::new("A").expect("sku"));
        let a = scope("alice", "k1");
        let b = scope("bob", "k1");
        assert_eq!(event_id(&a, &stream, 0), event_id(&a.clone(), &stream, 0));
        assert_ne!(event_id(&a, &stream, 0), event_id(&b, &stream, 0));
        assert_ne!(event_id(&a, &stream, 0), event_id(&a, &stream, 1));
        // No ambiguity from concatenation: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(scope("ab", "c").derive("x"), scope("a", "bc").derive("x"));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(KeyScope::new(None, "").is_err());
        assert!(KeyScope::new(None, &"k".repeat(256)).is_err());
        assert!(KeyScope::new(None, "a\nb").is_err());
        assert!(KeyScope::new(None, &"k".repeat(255)).is_ok());
    }

    #[test]
    fn a_reservation_fingerprint_is_the_same_from_command_and_event() {
        let command = reserve(1, 2, 900);
        let event = reserved(7, 2, secs(10), secs(910));
        assert_eq!(
            Fingerprint::of_command(&command),
            Fingerprint::of_event(&event)
        );
        assert_ne!(
            Fingerprint::of_command(&reserve(1, 3, 900)),
            Fingerprint::of_event(&event)
        );
        assert_eq!(
            Fingerprint::of_command(&commit(4)),
            Fingerprint::of_event(&committed(4, 1, secs(5)))
        );
    }

    #[test]
    fn entries_lapse_after_the_retention_window() {
        let mut table = KeyTable::complete(Duration::from_secs(60));
        let event = reserved(1, 1, secs(0), secs(900));
        table.observe(
            &event,
            &EventMetadata {
                idempotency_key: Some("k".into()),
                ..EventMetadata::new(Uuid::nil(), secs(0))
            },
            1,
        );
        let key = scope("", "k");
        assert!(table.get(&key, secs(60)).is_some());
        assert!(table.get(&key, secs(61)).is_none());
        // A later record prunes it for good.
        table.record(
            scope("", "other"),
            Recorded {
                fingerprint: Fingerprint::Commit(stockade_domain::testing::rid(1)),
                event: committed(1, 1, secs(120)),
                version: 2,
            },
        );
        assert_eq!(table.len(), 1);
    }
}

#[cfg(test)]
mod cache_tests {
    use std::time::Duration;

    use stockade_domain::testing::{committed, rid, secs};

    use super::*;

    fn scope(key: &str) -> KeyScope {
        KeyScope::new(None, key).expect("valid key")
    }

    fn recorded(n: u64) -> Recorded {
        Recorded {
            fingerprint: Fingerprint::Commit(rid(1)),
            event: committed(1, 1, secs(n)),
            version: n,
        }
    }

    #[test]
    fn a_cache_keeps_the_most_recent_keys_and_sends_misses_to_the_log() {
        let mut cache = KeyTable::cache(Duration::from_secs(3600), 2);
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.record(scope(key), recorded(i as u64));
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.lookup(&scope("a"), secs(3)), KeyLookup::AskTheLog);
        assert!(matches!(
            cache.lookup(&scope("c"), secs(3)),
            KeyLookup::Found(_)
        ));
        assert!(cache.to_entries().is_empty(), "a cache is not snapshotted");
        assert_eq!(cache.snapshot_len(), 0);

        let mut complete = KeyTable::complete(Duration::from_secs(3600));
        complete.record(scope("a"), recorded(0));
        assert_eq!(complete.lookup(&scope("z"), secs(1)), KeyLookup::Absent);
        assert_eq!(complete.to_entries().len(), 1);
        assert_eq!(complete.snapshot_len(), 1);
    }
}

//! The SKU actor: the single, pipelined writer of one SKU's stream.
//!
//! One state, seen from two sides (see `stockade_domain::state`):
//! - durable (`state.stock()`): exactly the events the store has acknowledged. Reads
//!   answer from it.
//! - speculative (`state.speculative()`): the durable side plus every event decided but
//!   not yet acknowledged (the batch in flight and the batch being built), staged in a
//!   small layer rather than a second copy of every hold. Decisions are taken against it,
//!   so a command never waits for the append of the one before it. An acknowledged event
//!   lands: it moves from the layer to the durable side.
//!
//! Invariants:
//! - at most one append is in flight; its expected revision is the durable version, so a
//!   second writer anywhere (another node, a stale actor) is fenced by the store;
//! - a caller is answered only after its events are durable, or with a rejection that
//!   wrote nothing, or with "outcome unknown" when the store could not say;
//! - a rejection is answered only once every event decided before it is durable: it was
//!   decided against the speculative state, and until then that state may not be the
//!   truth. (Answered at once, a refusal such as "already committed" could reach a caller
//!   before any reader can see the commit, or stand although the commit then failed: not
//!   linearizable.) If those events do not land as decided, it is decided again;
//! - an append is never forgotten while the store may still take it. Its callers are told
//!   "outcome unknown" after `append_timeout`, but the actor waits for the store's verdict
//!   (up to `ABANDON_FACTOR` times as long) before it re-reads: a release decided meanwhile
//!   is decided against the hold in flight and lands after it, so compensating a line whose
//!   append was late always wins over that append. While overdue it takes no new holds or
//!   adjustments (refused at once, nothing written) and answers commits and releases as
//!   "outcome unknown" once decided;
//! - after a conflict or a failed append the actor re-reads the stream, answers every
//!   command of the failed batch by what the store holds, and decides the rest again
//!   against the reloaded state. While it re-reads, it takes no new message.
//!
//! What only a bug could break is asserted in debug builds, so every test stops at it:
//! decided and durable events apply, an append lands right after the durable version, and
//! the durable version never passes the speculative one. A release build logs it and takes
//! the recovery path instead (the actor stops; a fresh one loads the truth from the log).
//!
//! Memory holds live state only. History is asked of the log, off the decision path:
//! - a keyed command whose key is not among the recent ones waits while the store is asked
//!   whether the key's event exists (one lookup carries every key waiting); found, it is
//!   answered with the stored outcome; not found, it is decided;
//! - a commit or release of an id that is not live is refused as unknown, unless the log
//!   (or the small ring of recent resolutions) says how it ended: then "already resolved".

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use actix::prelude::*;
use actix::{ActorFutureExt, SpawnHandle, WrapFuture};
use stockade_domain::{Channel, Sku};
use stockade_domain::{
    Command, Event, EventMetadata, Expire, Landed, OrderId, Principal, Rejection, ReservationId,
    Resolution, SkuState, StockView, Timestamp, decide,
};
use stockade_store::plan::{MAX_APPEND_BYTES, append_size};
use stockade_store::{AppendResult, EventData, ExpectedRevision, StoreError, StreamName, codec};
use uuid::Uuid;

use crate::engine::EngineCore;
use crate::error::Error;
use crate::history;
use crate::idempotency::{Fingerprint, KeyLookup, KeyScope, KeyTable, Recorded, event_id};
use crate::recovery::{self, Loaded, TailEvent};
use crate::reply::{Reply, tell};

/// Most keys one lookup asks the store about.
const KEYS_PER_LOOKUP: usize = 512;
/// An append the store has not answered after `append_timeout` times this is given up:
/// the actor stops waiting and re-reads, as for a failed append. Until then it waits, so
/// that nothing decided after the append can be decided without it.
const ABANDON_FACTOR: u32 = 6;
/// Recent durable resolutions kept to word a refusal without asking the log.
const RECENT_RESOLUTIONS: usize = 256;

/// Bytes a batch may carry, counted as the store counts them (`plan::append_size`), so
/// that every batch fits one append on every backend.
const BATCH_BYTES: usize = MAX_APPEND_BYTES;
/// An actor whose SKU turns out not to be registered stops this soon after it started, if
/// nothing is waiting on it: reads of made-up SKU ids (a public API) must not keep an
/// actor each for the whole idle timeout.
const UNREGISTERED_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Who sent a command and under what terms.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestMeta {
    pub principal: Option<Principal>,
    pub channel: Option<Channel>,
    pub scope: Option<KeyScope>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The stream version the caller read; the command is refused if it moved.
    pub expected_version: Option<u64>,
    /// The log was asked about this command's key and does not hold it.
    pub key_not_in_log: bool,
    /// The log was asked how this command's reservation ended (for a refusal's wording).
    pub history_asked: bool,
}

/// A command accepted and durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub events: Vec<Event>,
    /// Stream version after the command's last event.
    pub version: u64,
    /// The command was a retry: this is the outcome recorded under its idempotency key.
    pub replayed: bool,
    /// For a command about a hold at a SKU that takes backorders: the hold's units
    /// waiting for stock when it was answered, and when the receipt bringing the last of
    /// them is expected.
    pub backordered: stockade_domain::Quantity,
    pub eta: Option<Timestamp>,
}

/// A SKU's durable stock at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub view: StockView,
    /// Events in the SKU's stream; changes with every write.
    pub version: u64,
    /// When the latest event was decided.
    pub updated_at: Timestamp,
    /// The instant the view was computed for.
    pub as_of: Timestamp,
    /// For a kit, the SKUs its stock was derived from, each with the version read: a
    /// reader that must notice when what it read went stale watches these (a kit's own
    /// stream never changes). Empty for every other SKU.
    pub derived_from: Vec<(Sku, u64)>,
}

impl StockLevel {
    /// The streams and versions this read depends on: the SKU's own, or for a kit, the
    /// SKUs it was derived from. A reader is stale once any of them moves.
    pub fn read_versions(&self) -> Vec<(Sku, u64)> {
        if self.derived_from.is_empty() {
            vec![(self.view.sku.clone(), self.version)]
        } else {
            self.derived_from.clone()
        }
    }
}

/// One SKU's part of a reservation, as the durable state knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineStatus {
    /// Holding stock until `expires_at`.
    Live {
        qty: stockade_domain::Quantity,
        order_id: Option<OrderId>,
        expires_at: Timestamp,
        /// When it was made (an extension may not pass 7 days from it).
        reserved_at: Timestamp,
        /// The SKU is short and this hold is not covered: it may not be sold now.
        at_risk: bool,
        /// Units of it beyond what is on hand, waiting for stock (filled first in, first
        /// out); they may not be sold until filled.
        backordered: stockade_domain::Quantity,
        /// When the receipt bringing the last of those units is expected, if one is.
        eta: Option<Timestamp>,
    },
    /// Past its expiry; its `ReservationExpired` event is not written yet, but it holds
    /// nothing.
    Lapsed {
        qty: stockade_domain::Quantity,
        expires_at: Timestamp,
    },
    Resolved(stockade_domain::Resolution),
    /// Never seen, or resolved longer ago than the retention window.
    Unknown,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Execute {
    pub command: Command,
    pub request: RequestMeta,
    pub reply: Reply<Accepted>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReadStock {
    pub reply: Reply<StockLevel>,
}

/// A SKU's fair-selling rules and waitlist, and one customer's standing, from the
/// durable side.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReadFairSelling {
    pub customer: Option<stockade_domain::CustomerId>,
    /// Most places listed, first in line first.
    pub max_places: usize,
    pub reply: Reply<FairSellingView>,
}

/// What [`ReadFairSelling`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairSellingView {
    /// Units per customer, over what window.
    pub purchase_limit: Option<(stockade_domain::Quantity, std::time::Duration)>,
    pub waitlist_hold: std::time::Duration,
    /// Places on the waitlist, and the units they wait for.
    pub waiting: usize,
    pub waiting_units: stockade_domain::Quantity,
    pub places: Vec<stockade_domain::WaitlistPlace>,
    /// The customer asked about: their place, and what counts against their limit now.
    pub place: Option<stockade_domain::WaitlistPlace>,
    pub counted: Option<stockade_domain::Quantity>,
    pub version: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReadReservation {
    pub id: ReservationId,
    pub reply: Reply<LineStatus>,
}

/// The ids of the SKU's durable live holds (for recovery at start-up).
/// Stop now if nothing is in progress and no hold is live, instead of after the idle
/// timeout (a bulk load registers many SKUs nobody will use soon: their actors would
/// otherwise stay in memory for minutes).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Rest;

/// The stream reached `version` (seen by a follower of the log): re-read it if this actor
/// knows less and has no append in flight (an append in flight finds out by itself: the
/// store fences it, and the actor re-reads then).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Refresh {
    pub version: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReadLiveHolds {
    pub reply: Reply<Vec<ReservationId>>,
}

/// A decided command waiting for its events to become durable.
struct Pending {
    command: Command,
    request: RequestMeta,
    fingerprint: Fingerprint,
    events: Vec<Event>,
    event_ids: Vec<Uuid>,
    /// Encoded events; moved into the append when the batch is sent.
    data: Vec<EventData>,
    bytes: usize,
    /// `None` for the actor's own commands (expiry).
    reply: Option<Reply<Accepted>>,
    /// For a new hold at a SKU that takes backorders: its units waiting and their ETA,
    /// read when it was decided, at the end of the line (one step, not a walk of the
    /// line); holds ahead whose appends fail only move it up.
    backorder: Option<(stockade_domain::Quantity, Option<Timestamp>)>,
}

/// A refusal decided against events that are not durable yet, held until they are.
struct Deferred {
    command: Command,
    request: RequestMeta,
    reply: Reply<Accepted>,
    error: Error,
    /// The refusal stands once the durable version reaches this.
    after: u64,
}

/// A keyed command that arrived while an earlier one with the same key was undecided.
struct Follower {
    command: Command,
    request: RequestMeta,
    reply: Reply<Accepted>,
}

/// A key with a command in progress: being looked up in the log (`decided` is `None`), or
/// decided and not yet durable. Commands under the same key wait here for its outcome.
struct PendingKey {
    decided: Option<Fingerprint>,
    waiting: Vec<Follower>,
}

/// A refusal to be worded once the log says how its reservation ended.
struct Unworded {
    command: Command,
    request: RequestMeta,
    reply: Reply<Accepted>,
    error: Error,
    id: ReservationId,
}

enum AppendFailure {
    Store(StoreError),
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Loading,
    Ready,
    Stopping,
}

pub(crate) struct SkuActor {
    sku: Sku,
    stream: StreamName,
    shared: Arc<EngineCore>,
    waiting: Arc<AtomicUsize>,
    /// `durable_version`, published for `EngineCore::observe` (read without a message).
    published: Arc<std::sync::atomic::AtomicU64>,
    phase: Phase,
    /// Durable events applied, decided ones staged on top.
    state: SkuState,
    durable_version: u64,
    speculative_version: u64,
    keys: KeyTable,
    /// Keys with a command in progress, with retries that arrived meanwhile.
    pending_keys: HashMap<KeyScope, PendingKey>,
    /// Keys to ask the log about, and whether a lookup is in flight (at most one).
    key_lookups: Vec<KeyScope>,
    key_lookup_in_flight: bool,
    /// Keys to ask about again once the append in flight is answered (see
    /// `keys_looked_up`).
    parked_lookups: Vec<KeyScope>,
    /// Refusals waiting for the log to word them; each is asked on its own (a rare path).
    unworded: Vec<Unworded>,
    /// The latest durable resolutions, newest last.
    recent: VecDeque<(ReservationId, Resolution)>,
    queued: VecDeque<Pending>,
    in_flight: Option<Vec<Pending>>,
    /// Refusals waiting for the events they were decided against; `after` never falls
    /// along the queue.
    deferred: VecDeque<Deferred>,
    timer: Option<(Timestamp, SpawnHandle)>,
    snapshot_version: u64,
    snapshot_in_flight: bool,
    last_active: Instant,
    /// An append of this actor timed out or failed without a verdict, so it may still
    /// land. A keyed command decided again carries the same event ids, and the store
    /// would take it for a retry of the stored one: from then on, a batch with keyed
    /// commands is confirmed by re-reading what the store holds.
    uncertain: bool,
    /// Counts appends sent, so that a deadline armed for one append knows whether that
    /// append is still the one in flight.
    appends_sent: u64,
    /// The append in flight has outlived `append_timeout`: its callers were told "outcome
    /// unknown", and the actor keeps waiting for the store's verdict (see `overdue`).
    overdue: bool,
    /// Inside `serve_waitlist`: the decisions it makes do not start another round.
    serving: bool,
    /// The timer that makes the append in flight overdue; cancelled when it is answered.
    deadline: Option<SpawnHandle>,
}

impl Actor for SkuActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The mailbox bound is enforced by `Reply` (see reply.rs); actix's own capacity
        // parks per sender and would not bound many callers.
        let store = self.shared.store.clone();
        let stream = self.stream.clone();
        let retention = self.shared.config.idempotency_retention;
        let patience = self.shared.config.append_timeout;
        // `wait`: no message is handled until the state is loaded.
        ctx.wait(
            async move {
                tokio::time::timeout(patience, recovery::load(&store, &stream, retention))
                    .await
                    .unwrap_or_else(|_| Err(timed_out("loading the SKU", patience)))
            }
            .into_actor(self)
            .map(|loaded, act, ctx| act.loaded(loaded, ctx)),
        );
        let every = (self.shared.config.idle_timeout / 2).max(std::time::Duration::from_millis(5));
        ctx.run_interval(every, |act, ctx| act.maybe_passivate(ctx));
        ctx.run_later(
            UNREGISTERED_GRACE.min(self.shared.config.idle_timeout),
            |act, ctx| act.maybe_drop_unregistered(ctx),
        );
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.shared.registry.forget(&self.sku, &self.waiting);
    }
}

impl SkuActor {
    pub(crate) fn new(
        sku: Sku,
        shared: Arc<EngineCore>,
        waiting: Arc<AtomicUsize>,
        published: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let retention = shared.config.idempotency_retention;
        let keys = KeyTable::for_store(shared.store.as_ref(), retention);
        Self {
            stream: StreamName::for_sku(&sku),
            sku,
            shared,
            waiting,
            published,
            phase: Phase::Loading,
            state: SkuState::default(),
            durable_version: 0,
            speculative_version: 0,
            keys,
            pending_keys: HashMap::new(),
            key_lookups: Vec::new(),
            key_lookup_in_flight: false,
            parked_lookups: Vec::new(),
            unworded: Vec::new(),
            recent: VecDeque::new(),
            queued: VecDeque::new(),
            deferred: VecDeque::new(),
            in_flight: None,
            timer: None,
            snapshot_version: 0,
            snapshot_in_flight: false,
            last_active: Instant::now(),
            uncertain: false,
            appends_sent: 0,
            overdue: false,
            serving: false,
            deadline: None,
        }
    }

    fn loaded(&mut self, loaded: Result<Loaded, StoreError>, ctx: &mut Context<Self>) {
        match loaded {
            Ok(l) => {
                self.state = l.state;
                self.durable_version = l.version;
                self.publish_version();
                self.speculative_version = l.version;
                self.keys = l.keys;
                self.snapshot_version = l.snapshot_version;
                self.phase = Phase::Ready;
                self.arm_timer(ctx);
                // A long replay is paid once: the next load starts from here.
                self.maybe_snapshot(ctx);
                // Stock freed while no writer ran (a crash between a release and the
                // serving it calls for) goes to the waitlist now.
                self.serve_waitlist();
                self.flush(ctx);
            }
            Err(e) => {
                // Nothing was decided yet: callers get Unavailable and the next command
                // starts a fresh actor that tries the store again.
                tracing::error!(sku = %self.sku, error = %e, "cannot load SKU");
                self.fail_everything(ctx, &Error::store("load the SKU", &e));
            }
        }
    }

    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    fn publish_version(&self) {
        self.published
            .store(self.durable_version, Ordering::Release);
    }

    fn error_from(&self, rejection: stockade_domain::Rejection) -> Error {
        Error::Rejected {
            sku: self.sku.clone(),
            rejection,
        }
    }

    /// Decides one command against the speculative state and queues its events.
    fn admit(&mut self, command: Command, request: RequestMeta, reply: Option<Reply<Accepted>>) {
        let now = self.now();
        let fingerprint = Fingerprint::of_command(&command);
        if let Some(scope) = &request.scope {
            if let Some(pending) = self.pending_keys.get_mut(scope) {
                match (reply, &pending.decided) {
                    (Some(reply), Some(decided)) if *decided != fingerprint => {
                        reply.send(Err(Error::KeyReused {
                            key: scope.key.clone(),
                        }))
                    }
                    (Some(reply), _) => pending.waiting.push(Follower {
                        command,
                        request,
                        reply,
                    }),
                    (None, _) => {}
                }
                return;
            }
            match self.keys.lookup(scope, now) {
                KeyLookup::Found(recorded) => {
                    let answer = answer_retry(recorded, &fingerprint, scope);
                    tell(reply, answer.map(|a| self.with_backorder(a)));
                    return;
                }
                KeyLookup::AskTheLog if !request.key_not_in_log => {
                    if let Some(reply) = reply {
                        self.key_lookups.push(scope.clone());
                        self.pending_keys.insert(
                            scope.clone(),
                            PendingKey {
                                decided: None,
                                waiting: vec![Follower {
                                    command,
                                    request,
                                    reply,
                                }],
                            },
                        );
                    }
                    return;
                }
                KeyLookup::Absent | KeyLookup::AskTheLog => {}
            }
        }
        if let Some(expected) = request.expected_version
            && expected != self.speculative_version
        {
            let error = Error::Conflict {
                sku: self.sku.clone(),
                expected,
                actual: self.speculative_version,
            };
            return self.refuse(command, request, reply, error);
        }
        if self.overdue
            && matches!(
                command,
                Command::Reserve(_)
                    | Command::RegisterSku(_)
                    | Command::Adjust(_)
                    | Command::Amend(_)
                    | Command::Extend(_)
                    | Command::ServeWaitlist
            )
        {
            // Nothing is decided (a retry of the overdue command's key waits above): the caller knows nothing was written, and no new hold
            // piles up behind an append the store may never take.
            tell(
                reply,
                Err(Error::Unavailable(format!(
                    "the store has not answered {}'s last append; nothing was written: \
                     retry shortly",
                    self.sku
                ))),
            );
            return;
        }
        let events = match decide(&self.state, &command, now) {
            Ok(events) => events,
            Err(rejection) => {
                let error = self.error_from(rejection);
                return self.refuse(command, request, reply, error);
            }
        };
        let (data, event_ids) = match encode_decided(&events, &request, &self.stream, now) {
            Ok(encoded) => encoded,
            Err(e) => {
                tell(reply, Err(e));
                return;
            }
        };
        let bytes: usize = data.iter().map(append_size).fold(0, usize::saturating_add);
        if bytes > BATCH_BYTES {
            // No append could carry it: refuse it before it touches any state.
            tell(
                reply,
                Err(Error::Invalid(format!(
                    "the command's events take {bytes} bytes, more than one append may carry"
                ))),
            );
            return;
        }
        // decide's contract: its events apply. Checked anyway, on a copy-free path: staging
        // validates before it mutates, so a failure leaves the state as it was.
        for (applied, event) in events.iter().enumerate() {
            if let Err(e) = self.state.stage(event) {
                debug_assert!(false, "{}: a decided event does not apply: {e}", self.sku);
                tracing::error!(sku = %self.sku, error = %e, "decided event does not apply");
                if applied > 0 {
                    // Cannot happen (decide's events apply in order); rebuild to be safe.
                    self.rebuild_speculative();
                }
                tell(reply, Err(Error::Unavailable(format!("internal: {e}"))));
                return;
            }
        }
        self.speculative_version += events.len() as u64;
        let backorder = match (events.first(), self.state.speculative()) {
            (Some(Event::StockReserved(e)), Some(stock)) if !stock.backorder_limit().is_zero() => {
                Some(stock.backorder_of(&e.reservation_id))
            }
            _ => None,
        };
        if let Some(scope) = &request.scope {
            self.pending_keys.insert(
                scope.clone(),
                PendingKey {
                    decided: Some(fingerprint.clone()),
                    waiting: Vec::new(),
                },
            );
        }
        let mut reply = reply.map(|mut r| {
            r.mark_decided();
            r
        });
        if self.overdue {
            // Decided behind an append with no verdict yet: so is its outcome.
            tell(reply.take(), Err(self.unknown_outcome()));
        }
        self.queued.push_back(Pending {
            command,
            request,
            fingerprint,
            events,
            event_ids,
            data,
            bytes,
            reply,
            backorder,
        });
        self.serve_waitlist();
    }

    /// Gives freed stock to the waitlist, first in first out, before anything else is
    /// decided: after every decision (a release, an expiry, a count, a receipt may have
    /// freed units), on load, and after a re-read. Each serving is a decision in the same
    /// pipeline (up to `MAX_SERVED_PER_DECISION` places), so a waiter's hold is durable
    /// before its notice goes out. Loops rather than recursing: an expiry storm may serve
    /// thousands in a row.
    fn serve_waitlist(&mut self) {
        if self.serving || self.phase != Phase::Ready || self.overdue {
            return;
        }
        self.serving = true;
        loop {
            let waiting = self
                .state
                .speculative()
                .is_some_and(|s| s.waitlist_len().0 > 0);
            if !waiting {
                break;
            }
            let before = self.speculative_version;
            let request = RequestMeta {
                causation_id: Some("waitlist".into()),
                ..RequestMeta::default()
            };
            // A refusal (no one can be served now) writes nothing and answers no one.
            self.admit(Command::ServeWaitlist, request, None);
            if self.speculative_version == before {
                break;
            }
        }
        self.serving = false;
    }

    /// Answers a refusal decided against the speculative state: at once if that state is
    /// durable, else once it is (see the module's invariants).
    fn refuse(
        &mut self,
        command: Command,
        request: RequestMeta,
        reply: Option<Reply<Accepted>>,
        mut error: Error,
    ) {
        let not_live = match (&error, &command) {
            (
                Error::Rejected {
                    rejection: Rejection::UnknownReservation { reservation_id },
                    ..
                },
                Command::Commit(_)
                | Command::Release(_)
                | Command::Extend(_)
                | Command::Reduce(_)
                | Command::Amend(_),
            ) if reply.is_some() => Some(*reservation_id),
            _ => None,
        };
        if let Some(id) = not_live {
            // Not live: never held here, or resolved. Say which if anything knows.
            match self
                .pending_resolution(id)
                .or_else(|| self.recent_resolution(id))
            {
                Some(resolution) => {
                    error = self.error_from(Rejection::AlreadyResolved {
                        reservation_id: id,
                        resolution,
                    })
                }
                None if !request.history_asked => {
                    if let Some(reply) = reply {
                        self.unworded.push(Unworded {
                            command,
                            request,
                            reply,
                            error,
                            id,
                        });
                    }
                    return;
                }
                None => {}
            }
        }
        match reply {
            Some(reply) if self.overdue && self.speculative_version > self.durable_version => {
                reply.send(Err(self.unknown_outcome()));
            }
            Some(reply) if self.speculative_version > self.durable_version => {
                self.deferred.push_back(Deferred {
                    command,
                    request,
                    reply,
                    error,
                    after: self.speculative_version,
                });
            }
            reply => tell(reply, Err(error)),
        }
    }

    /// How `id` ends in the decided but not yet durable events, if it does.
    fn pending_resolution(&self, id: ReservationId) -> Option<Resolution> {
        let pending = self.in_flight.iter().flatten().chain(self.queued.iter());
        pending
            .flat_map(|p| p.events.iter())
            .filter_map(|e| history::resolution_of(e).filter(|(r, _)| *r == id))
            .map(|(_, resolution)| resolution)
            .next_back()
    }

    /// How `id` ended, if it is among the recent durable resolutions.
    fn recent_resolution(&self, id: ReservationId) -> Option<Resolution> {
        self.recent
            .iter()
            .rev()
            .find(|(r, _)| *r == id)
            .map(|(_, resolution)| *resolution)
    }

    /// Notes the resolutions among durable events, for the refusals' wording.
    fn note_durable<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        for (id, resolution) in events.into_iter().filter_map(history::resolution_of) {
            if self.recent.len() == RECENT_RESOLUTIONS {
                self.recent.pop_front();
            }
            self.recent.push_back((id, resolution));
        }
    }

    /// Starts the lookups that wait: the keys not among the recent ones (one lookup for
    /// all of them), and how refused reservations ended.
    fn ask_the_log(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Ready {
            return;
        }
        let patience = self.shared.config.append_timeout;
        for u in std::mem::take(&mut self.unworded) {
            let store = self.shared.store.clone();
            let stream = self.stream.clone();
            ctx.spawn(
                async move {
                    let asked = history::resolution_in_log(&store, &stream, u.id);
                    let found = tokio::time::timeout(patience, asked).await;
                    (u, found)
                }
                .into_actor(self)
                .map(|(u, found), act, ctx| {
                    let mut request = u.request;
                    request.history_asked = true;
                    let error = match found {
                        Ok(Ok(Some(resolution))) => act.error_from(Rejection::AlreadyResolved {
                            reservation_id: u.id,
                            resolution,
                        }),
                        // Nothing known, or the log could not say: the refusal stands as it
                        // was decided (the id is not live here, which is what matters).
                        _ => u.error,
                    };
                    act.refuse(u.command, request, Some(u.reply), error);
                    act.flush(ctx);
                }),
            );
        }
        if self.in_flight.is_none() {
            let parked = std::mem::take(&mut self.parked_lookups);
            self.key_lookups.extend(parked);
        }
        if self.key_lookup_in_flight || self.key_lookups.is_empty() {
            return;
        }
        let take = self.key_lookups.len().min(KEYS_PER_LOOKUP);
        let scopes: Vec<KeyScope> = self.key_lookups.drain(..take).collect();
        let ids: Vec<Uuid> = scopes
            .iter()
            .map(|scope| event_id(scope, &self.stream, 0))
            .collect();
        self.key_lookup_in_flight = true;
        let store = self.shared.store.clone();
        let stream = self.stream.clone();
        ctx.spawn(
            async move {
                let found = tokio::time::timeout(patience, store.find_events(&stream, &ids))
                    .await
                    .unwrap_or_else(|_| Err(timed_out("looking up idempotency keys", patience)));
                (scopes, found)
            }
            .into_actor(self)
            .map(|(scopes, found), act, ctx| act.keys_looked_up(scopes, found, ctx)),
        );
    }

    /// Answers or decides the commands whose keys the log was asked about.
    fn keys_looked_up(
        &mut self,
        scopes: Vec<KeyScope>,
        found: Result<Vec<stockade_store::RecordedEvent>, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        self.key_lookup_in_flight = false;
        let now = self.now();
        // A key's event at or past the durable version is one this actor never saw land
        // (an append that timed out and landed later): the actor is behind the log. Its
        // commands wait while it catches up: at once if no append is in flight, else when
        // that append meets the moved stream. Caught up, their keys are among the recent.
        // Only keys still waiting count: one decided since (after a resync) may be this
        // actor's own append in flight.
        let waiting: Vec<KeyScope> = scopes
            .iter()
            .filter(|s| {
                self.pending_keys
                    .get(*s)
                    .is_some_and(|p| p.decided.is_none())
            })
            .cloned()
            .collect();
        let waiting_ids: Vec<Uuid> = waiting
            .iter()
            .map(|scope| event_id(scope, &self.stream, 0))
            .collect();
        let behind = found.as_ref().is_ok_and(|events| {
            events
                .iter()
                .any(|e| e.revision >= self.durable_version && waiting_ids.contains(&e.event_id))
        });
        if behind {
            if self.in_flight.is_none() {
                self.shared.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                self.resync(ctx, None);
            } else {
                // The append in flight meets the moved stream and the re-read follows;
                // should it land after all, these are asked again then.
                self.parked_lookups.extend(waiting);
            }
            return;
        }
        for scope in scopes {
            // Gone (a resync or a failure answered it) or decided since: nothing to do.
            if self
                .pending_keys
                .get(&scope)
                .is_none_or(|p| p.decided.is_some())
            {
                continue;
            }
            let Some(pending) = self.pending_keys.remove(&scope) else {
                continue;
            };
            let id = event_id(&scope, &self.stream, 0);
            let stored = found.as_ref().map(|events| {
                // A key used again after its window has more than one event: the latest.
                events.iter().rev().find(|e| e.event_id == id)
            });
            let recorded = match stored {
                Ok(Some(event)) => match codec::decode(event) {
                    Ok((event_body, _)) if self.keys.within_window(event_body.at(), now) => {
                        Ok(Some(Recorded {
                            fingerprint: Fingerprint::of_event(&event_body),
                            event: event_body,
                            version: event.version(),
                        }))
                    }
                    Ok(_) => Ok(None),
                    Err(e) => Err(Error::Unavailable(format!(
                        "{}: the event of idempotency key {:?} is unreadable: {e}",
                        self.stream, scope.key
                    ))),
                },
                Ok(None) => Ok(None),
                Err(e) => Err(Error::store("look up an idempotency key", e)),
            };
            match recorded {
                Ok(Some(recorded)) => {
                    for f in pending.waiting {
                        let fingerprint = Fingerprint::of_command(&f.command);
                        let answer = answer_retry(&recorded, &fingerprint, &scope);
                        f.reply.send(answer.map(|a| self.with_backorder(a)));
                    }
                    self.keys.record(scope, recorded);
                }
                Ok(None) => {
                    for f in pending.waiting {
                        let mut request = f.request;
                        request.key_not_in_log = true;
                        self.admit(f.command, request, Some(f.reply));
                    }
                }
                Err(error) => {
                    for f in pending.waiting {
                        f.reply.send(Err(error.clone()));
                    }
                }
            }
        }
        self.flush(ctx);
        self.arm_timer(ctx);
    }

    /// Answers the refusals whose premises are now durable.
    fn settle_deferred(&mut self) {
        while self
            .deferred
            .front()
            .is_some_and(|d| d.after <= self.durable_version)
        {
            if let Some(d) = self.deferred.pop_front() {
                d.reply.send(Err(d.error));
            }
        }
    }

    /// Rebuilds the speculative state from the durable one plus everything still pending.
    fn rebuild_speculative(&mut self) {
        self.state.discard_staged();
        self.speculative_version = self.durable_version;
        let pending = self.in_flight.iter().flatten().chain(self.queued.iter());
        for p in pending {
            for event in &p.events {
                if self.state.stage(event).is_ok() {
                    self.speculative_version += 1;
                }
            }
        }
    }

    /// Sends the queued batch if no append is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.ask_the_log(ctx);
        if self.phase != Phase::Ready || self.in_flight.is_some() || self.queued.is_empty() {
            return;
        }
        let max_events = self.shared.config.max_batch_events;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut events = 0usize;
        while let Some(next) = self.queued.front() {
            let fits = bytes + next.bytes <= BATCH_BYTES && events + next.data.len() <= max_events;
            if !batch.is_empty() && !fits {
                break;
            }
            let Some(mut p) = self.queued.pop_front() else {
                break;
            };
            bytes += p.bytes;
            events += p.data.len();
            batch.push(std::mem::take(&mut p.data));
            self.in_flight.get_or_insert_with(Vec::new).push(p);
        }
        let data: Vec<EventData> = batch.into_iter().flatten().collect();
        let expected = ExpectedRevision::at_version(self.durable_version);
        let store = self.shared.store.clone();
        let stream = self.stream.clone();
        let answer_by = self.shared.config.append_timeout;
        let abandon = answer_by.saturating_mul(ABANDON_FACTOR);
        self.appends_sent += 1;
        let sent = self.appends_sent;
        ctx.spawn(
            async move {
                match tokio::time::timeout(abandon, store.append(&stream, expected, data)).await {
                    Ok(result) => result.map_err(AppendFailure::Store),
                    Err(_) => Err(AppendFailure::TimedOut),
                }
            }
            .into_actor(self)
            .map(|result, act, ctx| act.appended(result, ctx)),
        );
        // One deadline at a time, cancelled when the append is answered: a context polls
        // every future it holds, so timers left to expire would pile up under load.
        let deadline = ctx.run_later(answer_by, move |act, _| {
            act.deadline = None;
            if act.appends_sent == sent && act.in_flight.is_some() {
                act.answer_overdue();
            }
        });
        if let Some(previous) = self.deadline.replace(deadline) {
            ctx.cancel_future(previous);
        }
    }

    /// The append in flight has not been answered in `append_timeout`: every caller
    /// waiting on it, or on a command queued or refused behind it, hears "outcome unknown"
    /// now. Their commands stay as decided; the store's verdict settles them.
    fn answer_overdue(&mut self) {
        self.overdue = true;
        let error = self.unknown_outcome();
        let pending = self.in_flight.iter_mut().flatten();
        for p in pending.chain(self.queued.iter_mut()) {
            tell(p.reply.take(), Err(error.clone()));
        }
        // A refusal decided against the overdue events may not stand: no verdict either.
        for d in self.deferred.drain(..) {
            d.reply.send(Err(error.clone()));
        }
    }

    fn unknown_outcome(&self) -> Error {
        Error::Unavailable(format!(
            "the store has not answered an append of {} within {:?}; the outcome is unknown: \
             retry with the same idempotency key to learn it",
            self.sku, self.shared.config.append_timeout
        ))
    }

    fn appended(&mut self, result: Result<AppendResult, AppendFailure>, ctx: &mut Context<Self>) {
        self.overdue = false;
        if let Some(deadline) = self.deadline.take() {
            ctx.cancel_future(deadline);
        }
        match result {
            Ok(landed) => {
                let keyed = self
                    .in_flight
                    .iter()
                    .flatten()
                    .any(|p| p.request.scope.is_some());
                if landed.deduplicated || (self.uncertain && keyed) {
                    // The store holds events under these ids that it did not write now:
                    // an earlier append of the same keyed command (by this actor before
                    // a timeout, or by one that stopped) landed first. What it holds is
                    // the truth, and may differ from what was decided here (another
                    // instant, another expiry): answer and fold what is stored.
                    self.shared.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    return self.resync(ctx, None);
                }
                let batch = self.in_flight.take().unwrap_or_default();
                if self.made_durable(batch, landed.revision) {
                    self.after_progress(ctx);
                } else {
                    self.stop(ctx);
                }
            }
            Err(failure) => {
                let cause = match &failure {
                    AppendFailure::Store(StoreError::Conflict { .. }) => {
                        self.shared.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    AppendFailure::Store(e) => Some(Error::store("append", e)),
                    AppendFailure::TimedOut => Some(Error::store(
                        "append",
                        &timed_out(
                            "the append",
                            self.shared
                                .config
                                .append_timeout
                                .saturating_mul(ABANDON_FACTOR),
                        ),
                    )),
                };
                if cause.is_some() {
                    self.uncertain = true;
                }
                self.shared.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                self.resync(ctx, cause);
            }
        }
    }

    /// Folds an acknowledged batch into the durable state and answers its callers.
    /// `last_revision` is the revision of the batch's last event. Returns `false` when the
    /// store's answer does not fit the durable state: the callers are still answered (their
    /// events are durable), but the actor must stop so that a fresh one reloads the truth.
    fn made_durable(&mut self, batch: Vec<Pending>, last_revision: u64) -> bool {
        let events: u64 = batch.iter().map(|p| p.events.len() as u64).sum();
        let first = stockade_store::version_after(last_revision).checked_sub(events);
        let mut sound = first == Some(self.durable_version);
        if !sound {
            // The append expected revision `durable_version - 1`, so the store can only
            // have put it right after: anything else is a bug here or in the backend.
            debug_assert!(
                false,
                "{}: {events} events landed up to revision {last_revision}, \
                 but the durable version was {}",
                self.sku, self.durable_version
            );
            tracing::error!(
                sku = %self.sku,
                last_revision,
                durable = self.durable_version,
                "append landed at an unexpected revision"
            );
        }
        let mut version = first.unwrap_or(self.durable_version);
        self.shared.stats.record_batch(batch.len() as u64, events);
        self.note_durable(batch.iter().flat_map(|p| p.events.iter()));
        let mut restage = false;
        for p in batch {
            for event in &p.events {
                if sound {
                    match self.state.land(event) {
                        Ok(Landed::Kept) => {}
                        Ok(Landed::Dropped) => restage = true,
                        Err(e) => {
                            debug_assert!(
                                false,
                                "{}: a durable event does not apply: {e}",
                                self.sku
                            );
                            tracing::error!(sku = %self.sku, error = %e, "durable event does not apply");
                            sound = false;
                        }
                    }
                }
                version += 1;
            }
            self.durable_version = version;
            // What is durable was decided first: the speculative side is never behind.
            debug_assert!(
                !sound || self.durable_version <= self.speculative_version,
                "{}: durable version {} passed the speculative {}",
                self.sku,
                self.durable_version,
                self.speculative_version
            );
            self.publish_version();
            self.answer(p, None, version, false);
        }
        if sound && restage {
            // The layer no longer matched (the SKU's registration landed, or a decided
            // event had not staged): stage what is still pending again.
            self.rebuild_speculative();
        }
        self.settle_deferred();
        sound
    }

    /// `accepted` with what its hold has waiting for stock, at a SKU that takes backorders
    /// (read from the durable state: the hold's place in line is fixed by those ahead).
    fn with_backorder(&self, mut accepted: Accepted) -> Accepted {
        if let Some(stock) = self.state.stock()
            && !stock.backorder_limit().is_zero()
            && let Some(id) = accepted.events.first().and_then(Event::reservation_id)
        {
            (accepted.backordered, accepted.eta) = stock.backorder_of(&id);
        }
        accepted
    }

    /// Records a durable command's key and answers it and any retries that waited on it.
    /// `stored`: the events as read back from the store, when the answer comes from a
    /// re-read (they are the truth if they differ from what this actor decided).
    fn answer(&mut self, p: Pending, stored: Option<Vec<Event>>, version: u64, replayed: bool) {
        let accepted = Accepted {
            events: stored.unwrap_or(p.events),
            version,
            replayed,
            backordered: stockade_domain::Quantity::ZERO,
            eta: None,
        };
        let accepted = match p.backorder {
            Some((backordered, eta)) => Accepted {
                backordered,
                eta,
                ..accepted
            },
            None => self.with_backorder(accepted),
        };
        // The decision's first event is its answer (those after it, such as backorders it
        // filled, follow from it), as a key recovered from the log finds it.
        if let Some(scope) = p.request.scope
            && let Some(first) = accepted.events.first()
        {
            self.keys.record(
                scope.clone(),
                Recorded {
                    fingerprint: p.fingerprint,
                    event: first.clone(),
                    version,
                },
            );
            if let Some(pending) = self.pending_keys.remove(&scope) {
                for f in pending.waiting {
                    f.reply.send(Ok(Accepted {
                        replayed: true,
                        ..accepted.clone()
                    }));
                }
            }
        }
        tell(p.reply, Ok(accepted));
    }

    /// Re-reads the stream after a failed append, then answers the failed batch by what
    /// landed and decides everything else again. `cause` is `None` for a conflict.
    fn resync(&mut self, ctx: &mut Context<Self>, cause: Option<Error>) {
        let store = self.shared.store.clone();
        let stream = self.stream.clone();
        let from = self.durable_version;
        let patience = self.shared.config.append_timeout;
        ctx.wait(
            async move {
                tokio::time::timeout(patience, recovery::read_tail(&store, &stream, from))
                    .await
                    .unwrap_or_else(|_| Err(timed_out("re-reading the stream", patience)))
            }
            .into_actor(self)
            .map(move |tail, act, ctx| act.resynced(tail, cause, ctx)),
        );
    }

    fn resynced(
        &mut self,
        tail: Result<Vec<TailEvent>, StoreError>,
        cause: Option<Error>,
        ctx: &mut Context<Self>,
    ) {
        let tail = match tail {
            Ok(tail) => tail,
            Err(e) => {
                tracing::error!(sku = %self.sku, error = %e, "cannot re-read after a failed append");
                let error = cause.unwrap_or_else(|| Error::store("re-read", &e));
                return self.fail_everything(ctx, &error);
            }
        };
        if let Err(reason) = recovery::fold_tail(&mut self.state, &mut self.keys, &tail) {
            tracing::error!(sku = %self.sku, %reason, "stream contradicts the durable state");
            return self.fail_everything(
                ctx,
                &Error::Unavailable(format!("{} is inconsistent: {reason}", self.stream)),
            );
        }
        self.durable_version += tail.len() as u64;
        self.publish_version();
        self.note_durable(tail.iter().map(|t| &t.event));
        if cause.is_none() && tail.is_empty() && !self.uncertain {
            // A conflict, yet nothing after our version: the store and this actor disagree
            // on where the stream ends. Deciding again would conflict forever; reload.
            tracing::error!(sku = %self.sku, durable = self.durable_version, "conflict with no new events; reloading");
            return self.fail_everything(
                ctx,
                &Error::Unavailable(format!("{} moved under the engine; retry", self.stream)),
            );
        }
        let landed: HashMap<Uuid, &TailEvent> = tail.iter().map(|t| (t.event_id, t)).collect();
        let batch = self.in_flight.take().unwrap_or_default();
        let mut redo: Vec<(Command, RequestMeta, Option<Reply<Accepted>>)> = Vec::new();
        let (mut landed_commands, mut landed_events) = (0u64, 0u64);
        for p in batch {
            // Appends are atomic: either every event of the batch landed or none did.
            let stored: Option<Vec<&TailEvent>> = p
                .event_ids
                .iter()
                .map(|id| landed.get(id).copied())
                .collect();
            match (stored, &cause) {
                (Some(stored), _) if !stored.is_empty() => {
                    landed_commands += 1;
                    landed_events += p.events.len() as u64;
                    let version = stored.last().map_or(self.durable_version, |t| t.version);
                    let events = stored.iter().map(|t| t.event.clone()).collect();
                    self.answer(p, Some(events), version, false);
                }
                // A conflict, and this command is not in the log: decide it again.
                (_, None) => redo.push((p.command, p.request, p.reply)),
                // Not there now, but a timed-out append may still land: the caller must
                // retry with its key to learn the outcome, which the fence keeps single.
                (_, Some(error)) => {
                    tell(p.reply, Err(error.clone()));
                }
            }
        }
        if landed_commands > 0 {
            self.shared
                .stats
                .record_batch(landed_commands, landed_events);
        }
        // Refusals decided against the failed batch: their premise is gone; decide them
        // again, before the commands queued after them.
        redo.extend(
            self.deferred
                .drain(..)
                .map(|d| (d.command, d.request, Some(d.reply))),
        );
        redo.extend(
            self.queued
                .drain(..)
                .map(|p| (p.command, p.request, p.reply)),
        );
        // A hold, registration, adjustment or change of a hold whose caller was already
        // told "outcome unknown" (it was overdue) and that did not land is dropped, not
        // decided again: nothing new is written for a caller that has stopped waiting.
        // Commits, releases and partial ones are decided again: their callers' intent
        // stands (a compensation must win).
        redo.retain(|(command, _, reply)| {
            reply.is_some()
                || matches!(
                    command,
                    Command::Commit(_)
                        | Command::Release(_)
                        | Command::Reduce(_)
                        | Command::Expire(_)
                )
        });
        // Keys being looked up are asked again when their commands are admitted again.
        self.key_lookups.clear();
        self.parked_lookups.clear();
        let followers: Vec<Follower> = self
            .pending_keys
            .drain()
            .flat_map(|(_, p)| p.waiting)
            .collect();
        self.state.discard_staged();
        self.speculative_version = self.durable_version;
        for (command, request, reply) in redo {
            // Undecided again: a re-decision may now reject it, which is its answer.
            self.admit(command, request, reply);
        }
        for f in followers {
            self.admit(f.command, f.request, Some(f.reply));
        }
        self.serve_waitlist();
        self.after_progress(ctx);
    }

    /// Answers everything waiting with `error` and stops; a fresh actor reloads.
    fn fail_everything(&mut self, ctx: &mut Context<Self>, error: &Error) {
        let pending = self.in_flight.take().into_iter().flatten();
        for p in pending.chain(self.queued.drain(..)) {
            tell(p.reply, Err(error.clone()));
        }
        for d in self.deferred.drain(..) {
            d.reply.send(Err(error.clone()));
        }
        for (_, pending) in self.pending_keys.drain() {
            for f in pending.waiting {
                f.reply.send(Err(error.clone()));
            }
        }
        self.key_lookups.clear();
        self.parked_lookups.clear();
        for u in self.unworded.drain(..) {
            u.reply.send(Err(error.clone()));
        }
        self.stop(ctx);
    }

    fn stop(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Stopping;
        self.shared.registry.forget(&self.sku, &self.waiting);
        ctx.stop();
    }

    /// After the durable state moved: snapshot if due, re-arm expiry, send the next batch.
    fn after_progress(&mut self, ctx: &mut Context<Self>) {
        self.maybe_snapshot(ctx);
        self.arm_timer(ctx);
        self.flush(ctx);
    }

    fn maybe_snapshot(&mut self, ctx: &mut Context<Self>) {
        if self.snapshot_in_flight {
            return;
        }
        let size = self
            .state
            .stock()
            .map_or(0, |s| s.live_count() + s.account_count())
            + self.keys.snapshot_len();
        // Never more often than the state's own size (live holds, remembered resolutions,
        // keys): a snapshot costs O(size), so its cost per event stays constant however
        // large the SKU grows.
        let due = self.shared.config.snapshot_every.max(size as u64);
        if self.durable_version.saturating_sub(self.snapshot_version) < due {
            return;
        }
        let version = self.durable_version;
        // Cloning is far cheaper than encoding; the encoding runs off the actor's thread.
        // (The staged layer is not part of a snapshot: it is never encoded.)
        let (state, keys) = (self.state.clone(), self.keys.clone());
        self.snapshot_in_flight = true;
        let store = self.shared.store.clone();
        let stream = self.stream.clone();
        ctx.spawn(
            async move {
                let encoded =
                    tokio::task::spawn_blocking(move || recovery::encode(&state, &keys, version))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r);
                match encoded {
                    Ok(snapshot) => store
                        .save_snapshot(&stream, snapshot)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(reason) => Err(format!("encode: {reason}")),
                }
            }
            .into_actor(self)
            .map(move |saved, act, _| {
                act.snapshot_in_flight = false;
                match saved {
                    Ok(()) => {
                        act.snapshot_version = version;
                        act.shared.stats.snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                    // Only a cache: recovery replays a longer tail, nothing is lost.
                    Err(reason) => tracing::warn!(sku = %act.sku, %reason, "snapshot not saved"),
                }
            }),
        );
    }

    /// Keeps one timer, on the earliest expiry among the speculative reservations.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self
            .state
            .speculative()
            .and_then(|s| s.next_expiry())
            .map(|(at, _)| at);
        match (next, &self.timer) {
            (None, None) => {}
            (Some(at), Some((armed, _))) if *armed <= at => {}
            (next, _) => self.set_timer(next, ctx),
        }
    }

    /// `arm_timer` for the path every command takes. The exact next expiry steps over the
    /// applied holds that staged events resolve, and with a batch of commits staged those
    /// are the earliest ones: computed per command, that was quadratic in the batch (a
    /// sixth of a flash sale's CPU). A timer fires early enough if it fires no later than
    /// [`StockRef::next_expiry_bound`], which costs two lookups; one that fires early finds
    /// nothing lapsed and `expiry_due` re-arms it exactly. A bound already due (a lapsed
    /// hold whose resolution is in flight) takes the exact path, so that an early timer
    /// cannot fire again and again until that resolution lands.
    fn arm_timer_cheaply(&mut self, ctx: &mut Context<Self>) {
        let bound = self.state.speculative().and_then(|s| s.next_expiry_bound());
        match (bound, &self.timer) {
            (None, _) => {}
            (Some(at), Some((armed, _))) if *armed <= at => {}
            (Some(at), _) if at > self.now() => self.set_timer(Some(at), ctx),
            (Some(_), _) => self.arm_timer(ctx),
        }
    }

    /// Replaces the expiry timer with one at `at` (none for `None`).
    fn set_timer(&mut self, at: Option<Timestamp>, ctx: &mut Context<Self>) {
        if let Some((_, handle)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = at {
            let handle = ctx.spawn(
                self.shared
                    .clock
                    .sleep_until(at)
                    .into_actor(self)
                    .map(|(), act, ctx| act.expiry_due(ctx)),
            );
            self.timer = Some((at, handle));
        }
    }

    /// Writes `ReservationExpired` for every lapsed hold, through the same pipeline.
    fn expiry_due(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        if self.phase != Phase::Ready {
            return;
        }
        let now = self.now();
        // A batch's worth per turn, so a storm does not hold the actor; but at a SKU with
        // a waitlist every lapsed hold, so that the line is served from written expiries
        // (a hold left lapsed unwritten costs every decision a step: serving 20 000
        // waiters past 19 000 of them took minutes).
        let per_turn = match self.state.speculative() {
            Some(s) if s.waitlist_len().0 > 0 => usize::MAX,
            _ => self.shared.config.max_batch_events,
        };
        let lapsed: Vec<ReservationId> = self
            .state
            .speculative()
            .map(|s| s.lapsed(now).take(per_turn).map(|r| r.id).collect())
            .unwrap_or_default();
        // The waitlist is served once the lapsed holds' expiries are staged, not after
        // each: while a hold has lapsed unwritten, every decision counts it aside (a cost
        // per lapsed hold), so serving after each expiry of a storm would cost the storm's
        // size squared. Still in this turn: nothing else is decided in between.
        let serving = std::mem::replace(&mut self.serving, true);
        for reservation_id in lapsed {
            let request = RequestMeta {
                causation_id: Some("expiry".into()),
                ..RequestMeta::default()
            };
            self.admit(Command::Expire(Expire { reservation_id }), request, None);
        }
        self.serving = serving;
        self.serve_waitlist();
        self.flush(ctx);
        self.arm_timer(ctx);
    }

    /// Ready, with nothing in flight, queued, keyed or waiting: stopping now loses nothing.
    fn quiescent(&self) -> bool {
        self.phase == Phase::Ready
            && self.in_flight.is_none()
            && self.queued.is_empty()
            && self.deferred.is_empty()
            && self.pending_keys.is_empty()
            && self.unworded.is_empty()
            && !self.key_lookup_in_flight
            && self.waiting.load(Ordering::Acquire) == 0
    }

    /// Stops an actor whose SKU is not registered and that nobody is waiting on.
    fn maybe_drop_unregistered(&mut self, ctx: &mut Context<Self>) {
        if self.quiescent() && self.state.speculative().is_none() {
            self.stop(ctx);
        }
    }

    fn maybe_passivate(&mut self, ctx: &mut Context<Self>) {
        let idle = self.quiescent()
            && self.last_active.elapsed() >= self.shared.config.idle_timeout
            && self.state.speculative().is_none_or(|s| s.live_count() == 0);
        if idle {
            self.shared
                .stats
                .passivations
                .fetch_add(1, Ordering::Relaxed);
            self.stop(ctx);
        }
    }

    /// Whether the actor can take a message now; if not, the reply is dropped undecided
    /// and the caller sends it again to a fresh actor.
    fn accepts(&mut self) -> bool {
        self.last_active = Instant::now();
        self.phase == Phase::Ready
    }
}

/// A decided command's events as the store takes them, with their ids and metadata: a
/// keyed command's ids are derived from its key (so a retry carries the same ones), others
/// are time-ordered. Shared by the actor and `Inventory::register_new`, which must write
/// exactly what the actor would.
pub(crate) fn encode_decided(
    events: &[Event],
    request: &RequestMeta,
    stream: &StreamName,
    now: Timestamp,
) -> Result<(Vec<EventData>, Vec<Uuid>), Error> {
    let mut data = Vec::with_capacity(events.len());
    let mut event_ids = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let id = match &request.scope {
            Some(scope) => event_id(scope, stream, index),
            // Time-ordered: the store files every event under its id, and ids that grow
            // with time land on the index's last page instead of a random one (a random
            // id costs a page written per event at scale).
            None => Uuid::now_v7(),
        };
        let meta = EventMetadata {
            correlation_id: request.correlation_id.clone(),
            causation_id: request.causation_id.clone(),
            idempotency_key: request.scope.as_ref().map(|s| s.key.clone()),
            channel: request.channel.clone(),
            principal: request.principal.clone(),
            ..EventMetadata::new(id, now)
        };
        data.push(
            codec::encode(event, &meta).map_err(|e| Error::Unavailable(format!("encode: {e}")))?,
        );
        event_ids.push(id);
    }
    Ok((data, event_ids))
}

fn timed_out(what: &str, after: std::time::Duration) -> StoreError {
    StoreError::Unavailable(format!("{what} took longer than {after:?}"))
}

fn replay(recorded: &Recorded) -> Accepted {
    Accepted {
        events: vec![recorded.event.clone()],
        version: recorded.version,
        replayed: true,
        backordered: stockade_domain::Quantity::ZERO,
        eta: None,
    }
}

/// The answer to a retry of the command recorded under `scope`: its outcome if it asks
/// the same thing, else a refusal to reuse the key.
fn answer_retry(
    recorded: &Recorded,
    fingerprint: &Fingerprint,
    scope: &KeyScope,
) -> Result<Accepted, Error> {
    if fingerprint.answers(recorded) {
        Ok(replay(recorded))
    } else {
        Err(Error::KeyReused {
            key: scope.key.clone(),
        })
    }
}

impl Handler<Execute> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: Execute, ctx: &mut Context<Self>) {
        if !self.accepts() {
            return;
        }
        self.admit(msg.command, msg.request, Some(msg.reply));
        self.flush(ctx);
        self.arm_timer_cheaply(ctx);
    }
}

impl Handler<ReadStock> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: ReadStock, _ctx: &mut Context<Self>) {
        if !self.accepts() {
            return;
        }
        let now = self.now();
        let answer = match self.state.stock() {
            Some(stock) => Ok(StockLevel {
                view: stock.view(now),
                version: self.durable_version,
                updated_at: stock.last_event_at(),
                as_of: now,
                derived_from: Vec::new(),
            }),
            None => Err(self.error_from(stockade_domain::Rejection::UnknownSku)),
        };
        msg.reply.send(answer);
    }
}

impl Handler<ReadFairSelling> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: ReadFairSelling, _ctx: &mut Context<Self>) {
        if !self.accepts() {
            return;
        }
        let now = self.now();
        let answer = match self.state.stock() {
            Some(stock) => {
                let (waiting, waiting_units) = stock.waitlist_len();
                Ok(FairSellingView {
                    purchase_limit: stock.purchase_limit(),
                    waitlist_hold: stock.waitlist_hold(),
                    waiting,
                    waiting_units,
                    places: stock.waitlist(msg.max_places),
                    place: msg.customer.as_ref().and_then(|c| stock.waitlist_place(c)),
                    counted: msg.customer.as_ref().map(|c| stock.counted(c, now)),
                    version: self.durable_version,
                })
            }
            None => Err(self.error_from(stockade_domain::Rejection::UnknownSku)),
        };
        msg.reply.send(answer);
    }
}

impl Handler<Rest> for SkuActor {
    type Result = ();

    fn handle(&mut self, _msg: Rest, ctx: &mut Context<Self>) {
        let idle = self.quiescent() && self.state.speculative().is_none_or(|s| s.live_count() == 0);
        if idle {
            self.stop(ctx);
        }
    }
}

impl Handler<Refresh> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: Refresh, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ready
            && self.in_flight.is_none()
            && self.durable_version < msg.version
        {
            // As after a conflict: fold what others appended, decide what is queued again.
            self.shared.stats.resyncs.fetch_add(1, Ordering::Relaxed);
            self.resync(ctx, None);
        }
    }
}

impl Handler<ReadLiveHolds> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: ReadLiveHolds, _ctx: &mut Context<Self>) {
        if !self.accepts() {
            return;
        }
        let answer = match self.state.stock() {
            Some(stock) => Ok(stock.live_reservations().map(|r| r.id).collect()),
            None => Err(self.error_from(stockade_domain::Rejection::UnknownSku)),
        };
        msg.reply.send(answer);
    }
}

impl Handler<ReadReservation> for SkuActor {
    type Result = ();

    fn handle(&mut self, msg: ReadReservation, ctx: &mut Context<Self>) {
        if !self.accepts() {
            return;
        }
        let now = self.now();
        let answer = match self.state.stock() {
            None => Err(self.error_from(stockade_domain::Rejection::UnknownSku)),
            Some(stock) => Ok(match stock.reservation(&msg.id) {
                Some(r) if r.expires_at <= now => LineStatus::Lapsed {
                    qty: r.qty,
                    expires_at: r.expires_at,
                },
                Some(r) => {
                    let (backordered, eta) = stock.backorder_of(&msg.id);
                    LineStatus::Live {
                        qty: r.qty,
                        order_id: stock.order_of(&msg.id).cloned(),
                        expires_at: r.expires_at,
                        reserved_at: r.reserved_at,
                        at_risk: stock.at_risk(now).contains(&msg.id),
                        backordered,
                        eta,
                    }
                }
                None => match self.recent_resolution(msg.id) {
                    Some(resolution) => LineStatus::Resolved(resolution),
                    None => {
                        // History: the log says how it ended, if it ever was held here.
                        let store = self.shared.store.clone();
                        let stream = self.stream.clone();
                        let (id, reply) = (msg.id, msg.reply);
                        ctx.spawn(
                            async move {
                                let answer = history::resolution_in_log(&store, &stream, id)
                                    .await
                                    .map(|r| r.map_or(LineStatus::Unknown, LineStatus::Resolved))
                                    .map_err(|e| {
                                        Error::store("read the reservation's history", &e)
                                    });
                                reply.send(answer);
                            }
                            .into_actor(self),
                        );
                        return;
                    }
                },
            }),
        };
        msg.reply.send(answer);
    }
}

//! The engine's shared core: the actor threads, the registry that finds or starts a SKU's
//! actor, and the one way of asking an actor something ([`EngineCore::ask`]).
//!
//! Placement: one actix arbiter (thread) per core; a SKU's actor lives on the arbiter its
//! name hashes to, so a hot SKU never shares its thread with a scheduler's whims.
//!
//! Registry invariant: at most one live actor per SKU in this engine. `slot` inserts under
//! the map's entry lock; an actor removes its own slot (and only its own, compared by
//! identity) when it stops. A message that reaches a stopping actor is answered "moved"
//! without being decided, and `ask` sends it again to a fresh actor.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use actix::prelude::*;
use actix_rt::{Arbiter, ArbiterHandle, System};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use stockade_domain::Sku;
use stockade_store::EventStore;

use crate::actor::SkuActor;
use crate::clock::Clock;
use crate::config::EngineConfig;
use crate::error::Error;
use crate::reply::{Failure, Reply};

/// Times a command is re-sent after landing on a stopping actor before giving up.
const MAX_MOVES: usize = 16;

/// What every SKU actor and the inventory reach through: the store, the clock, the
/// settings, the registry of live actors and the counters.
#[derive(Debug)]
pub(crate) struct EngineCore {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub registry: Registry,
    pub stats: Stats,
    closed: AtomicBool,
}

#[derive(Debug, Clone)]
struct Slot {
    addr: Addr<SkuActor>,
    /// Commands sent to this actor and not yet answered (the mailbox bound).
    waiting: Arc<AtomicUsize>,
    /// The actor's durable version, as it last published it (see `EngineCore::observe`).
    durable: Arc<AtomicU64>,
}

#[derive(Debug)]
pub(crate) struct Registry {
    slots: DashMap<Sku, Slot>,
    arbiters: Vec<ArbiterHandle>,
}

impl Registry {
    /// Removes `sku`'s slot if it is still the one whose bound is `waiting`.
    pub(crate) fn forget(&self, sku: &Sku, waiting: &Arc<AtomicUsize>) {
        self.slots
            .remove_if(sku, |_, slot| Arc::ptr_eq(&slot.waiting, waiting));
    }

    pub(crate) fn active(&self) -> usize {
        self.slots.len()
    }

    fn arbiter_for(&self, sku: &Sku) -> &ArbiterHandle {
        // SipHash with fixed keys: the same SKU lands on the same thread in every run.
        let mut hasher = std::hash::DefaultHasher::new();
        sku.hash(&mut hasher);
        let index = (hasher.finish() % self.arbiters.len() as u64) as usize;
        &self.arbiters[index]
    }
}

/// Counters over the engine's life.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub appends: AtomicU64,
    pub commands: AtomicU64,
    pub events: AtomicU64,
    pub max_batch: AtomicU64,
    pub conflicts: AtomicU64,
    pub resyncs: AtomicU64,
    pub snapshots: AtomicU64,
    pub passivations: AtomicU64,
}

impl Stats {
    pub(crate) fn record_batch(&self, commands: u64, events: u64) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(commands, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.max_batch.fetch_max(commands, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> EngineStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            appends: get(&self.appends),
            commands: get(&self.commands),
            events: get(&self.events),
            max_batch: get(&self.max_batch),
            conflicts: get(&self.conflicts),
            resyncs: get(&self.resyncs),
            snapshots: get(&self.snapshots),
            passivations: get(&self.passivations),
        }
    }
}

/// What the engine has done since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Appends that landed (each carries one batch of one SKU).
    pub appends: u64,
    /// Commands made durable.
    pub commands: u64,
    pub events: u64,
    /// Most commands carried by one append.
    pub max_batch: u64,
    /// Appends refused because another writer had moved the stream.
    pub conflicts: u64,
    /// Re-reads after a conflict, failure or timeout.
    pub resyncs: u64,
    pub snapshots: u64,
    pub passivations: u64,
}

impl EngineStats {
    /// Mean commands per append: how much the pipeline batches under load.
    pub fn mean_batch(&self) -> f64 {
        if self.appends == 0 {
            0.0
        } else {
            self.commands as f64 / self.appends as f64
        }
    }
}

impl EngineCore {
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        arbiters: Vec<ArbiterHandle>,
    ) -> Self {
        Self {
            store,
            clock,
            config,
            registry: Registry {
                slots: DashMap::new(),
                arbiters,
            },
            stats: Stats::default(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Commands sent and not yet answered, over all SKUs.
    pub(crate) fn waiting(&self) -> usize {
        self.registry
            .slots
            .iter()
            .map(|s| s.waiting.load(Ordering::Acquire))
            .sum()
    }

    /// The SKU's actor, started if it has none.
    fn slot(self: &Arc<Self>, sku: &Sku) -> Slot {
        if let Some(slot) = self.registry.slots.get(sku)
            && slot.addr.connected()
        {
            return slot.clone();
        }
        match self.registry.slots.entry(sku.clone()) {
            Entry::Occupied(mut e) => {
                if !e.get().addr.connected() {
                    e.insert(self.start(sku));
                }
                e.get().clone()
            }
            Entry::Vacant(v) => v.insert(self.start(sku)).clone(),
        }
    }

    fn start(self: &Arc<Self>, sku: &Sku) -> Slot {
        let waiting = Arc::new(AtomicUsize::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let (shared, actor_waiting, actor_sku) = (self.clone(), waiting.clone(), sku.clone());
        let actor_durable = durable.clone();
        let addr = SkuActor::start_in_arbiter(self.registry.arbiter_for(sku), move |_| {
            SkuActor::new(actor_sku, shared, actor_waiting, actor_durable)
        });
        Slot {
            addr,
            waiting,
            durable,
        }
    }

    /// Releases reservation `id`'s lines on `skus`, concurrently, on the engine's own
    /// behalf (a refused order's compensation, recovery's release of an order cut short):
    /// `causation` names why in the events, `order` correlates them. One outcome per SKU,
    /// in order; a line not live answers with a rejection, which is the outcome wanted.
    pub(crate) async fn release_lines(
        self: &Arc<Self>,
        id: stockade_domain::ReservationId,
        skus: &[Sku],
        causation: &str,
        order: Option<&stockade_domain::OrderId>,
    ) -> Vec<Result<crate::actor::Accepted, Error>> {
        let request = crate::actor::RequestMeta {
            causation_id: Some(causation.to_owned()),
            correlation_id: order.map(|o| o.as_str().to_owned()),
            ..crate::actor::RequestMeta::default()
        };
        let command =
            stockade_domain::Command::Release(stockade_domain::Release { reservation_id: id });
        futures::future::join_all(skus.iter().map(|sku| {
            self.ask(sku, |reply| crate::actor::Execute {
                command: command.clone(),
                request: request.clone(),
                reply,
            })
        }))
        .await
    }

    /// Whether an actor runs for `sku` now.
    pub(crate) fn has_actor(&self, sku: &Sku) -> bool {
        self.registry.slots.contains_key(sku)
    }

    /// Asks `sku`'s actor, if one runs, to stop now when it has nothing to do.
    pub(crate) fn rest(&self, sku: &Sku) {
        if let Some(slot) = self.registry.slots.get(sku) {
            slot.addr.do_send(crate::actor::Rest);
        }
    }

    /// Someone following the log saw `sku`'s stream reach `version`. A running actor that
    /// knows less (another process appended beside this one) re-reads its stream, so its
    /// exact reads catch up without waiting for its next write. Costs one map lookup when
    /// the actor already knows it, as for every append this engine made itself.
    pub(crate) fn observe(&self, sku: &Sku, version: u64) {
        if let Some(slot) = self.registry.slots.get(sku)
            && slot.durable.load(Ordering::Acquire) < version
        {
            slot.addr.do_send(crate::actor::Refresh { version });
        }
    }

    /// Sends `make(reply)` to `sku`'s actor and waits for the answer, re-sending to a
    /// fresh actor when the first was stopping (never-decided commands only).
    pub(crate) async fn ask<T, M>(
        self: &Arc<Self>,
        sku: &Sku,
        make: impl Fn(Reply<T>) -> M,
    ) -> Result<T, Error>
    where
        M: Message<Result = ()> + Send + 'static,
        SkuActor: Handler<M>,
    {
        for _ in 0..MAX_MOVES {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Unavailable("the engine is shut down".into()));
            }
            let slot = self.slot(sku);
            let (reply, answer) = Reply::reserve_place(&slot.waiting, self.config.mailbox_capacity)
                .map_err(|waiting| Error::Overloaded {
                    sku: sku.clone(),
                    waiting,
                })?;
            // A closed mailbox drops the message; its reply then answers `Moved`.
            slot.addr.do_send(make(reply));
            match answer.await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Error(e))) => return Err(e),
                Ok(Err(Failure::Moved)) | Err(_) => {
                    self.registry.forget(sku, &slot.waiting);
                    tokio::task::yield_now().await;
                }
            }
        }
        Err(Error::Unavailable(format!(
            "the actor of {sku} kept stopping; try again"
        )))
    }
}

/// What the arbiters' threads are called in `top -H`, `perf` and `/proc`: actix names
/// them `actix-rt|system:…`, like the HTTP workers, which the kernel cuts to the same 15
/// characters, so a profile could not tell the SKU actors from the HTTP server.
const ACTOR_THREAD: &str = "stockade-skus";

/// Renames the calling thread as the kernel shows it, where the platform lets a thread do
/// that through a file (Linux); elsewhere, and if it fails, the thread keeps its name.
/// Only tools read it: `std::thread::current().name()` keeps the name actix gave.
fn name_this_thread(name: &str) {
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/thread-self/comm", name);
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}

/// The actix system the actors run on: one thread for the system, one per arbiter.
#[derive(Debug)]
pub(crate) struct ActorThreads {
    system: System,
    pub arbiters: Vec<ArbiterHandle>,
    thread: Option<JoinHandle<()>>,
}

impl ActorThreads {
    pub(crate) fn start(arbiters: usize) -> Result<Self, Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stockade-actors".into())
            .spawn(move || {
                let runner = System::new();
                let started: std::io::Result<Vec<Arbiter>> =
                    (0..arbiters).map(|_| Arbiter::try_new()).collect();
                match started {
                    Ok(started) => {
                        for arbiter in &started {
                            arbiter.spawn(async { name_this_thread(ACTOR_THREAD) });
                        }
                        let handles = started.iter().map(Arbiter::handle).collect();
                        let _ = tx.send(Ok((System::current(), handles)));
                        if let Err(e) = runner.run() {
                            tracing::error!(error = %e, "actor system stopped with an error");
                        }
                        for arbiter in started {
                            let _ = arbiter.join();
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::Unavailable(format!("start the actor threads: {e}")))?;
        match rx.recv() {
            Ok(Ok((system, arbiters))) => Ok(Self {
                system,
                arbiters,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(Error::Unavailable(format!("start an arbiter: {e}"))),
            Err(_) => Err(Error::Unavailable("the actor thread died at start".into())),
        }
    }

    /// Runs `future` on the first arbiter (background work that is not a SKU's).
    pub(crate) fn spawn(&self, future: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(arbiter) = self.arbiters.first() {
            arbiter.spawn(future);
        }
    }
}

impl Drop for ActorThreads {
    fn drop(&mut self) {
        self.system.stop();
        // Joining from an actor thread (a clock or store that owned the last handle)
        // would wait for itself: then the threads are left to finish on their own.
        let on_actor_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("actix-rt|") || n == "stockade-actors");
        if let Some(thread) = self.thread.take()
            && !on_actor_thread
        {
            let _ = thread.join();
        }
    }
}

//! [`Inventory`]: the API a commerce backend calls. It validates and routes; every decision
//! is taken by the SKU's actor.
//!
//! A reservation may hold lines on several SKUs; every line carries the same reservation
//! id, so `commit` and `release` by id reach all of them. Reserving several lines is
//! all-or-nothing: if one line is refused, the lines already held are released before the
//! refusal is returned (and if that release cannot be written, the hold lapses at its TTL).
//!
//! Here: `Inventory` and the order saga. Beside it: `config` (what `open` takes),
//! `types` (the values the API takes and answers with), `guards` (the in-progress count
//! and the per-key turn) and `start_up` (the background pass after a restart).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use futures::future::join_all;
use stockade_domain::{
    Adjust, Channel, Command, Commit, Event, OrderId, PoolConfig, Quantity, RegisterSku, Rejection,
    Release, ReservationId, Reserve, Resolution, Sku, Timestamp,
};
use stockade_store::{EventStore, MemoryStore, SqliteStore};
use tokio::sync::watch;
use uuid::Uuid;

use crate::actor::{
    Accepted, Execute, LineStatus, ReadReservation, ReadStock, RequestMeta, StockLevel,
};
use crate::config::ResolvePolicy;
use crate::engine::{ActorThreads, EngineCore, EngineStats};
use crate::error::Error;
use crate::idempotency::KeyScope;
use crate::locator::Locator;
use crate::orphans::CleanMarker;
use crate::secret::IdSecret;

/// Longest causation id kept in event metadata.
pub const MAX_CAUSATION_CHARS: usize = 256;
/// Most lines one reservation may hold.
pub const MAX_LINES: usize = 100;
/// File name of the embedded store inside the data directory.
pub const SQLITE_FILE: &str = "stockade.db";
/// How often the reservation index drops entries nobody can resolve any more.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How long a keyed reservation waits for the start-up pass before it is told to retry.
const RECOVERY_PATIENCE: Duration = Duration::from_secs(30);
/// SKUs woken at once after a restart to fire their expiries.
const WAKE_CONCURRENCY: usize = 64;

mod config;
mod guards;
mod start_up;
mod types;

pub use config::{InventoryConfig, StoreConfig};
pub use types::{
    Adjusted, Adjustment, Line, Origin, Registration, Reservation, ReservationStatus,
    ReserveOptions, ReservedLine, Resolved,
};

use guards::{InProgress, KeyTurn};
use start_up::start_up;

/// The inventory engine. Cheap to clone; all clones share one engine.
#[derive(Debug, Clone)]
pub struct Inventory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<EngineCore>,
    locator: Arc<Locator>,
    /// One lock per idempotency key in use by `reserve_order` (see there).
    key_locks: DashMap<KeyScope, Arc<tokio::sync::Mutex<()>>>,
    /// Channel recorded on reservations whose origin names none.
    default_channel: Channel,
    /// Set once the start-up pass has released incomplete reservations; keyed
    /// reservations wait for it, so that a retry never races that release.
    recovered: watch::Receiver<bool>,
    /// Multi-line reservations being written now (a clean stop needs none).
    orders_in_progress: AtomicUsize,
    marker: Option<CleanMarker>,
    /// What keyed reservation ids are derived with, besides the key.
    id_secret: Option<IdSecret>,
    // Last field: dropped after the others, it stops and joins the actor threads.
    _threads: ActorThreads,
}

impl Inventory {
    /// Opens the store and starts the engine. Returns once the engine takes commands; the
    /// pass that indexes reservations and wakes SKUs with live ones runs in the background.
    ///
    /// ```
    /// use stockade_engine::{Inventory, InventoryConfig, Origin, ReserveOptions};
    /// use stockade_domain::{PoolConfig, Quantity, Sku};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let inventory = Inventory::open(InventoryConfig::memory()).await?;
    /// let sku = Sku::new("TEE-M-BLACK")?;
    /// let pool = PoolConfig::Physical { on_hand: Quantity::new(3), safety_stock: Quantity::ZERO };
    /// inventory.register(&sku, pool, &Origin::default()).await?;
    ///
    /// let held = inventory.reserve(&sku, Quantity::new(2), ReserveOptions::default()).await?;
    /// assert_eq!(inventory.stock(&sku).await?.view.reserved, Quantity::new(2));
    /// inventory.commit(held.id, &Origin::default()).await?;
    /// assert_eq!(inventory.stock(&sku).await?.view.limit, Some(Quantity::new(1)));
    /// # inventory.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(config: InventoryConfig) -> Result<Self, Error> {
        config.engine.validate().map_err(Error::Invalid)?;
        let default_channel = Channel::new("direct").map_err(|e| Error::Invalid(e.to_string()))?;
        let mut marker = None;
        let mut secret_dir = None;
        let fresh = matches!(config.store, StoreConfig::Memory);
        let store: Arc<dyn EventStore> = match config.store {
            StoreConfig::Sqlite { data_dir } => {
                marker = Some(CleanMarker::new(&data_dir));
                secret_dir = Some(data_dir.clone());
                let path = data_dir.join(SQLITE_FILE);
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                    .await
                    .map_err(|e| Error::Unavailable(format!("open the store: {e}")))?
                    .map_err(|e| Error::store("open the store", &e))?;
                Arc::new(store)
            }
            StoreConfig::Memory => Arc::new(MemoryStore::new()),
            #[cfg(feature = "esdb")]
            StoreConfig::EventStoreDb(config) => Arc::new(
                stockade_esdb::EsdbStore::connect(config)
                    .await
                    .map_err(|e| match e {
                        stockade_store::StoreError::InvalidRequest(m) => Error::Invalid(m),
                        stockade_store::StoreError::Unavailable(m) => Error::Unavailable(m),
                        other => Error::store("open EventStoreDB", &other),
                    })?,
            ),
            StoreConfig::Custom(store) => store,
        };
        let id_secret = match (&config.engine.id_secret, secret_dir) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(dir)) => Some(
                tokio::task::spawn_blocking(move || IdSecret::load_or_create(&dir))
                    .await
                    .map_err(|e| Error::Unavailable(format!("read the id secret: {e}")))??,
            ),
            (None, None) if fresh => IdSecret::from_text(&IdSecret::generate_text()).ok(),
            (None, None) => {
                tracing::warn!(
                    "no id secret configured: keyed reservation ids are derived from the key \
                     alone, and anyone who knows a key can compute them"
                );
                None
            }
        };
        let threads = ActorThreads::start(config.engine.arbiters)?;
        let shared = Arc::new(EngineCore::new(
            store,
            config.clock,
            config.engine,
            threads.arbiters.clone(),
        ));
        let locator = Arc::new(Locator::new(&shared.store));
        // A memory store starts empty; SQLite says whether the last engine stopped cleanly.
        let examine = match &marker {
            Some(marker) => !marker.take(),
            None => !fresh,
        };
        let (recovered, recovered_rx) = watch::channel(false);
        threads.spawn(start_up(
            shared.clone(),
            locator.clone(),
            examine,
            recovered,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                locator,
                key_locks: DashMap::new(),
                default_channel,
                recovered: recovered_rx,
                orders_in_progress: AtomicUsize::new(0),
                marker,
                id_secret,
                _threads: threads,
            }),
        })
    }

    fn shared(&self) -> &Arc<EngineCore> {
        &self.inner.shared
    }

    async fn execute(
        &self,
        sku: &Sku,
        command: Command,
        request: RequestMeta,
    ) -> Result<Accepted, Error> {
        self.shared()
            .ask(sku, |reply| Execute {
                command: command.clone(),
                request: request.clone(),
                reply,
            })
            .await
    }

    /// Registers a SKU with its pool. Returns the SKU's stream version.
    pub async fn register(
        &self,
        sku: &Sku,
        pool: PoolConfig,
        origin: &Origin,
    ) -> Result<u64, Error> {
        let command = Command::RegisterSku(RegisterSku {
            sku: sku.clone(),
            pool,
        });
        Ok(self
            .execute(sku, command, origin.request(None)?)
            .await?
            .version)
    }

    /// Registers a SKU unless it is registered already: for a program that registers its
    /// catalogue at every start. Says whether this call registered it, and the SKU's
    /// version. An existing SKU keeps its pool as it is (change it with `adjust`).
    pub async fn register_if_absent(
        &self,
        sku: &Sku,
        pool: PoolConfig,
        origin: &Origin,
    ) -> Result<Registration, Error> {
        match self.register(sku, pool, origin).await {
            Ok(version) => Ok(Registration {
                version,
                created: true,
            }),
            Err(Error::Rejected {
                rejection: Rejection::AlreadyRegistered { .. },
                ..
            }) => Ok(Registration {
                version: self.stock(sku).await?.version,
                created: false,
            }),
            Err(e) => Err(e),
        }
    }

    /// `register_if_absent` for a SKU nobody is using, without starting its actor: the
    /// registration is appended straight to the store, fenced by "no stream yet" (so a
    /// SKU registered meanwhile, by anyone, makes it fall back to the actor's path). For
    /// bulk loads: a million new SKUs need no actor each. Same answers, same events, same
    /// idempotency keys as `register_if_absent`.
    pub async fn register_new(
        &self,
        sku: &Sku,
        pool: PoolConfig,
        origin: &Origin,
    ) -> Result<Registration, Error> {
        if self.shared().has_actor(sku) {
            return self.register_if_absent(sku, pool, origin).await;
        }
        let request = origin.request(None)?;
        let command = Command::RegisterSku(RegisterSku {
            sku: sku.clone(),
            pool: pool.clone(),
        });
        let now = self.shared().clock.now();
        let events = stockade_domain::decide(&stockade_domain::SkuState::default(), &command, now)
            .map_err(|rejection| Error::Rejected {
                sku: sku.clone(),
                rejection,
            })?;
        let stream = stockade_store::StreamName::for_sku(sku);
        let (data, _) = crate::actor::encode_decided(&events, &request, &stream, now)?;
        let appended = tokio::time::timeout(
            self.shared().config.append_timeout,
            self.shared()
                .store
                .append(&stream, stockade_store::ExpectedRevision::NoStream, data),
        )
        .await;
        match appended {
            Ok(Ok(landed)) if !landed.deduplicated => Ok(Registration {
                version: landed.version(),
                created: true,
            }),
            // The stream exists (registered before, or a keyed retry of this very
            // registration), or the outcome is unknown: the actor's path knows.
            _ => self.register_if_absent(sku, pool, origin).await,
        }
    }

    /// Holds `qty` of one SKU.
    pub async fn reserve(
        &self,
        sku: &Sku,
        qty: Quantity,
        options: ReserveOptions,
    ) -> Result<Reservation, Error> {
        self.reserve_order(
            vec![Line {
                sku: sku.clone(),
                qty,
            }],
            options,
        )
        .await
    }

    /// Holds every line, or none: a refused line releases the lines already held.
    pub async fn reserve_order(
        &self,
        lines: Vec<Line>,
        options: ReserveOptions,
    ) -> Result<Reservation, Error> {
        check_lines(&lines)?;
        let origin = &options.origin;
        let request = origin.request(options.order_id.as_ref())?;
        // Two requests under one key run one after the other, so the second sees the
        // first's final outcome (held, or refused and rolled back) and never races it.
        let _turn = match &request.scope {
            Some(scope) => Some(KeyTurn::take(&self.inner.key_locks, scope).await),
            None => None,
        };
        if request.scope.is_some() {
            self.recovered().await?;
        }
        let _in_progress =
            (lines.len() > 1).then(|| InProgress::enter(&self.inner.orders_in_progress));
        // A keyed request gets a key-derived id, so a retry names the same reservation.
        let id = match &request.scope {
            Some(scope) => ReservationId::from_uuid(match &self.inner.id_secret {
                Some(secret) => secret.reservation_id(scope),
                None => scope.derive("reservation"),
            }),
            // Time-ordered, like unkeyed event ids: a reservation's events are filed under
            // its id, and its commit then lands beside its hold in the index.
            None => ReservationId::from_uuid(Uuid::now_v7()),
        };
        let ttl = options.ttl.unwrap_or(self.shared().config.default_ttl);
        let channel = origin.channel_or(&self.inner.default_channel);
        // Recorded on each line, so that recovery can tell a reservation cut in half.
        let all_skus: Vec<Sku> = match lines.len() {
            1 => Vec::new(),
            _ => lines.iter().map(|l| l.sku.clone()).collect(),
        };
        let attempt = |i: usize| {
            let line = &lines[i];
            let command = Command::Reserve(Reserve {
                reservation_id: id,
                order_id: options.order_id.clone(),
                lines: all_skus.clone(),
                qty: line.qty,
                ttl,
                channel: channel.clone(),
            });
            let mut request = request.clone();
            request.expected_version = options.expected_versions.get(&line.sku).copied();
            self.execute(&line.sku, command, request)
        };
        // The lines are decided concurrently (each by its own SKU's actor).
        let attempts = match lines.len() {
            1 => vec![attempt(0).await],
            n => join_all((0..n).map(attempt)).await,
        };

        let mut reserved: Vec<(Sku, HeldLine)> = Vec::with_capacity(lines.len());
        let mut refusal = None;
        let mut unknown = Vec::new();
        for (line, attempt) in lines.iter().zip(attempts) {
            match attempt {
                Ok(accepted) => match held_line(&accepted) {
                    Some(held) => reserved.push((line.sku.clone(), held)),
                    // Cannot happen (a reserve writes StockReserved); never report a line
                    // as held without it.
                    None => {
                        unknown.push(line.sku.clone());
                        refusal = Some(Error::Unavailable(format!(
                            "{}: reserve answered without a StockReserved event",
                            line.sku
                        )));
                    }
                },
                Err(e @ Error::Unavailable(_)) => {
                    // Its append may still land: release it with the others.
                    unknown.push(line.sku.clone());
                    if refusal.is_none() {
                        refusal = Some(e);
                    }
                }
                // Keep the most telling refusal: a domain rejection over a transient error.
                Err(e) => {
                    if refusal
                        .as_ref()
                        .is_none_or(|r: &Error| r.rejection().is_none())
                    {
                        refusal = Some(e);
                    }
                }
            }
        }
        // A retry whose first attempt was refused and rolled back replays lines that are
        // released by now: that is a refusal too, not a reservation.
        if refusal.is_none() && reserved.iter().any(|(_, r)| r.replayed) {
            refusal = self.rolled_back(&reserved).await;
        }
        if let Some(refusal) = refusal {
            let mut to_release: Vec<Sku> = reserved.iter().map(|(sku, _)| sku.clone()).collect();
            // A keyed order with nothing held and nothing refused, only outcomes unknown,
            // is left as it is: its caller hears "unknown" and a retry under the key learns
            // what the store holds. In every other case the unknown lines are released
            // with the rest, and the actor makes that release win even over an append
            // that lands late (see the actor's invariants).
            let only_unknown = reserved.is_empty()
                && unknown.len() == lines.len()
                && matches!(refusal, Error::Unavailable(_));
            if !(request.scope.is_some() && only_unknown) {
                to_release.extend(unknown);
            }
            // Every line that is or may be held is released now, so the caller may be
            // told "rolled back".
            let compensated = !to_release.is_empty();
            self.compensate(id, &to_release, options.order_id.as_ref())
                .await;
            return Err(after_rollback(
                refusal,
                request.scope.is_some(),
                compensated,
            ));
        }
        let first = reserved.first().map(|(_, r)| r.clone());
        let Some(first) = first else {
            return Err(Error::Invalid(
                "a reservation needs at least one line".into(),
            ));
        };
        let skus: Vec<Sku> = reserved.iter().map(|(sku, _)| sku.clone()).collect();
        self.inner.locator.add(
            first.id,
            &skus,
            first.order_id.as_ref(),
            Some(&channel),
            first.at,
        );
        Ok(Reservation {
            id: first.id,
            order_id: first.order_id.clone(),
            // Lines decided at different instants differ: promise the earliest.
            expires_at: reserved
                .iter()
                .map(|(_, r)| r.expires_at)
                .min()
                .unwrap_or(first.expires_at),
            replayed: reserved.iter().all(|(_, r)| r.replayed),
            lines: reserved
                .into_iter()
                .map(|(sku, r)| ReservedLine {
                    sku,
                    qty: r.qty,
                    version: r.version,
                })
                .collect(),
        })
    }

    /// Waits for the start-up pass that releases incomplete reservations.
    async fn recovered(&self) -> Result<(), Error> {
        if *self.inner.recovered.borrow() {
            return Ok(());
        }
        let mut state = self.inner.recovered.clone();
        match tokio::time::timeout(RECOVERY_PATIENCE, state.wait_for(|done| *done)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(
                "the engine is still releasing reservations cut short by the last stop; retry shortly"
                    .into(),
            )),
        }
    }

    /// For a replayed reservation: the refusal its first attempt must have met, if any
    /// line is no longer held.
    async fn rolled_back(&self, reserved: &[(Sku, HeldLine)]) -> Option<Error> {
        for (sku, r) in reserved {
            let status = self.line_status(sku, r.id).await;
            if let Ok(LineStatus::Resolved(
                resolution @ (Resolution::Released | Resolution::Expired),
            )) = status
            {
                return Some(Error::Rejected {
                    sku: sku.clone(),
                    rejection: Rejection::AlreadyResolved {
                        reservation_id: r.id,
                        resolution,
                    },
                });
            }
        }
        None
    }

    /// Releases the lines of reservation `id` on `skus`, for an order that cannot be
    /// completed. A line that is not held (never landed, already released) answers with a
    /// rejection, which is the outcome wanted.
    async fn compensate(&self, id: ReservationId, skus: &[Sku], order: Option<&OrderId>) {
        let outcomes = self
            .shared()
            .release_lines(id, skus, "compensation", order)
            .await;
        for (sku, outcome) in skus.iter().zip(outcomes) {
            if let Err(e @ (Error::Unavailable(_) | Error::Overloaded { .. })) = outcome {
                // Unavailable: the release is decided behind an append with no verdict
                // yet and lands after it. Overloaded, or a store that fails: the hold
                // lapses at its TTL. Either way nothing is sold, nothing is lost.
                tracing::warn!(%sku, error = %e, "could not release a line of a refused order");
            }
        }
    }

    /// Turns every line of reservation `id` into a sale.
    pub async fn commit(&self, id: ReservationId, origin: &Origin) -> Result<Resolved, Error> {
        self.resolve(id, origin, Resolution::Committed).await
    }

    /// Gives every line of reservation `id` back.
    pub async fn release(&self, id: ReservationId, origin: &Origin) -> Result<Resolved, Error> {
        self.resolve(id, origin, Resolution::Released).await
    }

    /// Commits or releases every line of `id`, each by its own SKU's actor. The answer is
    /// per line: a call that changed any line succeeds and names the lines it could not
    /// change in `failed` (the same call again finishes them: a line already resolved the
    /// same way counts as done). Only a call that changed nothing is an error: the most
    /// telling refusal, or "already resolved" when every line was.
    async fn resolve(
        &self,
        id: ReservationId,
        origin: &Origin,
        resolution: Resolution,
    ) -> Result<Resolved, Error> {
        let skus = self.skus_of(id).await?;
        let request = origin.request(None)?;
        self.check_owner(id, origin).await?;
        let outcomes = join_all(skus.iter().map(|sku| {
            let command = match resolution {
                Resolution::Committed => Command::Commit(Commit { reservation_id: id }),
                _ => Command::Release(Release { reservation_id: id }),
            };
            self.execute(sku, command, request.clone())
        }))
        .await;
        let mut lines = Vec::with_capacity(skus.len());
        let mut failed: Vec<(Sku, Error)> = Vec::new();
        let mut changed = false;
        // The refusal for a call that found every line already resolved this way.
        let mut already: Option<Error> = None;
        for (sku, outcome) in skus.into_iter().zip(outcomes) {
            match outcome {
                Ok(accepted) => {
                    // Replayed too: the earlier call under this key changed it, and its
                    // retry answers as it did.
                    changed = true;
                    let qty = accepted
                        .events
                        .iter()
                        .find_map(|e| match e {
                            Event::ReservationCommitted(c) => Some(c.qty),
                            Event::ReservationReleased(r) => Some(r.qty),
                            _ => None,
                        })
                        .unwrap_or(Quantity::ZERO);
                    lines.push(ReservedLine {
                        sku,
                        qty,
                        version: accepted.version,
                    });
                }
                // Done by an earlier call (one that answered with this line failed, or
                // whose answer was lost): this call's work on the line is done too.
                Err(Error::Rejected {
                    rejection:
                        Rejection::AlreadyResolved {
                            resolution: done, ..
                        },
                    ..
                }) if done == resolution => {
                    already.get_or_insert_with(|| already_resolved(&sku, id, resolution));
                    let version = self.stock(&sku).await.map_or(0, |level| level.version);
                    lines.push(ReservedLine {
                        sku,
                        qty: Quantity::ZERO,
                        version,
                    });
                }
                Err(e) => failed.push((sku, e)),
            }
        }
        if !changed && failed.is_empty() {
            // Nothing to do: say so, as a single line would.
            if let Some(refusal) = already {
                return Err(refusal);
            }
        }
        if !changed && !failed.is_empty() {
            // Nothing changed: the most telling refusal (a business one over a transient).
            let pick = failed
                .iter()
                .position(|(_, e)| e.rejection().is_some())
                .unwrap_or(0);
            return Err(failed.swap_remove(pick).1);
        }
        Ok(Resolved {
            id,
            resolution,
            lines,
            failed,
        })
    }

    /// Refuses a request of a channel the installation does not let resolve `id`.
    async fn check_owner(&self, id: ReservationId, origin: &Origin) -> Result<(), Error> {
        let policy = &self.shared().config.resolve;
        let (ResolvePolicy::Owner { .. }, Some(acting)) = (policy, &origin.channel) else {
            return Ok(());
        };
        match self.inner.locator.owner(&id).await? {
            Some(owner) if !policy.allows(acting, &owner) => Err(Error::NotOwner(format!(
                "reservation {id} was made by channel {owner}; channel {acting} may not resolve it"
            ))),
            _ => Ok(()),
        }
    }

    /// Commits every reservation of `order`.
    pub async fn commit_order(
        &self,
        order: &OrderId,
        origin: &Origin,
    ) -> Result<Vec<Resolved>, Error> {
        self.resolve_order(order, origin, Resolution::Committed)
            .await
    }

    /// Releases every reservation of `order`.
    pub async fn release_order(
        &self,
        order: &OrderId,
        origin: &Origin,
    ) -> Result<Vec<Resolved>, Error> {
        self.resolve_order(order, origin, Resolution::Released)
            .await
    }

    async fn resolve_order(
        &self,
        order: &OrderId,
        origin: &Origin,
        resolution: Resolution,
    ) -> Result<Vec<Resolved>, Error> {
        let ids = self.inner.locator.order(order).await?;
        if ids.is_empty() {
            return Err(Error::NotFound(format!("order {order}")));
        }
        let mut resolved = Vec::with_capacity(ids.len());
        for (id, _) in ids {
            // One key per reservation: an order may hold two reservations on one SKU, and
            // a key is remembered per SKU.
            let origin = Origin {
                idempotency_key: origin.idempotency_key.as_ref().map(|k| format!("{k}/{id}")),
                ..origin.clone()
            };
            resolved.push(self.resolve(id, &origin, resolution).await?);
        }
        Ok(resolved)
    }

    /// Changes a SKU's limit. With `expected_version`, refuses if the SKU moved since.
    pub async fn adjust(
        &self,
        sku: &Sku,
        adjustment: Adjustment,
        origin: &Origin,
    ) -> Result<Adjusted, Error> {
        let mut request = origin.request(None)?;
        request.expected_version = adjustment.expected_version;
        let command = Command::Adjust(Adjust {
            change: adjustment.change,
            reason: adjustment.reason,
            reference: adjustment.reference,
        });
        let accepted = self.execute(sku, command, request).await?;
        match accepted.events.last() {
            Some(Event::StockAdjusted(e)) => Ok(Adjusted {
                previous: e.previous,
                current: e.current,
                at_risk: e.at_risk.clone(),
                version: accepted.version,
                replayed: accepted.replayed,
            }),
            _ => Err(Error::Unavailable(
                "adjustment produced no StockAdjusted event".into(),
            )),
        }
    }

    /// The SKU's durable stock now.
    pub async fn stock(&self, sku: &Sku) -> Result<StockLevel, Error> {
        self.shared().ask(sku, |reply| ReadStock { reply }).await
    }

    /// What each line of reservation `id` holds now.
    pub async fn reservation(&self, id: ReservationId) -> Result<ReservationStatus, Error> {
        let skus = self.skus_of(id).await?;
        let statuses = join_all(skus.iter().map(|sku| self.line_status(sku, id))).await;
        let mut lines = Vec::with_capacity(skus.len());
        for (sku, status) in skus.into_iter().zip(statuses) {
            lines.push((sku, status?));
        }
        Ok(ReservationStatus { id, lines })
    }

    async fn line_status(&self, sku: &Sku, id: ReservationId) -> Result<LineStatus, Error> {
        self.shared()
            .ask(sku, |reply| ReadReservation { id, reply })
            .await
    }

    async fn skus_of(&self, id: ReservationId) -> Result<Vec<Sku>, Error> {
        self.inner
            .locator
            .skus(&id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("reservation {id}")))
    }

    /// Lets `sku`'s actor stop now if it has nothing in progress and no live hold, rather
    /// than after `idle_timeout`: for bulk loads, so that memory follows the SKUs in use,
    /// not the SKUs just imported. The next command loads it again from the log.
    pub fn rest(&self, sku: &Sku) {
        self.shared().rest(sku);
    }

    /// Tells the engine that `sku`'s stream has reached `version`, as a follower of the log
    /// (the projector) saw it. When another process appended to the log beside this engine
    /// (an operator tool), the SKU's running actor re-reads its stream, so its exact reads
    /// are not left behind until its next write. Cheap when the actor already knows.
    pub fn observe(&self, sku: &Sku, version: u64) {
        self.shared().observe(sku, version);
    }

    /// The event store the engine writes to (for audits and tools that read the log).
    pub fn store(&self) -> Arc<dyn EventStore> {
        self.shared().store.clone()
    }

    /// What the engine has done since it opened.
    pub fn stats(&self) -> EngineStats {
        self.shared().stats.read()
    }

    /// SKU actors running now.
    pub fn active_skus(&self) -> usize {
        self.shared().registry.active()
    }

    /// Stops taking commands, waits (up to `append_timeout`) for those in flight to be
    /// answered, then stops the actors. Dropping the last clone stops them too, without
    /// the wait: acknowledged commands are durable either way.
    pub async fn shutdown(self) {
        let shared = self.shared().clone();
        shared.close();
        let deadline = tokio::time::Instant::now() + shared.config.append_timeout;
        while (shared.waiting() > 0 || self.inner.orders_in_progress.load(Ordering::Acquire) > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if let Some(marker) = &self.inner.marker
            && self.inner.orders_in_progress.load(Ordering::Acquire) == 0
        {
            marker.leave();
        }
        drop(self);
    }
}

/// The refusal a commit or release meets on a line already resolved the same way.
fn already_resolved(sku: &Sku, id: ReservationId, resolution: Resolution) -> Error {
    Error::Rejected {
        sku: sku.clone(),
        rejection: Rejection::AlreadyResolved {
            reservation_id: id,
            resolution,
        },
    }
}

/// One line as its SKU holds it: the parts of a `StockReserved` an order needs.
#[derive(Debug, Clone)]
struct HeldLine {
    id: ReservationId,
    order_id: Option<OrderId>,
    qty: Quantity,
    at: Timestamp,
    expires_at: Timestamp,
    version: u64,
    replayed: bool,
}

fn held_line(accepted: &Accepted) -> Option<HeldLine> {
    accepted.events.iter().find_map(|e| match e {
        Event::StockReserved(r) => Some(HeldLine {
            id: r.reservation_id,
            order_id: r.order_id.clone(),
            qty: r.qty,
            at: r.at,
            expires_at: r.expires_at,
            version: accepted.version,
            replayed: accepted.replayed,
        }),
        _ => None,
    })
}

/// The error a refused order answers with, once its held lines were released. A transient
/// refusal would invite a retry; under the same key that retry finds only the released
/// lines, so a keyed order says so instead.
fn after_rollback(refusal: Error, keyed: bool, compensated: bool) -> Error {
    match refusal {
        Error::Unavailable(reason) if keyed && compensated => Error::RolledBack { reason },
        e @ Error::Overloaded { .. } if keyed && compensated => Error::RolledBack {
            reason: e.to_string(),
        },
        Error::Unavailable(reason) if compensated => {
            Error::Unavailable(format!("{reason}; the reservation was rolled back: retry"))
        }
        other => other,
    }
}

fn check_lines(lines: &[Line]) -> Result<(), Error> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(Error::Invalid(format!(
            "a reservation needs 1-{MAX_LINES} lines"
        )));
    }
    for (i, line) in lines.iter().enumerate() {
        if lines[..i].iter().any(|l| l.sku == line.sku) {
            return Err(Error::Invalid(format!(
                "SKU {} appears on two lines; merge them",
                line.sku
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_order_rolled_back_for_a_transient_reason_says_use_a_new_key() {
        let sku = Sku::new("A").expect("sku");
        let busy = || Error::Overloaded {
            sku: sku.clone(),
            waiting: 9,
        };
        let down = || Error::Unavailable("disk".into());
        assert!(matches!(
            after_rollback(busy(), true, true),
            Error::RolledBack { .. }
        ));
        assert!(
            matches!(after_rollback(down(), true, true), Error::RolledBack { reason } if reason == "disk")
        );
        // Without a key a retry is a new request; with nothing held there is nothing to undo.
        assert!(matches!(
            after_rollback(busy(), false, true),
            Error::Overloaded { .. }
        ));
        assert!(
            matches!(after_rollback(down(), false, true), Error::Unavailable(m) if m.contains("rolled back"))
        );
        assert!(matches!(
            after_rollback(busy(), true, false),
            Error::Overloaded { .. }
        ));
        // A business refusal stays what it is.
        let sold_out = Error::Rejected {
            sku: sku.clone(),
            rejection: Rejection::InsufficientStock {
                requested: Quantity::new(2),
                available: Quantity::new(1),
            },
        };
        assert_eq!(after_rollback(sold_out.clone(), true, true), sold_out);
    }

    #[test]
    fn orders_with_no_lines_too_many_or_a_repeated_sku_are_invalid() {
        let line = |s: &str| Line {
            sku: Sku::new(s).expect("sku"),
            qty: Quantity::new(1),
        };
        assert!(check_lines(&[]).is_err());
        assert!(check_lines(&[line("A"), line("A")]).is_err());
        let many: Vec<Line> = (0..=MAX_LINES).map(|i| line(&format!("S{i}"))).collect();
        assert!(check_lines(&many).is_err());
        assert!(check_lines(&[line("A"), line("B")]).is_ok());
    }
}

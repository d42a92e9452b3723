//! [`Inventory`]: the API a commerce backend calls. It validates and routes; every decision
//! is taken by the SKU's actor.
//!
//! A reservation may hold lines on several SKUs; every line carries the same reservation
//! id, so `commit` and `release` by id reach all of them. Reserving several lines is
//! all-or-nothing: if one line is refused, the lines already held are released before the
//! refusal is returned (and if that release cannot be written, the hold lapses at its TTL).
//!
//! Here: `Inventory`, opening it, and the single-SKU calls. Beside it: `saga` (orders of
//! several lines: held all or nothing, committed and released by id), `changes`
//! (extending, partly committing or releasing, and amending a reservation), `fair`
//! (purchase limits and the waitlist), `config` (what
//! `open` takes), `types` (the values the API takes and answers with), `guards` (the
//! in-progress count and the per-key turn) and `start_up` (the pass after a restart).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use futures::future::join_all;
use stockade_domain::{
    Adjust, Channel, Command, Commit, Event, OrderId, Part, Placement, PoolConfig, Quantity,
    ReceiveTransfer, RegisterSku, Rejection, Release, ReservationId, Reserve, Resolution,
    ShipTransfer, Sku, Timestamp, TransferId,
};
use stockade_store::{EventStore, MemoryStore, SqliteStore, StreamName};
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

mod changes;
mod config;
mod fair;
mod guards;
mod kits;
mod receipts;
mod saga;
mod start_up;
mod types;

pub use changes::Changed;
pub use config::{InventoryConfig, StoreConfig};
pub use fair::{FairSelling, MAX_PLACES_LISTED, WaitlistChange};
pub use kits::MAX_KIT_DEPTH;
pub use receipts::{BackorderLimit, Receipt, ReceiptChange};
pub use types::{
    Adjusted, Adjustment, Line, Origin, Registration, Reservation, ReservationStatus,
    ReserveOptions, ReservedLine, Resolved, Transfer, Transferred,
};

use guards::{InProgress, Turn, Turns};
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
    key_locks: Turns<KeyScope>,
    /// One lock per reservation being changed (extended, partly resolved, amended, or
    /// committed across several lines): such calls on one reservation run one at a time.
    reservation_locks: Turns<ReservationId>,
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
    /// Which SKUs are kits, as far as this engine has seen.
    pools: kits::Pools,
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
    /// let pool = PoolConfig::physical(Quantity::new(3), Quantity::ZERO);
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
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(config) => Arc::new(
                stockade_postgres::PostgresStore::connect(config)
                    .await
                    .map_err(|e| match e {
                        stockade_store::StoreError::InvalidRequest(m) => Error::Invalid(m),
                        stockade_store::StoreError::Unavailable(m) => Error::Unavailable(m),
                        other => Error::store("open PostgreSQL", &other),
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
                reservation_locks: DashMap::new(),
                default_channel,
                recovered: recovered_rx,
                orders_in_progress: AtomicUsize::new(0),
                marker,
                id_secret,
                pools: kits::Pools::default(),
                _threads: threads,
            }),
        })
    }

    fn shared(&self) -> &Arc<EngineCore> {
        &self.inner.shared
    }

    /// Executes a command that names what it creates (a transfer, a receipt). Without a
    /// key of the caller's, that name is the key: a retry whose answer was lost gets that
    /// answer, even once the thing is gone (when the writer could no longer refuse it),
    /// for as long as keys are kept; another command under a name already used is
    /// `duplicate`.
    async fn execute_named(
        &self,
        sku: &Sku,
        command: Command,
        mut request: RequestMeta,
        origin: &Origin,
        name: &str,
        duplicate: Rejection,
    ) -> Result<Accepted, Error> {
        let implicit = request.scope.is_none();
        if implicit {
            request.scope = Some(KeyScope::new(origin.principal.as_ref(), name)?);
        }
        match self.execute(sku, command, request).await {
            Err(Error::KeyReused { .. }) if implicit => Err(Error::Rejected {
                sku: sku.clone(),
                rejection: duplicate,
            }),
            other => other,
        }
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
        let request = origin.request(None)?;
        let plan = match &pool {
            PoolConfig::Kit { components } => Some(self.check_kit(sku, components).await?),
            _ => None,
        };
        let command = Command::RegisterSku(RegisterSku {
            sku: sku.clone(),
            pool,
        });
        let version = self.execute(sku, command, request).await?.version;
        if let Some(plan) = plan {
            self.remember_kit(sku, plan);
        }
        Ok(version)
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
        // A kit's components are checked first, through their actors: the actor's path.
        if self.shared().has_actor(sku) || matches!(pool, PoolConfig::Kit { .. }) {
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
                placement: Default::default(),
                sku: sku.clone(),
                qty,
            }],
            options,
        )
        .await
    }

    /// Changes a SKU's limit. With `expected_version`, refuses if the SKU moved since.
    pub async fn adjust(
        &self,
        sku: &Sku,
        adjustment: Adjustment,
        origin: &Origin,
    ) -> Result<Adjusted, Error> {
        let mut request = origin.request(None)?;
        self.refuse_kit(sku, "be adjusted (its stock is its components')")
            .await?;
        request.expected_version = adjustment.expected_version;
        let command = Command::Adjust(Adjust {
            change: adjustment.change,
            reason: adjustment.reason,
            reference: adjustment.reference,
            location: adjustment.location,
        });
        let accepted = self.execute(sku, command, request).await?;
        match accepted.events.last() {
            Some(Event::StockAdjusted(e)) => Ok(Adjusted {
                location: e.location.clone(),
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

    /// Ships `transfer.qty` units of `sku` from one of its locations to another: they leave
    /// `from` now (only units not promised to holds there may leave) and are in transit,
    /// neither sellable nor lost, until [`Inventory::receive_transfer`].
    pub async fn ship_transfer(
        &self,
        sku: &Sku,
        transfer: Transfer,
        origin: &Origin,
    ) -> Result<Transferred, Error> {
        let mut request = origin.request(None)?;
        self.refuse_kit(sku, "transfer stock (its stock is its components')")
            .await?;
        request.expected_version = transfer.expected_version;
        // Without a key of the caller's, the transfer id is the key: a retry of a shipment
        // whose answer was lost gets that answer, even once the transfer was received
        // (when the id is no longer in transit for the writer to refuse), for as long as
        // keys are kept. A different shipment under the same id is a duplicate.
        let name = format!("transfer:{}", transfer.transfer_id);
        let duplicate = Rejection::DuplicateTransfer {
            transfer_id: transfer.transfer_id.clone(),
        };
        let command = Command::ShipTransfer(ShipTransfer {
            transfer_id: transfer.transfer_id,
            from: transfer.from,
            to: transfer.to,
            qty: transfer.qty,
            reference: transfer.reference,
        });
        let accepted = self
            .execute_named(sku, command, request, origin, &name, duplicate)
            .await?;
        match accepted.events.last() {
            Some(Event::TransferShipped(e)) => Ok(Transferred {
                transfer_id: e.transfer_id.clone(),
                from: Some(e.from.clone()),
                to: e.to.clone(),
                qty: e.qty,
                received: false,
                version: accepted.version,
                replayed: accepted.replayed,
            }),
            _ => Err(Error::Unavailable(
                "a transfer produced no TransferShipped event".into(),
            )),
        }
    }

    /// Receives transfer `transfer_id` of `sku` at its destination, where its units can
    /// then be sold.
    pub async fn receive_transfer(
        &self,
        sku: &Sku,
        transfer_id: TransferId,
        origin: &Origin,
    ) -> Result<Transferred, Error> {
        let request = origin.request(None)?;
        self.refuse_kit(sku, "transfer stock (its stock is its components')")
            .await?;
        let command = Command::ReceiveTransfer(ReceiveTransfer { transfer_id });
        let accepted = self.execute(sku, command, request).await?;
        match accepted.events.last() {
            Some(Event::TransferReceived(e)) => Ok(Transferred {
                transfer_id: e.transfer_id.clone(),
                from: None,
                to: e.to.clone(),
                qty: e.qty,
                received: true,
                version: accepted.version,
                replayed: accepted.replayed,
            }),
            _ => Err(Error::Unavailable(
                "a receipt produced no TransferReceived event".into(),
            )),
        }
    }

    /// The SKU's durable stock now. A kit's is derived from its components', read at the
    /// same call: what whole kits they allow, and a version that moves with any of them.
    pub async fn stock(&self, sku: &Sku) -> Result<StockLevel, Error> {
        let level = self.stock_of_stream(sku).await?;
        if level.view.pool == stockade_domain::PoolKind::Kit {
            return self.derive_kit(sku, level).await;
        }
        Ok(level)
    }

    /// What `sku`'s own stream says, a kit's definition included.
    async fn stock_of_stream(&self, sku: &Sku) -> Result<StockLevel, Error> {
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

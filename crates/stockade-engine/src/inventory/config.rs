//! What [`Inventory::open`](super::Inventory::open) takes: where the events live, the
//! engine's settings and the clock.

use std::path::PathBuf;
use std::sync::Arc;

use stockade_store::EventStore;

use crate::clock::{Clock, SystemClock};
use crate::config::EngineConfig;

/// Where the events live.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded SQLite log, `stockade.db` in this directory (created if missing).
    Sqlite { data_dir: PathBuf },
    /// In memory: gone when the process ends. For tests and simulations.
    Memory,
    /// EventStoreDB (KurrentDB), the clustered store for production. `open` connects
    /// once to check the address and credentials.
    #[cfg(feature = "esdb")]
    EventStoreDb(stockade_esdb::EsdbConfig),
    /// PostgreSQL: one log that several `stockade serve` nodes share, each SKU's writer
    /// fenced by the expected revision. `open` connects and creates the tables if needed.
    #[cfg(feature = "postgres")]
    Postgres(stockade_postgres::PgConfig),
    /// Any other backend (a test wrapper, a store opened by the caller).
    Custom(Arc<dyn EventStore>),
}

/// Everything `Inventory::open` needs.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    pub store: StoreConfig,
    pub engine: EngineConfig,
    pub clock: Arc<dyn Clock>,
}

impl InventoryConfig {
    /// The production default: the embedded store in `data_dir`, the system clock.
    pub fn sqlite(data_dir: impl Into<PathBuf>) -> Self {
        Self::with_store(StoreConfig::Sqlite {
            data_dir: data_dir.into(),
        })
    }

    /// An in-memory store, for tests and simulations.
    pub fn memory() -> Self {
        Self::with_store(StoreConfig::Memory)
    }

    /// EventStoreDB at `url` (`esdb://host:2113?tls=false`, or a cluster's hosts), with
    /// the backend's defaults; use `with_store(StoreConfig::EventStoreDb(..))` to tune.
    #[cfg(feature = "esdb")]
    pub fn esdb(url: impl Into<String>) -> Self {
        Self::with_store(StoreConfig::EventStoreDb(stockade_esdb::EsdbConfig::new(
            url,
        )))
    }

    /// PostgreSQL at `url` (`postgres://user@host:5432/db`), schema `stockade`.
    #[cfg(feature = "postgres")]
    pub fn postgres(url: impl Into<String>) -> Self {
        Self::with_store(StoreConfig::Postgres(stockade_postgres::PgConfig::new(url)))
    }

    pub fn with_store(store: StoreConfig) -> Self {
        Self {
            store,
            engine: EngineConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }
}

//! Where an engine scenario keeps its events: the embedded SQLite file, a live
//! EventStoreDB when `STOCKADE_ESDB_URL` names one, or a live PostgreSQL when
//! `STOCKADE_PG_URL` does. A backend opens any number of engines
//! on the same log, which is how scenarios model a restart or a second node.

use stockade_engine::{Inventory, InventoryConfig, StoreConfig};
use stockade_esdb::EsdbConfig;

use crate::engine::{open_sqlite, test_engine};

#[derive(Debug)]
pub enum Backend {
    Sqlite(tempfile::TempDir),
    /// A fresh namespace on the live server: this scenario's streams only.
    Esdb(EsdbConfig),
    /// A fresh schema on the live PostgreSQL: this scenario's log only.
    Postgres(stockade_postgres::PgConfig),
}

impl Backend {
    /// An empty SQLite log in a temporary directory.
    pub fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    /// The live server, or `None` after saying (once) that these scenarios were skipped.
    pub fn live_esdb() -> Option<Self> {
        stockade_esdb::testkit::live_config("engine scenarios").map(Self::Esdb)
    }

    /// The live PostgreSQL, or `None` after saying (once) that these scenarios were skipped.
    pub fn live_postgres() -> Option<Self> {
        stockade_postgres::testkit::live_config("engine scenarios").map(Self::Postgres)
    }

    /// A new engine on this backend's log, with the test engine settings.
    pub async fn open(&self) -> Inventory {
        match self {
            Backend::Sqlite(dir) => open_sqlite(dir.path()).await,
            Backend::Esdb(config) => Inventory::open(
                InventoryConfig::with_store(StoreConfig::EventStoreDb(config.clone()))
                    .engine(test_engine()),
            )
            .await
            .unwrap(),
            Backend::Postgres(config) => Inventory::open(
                InventoryConfig::with_store(StoreConfig::Postgres(config.clone()))
                    .engine(test_engine()),
            )
            .await
            .unwrap(),
        }
    }
}

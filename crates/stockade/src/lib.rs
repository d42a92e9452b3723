//! Stockade: event-sourced inventory reservations that never oversell.
//!
//! Open an [`Inventory`] (the embedded SQLite log in a data directory by default), register
//! SKUs, then reserve, commit and release. Every accepted command is durable before it is
//! acknowledged; every refusal is a typed [`Error`] that wrote nothing.
//!
//! ```
//! use std::time::Duration;
//!
//! use stockade::{
//!     Error, Inventory, InventoryConfig, Line, Origin, PoolConfig, Quantity, ReserveOptions, Sku,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = tempfile::tempdir()?;
//! let inventory = Inventory::open(InventoryConfig::sqlite(data.path())).await?;
//!
//! let tee = Sku::new("TEE-M")?;
//! let cap = Sku::new("CAP")?;
//! let shelf = |n| PoolConfig::physical(Quantity::new(n), Quantity::ZERO);
//! inventory.register(&tee, shelf(10), &Origin::default()).await?;
//! inventory.register(&cap, shelf(1), &Origin::default()).await?;
//!
//! // A cart over two SKUs: both lines are held, or neither.
//! let cart = vec![
//!     Line::new(tee.clone(), Quantity::new(2)),
//!     Line::new(cap.clone(), Quantity::new(1)),
//! ];
//! let options = ReserveOptions {
//!     ttl: Some(Duration::from_secs(600)),
//!     // A retry with the same key returns this reservation instead of making another.
//!     origin: Origin::default().idempotency_key("cart-7f3a"),
//!     ..ReserveOptions::default()
//! };
//! let held = inventory.reserve_order(cart, options).await?;
//!
//! // The last cap is held: a second buyer is refused, and nothing is written for it.
//! let late = inventory.reserve(&cap, Quantity::new(1), ReserveOptions::default()).await;
//! assert!(matches!(late, Err(Error::Rejected { .. })));
//!
//! inventory.commit(held.id, &Origin::default()).await?;
//! let tees = inventory.stock(&tee).await?;
//! assert_eq!(tees.view.limit, Some(Quantity::new(8)));
//! # inventory.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! To keep the log in EventStoreDB instead (several app nodes, a replicated store), open
//! with `InventoryConfig::esdb("esdb://node1:2113,node2:2113,node3:2113")` (feature `esdb`,
//! off by default), or in PostgreSQL with `InventoryConfig::postgres("postgres://app@db/shop")`
//! (feature `postgres`, off by default); the repository's `docs/operations.md` covers clusters and failover,
//! and `docs/embedding.md` the whole of embedding this crate.
//!
//! The crates underneath, for what this one does not re-export: [`domain`] (the pure rules),
//! [`store`] (the event store port and backends), [`engine`] (the SKU actors).

pub use stockade_domain as domain;
pub use stockade_engine as engine;
pub use stockade_store as store;

/// The EventStoreDB backend (feature `esdb`, off by default: an embedded-only build does
/// not compile the gRPC client).
#[cfg(feature = "esdb")]
pub use stockade_esdb::{EsdbConfig, EsdbStore};

/// The PostgreSQL backend (feature `postgres`, off by default).
#[cfg(feature = "postgres")]
pub use stockade_postgres::{PgConfig, PostgresStore};

pub use stockade_domain::{
    Channel, CustomerId, OrderId, PoolConfig, Principal, Quantity, Rejection, ReservationId,
    Resolution, Sku, StockChange, StockView, Timestamp, WaitlistPlace,
};
pub use stockade_engine::{
    Adjusted, Adjustment, Clock, EngineConfig, Error, FairSelling, FairSellingView, Inventory,
    InventoryConfig, Line, LineStatus, ManualClock, Origin, Registration, Reservation,
    ReservationStatus, ReserveOptions, Resolved, StockLevel, StoreConfig, SystemClock,
    WaitlistChange,
};

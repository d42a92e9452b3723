//! The read-model database: SQLite beside the event store (`projections.db`).
//!
//! Invariant: every table derived from the log changes in the same transaction as the
//! checkpoint, so after any crash the tables hold exactly the effect of the events up to
//! the checkpoint. A restart resumes after it; nothing is applied twice or skipped.
//!
//! Tables:
//! - `checkpoint`: the last projected position and how many events that is;
//! - `stock_levels`: one row per SKU (a kit's derived from its components);
//! - `stock_locations`: one row per location of a SKU registered with locations;
//! - `kit_parts`: each kit flattened into the plain SKUs it comes down to;
//! - `reservations`: one row per (reservation, SKU) line, looked up by id or by order;
//! - `alerts`: low stock, out of stock, back in stock and short, as they happen;
//! - `notices`: the outbox of freshness notices, by `seq`;
//! - `thresholds`: configuration (low-stock threshold per SKU), kept across rebuilds;
//! - `delivery_cursors`: how far each delivery channel has read the outbox;
//! - `dead_letters`: notices a channel gave up on, until replayed;
//! - `corrections`: every repair reconciliation made, as an audit trail.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use stockade_domain::{HoldFacts, PoolKind, Quantity, Sku, Timestamp};
use stockade_store::Position;

use crate::ProjectionError;
use crate::model::{
    DEFAULT_LOW_STOCK_THRESHOLD, Level, LocationLevel, LocationRow, Notice, Status, StockRow,
};

mod delivery;
mod project;
mod schema;

pub use project::{Change, KitParts, ReservationChange, kit_row};
use schema::{DERIVED, MIGRATIONS, SCHEMA, SCHEMA_VERSION};

/// File name of the read models inside the data directory.
pub const FILE: &str = "projections.db";

/// How far the read models have got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub position: Position,
    /// Notices numbered so far (one per SKU event, plus one per kit an event moved): the
    /// `seq` of the last notice.
    pub events: u64,
}

/// A kind of alert, as the `alerts` table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// Availability fell to the threshold or below.
    LowStock,
    /// Nothing more can be reserved.
    OutOfStock,
    /// Units became available again after being out of stock.
    BackInStock,
    /// More is promised than exists.
    Short,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::LowStock => "low_stock",
            AlertKind::OutOfStock => "out_of_stock",
            AlertKind::BackInStock => "back_in_stock",
            AlertKind::Short => "short",
        }
    }

    /// The alert a move from `before` to `after` raises, if any.
    pub fn on_transition(before: Option<Status>, after: Status) -> Option<AlertKind> {
        match (before, after) {
            (Some(b), a) if b == a => None,
            (_, Status::Short) => Some(AlertKind::Short),
            (_, Status::OutOfStock) => Some(AlertKind::OutOfStock),
            (Some(Status::OutOfStock | Status::Short), Status::InStock | Status::LowStock) => {
                Some(AlertKind::BackInStock)
            }
            (_, Status::LowStock) => Some(AlertKind::LowStock),
            _ => None,
        }
    }
}

/// One alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    pub seq: u64,
    pub sku: String,
    pub kind: String,
    pub available: Option<u64>,
    pub threshold: u64,
    pub version: u64,
    pub at: Timestamp,
    /// When, and by whom, an operator acknowledged it.
    pub acknowledged: Option<(Timestamp, String)>,
}

/// A notice a channel gave up on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub id: u64,
    pub channel: String,
    pub notice: Notice,
    pub error: String,
    pub attempts: u32,
    pub failed_at: Timestamp,
}

/// One reservation line as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReservationRow {
    pub id: String,
    pub sku: String,
    pub order_id: Option<String>,
    pub qty: u64,
    pub channel: String,
    pub state: String,
    pub reserved_at: Timestamp,
    pub expires_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// A `reservations` row selected as `id, sku, order_id, qty, channel, state,
/// reserved_at, expires_at, resolved_at`.
fn reservation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReservationRow> {
    Ok(ReservationRow {
        id: r.get(0)?,
        sku: r.get(1)?,
        order_id: r.get(2)?,
        qty: to_u64(r.get(3)?),
        channel: r.get(4)?,
        state: r.get(5)?,
        reserved_at: Timestamp::from_millis(to_u64(r.get(6)?)),
        expires_at: Timestamp::from_millis(to_u64(r.get(7)?)),
        resolved_at: r
            .get::<_, Option<i64>>(8)?
            .map(|t| Timestamp::from_millis(to_u64(t))),
    })
}

/// The read models. On a file, writes go through one connection and reads through another,
/// so a read never waits for a batch to commit (WAL); reads do wait for each other. In
/// memory, both share one connection.
#[derive(Debug, Clone)]
pub struct ReadModels {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

fn sql(e: rusqlite::Error) -> ProjectionError {
    ProjectionError::ReadModel(e.to_string())
}

fn lock(c: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A hold's parts as the `reservations.parts` column keeps them (NULL: none recorded).
fn parts_column(parts: &[stockade_domain::Part]) -> Option<String> {
    (!parts.is_empty())
        .then(|| serde_json::to_string(parts).ok())
        .flatten()
}

/// The parts read back; a damaged column is an error, not a guess (the fold would put the
/// hold's units back at the wrong location).
fn parts_from_column(text: Option<String>) -> rusqlite::Result<Vec<stockade_domain::Part>> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        }),
    }
}

impl ReadModels {
    /// Opens (creating if needed) the read models in `path`.
    pub fn open(path: &Path) -> Result<Self, ProjectionError> {
        // Owner-only, like the log: it holds every reservation's order and channel.
        stockade_store::files::private_file(path)
            .map_err(|e| ProjectionError::ReadModel(format!("create {}: {e}", path.display())))?;
        let writer = Connection::open(path).map_err(sql)?;
        stockade_store::sqlite::fixed_plans(&writer).map_err(sql)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(sql)?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(ProjectionError::ReadModel(format!(
                "{} has schema version {version}; this build reads up to {SCHEMA_VERSION}",
                path.display()
            )));
        }
        // An existing file's tables are kept (CREATE ... IF NOT EXISTS): bring them up to
        // date first. A new file (version 0) gets the current tables whole.
        // Each step commits together with the version it reaches, so a step that fails
        // leaves the file at the version before it, to be tried again as a whole.
        if version >= 1 {
            for (reached, step) in (version + 1..).zip(
                MIGRATIONS
                    .iter()
                    .skip(usize::try_from(version - 1).unwrap_or(0)),
            ) {
                writer
                    .execute_batch(&format!(
                        "BEGIN; {step} PRAGMA user_version = {reached}; COMMIT;"
                    ))
                    .map_err(|e| {
                        let _ = writer.execute_batch("ROLLBACK");
                        sql(e)
                    })?;
            }
        }
        writer.execute_batch(SCHEMA).map_err(sql)?;
        writer
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(sql)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        // Another process writing (a CLI beside the server) makes us wait, not fail.
        reader
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        stockade_store::sqlite::fixed_plans(&reader).map_err(sql)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Read models in a temporary in-memory database (tests, simulations).
    pub fn in_memory() -> Result<Self, ProjectionError> {
        // One connection for both: a second connection to a shared-cache memory database
        // would take table locks and fail (SQLITE_LOCKED) whenever the two overlap.
        let conn = Connection::open_in_memory().map_err(sql)?;
        stockade_store::sqlite::fixed_plans(&conn).map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Self {
            writer: conn.clone(),
            reader: conn,
        })
    }

    /// Runs `f` on the reader connection, off the async threads. Crate-private: other
    /// crates ask for what they need through the methods below, never for a connection.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&lock(&reader)))
            .await
            .map_err(|e| ProjectionError::ReadModel(e.to_string()))?
    }

    /// Every row of every table derived from the log, as text, in a stable order: two
    /// read models built from the same log (one followed live, one rebuilt) dump the same.
    pub async fn dump_derived(&self) -> Result<Vec<String>, ProjectionError> {
        self.read(|c| {
            let mut rows = Vec::new();
            for (table, order) in [
                ("checkpoint", "id"),
                ("stock_levels", "sku"),
                ("stock_locations", "sku, location"),
                ("kit_parts", "kit, sku"),
                ("reservations", "id, sku"),
                ("alerts", "seq"),
                ("notices", "seq"),
            ] {
                let mut stmt = c
                    .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
                    .map_err(sql)?;
                let columns = stmt.column_count();
                let mut query = stmt.query([]).map_err(sql)?;
                while let Some(row) = query.next().map_err(sql)? {
                    let cells = (0..columns)
                        .map(|i| row.get_ref(i).map(|v| format!("{v:?}")))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(sql)?;
                    rows.push(format!("{table}: {}", cells.join(" | ")));
                }
            }
            Ok(rows)
        })
        .await
    }

    /// Runs `f` in one write transaction, off the async threads (crate-private, as
    /// `read`).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&writer);
            let tx = conn.transaction().map_err(sql)?;
            let out = f(&tx)?;
            tx.commit().map_err(sql)?;
            Ok(out)
        })
        .await
        .map_err(|e| ProjectionError::ReadModel(e.to_string()))?
    }

    pub async fn checkpoint(&self) -> Result<Checkpoint, ProjectionError> {
        self.read(checkpoint).await
    }

    /// Empties every derived table: the next run projects the log from its start.
    pub async fn clear(&self) -> Result<(), ProjectionError> {
        self.write(|tx| {
            for table in DERIVED {
                tx.execute(&format!("DELETE FROM {table}"), [])
                    .map_err(sql)?;
            }
            Ok(())
        })
        .await
    }

    /// Applies a batch of changes and moves the checkpoint to `to`, atomically. Returns
    /// the notices, numbered and complete, for delivery once this has committed.
    pub async fn apply(
        &self,
        changes: Vec<Change>,
        to: Position,
    ) -> Result<Vec<Notice>, ProjectionError> {
        self.write(move |tx| project::apply(tx, changes, to)).await
    }

    pub async fn stock(&self, sku: &Sku) -> Result<Option<StockRow>, ProjectionError> {
        let sku = sku.to_string();
        self.read(move |c| stock_row_in(c, &sku)).await
    }

    /// Stock rows in SKU order, after `after` (exclusive), at most `limit`.
    pub async fn stock_page(
        &self,
        after: Option<Sku>,
        limit: usize,
    ) -> Result<Vec<StockRow>, ProjectionError> {
        self.stock_search(after, "", limit).await
    }

    /// As `stock_page`, only the SKUs that start with `prefix` (a range of the primary
    /// key: as fast on a million SKUs as on ten).
    pub async fn stock_search(
        &self,
        after: Option<Sku>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StockRow>, ProjectionError> {
        let after = after.map(|s| s.to_string()).unwrap_or_default();
        // SKU characters are [A-Za-z0-9._-], all below '~': prefix..prefix~ is the range.
        let (low, high) = (prefix.to_owned(), format!("{prefix}~"));
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "{SELECT_STOCK} WHERE sku > ?1 AND sku >= ?2 AND sku < ?3 ORDER BY sku LIMIT ?4"
                ))
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![after, low, high, to_i64(limit as u64)], stock_row)
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql).and_then(|row| row)).collect()
        })
        .await
    }

    /// Each location of `sku`, by priority then id (none for a SKU at the one default
    /// location).
    pub async fn locations(&self, sku: &Sku) -> Result<Vec<LocationRow>, ProjectionError> {
        let sku = sku.to_string();
        self.read(move |c| locations_in(c, &sku)).await
    }

    /// The SKUs stocked at `location`, in SKU order after `after`, at most `limit`: each
    /// SKU's row with its row at that location (a storefront's "in stock at Berlin").
    /// Only SKUs that start with `prefix`, as `stock_search`.
    pub async fn stock_at(
        &self,
        location: &str,
        after: Option<Sku>,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(StockRow, LocationRow)>, ProjectionError> {
        let location = location.to_owned();
        let after = after.map(|s| s.to_string()).unwrap_or_default();
        let (low, high) = (prefix.to_owned(), format!("{prefix}~"));
        self.read(move |c| {
            // One read transaction: the rows of one batch, the SKU's beside its location's.
            let c = &c.unchecked_transaction().map_err(sql)?;
            let mut stmt = c
                .prepare_cached(&format!(
                    "{SELECT_LOCATION} WHERE location = ?1 AND sku > ?2 AND sku >= ?3
                     AND sku < ?4 ORDER BY sku LIMIT ?5"
                ))
                .map_err(sql)?;
            let located = stmt
                .query_map(
                    params![location, after, low, high, to_i64(limit as u64)],
                    location_row,
                )
                .map_err(sql)?
                .map(|r| r.map_err(sql).and_then(|row| row))
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(located.len());
            for at in located {
                // Both rows change in one transaction, so a location row has its SKU's.
                if let Some(row) = stock_row_in(c, at.sku.as_str())? {
                    out.push((row, at));
                }
            }
            Ok(out)
        })
        .await
    }

    /// `sku`'s row version and its location rows, read together.
    pub async fn stock_with_locations(
        &self,
        sku: &Sku,
    ) -> Result<Option<(u64, Vec<LocationRow>)>, ProjectionError> {
        let sku = sku.to_string();
        self.read(move |c| {
            let tx = c.unchecked_transaction().map_err(sql)?;
            let Some(row) = stock_row_in(&tx, &sku)? else {
                return Ok(None);
            };
            Ok(Some((row.version, locations_in(&tx, &sku)?)))
        })
        .await
    }

    /// A kit's row, its parts and their rows, read together (`None`: not a kit on
    /// record, or no row).
    pub async fn kit_inputs(
        &self,
        kit: &Sku,
    ) -> Result<Option<(StockRow, KitParts, Vec<Option<StockRow>>)>, ProjectionError> {
        let kit = kit.to_string();
        self.read(move |c| {
            let tx = c.unchecked_transaction().map_err(sql)?;
            let parts = kit_parts_in(&tx, &kit)?;
            let Some(row) = stock_row_in(&tx, &kit)? else {
                return Ok(None);
            };
            if parts.parts.is_empty() {
                return Ok(None);
            }
            let rows = parts
                .parts
                .iter()
                .map(|(sku, _)| stock_row_in(&tx, sku))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((row, parts, rows)))
        })
        .await
    }

    /// The lines of a reservation (one per SKU).
    pub async fn reservation(&self, id: &str) -> Result<Vec<ReservationRow>, ProjectionError> {
        let id = id.to_owned();
        self.reservations_where("id = ?1", id).await
    }

    /// Every reservation line of an order.
    pub async fn order(&self, order_id: &str) -> Result<Vec<ReservationRow>, ProjectionError> {
        let order_id = order_id.to_owned();
        self.reservations_where("order_id = ?1", order_id).await
    }

    /// Reservation lines in `(id, sku)` order after `after`, at most `limit` (an export).
    pub async fn reservations_page(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<ReservationRow>, ProjectionError> {
        let (id, sku) = after.unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, sku, order_id, qty, channel, state, reserved_at, expires_at,
                            resolved_at
                     FROM reservations WHERE (id, sku) > (?1, ?2) ORDER BY id, sku LIMIT ?3",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![id, sku, limit], reservation_row)
                .map_err(sql)?;
            rows.collect::<Result<_, _>>().map_err(sql)
        })
        .await
    }

    /// What each hold `(sku, reservation id)` was, for the holds the read models know:
    /// the projector's [`HoldFacts`] when a hold ends, with the hold's order. One query
    /// per batch of keys.
    pub async fn hold_facts(
        &self,
        keys: Vec<(String, String)>,
    ) -> Result<HashMap<(String, String), (HoldFacts, Option<String>)>, ProjectionError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT qty, reserved_at, expires_at, order_id, parts FROM reservations
                     WHERE id = ?1 AND sku = ?2",
                )
                .map_err(sql)?;
            let mut found = HashMap::with_capacity(keys.len());
            for (sku, id) in keys {
                let row = stmt
                    .query_row(params![id, sku], |r| {
                        Ok((
                            HoldFacts {
                                qty: Quantity::new(to_u64(r.get(0)?)),
                                reserved_at: Timestamp::from_millis(to_u64(r.get(1)?)),
                                expires_at: Timestamp::from_millis(to_u64(r.get(2)?)),
                                parts: parts_from_column(r.get(4)?)?,
                            },
                            r.get::<_, Option<String>>(3)?,
                        ))
                    })
                    .optional()
                    .map_err(sql)?;
                if let Some(facts) = row {
                    found.insert((sku, id), facts);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn reservations_where(
        &self,
        condition: &'static str,
        value: String,
    ) -> Result<Vec<ReservationRow>, ProjectionError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT id, sku, order_id, qty, channel, state, reserved_at, expires_at,
                            resolved_at
                     FROM reservations WHERE {condition} ORDER BY sku"
                ))
                .map_err(sql)?;
            let rows = stmt.query_map([value], reservation_row).map_err(sql)?;
            rows.collect::<Result<_, _>>().map_err(sql)
        })
        .await
    }

    /// Alerts after `after_seq`, oldest first, at most `limit`.
    pub async fn alerts(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Alert>, ProjectionError> {
        self.alerts_where(after_seq, limit, false).await
    }

    /// Alerts no operator has acknowledged yet, oldest first.
    pub async fn open_alerts(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Alert>, ProjectionError> {
        self.alerts_where(after_seq, limit, true).await
    }

    /// Records that `by` acknowledged alert `seq`; `false` if there is no such alert. A
    /// second acknowledgement keeps the first.
    pub async fn acknowledge_alert(&self, seq: u64, by: &str) -> Result<bool, ProjectionError> {
        let by = by.to_owned();
        self.write(move |tx| {
            let exists = tx
                .query_row("SELECT 1 FROM alerts WHERE seq = ?1", [to_i64(seq)], |_| {
                    Ok(())
                })
                .optional()
                .map_err(sql)?
                .is_some();
            if exists {
                tx.execute(
                    "INSERT OR IGNORE INTO alert_acks (seq, at, by) VALUES (?1, ?2, ?3)",
                    params![to_i64(seq), now_millis(), by],
                )
                .map_err(sql)?;
            }
            Ok(exists)
        })
        .await
    }

    async fn alerts_where(
        &self,
        after_seq: u64,
        limit: usize,
        open_only: bool,
    ) -> Result<Vec<Alert>, ProjectionError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT a.seq, a.sku, a.kind, a.available, a.threshold, a.version, a.at,
                            k.at, k.by
                     FROM alerts a LEFT JOIN alert_acks k ON k.seq = a.seq
                     WHERE a.seq > ?1 AND (?3 = 0 OR k.seq IS NULL) ORDER BY a.seq LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(
                    params![
                        to_i64(after_seq),
                        to_i64(limit as u64),
                        i64::from(open_only)
                    ],
                    |r| {
                        Ok(Alert {
                            seq: to_u64(r.get(0)?),
                            sku: r.get(1)?,
                            kind: r.get(2)?,
                            available: r.get::<_, Option<i64>>(3)?.map(to_u64),
                            threshold: to_u64(r.get(4)?),
                            version: to_u64(r.get(5)?),
                            at: Timestamp::from_millis(to_u64(r.get(6)?)),
                            acknowledged: match (
                                r.get::<_, Option<i64>>(7)?,
                                r.get::<_, Option<String>>(8)?,
                            ) {
                                (Some(at), Some(by)) => {
                                    Some((Timestamp::from_millis(to_u64(at)), by))
                                }
                                _ => None,
                            },
                        })
                    },
                )
                .map_err(sql)?;
            rows.collect::<Result<_, _>>().map_err(sql)
        })
        .await
    }

    /// Notices after `after_seq`, oldest first, at most `limit`: the outbox.
    pub async fn notices(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Notice>, ProjectionError> {
        self.read(move |c| notices_after(c, after_seq, limit)).await
    }

    /// Drops old notices from the outbox: all but the last `keep`, and never one a
    /// delivery channel has yet to read. Returns how many went.
    pub async fn prune_notices(&self, keep: u64) -> Result<u64, ProjectionError> {
        self.write(move |tx| {
            let events = checkpoint(tx)?.events;
            let oldest_unread: Option<i64> = tx
                .query_row("SELECT MIN(seq) FROM delivery_cursors", [], |r| r.get(0))
                .map_err(sql)?;
            let mut upto = events.saturating_sub(keep);
            if let Some(cursor) = oldest_unread {
                upto = upto.min(to_u64(cursor));
            }
            let gone = tx
                .execute("DELETE FROM notices WHERE seq <= ?1", [to_i64(upto)])
                .map_err(sql)?;
            Ok(gone as u64)
        })
        .await
    }

    /// Sets the low-stock threshold of `sku`. The SKU's row takes the new status at once
    /// (a short SKU stays short), so the row always agrees with the current threshold.
    pub async fn set_threshold(&self, sku: &Sku, threshold: u64) -> Result<(), ProjectionError> {
        let sku = sku.to_string();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO thresholds (sku, low_stock) VALUES (?1, ?2)
                 ON CONFLICT (sku) DO UPDATE SET low_stock = excluded.low_stock",
                params![sku, to_i64(threshold)],
            )
            .map_err(sql)?;
            if let Some(mut row) = stock_row_in(tx, &sku)? {
                let short = row.status == Status::Short;
                row.status = crate::model::status_of(&row.level, short, threshold);
                put_stock(tx, &row)?;
            }
            for mut row in locations_in(tx, &sku)? {
                row.status = row.level.status(threshold);
                put_location(tx, &row)?;
            }
            Ok(())
        })
        .await
    }

    /// The low-stock threshold of `sku`.
    pub async fn threshold(&self, sku: &Sku) -> Result<u64, ProjectionError> {
        let sku = sku.to_string();
        self.read(move |c| threshold(c, &sku)).await
    }

    /// Replaces a drifted row with what the log says, if the row is still at the version
    /// it was checked at, and records the correction. Returns whether it did.
    pub async fn repair(
        &self,
        correction: &crate::reconcile::Correction,
    ) -> Result<bool, ProjectionError> {
        let encode = |row: &StockRow| {
            serde_json::to_string(row)
                .map_err(|e| ProjectionError::ReadModel(format!("encode row: {e}")))
        };
        let (mut found, mut expected) = (encode(&correction.found)?, encode(&correction.expected)?);
        if !correction.locations.is_empty() {
            // The locations beside the row, in the same two pictures.
            let (was, now): (Vec<_>, Vec<_>) = correction.locations.iter().cloned().unzip();
            found = with_locations(&found, &was)?;
            expected = with_locations(&expected, &now)?;
        }
        let row = correction.expected.clone();
        let located: Vec<LocationRow> = correction
            .locations
            .iter()
            .map(|(_, now)| now.clone())
            .collect();
        let checked_version = correction.found.version;
        self.write(move |tx| {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM stock_levels WHERE sku = ?1",
                    [row.sku.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if current.map(to_u64) != Some(checked_version) {
                return Ok(false);
            }
            put_stock(tx, &row)?;
            for at in &located {
                put_location(tx, at)?;
            }
            tx.execute(
                "INSERT INTO corrections (sku, found, expected, at) VALUES (?1, ?2, ?3, ?4)",
                params![row.sku.as_str(), found, expected, now_millis()],
            )
            .map_err(sql)?;
            Ok(true)
        })
        .await
    }

    /// Corrections recorded after `after_seq`, oldest first: `(seq, sku, found, expected)`
    /// with the rows as JSON.
    pub async fn corrections(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String, String, String)>, ProjectionError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, sku, found, expected FROM corrections WHERE seq > ?1
                     ORDER BY seq LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![to_i64(after_seq), to_i64(limit as u64)], |r| {
                    Ok((to_u64(r.get(0)?), r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(sql)?;
            rows.collect::<Result<_, _>>().map_err(sql)
        })
        .await
    }

    /// Overwrites one location row (a test's corruption; reconciliation uses `repair`).
    pub async fn put_location_row(&self, row: LocationRow) -> Result<(), ProjectionError> {
        self.write(move |tx| put_location(tx, &row)).await
    }

    /// Overwrites one stock row (a test's corruption; reconciliation uses `repair`).
    pub async fn put_stock_row(&self, row: StockRow) -> Result<(), ProjectionError> {
        self.write(move |tx| {
            put_stock(tx, &row)?;
            Ok(())
        })
        .await
    }
}

/// A row's JSON with `locations` beside its fields.
fn with_locations<T: serde::Serialize>(
    row: &str,
    locations: &T,
) -> Result<String, ProjectionError> {
    let fail = |e: serde_json::Error| ProjectionError::ReadModel(format!("encode row: {e}"));
    let mut value: serde_json::Value = serde_json::from_str(row).map_err(fail)?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "locations".into(),
            serde_json::to_value(locations).map_err(fail)?,
        );
    }
    serde_json::to_string(&value).map_err(fail)
}

fn now_millis() -> i64 {
    to_i64(Timestamp::from_system_time(std::time::SystemTime::now()).as_millis())
}

const SELECT_STOCK: &str =
    "SELECT sku, pool, on_hand, reserved, available, status, version, updated_at,
            backorder_limit, backordered, incoming, per_customer, waitlist FROM stock_levels";

fn stock_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StockRow, ProjectionError>> {
    let sku: String = r.get(0)?;
    let pool: String = r.get(1)?;
    let status: String = r.get(5)?;
    let parsed = (|| {
        let sku = Sku::new(sku.clone()).map_err(|e| e.to_string())?;
        let pool = [
            PoolKind::Physical,
            PoolKind::Digital,
            PoolKind::PrintOnDemand,
            PoolKind::Kit,
        ]
        .into_iter()
        .find(|p| p.as_str() == pool)
        .ok_or_else(|| format!("unknown pool {pool:?}"))?;
        let status = Status::parse(&status).ok_or_else(|| format!("unknown status {status:?}"))?;
        Ok::<_, String>((sku, pool, status))
    })();
    Ok(match parsed {
        Ok((sku, pool, status)) => Ok(StockRow {
            sku,
            pool,
            level: Level {
                on_hand: r.get::<_, Option<i64>>(2)?.map(to_u64),
                reserved: to_u64(r.get(3)?),
                available: r.get::<_, Option<i64>>(4)?.map(to_u64),
                backorder_limit: to_u64(r.get(8)?),
                backordered: to_u64(r.get(9)?),
                incoming: to_u64(r.get(10)?),
                per_customer: r.get::<_, Option<i64>>(11)?.map(to_u64),
                waitlist: to_u64(r.get(12)?),
            },
            status,
            version: to_u64(r.get(6)?),
            updated_at: Timestamp::from_millis(to_u64(r.get(7)?)),
        }),
        Err(reason) => Err(ProjectionError::ReadModel(format!(
            "stock row {sku}: {reason}"
        ))),
    })
}

const SELECT_LOCATION: &str = "SELECT sku, location, priority, on_hand, safety_stock, reserved,
    available, shortfall, incoming, status, version, updated_at, backorder_limit, backordered
    FROM stock_locations";

fn location_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<LocationRow, ProjectionError>> {
    let sku: String = r.get(0)?;
    let status: String = r.get(9)?;
    let level = LocationLevel {
        location: r.get(1)?,
        priority: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
        on_hand: to_u64(r.get(3)?),
        safety_stock: to_u64(r.get(4)?),
        reserved: to_u64(r.get(5)?),
        available: to_u64(r.get(6)?),
        shortfall: to_u64(r.get(7)?),
        incoming: to_u64(r.get(8)?),
        backorder_limit: to_u64(r.get(12)?),
        backordered: to_u64(r.get(13)?),
    };
    let (version, updated_at) = (to_u64(r.get(10)?), to_u64(r.get(11)?));
    Ok(match (Sku::new(sku.clone()), Status::parse(&status)) {
        (Ok(sku), Some(status)) => Ok(LocationRow {
            sku,
            level,
            status,
            version,
            updated_at: Timestamp::from_millis(updated_at),
        }),
        _ => Err(ProjectionError::ReadModel(format!(
            "location row {sku}@{}: unreadable SKU or status {status:?}",
            level.location
        ))),
    })
}

fn put_location(tx: &Transaction<'_>, row: &LocationRow) -> Result<(), ProjectionError> {
    let l = &row.level;
    cached(
        tx,
        "INSERT OR REPLACE INTO stock_locations (sku, location, priority, on_hand, safety_stock,
             reserved, available, shortfall, incoming, status, version, updated_at,
             backorder_limit, backordered)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            row.sku.as_str(),
            l.location,
            i64::from(l.priority),
            to_i64(l.on_hand),
            to_i64(l.safety_stock),
            to_i64(l.reserved),
            to_i64(l.available),
            to_i64(l.shortfall),
            to_i64(l.incoming),
            row.status.as_str(),
            to_i64(row.version),
            to_i64(row.updated_at.as_millis()),
            to_i64(l.backorder_limit),
            to_i64(l.backordered),
        ],
    )
    .map_err(sql)?;
    Ok(())
}

/// `sku`'s row as stored.
pub(crate) fn stock_row_in(c: &Connection, sku: &str) -> Result<Option<StockRow>, ProjectionError> {
    c.prepare_cached(&format!("{SELECT_STOCK} WHERE sku = ?1"))
        .map_err(sql)?
        .query_row([sku], stock_row)
        .optional()
        .map_err(sql)?
        .transpose()
}

/// Each location row of `sku`, by priority then id.
fn locations_in(c: &Connection, sku: &str) -> Result<Vec<LocationRow>, ProjectionError> {
    let mut stmt = c
        .prepare_cached(&format!(
            "{SELECT_LOCATION} WHERE sku = ?1 ORDER BY priority, location"
        ))
        .map_err(sql)?;
    let rows = stmt.query_map([sku], location_row).map_err(sql)?;
    rows.map(|r| r.map_err(sql).and_then(|row| row)).collect()
}

/// The kits `sku` is part of, in name order.
pub(crate) fn kits_containing(c: &Connection, sku: &str) -> Result<Vec<String>, ProjectionError> {
    let mut stmt = c
        .prepare_cached("SELECT kit FROM kit_parts WHERE sku = ?1 ORDER BY kit")
        .map_err(sql)?;
    let kits = stmt.query_map([sku], |r| r.get(0)).map_err(sql)?;
    kits.collect::<Result<_, _>>().map_err(sql)
}

/// A kit's parts (none: `sku` is not a kit), in name order.
pub(crate) fn kit_parts_in(
    c: &Connection,
    kit: &str,
) -> Result<project::KitParts, ProjectionError> {
    let mut stmt = c
        .prepare_cached("SELECT sku, qty, kit_version FROM kit_parts WHERE kit = ?1 ORDER BY sku")
        .map_err(sql)?;
    let mut found = project::KitParts::default();
    let rows = stmt
        .query_map([kit], |r| {
            Ok((r.get::<_, String>(0)?, to_u64(r.get(1)?), to_u64(r.get(2)?)))
        })
        .map_err(sql)?;
    for row in rows {
        let (sku, qty, own) = row.map_err(sql)?;
        found.own_version = own;
        found.parts.push((sku, qty));
    }
    Ok(found)
}

pub(crate) fn checkpoint(c: &Connection) -> Result<Checkpoint, ProjectionError> {
    // Cached: it runs in every projected batch's transaction.
    Ok(
        c.prepare_cached("SELECT commit_pos, prepare_pos, events FROM checkpoint WHERE id = 1")
            .map_err(sql)?
            .query_row([], |r| {
                Ok(Checkpoint {
                    position: Position {
                        commit: to_u64(r.get(0)?),
                        prepare: to_u64(r.get(1)?),
                    },
                    events: to_u64(r.get(2)?),
                })
            })
            .optional()
            .map_err(sql)?
            .unwrap_or_default(),
    )
}

fn threshold(c: &Connection, sku: &str) -> Result<u64, ProjectionError> {
    Ok(
        c.prepare_cached("SELECT low_stock FROM thresholds WHERE sku = ?1")
            .map_err(sql)?
            .query_row([sku], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(sql)?
            .map_or(DEFAULT_LOW_STOCK_THRESHOLD, to_u64),
    )
}

/// Runs one statement through the connection's statement cache: these run once per event,
/// and parsing SQL each time cost about a seventh of the projector's CPU.
fn cached(
    tx: &Transaction<'_>,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(statement)?.execute(params)
}

fn put_stock(tx: &Transaction<'_>, row: &StockRow) -> Result<(), ProjectionError> {
    cached(
        tx,
        "INSERT INTO stock_levels (sku, pool, on_hand, reserved, available, status, version,
             updated_at, backorder_limit, backordered, incoming, per_customer, waitlist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (sku) DO UPDATE SET pool = excluded.pool, on_hand = excluded.on_hand,
             reserved = excluded.reserved, available = excluded.available,
             status = excluded.status, version = excluded.version,
             updated_at = excluded.updated_at, backorder_limit = excluded.backorder_limit,
             backordered = excluded.backordered, incoming = excluded.incoming,
             per_customer = excluded.per_customer, waitlist = excluded.waitlist",
        params![
            row.sku.to_string(),
            row.pool.as_str(),
            row.level.on_hand.map(to_i64),
            to_i64(row.level.reserved),
            row.level.available.map(to_i64),
            row.status.as_str(),
            to_i64(row.version),
            to_i64(row.updated_at.as_millis()),
            to_i64(row.level.backorder_limit),
            to_i64(row.level.backordered),
            to_i64(row.level.incoming),
            row.level.per_customer.map(to_i64),
            to_i64(row.level.waitlist),
        ],
    )
    .map_err(sql)?;
    Ok(())
}

pub(crate) fn notices_after(
    c: &Connection,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<Notice>, ProjectionError> {
    let mut stmt = c
        .prepare_cached("SELECT body FROM notices WHERE seq > ?1 ORDER BY seq LIMIT ?2")
        .map_err(sql)?;
    let rows = stmt
        .query_map(params![to_i64(after_seq), to_i64(limit as u64)], |r| {
            r.get::<_, String>(0)
        })
        .map_err(sql)?;
    rows.map(|body| {
        let body = body.map_err(sql)?;
        serde_json::from_str(&body)
            .map_err(|e| ProjectionError::ReadModel(format!("stored notice unreadable: {e}")))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file from the build before per-location rows and kits (schema 2) had skipped
    /// the events they come from: opening it empties the derived tables, so the
    /// projector projects the log again, and the new tables exist.
    #[test]
    fn a_schema_2_file_is_emptied_to_be_projected_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        drop(ReadModels::open(&path).unwrap());
        let raw = Connection::open(&path).unwrap();
        raw.execute_batch(
            "INSERT INTO checkpoint (id, commit_pos, prepare_pos, events) VALUES (1, 9, 9, 5);
             INSERT INTO thresholds (sku, low_stock) VALUES ('A', 7);
             INSERT INTO alert_acks (seq, at, by) VALUES (1, 0, 'admin');
             DROP TABLE stock_locations; DROP TABLE kit_parts;
             ALTER TABLE reservations DROP COLUMN sold;
             ALTER TABLE stock_levels DROP COLUMN backorder_limit;
             ALTER TABLE stock_levels DROP COLUMN backordered;
             ALTER TABLE stock_levels DROP COLUMN incoming;
             ALTER TABLE stock_levels DROP COLUMN per_customer;
             ALTER TABLE stock_levels DROP COLUMN waitlist; PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(raw);
        // And one from before schema 2 and before the acknowledgements table.
        let old = dir.path().join("old.db");
        drop(ReadModels::open(&old).unwrap());
        let raw = Connection::open(&old).unwrap();
        raw.execute_batch(
            "DROP TABLE stock_locations; DROP TABLE kit_parts; DROP TABLE alert_acks;
             ALTER TABLE reservations DROP COLUMN parts; ALTER TABLE reservations DROP COLUMN sold;
             ALTER TABLE stock_levels DROP COLUMN backorder_limit;
             ALTER TABLE stock_levels DROP COLUMN backordered;
             ALTER TABLE stock_levels DROP COLUMN incoming;
             ALTER TABLE stock_levels DROP COLUMN per_customer;
             ALTER TABLE stock_levels DROP COLUMN waitlist;
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(raw);
        drop(ReadModels::open(&old).unwrap());
        let raw = Connection::open(&old).unwrap();
        let version: i64 = raw
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Preparing names the columns: it fails if a step was skipped.
        raw.prepare("SELECT parts, sold FROM reservations").unwrap();
        raw.prepare(
            "SELECT backorder_limit, backordered, incoming, per_customer, waitlist FROM stock_levels",
        )
            .unwrap();
        raw.prepare("SELECT backorder_limit, backordered FROM stock_locations")
            .unwrap();
        raw.prepare("SELECT seq, at, by FROM alert_acks").unwrap();
        drop(raw);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let models = ReadModels::open(&path).unwrap();
            assert_eq!(models.checkpoint().await.unwrap(), Checkpoint::default());
            let sku = Sku::new("A").unwrap();
            assert_eq!(models.locations(&sku).await.unwrap(), []);
            assert!(models.kit_inputs(&sku).await.unwrap().is_none());
            // Configuration is not derived from the log: it stays. Acknowledgements by
            // alert number go with the alerts, which are numbered again.
            assert_eq!(models.threshold(&sku).await.unwrap(), 7);
        });
        let raw = Connection::open(&path).unwrap();
        let acks: i64 = raw
            .query_row("SELECT COUNT(*) FROM alert_acks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(acks, 0);
    }

    #[test]
    fn alerts_fire_on_entering_a_state_not_on_staying_in_it() {
        use AlertKind as A;
        use Status as S;
        assert_eq!(A::on_transition(None, S::InStock), None);
        assert_eq!(
            A::on_transition(Some(S::InStock), S::LowStock),
            Some(A::LowStock)
        );
        assert_eq!(A::on_transition(Some(S::LowStock), S::LowStock), None);
        assert_eq!(
            A::on_transition(Some(S::LowStock), S::OutOfStock),
            Some(A::OutOfStock)
        );
        assert_eq!(
            A::on_transition(Some(S::OutOfStock), S::LowStock),
            Some(A::BackInStock)
        );
        assert_eq!(
            A::on_transition(Some(S::Short), S::InStock),
            Some(A::BackInStock)
        );
        assert_eq!(A::on_transition(Some(S::InStock), S::Short), Some(A::Short));
        assert_eq!(A::on_transition(Some(S::LowStock), S::InStock), None);
        assert_eq!(A::on_transition(None, S::OutOfStock), Some(A::OutOfStock));
    }
}

//! What the projector writes: one event's effect on the read models ([`Change`]), worked
//! out before the transaction, and the transaction that writes a batch of them with the
//! numbered notices and the checkpoint.
//!
//! Kits (ADR 0006) are derived here, inside the transaction, because a kit's row depends
//! on other SKUs' rows: after each component's change, in log order, every kit it is part
//! of is worked out again from its parts' rows as they stand at that point (the batch's
//! own changes included). So a live run and a rebuild, whose batches differ, number the
//! same kit notices the same way and end with the same rows.
//!
//! Invariant: a kit's row has version = the kit stream's version + the sum of its parts'
//! versions (as the engine's exact read), so it moves with every change to any part; it
//! gets a notice only when its availability or status moves. A kit notice's event id is
//! derived from the part's event and the kit, so a rebuild gives the same one.

use std::collections::HashMap;

use rusqlite::{Transaction, params};
use stockade_domain::{Component, PoolKind, Sku, Timestamp};
use stockade_store::Position;
use uuid::Uuid;

use super::{
    AlertKind, cached, checkpoint, kit_parts_in, kits_containing, parts_column, put_location,
    put_stock, sql, stock_row_in, threshold, to_i64,
};
use crate::ProjectionError;
use crate::model::{
    Cause, Level, LocationLevel, LocationMove, LocationRow, Notice, ReservationState, Status,
    StockRow, scopes,
};

/// A change to the `reservations` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationChange {
    Held {
        id: String,
        order_id: Option<String>,
        qty: u64,
        channel: String,
        reserved_at: Timestamp,
        expires_at: Timestamp,
        /// Where its units are, at a SKU with several locations (else empty).
        parts: Vec<stockade_domain::Part>,
    },
    Resolved {
        id: String,
        state: ReservationState,
        at: Timestamp,
    },
    /// A live hold extended, partly ended or grown: its record now, and the units this
    /// change sold.
    Changed {
        id: String,
        qty: u64,
        expires_at: Timestamp,
        parts: Vec<stockade_domain::Part>,
        sold: u64,
    },
}

/// Everything one event does to the read models, worked out before the transaction.
#[derive(Debug, Clone)]
pub struct Change {
    pub sku: Sku,
    pub pool: PoolKind,
    pub version: u64,
    pub before: Option<(Level, bool)>,
    pub after: (Level, bool),
    pub at: Timestamp,
    pub reservation: Option<ReservationChange>,
    /// The locations the event moved (`model::moved_locations`): each one's figures
    /// before, if it had any, and after.
    pub locations: Vec<(Option<LocationLevel>, LocationLevel)>,
    /// A kit's registration: its components as registered (empty for every other
    /// event). A kit's row and notices are derived from its components' rows.
    pub kit: Vec<Component>,
    /// The notice, with `seq`, statuses and scopes still to fill in.
    pub notice: Notice,
}

/// What a batch has written so far and not yet flushed, and what it has looked up.
struct Batch<'t, 'c> {
    tx: &'t Transaction<'c>,
    // A batch often moves one SKU many times (a flash sale, a rebuild): its threshold is
    // read once and only its last row is written, at the end of the same transaction.
    thresholds: HashMap<String, u64>,
    rows: HashMap<String, StockRow>,
    located: HashMap<(String, String), LocationRow>,
    /// The kits each SKU is part of, as looked up in this batch.
    kits_of: HashMap<String, Vec<String>>,
    /// Each kit's parts and its own stream's version, as looked up in this batch.
    parts: HashMap<String, KitParts>,
}

/// A kit flattened: the kit stream's own version, and each plain SKU with units per kit.
#[derive(Debug, Clone, Default)]
pub struct KitParts {
    pub own_version: u64,
    pub parts: Vec<(String, u64)>,
}

impl Batch<'_, '_> {
    fn threshold(&mut self, sku: &str) -> Result<u64, ProjectionError> {
        if let Some(t) = self.thresholds.get(sku) {
            return Ok(*t);
        }
        let t = threshold(self.tx, sku)?;
        self.thresholds.insert(sku.to_owned(), t);
        Ok(t)
    }

    /// `sku`'s row as it stands in this batch.
    fn row(&self, sku: &str) -> Result<Option<StockRow>, ProjectionError> {
        match self.rows.get(sku) {
            Some(row) => Ok(Some(row.clone())),
            None => stock_row_in(self.tx, sku),
        }
    }

    fn kits_of(&mut self, sku: &str) -> Result<&[String], ProjectionError> {
        if !self.kits_of.contains_key(sku) {
            let kits = kits_containing(self.tx, sku)?;
            self.kits_of.insert(sku.to_owned(), kits);
        }
        Ok(self.kits_of.get(sku).map_or(&[], Vec::as_slice))
    }

    fn parts(&mut self, kit: &str) -> Result<KitParts, ProjectionError> {
        if let Some(p) = self.parts.get(kit) {
            return Ok(p.clone());
        }
        let p = kit_parts_in(self.tx, kit)?;
        self.parts.insert(kit.to_owned(), p.clone());
        Ok(p)
    }

    /// Records a kit's registration: its components flattened (a component that is a kit
    /// replaced by that kit's parts, a SKU named twice summed) into `kit_parts`.
    fn register_kit(
        &mut self,
        kit: &str,
        own_version: u64,
        components: &[Component],
    ) -> Result<(), ProjectionError> {
        let mut parts: Vec<(String, u64)> = Vec::new();
        let mut add = |sku: &str, units: u64| -> Result<(), ProjectionError> {
            match parts.iter_mut().find(|(s, _)| s == sku) {
                Some((_, n)) => {
                    *n = n.checked_add(units).ok_or_else(|| {
                        ProjectionError::Inconsistent(format!("kit {kit}: units of {sku} overflow"))
                    })?;
                }
                None => parts.push((sku.to_owned(), units)),
            }
            Ok(())
        };
        for c in components {
            let inner = self.parts(c.sku.as_str())?;
            if inner.parts.is_empty() {
                add(c.sku.as_str(), c.qty.get())?;
            } else {
                for (leaf, per_kit) in &inner.parts {
                    let units = per_kit.checked_mul(c.qty.get()).ok_or_else(|| {
                        ProjectionError::Inconsistent(format!(
                            "kit {kit}: units of {leaf} overflow"
                        ))
                    })?;
                    add(leaf, units)?;
                }
            }
        }
        for (sku, qty) in &parts {
            cached(
                self.tx,
                "INSERT OR REPLACE INTO kit_parts (kit, sku, qty, kit_version) VALUES (?1, ?2, ?3, ?4)",
                params![kit, sku, to_i64(*qty), to_i64(own_version)],
            )
            .map_err(sql)?;
            self.kits_of.remove(sku);
        }
        self.parts
            .insert(kit.to_owned(), KitParts { own_version, parts });
        Ok(())
    }
}

pub(super) fn apply(
    tx: &Transaction<'_>,
    changes: Vec<Change>,
    to: Position,
) -> Result<Vec<Notice>, ProjectionError> {
    let mut at = checkpoint(tx)?;
    let mut notices = Vec::with_capacity(changes.len());
    let mut batch = Batch {
        tx,
        thresholds: HashMap::new(),
        rows: HashMap::new(),
        located: HashMap::new(),
        kits_of: HashMap::new(),
        parts: HashMap::new(),
    };
    for change in changes {
        let sku = change.sku.to_string();
        let threshold = batch.threshold(&sku)?;
        if change.pool == PoolKind::Kit {
            // A kit's stream holds its definition only; its figures are its parts'.
            if !change.kit.is_empty() {
                batch.register_kit(&sku, change.version, &change.kit)?;
            }
            if let Some(mut n) =
                derive_kit(&mut batch, &sku, threshold, &change.notice, Some(change.at))?
            {
                at.events += 1;
                n.seq = at.events;
                outbox(tx, &n)?;
                notices.push(n);
            }
            continue;
        }
        let status_of =
            |(level, short): &(Level, bool)| crate::model::status_of(level, *short, threshold);
        let before = change.before.as_ref().map(status_of);
        let after = status_of(&change.after);
        batch.rows.insert(
            sku.clone(),
            StockRow {
                sku: change.sku.clone(),
                pool: change.pool,
                level: change.after.0,
                status: after,
                version: change.version,
                updated_at: change.at,
            },
        );
        match &change.reservation {
            Some(ReservationChange::Held {
                id,
                order_id,
                qty,
                channel,
                reserved_at,
                expires_at,
                parts,
            }) => {
                cached(
                    tx,
                    "INSERT OR REPLACE INTO reservations
                     (id, sku, order_id, qty, channel, state, reserved_at, expires_at, resolved_at,
                      parts)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'held', ?6, ?7, NULL, ?8)",
                    params![
                        id,
                        sku,
                        order_id,
                        to_i64(*qty),
                        channel,
                        to_i64(reserved_at.as_millis()),
                        to_i64(expires_at.as_millis()),
                        parts_column(parts)
                    ],
                )
                .map_err(sql)?;
            }
            Some(ReservationChange::Changed {
                id,
                qty,
                expires_at,
                parts,
                sold,
            }) => {
                cached(
                    tx,
                    "UPDATE reservations SET qty = ?3, expires_at = ?4, parts = ?5, sold = sold + ?6
                     WHERE id = ?1 AND sku = ?2",
                    params![
                        id,
                        sku,
                        to_i64(*qty),
                        to_i64(expires_at.as_millis()),
                        parts_column(parts),
                        to_i64(*sold)
                    ],
                )
                .map_err(sql)?;
            }
            Some(ReservationChange::Resolved { id, state, at }) => {
                cached(tx,
                    "UPDATE reservations SET state = ?3, resolved_at = ?4 WHERE id = ?1 AND sku = ?2",
                    params![id, sku, state.as_str(), to_i64(at.as_millis())],
                )
                .map_err(sql)?;
            }
            None => {}
        }
        alert(
            tx,
            &sku,
            before,
            after,
            change.after.0.available,
            threshold,
            change.version,
            change.at,
        )?;
        let mut notice = change.notice;
        for (was, now) in change.locations {
            let status = now.status(threshold);
            notice.locations.push(LocationMove {
                location: now.location.clone(),
                previous: was.as_ref().map_or(now.level(), LocationLevel::level),
                current: now.level(),
                previous_status: was.as_ref().map_or(status, |w| w.status(threshold)),
                status,
                incoming: now.incoming,
            });
            batch.located.insert(
                (sku.clone(), now.location.clone()),
                LocationRow {
                    sku: change.sku.clone(),
                    level: now,
                    status,
                    version: change.version,
                    updated_at: change.at,
                },
            );
        }
        at.events += 1;
        notice.seq = at.events;
        notice.previous_status = before.unwrap_or(after);
        notice.status = after;
        outbox(tx, &notice)?;
        // Then every kit this SKU is part of.
        let kits = batch.kits_of(&sku)?.to_vec();
        let mut kit_notices = Vec::new();
        for kit in kits {
            let kit_threshold = batch.threshold(&kit)?;
            if let Some(mut n) = derive_kit(&mut batch, &kit, kit_threshold, &notice, None)? {
                at.events += 1;
                n.seq = at.events;
                outbox(tx, &n)?;
                kit_notices.push(n);
            }
        }
        notices.push(notice);
        notices.append(&mut kit_notices);
    }
    for row in batch.rows.values() {
        put_stock(tx, row)?;
    }
    for row in batch.located.values() {
        put_location(tx, row)?;
    }
    cached(
        tx,
        "INSERT INTO checkpoint (id, commit_pos, prepare_pos, events) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET commit_pos = excluded.commit_pos,
             prepare_pos = excluded.prepare_pos, events = excluded.events",
        params![to_i64(to.commit), to_i64(to.prepare), to_i64(at.events)],
    )
    .map_err(sql)?;
    Ok(notices)
}

/// Records the alert a move from `before` to `after` raises, if any.
#[allow(clippy::too_many_arguments)]
fn alert(
    tx: &Transaction<'_>,
    sku: &str,
    before: Option<Status>,
    after: Status,
    available: Option<u64>,
    threshold: u64,
    version: u64,
    at: Timestamp,
) -> Result<(), ProjectionError> {
    if let Some(kind) = AlertKind::on_transition(before, after) {
        cached(
            tx,
            "INSERT INTO alerts (sku, kind, available, threshold, version, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                sku,
                kind.as_str(),
                available.map(to_i64),
                to_i64(threshold),
                to_i64(version),
                to_i64(at.as_millis())
            ],
        )
        .map_err(sql)?;
    }
    Ok(())
}

/// Puts a numbered notice in the outbox.
fn outbox(tx: &Transaction<'_>, notice: &Notice) -> Result<(), ProjectionError> {
    let body = serde_json::to_string(notice)
        .map_err(|e| ProjectionError::ReadModel(format!("encode notice: {e}")))?;
    cached(
        tx,
        "INSERT INTO notices (seq, sku, event_id, body) VALUES (?1, ?2, ?3, ?4)",
        params![
            to_i64(notice.seq),
            notice.sku.as_str(),
            notice.event_id.to_string(),
            body
        ],
    )
    .map_err(sql)?;
    Ok(())
}

/// A kit's row as its parts' rows make it: the fewest whole kits any limited part allows
/// (unlimited when none is limited), version the kit's own plus its parts'. `None` while a
/// part has no row (it cannot: parts are registered before the kit).
pub fn kit_row(
    kit: &Sku,
    parts: &KitParts,
    rows: &[Option<StockRow>],
    threshold: u64,
    registered_at: Timestamp,
) -> Option<StockRow> {
    let mut available: Option<u64> = None;
    let mut version = parts.own_version;
    let mut updated_at = registered_at;
    for ((_, per_kit), row) in parts.parts.iter().zip(rows) {
        let row = row.as_ref()?;
        version = version.saturating_add(row.version);
        updated_at = updated_at.max(row.updated_at);
        if let Some(units) = row.level.available {
            let kits = units / (*per_kit).max(1);
            available = Some(available.map_or(kits, |a| a.min(kits)));
        }
    }
    // A kit takes no backorders of its own.
    let level = Level {
        on_hand: None,
        reserved: 0,
        available,
        ..Level::default()
    };
    Some(StockRow {
        sku: kit.clone(),
        pool: PoolKind::Kit,
        level,
        status: crate::model::status_of(&level, false, threshold),
        version,
        updated_at,
    })
}

/// Works `kit`'s row out again after `cause`: a part's notice, or the kit's own
/// registration (`registered` is then when it happened). Returns the kit's notice if its
/// availability or status moved (always, on registration), with `seq` still to fill in.
fn derive_kit(
    batch: &mut Batch<'_, '_>,
    kit: &str,
    threshold: u64,
    cause: &Notice,
    registered: Option<Timestamp>,
) -> Result<Option<Notice>, ProjectionError> {
    let registering = registered.is_some();
    let parts = batch.parts(kit)?;
    let rows = parts
        .parts
        .iter()
        .map(|(sku, _)| batch.row(sku))
        .collect::<Result<Vec<_>, _>>()?;
    let old = if registering { None } else { batch.row(kit)? };
    let Ok(kit_sku) = Sku::new(kit.to_owned()) else {
        return Err(ProjectionError::Inconsistent(format!(
            "kit {kit:?} is not a SKU"
        )));
    };
    // The instant a kit's row shows: its registration or its newest part's change.
    let since = registered
        .or(old.as_ref().map(|o| o.updated_at))
        .unwrap_or(cause.committed_at);
    let Some(row) = kit_row(&kit_sku, &parts, &rows, threshold, since) else {
        return Err(ProjectionError::Inconsistent(format!(
            "kit {kit} has a part with no row"
        )));
    };
    let moved = old
        .as_ref()
        .is_none_or(|o| o.level != row.level || o.status != row.status);
    let previous = old.as_ref().map_or(row.level, |o| o.level);
    let previous_status = old.as_ref().map_or(row.status, |o| o.status);
    if moved {
        alert(
            batch.tx,
            kit,
            old.as_ref().map(|o| o.status),
            row.status,
            row.level.available,
            threshold,
            row.version,
            row.updated_at,
        )?;
    }
    let notice = moved.then(|| Notice {
        seq: 0,
        sku: kit_sku.clone(),
        version: row.version,
        previous,
        current: row.level,
        previous_status,
        status: row.status,
        cause: Cause {
            via: (!registering).then(|| cause.sku.to_string()),
            ..cause.cause.clone()
        },
        scopes: scopes(&kit_sku),
        committed_at: cause.committed_at,
        // Derived from the part's event and the kit: the same on every rebuild, and
        // distinct from the part's own notice and from every other kit's.
        event_id: if registering {
            cause.event_id
        } else {
            Uuid::new_v5(&cause.event_id, kit.as_bytes())
        },
        position: cause.position,
        locations: Vec::new(),
    });
    batch.rows.insert(kit.to_owned(), row);
    Ok(notice)
}

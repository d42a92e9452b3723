//! What the projector writes: one event's effect on the read models ([`Change`]), worked
//! out before the transaction, and the transaction that writes a batch of them with the
//! numbered notices and the checkpoint.

use std::collections::HashMap;

use rusqlite::{Transaction, params};
use stockade_domain::{PoolKind, Sku, Timestamp};
use stockade_store::Position;

use super::{AlertKind, cached, checkpoint, parts_column, put_stock, sql, threshold, to_i64};
use crate::ProjectionError;
use crate::model::{Level, Notice, ReservationState, StockRow};

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
    /// The notice, with `seq`, statuses and scopes still to fill in.
    pub notice: Notice,
}

pub(super) fn apply(
    tx: &Transaction<'_>,
    changes: Vec<Change>,
    to: Position,
) -> Result<Vec<Notice>, ProjectionError> {
    let mut at = checkpoint(tx)?;
    let mut notices = Vec::with_capacity(changes.len());
    // A batch often moves one SKU many times (a flash sale, a rebuild): its threshold is
    // read once and only its last row is written, at the end of the same transaction.
    let mut thresholds: HashMap<String, u64> = HashMap::new();
    let mut rows: HashMap<String, StockRow> = HashMap::new();
    for change in changes {
        let sku = change.sku.to_string();
        let threshold = match thresholds.get(&sku) {
            Some(t) => *t,
            None => {
                let t = threshold(tx, &sku)?;
                thresholds.insert(sku.clone(), t);
                t
            }
        };
        let status_of =
            |(level, short): &(Level, bool)| crate::model::status_of(level, *short, threshold);
        let before = change.before.as_ref().map(status_of);
        let after = status_of(&change.after);
        rows.insert(
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
            Some(ReservationChange::Resolved { id, state, at }) => {
                cached(tx,
                    "UPDATE reservations SET state = ?3, resolved_at = ?4 WHERE id = ?1 AND sku = ?2",
                    params![id, sku, state.as_str(), to_i64(at.as_millis())],
                )
                .map_err(sql)?;
            }
            None => {}
        }
        if let Some(kind) = AlertKind::on_transition(before, after) {
            cached(
                tx,
                "INSERT INTO alerts (sku, kind, available, threshold, version, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    sku,
                    kind.as_str(),
                    change.after.0.available.map(to_i64),
                    to_i64(threshold),
                    to_i64(change.version),
                    to_i64(change.at.as_millis())
                ],
            )
            .map_err(sql)?;
        }
        at.events += 1;
        let mut notice = change.notice;
        notice.seq = at.events;
        notice.previous_status = before.unwrap_or(after);
        notice.status = after;
        let body = serde_json::to_string(&notice)
            .map_err(|e| ProjectionError::ReadModel(format!("encode notice: {e}")))?;
        cached(
            tx,
            "INSERT INTO notices (seq, sku, event_id, body) VALUES (?1, ?2, ?3, ?4)",
            params![to_i64(notice.seq), sku, notice.event_id.to_string(), body],
        )
        .map_err(sql)?;
        notices.push(notice);
    }
    for row in rows.values() {
        put_stock(tx, row)?;
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

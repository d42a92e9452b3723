//! What callers get back. Every read carries the SKU's `version` (its stream revision
//! count) so a reader can tell whether what it holds is still current, and every notice
//! names the version it moved from and to.

use serde::{Deserialize, Serialize};
use stockade_domain::{Availability, PoolKind, Resolution, Sku};
use stockade_engine::{
    Adjusted, Changed, LineStatus, Reservation, ReservationStatus, ReservedLine, Resolved,
    StockLevel,
};
use stockade_projections::model::{
    Cause, LocationLevel, LocationMove, LocationRow, is_short, status_of,
};
use stockade_projections::reconcile::CountOutcome;
use stockade_projections::webhook::ReplayReport;
use stockade_projections::{Level, Notice, Status, StockRow};

/// One SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockOut {
    pub sku: String,
    pub pool: PoolKind,
    /// On hand (physical), licence limit (digital), capacity this period (print on demand);
    /// `null` when unlimited.
    pub on_hand: Option<u64>,
    pub reserved: u64,
    /// `null` when unlimited.
    pub available: Option<u64>,
    pub status: Status,
    pub version: u64,
    pub updated_at: String,
    /// The instant the figures hold for (exact reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_stock: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold: Option<u64>,
    /// Units promised beyond what exists (the SKU is `short` when positive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_reservations: Option<usize>,
    /// A kit's components (exact reads of a kit only). A kit's `available` is the fewest
    /// whole kits they allow, and its `version` moves whenever one of them changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentOut>>,
    /// Each location's figures, for a SKU registered with locations (exact reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<LocationOut>>,
    /// Units in transit between its locations (exact reads only, when any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_transit: Option<u64>,
    /// Units that may be held beyond on hand, as backorders (when the SKU takes them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backorder_limit: u64,
    /// Units held beyond on hand, waiting for stock.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backordered: u64,
    /// Units expected from suppliers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incoming: u64,
    /// When the earliest expected receipt is due (exact reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_eta: Option<String>,
    /// The receipts expected, earliest first (exact reads only, when any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipts: Option<Vec<ReceiptOut>>,
    /// Units one customer may hold and buy over a window, when the SKU has a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_limit: Option<PurchaseLimitOut>,
    /// Customers on the waitlist.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waitlist: u64,
    /// Units they wait for (exact reads only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waitlist_units: u64,
}

/// A purchase limit: units per customer, over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseLimitOut {
    pub per_customer: u64,
    /// Absent in list rows (the read model keeps the limit, not its window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
}

/// A SKU's fair-selling rules and waitlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FairSellingOut {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_limit: Option<PurchaseLimitOut>,
    pub waitlist_hold_seconds: u64,
    /// Customers waiting, and the units they wait for.
    pub waiting: usize,
    pub waiting_units: u64,
    /// The first places in line (admin reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub places: Option<Vec<WaitlistPlaceOut>>,
    pub version: u64,
}

impl FairSellingOut {
    pub fn new(sku: &Sku, view: &stockade_engine::FairSellingView, with_places: bool) -> Self {
        Self {
            sku: sku.to_string(),
            purchase_limit: view.purchase_limit.map(|(limit, window)| PurchaseLimitOut {
                per_customer: limit.get(),
                window_seconds: Some(window.as_secs()),
            }),
            waitlist_hold_seconds: view.waitlist_hold.as_secs(),
            waiting: view.waiting,
            waiting_units: view.waiting_units.get(),
            places: with_places.then(|| {
                view.places
                    .iter()
                    .map(|p| WaitlistPlaceOut::new(sku, p))
                    .collect()
            }),
            version: view.version,
        }
    }
}

/// A customer's place on a SKU's waitlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistPlaceOut {
    pub sku: String,
    pub customer: String,
    /// The place's number: later joiners get higher ones.
    pub number: u64,
    /// 1 for the first in line; 0 when the place was served as it was answered.
    pub position: u64,
    pub qty: u64,
    /// Units the places ahead of it wait for.
    pub units_ahead: u64,
    pub joined_at: String,
    /// The reservation id the place's hold will have: the `waitlist_hold` notice names it.
    pub hold_id: String,
    pub channel: String,
    /// Units the customer may still hold or buy under the SKU's limit (customer reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// A customer's place, left: what `DELETE .../waitlist/{customer}` and MCP's
/// `inventory.leaveWaitlist` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistLeftOut {
    pub sku: String,
    pub customer: String,
    pub left: bool,
    pub version: u64,
}

impl WaitlistLeftOut {
    pub fn new(sku: &Sku, customer: &stockade_domain::CustomerId, version: u64) -> Self {
        Self {
            sku: sku.to_string(),
            customer: customer.to_string(),
            left: true,
            version,
        }
    }
}

impl WaitlistPlaceOut {
    /// `customer`'s place as `view` (read for them) shows it, with what they may still
    /// buy under the limit; 404 `not_waiting` when they have none.
    pub fn of_customer(
        sku: &Sku,
        customer: &stockade_domain::CustomerId,
        view: &stockade_engine::FairSellingView,
    ) -> Result<Self, crate::ApiError> {
        let Some(place) = &view.place else {
            return Err(crate::ApiError::new(
                crate::ErrorKind::NotFound,
                crate::Code::NotWaiting,
                format!("customer {customer} is not on {sku}'s waitlist"),
            )
            .with("sku", sku.to_string())
            .with("customer", customer.to_string()));
        };
        let remaining = view
            .purchase_limit
            .zip(view.counted)
            .map(|((limit, _), counted)| limit.saturating_sub(counted).get());
        Ok(Self {
            remaining,
            version: Some(view.version),
            ..Self::new(sku, place)
        })
    }

    pub fn new(sku: &Sku, p: &stockade_domain::WaitlistPlace) -> Self {
        Self {
            sku: sku.to_string(),
            customer: p.customer.to_string(),
            number: p.number,
            position: p.position,
            qty: p.qty.get(),
            units_ahead: p.units_ahead.get(),
            joined_at: p.joined_at.to_string(),
            hold_id: p.hold_id.to_string(),
            channel: p.channel.to_string(),
            remaining: None,
            version: None,
        }
    }
}

/// A receipt expected from a supplier, or what a receipt command did to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptOut {
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Units expected, arrived by this call, or no longer expected.
    pub qty: u64,
    /// Units still expected.
    pub remaining: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
    /// `expected`, `received` (partly, while `remaining` > 0) or `cancelled`.
    pub state: String,
    /// Backordered reservations an arrival filled, first in line first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filled: Vec<FilledOut>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// Units of a backordered reservation an arrival covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilledOut {
    pub reservation_id: String,
    pub qty: u64,
    /// Units of it still waiting.
    pub backordered: u64,
}

impl ReceiptOut {
    pub fn new(change: &stockade_engine::ReceiptChange, state: &str) -> Self {
        Self {
            reference: change.reference.to_string(),
            location: change.location.as_ref().map(|l| l.to_string()),
            qty: change.qty.get(),
            remaining: change.remaining.get(),
            eta: change.eta.map(|t| t.to_string()),
            state: state.to_owned(),
            filled: change
                .filled
                .iter()
                .map(|(id, qty, left)| FilledOut {
                    reservation_id: id.to_string(),
                    qty: qty.get(),
                    backordered: left.get(),
                })
                .collect(),
            version: Some(change.version),
        }
    }
}

/// A SKU's backorder limit, changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackorderLimitOut {
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub backorder_limit: u64,
    pub previous: u64,
    pub version: u64,
}

/// One location of a SKU: the read model's figures there, and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationOut {
    #[serde(flatten)]
    pub level: LocationLevel,
    /// How a storefront should show the SKU here, under the SKU's low-stock threshold.
    pub status: Status,
}

/// One component of a kit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentOut {
    pub sku: String,
    pub qty: u64,
}

impl StockOut {
    /// The engine's exact, durable view, with the SKU's low-stock threshold.
    pub fn from_level(level: &StockLevel, threshold: u64) -> Self {
        let view = &level.view;
        let levels = Level::of(view);
        Self {
            sku: view.sku.to_string(),
            pool: view.pool,
            on_hand: levels.on_hand,
            reserved: levels.reserved,
            available: match view.available {
                Availability::Unlimited => None,
                Availability::Limited(q) => Some(q.get()),
            },
            status: status_of(&levels, is_short(view), threshold),
            version: level.version,
            updated_at: level.updated_at.to_string(),
            as_of: Some(level.as_of.to_string()),
            safety_stock: Some(view.safety_stock.get()),
            sold: Some(view.sold.get()),
            shortfall: Some(view.shortfall.get()),
            live_reservations: Some(view.live_reservations),
            components: (!view.components.is_empty()).then(|| {
                view.components
                    .iter()
                    .map(|c| ComponentOut {
                        sku: c.sku.to_string(),
                        qty: c.qty.get(),
                    })
                    .collect()
            }),
            locations: (!view.locations.is_empty()).then(|| {
                view.locations
                    .iter()
                    .map(|l| {
                        let level = LocationLevel::of(l);
                        LocationOut {
                            status: level.status(threshold),
                            level,
                        }
                    })
                    .collect()
            }),
            in_transit: (!view.in_transit.is_zero()).then(|| view.in_transit.get()),
            backorder_limit: levels.backorder_limit,
            backordered: levels.backordered,
            incoming: levels.incoming,
            next_eta: view.next_eta.map(|t| t.to_string()),
            receipts: (!view.receipts.is_empty()).then(|| {
                view.receipts
                    .iter()
                    .map(|r| ReceiptOut {
                        reference: r.reference.to_string(),
                        location: Some(r.location.to_string()),
                        qty: r.qty.get(),
                        remaining: r.qty.get(),
                        eta: Some(r.eta.to_string()),
                        state: "expected".into(),
                        filled: Vec::new(),
                        version: None,
                    })
                    .collect()
            }),
            purchase_limit: view.purchase_limit.map(|l| PurchaseLimitOut {
                per_customer: l.per_customer.get(),
                window_seconds: Some(l.window_secs),
            }),
            waitlist: view.waitlist,
            waitlist_units: view.waitlist_units.get(),
        }
    }

    /// A row of the stock-levels read model (lists, dashboards).
    pub fn from_row(row: &StockRow) -> Self {
        Self {
            sku: row.sku.to_string(),
            pool: row.pool,
            on_hand: row.level.on_hand,
            reserved: row.level.reserved,
            available: row.level.available,
            status: row.status,
            version: row.version,
            updated_at: row.updated_at.to_string(),
            as_of: None,
            safety_stock: None,
            sold: None,
            shortfall: None,
            live_reservations: None,
            components: None,
            locations: None,
            in_transit: None,
            backorder_limit: row.level.backorder_limit,
            backordered: row.level.backordered,
            incoming: row.level.incoming,
            next_eta: None,
            receipts: None,
            purchase_limit: row.level.per_customer.map(|per_customer| PurchaseLimitOut {
                per_customer,
                window_seconds: None,
            }),
            waitlist: row.level.waitlist,
            waitlist_units: 0,
        }
    }

    /// A row of the stock-levels read model with its row at one location (a list of what
    /// one location stocks).
    pub fn from_rows(row: &StockRow, at: &LocationRow) -> Self {
        Self {
            locations: Some(vec![LocationOut {
                level: at.level.clone(),
                status: at.status,
            }]),
            ..Self::from_row(row)
        }
    }
}

/// A page of a list, in key order; pass `next_after` back as `after` for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

impl Page<StockOut> {
    /// A page of stock rows read with `limit`: a full page says where the next begins.
    pub fn of_stock(rows: &[StockRow], limit: usize) -> Self {
        let next_after = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.sku.to_string()))
            .flatten();
        Self {
            items: rows.iter().map(StockOut::from_row).collect(),
            next_after,
        }
    }

    /// A page of what one location stocks, read with `limit`.
    pub fn of_located(rows: &[(StockRow, LocationRow)], limit: usize) -> Self {
        let next_after = (rows.len() == limit)
            .then(|| rows.last().map(|(r, _)| r.sku.to_string()))
            .flatten();
        Self {
            items: rows
                .iter()
                .map(|(row, at)| StockOut::from_rows(row, at))
                .collect(),
            next_after,
        }
    }
}

/// One line of a reservation, with the SKU's version after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineOut {
    pub sku: String,
    pub qty: u64,
    pub version: u64,
    /// Where the units are held, at a SKU stocked at several locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartOut>,
    /// Units of the line waiting for stock (a SKU that takes backorders): they ship when
    /// stock arrives, first in line first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backordered: u64,
    /// When the receipt bringing the last of them is expected, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Units held at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartOut {
    pub location: String,
    pub qty: u64,
}

impl From<&ReservedLine> for LineOut {
    fn from(line: &ReservedLine) -> Self {
        Self {
            sku: line.sku.to_string(),
            qty: line.qty.get(),
            version: line.version,
            parts: line
                .parts
                .iter()
                .map(|p| PartOut {
                    location: p.location.to_string(),
                    qty: p.qty.get(),
                })
                .collect(),
            backordered: line.backordered.get(),
            eta: line.eta.map(|t| t.to_string()),
        }
    }
}

/// A reservation just made (201), or the same one returned to a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationOut {
    pub reservation_id: String,
    pub order_id: Option<String>,
    pub status: String,
    pub expires_at: String,
    pub items: Vec<LineOut>,
}

impl From<&Reservation> for ReservationOut {
    fn from(r: &Reservation) -> Self {
        Self {
            reservation_id: r.id.to_string(),
            order_id: r.order_id.as_ref().map(|o| o.to_string()),
            status: "held".into(),
            expires_at: r.expires_at.to_string(),
            items: r.lines.iter().map(LineOut::from).collect(),
        }
    }
}

/// A reservation extended or amended: what each line holds now. `failed` (present only
/// when some line could not be changed) is as on a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedOut {
    pub reservation_id: String,
    pub status: String,
    pub expires_at: String,
    pub items: Vec<LineOut>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<LineFailureOut>,
}

impl From<&Changed> for ChangedOut {
    fn from(c: &Changed) -> Self {
        Self {
            reservation_id: c.id.to_string(),
            status: "held".into(),
            expires_at: c.expires_at.to_string(),
            items: c.lines.iter().map(LineOut::from).collect(),
            failed: failures(&c.failed),
        }
    }
}

/// Lines a call could not change, with the errors they met.
fn failures(failed: &[(stockade_domain::Sku, stockade_engine::Error)]) -> Vec<LineFailureOut> {
    failed
        .iter()
        .map(|(sku, e)| {
            let api = crate::ApiError::from(e.clone());
            LineFailureOut {
                sku: sku.to_string(),
                error: api.code.as_str().to_owned(),
                message: api.message,
            }
        })
        .collect()
}

/// A reservation committed or released. `items` are resolved; `failed` (present only
/// when some line could not be) did not change: the same call again finishes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedOut {
    pub reservation_id: String,
    pub status: Resolution,
    pub items: Vec<LineOut>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<LineFailureOut>,
}

/// A line a commit or release could not resolve, with the error it met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFailureOut {
    pub sku: String,
    pub error: String,
    pub message: String,
}

impl From<&Resolved> for ResolvedOut {
    fn from(r: &Resolved) -> Self {
        Self {
            reservation_id: r.id.to_string(),
            status: r.resolution,
            items: r.lines.iter().map(LineOut::from).collect(),
            failed: failures(&r.failed),
        }
    }
}

/// Where one line of a reservation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineStateOut {
    pub sku: String,
    /// `held`, `lapsed` (expired, its event not yet written), `committed`, `released`,
    /// `expired`, or `unknown` (resolved longer ago than the retention window).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qty: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Units of a held line waiting for stock, and when they are expected.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backordered: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
}

/// `GET /api/reservations/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationStatusOut {
    pub reservation_id: String,
    /// The lines' common state, or `mixed` while they differ.
    pub status: String,
    pub items: Vec<LineStateOut>,
}

impl From<&ReservationStatus> for ReservationStatusOut {
    fn from(r: &ReservationStatus) -> Self {
        let items: Vec<LineStateOut> = r
            .lines
            .iter()
            .map(|(sku, status)| {
                // (state, the hold's quantity and expiry while it is known)
                let (state, hold) = match status {
                    LineStatus::Live {
                        qty, expires_at, ..
                    } => ("held".to_owned(), Some((qty, expires_at))),
                    // A lapsed hold holds nothing: it reads as expired.
                    LineStatus::Lapsed { qty, expires_at } => {
                        ("expired".to_owned(), Some((qty, expires_at)))
                    }
                    LineStatus::Resolved(resolution) => (resolution.to_string(), None),
                    LineStatus::Unknown => ("unknown".to_owned(), None),
                };
                let (backordered, eta) = match status {
                    LineStatus::Live {
                        backordered, eta, ..
                    } => (backordered.get(), eta.map(|t| t.to_string())),
                    _ => (0, None),
                };
                LineStateOut {
                    sku: sku.to_string(),
                    state,
                    qty: hold.map(|(q, _)| q.get()),
                    expires_at: hold.map(|(_, at)| at.to_string()),
                    backordered,
                    eta,
                }
            })
            .collect();
        let status = match items.first() {
            Some(first) if items.iter().all(|i| i.state == first.state) => first.state.clone(),
            Some(_) => "mixed".into(),
            None => "unknown".into(),
        };
        Self {
            reservation_id: r.id.to_string(),
            status,
            items,
        }
    }
}

/// An adjustment that is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustedOut {
    pub sku: String,
    /// The location adjusted, when the request named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub previous: u64,
    pub current: u64,
    /// Reservations that can no longer all be honoured (the SKU turned short).
    pub at_risk: Vec<String>,
    pub version: u64,
}

impl AdjustedOut {
    pub fn new(sku: &stockade_domain::Sku, a: &Adjusted) -> Self {
        Self {
            sku: sku.to_string(),
            location: a.location.as_ref().map(|l| l.to_string()),
            previous: a.previous.get(),
            current: a.current.get(),
            at_risk: a.at_risk.iter().map(|r| r.to_string()).collect(),
            version: a.version,
        }
    }
}

/// A transfer shipped or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOut {
    pub sku: String,
    pub transfer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    pub qty: u64,
    /// `in_transit` once shipped, `received` once received.
    pub state: &'static str,
    pub version: u64,
}

impl TransferOut {
    pub fn new(sku: &stockade_domain::Sku, t: &stockade_engine::Transferred) -> Self {
        Self {
            sku: sku.to_string(),
            transfer_id: t.transfer_id.to_string(),
            from: t.from.as_ref().map(|l| l.to_string()),
            to: t.to.to_string(),
            qty: t.qty.get(),
            state: if t.received { "received" } else { "in_transit" },
            version: t.version,
        }
    }
}

/// A freshness notice as every push channel sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeOut {
    pub seq: u64,
    pub sku: String,
    pub version: u64,
    pub previous: Level,
    pub current: Level,
    pub previous_status: Status,
    pub status: Status,
    pub cause: Cause,
    pub scopes: Vec<String>,
    pub committed_at: String,
    pub event_id: String,
    /// The locations the change moved, for a SKU at several locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationMove>,
}

impl From<&Notice> for NoticeOut {
    fn from(n: &Notice) -> Self {
        Self {
            seq: n.seq,
            sku: n.sku.to_string(),
            // The version the notice moves the SKU to; `previous` levels held at version - 1.
            version: n.version,
            previous: n.previous,
            current: n.current,
            previous_status: n.previous_status,
            status: n.status,
            cause: n.cause.clone(),
            scopes: n.scopes.clone(),
            committed_at: n.committed_at.to_string(),
            event_id: n.event_id.to_string(),
            locations: n.locations.clone(),
        }
    }
}

/// A message on a push stream (SSE `data:`, WebSocket text frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// The stream is open, and `last_seq` is the newest notice the server had then. A
    /// reader that resumed gets every notice after its resume point next; one that did
    /// not gets live notices, which may include some numbered up to `last_seq` that were
    /// published while the stream opened.
    Hello {
        last_seq: u64,
    },
    Notice(Box<NoticeOut>),
    /// Notices after `last_seq` cannot be replayed (too old, or this reader fell behind):
    /// reload what you show, then reconnect without a resume point.
    Resync {
        last_seq: u64,
        reason: String,
    },
}

/// A dead letter, as `stockade dlq list --format json` and `GET /api/dead-letters` show it: its notice in the one shape every
/// channel uses (`stockade_wire::NoticeOut`, as SSE and WebSocket send it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterOut {
    pub id: u64,
    /// The endpoint's name in the configuration.
    pub endpoint: String,
    pub attempts: u32,
    pub failed_at: String,
    pub error: String,
    pub notice: NoticeOut,
}

impl From<&stockade_projections::db::DeadLetter> for DeadLetterOut {
    fn from(l: &stockade_projections::db::DeadLetter) -> Self {
        Self {
            id: l.id,
            endpoint: l
                .channel
                .strip_prefix("webhook:")
                .unwrap_or(&l.channel)
                .to_owned(),
            attempts: l.attempts,
            failed_at: l.failed_at.to_string(),
            error: l.error.clone(),
            notice: NoticeOut::from(&l.notice),
        }
    }
}

/// One physical count's outcome: `POST /api/counts` and `stockade reconcile --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountOut {
    pub sku: String,
    /// When the count was taken (RFC 3339).
    pub counted_at: String,
    pub counted: u64,
    /// On hand at `counted_at`, by the log.
    pub on_hand_then: Option<u64>,
    /// Units added (positive) or removed (negative) now.
    pub delta: i64,
    /// `applied`, `would apply` (dry run), `no change`, `already applied`, or why not.
    pub outcome: String,
    /// The SKU's version after the adjustment, when one was made.
    pub version: Option<u64>,
}

impl From<&CountOutcome> for CountOut {
    fn from(o: &CountOutcome) -> Self {
        Self {
            sku: o.sku.clone(),
            counted_at: o.counted_at.to_string(),
            counted: o.counted,
            on_hand_then: o.on_hand_then,
            delta: o.delta,
            outcome: o.outcome.clone(),
            version: o.version,
        }
    }
}

/// One endpoint's part of a dead-letter replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointReplayOut {
    /// The endpoint's name in the configuration.
    pub endpoint: String,
    pub delivered: usize,
    pub still_failing: usize,
}

impl EndpointReplayOut {
    pub fn new(endpoint: &str, report: &ReplayReport) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            delivered: report.delivered,
            still_failing: report.still_failing,
        }
    }
}

/// A replay of dead letters: `POST /api/dead-letters/replay` and `stockade dlq replay
/// --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterReplayOut {
    pub endpoints: Vec<EndpointReplayOut>,
    /// Dead letters of endpoints the configuration no longer has, left in the queue: the
    /// command line looks for them; the server does not, and leaves this out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfigured: Option<Vec<String>>,
}

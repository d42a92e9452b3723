//! What callers send, and the checks that turn it into the engine's types.
//!
//! Every struct denies unknown fields, so a misspelt option (`"qtty"`) is refused instead
//! of ignored. `validate` methods check ranges here, once for every channel, so that an
//! order with one bad line is refused before any line is held.
//!
//! With the `schema` feature the requests also describe themselves as JSON Schema (their
//! doc comments become the descriptions), which is how MCP's tools take these same shapes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stockade_domain::allocation::Strategy;
use stockade_domain::pool::DAY_MILLIS;
use stockade_domain::{
    Component, CustomerId, LocationConfig, LocationId, MAX_TTL, OrderId, Placement, PoolConfig,
    Quantity, ReceiptRef, ReservationId, Sku, StockChange, Timestamp, TransferId,
};
use stockade_engine::inventory::MAX_LINES;
use stockade_engine::{Adjustment, FairSelling, Line, Receipt, Transfer};

use crate::code::Code;
use crate::error::{ApiError, ErrorKind};

/// The kind of pool a SKU draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolName {
    Physical,
    Digital,
    PrintOnDemand,
    Kit,
}

/// One component of a kit, as a registration names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentIn {
    pub sku: String,
    /// Units of this SKU in one kit, at least 1.
    pub qty: u64,
}

/// One location of a physical SKU, as a registration names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationIn {
    /// The location's id, e.g. "berlin": 1-64 of A-Z a-z 0-9 . _ -
    pub location: String,
    pub on_hand: u64,
    /// Units here never offered (default 0).
    #[serde(default)]
    pub safety_stock: Option<u64>,
    /// Lower is preferred by the `priority` strategy (default 0).
    #[serde(default)]
    pub priority: Option<u32>,
}

/// `POST /api/skus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSkuRequest {
    pub sku: String,
    pub pool: PoolName,
    /// Physical: units on hand (default 0).
    #[serde(default)]
    pub on_hand: Option<u64>,
    /// Physical: units never offered (default 0).
    #[serde(default)]
    pub safety_stock: Option<u64>,
    /// Digital: at most this many reserved + sold; absent for unlimited.
    #[serde(default)]
    pub license_limit: Option<u64>,
    /// Print on demand: units that can be made per period (required).
    #[serde(default)]
    pub capacity: Option<u64>,
    /// Print on demand: the period, in seconds (default one day).
    #[serde(default)]
    pub period_seconds: Option<u64>,
    /// At or below this many available, the SKU shows `low_stock` (default 3).
    #[serde(default)]
    pub low_stock_threshold: Option<u64>,
    /// Kit: what one kit is made of (required), each component registered first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentIn>>,
    /// Physical: where the stock is, instead of `on_hand` and `safety_stock` (the SKU's
    /// totals are then the locations' sums).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<LocationIn>>,
}

impl RegisterSkuRequest {
    pub fn validate(&self) -> Result<(Sku, PoolConfig), ApiError> {
        let sku = sku(&self.sku, "sku")?;
        let unused = |field: &str, value: Option<u64>| match value {
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} does not apply to a {:?} pool", self.pool).to_lowercase(),
            )),
            None => Ok(()),
        };
        if self.pool != PoolName::Physical && self.locations.is_some() {
            return Err(ApiError::invalid(
                "locations",
                format!("locations does not apply to a {:?} pool", self.pool).to_lowercase(),
            ));
        }
        if self.pool != PoolName::Kit && self.components.is_some() {
            return Err(ApiError::invalid(
                "components",
                format!("components does not apply to a {:?} pool", self.pool).to_lowercase(),
            ));
        }
        let pool = match self.pool {
            PoolName::Physical => {
                unused("license_limit", self.license_limit)?;
                unused("capacity", self.capacity)?;
                unused("period_seconds", self.period_seconds)?;
                match &self.locations {
                    None => PoolConfig::physical(
                        Quantity::new(self.on_hand.unwrap_or(0)),
                        Quantity::new(self.safety_stock.unwrap_or(0)),
                    ),
                    Some(given) => {
                        let with = |field: &str| {
                            format!("give {field} per location, not beside locations")
                        };
                        if self.on_hand.is_some() {
                            return Err(ApiError::invalid("on_hand", with("on_hand")));
                        }
                        if self.safety_stock.is_some() {
                            return Err(ApiError::invalid("safety_stock", with("safety_stock")));
                        }
                        if given.is_empty() {
                            return Err(ApiError::invalid(
                                "locations",
                                "locations needs at least one location (or leave it out)",
                            ));
                        }
                        let mut locations = Vec::with_capacity(given.len());
                        for (i, l) in given.iter().enumerate() {
                            locations.push(LocationConfig {
                                location: location(
                                    &l.location,
                                    &format!("locations[{i}].location"),
                                )?,
                                on_hand: Quantity::new(l.on_hand),
                                safety_stock: Quantity::new(l.safety_stock.unwrap_or(0)),
                                priority: l.priority.unwrap_or(0),
                            });
                        }
                        // Distinct ids, at most MAX_LOCATIONS, sums in range: the domain's.
                        PoolConfig::at_locations(locations)
                    }
                }
            }
            PoolName::Digital => {
                unused("on_hand", self.on_hand)?;
                unused("safety_stock", self.safety_stock)?;
                unused("capacity", self.capacity)?;
                unused("period_seconds", self.period_seconds)?;
                PoolConfig::Digital {
                    license_limit: self.license_limit.map(Quantity::new),
                }
            }
            PoolName::PrintOnDemand => {
                unused("on_hand", self.on_hand)?;
                unused("safety_stock", self.safety_stock)?;
                unused("license_limit", self.license_limit)?;
                let capacity = self.capacity.ok_or_else(|| {
                    ApiError::invalid("capacity", "a print_on_demand pool needs a capacity")
                })?;
                let period_millis = match self.period_seconds {
                    None => DAY_MILLIS,
                    Some(0) => {
                        return Err(ApiError::invalid(
                            "period_seconds",
                            "period_seconds must be positive",
                        ));
                    }
                    Some(s) => s.checked_mul(1000).ok_or_else(|| {
                        ApiError::invalid("period_seconds", "period_seconds is out of range")
                    })?,
                };
                PoolConfig::PrintOnDemand {
                    capacity: Quantity::new(capacity),
                    period_millis,
                }
            }
            PoolName::Kit => {
                unused("on_hand", self.on_hand)?;
                unused("safety_stock", self.safety_stock)?;
                unused("license_limit", self.license_limit)?;
                unused("capacity", self.capacity)?;
                unused("period_seconds", self.period_seconds)?;
                let given = self.components.as_deref().ok_or_else(|| {
                    ApiError::invalid("components", "a kit pool needs its components")
                })?;
                let mut components = Vec::with_capacity(given.len());
                for (i, c) in given.iter().enumerate() {
                    components.push(Component {
                        sku: self::sku(&c.sku, &format!("components[{i}].sku"))?,
                        qty: Quantity::new(c.qty),
                    });
                }
                // The rest (1-50 distinct components, each at least 1, not the kit, each
                // registered) is the domain's and the engine's to check.
                PoolConfig::Kit { components }
            }
        };
        Ok((sku, pool))
    }
}

/// One line of a reservation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The SKU id, e.g. "SKU-7782".
    pub sku: String,
    /// Units, at least 1.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub qty: u64,
    /// At a SKU stocked at several locations: take every unit from this location or
    /// none. Leave it out to let `strategy` choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Whether the units may come from more than one location (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_split: Option<bool>,
    /// How locations are chosen when none is named: "priority" (the configured order,
    /// the default), "most_stock" or "fewest_splits".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyName>,
}

/// How a line without a location chooses where its units come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    Priority,
    MostStock,
    FewestSplits,
}

impl From<StrategyName> for Strategy {
    fn from(name: StrategyName) -> Strategy {
        match name {
            StrategyName::Priority => Strategy::Priority,
            StrategyName::MostStock => Strategy::MostStock,
            StrategyName::FewestSplits => Strategy::FewestSplits,
        }
    }
}

/// `POST /api/reservations` and MCP's `orders.create`: only `items` is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// One line per SKU; all are held or none is.
    pub items: Vec<Item>,
    /// How long the hold lasts, 1-604800 seconds (default 900, or the server's setting).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 604_800)))]
    pub ttl_seconds: Option<u64>,
    /// The caller's order id, recorded on the hold and in notices.
    #[serde(default)]
    pub order_id: Option<String>,
    /// SKU → the version the caller decided on; the order is refused (`version_conflict`)
    /// if any of them moved. Every SKU named must be on an item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_versions: Option<BTreeMap<String, u64>>,
    /// The buyer, as your channel knows them (an account id): purchase limits count per
    /// customer, and a SKU with a limit requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

/// A reservation request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedReserve {
    pub lines: Vec<Line>,
    pub ttl: Option<Duration>,
    pub order_id: Option<OrderId>,
    pub expected_versions: BTreeMap<Sku, u64>,
    pub customer: Option<CustomerId>,
}

impl ReserveRequest {
    pub fn validate(&self) -> Result<CheckedReserve, ApiError> {
        if self.items.is_empty() || self.items.len() > MAX_LINES {
            return Err(ApiError::invalid(
                "items",
                format!("a reservation needs 1-{MAX_LINES} items"),
            ));
        }
        let mut lines: Vec<Line> = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            let field = format!("items[{i}]");
            let sku = sku(&item.sku, &format!("{field}.sku"))?;
            if item.qty == 0 {
                return Err(zero_quantity(&field));
            }
            if lines.iter().any(|l| l.sku == sku) {
                return Err(ApiError::invalid(
                    &field,
                    format!("SKU {sku} appears on two items; merge them"),
                ));
            }
            let placement = placement(
                item.location.as_deref(),
                item.allow_split,
                item.strategy,
                &field,
            )?;
            lines.push(Line {
                placement,
                sku,
                qty: Quantity::new(item.qty),
            });
        }
        let ttl = ttl(self.ttl_seconds)?;
        let order_id = self
            .order_id
            .as_deref()
            .map(|o| OrderId::new(o).map_err(|e| ApiError::invalid("order_id", e.to_string())))
            .transpose()?;
        let mut expected_versions = BTreeMap::new();
        for (name, version) in self.expected_versions.iter().flatten() {
            let field = format!("expected_versions.{name}");
            let sku = sku(name, &field)?;
            if !lines.iter().any(|l| l.sku == sku) {
                return Err(ApiError::invalid(
                    &field,
                    format!("{sku} is not on any item of this order"),
                ));
            }
            expected_versions.insert(sku, *version);
        }
        let customer = self
            .customer
            .as_deref()
            .map(|c| customer(c, "customer"))
            .transpose()?;
        Ok(CheckedReserve {
            lines,
            ttl,
            order_id,
            expected_versions,
            customer,
        })
    }
}

/// Where a line's units may come from, as an item names it (`field` prefixes errors).
fn placement(
    location: Option<&str>,
    allow_split: Option<bool>,
    strategy: Option<StrategyName>,
    field: &str,
) -> Result<Placement, ApiError> {
    Ok(Placement {
        location: location
            .map(|l| self::location(l, &format!("{field}.location")))
            .transpose()?,
        allow_split: allow_split.unwrap_or(false),
        strategy: strategy.map(Strategy::from).unwrap_or_default(),
    })
}

/// Part of one line of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PartItem {
    /// A SKU the reservation holds.
    pub sku: String,
    /// Units of that line, at least 1 and at most what it holds.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub qty: u64,
}

/// The body of `POST /api/reservations/{id}/commit` and `/release`: none (or `{}`) for
/// every line whole, or `items` for part of some lines (the rest stays held).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// Units of each named line to commit (or release); leave out for every line whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<PartItem>>,
}

impl ResolveRequest {
    /// The lines and units named, or `None` for every line whole.
    pub fn validate(&self) -> Result<Option<Vec<(Sku, Quantity)>>, ApiError> {
        let Some(items) = &self.items else {
            return Ok(None);
        };
        if items.is_empty() || items.len() > MAX_LINES {
            return Err(ApiError::invalid(
                "items",
                format!("name 1-{MAX_LINES} items, or leave items out for every line"),
            ));
        }
        let mut lines: Vec<(Sku, Quantity)> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let field = format!("items[{i}]");
            let sku = sku(&item.sku, &format!("{field}.sku"))?;
            if item.qty == 0 {
                return Err(zero_quantity(&field));
            }
            if lines.iter().any(|(s, _)| *s == sku) {
                return Err(ApiError::invalid(
                    &field,
                    format!("SKU {sku} appears on two items; merge them"),
                ));
            }
            lines.push((sku, Quantity::new(item.qty)));
        }
        Ok(Some(lines))
    }
}

fn zero_quantity(field: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Unprocessable,
        Code::InvalidQuantity,
        format!("{field}.qty must be greater than zero"),
    )
    .with("field", format!("{field}.qty"))
}

/// The body of `POST /api/reservations/{id}/extend` and MCP's `orders.extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// The reservation then expires this many seconds from now (1-604800), later than it
    /// would have and at most 7 days after it was made.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 604_800)))]
    pub ttl_seconds: u64,
}

impl ExtendRequest {
    pub fn validate(&self) -> Result<Duration, ApiError> {
        ttl(Some(self.ttl_seconds)).map(|t| t.unwrap_or(MAX_TTL))
    }
}

/// A TTL in seconds, checked: 1-604800.
fn ttl(seconds: Option<u64>) -> Result<Option<Duration>, ApiError> {
    match seconds {
        None => Ok(None),
        Some(s) if s == 0 || s > MAX_TTL.as_secs() => Err(ApiError::new(
            ErrorKind::Unprocessable,
            Code::InvalidTtl,
            format!("ttl_seconds must be 1-{}", MAX_TTL.as_secs()),
        )
        .with("field", "ttl_seconds")),
        Some(s) => Ok(Some(Duration::from_secs(s))),
    }
}

/// One line of an amendment: the quantity the line should hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AmendItem {
    /// A SKU the reservation holds (its line changes), or a new one (a line is added).
    pub sku: String,
    /// Units the line holds after the amendment; 0 takes the line off.
    pub qty: u64,
    /// Where added units may come from, as on a new reservation's item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_split: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyName>,
}

/// The body of `POST /api/reservations/{id}/amend` and MCP's `orders.amend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AmendRequest {
    /// The lines to change, add (a new SKU) or take off (qty 0); lines not named stay as
    /// they are. All change or none does.
    pub items: Vec<AmendItem>,
}

impl AmendRequest {
    pub fn validate(&self) -> Result<Vec<Line>, ApiError> {
        if self.items.is_empty() || self.items.len() > MAX_LINES {
            return Err(ApiError::invalid(
                "items",
                format!("an amendment names 1-{MAX_LINES} items"),
            ));
        }
        let mut lines: Vec<Line> = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            let field = format!("items[{i}]");
            let sku = sku(&item.sku, &format!("{field}.sku"))?;
            if lines.iter().any(|l| l.sku == sku) {
                return Err(ApiError::invalid(
                    &field,
                    format!("SKU {sku} appears on two items; merge them"),
                ));
            }
            let placement = placement(
                item.location.as_deref(),
                item.allow_split,
                item.strategy,
                &field,
            )?;
            lines.push(Line {
                placement,
                sku,
                qty: Quantity::new(item.qty),
            });
        }
        if lines.iter().all(|l| l.qty.is_zero()) {
            return Err(ApiError::invalid(
                "items",
                "an amendment must leave at least one line; release the reservation instead",
            ));
        }
        Ok(lines)
    }
}

/// `POST /api/inventory/products/{sku}/adjustments` and MCP's `inventory.adjust`: exactly
/// one of `delta` and `counted_on_hand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// Units received (positive) or written off (negative). Give this or counted_on_hand.
    #[serde(default)]
    pub delta: Option<i64>,
    /// A physical count: the new on-hand figure. Give this or delta.
    #[serde(default)]
    pub counted_on_hand: Option<u64>,
    /// Why, in a few words: "received PO-118", "damaged", "cycle count".
    pub reason: String,
    /// A document the change refers to, e.g. a purchase order.
    #[serde(default)]
    pub reference: Option<String>,
    /// Refuse (`version_conflict`) unless the SKU is still at this version (from a read of
    /// its stock).
    #[serde(default)]
    pub expected_version: Option<u64>,
    /// The location counted or corrected: required at a SKU stocked at several locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl AdjustRequest {
    pub fn validate(&self) -> Result<Adjustment, ApiError> {
        let change = match (self.delta, self.counted_on_hand) {
            (Some(delta), None) => StockChange::Delta(delta),
            (None, Some(count)) => StockChange::Count(Quantity::new(count)),
            _ => {
                return Err(ApiError::invalid(
                    "delta",
                    "give exactly one of delta and counted_on_hand",
                ));
            }
        };
        Ok(Adjustment {
            location: self
                .location
                .as_deref()
                .map(|l| location(l, "location"))
                .transpose()?,
            change,
            reason: self.reason.clone(),
            reference: self.reference.clone(),
            expected_version: self.expected_version,
        })
    }
}

/// `POST /api/inventory/products/{sku}/transfers` and MCP's `inventory.transfer`: send
/// units from one location of a SKU to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Your name for the transfer (a shipment number): it is received by this name, and
    /// naming one already in transit is refused.
    pub transfer_id: String,
    /// The location the units leave.
    pub from: String,
    /// The location they go to.
    pub to: String,
    /// Units, at least 1; at most what `from` has that is not promised to holds.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub qty: u64,
    /// A document the transfer refers to, e.g. a shipment note (at most 256 characters).
    #[serde(default)]
    pub reference: Option<String>,
    /// Refuse (`version_conflict`) unless the SKU is still at this version.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

impl TransferRequest {
    pub fn validate(&self) -> Result<Transfer, ApiError> {
        Ok(Transfer {
            transfer_id: transfer_id(&self.transfer_id, "transfer_id")?,
            from: location(&self.from, "from")?,
            to: location(&self.to, "to")?,
            qty: Quantity::new(self.qty),
            reference: self.reference.clone(),
            expected_version: self.expected_version,
        })
    }
}

/// `POST /api/inventory/products/{sku}/backorders`: how many units may be held beyond
/// on hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BackorderLimitRequest {
    /// Units that may be held beyond on hand (less safety stock); 0 takes no more.
    pub limit: u64,
    /// The location it applies to: required at a SKU stocked at several.
    #[serde(default)]
    pub location: Option<String>,
}

impl BackorderLimitRequest {
    pub fn validate(&self) -> Result<(Quantity, Option<LocationId>), ApiError> {
        let limit = Quantity::new(self.limit);
        let limit = limit
            .in_range()
            .map_err(|e| ApiError::invalid("limit", e.to_string()))?;
        let location = self
            .location
            .as_deref()
            .map(|l| location(l, "location"))
            .transpose()?;
        Ok((limit, location))
    }
}

/// `POST /api/inventory/products/{sku}/receipts`: stock expected from a supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    /// Your name for it (a purchase order or shipping notice): it is received by this name.
    pub reference: String,
    /// Units expected, at least 1.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub qty: u64,
    /// When they are expected: an RFC 3339 time in the future.
    pub eta: String,
    /// Where they arrive: required at a SKU stocked at several locations.
    #[serde(default)]
    pub location: Option<String>,
}

impl ReceiptRequest {
    pub fn validate(&self) -> Result<Receipt, ApiError> {
        Ok(Receipt {
            reference: receipt_ref(&self.reference, "reference")?,
            qty: Quantity::new(self.qty),
            eta: self
                .eta
                .parse::<Timestamp>()
                .map_err(|e| ApiError::invalid("eta", e.to_string()))?,
            location: self
                .location
                .as_deref()
                .map(|l| location(l, "location"))
                .transpose()?,
        })
    }
}

/// `POST /api/inventory/products/{sku}/receipts/{reference}/receive`: units arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ReceiveReceiptRequest {
    /// Units that arrived; all that are still expected when absent.
    #[serde(default)]
    pub qty: Option<u64>,
}

/// `PUT /api/inventory/products/{sku}/fair-selling` and MCP's `inventory.setFairSelling`:
/// the SKU's whole rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FairSellingRequest {
    /// Units one customer may hold and buy over `window_seconds`, at least 1; absent or
    /// null lifts the limit.
    #[serde(default)]
    pub per_customer: Option<u64>,
    /// The limit's window, 1-31622400 seconds (366 days): required with `per_customer`.
    #[serde(default)]
    pub window_seconds: Option<u64>,
    /// How long a waitlist place's hold lasts, 1-86400 seconds (default 120).
    #[serde(default)]
    pub waitlist_hold_seconds: Option<u64>,
}

impl FairSellingRequest {
    /// The rules, checked for shape (their ranges are the domain's to judge).
    pub fn validate(&self) -> Result<FairSelling, ApiError> {
        let window = match (self.per_customer, self.window_seconds) {
            (Some(_), None) => {
                return Err(ApiError::invalid(
                    "window_seconds",
                    "a purchase limit needs its window: window_seconds",
                ));
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "window_seconds",
                    "a window without per_customer limits nothing",
                ));
            }
            (_, w) => Duration::from_secs(w.unwrap_or(0)),
        };
        if self.per_customer == Some(0) {
            return Err(ApiError::invalid(
                "per_customer",
                "a limit of 0 would sell nothing: lift the limit instead",
            ));
        }
        Ok(FairSelling {
            per_customer: self.per_customer.map(Quantity::new),
            window,
            waitlist_hold: self
                .waitlist_hold_seconds
                .map_or(stockade_domain::DEFAULT_WAITLIST_HOLD, Duration::from_secs),
        })
    }
}

/// `POST /api/inventory/products/{sku}/waitlist` and MCP's `inventory.joinWaitlist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JoinWaitlistRequest {
    /// The buyer, as your channel knows them.
    pub customer: String,
    /// Units they wait for, at least 1 (default 1).
    #[serde(default)]
    pub qty: Option<u64>,
}

impl JoinWaitlistRequest {
    pub fn validate(&self) -> Result<(CustomerId, Quantity), ApiError> {
        let qty = self.qty.unwrap_or(1);
        if qty == 0 {
            return Err(ApiError::new(
                ErrorKind::Unprocessable,
                Code::InvalidQuantity,
                "qty must be greater than zero",
            )
            .with("field", "qty"));
        }
        Ok((customer(&self.customer, "customer")?, Quantity::new(qty)))
    }
}

/// A customer id from a body field or a path segment.
pub fn customer(value: &str, field: &str) -> Result<CustomerId, ApiError> {
    CustomerId::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// A receipt reference from a body field or a path segment.
pub fn receipt_ref(value: &str, field: &str) -> Result<ReceiptRef, ApiError> {
    ReceiptRef::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// A location id from a body field.
pub fn location(value: &str, field: &str) -> Result<LocationId, ApiError> {
    LocationId::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// A transfer id from a body field or a path segment.
pub fn transfer_id(value: &str, field: &str) -> Result<TransferId, ApiError> {
    TransferId::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Items per page of a stock list unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 100;
/// Most items one page of a stock list may ask for.
pub const MAX_PAGE: usize = 1000;

/// A list's `limit`, checked: the default when absent, else 1-[`MAX_PAGE`].
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        limit @ 1..=MAX_PAGE => Ok(limit),
        _ => Err(ApiError::invalid(
            "limit",
            format!("limit must be 1-{MAX_PAGE}"),
        )),
    }
}

/// A SKU id from a body field or a path segment.
pub fn sku(value: &str, field: &str) -> Result<Sku, ApiError> {
    Sku::new(value).map_err(|e| {
        ApiError::new(ErrorKind::Unprocessable, Code::InvalidSku, e.to_string())
            .with("field", field)
    })
}

/// An order id from a path segment; a malformed one cannot name anything.
pub fn order_id(value: &str) -> Result<stockade_domain::OrderId, ApiError> {
    stockade_domain::OrderId::new(value).map_err(|_| {
        ApiError::new(
            ErrorKind::NotFound,
            Code::NotFound,
            format!(
                "order {:?} not found",
                value.chars().take(40).collect::<String>()
            ),
        )
    })
}

/// A reservation id from a path segment; a malformed one cannot name anything.
pub fn reservation_id(value: &str) -> Result<ReservationId, ApiError> {
    value.parse().map_err(|_| {
        ApiError::new(
            ErrorKind::NotFound,
            Code::NotFound,
            format!(
                "reservation {:?} not found (ids are UUIDs)",
                value.chars().take(40).collect::<String>()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserve(json: &str) -> Result<CheckedReserve, String> {
        let request: ReserveRequest = serde_json::from_str(json).map_err(|e| e.to_string())?;
        request.validate().map_err(|e| e.code.as_str().to_owned())
    }

    #[test]
    fn reservation_requests_are_checked_before_anything_is_held() {
        let ok = reserve(r#"{"items":[{"sku":"A","qty":2},{"sku":"B","qty":1}],"ttl_seconds":60,"order_id":"o-1"}"#)
            .unwrap();
        assert_eq!(ok.lines.len(), 2);
        assert_eq!(ok.ttl, Some(Duration::from_secs(60)));
        assert_eq!(reserve(r#"{"items":[]}"#).unwrap_err(), "invalid_field");
        assert_eq!(
            reserve(r#"{"items":[{"sku":"A","qty":0}]}"#).unwrap_err(),
            "invalid_quantity"
        );
        assert_eq!(
            reserve(r#"{"items":[{"sku":"A B","qty":1}]}"#).unwrap_err(),
            "invalid_sku"
        );
        assert_eq!(
            reserve(r#"{"items":[{"sku":"A","qty":1},{"sku":"A","qty":1}]}"#).unwrap_err(),
            "invalid_field"
        );
        assert_eq!(
            reserve(r#"{"items":[{"sku":"A","qty":1}],"ttl_seconds":0}"#).unwrap_err(),
            "invalid_ttl"
        );
        assert_eq!(
            reserve(r#"{"items":[{"sku":"A","qty":1}],"ttl_seconds":604801}"#).unwrap_err(),
            "invalid_ttl"
        );
        // Shape errors come from serde: unknown fields, negative or fractional numbers.
        assert!(reserve(r#"{"items":[{"sku":"A","qty":1}],"tll":3}"#).is_err());
        assert!(reserve(r#"{"items":[{"sku":"A","qty":-1}]}"#).is_err());
        assert!(reserve(r#"{"items":[{"sku":"A","qty":1.5}]}"#).is_err());
        assert!(reserve(r#"{"items":[{"sku":"A","qty":1e30}]}"#).is_err());
    }

    #[test]
    fn expected_versions_name_skus_on_the_order() {
        let ok = reserve(r#"{"items":[{"sku":"A","qty":1}],"expected_versions":{"A":4}}"#).unwrap();
        assert_eq!(ok.expected_versions.get(&Sku::new("A").unwrap()), Some(&4));
        assert!(
            reserve(r#"{"items":[{"sku":"A","qty":1}]}"#)
                .unwrap()
                .expected_versions
                .is_empty()
        );
        assert_eq!(
            reserve(r#"{"items":[{"sku":"A","qty":1}],"expected_versions":{"B":4}}"#).unwrap_err(),
            "invalid_field"
        );
        assert_eq!(
            reserve(r#"{"items":[{"sku":"A","qty":1}],"expected_versions":{"A B":4}}"#)
                .unwrap_err(),
            "invalid_sku"
        );
        assert!(
            reserve(r#"{"items":[{"sku":"A","qty":1}],"expected_versions":{"A":-1}}"#).is_err()
        );
    }

    #[test]
    fn pools_take_only_their_own_settings() {
        let register = |json: &str| -> Result<PoolConfig, String> {
            let r: RegisterSkuRequest = serde_json::from_str(json).map_err(|e| e.to_string())?;
            r.validate().map(|(_, p)| p).map_err(|e| e.message)
        };
        assert_eq!(
            register(r#"{"sku":"A","pool":"physical","on_hand":5}"#).unwrap(),
            PoolConfig::Physical {
                locations: Vec::new(),
                on_hand: Quantity::new(5),
                safety_stock: Quantity::ZERO
            }
        );
        assert_eq!(
            register(r#"{"sku":"A","pool":"digital"}"#).unwrap(),
            PoolConfig::Digital {
                license_limit: None
            }
        );
        assert_eq!(
            register(r#"{"sku":"A","pool":"print_on_demand","capacity":9,"period_seconds":60}"#)
                .unwrap(),
            PoolConfig::PrintOnDemand {
                capacity: Quantity::new(9),
                period_millis: 60_000
            }
        );
        assert!(register(r#"{"sku":"A","pool":"digital","on_hand":5}"#).is_err());
        assert!(register(r#"{"sku":"A","pool":"print_on_demand"}"#).is_err());
        assert!(register(r#"{"sku":"A","pool":"lake"}"#).is_err());
    }

    #[test]
    fn an_adjustment_is_a_delta_or_a_count_never_both() {
        let adjust = |json: &str| -> Result<Adjustment, String> {
            let r: AdjustRequest = serde_json::from_str(json).map_err(|e| e.to_string())?;
            r.validate().map_err(|e| e.message)
        };
        assert_eq!(
            adjust(r#"{"delta":-2,"reason":"damaged"}"#).unwrap().change,
            StockChange::Delta(-2)
        );
        assert_eq!(
            adjust(r#"{"counted_on_hand":7,"reason":"count","expected_version":4}"#)
                .unwrap()
                .expected_version,
            Some(4)
        );
        assert!(adjust(r#"{"delta":1,"counted_on_hand":7,"reason":"x"}"#).is_err());
        assert!(adjust(r#"{"reason":"x"}"#).is_err());
        assert!(adjust(r#"{"delta":1}"#).is_err());
    }
}

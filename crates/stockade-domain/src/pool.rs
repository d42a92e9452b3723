//! The three kinds of stock pool and the settings a SKU is registered with.
//!
//! Each pool answers the same two questions differently: how much may still be reserved
//! (its *limit* minus what is *used*), and what a count or correction changes.
//! - physical: the limit is `on_hand - safety_stock`; used is what is reserved. The stock
//!   may be spread over locations ([`LocationConfig`]), each with its own figures; then
//!   what may be reserved is the sum of what each location can offer.
//! - digital: unlimited, or `license_limit`; used is reserved plus sold.
//! - print on demand: `capacity` per period; used is reserved plus sold in the period in
//!   which those reservations were made.
//! - kit: no stock of its own. A kit is its components; the engine holds them in its place
//!   and derives its availability from theirs (`docs/adr/0006-locations-and-kits.md`).

use serde::{Deserialize, Serialize};

use crate::ids::{LocationId, Sku};
use crate::quantity::Quantity;
use crate::rejection::Rejection;

/// One day, the default production period of a print-on-demand SKU.
pub const DAY_MILLIS: u64 = 86_400_000;
/// Most components one kit may list.
pub const MAX_COMPONENTS: usize = 50;
/// Most locations one SKU may be stocked at. Every reservation looks at each of them
/// (allocation is linear in their number), so this bounds the writer's work per decision.
pub const MAX_LOCATIONS: usize = 1000;
/// The location of a SKU registered without locations: the one place all its stock is.
pub const DEFAULT_LOCATION: &str = "default";

/// One place a physical SKU is stocked at, as given at registration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocationConfig {
    pub location: LocationId,
    pub on_hand: Quantity,
    /// Units here that are never offered.
    #[serde(default)]
    pub safety_stock: Quantity,
    /// Lower is preferred by the `priority` strategy (and breaks ties for the others).
    #[serde(default)]
    pub priority: u32,
}

/// One component of a kit: `qty` units of `sku` in every kit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Component {
    pub sku: Sku,
    pub qty: Quantity,
}

/// How a SKU's stock is bounded, as given at registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "pool", rename_all = "snake_case")]
pub enum PoolConfig {
    /// Finite goods on shelves; `safety_stock` units are never offered. With `locations`,
    /// the stock is held at those places and `on_hand` and `safety_stock` are their sums;
    /// without, it is all at one location, [`DEFAULT_LOCATION`] (every log written before
    /// locations existed reads this way).
    Physical {
        on_hand: Quantity,
        safety_stock: Quantity,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        locations: Vec<LocationConfig>,
    },
    /// Downloads and keys: unlimited when `license_limit` is `None`.
    Digital { license_limit: Option<Quantity> },
    /// Made to order: at most `capacity` reserved or sold per `period_millis` window
    /// (windows are aligned to the Unix epoch, so a day period is a UTC day).
    PrintOnDemand {
        capacity: Quantity,
        period_millis: u64,
    },
    /// Sold as a set of other SKUs: a kit is held, sold and given back as its components.
    Kit { components: Vec<Component> },
}

/// A kit's own rules: 1-[`MAX_COMPONENTS`] distinct components, each at least one unit
/// (and within the quantity range), never the kit itself. That the components exist is
/// the engine's to check: it needs their streams. Pure, so it runs before anything is
/// asked of a component.
pub fn check_kit(sku: &Sku, components: &[Component]) -> Result<(), Rejection> {
    let invalid = |reason: String| Err(Rejection::InvalidPool { reason });
    if components.is_empty() || components.len() > MAX_COMPONENTS {
        return invalid(format!("a kit needs 1-{MAX_COMPONENTS} components"));
    }
    for (i, component) in components.iter().enumerate() {
        if component.qty.is_zero() {
            return invalid(format!(
                "component {} needs a quantity of at least 1",
                component.sku
            ));
        }
        component.qty.in_range()?;
        if &component.sku == sku {
            return invalid(format!("kit {sku} cannot contain itself"));
        }
        if components[..i].iter().any(|c| c.sku == component.sku) {
            return invalid(format!(
                "component {} is listed twice; list it once with the total quantity",
                component.sku
            ));
        }
    }
    Ok(())
}

/// A physical SKU's locations: 1-[`MAX_LOCATIONS`] distinct ones whose figures sum to the
/// pool's `on_hand` and `safety_stock` (the totals are recorded for readers that do not
/// know locations, so they must not disagree with them). An empty list is the one default
/// location and always valid.
pub fn check_locations(
    on_hand: Quantity,
    safety_stock: Quantity,
    locations: &[LocationConfig],
) -> Result<(), Rejection> {
    let invalid = |reason: String| Err(Rejection::InvalidPool { reason });
    if locations.is_empty() {
        return Ok(());
    }
    if locations.len() > MAX_LOCATIONS {
        return invalid(format!(
            "a SKU can be stocked at 1-{MAX_LOCATIONS} locations"
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(locations.len());
    let (mut total, mut safety) = (Quantity::ZERO, Quantity::ZERO);
    for l in locations {
        if !seen.insert(&l.location) {
            return invalid(format!("location {} is listed twice", l.location));
        }
        total = total.checked_add(l.on_hand)?;
        safety = safety.checked_add(l.safety_stock)?;
    }
    if total != on_hand || safety != safety_stock {
        return invalid(format!(
            "on_hand {on_hand} and safety_stock {safety_stock} must be the locations' sums \
             ({total} and {safety}); give the locations alone"
        ));
    }
    Ok(())
}

impl PoolConfig {
    /// A physical pool at one location, the default.
    pub fn physical(on_hand: Quantity, safety_stock: Quantity) -> Self {
        PoolConfig::Physical {
            on_hand,
            safety_stock,
            locations: Vec::new(),
        }
    }

    /// A physical pool at these locations, its totals summed from them (saturating: an
    /// out-of-range sum is refused at registration by [`check_locations`]'s range check).
    pub fn at_locations(locations: Vec<LocationConfig>) -> Self {
        let sum = |f: fn(&LocationConfig) -> Quantity| {
            let total: u128 = locations.iter().map(|l| u128::from(f(l).get())).sum();
            Quantity::new(u64::try_from(total).unwrap_or(u64::MAX))
        };
        PoolConfig::Physical {
            on_hand: sum(|l| l.on_hand),
            safety_stock: sum(|l| l.safety_stock),
            locations,
        }
    }

    pub fn kind(&self) -> PoolKind {
        match self {
            PoolConfig::Physical { .. } => PoolKind::Physical,
            PoolConfig::Digital { .. } => PoolKind::Digital,
            PoolConfig::PrintOnDemand { .. } => PoolKind::PrintOnDemand,
            PoolConfig::Kit { .. } => PoolKind::Kit,
        }
    }

    /// Every quantity the pool is configured with.
    pub fn quantities(&self) -> Vec<Quantity> {
        match self {
            PoolConfig::Physical {
                on_hand,
                safety_stock,
                locations,
            } => [*on_hand, *safety_stock]
                .into_iter()
                .chain(locations.iter().flat_map(|l| [l.on_hand, l.safety_stock]))
                .collect(),
            PoolConfig::Digital { license_limit } => license_limit.iter().copied().collect(),
            PoolConfig::PrintOnDemand { capacity, .. } => vec![*capacity],
            PoolConfig::Kit { components } => components.iter().map(|c| c.qty).collect(),
        }
    }
}

/// The pool's kind, for messages and read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    Physical,
    Digital,
    PrintOnDemand,
    Kit,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Physical => "physical",
            PoolKind::Digital => "digital",
            PoolKind::PrintOnDemand => "print_on_demand",
            PoolKind::Kit => "kit",
        }
    }
}

impl std::fmt::Display for PoolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

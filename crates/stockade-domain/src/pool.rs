//! The three kinds of stock pool and the settings a SKU is registered with.
//!
//! Each pool answers the same two questions differently: how much may still be reserved
//! (its *limit* minus what is *used*), and what a count or correction changes.
//! - physical: the limit is `on_hand - safety_stock`; used is what is reserved.
//! - digital: unlimited, or `license_limit`; used is reserved plus sold.
//! - print on demand: `capacity` per period; used is reserved plus sold in the period in
//!   which those reservations were made.
//! - kit: no stock of its own. A kit is its components; the engine holds them in its place
//!   and derives its availability from theirs (`docs/adr/0006-locations-and-kits.md`).

use serde::{Deserialize, Serialize};

use crate::ids::Sku;
use crate::quantity::Quantity;
use crate::rejection::Rejection;

/// One day, the default production period of a print-on-demand SKU.
pub const DAY_MILLIS: u64 = 86_400_000;
/// Most components one kit may list.
pub const MAX_COMPONENTS: usize = 50;

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
    /// Finite goods on shelves; `safety_stock` units are never offered.
    Physical {
        on_hand: Quantity,
        safety_stock: Quantity,
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

impl PoolConfig {
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
            } => vec![*on_hand, *safety_stock],
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

//! Kits (ADR 0006): a kit SKU's stream holds its definition, and an order for a kit holds
//! its components. Here: telling kits from other SKUs, expanding an order's kit lines into
//! component lines before the saga decides anything, and deriving a kit's stock from its
//! components'.
//!
//! Invariant: a SKU's pool is fixed at registration, so what [`Pools`] remembers about a
//! SKU is never stale. A SKU it has not seen is asked once (its state read through its
//! actor, which the reservation wakes anyway), so nothing needs an index of kits.
//!
//! Invariant: expansion sums a component named on several lines, or by several kits, of
//! one order into one line: each component SKU sees one decision per order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use stockade_domain::{Availability, Component, PoolKind, Quantity, Rejection, Sku};

use super::*;

/// Deepest nesting of kits in kits that registration accepts; expansion stops there too.
pub const MAX_KIT_DEPTH: usize = 4;
/// SKUs remembered as not being kits, per generation (two generations are kept).
const PLAIN_GENERATION: usize = 50_000;

/// What is known about SKUs' pools: every kit seen, and a bounded set of SKUs seen not to
/// be kits (the hot ones, in practice).
#[derive(Debug, Default)]
pub(super) struct Pools {
    kits: DashMap<Sku, Arc<[Component]>>,
    plain: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashSet<Sku>,
    previous: HashSet<Sku>,
}

/// A SKU as an order sees it.
enum Kind {
    Plain,
    Kit(Arc<[Component]>),
}

impl Pools {
    fn remembered(&self, sku: &Sku) -> Option<Kind> {
        if let Some(kit) = self.kits.get(sku) {
            return Some(Kind::Kit(kit.clone()));
        }
        let plain = self.plain.lock().unwrap_or_else(PoisonError::into_inner);
        (plain.current.contains(sku) || plain.previous.contains(sku)).then_some(Kind::Plain)
    }

    fn remember_plain(&self, sku: &Sku) {
        let mut plain = self.plain.lock().unwrap_or_else(PoisonError::into_inner);
        if plain.current.len() >= PLAIN_GENERATION {
            // Keep the allocation: the generation fills again at the same rate.
            let mut recycled = std::mem::take(&mut plain.previous);
            recycled.clear();
            plain.previous = std::mem::replace(&mut plain.current, recycled);
        }
        plain.current.insert(sku.clone());
    }

    pub(super) fn remember_kit(&self, sku: &Sku, components: &[Component]) {
        self.kits.insert(sku.clone(), components.into());
    }

    /// Whether any line could be a kit without asking: the fast path of every order.
    fn all_plain(&self, lines: &[Line]) -> bool {
        lines
            .iter()
            .all(|l| matches!(self.remembered(&l.sku), Some(Kind::Plain)))
    }
}

impl Inventory {
    /// What `sku` is: asked of its state the first time. An unregistered SKU is taken as
    /// plain (and not remembered): its own actor refuses the line.
    async fn kind_of(&self, sku: &Sku) -> Result<Kind, Error> {
        if let Some(kind) = self.inner.pools.remembered(sku) {
            return Ok(kind);
        }
        match self.stock_of_stream(sku).await {
            Ok(level) if level.view.pool == PoolKind::Kit => {
                self.inner.pools.remember_kit(sku, &level.view.components);
                Ok(Kind::Kit(level.view.components.into()))
            }
            Ok(_) => {
                self.inner.pools.remember_plain(sku);
                Ok(Kind::Plain)
            }
            Err(Error::Rejected {
                rejection: Rejection::UnknownSku,
                ..
            }) => Ok(Kind::Plain),
            Err(e) => Err(e),
        }
    }

    /// `lines` with every kit replaced by its components (kits in kits too), each
    /// component's units summed over the order, in the order first named. Lines naming no
    /// kit come back as they are.
    pub(super) async fn expand_kits(&self, lines: Vec<Line>) -> Result<Vec<Line>, Error> {
        if self.inner.pools.all_plain(&lines) {
            return Ok(lines);
        }
        self.expand_from(lines, 0).await
    }

    /// [`Inventory::expand_kits`] for lines that already sit `depth` kits deep.
    async fn expand_from(&self, lines: Vec<Line>, depth: usize) -> Result<Vec<Line>, Error> {
        let mut expanded: Vec<Line> = Vec::with_capacity(lines.len());
        let mut any_kit = false;
        // (SKU, units, depth) still to place; depth counts the kits above it.
        let mut pending: Vec<(Sku, Quantity, usize)> = lines
            .into_iter()
            .rev()
            .map(|l| (l.sku, l.qty, depth))
            .collect();
        while let Some((sku, qty, depth)) = pending.pop() {
            match self.kind_of(&sku).await? {
                Kind::Plain => match expanded.iter_mut().find(|l| l.sku == sku) {
                    Some(line) => {
                        line.qty = line
                            .qty
                            .checked_add(qty)
                            .map_err(|e| out_of_range(&sku, e))?;
                    }
                    None => expanded.push(Line { sku, qty }),
                },
                Kind::Kit(components) => {
                    any_kit = true;
                    if depth >= MAX_KIT_DEPTH {
                        return Err(Error::Invalid(format!(
                            "kit {sku} sits more than {MAX_KIT_DEPTH} kits deep"
                        )));
                    }
                    for c in components.iter().rev() {
                        let units = c.qty.checked_mul(qty).map_err(|e| out_of_range(&sku, e))?;
                        pending.push((c.sku.clone(), units, depth + 1));
                    }
                }
            }
        }
        if any_kit && expanded.len() > MAX_LINES {
            return Err(Error::Invalid(format!(
                "the kits expand to {} component SKUs; at most {MAX_LINES}",
                expanded.len()
            )));
        }
        Ok(expanded)
    }

    /// Checks a kit's components before it is registered: each is registered, and the kit
    /// expands within [`MAX_KIT_DEPTH`] and `MAX_LINES` as an order would. (That a kit is
    /// not its own component the domain checks; a longer cycle cannot form, since the
    /// components exist before the kit.)
    pub(super) async fn check_components(
        &self,
        kit: &Sku,
        components: &[Component],
    ) -> Result<(), Error> {
        let invalid = |reason: String| Error::Rejected {
            sku: kit.clone(),
            rejection: Rejection::InvalidPool { reason },
        };
        let mut lines = Vec::with_capacity(components.len());
        for c in components.iter().filter(|c| c.sku != *kit) {
            match self.kind_of_registered(&c.sku).await {
                Ok(()) => {}
                Err(Error::Rejected {
                    rejection: Rejection::UnknownSku,
                    ..
                }) => {
                    return Err(invalid(format!(
                        "component {} is not registered; register it first",
                        c.sku
                    )));
                }
                Err(e) => return Err(e),
            }
            lines.push(Line {
                sku: c.sku.clone(),
                qty: c.qty,
            });
        }
        match self.expand_from(lines, 1).await {
            Ok(_) => Ok(()),
            Err(Error::Invalid(reason)) => Err(invalid(reason)),
            Err(e) => Err(e),
        }
    }

    /// Learns what a SKU is, or that it is not registered.
    async fn kind_of_registered(&self, sku: &Sku) -> Result<(), Error> {
        if self.inner.pools.remembered(sku).is_some() {
            return Ok(());
        }
        let level = self.stock_of_stream(sku).await?;
        match level.view.pool {
            PoolKind::Kit => self.inner.pools.remember_kit(sku, &level.view.components),
            _ => self.inner.pools.remember_plain(sku),
        }
        Ok(())
    }

    /// A kit's stock, derived at this instant from the SKUs it comes down to (kits in it
    /// expanded, a SKU named at several levels summed), each read from its own actor:
    /// the kit's availability is the fewest whole kits any of them allows. Its version is
    /// the kit's own plus theirs: it grows with every change to any of them, so a reader
    /// can compare two reads of a kit as it compares two reads of any SKU.
    pub(super) async fn derive_kit(
        &self,
        sku: &Sku,
        mut level: StockLevel,
    ) -> Result<StockLevel, Error> {
        self.inner.pools.remember_kit(sku, &level.view.components);
        let one = vec![Line {
            sku: sku.clone(),
            qty: Quantity::new(1),
        }];
        let leaves = self.expand_from(one, 0).await?;
        let parts = join_all(leaves.iter().map(|leaf| self.stock_of_stream(&leaf.sku))).await;
        let mut available = Availability::Unlimited;
        for (leaf, part) in leaves.iter().zip(parts) {
            let part = part?;
            level.derived_from.push((leaf.sku.clone(), part.version));
            level.version = level.version.saturating_add(part.version);
            level.updated_at = level.updated_at.max(part.updated_at);
            level.as_of = level.as_of.max(part.as_of);
            if let Availability::Limited(units) = part.view.available {
                let kits = Quantity::new(units.get() / leaf.qty.get().max(1));
                available = match available {
                    Availability::Limited(a) => Availability::Limited(a.min(kits)),
                    Availability::Unlimited => Availability::Limited(kits),
                };
            }
        }
        level.view.available = available;
        Ok(level)
    }
}

fn out_of_range(sku: &Sku, e: stockade_domain::ArithmeticError) -> Error {
    Error::Rejected {
        sku: sku.clone(),
        rejection: Rejection::OutOfRange { source: e },
    }
}

//! Kits (ADR 0006): a kit SKU's stream holds its definition, and an order for a kit holds
//! its components. Here: telling kits from other SKUs, expanding an order's kit lines into
//! component lines before the saga decides anything, and deriving a kit's stock from its
//! components'.
//!
//! Invariant: a SKU's pool is fixed at registration, so what [`Pools`] remembers about a
//! SKU is never stale. A SKU not in memory is asked (its state read through its actor,
//! which the reservation wakes anyway): once per process for a kit; for a plain SKU again
//! only after the bounded memory of plain SKUs was emptied. Unregistered SKUs are not
//! remembered. So nothing needs an index of kits.
//!
//! Invariant: each kit is flattened once per process into the plain SKUs it comes down to
//! (kits in it expanded, a SKU named at several levels summed; at most `MAX_LINES` of
//! them, at most [`MAX_KIT_DEPTH`] kits deep). An order then costs at most its lines times
//! that, never a walk of nested definitions.
//!
//! Invariant: expansion sums a component named on several lines, or by several kits, of
//! one order into one line: each component SKU sees one decision per order.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use stockade_domain::{Availability, Component, PoolKind, Quantity, Rejection, Sku};

use super::*;

/// Deepest nesting of kits in kits: a kit of plain SKUs is 1 deep.
pub const MAX_KIT_DEPTH: usize = 4;
/// SKUs remembered as not being kits; past this many the memory is emptied and relearned
/// (one read per SKU), which bounds it without a lock on the hot path.
const PLAIN_LIMIT: usize = 100_000;

/// A kit as orders use it: the plain SKUs it comes down to, units per kit.
#[derive(Debug)]
struct Flat {
    leaves: Vec<Component>,
    /// How many kits deep it goes: 1 for a kit of plain SKUs.
    depth: usize,
}

/// What is known about SKUs' pools: every kit seen (flattened), and a bounded set of SKUs
/// seen not to be kits (the hot ones, in practice).
#[derive(Debug, Default)]
pub(super) struct Pools {
    kits: DashMap<Sku, Arc<Flat>>,
    plain: DashMap<Sku, ()>,
}

/// A kit checked for registration, flattened: remembered once it is registered, so this
/// engine's first order for it asks nothing.
pub(super) struct KitPlan(Arc<Flat>);

/// A SKU as an order sees it.
enum Kind {
    Plain,
    Kit(Arc<Flat>),
}

impl Pools {
    fn remember_plain(&self, sku: &Sku) {
        if self.plain.len() >= PLAIN_LIMIT {
            self.plain.clear();
        }
        self.plain.insert(sku.clone(), ());
    }

    /// Whether every line is known to be plain: the fast path of every order.
    fn all_plain(&self, lines: &[Line]) -> bool {
        lines.iter().all(|l| self.plain.contains_key(&l.sku))
    }
}

/// Lines summed by SKU, in the order first named; refused past `MAX_LINES`.
#[derive(Default)]
struct Summed {
    lines: Vec<Line>,
    index: HashMap<Sku, usize>,
}

impl Summed {
    /// Adds `qty` of `sku`; `placement` is the order's own line's, for a SKU ordered on
    /// its own (it then applies to the kits' units of it too).
    fn add(
        &mut self,
        sku: &Sku,
        qty: Quantity,
        placement: Option<&Placement>,
    ) -> Result<(), Error> {
        match self.index.get(sku) {
            Some(&i) => {
                self.lines[i].qty = self.lines[i]
                    .qty
                    .checked_add(qty)
                    .map_err(|e| out_of_range(sku, e))?;
                if let Some(placement) = placement {
                    self.lines[i].placement = placement.clone();
                }
            }
            None => {
                if self.lines.len() == MAX_LINES {
                    return Err(Error::Invalid(format!(
                        "the order's kits come down to more than {MAX_LINES} SKUs"
                    )));
                }
                self.index.insert(sku.clone(), self.lines.len());
                self.lines.push(Line {
                    sku: sku.clone(),
                    qty,
                    placement: placement.cloned().unwrap_or_default(),
                });
            }
        }
        Ok(())
    }
}

impl Inventory {
    /// What `sku` is. An unregistered SKU is taken as plain (and not remembered): its own
    /// actor refuses the line.
    async fn kind_of(&self, sku: &Sku) -> Result<Kind, Error> {
        match self.kind_of_registered(sku).await {
            Err(Error::Rejected {
                rejection: Rejection::UnknownSku,
                ..
            }) => Ok(Kind::Plain),
            other => other,
        }
    }

    /// What registered `sku` is; `UnknownSku` if it is not registered.
    async fn kind_of_registered(&self, sku: &Sku) -> Result<Kind, Error> {
        if let Some(flat) = self.inner.pools.kits.get(sku) {
            return Ok(Kind::Kit(flat.clone()));
        }
        if self.inner.pools.plain.contains_key(sku) {
            return Ok(Kind::Plain);
        }
        let level = self.stock_of_stream(sku).await?;
        if level.view.pool != PoolKind::Kit {
            self.inner.pools.remember_plain(sku);
            return Ok(Kind::Plain);
        }
        let flat = Arc::new(Box::pin(self.flatten(&level.view.components)).await?);
        self.inner.pools.kits.insert(sku.clone(), flat.clone());
        Ok(Kind::Kit(flat))
    }

    /// The plain SKUs `components` come down to. Each component kit is flattened once and
    /// remembered, so this costs the components' flattened sizes, not their nesting.
    async fn flatten(&self, components: &[Component]) -> Result<Flat, Error> {
        let mut summed = Summed::default();
        let mut depth = 1;
        for c in components {
            match self.kind_of_registered(&c.sku).await? {
                Kind::Plain => summed.add(&c.sku, c.qty, None)?,
                Kind::Kit(inner) => {
                    depth = depth.max(inner.depth + 1);
                    if depth > MAX_KIT_DEPTH {
                        return Err(Error::Invalid(format!(
                            "kits nest more than {MAX_KIT_DEPTH} deep (through {})",
                            c.sku
                        )));
                    }
                    for leaf in &inner.leaves {
                        let units = leaf
                            .qty
                            .checked_mul(c.qty)
                            .map_err(|e| out_of_range(&c.sku, e))?;
                        summed.add(&leaf.sku, units, None)?;
                    }
                }
            }
        }
        let leaves = summed
            .lines
            .into_iter()
            .map(|l| Component {
                sku: l.sku,
                qty: l.qty,
            })
            .collect();
        Ok(Flat { leaves, depth })
    }

    /// `lines` with every kit replaced by the plain SKUs it comes down to, each SKU's
    /// units summed over the order, in the order first named. Lines naming no kit come
    /// back as they are.
    pub(super) async fn expand_kits(&self, lines: Vec<Line>) -> Result<Vec<Line>, Error> {
        if self.inner.pools.all_plain(&lines) {
            return Ok(lines);
        }
        let mut summed = Summed::default();
        for line in &lines {
            match self.kind_of(&line.sku).await? {
                Kind::Plain => summed.add(&line.sku, line.qty, Some(&line.placement))?,
                Kind::Kit(flat) => {
                    for leaf in &flat.leaves {
                        let units = leaf
                            .qty
                            .checked_mul(line.qty)
                            .map_err(|e| out_of_range(&line.sku, e))?;
                        summed.add(&leaf.sku, units, None)?;
                    }
                }
            }
        }
        Ok(summed.lines)
    }

    /// Refuses a change to a kit's own stream before it reaches the actor (whose version
    /// check would otherwise answer first, against a version a reader never saw: a kit's
    /// read shows its derived version).
    pub(super) async fn refuse_kit(&self, sku: &Sku, what: &str) -> Result<(), Error> {
        match self.kind_of(sku).await? {
            Kind::Kit(_) => Err(Error::Rejected {
                sku: sku.clone(),
                rejection: Rejection::UnsupportedForPool {
                    pool: PoolKind::Kit,
                    what: what.to_owned(),
                },
            }),
            Kind::Plain => Ok(()),
        }
    }

    /// Checks a kit before it is registered: the domain's own rules first (pure), then
    /// that each component is registered and that the kit flattens within the limits.
    /// (A longer cycle than a kit naming itself cannot form: components exist first.)
    pub(super) async fn check_kit(
        &self,
        kit: &Sku,
        components: &[Component],
    ) -> Result<KitPlan, Error> {
        let invalid = |reason: String| Error::Rejected {
            sku: kit.clone(),
            rejection: Rejection::InvalidPool { reason },
        };
        stockade_domain::pool::check_kit(kit, components).map_err(|rejection| Error::Rejected {
            sku: kit.clone(),
            rejection,
        })?;
        for c in components {
            match self.kind_of_registered(&c.sku).await {
                Ok(_) => {}
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
        }
        match self.flatten(components).await {
            Ok(flat) => Ok(KitPlan(Arc::new(flat))),
            Err(Error::Invalid(reason)) => Err(invalid(reason)),
            Err(Error::Rejected {
                rejection: Rejection::OutOfRange { source },
                ..
            }) => Err(invalid(format!(
                "its units per kit are out of range: {source}"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Remembers a kit this engine just registered.
    pub(super) fn remember_kit(&self, sku: &Sku, plan: KitPlan) {
        self.inner.pools.kits.insert(sku.clone(), plan.0);
    }

    /// A kit's stock, derived at this instant from the plain SKUs it comes down to, each
    /// read from its own actor: the kit's availability is the fewest whole kits any of
    /// them allows. Its version is the kit's own plus theirs: it grows with every change
    /// to any of them, so a reader can compare two reads of a kit as it compares two reads
    /// of any SKU.
    pub(super) async fn derive_kit(
        &self,
        sku: &Sku,
        mut level: StockLevel,
    ) -> Result<StockLevel, Error> {
        let Kind::Kit(flat) = self.kind_of_registered(sku).await? else {
            return Ok(level);
        };
        let parts = join_all(
            flat.leaves
                .iter()
                .map(|leaf| self.stock_of_stream(&leaf.sku)),
        )
        .await;
        let mut available = Availability::Unlimited;
        for (leaf, part) in flat.leaves.iter().zip(parts) {
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

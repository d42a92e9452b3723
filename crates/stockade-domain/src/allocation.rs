//! Allocation: which locations one reservation line's units come from.
//!
//! A SKU may be stocked at several locations (warehouses, stores, drop-shippers), each with
//! what it can still offer. [`allocate`] takes those figures, the line's request and a
//! [`Strategy`], and answers with the units to take from each location, or why it cannot.
//! It is pure and deterministic, and the SKU's single writer calls it while deciding a
//! reservation ([`decide`](crate::decide())), so two orders never both get the last unit
//! at a location. The outcome is recorded on the event (its parts), so a replay never
//! decides again.
//!
//! The rules, for a request of `qty` units:
//! - a line that names its location (a *hard* location) takes every unit there or fails;
//! - otherwise, without splitting, one location must cover the whole line;
//! - with splitting allowed, units may come from several locations.
//!
//! The strategies choose among the locations that qualify:
//! - [`Strategy::Priority`]: the configured order (lowest `priority` first);
//! - [`Strategy::MostStock`]: the location with the most to offer first, which keeps
//!   small locations for the orders only they can serve;
//! - [`Strategy::FewestSplits`]: as few locations as possible (one if any covers the line,
//!   then the configured order among those; when splitting, largest first, which is
//!   optimal for the count).
//!
//! Ties are broken by `priority`, then by location id, so every answer is reproducible.

use serde::{Deserialize, Serialize};

use crate::ids::LocationId;
use crate::quantity::Quantity;

/// What one location can still offer for a SKU (on hand less safety stock and holds). It
/// borrows the location's id: the writer builds one per location for every decision, and
/// only the chosen parts need ids of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationStock<'a> {
    pub location: &'a LocationId,
    pub available: Quantity,
    /// Lower is preferred.
    pub priority: u32,
}

/// How a line without a hard location chooses where its units come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The configured order: lowest `priority` first.
    #[default]
    Priority,
    /// The location with the most available first.
    MostStock,
    /// As few locations as possible.
    FewestSplits,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [
        Strategy::Priority,
        Strategy::MostStock,
        Strategy::FewestSplits,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::MostStock => "most_stock",
            Strategy::FewestSplits => "fewest_splits",
        }
    }
}

/// Where one reservation line's units may come from, as its caller asks. The default
/// (no location, no split, `priority`) is what a SKU at one location always gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Placement {
    /// Take every unit from this location, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationId>,
    /// Whether units may come from more than one location.
    #[serde(default)]
    pub allow_split: bool,
    #[serde(default)]
    pub strategy: Strategy,
}

impl Placement {
    /// A line that must come from `location`.
    pub fn at(location: LocationId) -> Self {
        Placement {
            location: Some(location),
            ..Placement::default()
        }
    }

    /// The allocation request for `qty` units placed this way.
    pub fn request(&self, qty: Quantity) -> Request {
        Request {
            qty,
            location: self.location.clone(),
            allow_split: self.allow_split,
            strategy: self.strategy,
        }
    }
}

/// One line's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub qty: Quantity,
    /// Take every unit from this location, or none.
    pub location: Option<LocationId>,
    /// Whether units may come from more than one location.
    pub allow_split: bool,
    pub strategy: Strategy,
}

/// Units taken from one location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Part {
    pub location: LocationId,
    pub qty: Quantity,
}

/// Why a line cannot be allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unallocatable {
    /// The line asked for a location the SKU is not stocked at.
    UnknownLocation(LocationId),
    /// Not enough under the request's rules; `available` is the most the rules allow
    /// (at the hard location; at the best single location; over all locations).
    Insufficient { available: Quantity },
}

/// The units to take from each location, in the order they are taken, summing to
/// `request.qty`; or why not. A zero `qty` allocates nothing and succeeds (a hard location
/// must still be one the SKU is stocked at).
pub fn allocate(
    stock: &[LocationStock<'_>],
    request: &Request,
) -> Result<Vec<Part>, Unallocatable> {
    let qty = request.qty;
    if let Some(hard) = &request.location {
        let Some(here) = stock.iter().find(|s| s.location == hard) else {
            return Err(Unallocatable::UnknownLocation(hard.clone()));
        };
        return if qty.is_zero() {
            Ok(Vec::new())
        } else if here.available >= qty {
            Ok(parts([(here, qty)]))
        } else {
            Err(Unallocatable::Insufficient {
                available: here.available,
            })
        };
    }
    if qty.is_zero() {
        return Ok(Vec::new());
    }
    if !request.allow_split {
        // FewestSplits without splitting is one location either way: the configured order
        // among those that cover the line, as Priority. The first in the strategy's order
        // among those that cover it is its least by the same key: one pass, no sort (this
        // runs in the SKU's writer for every line).
        return match first_covering(stock, request.strategy, qty) {
            Some(one) => Ok(parts([(one, qty)])),
            None => Err(Unallocatable::Insufficient {
                available: stock
                    .iter()
                    .map(|s| s.available)
                    .max()
                    .unwrap_or(Quantity::ZERO),
            }),
        };
    }
    if request.strategy == Strategy::FewestSplits
        && let Some(one) = first_covering(stock, Strategy::FewestSplits, qty)
    {
        return Ok(parts([(one, qty)]));
    }
    // Splitting: walk the order, taking what each location has until the line is filled.
    // FewestSplits walks largest first here: for covering a sum with the fewest parts,
    // taking the largest remaining is optimal.
    let walk = if request.strategy == Strategy::FewestSplits {
        order(stock, Strategy::MostStock)
    } else {
        order(stock, request.strategy)
    };
    let mut taken = Vec::new();
    let mut left = qty;
    for s in walk {
        if left.is_zero() {
            break;
        }
        let take = left.min(s.available);
        if take.is_zero() {
            continue;
        }
        taken.push((s, take));
        left = left.saturating_sub(take);
    }
    if left.is_zero() {
        Ok(parts(taken))
    } else {
        Err(Unallocatable::Insufficient {
            available: qty.saturating_sub(left),
        })
    }
}

/// How `strategy` ranks two locations: the preferred one is `Less`. Ties by priority,
/// then id, so every answer is reproducible.
fn rank(strategy: Strategy, a: &LocationStock<'_>, b: &LocationStock<'_>) -> std::cmp::Ordering {
    let configured = (a.priority, a.location).cmp(&(b.priority, b.location));
    match strategy {
        Strategy::Priority | Strategy::FewestSplits => configured,
        Strategy::MostStock => b.available.cmp(&a.available).then(configured),
    }
}

/// The location `strategy` prefers among those that cover `qty`, if any.
fn first_covering<'s, 'a>(
    stock: &'s [LocationStock<'a>],
    strategy: Strategy,
    qty: Quantity,
) -> Option<&'s LocationStock<'a>> {
    stock
        .iter()
        .filter(|s| s.available >= qty)
        .min_by(|a, b| rank(strategy, a, b))
}

/// The locations in the order `strategy` prefers them.
fn order<'s, 'a>(stock: &'s [LocationStock<'a>], strategy: Strategy) -> Vec<&'s LocationStock<'a>> {
    let mut ordered: Vec<&LocationStock> = stock.iter().collect();
    ordered.sort_by(|a, b| rank(strategy, a, b));
    ordered
}

fn parts<'s, 'a: 's>(
    taken: impl IntoIterator<Item = (&'s LocationStock<'a>, Quantity)>,
) -> Vec<Part> {
    taken
        .into_iter()
        .map(|(s, qty)| Part {
            location: s.location.clone(),
            qty,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};
    use proptest::strategy::Strategy as _;

    use super::*;

    fn loc(id: &str, available: u64, priority: u32) -> LocationStock<'static> {
        // Leaked: a test's handful of ids, borrowed as the writer borrows its own.
        LocationStock {
            location: Box::leak(Box::new(LocationId::new(id).unwrap())),
            available: Quantity::new(available),
            priority,
        }
    }

    fn request(qty: u64, strategy: Strategy, allow_split: bool) -> Request {
        Request {
            qty: Quantity::new(qty),
            location: None,
            allow_split,
            strategy,
        }
    }

    /// `(location, qty)` pairs, or the refusal in words: compact expectations.
    type Plan = Result<Vec<(String, u64)>, String>;

    fn plan(result: Result<Vec<Part>, Unallocatable>) -> Plan {
        result
            .map(|parts| {
                parts
                    .into_iter()
                    .map(|p| (p.location.to_string(), p.qty.get()))
                    .collect()
            })
            .map_err(|e| match e {
                Unallocatable::UnknownLocation(l) => format!("unknown {l}"),
                Unallocatable::Insufficient { available } => format!("short, {available}"),
            })
    }

    fn ok(parts: &[(&str, u64)]) -> Plan {
        Ok(parts.iter().map(|(l, q)| ((*l).to_owned(), *q)).collect())
    }

    #[test]
    fn each_strategy_picks_as_documented() {
        use Strategy::{FewestSplits, MostStock, Priority};
        // berlin is first in the configured order but small; hamburg has the most.
        let stock = [
            loc("berlin", 3, 1),
            loc("munich", 5, 2),
            loc("hamburg", 8, 3),
        ];
        let cases: [(&str, Request, Plan); 14] = [
            (
                "priority, fits first",
                request(2, Priority, false),
                ok(&[("berlin", 2)]),
            ),
            (
                "priority, first that covers",
                request(4, Priority, false),
                ok(&[("munich", 4)]),
            ),
            (
                "priority, none covers",
                request(9, Priority, false),
                Err("short, 8".into()),
            ),
            (
                "priority, split in order",
                request(9, Priority, true),
                ok(&[("berlin", 3), ("munich", 5), ("hamburg", 1)]),
            ),
            (
                "priority, split not needed",
                request(3, Priority, true),
                ok(&[("berlin", 3)]),
            ),
            (
                "priority, all of it",
                request(16, Priority, true),
                ok(&[("berlin", 3), ("munich", 5), ("hamburg", 8)]),
            ),
            (
                "priority, more than all",
                request(17, Priority, true),
                Err("short, 16".into()),
            ),
            (
                "most stock, one",
                request(2, MostStock, false),
                ok(&[("hamburg", 2)]),
            ),
            (
                "most stock, split",
                request(10, MostStock, true),
                ok(&[("hamburg", 8), ("munich", 2)]),
            ),
            (
                "most stock, none covers",
                request(9, MostStock, false),
                Err("short, 8".into()),
            ),
            (
                "fewest splits, one covers",
                request(4, FewestSplits, true),
                ok(&[("munich", 4)]),
            ),
            (
                "fewest splits, largest first",
                request(11, FewestSplits, true),
                ok(&[("hamburg", 8), ("munich", 3)]),
            ),
            (
                "fewest splits, no split",
                request(6, FewestSplits, false),
                ok(&[("hamburg", 6)]),
            ),
            (
                "fewest splits, short",
                request(17, FewestSplits, true),
                Err("short, 16".into()),
            ),
        ];
        for (what, req, expected) in cases {
            assert_eq!(plan(allocate(&stock, &req)), expected, "{what}");
        }
    }

    #[test]
    fn a_hard_location_is_all_or_nothing_there() {
        let stock = [loc("berlin", 3, 1), loc("hamburg", 8, 2)];
        let at = |id: &str, qty: u64, allow_split: bool| Request {
            location: Some(LocationId::new(id).unwrap()),
            ..request(qty, Strategy::MostStock, allow_split)
        };
        assert_eq!(
            plan(allocate(&stock, &at("berlin", 3, false))),
            ok(&[("berlin", 3)])
        );
        // Splitting never reaches past a hard location.
        assert_eq!(
            plan(allocate(&stock, &at("berlin", 4, true))),
            Err("short, 3".into())
        );
        assert_eq!(
            plan(allocate(&stock, &at("paris", 1, true))),
            Err("unknown paris".into())
        );
    }

    #[test]
    fn ties_break_by_priority_then_id() {
        let stock = [loc("b", 5, 1), loc("a", 5, 1), loc("c", 5, 0)];
        let first = |strategy| plan(allocate(&stock, &request(1, strategy, false)));
        assert_eq!(first(Strategy::Priority), ok(&[("c", 1)]));
        assert_eq!(first(Strategy::MostStock), ok(&[("c", 1)]));
        let stock = [loc("b", 5, 1), loc("a", 5, 1)];
        assert_eq!(
            plan(allocate(&stock, &request(1, Strategy::MostStock, false))),
            ok(&[("a", 1)])
        );
    }

    #[test]
    fn nothing_to_offer_is_short_and_zero_is_nothing() {
        let empty: [LocationStock<'static>; 0] = [];
        assert_eq!(
            plan(allocate(&empty, &request(1, Strategy::Priority, true))),
            Err("short, 0".into())
        );
        let stock = [loc("berlin", 0, 1)];
        assert_eq!(
            plan(allocate(&stock, &request(1, Strategy::FewestSplits, true))),
            Err("short, 0".into())
        );
        assert_eq!(
            plan(allocate(&stock, &request(0, Strategy::Priority, true))),
            ok(&[])
        );
        let at_berlin = Request {
            location: Some(LocationId::new("berlin").unwrap()),
            ..request(0, Strategy::Priority, false)
        };
        assert_eq!(plan(allocate(&stock, &at_berlin)), ok(&[]));
    }

    fn stocks() -> impl proptest::strategy::Strategy<Value = Vec<LocationStock<'static>>> {
        proptest::collection::vec((0u64..50, 0u32..4), 0..8).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (available, priority))| loc(&format!("l{i}"), available, priority))
                .collect()
        })
    }

    fn strategies() -> impl proptest::strategy::Strategy<Value = Strategy> {
        proptest::sample::select(Strategy::ALL.to_vec())
    }

    proptest! {
        /// Whatever the input: an allocation takes exactly the line, never more than a
        /// location has, each location at most once, and one location when splitting is
        /// off; a refusal happens only when the rules really cannot fill the line.
        #[test]
        fn allocations_fill_the_line_within_each_location(
            stock in stocks(),
            qty in 0u64..200,
            split in any::<bool>(),
            strategy in strategies(),
        ) {
            let req = request(qty, strategy, split);
            let total: u64 = stock.iter().map(|s| s.available.get()).sum();
            let best = stock.iter().map(|s| s.available.get()).max().unwrap_or(0);
            match allocate(&stock, &req) {
                Ok(parts) => {
                    prop_assert_eq!(parts.iter().map(|p| p.qty.get()).sum::<u64>(), qty);
                    let mut seen = std::collections::HashSet::new();
                    for p in &parts {
                        prop_assert!(seen.insert(p.location.clone()));
                        prop_assert!(!p.qty.is_zero());
                        let here = stock.iter().find(|s| *s.location == p.location).unwrap();
                        prop_assert!(p.qty <= here.available);
                    }
                    if !split {
                        prop_assert!(parts.len() <= 1);
                    }
                }
                Err(Unallocatable::Insufficient { available }) => {
                    if split {
                        prop_assert!(total < qty);
                        prop_assert_eq!(available.get(), total);
                    } else {
                        prop_assert!(best < qty);
                        prop_assert_eq!(available.get(), best);
                    }
                }
                Err(Unallocatable::UnknownLocation(_)) => prop_assert!(false, "no hard location was asked"),
            }
        }

        /// FewestSplits never uses more locations than another strategy would.
        #[test]
        fn fewest_splits_uses_the_fewest_locations(stock in stocks(), qty in 1u64..200) {
            let count = |strategy| allocate(&stock, &request(qty, strategy, true)).map(|p| p.len());
            if let Ok(fewest) = count(Strategy::FewestSplits) {
                for other in [Strategy::Priority, Strategy::MostStock] {
                    prop_assert!(fewest <= count(other).unwrap());
                }
            }
        }
    }
}

//! A linearizability checker for histories of one SKU's operations.
//!
//! A history is every operation of a concurrent run with the instant it was invoked and
//! the instant it returned, and what it returned. It is linearizable when there is one
//! order of the operations that (a) respects real time (an operation that returned before
//! another was invoked comes first) and (b) gives every operation the result it really
//! got when replayed against the sequential model of a SKU. Operations on different SKUs
//! never interact, so a run is checked SKU by SKU (linearizability is compositional).
//!
//! A SKU may be stocked at several locations: the model then keeps each location's on
//! hand and where each hold is, and a reservation must have been placed where the
//! `priority` strategy puts it (the first location, in index order, that covers it) or at
//! the location it named.
//!
//! A SKU may have a purchase limit: the model then counts each customer's live holds and
//! purchases (the window outlasts a test run), and a customer's reservation or growth
//! past the limit must have been refused as such, before stock is even looked at (the
//! writer's order of checks).
//!
//! The search is Wing & Gong's, with Lowe's memoisation: at each step, try every
//! operation that no remaining operation precedes in real time; a (set of linearized
//! operations, model state) pair already explored is not explored again.

use std::collections::{BTreeMap, HashSet};

/// What an operation asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Hold `qty` units (at a SKU with one location).
    Reserve { qty: u64 },
    /// Hold `qty` units for `customer` (at a SKU with one location and a purchase limit).
    ReserveFor { qty: u64, customer: u8 },
    /// Hold `qty` units at `location` (an index), or where the `priority` strategy puts
    /// them when `None`; never split.
    ReserveAt { qty: u64, location: Option<usize> },
    /// Sell a hold, by the reservation id an earlier `Reserve` returned.
    Commit { id: u128 },
    /// Give a hold back.
    Release { id: u128 },
    /// Sell (`sell`) or give back `qty` of a hold's units; the rest stays held.
    Reduce { id: u128, qty: u64, sell: bool },
    /// Set a hold (at a SKU with one location) to `qty` units; 0 gives it back.
    Amend { id: u128, qty: u64 },
    /// Keep a hold longer (the model has no clock: only whether it was live matters).
    Extend { id: u128 },
    /// Read on hand and reserved.
    Read,
    /// Read each location's on hand and reserved.
    ReadLocations,
}

/// What it got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    Held {
        id: u128,
    },
    /// Held at this location (an index).
    HeldAt {
        id: u128,
        location: usize,
    },
    /// Too little available.
    Refused,
    /// The customer's purchase limit would be passed.
    OverLimit,
    Done,
    /// The reservation was not live (already resolved, or unknown).
    NotLive,
    /// A reduction of more units than the hold had.
    TooMany,
    /// An amendment to what the hold already had, or an extension another had already
    /// taken further.
    Unchanged,
    Level {
        on_hand: u64,
        reserved: u64,
    },
    Levels {
        on_hand: Vec<u64>,
        reserved: Vec<u64>,
    },
}

/// One completed operation. Times are on one clock (nanoseconds since the run began).
#[derive(Debug, Clone)]
pub struct Op {
    pub call: Call,
    pub ret: Ret,
    pub invoked: u64,
    pub returned: u64,
}

/// The sequential model of one SKU: each location's on hand, and the live holds by
/// reservation id with their location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Model {
    on_hand: Vec<u64>,
    holds: BTreeMap<u128, (usize, u64)>,
    /// Units per customer, when the SKU has a limit.
    limit: Option<u64>,
    /// The customer of each hold made for one.
    owners: BTreeMap<u128, u8>,
    /// Units each customer bought.
    bought: BTreeMap<u8, u64>,
}

impl Model {
    fn reserved_at(&self, location: usize) -> u64 {
        self.holds
            .values()
            .filter(|(at, _)| *at == location)
            .map(|(_, qty)| qty)
            .sum()
    }

    fn reserved(&self) -> u64 {
        self.holds.values().map(|(_, qty)| qty).sum()
    }

    fn available(&self, location: usize) -> Option<u64> {
        self.on_hand
            .get(location)?
            .checked_sub(self.reserved_at(location))
    }

    /// Where a reserve of `qty` goes: the named location if it covers it, else the first
    /// that does; `None` when it must be refused.
    fn placed(&self, qty: u64, location: Option<usize>) -> Option<usize> {
        match location {
            Some(l) => (self.available(l)? >= qty).then_some(l),
            None => (0..self.on_hand.len()).find(|l| self.available(*l).is_some_and(|a| a >= qty)),
        }
    }

    /// Units `customer` holds and bought.
    fn counted(&self, customer: u8) -> u64 {
        let held: u64 = self
            .owners
            .iter()
            .filter(|(_, c)| **c == customer)
            .filter_map(|(id, _)| self.holds.get(id).map(|(_, q)| q))
            .sum();
        held + self.bought.get(&customer).copied().unwrap_or(0)
    }

    /// Whether `customer` may take `more` units; `None` for a hold of no customer.
    fn within(&self, customer: Option<u8>, more: u64) -> bool {
        match (self.limit, customer) {
            (Some(limit), Some(c)) => self.counted(c) + more <= limit,
            _ => true,
        }
    }

    /// Records a sale of `qty` units of hold `id`: its customer bought them.
    fn sold(&mut self, id: u128, qty: u64) {
        if let Some(c) = self.owners.get(&id) {
            *self.bought.entry(*c).or_default() += qty;
        }
    }

    fn hold(&self, id: u128, location: usize, qty: u64) -> Option<Model> {
        if self.holds.contains_key(&id) {
            return None;
        }
        let mut next = self.clone();
        next.holds.insert(id, (location, qty));
        Some(next)
    }

    /// Applies `call` if it can have returned `ret`; the new state, or `None`.
    fn step(&self, call: &Call, ret: &Ret) -> Option<Model> {
        match (call, ret) {
            (Call::Reserve { qty }, Ret::Held { id }) => {
                (self.placed(*qty, None)? == 0).then_some(())?;
                self.hold(*id, 0, *qty)
            }
            (Call::Reserve { qty }, Ret::Refused) => {
                self.placed(*qty, None).is_none().then(|| self.clone())
            }
            (Call::ReserveFor { qty, customer }, Ret::Held { id }) => {
                (self.within(Some(*customer), *qty) && self.placed(*qty, None)? == 0)
                    .then_some(())?;
                let mut next = self.hold(*id, 0, *qty)?;
                next.owners.insert(*id, *customer);
                Some(next)
            }
            (Call::ReserveFor { qty, customer }, Ret::Refused) => {
                (self.within(Some(*customer), *qty) && self.placed(*qty, None).is_none())
                    .then(|| self.clone())
            }
            (Call::ReserveFor { qty, customer }, Ret::OverLimit) => {
                (!self.within(Some(*customer), *qty)).then(|| self.clone())
            }
            (Call::ReserveAt { qty, location }, Ret::HeldAt { id, location: at }) => {
                (self.placed(*qty, *location)? == *at).then_some(())?;
                self.hold(*id, *at, *qty)
            }
            (Call::ReserveAt { qty, location }, Ret::Refused) => {
                self.placed(*qty, *location).is_none().then(|| self.clone())
            }
            (Call::Commit { id }, Ret::Done) => {
                let mut next = self.clone();
                let (at, qty) = next.holds.remove(id)?;
                let here = next.on_hand.get_mut(at)?;
                *here = here.checked_sub(qty)?;
                next.sold(*id, qty);
                next.owners.remove(id);
                Some(next)
            }
            (Call::Release { id }, Ret::Done) => {
                let mut next = self.clone();
                next.holds.remove(id)?;
                next.owners.remove(id);
                Some(next)
            }
            (
                Call::Commit { id }
                | Call::Release { id }
                | Call::Reduce { id, .. }
                | Call::Amend { id, .. }
                | Call::Extend { id },
                Ret::NotLive,
            ) => (!self.holds.contains_key(id)).then(|| self.clone()),
            (Call::Reduce { id, qty, sell }, Ret::Done) => {
                let mut next = self.clone();
                let (at, held) = *next.holds.get(id)?;
                let left = held.checked_sub(*qty).filter(|_| *qty > 0)?;
                if left == 0 {
                    next.holds.remove(id);
                } else {
                    next.holds.insert(*id, (at, left));
                }
                if *sell {
                    let here = next.on_hand.get_mut(at)?;
                    *here = here.checked_sub(*qty)?;
                    next.sold(*id, *qty);
                }
                if left == 0 {
                    next.owners.remove(id);
                }
                Some(next)
            }
            (Call::Reduce { id, qty, .. }, Ret::TooMany) => {
                let (_, held) = self.holds.get(id)?;
                (qty > held).then(|| self.clone())
            }
            (Call::Amend { id, qty }, Ret::Done) => {
                let (at, held) = *self.holds.get(id)?;
                let mut next = self.clone();
                if *qty == 0 {
                    next.holds.remove(id);
                    next.owners.remove(id);
                } else if *qty < held {
                    next.holds.insert(*id, (at, *qty));
                } else {
                    // Growth, modelled at a SKU with one location.
                    let more = qty.checked_sub(held).filter(|m| *m > 0)?;
                    let owner = self.owners.get(id).copied();
                    (self.on_hand.len() == 1
                        && self.within(owner, more)
                        && self.available(at)? >= more)
                        .then_some(())?;
                    next.holds.insert(*id, (at, *qty));
                }
                Some(next)
            }
            (Call::Amend { id, qty }, Ret::Refused) => {
                let (at, held) = *self.holds.get(id)?;
                let more = qty.checked_sub(held).filter(|m| *m > 0)?;
                let owner = self.owners.get(id).copied();
                (self.within(owner, more) && self.available(at)? < more).then(|| self.clone())
            }
            (Call::Amend { id, qty }, Ret::OverLimit) => {
                let (_, held) = *self.holds.get(id)?;
                let more = qty.checked_sub(held).filter(|m| *m > 0)?;
                let owner = self.owners.get(id).copied();
                (owner.is_some() && !self.within(owner, more)).then(|| self.clone())
            }
            (Call::Amend { id, qty }, Ret::Unchanged) => {
                let (_, held) = self.holds.get(id)?;
                (qty == held).then(|| self.clone())
            }
            (Call::Extend { id }, Ret::Done | Ret::Unchanged) => {
                self.holds.contains_key(id).then(|| self.clone())
            }
            (Call::Read, Ret::Level { on_hand, reserved }) => {
                (*on_hand == self.on_hand.iter().sum::<u64>() && *reserved == self.reserved())
                    .then(|| self.clone())
            }
            (Call::ReadLocations, Ret::Levels { on_hand, reserved }) => {
                let here: Vec<u64> = (0..self.on_hand.len())
                    .map(|l| self.reserved_at(l))
                    .collect();
                (*on_hand == self.on_hand && *reserved == here).then(|| self.clone())
            }
            _ => None,
        }
    }
}

/// Most operations one SKU's history may have (the search keeps a 128-bit set).
pub const MAX_OPS: usize = 128;

/// Whether `history` (one SKU's, starting with `on_hand` units and no holds) is
/// linearizable. `Err` explains why it could not be checked.
pub fn check(on_hand: u64, history: &[Op]) -> Result<bool, String> {
    check_at(&[on_hand], history)
}

/// [`check`] for a SKU stocked at several locations, with `on_hand` at each (in the
/// order of the `priority` strategy).
pub fn check_at(on_hand: &[u64], history: &[Op]) -> Result<bool, String> {
    check_from(on_hand, None, history)
}

/// [`check`] for a SKU with a purchase limit of `limit` units per customer.
pub fn check_limited(on_hand: u64, limit: u64, history: &[Op]) -> Result<bool, String> {
    check_from(&[on_hand], Some(limit), history)
}

fn check_from(on_hand: &[u64], limit: Option<u64>, history: &[Op]) -> Result<bool, String> {
    if history.len() > MAX_OPS {
        return Err(format!(
            "{} operations; the checker takes at most {MAX_OPS} per SKU",
            history.len()
        ));
    }
    if let Some(op) = history.iter().find(|o| o.returned < o.invoked) {
        return Err(format!("{op:?} returned before it was invoked"));
    }
    let start = Model {
        on_hand: on_hand.to_vec(),
        holds: BTreeMap::new(),
        limit,
        owners: BTreeMap::new(),
        bought: BTreeMap::new(),
    };
    let mut seen = HashSet::new();
    Ok(search(history, 0, &start, &mut seen))
}

fn search(history: &[Op], done: u128, state: &Model, seen: &mut HashSet<(u128, Model)>) -> bool {
    let all = if history.len() == 128 {
        u128::MAX
    } else {
        (1u128 << history.len()) - 1
    };
    if done == all {
        return true;
    }
    if !seen.insert((done, state.clone())) {
        return false;
    }
    // Every remaining operation that was invoked before the earliest remaining return
    // may come next; nothing else may.
    let earliest_return = history
        .iter()
        .enumerate()
        .filter(|(i, _)| done & (1 << i) == 0)
        .map(|(_, op)| op.returned)
        .min()
        .unwrap_or(u64::MAX);
    for (i, op) in history.iter().enumerate() {
        if done & (1 << i) != 0 || op.invoked > earliest_return {
            continue;
        }
        if let Some(next) = state.step(&op.call, &op.ret)
            && search(history, done | (1 << i), &next, seen)
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, ret: Ret, invoked: u64, returned: u64) -> Op {
        Op {
            call,
            ret,
            invoked,
            returned,
        }
    }

    #[test]
    fn sequential_and_overlapping_histories_that_fit_the_model_pass() {
        // 3 units; two overlapping reserves of 2: one of them must be refused.
        let history = [
            op(Call::Reserve { qty: 2 }, Ret::Refused, 0, 10),
            op(Call::Reserve { qty: 2 }, Ret::Held { id: 1 }, 1, 5),
            op(
                Call::Read,
                Ret::Level {
                    on_hand: 3,
                    reserved: 2,
                },
                11,
                12,
            ),
            op(Call::Commit { id: 1 }, Ret::Done, 13, 14),
            op(
                Call::Read,
                Ret::Level {
                    on_hand: 1,
                    reserved: 0,
                },
                15,
                16,
            ),
            op(Call::Release { id: 1 }, Ret::NotLive, 17, 18),
        ];
        assert_eq!(check(3, &history), Ok(true));
        // A read overlapping a reserve may see it or not.
        for reserved in [0, 1] {
            let history = [
                op(Call::Reserve { qty: 1 }, Ret::Held { id: 7 }, 0, 10),
                op(
                    Call::Read,
                    Ret::Level {
                        on_hand: 3,
                        reserved,
                    },
                    2,
                    8,
                ),
            ];
            assert_eq!(check(3, &history), Ok(true), "reserved {reserved}");
        }
    }

    #[test]
    fn histories_no_order_explains_are_refused() {
        // A read after the reserve returned must see the hold.
        let stale_read = [
            op(Call::Reserve { qty: 1 }, Ret::Held { id: 7 }, 0, 5),
            op(
                Call::Read,
                Ret::Level {
                    on_hand: 3,
                    reserved: 0,
                },
                6,
                7,
            ),
        ];
        assert_eq!(check(3, &stale_read), Ok(false));
        // An oversell: both holds of 2 out of 3 succeeded.
        let oversell = [
            op(Call::Reserve { qty: 2 }, Ret::Held { id: 1 }, 0, 10),
            op(Call::Reserve { qty: 2 }, Ret::Held { id: 2 }, 1, 9),
        ];
        assert_eq!(check(3, &oversell), Ok(false));
        // A refusal with stock to spare.
        let spurious = [op(Call::Reserve { qty: 1 }, Ret::Refused, 0, 1)];
        assert_eq!(check(3, &spurious), Ok(false));
        // Committed twice.
        let twice = [
            op(Call::Reserve { qty: 1 }, Ret::Held { id: 1 }, 0, 1),
            op(Call::Commit { id: 1 }, Ret::Done, 2, 3),
            op(Call::Commit { id: 1 }, Ret::Done, 4, 5),
        ];
        assert_eq!(check(3, &twice), Ok(false));
        // A release that says "not live" about a hold that was live all along.
        let lost = [
            op(Call::Reserve { qty: 1 }, Ret::Held { id: 1 }, 0, 1),
            op(Call::Release { id: 1 }, Ret::NotLive, 2, 3),
        ];
        assert_eq!(check(3, &lost), Ok(false));
    }

    #[test]
    fn at_several_locations_holds_go_where_priority_or_the_caller_puts_them() {
        let levels = |on_hand: [u64; 2], reserved: [u64; 2]| Ret::Levels {
            on_hand: on_hand.to_vec(),
            reserved: reserved.to_vec(),
        };
        let any = |qty| Call::ReserveAt {
            qty,
            location: None,
        };
        let at = |qty, l| Call::ReserveAt {
            qty,
            location: Some(l),
        };
        let held = |id, location| Ret::HeldAt { id, location };
        // Two locations of 1 and 3: a line of 2 goes to the second; a hard line to the
        // first takes its one unit; the sale comes off the second.
        let fine = [
            op(any(2), held(1, 1), 0, 1),
            op(at(1, 0), held(2, 0), 2, 3),
            op(Call::Commit { id: 1 }, Ret::Done, 4, 5),
            op(Call::ReadLocations, levels([1, 1], [1, 0]), 6, 7),
            op(at(1, 0), Ret::Refused, 8, 9),
        ];
        assert_eq!(check_at(&[1, 3], &fine), Ok(true));
        // Held at the second location although the first covered it.
        let misplaced = [op(any(1), held(1, 1), 0, 1)];
        assert_eq!(check_at(&[1, 3], &misplaced), Ok(false));
        // The last unit at the first location, held twice by overlapping hard lines.
        let twice = [
            op(at(1, 0), held(1, 0), 0, 5),
            op(at(1, 0), held(2, 0), 1, 4),
        ];
        assert_eq!(check_at(&[1, 3], &twice), Ok(false));
        // Refused with stock at the location it named.
        let spurious = [op(at(1, 1), Ret::Refused, 0, 1)];
        assert_eq!(check_at(&[1, 3], &spurious), Ok(false));
    }

    #[test]
    fn changes_to_live_holds_follow_the_model() {
        let reduce = |id, qty, sell| Call::Reduce { id, qty, sell };
        let level = |on_hand, reserved| Ret::Level { on_hand, reserved };
        // 4 units: a hold of 3, one sold, one given back, grown to 3 again, read.
        let fine = [
            op(Call::Reserve { qty: 3 }, Ret::Held { id: 1 }, 0, 1),
            op(reduce(1, 1, true), Ret::Done, 2, 3),
            op(reduce(1, 1, false), Ret::Done, 4, 5),
            op(Call::Extend { id: 1 }, Ret::Done, 6, 7),
            op(Call::Amend { id: 1, qty: 3 }, Ret::Done, 8, 9),
            op(Call::Read, level(3, 3), 10, 11),
            op(reduce(1, 4, true), Ret::TooMany, 12, 13),
            op(Call::Amend { id: 1, qty: 3 }, Ret::Unchanged, 14, 15),
            op(Call::Amend { id: 1, qty: 0 }, Ret::Done, 16, 17),
            op(Call::Extend { id: 1 }, Ret::NotLive, 18, 19),
        ];
        assert_eq!(check(4, &fine), Ok(true));
        // Grown past what is on hand, by two overlapping amendments: an oversell.
        let both = [
            op(Call::Reserve { qty: 1 }, Ret::Held { id: 1 }, 0, 1),
            op(Call::Reserve { qty: 1 }, Ret::Held { id: 2 }, 0, 1),
            op(Call::Amend { id: 1, qty: 2 }, Ret::Done, 2, 6),
            op(Call::Amend { id: 2, qty: 2 }, Ret::Done, 3, 5),
        ];
        assert_eq!(check(3, &both), Ok(false));
        // A partial sale reported after the hold had ended.
        let late = [
            op(Call::Reserve { qty: 2 }, Ret::Held { id: 1 }, 0, 1),
            op(Call::Release { id: 1 }, Ret::Done, 2, 3),
            op(reduce(1, 1, true), Ret::Done, 4, 5),
        ];
        assert_eq!(check(3, &late), Ok(false));
    }

    #[test]
    fn a_purchase_limit_counts_holds_and_sales_per_customer() {
        let reserve = |customer| Call::ReserveFor { qty: 1, customer };
        // Customer 0 holds one, buys it, and is refused a second under a limit of 1;
        // customer 1 is not affected; a release gives customer 1's unit back to her.
        let fits = [
            op(reserve(0), Ret::Held { id: 1 }, 0, 1),
            op(Call::Commit { id: 1 }, Ret::Done, 2, 3),
            op(reserve(0), Ret::OverLimit, 4, 5),
            op(reserve(1), Ret::Held { id: 2 }, 6, 7),
            op(Call::Release { id: 2 }, Ret::Done, 8, 9),
            op(reserve(1), Ret::Held { id: 3 }, 10, 11),
            op(Call::Amend { id: 3, qty: 2 }, Ret::OverLimit, 12, 13),
        ];
        assert_eq!(check_limited(5, 1, &fits), Ok(true));
        // Two concurrent holds for one customer both granted: no order explains it.
        let twice = [
            op(reserve(0), Ret::Held { id: 1 }, 0, 5),
            op(reserve(0), Ret::Held { id: 2 }, 1, 6),
        ];
        assert_eq!(check_limited(5, 1, &twice), Ok(false));
        // A refusal for the limit while the customer had room is not explained either.
        let wrong = [op(reserve(0), Ret::OverLimit, 0, 1)];
        assert_eq!(check_limited(5, 1, &wrong), Ok(false));
    }

    #[test]
    fn malformed_histories_are_errors_not_verdicts() {
        let backwards = [op(
            Call::Read,
            Ret::Level {
                on_hand: 0,
                reserved: 0,
            },
            5,
            4,
        )];
        assert!(check(0, &backwards).is_err());
        let long: Vec<Op> = (0..129)
            .map(|i| {
                op(
                    Call::Read,
                    Ret::Level {
                        on_hand: 0,
                        reserved: 0,
                    },
                    i,
                    i,
                )
            })
            .collect();
        assert!(check(0, &long).is_err());
    }
}

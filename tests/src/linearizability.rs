//! A linearizability checker for histories of one SKU's operations.
//!
//! A history is every operation of a concurrent run with the instant it was invoked and
//! the instant it returned, and what it returned. It is linearizable when there is one
//! order of the operations that (a) respects real time (an operation that returned before
//! another was invoked comes first) and (b) gives every operation the result it really
//! got when replayed against the sequential model of a SKU. Operations on different SKUs
//! never interact, so a run is checked SKU by SKU (linearizability is compositional).
//!
//! The search is Wing & Gong's, with Lowe's memoisation: at each step, try every
//! operation that no remaining operation precedes in real time; a (set of linearized
//! operations, model state) pair already explored is not explored again.

use std::collections::{BTreeMap, HashSet};

/// What an operation asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Hold `qty` units.
    Reserve { qty: u64 },
    /// Sell a hold, by the reservation id an earlier `Reserve` returned.
    Commit { id: u128 },
    /// Give a hold back.
    Release { id: u128 },
    /// Read on hand and reserved.
    Read,
}

/// What it got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ret {
    Held {
        id: u128,
    },
    /// Too little available.
    Refused,
    Done,
    /// The reservation was not live (already resolved, or unknown).
    NotLive,
    Level {
        on_hand: u64,
        reserved: u64,
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

/// The sequential model of one SKU: on hand, and the live holds by reservation id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Model {
    on_hand: u64,
    holds: BTreeMap<u128, u64>,
}

impl Model {
    fn reserved(&self) -> u64 {
        self.holds.values().sum()
    }

    /// Applies `call` if it can have returned `ret`; the new state, or `None`.
    fn step(&self, call: &Call, ret: &Ret) -> Option<Model> {
        let available = self.on_hand.checked_sub(self.reserved())?;
        match (call, ret) {
            (Call::Reserve { qty }, Ret::Held { id }) => {
                if *qty > available || self.holds.contains_key(id) {
                    return None;
                }
                let mut next = self.clone();
                next.holds.insert(*id, *qty);
                Some(next)
            }
            (Call::Reserve { qty }, Ret::Refused) => (*qty > available).then(|| self.clone()),
            (Call::Commit { id }, Ret::Done) => {
                let mut next = self.clone();
                let qty = next.holds.remove(id)?;
                next.on_hand = next.on_hand.checked_sub(qty)?;
                Some(next)
            }
            (Call::Release { id }, Ret::Done) => {
                let mut next = self.clone();
                next.holds.remove(id)?;
                Some(next)
            }
            (Call::Commit { id } | Call::Release { id }, Ret::NotLive) => {
                (!self.holds.contains_key(id)).then(|| self.clone())
            }
            (Call::Read, Ret::Level { on_hand, reserved }) => {
                (*on_hand == self.on_hand && *reserved == self.reserved()).then(|| self.clone())
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
        on_hand,
        holds: BTreeMap::new(),
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

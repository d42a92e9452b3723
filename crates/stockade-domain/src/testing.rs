//! Given / when / then for business rules, plus terse builders for commands and events.
//!
//! ```
//! use stockade_domain::testing::*;
//! given([registered_physical(5, 0)])
//!     .at(secs(10))
//!     .when(reserve(1, 2, 60))
//!     .then([reserved(1, 2, secs(10), secs(70))]);
//! ```
#![allow(clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::command::{Adjust, Command, Commit, Expire, Release, Reserve, StockChange};
use crate::decide::decide;
use crate::event::{
    Event, ReservationCommitted, ReservationExpired, ReservationReleased, SkuRegistered,
    StockAdjusted, StockReserved,
};
use crate::ids::{Channel, ReservationId, Sku};
use crate::pool::PoolConfig;
use crate::quantity::Quantity;
use crate::rejection::Rejection;
use crate::state::SkuState;
use crate::time::Timestamp;

/// A state built from past events, and the instant the next command is decided at.
#[derive(Debug)]
pub struct Scenario {
    state: SkuState,
    now: Timestamp,
}

/// The outcome of one command in a scenario.
#[derive(Debug)]
pub struct Outcome {
    state: SkuState,
    result: Result<Vec<Event>, Rejection>,
}

/// Folds `events` into a state; fails the test if they contradict each other.
#[track_caller]
pub fn given(events: impl IntoIterator<Item = Event>) -> Scenario {
    let mut state = SkuState::default();
    for event in events {
        if let Err(e) = state.apply(&event) {
            panic!("given events do not fold: {e} at {event:?}");
        }
    }
    Scenario {
        state,
        now: Timestamp::EPOCH,
    }
}

impl Scenario {
    pub fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    pub fn state(&self) -> &SkuState {
        &self.state
    }

    pub fn when(self, command: Command) -> Outcome {
        let result = decide(&self.state, &command, self.now);
        Outcome {
            state: self.state,
            result,
        }
    }
}

impl Outcome {
    /// Asserts the command produced exactly `expected`, and that they apply; returns the
    /// state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Event>) -> SkuState {
        let expected: Vec<Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let mut state = self.state;
                for event in &events {
                    if let Err(e) = state.apply(event) {
                        panic!("decided event does not apply: {e} at {event:?}");
                    }
                }
                state
            }
            Err(rejection) => panic!("expected {expected:?}, got rejection {rejection:?}"),
        }
    }

    #[track_caller]
    pub fn then_rejected(self, expected: Rejection) {
        match self.result {
            Err(rejection) => assert_eq!(rejection, expected, "unexpected rejection"),
            Ok(events) => panic!("expected rejection {expected:?}, got events {events:?}"),
        }
    }
}

// ---- builders -------------------------------------------------------------------------

pub const SKU: &str = "SKU-1";

pub fn sku() -> Sku {
    Sku::new(SKU).expect("valid SKU literal")
}

pub fn web() -> Channel {
    Channel::new("web").expect("valid channel literal")
}

pub fn rid(n: u128) -> ReservationId {
    ReservationId::from_u128(n)
}

pub fn secs(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

pub fn qty(n: u64) -> Quantity {
    Quantity::new(n)
}

pub fn registered(pool: PoolConfig) -> Event {
    Event::SkuRegistered(SkuRegistered {
        sku: sku(),
        pool,
        at: Timestamp::EPOCH,
    })
}

pub fn registered_physical(on_hand: u64, safety_stock: u64) -> Event {
    registered(PoolConfig::Physical {
        locations: Vec::new(),
        on_hand: qty(on_hand),
        safety_stock: qty(safety_stock),
    })
}

pub fn reserve(id: u128, n: u64, ttl_secs: u64) -> Command {
    Command::Reserve(Reserve {
        customer: None,
        placement: Default::default(),
        reservation_id: rid(id),
        order_id: None,
        lines: Vec::new(),
        qty: qty(n),
        ttl: Duration::from_secs(ttl_secs),
        channel: web(),
    })
}

pub fn reserved(id: u128, n: u64, at: Timestamp, expires_at: Timestamp) -> Event {
    Event::StockReserved(StockReserved {
        customer: None,
        waitlist: None,
        parts: Vec::new(),
        reservation_id: rid(id),
        order_id: None,
        lines: Vec::new(),
        qty: qty(n),
        channel: web(),
        at,
        expires_at,
    })
}

pub fn commit(id: u128) -> Command {
    Command::Commit(Commit {
        reservation_id: rid(id),
    })
}

pub fn committed(id: u128, n: u64, at: Timestamp) -> Event {
    Event::ReservationCommitted(ReservationCommitted {
        reservation_id: rid(id),
        qty: qty(n),
        at,
    })
}

pub fn release(id: u128) -> Command {
    Command::Release(Release {
        reservation_id: rid(id),
    })
}

pub fn released(id: u128, n: u64, at: Timestamp) -> Event {
    Event::ReservationReleased(ReservationReleased {
        reservation_id: rid(id),
        qty: qty(n),
        at,
    })
}

pub fn expire(id: u128) -> Command {
    Command::Expire(Expire {
        reservation_id: rid(id),
    })
}

pub fn expired(id: u128, n: u64, expires_at: Timestamp, at: Timestamp) -> Event {
    Event::ReservationExpired(ReservationExpired {
        reservation_id: rid(id),
        qty: qty(n),
        expires_at,
        at,
    })
}

pub fn adjust(change: StockChange, reason: &str) -> Command {
    Command::Adjust(Adjust {
        location: None,
        change,
        reason: reason.into(),
        reference: None,
    })
}

pub fn adjusted(
    change: StockChange,
    previous: u64,
    current: u64,
    reason: &str,
    at_risk: &[u128],
    at: Timestamp,
) -> Event {
    Event::StockAdjusted(StockAdjusted {
        location: None,
        change,
        previous: qty(previous),
        current: qty(current),
        reason: reason.into(),
        reference: None,
        at_risk: at_risk.iter().copied().map(rid).collect(),
        at,
    })
}

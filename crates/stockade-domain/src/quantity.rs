//! Quantities of stock. Never a float, never a wrap: every operation that could leave the
//! `u64` range returns an [`ArithmeticError`] that decisions turn into a rejection.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A count of units, licenses or production slots.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Quantity(u64);

/// Arithmetic that would leave the range of [`Quantity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ArithmeticError {
    #[error("{lhs} + {rhs} overflows the quantity range")]
    Overflow { lhs: u64, rhs: u64 },
    #[error("{lhs} - {rhs} is below zero")]
    Underflow { lhs: u64, rhs: u64 },
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);
    pub const MAX: Quantity = Quantity(u64::MAX);

    pub const fn new(units: u64) -> Self {
        Self(units)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, rhs: Quantity) -> Result<Quantity, ArithmeticError> {
        self.0
            .checked_add(rhs.0)
            .map(Quantity)
            .ok_or(ArithmeticError::Overflow {
                lhs: self.0,
                rhs: rhs.0,
            })
    }

    pub fn checked_sub(self, rhs: Quantity) -> Result<Quantity, ArithmeticError> {
        self.0
            .checked_sub(rhs.0)
            .map(Quantity)
            .ok_or(ArithmeticError::Underflow {
                lhs: self.0,
                rhs: rhs.0,
            })
    }

    /// `self - rhs`, or zero when `rhs` is larger. Only for derived views (availability
    /// shown as 0 while a SKU is short), never for state changes.
    pub const fn saturating_sub(self, rhs: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(rhs.0))
    }

    /// Applies a signed change.
    pub fn checked_add_signed(self, delta: i64) -> Result<Quantity, ArithmeticError> {
        let magnitude = delta.unsigned_abs();
        if delta >= 0 {
            self.checked_add(Quantity(magnitude))
        } else {
            self.checked_sub(Quantity(magnitude))
        }
    }
}

impl From<u64> for Quantity {
    fn from(units: u64) -> Self {
        Self(units)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addition_overflow_is_an_error() {
        let err = Quantity::MAX.checked_add(Quantity::new(1)).unwrap_err();
        assert_eq!(
            err,
            ArithmeticError::Overflow {
                lhs: u64::MAX,
                rhs: 1
            }
        );
    }

    #[test]
    fn subtraction_below_zero_is_an_error() {
        assert!(Quantity::new(2).checked_sub(Quantity::new(3)).is_err());
        assert_eq!(
            Quantity::new(3).checked_sub(Quantity::new(3)).unwrap(),
            Quantity::ZERO
        );
    }

    #[test]
    fn signed_changes_cover_the_extremes() {
        assert_eq!(
            Quantity::new(5).checked_add_signed(-5).unwrap(),
            Quantity::ZERO
        );
        assert!(Quantity::new(5).checked_add_signed(i64::MIN).is_err());
        assert!(Quantity::MAX.checked_add_signed(i64::MAX).is_err());
        assert_eq!(
            Quantity::ZERO.checked_add_signed(i64::MAX).unwrap().get(),
            i64::MAX as u64
        );
    }
}

//! Quantities of stock. Never a float, never a wrap: every operation that could leave the
//! range returns an [`ArithmeticError`] that decisions turn into a rejection.
//!
//! The range is 0..=`i64::MAX`, not the whole `u64`: every part of the system must hold a
//! quantity exactly, and the read models store them in SQLite's signed 64-bit integers
//! (as do most databases and JSON readers a client may use). A larger quantity is refused
//! where it enters, so that no total anywhere can pass what a reader can store.

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
    #[error("{value} is above the largest quantity, {max}", max = Quantity::MAX.0)]
    TooLarge { value: u64 },
    #[error("{lhs} × {rhs} overflows the quantity range")]
    ProductOverflow { lhs: u64, rhs: u64 },
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);
    /// The largest quantity (`i64::MAX`): see the module docs.
    pub const MAX: Quantity = Quantity(i64::MAX as u64);

    pub const fn new(units: u64) -> Self {
        Self(units)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self`, if it is within the range (a value built by `new` from any `u64` may not).
    pub fn in_range(self) -> Result<Quantity, ArithmeticError> {
        if self.0 > Self::MAX.0 {
            return Err(ArithmeticError::TooLarge { value: self.0 });
        }
        Ok(self)
    }

    pub fn checked_add(self, rhs: Quantity) -> Result<Quantity, ArithmeticError> {
        self.0
            .checked_add(rhs.0)
            .filter(|sum| *sum <= Self::MAX.0)
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

    /// `self × rhs` (a kit's component units times the kits ordered).
    pub fn checked_mul(self, rhs: Quantity) -> Result<Quantity, ArithmeticError> {
        self.0
            .checked_mul(rhs.0)
            .filter(|product| *product <= Self::MAX.0)
            .map(Quantity)
            .ok_or(ArithmeticError::ProductOverflow {
                lhs: self.0,
                rhs: rhs.0,
            })
    }

    /// `self - rhs`, or zero when `rhs` is larger. Only for derived views (availability
    /// shown as 0 while a SKU is short), never for state changes.
    /// The sum, or [`Quantity::MAX`] beyond it (for bounds that only ever cap a figure).
    pub const fn saturating_add(self, rhs: Quantity) -> Quantity {
        let sum = self.0.saturating_add(rhs.0);
        if sum > Quantity::MAX.0 {
            Quantity::MAX
        } else {
            Quantity(sum)
        }
    }

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
                lhs: i64::MAX as u64,
                rhs: 1
            }
        );
        assert!(
            Quantity::new(u64::MAX - 1)
                .checked_add(Quantity::new(1))
                .is_err()
        );
    }

    #[test]
    fn the_range_ends_at_what_a_signed_64_bit_column_holds() {
        assert_eq!(Quantity::MAX.in_range(), Ok(Quantity::MAX));
        assert_eq!(
            Quantity::new(i64::MAX as u64 + 1).in_range(),
            Err(ArithmeticError::TooLarge {
                value: i64::MAX as u64 + 1
            })
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

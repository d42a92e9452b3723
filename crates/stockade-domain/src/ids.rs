//! Validated identifiers. Each is checked once, where it enters (constructor or
//! deserialisation), so the rest of the code can rely on its shape.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

/// An identifier that failed validation: which kind, what was given, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind} {value:?}: {rule}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// Characters allowed in SKUs, order ids and channels: safe in stream names, URLs and logs.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Characters allowed in customer ids: the plain ones, and `:`, `@` and `+`, which
/// platforms use in theirs (`shopify:1234`, an e-mail address).
fn is_customer(c: char) -> bool {
    is_plain(c) || matches!(c, ':' | '@' | '+')
}

fn is_printable(c: char) -> bool {
    !c.is_control()
}

fn check(
    kind: &'static str,
    value: &str,
    max_chars: usize,
    allowed: fn(char) -> bool,
    rule: &'static str,
) -> Result<(), InvalidId> {
    let n = value.chars().count();
    if n == 0 || n > max_chars || !value.chars().all(allowed) {
        return Err(InvalidId {
            kind,
            value: value.chars().take(80).collect(),
            rule,
        });
    }
    Ok(())
}

/// Declares a validated string newtype that (de)serialises as a plain string.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $allowed:path, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value`: see the type's documentation for the rule.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                check($kind, &value, $max, $allowed, $rule)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, InvalidId> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A stock-keeping unit: 1–64 characters of `[A-Za-z0-9._-]`.
    Sku, "SKU", 64, is_plain, "1-64 characters of A-Z a-z 0-9 . _ -"
);
string_id!(
    /// A caller's order: 1–128 characters of `[A-Za-z0-9._-]`.
    OrderId, "order id", 128, is_plain, "1-128 characters of A-Z a-z 0-9 . _ -"
);
string_id!(
    /// The sales channel a command came through (`web`, `pos`, `marketplace`, `assistant`, ...):
    /// 1–32 characters of `[A-Za-z0-9._-]`.
    Channel, "channel", 32, is_plain, "1-32 characters of A-Z a-z 0-9 . _ -"
);
string_id!(
    /// Where stock is held (a warehouse, a store, a drop-shipper): 1–64 characters of
    /// `[A-Za-z0-9._-]`.
    LocationId, "location", 64, is_plain, "1-64 characters of A-Z a-z 0-9 . _ -"
);
string_id!(
    /// A transfer of stock between two locations, named by its caller (a shipment or
    /// transfer-order number): 1–64 characters of `[A-Za-z0-9._-]`.
    TransferId, "transfer id", 64, is_plain, "1-64 characters of A-Z a-z 0-9 . _ -"
);
string_id!(
    /// Stock on its way from a supplier, named by its caller (a purchase order or an
    /// advance shipping notice): 1–64 characters of `[A-Za-z0-9._-]`.
    ReceiptRef, "receipt reference", 64, is_plain, "1-64 characters of A-Z a-z 0-9 . _ -"
);
/// The buyer a reservation or a waitlist place is for, as the channel knows them (an
/// account id, never a session): 1–128 characters of `[A-Za-z0-9._:@+-]`. Purchase limits
/// count per customer id, so a channel must send the same id for the same buyer.
///
/// Shared, not copied: a SKU in a sale keeps one per live hold and per account, and its
/// snapshot clones them all, so a clone is a reference count, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(std::sync::Arc<str>);

impl CustomerId {
    const RULE: &'static str = "1-128 characters of A-Z a-z 0-9 . _ - : @ +";

    /// Validates `value`: see the type's documentation for the rule.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        check("customer id", &value, 128, is_customer, Self::RULE)?;
        Ok(Self(value.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        Self::new(value)
    }
}

impl std::str::FromStr for CustomerId {
    type Err = InvalidId;
    fn from_str(value: &str) -> Result<Self, InvalidId> {
        Self::new(value)
    }
}

impl From<CustomerId> for String {
    fn from(id: CustomerId) -> String {
        id.0.to_string()
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_id!(
    /// Who acted: a user, service or token name; 1–128 printable characters.
    Principal, "principal", 128, is_printable, "1-128 printable characters"
);

/// A reservation's identity. Assigned by the engine (random or derived from an idempotency
/// key); 16 bytes so that hundreds of thousands of live reservations stay compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReservationId(Uuid);

impl ReservationId {
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub const fn from_u128(id: u128) -> Self {
        Self(Uuid::from_u128(id))
    }

    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl std::str::FromStr for ReservationId {
    type Err = InvalidId;
    fn from_str(value: &str) -> Result<Self, InvalidId> {
        Uuid::parse_str(value).map(Self).map_err(|_| InvalidId {
            kind: "reservation id",
            value: value.chars().take(80).collect(),
            rule: "a UUID",
        })
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_accepts_the_documented_alphabet() {
        assert_eq!(Sku::new("SKU-7782.a_b").unwrap().as_str(), "SKU-7782.a_b");
        assert!(Sku::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn sku_rejects_empty_long_and_foreign_characters() {
        for bad in ["", "has space", "slash/", "ünï", "semi;colon"] {
            let err = Sku::new(bad).unwrap_err();
            assert_eq!(err.kind, "SKU", "{bad:?}");
        }
        assert!(Sku::new("x".repeat(65)).is_err());
    }

    #[test]
    fn invalid_sku_in_a_payload_is_an_error_not_a_panic() {
        let err = rmp_serde::from_slice::<Sku>(&rmp_serde::to_vec(&"bad sku").unwrap());
        assert!(err.is_err());
    }

    #[test]
    fn principal_rejects_control_characters() {
        assert!(Principal::new("ops@example").is_ok());
        assert!(Principal::new("bad\nname").is_err());
    }

    #[test]
    fn reservation_id_parses_uuid_text() {
        let id = ReservationId::from_u128(7);
        assert_eq!(id.to_string().parse::<ReservationId>().unwrap(), id);
        assert!("nope".parse::<ReservationId>().is_err());
    }
}

//! [`Code`]: every machine-readable error code a channel sends, in one list.
//!
//! The codes reach callers from three places: the domain's rejections
//! ([`Rejection::code`]), the engine's errors ([`Error::code`], part of the embedding API,
//! which does not depend on this crate), and the channels themselves (a malformed body, a
//! missing token). The first two keep their own `&'static str` so that an embedder needs
//! nothing from here; [`Code::of_rejection`] and [`Code::of_error`] map them exhaustively,
//! so a new rejection or engine error does not compile until it has a code here, and a
//! test checks that the two spellings agree. Channels then match on variants, never on
//! strings, and `docs/api.md` is checked to list every code.
//!
//! A code names what went wrong, not the status: `overloaded` is a 429 when one SKU's
//! mailbox is full and a 503 when the whole server is, so the [`crate::ErrorKind`] is
//! chosen where the error is made.

use serde::{Serialize, Serializer};
use stockade_domain::Rejection;
use stockade_engine::Error;

/// Declares [`Code`] with its wire spelling, keeping the variant and the text side by side.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// A stable, machine-readable error code: the `error` field of every error body.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as it appears on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Code::$variant => $text, )*
                }
            }
        }
    };
}

codes! {
    // The domain said no (`Rejection::code`).
    UnknownSku = "unknown_sku",
    AlreadyRegistered = "already_registered",
    InvalidPool = "invalid_pool",
    InvalidQuantity = "invalid_quantity",
    InvalidTtl = "invalid_ttl",
    InsufficientStock = "insufficient_stock",
    Short = "short",
    AtRisk = "at_risk",
    DuplicateReservation = "duplicate_reservation",
    UnknownReservation = "unknown_reservation",
    AlreadyResolved = "already_resolved",
    Lapsed = "lapsed",
    NotYetExpired = "not_yet_expired",
    BelowZero = "below_zero",
    ZeroDelta = "zero_delta",
    OutOfRange = "out_of_range",
    UnsupportedForPool = "unsupported_for_pool",
    InvalidReason = "invalid_reason",
    InvalidReference = "invalid_reference",
    UnknownLocation = "unknown_location",
    LocationRequired = "location_required",
    UnknownTransfer = "unknown_transfer",
    DuplicateTransfer = "duplicate_transfer",
    InvalidTransfer = "invalid_transfer",
    ExceedsHold = "exceeds_hold",
    NotAnExtension = "not_an_extension",
    BeyondMaxHold = "beyond_max_hold",
    Unchanged = "unchanged",
    Backordered = "backordered",
    UnknownReceipt = "unknown_receipt",
    DuplicateReceipt = "duplicate_receipt",
    InvalidReceipt = "invalid_receipt",
    PurchaseLimit = "purchase_limit",
    CustomerRequired = "customer_required",
    Waitlisted = "waitlisted",
    AlreadyWaiting = "already_waiting",
    NotWaiting = "not_waiting",
    WaitlistFull = "waitlist_full",
    NothingToServe = "nothing_to_serve",
    InvalidRules = "invalid_rules",

    // The engine (`stockade_engine::Error::code`).
    /// Someone else wrote first: an expected version no longer holds.
    VersionConflict = "version_conflict",
    IdempotencyKeyReused = "idempotency_key_reused",
    /// More waiting than is queued: one SKU's mailbox, or the whole server.
    Overloaded = "overloaded",
    /// The store, the read models or a task could not answer; a write's outcome may be
    /// unknown.
    Unavailable = "unavailable",
    RolledBack = "rolled_back",
    NotFound = "not_found",
    NotOwner = "not_owner",
    InvalidRequest = "invalid_request",

    // The channels: reading the request.
    MalformedJson = "malformed_json",
    BadHeader = "bad_header",
    DuplicateHeader = "duplicate_header",
    BadBody = "bad_body",
    BadRequest = "bad_request",
    BodyTimeout = "body_timeout",
    PayloadTooLarge = "payload_too_large",
    InvalidBody = "invalid_body",
    InvalidField = "invalid_field",
    InvalidSku = "invalid_sku",
    InvalidQuery = "invalid_query",
    /// An MCP tool's arguments are of the wrong shape.
    InvalidArguments = "invalid_arguments",
    // Bulk import and physical counts, line by line.
    MalformedLine = "malformed_line",
    LineTooLong = "line_too_long",
    MalformedCounts = "malformed_counts",
    InvalidCounts = "invalid_counts",

    // The channels: routing, access and limits.
    NoRoute = "no_route",
    MethodNotAllowed = "method_not_allowed",
    NotAWebsocket = "not_a_websocket",
    Unauthorized = "unauthorized",
    Forbidden = "forbidden",
    HostNotAllowed = "host_not_allowed",
    OriginNotAllowed = "origin_not_allowed",
    RateLimited = "rate_limited",
    TooManyStreams = "too_many_streams",
    TooManySessions = "too_many_sessions",
    SessionExpired = "session_expired",
    SessionOwner = "session_owner",
}

impl Code {
    /// The code of a domain rejection.
    pub fn of_rejection(rejection: &Rejection) -> Code {
        match rejection {
            Rejection::UnknownSku => Code::UnknownSku,
            Rejection::AlreadyRegistered { .. } => Code::AlreadyRegistered,
            Rejection::InvalidPool { .. } => Code::InvalidPool,
            Rejection::InvalidQuantity => Code::InvalidQuantity,
            Rejection::InvalidTtl => Code::InvalidTtl,
            Rejection::InsufficientStock { .. } => Code::InsufficientStock,
            Rejection::Short { .. } => Code::Short,
            Rejection::AtRisk { .. } => Code::AtRisk,
            Rejection::DuplicateReservation { .. } => Code::DuplicateReservation,
            Rejection::UnknownReservation { .. } => Code::UnknownReservation,
            Rejection::AlreadyResolved { .. } => Code::AlreadyResolved,
            Rejection::Lapsed { .. } => Code::Lapsed,
            Rejection::NotYetExpired { .. } => Code::NotYetExpired,
            Rejection::BelowZero { .. } => Code::BelowZero,
            Rejection::ZeroDelta => Code::ZeroDelta,
            Rejection::OutOfRange { .. } => Code::OutOfRange,
            Rejection::UnsupportedForPool { .. } => Code::UnsupportedForPool,
            Rejection::InvalidReason { .. } => Code::InvalidReason,
            Rejection::InvalidReference { .. } => Code::InvalidReference,
            Rejection::UnknownLocation { .. } => Code::UnknownLocation,
            Rejection::LocationRequired => Code::LocationRequired,
            Rejection::UnknownTransfer { .. } => Code::UnknownTransfer,
            Rejection::DuplicateTransfer { .. } => Code::DuplicateTransfer,
            Rejection::InvalidTransfer { .. } => Code::InvalidTransfer,
            Rejection::ExceedsHold { .. } => Code::ExceedsHold,
            Rejection::NotAnExtension { .. } => Code::NotAnExtension,
            Rejection::BeyondMaxHold { .. } => Code::BeyondMaxHold,
            Rejection::Unchanged { .. } => Code::Unchanged,
            Rejection::Backordered { .. } => Code::Backordered,
            Rejection::UnknownReceipt { .. } => Code::UnknownReceipt,
            Rejection::DuplicateReceipt { .. } => Code::DuplicateReceipt,
            Rejection::InvalidReceipt { .. } => Code::InvalidReceipt,
            Rejection::PurchaseLimit { .. } => Code::PurchaseLimit,
            Rejection::CustomerRequired => Code::CustomerRequired,
            Rejection::Waitlisted { .. } => Code::Waitlisted,
            Rejection::AlreadyWaiting { .. } => Code::AlreadyWaiting,
            Rejection::NotWaiting { .. } => Code::NotWaiting,
            Rejection::WaitlistFull { .. } => Code::WaitlistFull,
            Rejection::NothingToServe => Code::NothingToServe,
            Rejection::InvalidRules { .. } => Code::InvalidRules,
        }
    }

    /// The code of an engine error.
    pub fn of_error(error: &Error) -> Code {
        match error {
            Error::Rejected { rejection, .. } => Code::of_rejection(rejection),
            Error::Conflict { .. } => Code::VersionConflict,
            Error::KeyReused { .. } => Code::IdempotencyKeyReused,
            Error::Overloaded { .. } => Code::Overloaded,
            Error::Unavailable(_) => Code::Unavailable,
            Error::RolledBack { .. } => Code::RolledBack,
            Error::NotFound(_) => Code::NotFound,
            Error::NotOwner(_) => Code::NotOwner,
            Error::Invalid(_) => Code::InvalidRequest,
        }
    }

    /// The code spelt `text`, if there is one.
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use stockade_domain::{
        ArithmeticError, PoolKind, Quantity, ReservationId, Resolution, Sku, Timestamp,
    };

    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_and_parse_back() {
        let mut seen = BTreeSet::new();
        for &code in Code::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} is declared twice");
            assert!(
                !text.is_empty() && text.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{text} is not snake_case"
            );
            assert_eq!(Code::parse(text), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), text);
        }
        assert_eq!(Code::parse("no_such_code"), None);
    }

    #[test]
    fn the_domain_and_the_engine_spell_each_code_as_this_list_does() {
        let id = ReservationId::from_u128(7);
        let sku = Sku::new("A").unwrap();
        let rejections = [
            Rejection::UnknownSku,
            Rejection::AlreadyRegistered { sku: sku.clone() },
            Rejection::InvalidPool { reason: "r".into() },
            Rejection::InvalidQuantity,
            Rejection::InvalidTtl,
            Rejection::InsufficientStock {
                requested: Quantity::new(2),
                available: Quantity::new(1),
            },
            Rejection::Short {
                shortfall: Quantity::new(1),
            },
            Rejection::AtRisk { reservation_id: id },
            Rejection::DuplicateReservation { reservation_id: id },
            Rejection::UnknownReservation { reservation_id: id },
            Rejection::AlreadyResolved {
                reservation_id: id,
                resolution: Resolution::Committed,
            },
            Rejection::Lapsed {
                reservation_id: id,
                expires_at: Timestamp::from_millis(1),
            },
            Rejection::NotYetExpired {
                reservation_id: id,
                expires_at: Timestamp::from_millis(1),
            },
            Rejection::BelowZero {
                current: Quantity::new(1),
                delta: -2,
            },
            Rejection::ZeroDelta,
            Rejection::OutOfRange {
                source: ArithmeticError::Overflow { lhs: 1, rhs: 2 },
            },
            Rejection::UnsupportedForPool {
                pool: PoolKind::Digital,
                what: "adjust".into(),
            },
            Rejection::InvalidReason { max: 512 },
            Rejection::InvalidReference { max: 256 },
        ];
        for rejection in &rejections {
            assert_eq!(
                Code::of_rejection(rejection).as_str(),
                rejection.code(),
                "{rejection:?}"
            );
        }
        let errors = [
            Error::Rejected {
                sku: sku.clone(),
                rejection: Rejection::ZeroDelta,
            },
            Error::Conflict {
                sku: sku.clone(),
                expected: 1,
                actual: 2,
            },
            Error::KeyReused { key: "k".into() },
            Error::Overloaded { sku, waiting: 9 },
            Error::Unavailable("disk".into()),
            Error::RolledBack {
                reason: "busy".into(),
            },
            Error::NotFound("reservation x".into()),
            Error::NotOwner("reservation x".into()),
            Error::Invalid("two lines".into()),
        ];
        for error in &errors {
            assert_eq!(Code::of_error(error).as_str(), error.code(), "{error:?}");
        }
    }

    /// The error table of `docs/api.md` (or, for MCP's own codes, `docs/mcp.md`) names
    /// every code a caller can meet.
    #[test]
    fn every_code_is_documented() {
        let api = include_str!("../../../docs/api.md");
        let mcp = include_str!("../../../docs/mcp.md");
        let missing: Vec<&str> = Code::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|text| {
                let quoted = format!("`{text}`");
                !api.contains(&quoted) && !mcp.contains(&quoted)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "codes missing from the docs: {missing:?}"
        );
    }
}

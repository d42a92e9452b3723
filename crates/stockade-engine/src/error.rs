//! What a caller of the engine can be told, beyond success.
//!
//! Every variant says what the caller should do next: fix the request (`Rejected`,
//! `KeyReused`), re-read and decide again (`Conflict`), back off and retry with the same
//! idempotency key (`Overloaded`, `Unavailable`).

use stockade_domain::{Rejection, Sku};
use stockade_store::StoreError;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The domain refused the command (sold out, unknown reservation, bad quantity...).
    /// Nothing was written.
    #[error("{sku}: {rejection}")]
    Rejected { sku: Sku, rejection: Rejection },

    /// The caller's expected version no longer holds: someone changed the SKU since it was
    /// read. Nothing was written; read again and decide again.
    #[error("{sku} is at version {actual}, not the expected {expected}")]
    Conflict {
        sku: Sku,
        expected: u64,
        actual: u64,
    },

    /// The idempotency key was already used by this principal for a different request.
    #[error("idempotency key {key:?} was already used for a different request")]
    KeyReused { key: String },

    /// The SKU has more commands waiting than its mailbox bound; nothing was queued.
    #[error("{sku} is overloaded ({waiting} commands waiting); retry shortly")]
    Overloaded { sku: Sku, waiting: usize },

    /// The store or engine could not be reached. For a write the outcome may be unknown:
    /// retry with the same idempotency key to learn it without doing it twice.
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// The caller may not do this to this reservation (it was made by another channel, and
    /// the installation lets only its owner resolve it). Nothing was written.
    #[error("{0}")]
    NotOwner(String),

    /// No such reservation or order (never made, or forgotten after the retention window).
    #[error("{0} not found")]
    NotFound(String),

    /// A keyed order met a transient refusal (overload, an unavailable store) after some
    /// of its lines were held, and those were released. The key now names that released
    /// reservation, so retrying under it cannot succeed: retry with a new key.
    #[error("the order was rolled back ({reason}); retry with a new idempotency key")]
    RolledBack { reason: String },

    /// A request the engine cannot even route (an empty order, a duplicate line).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Error {
    /// A stable machine-readable code, matching the domain's rejection codes.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Rejected { rejection, .. } => rejection.code(),
            Error::Conflict { .. } => "version_conflict",
            Error::KeyReused { .. } => "idempotency_key_reused",
            Error::Overloaded { .. } => "overloaded",
            Error::Unavailable(_) => "unavailable",
            Error::RolledBack { .. } => "rolled_back",
            Error::NotFound(_) => "not_found",
            Error::NotOwner(_) => "not_owner",
            Error::Invalid(_) => "invalid_request",
        }
    }

    /// The domain rejection, if that is what this is.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Rejected { rejection, .. } => Some(rejection),
            _ => None,
        }
    }

    pub(crate) fn store(context: &str, e: &StoreError) -> Self {
        Error::Unavailable(format!("{context}: {e}"))
    }
}

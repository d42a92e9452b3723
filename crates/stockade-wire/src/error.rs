//! [`ApiError`]: what every channel says when it cannot do what was asked.
//!
//! Three kinds are kept apart, as the engine keeps them: the business said no (a
//! [`Rejection`]: `Conflict` or `Unprocessable`), someone else wrote first (a version
//! conflict: `Conflict`), the infrastructure failed (`Unavailable`, `TooManyRequests`). The
//! `code` is stable and machine-readable; the `message` is for a person.

use serde::Serialize;
use serde_json::Value;
use stockade_domain::Rejection;
use stockade_engine::Error;

use crate::code::Code;

/// What kind of failure this is; each channel maps a kind to exactly one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request cannot be read at all (malformed JSON, a bad header).
    BadRequest,
    /// No credentials, or credentials that match nothing.
    Unauthorized,
    /// Valid credentials of a role that may not do this.
    Forbidden,
    NotFound,
    /// The request's body did not arrive in time.
    RequestTimeout,
    /// The state does not allow it now: sold out, already resolved, version moved.
    Conflict,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// The body is JSON of the wrong shape, or a value out of range.
    Unprocessable,
    /// Back off: this SKU (or this server) has more waiting than it queues.
    TooManyRequests,
    /// The store or engine cannot answer now; for a write, the outcome may be unknown.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status of this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unprocessable => 422,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Unavailable => 503,
        }
    }

    /// Whether the same request may succeed later without change (so a client may retry,
    /// with the same idempotency key).
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::TooManyRequests | ErrorKind::Unavailable)
    }
}

/// One error, as every channel reports it: `{"error": code, "message": text, ...details}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: Code,
    pub message: String,
    /// Extra fields merged into the body (`sku`, `available`, `current_version`, ...).
    pub details: serde_json::Map<String, Value>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: Code, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds one detail field; a value that cannot be represented is left out.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.details.insert(key.to_owned(), value);
        }
        self
    }

    /// A field of the request is missing, of the wrong type, or out of range.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unprocessable, Code::InvalidField, message).with("field", field)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), Value::from(self.code.as_str()));
        body.insert("message".into(), Value::from(self.message.clone()));
        for (k, v) in &self.details {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The kind of a domain rejection: is it the state (409) or the request (422)?
pub fn rejection_kind(rejection: &Rejection) -> ErrorKind {
    match rejection {
        Rejection::UnknownSku
        | Rejection::UnknownReservation { .. }
        | Rejection::UnknownTransfer { .. }
        | Rejection::UnknownReceipt { .. }
        | Rejection::NotWaiting { .. } => ErrorKind::NotFound,
        Rejection::AlreadyRegistered { .. }
        | Rejection::InsufficientStock { .. }
        | Rejection::Short { .. }
        | Rejection::AtRisk { .. }
        | Rejection::DuplicateReservation { .. }
        | Rejection::AlreadyResolved { .. }
        | Rejection::Lapsed { .. }
        | Rejection::NotYetExpired { .. }
        | Rejection::BelowZero { .. }
        | Rejection::DuplicateTransfer { .. }
        | Rejection::Unchanged { .. }
        | Rejection::Backordered { .. }
        | Rejection::DuplicateReceipt { .. }
        | Rejection::PurchaseLimit { .. }
        | Rejection::Waitlisted { .. }
        | Rejection::AlreadyWaiting { .. }
        | Rejection::WaitlistFull { .. }
        | Rejection::NothingToServe => ErrorKind::Conflict,
        Rejection::InvalidPool { .. }
        | Rejection::InvalidQuantity
        | Rejection::InvalidTtl
        | Rejection::ZeroDelta
        | Rejection::OutOfRange { .. }
        | Rejection::UnsupportedForPool { .. }
        | Rejection::InvalidReason { .. }
        | Rejection::InvalidReference { .. }
        | Rejection::UnknownLocation { .. }
        | Rejection::LocationRequired
        | Rejection::InvalidTransfer { .. }
        | Rejection::ExceedsHold { .. }
        | Rejection::NotAnExtension { .. }
        | Rejection::BeyondMaxHold { .. }
        | Rejection::InvalidReceipt { .. }
        | Rejection::CustomerRequired
        | Rejection::InvalidRules { .. } => ErrorKind::Unprocessable,
    }
}

/// The read models could not answer (locked, unreadable): retry later.
impl From<stockade_projections::ProjectionError> for ApiError {
    fn from(e: stockade_projections::ProjectionError) -> Self {
        ApiError::new(ErrorKind::Unavailable, Code::Unavailable, e.to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        let code = Code::of_error(&e);
        match &e {
            Error::Rejected { sku, rejection } => {
                let mut err =
                    ApiError::new(rejection_kind(rejection), code, message).with("sku", sku);
                if let Rejection::OutOfRange { .. } = rejection {
                    // Our own words: the range, not the arithmetic's internals.
                    return err.with("max", stockade_domain::Quantity::MAX.get());
                }
                // The rejection's own fields (requested, available, reservation_id, ...).
                if let Ok(Value::Object(fields)) = serde_json::to_value(rejection) {
                    for (k, v) in fields {
                        if k != "code" {
                            err.details.insert(k, v);
                        }
                    }
                }
                err
            }
            Error::Conflict {
                sku,
                expected,
                actual,
            } => ApiError::new(ErrorKind::Conflict, code, message)
                .with("sku", sku)
                .with("expected_version", expected)
                .with("current_version", actual),
            Error::KeyReused { .. } => ApiError::new(ErrorKind::Unprocessable, code, message),
            Error::Overloaded { sku, .. } => {
                ApiError::new(ErrorKind::TooManyRequests, code, message).with("sku", sku)
            }
            Error::Unavailable(_) => ApiError::new(ErrorKind::Unavailable, code, message),
            // Not retryable as it stands: a 409 without Retry-After.
            Error::RolledBack { .. } => ApiError::new(ErrorKind::Conflict, code, message),
            Error::NotFound(_) => ApiError::new(ErrorKind::NotFound, code, message),
            Error::NotOwner(_) => ApiError::new(ErrorKind::Forbidden, code, message),
            Error::Invalid(_) => ApiError::new(ErrorKind::Unprocessable, code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use stockade_domain::{Quantity, Sku};

    use super::*;

    #[test]
    fn a_refusal_for_want_of_stock_is_a_conflict_naming_what_is_left() {
        let e: ApiError = Error::Rejected {
            sku: Sku::new("A").unwrap(),
            rejection: Rejection::InsufficientStock {
                requested: Quantity::new(3),
                available: Quantity::new(1),
            },
        }
        .into();
        assert_eq!(e.kind.http_status(), 409);
        let body = e.body();
        assert_eq!(body["error"], "insufficient_stock");
        assert_eq!(body["sku"], "A");
        assert_eq!(body["available"], 1);
        assert_eq!(body["requested"], 3);
    }

    #[test]
    fn every_engine_error_has_one_status() {
        let sku = Sku::new("A").unwrap();
        let cases = [
            (
                Error::Rejected {
                    sku: sku.clone(),
                    rejection: Rejection::UnknownSku,
                },
                404,
            ),
            (
                Error::Rejected {
                    sku: sku.clone(),
                    rejection: Rejection::InvalidQuantity,
                },
                422,
            ),
            (
                Error::Conflict {
                    sku: sku.clone(),
                    expected: 1,
                    actual: 2,
                },
                409,
            ),
            (Error::KeyReused { key: "k".into() }, 422),
            (Error::Overloaded { sku, waiting: 9 }, 429),
            (Error::Unavailable("disk".into()), 503),
            (
                Error::RolledBack {
                    reason: "busy".into(),
                },
                409,
            ),
            (Error::NotFound("reservation x".into()), 404),
            (Error::Invalid("two lines".into()), 422),
        ];
        for (error, status) in cases {
            let api: ApiError = error.clone().into();
            assert_eq!(api.kind.http_status(), status, "{error:?}");
            assert_eq!(api.code.as_str(), error.code());
        }
    }

    #[test]
    fn details_never_replace_the_code_or_the_message() {
        let e = ApiError::new(ErrorKind::Conflict, Code::Short, "m").with("error", "sneaky");
        assert_eq!(e.body()["error"], "short");
    }
}

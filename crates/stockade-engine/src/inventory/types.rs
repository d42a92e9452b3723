//! The values the inventory API takes and answers with: who asks ([`Origin`]), the lines
//! and terms of a reservation, and what became durable.

use std::collections::BTreeMap;
use std::time::Duration;

use stockade_domain::{
    Channel, CustomerId, LocationId, OrderId, Part, Placement, Principal, Quantity, ReservationId,
    Resolution, Sku, StockChange, Timestamp, TransferId,
};

use super::MAX_CAUSATION_CHARS;
use crate::actor::{LineStatus, RequestMeta};
use crate::error::Error;
use crate::idempotency::KeyScope;

/// Who is asking, through what, and under which idempotency key.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub principal: Option<Principal>,
    /// Recorded on reservations and in event metadata; `direct` when not given.
    pub channel: Option<Channel>,
    /// Same key (for the same principal) and same request → the first outcome, once.
    pub idempotency_key: Option<String>,
    /// The message that caused this request (a request id), kept in event metadata.
    pub causation_id: Option<String>,
}

impl Origin {
    pub fn channel(channel: Channel) -> Self {
        Self {
            channel: Some(channel),
            ..Self::default()
        }
    }

    pub fn principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub(super) fn scope(&self) -> Result<Option<KeyScope>, Error> {
        self.idempotency_key
            .as_deref()
            .map(|key| KeyScope::new(self.principal.as_ref(), key))
            .transpose()
    }

    pub(super) fn request(&self, correlation: Option<&OrderId>) -> Result<RequestMeta, Error> {
        if let Some(causation) = &self.causation_id
            && (causation.chars().count() > MAX_CAUSATION_CHARS
                || causation.chars().any(char::is_control))
        {
            return Err(Error::Invalid(format!(
                "a causation id must be at most {MAX_CAUSATION_CHARS} printable characters"
            )));
        }
        Ok(RequestMeta {
            principal: self.principal.clone(),
            channel: self.channel.clone(),
            scope: self.scope()?,
            correlation_id: correlation.map(|o| o.as_str().to_owned()),
            causation_id: self.causation_id.clone(),
            expected_version: None,
            ..RequestMeta::default()
        })
    }

    pub(super) fn channel_or(&self, default: &Channel) -> Channel {
        self.channel.clone().unwrap_or_else(|| default.clone())
    }
}

/// One line of a reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: Sku,
    pub qty: Quantity,
    /// Where the units may come from, at a SKU stocked at several locations (a kit's
    /// components are placed by default; a component also ordered on its own line takes
    /// that line's placement for all its units).
    pub placement: Placement,
}

impl Line {
    /// `qty` of `sku`, from wherever the SKU's default placement puts it.
    pub fn new(sku: Sku, qty: Quantity) -> Self {
        Line {
            sku,
            qty,
            placement: Placement::default(),
        }
    }
}

/// Terms of a reservation.
#[derive(Debug, Clone, Default)]
pub struct ReserveOptions {
    /// How long the hold lasts; the engine default (15 minutes) when `None`.
    pub ttl: Option<Duration>,
    pub order_id: Option<OrderId>,
    pub origin: Origin,
    /// Hold a line only if its SKU is still at this version, else refuse the order with
    /// `Conflict` (for a caller that decided on what it read, such as an assistant).
    /// SKUs not named are not checked.
    pub expected_versions: BTreeMap<Sku, u64>,
    /// The buyer, as the channel knows them: every line (a kit's components too) counts
    /// against its SKU's purchase limit for them, and a SKU with a limit requires it.
    pub customer: Option<CustomerId>,
}

/// What `register_if_absent` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// The SKU's stream version.
    pub version: u64,
    /// This call registered it (else it was registered before, and is unchanged).
    pub created: bool,
}

/// A reservation that is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub order_id: Option<OrderId>,
    pub lines: Vec<ReservedLine>,
    pub expires_at: Timestamp,
    /// This answers a retry: the reservation was made by the first request.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedLine {
    pub sku: Sku,
    pub qty: Quantity,
    /// Where the units are held, at a SKU with several locations (empty at one: all
    /// there). Empty for lines answered by `resolve`, which hands back quantities only.
    pub parts: Vec<Part>,
    /// The SKU's stream version after this line.
    pub version: u64,
    /// Units of the line waiting for stock (a SKU that takes backorders), filled first in,
    /// first out; and when the receipt bringing the last of them is expected, if one is.
    pub backordered: Quantity,
    pub eta: Option<Timestamp>,
}

/// A reservation committed or released: `lines` are resolved (by this call, or by an
/// earlier one: then with quantity 0), `failed` could not be, and say why. A call with
/// failed lines changed the others: repeat it to finish (done lines answer as done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub id: ReservationId,
    pub resolution: Resolution,
    pub lines: Vec<ReservedLine>,
    pub failed: Vec<(Sku, Error)>,
}

impl Resolved {
    /// Every line is resolved.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What a reservation's lines hold now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationStatus {
    pub id: ReservationId,
    pub lines: Vec<(Sku, LineStatus)>,
}

/// A change to a SKU's limit (on hand, license limit or capacity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    pub change: StockChange,
    pub reason: String,
    pub reference: Option<String>,
    /// Refuse with `Conflict` unless the SKU is still at this version (read-modify-write).
    pub expected_version: Option<u64>,
    /// The location counted or corrected: required at a SKU with several locations.
    pub location: Option<LocationId>,
}

/// An adjustment that is durable. At a SKU with several locations, `previous` and
/// `current` are those of `location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjusted {
    pub location: Option<LocationId>,
    pub previous: Quantity,
    pub current: Quantity,
    /// Reservations that can no longer all be honoured (the SKU is short).
    pub at_risk: Vec<ReservationId>,
    pub version: u64,
    pub replayed: bool,
}

/// Stock sent from one location of a SKU to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The caller's name for it (a shipment number); it is received by this name.
    pub transfer_id: TransferId,
    pub from: LocationId,
    pub to: LocationId,
    pub qty: Quantity,
    pub reference: Option<String>,
    /// Refuse with `Conflict` unless the SKU is still at this version.
    pub expected_version: Option<u64>,
}

/// A transfer shipped or received, durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    pub transfer_id: TransferId,
    pub from: Option<LocationId>,
    pub to: LocationId,
    pub qty: Quantity,
    /// `true` once received.
    pub received: bool,
    pub version: u64,
    pub replayed: bool,
}

//! Backorders and incoming stock: a SKU's backorder limit, and receipts expected from
//! suppliers (a purchase order's units, when they are due, and their arrival). The
//! decisions are the SKU's writer's (`stockade_domain::decide`); this is the API over them.
//! An arrival that fills backorders answers with the holds it filled, first in line first.

use stockade_domain::{
    CancelReceipt, ExpectReceipt, LocationId, ReceiptRef, ReceiveReceipt, SetBackorderLimit,
};

use super::*;

/// What a change of a SKU's backorder limit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackorderLimit {
    /// The location it applies to (absent at a SKU with one).
    pub location: Option<LocationId>,
    pub limit: Quantity,
    pub previous: Quantity,
    pub version: u64,
    pub replayed: bool,
}

/// Stock expected from a supplier: `qty` units of `sku` due at `eta`, at `location`
/// (needed only for a SKU at several locations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub reference: ReceiptRef,
    pub qty: Quantity,
    pub eta: Timestamp,
    pub location: Option<LocationId>,
}

/// What a receipt command did: the receipt as it stands after it, and for an arrival the
/// backordered holds it filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptChange {
    pub reference: ReceiptRef,
    pub location: Option<LocationId>,
    /// Units expected (`expect`), arrived (`receive`) or no longer expected (`cancel`).
    pub qty: Quantity,
    /// Units still expected afterwards.
    pub remaining: Quantity,
    pub eta: Option<Timestamp>,
    /// Backordered holds the arrival covered: (reservation, units filled, still waiting).
    pub filled: Vec<(ReservationId, Quantity, Quantity)>,
    pub version: u64,
    pub replayed: bool,
}

impl Inventory {
    /// Lets `sku` hold up to `limit` units beyond what it has on hand (less safety stock)
    /// at `location` (required at a SKU stocked at several), as backorders filled first
    /// in, first out as stock arrives there. 0 stops taking new ones.
    pub async fn set_backorder_limit(
        &self,
        sku: &Sku,
        limit: Quantity,
        location: Option<LocationId>,
        origin: &Origin,
    ) -> Result<BackorderLimit, Error> {
        let request = origin.request(None)?;
        self.refuse_kit(sku, "take backorders (its stock is its components')")
            .await?;
        let command = Command::SetBackorderLimit(SetBackorderLimit { limit, location });
        let accepted = self.execute(sku, command, request).await?;
        match accepted.events.first() {
            Some(Event::BackorderLimitSet(e)) => Ok(BackorderLimit {
                location: e.location.clone(),
                limit: e.limit,
                previous: e.previous,
                version: accepted.version,
                replayed: accepted.replayed,
            }),
            _ => Err(Error::Unavailable(
                "a backorder limit produced no BackorderLimitSet event".into(),
            )),
        }
    }

    /// Records stock expected from a supplier. Without a key of the caller's, the receipt's
    /// reference is the key: a retry whose answer was lost gets that answer, and the same
    /// reference for other units is a duplicate (for as long as keys are kept).
    pub async fn expect_receipt(
        &self,
        sku: &Sku,
        receipt: Receipt,
        origin: &Origin,
    ) -> Result<ReceiptChange, Error> {
        let request = origin.request(None)?;
        self.refuse_kit(sku, "expect receipts (its stock is its components')")
            .await?;
        let name = format!("receipt:{}", receipt.reference);
        let duplicate = Rejection::DuplicateReceipt {
            reference: receipt.reference.clone(),
        };
        let command = Command::ExpectReceipt(ExpectReceipt {
            reference: receipt.reference,
            qty: receipt.qty,
            eta: receipt.eta,
            location: receipt.location,
        });
        let accepted = self
            .execute_named(sku, command, request, origin, &name, duplicate)
            .await?;
        match accepted.events.first() {
            Some(Event::ReceiptExpected(e)) => Ok(ReceiptChange {
                reference: e.reference.clone(),
                location: Some(e.location.clone()),
                qty: e.qty,
                remaining: e.qty,
                eta: Some(e.eta),
                filled: Vec::new(),
                version: accepted.version,
                replayed: accepted.replayed,
            }),
            _ => Err(Error::Unavailable(
                "an expected receipt produced no ReceiptExpected event".into(),
            )),
        }
    }

    /// Records the arrival of `qty` units of receipt `reference` (all that are still
    /// expected when `None`): they are on hand at once, and fill backorders first.
    pub async fn receive_receipt(
        &self,
        sku: &Sku,
        reference: ReceiptRef,
        qty: Option<Quantity>,
        origin: &Origin,
    ) -> Result<ReceiptChange, Error> {
        let request = origin.request(None)?;
        self.refuse_kit(sku, "receive stock (its stock is its components')")
            .await?;
        let eta = self.stock(sku).await.ok().and_then(|l| {
            l.view
                .receipts
                .iter()
                .find(|r| r.reference == reference)
                .map(|r| r.eta)
        });
        let command = Command::ReceiveReceipt(ReceiveReceipt { reference, qty });
        let accepted = self.execute(sku, command, request).await?;
        let filled = fills_in(&accepted.events);
        match accepted.events.first() {
            Some(Event::ReceiptReceived(e)) => Ok(ReceiptChange {
                reference: e.reference.clone(),
                location: Some(e.location.clone()),
                qty: e.qty,
                remaining: e.remaining,
                eta: eta.filter(|_| !e.remaining.is_zero()),
                filled,
                version: accepted.version,
                replayed: accepted.replayed,
            }),
            _ => Err(Error::Unavailable(
                "a receipt's arrival produced no ReceiptReceived event".into(),
            )),
        }
    }

    /// Records that what is still expected of receipt `reference` will not come.
    pub async fn cancel_receipt(
        &self,
        sku: &Sku,
        reference: ReceiptRef,
        origin: &Origin,
    ) -> Result<ReceiptChange, Error> {
        let request = origin.request(None)?;
        self.refuse_kit(sku, "expect receipts (its stock is its components')")
            .await?;
        let command = Command::CancelReceipt(CancelReceipt { reference });
        let accepted = self.execute(sku, command, request).await?;
        match accepted.events.first() {
            Some(Event::ReceiptCancelled(e)) => Ok(ReceiptChange {
                reference: e.reference.clone(),
                location: None,
                qty: e.qty,
                remaining: Quantity::ZERO,
                eta: None,
                filled: Vec::new(),
                version: accepted.version,
                replayed: accepted.replayed,
            }),
            _ => Err(Error::Unavailable(
                "a cancelled receipt produced no ReceiptCancelled event".into(),
            )),
        }
    }
}

/// The backorders a decision filled, in line order.
pub(super) fn fills_in(events: &[Event]) -> Vec<(ReservationId, Quantity, Quantity)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::BackorderFilled(f) => Some((f.reservation_id, f.qty, f.backordered)),
            _ => None,
        })
        .collect()
}

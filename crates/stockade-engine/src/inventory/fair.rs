//! Fair selling: a SKU's purchase limit per customer (held and bought, across every order,
//! over a window) and its waitlist (freed stock goes to the first in line as a short hold,
//! before any new reservation can take it). The decisions are the SKU's writer's
//! (`stockade_domain::decide`); the actor serves the waitlist after every decision. This
//! is the API over them.

use stockade_domain::{CustomerId, JoinWaitlist, LeaveWaitlist, SetFairSelling, WaitlistPlace};

use super::*;
use crate::actor::{FairSellingView, ReadFairSelling};

/// Most waitlist places one read lists.
pub const MAX_PLACES_LISTED: usize = 1_000;

/// A SKU's fair-selling rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FairSelling {
    /// Units one customer may hold and buy over `window`; `None`: no limit.
    pub per_customer: Option<Quantity>,
    pub window: Duration,
    /// How long a waitlist place's hold lasts.
    pub waitlist_hold: Duration,
}

/// A change of rules or of the waitlist that is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitlistChange {
    /// The place (joined, or left).
    pub place: WaitlistPlace,
    pub version: u64,
    pub replayed: bool,
}

impl Inventory {
    /// Sets `sku`'s purchase limit and waitlist hold. A kit carries none of its own: its
    /// components' limits apply to every kit ordered (a kit's lines are its components').
    pub async fn set_fair_selling(
        &self,
        sku: &Sku,
        rules: FairSelling,
        origin: &Origin,
    ) -> Result<u64, Error> {
        let request = origin.request(None)?;
        self.refuse_kit(
            sku,
            "limit purchases or keep a waitlist (set them on its components)",
        )
        .await?;
        let command = Command::SetFairSelling(SetFairSelling {
            per_customer: rules.per_customer,
            window: rules.window,
            waitlist_hold: rules.waitlist_hold,
        });
        Ok(self.execute(sku, command, request).await?.version)
    }

    /// Puts `customer` on `sku`'s waitlist for `qty` units. The answer names the place and
    /// the id its hold will have: a `waitlist_hold` notice with that id goes to the
    /// channel once stock is freed for it (at once, if it is free and no one is ahead).
    pub async fn join_waitlist(
        &self,
        sku: &Sku,
        customer: CustomerId,
        qty: Quantity,
        origin: &Origin,
    ) -> Result<WaitlistChange, Error> {
        let request = origin.request(None)?;
        self.refuse_kit(sku, "keep a waitlist (its components each keep their own)")
            .await?;
        let command = Command::JoinWaitlist(JoinWaitlist {
            customer,
            qty,
            channel: origin.channel_or(&self.inner.default_channel),
            hold_id: self.new_reservation_id(request.scope.as_ref()),
        });
        let accepted = self.execute(sku, command, request).await?;
        let Some(Event::WaitlistJoined(e)) = accepted.events.first() else {
            return Err(Error::Unavailable(
                "joining a waitlist produced no WaitlistJoined event".into(),
            ));
        };
        // Where the place stands now. Gone already (position 0) means it was served at
        // once: its hold is `hold_id`.
        let now = self
            .fair_selling(sku, Some(&e.customer), 0)
            .await
            .ok()
            .and_then(|v| v.place)
            .filter(|p| p.number == e.number);
        let place = now.unwrap_or_else(|| WaitlistPlace {
            number: e.number,
            position: 0,
            customer: e.customer.clone(),
            qty: e.qty,
            channel: e.channel.clone(),
            joined_at: e.at,
            units_ahead: Quantity::ZERO,
            hold_id: e.hold_id,
        });
        Ok(WaitlistChange {
            place,
            version: accepted.version,
            replayed: accepted.replayed,
        })
    }

    /// Takes `customer` off `sku`'s waitlist.
    pub async fn leave_waitlist(
        &self,
        sku: &Sku,
        customer: CustomerId,
        origin: &Origin,
    ) -> Result<u64, Error> {
        let request = origin.request(None)?;
        let command = Command::LeaveWaitlist(LeaveWaitlist { customer });
        Ok(self.execute(sku, command, request).await?.version)
    }

    /// `sku`'s rules and waitlist (up to `max_places` places, first in line first), and
    /// for `customer`, their place and what counts against their limit now.
    pub async fn fair_selling(
        &self,
        sku: &Sku,
        customer: Option<&CustomerId>,
        max_places: usize,
    ) -> Result<FairSellingView, Error> {
        let customer = customer.cloned();
        let max_places = max_places.min(MAX_PLACES_LISTED);
        self.shared()
            .ask(sku, |reply| ReadFairSelling {
                customer: customer.clone(),
                max_places,
                reply,
            })
            .await
    }
}

//! Changing a reservation after it is held: extending it, committing or releasing part of
//! it, amending its lines; and the checks that make a commit of several lines all or
//! nothing.
//!
//! Each SKU's actor decides its own line, so a change that spans lines cannot be one
//! decision. What makes it all or nothing instead:
//! - calls that change one reservation take its turn ([`Turn`]): on this node they run
//!   one after the other, so none of them can resolve a line another has just checked;
//! - a call checks every line it names (live, unlapsed, not at risk, holding enough)
//!   before it writes to any, so every refusal those checks can foresee writes nothing;
//! - before selling several lines, a line that would lapse within [`COMMIT_MARGIN`] is
//!   extended to it, so no line lapses between the check and the sale;
//! - an amendment grows lines first and shrinks them after: a line that cannot grow (out
//!   of stock) undoes the growth already written and the call is refused.
//!
//! What is left is what no check can foresee: an operator's count that puts a line at
//! risk between the check and the sale, or a store that fails mid-call. A commit then
//! answers per line (`Resolved::failed`), and the same call under its key finishes it.
//!
//! A keyed call that finds its key already applied to one of its lines is a retry: it
//! skips the checks (its lines answer from the log as they did the first time) and
//! finishes what the first attempt did not.

use std::time::Duration;

use stockade_domain::{Amend, Extend, Reduce};

use super::saga::after_rollback;
use crate::idempotency::event_id;

use super::*;

/// A line of a commit of several lines that would lapse sooner than this is extended to it
/// first. Longer than any pause the commit's appends should meet.
const COMMIT_MARGIN: Duration = Duration::from_secs(10);

/// A reservation whose lines were extended or amended, and what each holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub id: ReservationId,
    /// The earliest expiry among its live lines.
    pub expires_at: Timestamp,
    /// Each line changed (or left as it was), with what it holds now.
    pub lines: Vec<ReservedLine>,
    /// Lines this call could not change, and why (only after a refusal no check could
    /// foresee; see the module docs). Repeating the call under its key finishes them.
    pub failed: Vec<(Sku, Error)>,
    /// This answers a retry: the change was made by the first request.
    pub replayed: bool,
}

/// A line as the checks found it.
#[derive(Debug, Clone)]
struct Held {
    sku: Sku,
    qty: Quantity,
    order_id: Option<OrderId>,
    expires_at: Timestamp,
    reserved_at: Timestamp,
    at_risk: bool,
    /// Units waiting for stock: not to be sold yet.
    backordered: Quantity,
}

impl Inventory {
    /// Keeps every line of reservation `id` until `ttl` from now. Refused (nothing written)
    /// if any line has lapsed or ended, if the new expiry is not later than a line's, or
    /// if it is more than 7 days after the reservation was made.
    pub async fn extend(
        &self,
        id: ReservationId,
        ttl: Duration,
        origin: &Origin,
    ) -> Result<Changed, Error> {
        let skus = self.skus_of(id).await?;
        let request = origin.request(None)?;
        self.check_owner(id, origin).await?;
        let _turn = Turn::take(&self.inner.reservation_locks, &id).await;
        let retry = self.applied_before(&request, &skus).await?;
        if !retry {
            let now = self.shared().clock.now();
            let until = now.checked_add(ttl).unwrap_or(now);
            for line in self.held_lines(id, &skus).await? {
                let refusal = if ttl.is_zero() || ttl > stockade_domain::MAX_TTL || until <= now {
                    Some(Rejection::InvalidTtl)
                } else if line
                    .reserved_at
                    .checked_add(stockade_domain::MAX_TTL)
                    .is_some_and(|latest| until > latest)
                {
                    Some(Rejection::BeyondMaxHold {
                        reservation_id: id,
                        latest: line
                            .reserved_at
                            .checked_add(stockade_domain::MAX_TTL)
                            .unwrap_or(line.reserved_at),
                    })
                } else if until <= line.expires_at {
                    Some(Rejection::NotAnExtension {
                        reservation_id: id,
                        expires_at: line.expires_at,
                    })
                } else {
                    None
                };
                if let Some(rejection) = refusal {
                    return Err(Error::Rejected {
                        sku: line.sku,
                        rejection,
                    });
                }
            }
        }
        let command = Command::Extend(Extend {
            reservation_id: id,
            ttl,
        });
        let outcomes = join_all(
            skus.iter()
                .map(|sku| self.execute(sku, command.clone(), request.clone())),
        )
        .await;
        let mut lines = Vec::new();
        let mut failed = Vec::new();
        let mut replayed = true;
        let mut expires_at: Option<Timestamp> = None;
        for (sku, outcome) in skus.into_iter().zip(outcomes) {
            match outcome {
                Ok(accepted) => {
                    replayed &= accepted.replayed;
                    if let Some(Event::ReservationExtended(e)) = accepted.events.first() {
                        expires_at = Some(expires_at.map_or(e.expires_at, |t| t.min(e.expires_at)));
                    }
                    let qty = self.held_qty(&sku, id).await;
                    lines.push(ReservedLine {
                        sku,
                        qty,
                        parts: Vec::new(),
                        version: accepted.version,
                        backordered: Quantity::ZERO,
                        eta: None,
                    });
                }
                Err(e) => failed.push((sku, e)),
            }
        }
        finish(id, lines, failed, expires_at, replayed)
    }

    /// Sells `qty` of each named line of reservation `id`; the rest of each stays held
    /// until its expiry. All or nothing: every line is checked (live, not at risk, holding
    /// at least `qty`) before any is sold. A line's whole quantity is its commit.
    pub async fn commit_part(
        &self,
        id: ReservationId,
        lines: &[(Sku, Quantity)],
        origin: &Origin,
    ) -> Result<Resolved, Error> {
        self.reduce_lines(id, lines, true, origin).await
    }

    /// Gives `qty` of each named line of reservation `id` back; the rest stays held.
    pub async fn release_part(
        &self,
        id: ReservationId,
        lines: &[(Sku, Quantity)],
        origin: &Origin,
    ) -> Result<Resolved, Error> {
        self.reduce_lines(id, lines, false, origin).await
    }

    async fn reduce_lines(
        &self,
        id: ReservationId,
        lines: &[(Sku, Quantity)],
        sell: bool,
        origin: &Origin,
    ) -> Result<Resolved, Error> {
        let skus = self.skus_of(id).await?;
        check_named(id, lines.iter().map(|(sku, _)| sku), &skus)?;
        if let Some((sku, _)) = lines.iter().find(|(_, qty)| qty.is_zero()) {
            return Err(Error::Rejected {
                sku: sku.clone(),
                rejection: Rejection::InvalidQuantity,
            });
        }
        let request = origin.request(None)?;
        self.check_owner(id, origin).await?;
        let _turn = Turn::take(&self.inner.reservation_locks, &id).await;
        let named: Vec<Sku> = lines.iter().map(|(sku, _)| sku.clone()).collect();
        if !self.applied_before(&request, &named).await? {
            let held = self.held_lines(id, &named).await?;
            for ((_, qty), line) in lines.iter().zip(&held) {
                if *qty > line.qty {
                    return Err(Error::Rejected {
                        sku: line.sku.clone(),
                        rejection: Rejection::ExceedsHold {
                            reservation_id: id,
                            requested: *qty,
                            held: line.qty,
                        },
                    });
                }
                if sell && line.at_risk {
                    return Err(Error::Rejected {
                        sku: line.sku.clone(),
                        rejection: Rejection::AtRisk { reservation_id: id },
                    });
                }
                // Only a line's covered units sell; its backordered ones wait for stock.
                if sell && *qty > line.qty.saturating_sub(line.backordered) {
                    return Err(Error::Rejected {
                        sku: line.sku.clone(),
                        rejection: Rejection::Backordered {
                            reservation_id: id,
                            backordered: line.backordered,
                        },
                    });
                }
            }
            if sell && held.len() > 1 {
                self.secure(id, &held, &request).await?;
            }
        }
        let outcomes = join_all(lines.iter().map(|(sku, qty)| {
            let command = Command::Reduce(Reduce {
                reservation_id: id,
                qty: *qty,
                sell,
            });
            self.execute(sku, command, request.clone())
        }))
        .await;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for ((sku, _), outcome) in lines.iter().zip(outcomes) {
            match outcome {
                Ok(accepted) => {
                    let (qty, parts) = match accepted.events.first() {
                        Some(Event::ReservationReduced(e)) => (e.qty, e.parts.clone()),
                        Some(Event::ReservationCommitted(e)) => (e.qty, Vec::new()),
                        Some(Event::ReservationReleased(e)) => (e.qty, Vec::new()),
                        _ => (Quantity::ZERO, Vec::new()),
                    };
                    done.push(ReservedLine {
                        sku: sku.clone(),
                        qty,
                        parts,
                        version: accepted.version,
                        backordered: Quantity::ZERO,
                        eta: None,
                    });
                }
                Err(e) => failed.push((sku.clone(), e)),
            }
        }
        if done.is_empty() {
            return Err(most_telling(failed));
        }
        Ok(Resolved {
            id,
            resolution: if sell {
                Resolution::Committed
            } else {
                Resolution::Released
            },
            lines: done,
            failed,
        })
    }

    /// Changes reservation `id`'s lines to the quantities given: a line named with more
    /// units grows (checked like a new hold), with fewer shrinks, with 0 is released; a SKU
    /// the reservation does not hold yet becomes a new line, expiring with the others.
    /// Lines not named stay as they are. All or nothing: a line that cannot grow undoes
    /// the growth already written, and the call is refused. The id stays the same.
    pub async fn amend(
        &self,
        id: ReservationId,
        lines: Vec<Line>,
        origin: &Origin,
    ) -> Result<Changed, Error> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(Error::Invalid(format!(
                "an amendment names 1-{MAX_LINES} lines"
            )));
        }
        for (i, line) in lines.iter().enumerate() {
            if lines[..i].iter().any(|l| l.sku == line.sku) {
                return Err(Error::Invalid(format!(
                    "SKU {} appears on two lines; merge them",
                    line.sku
                )));
            }
        }
        let skus = self.skus_of(id).await?;
        let request = origin.request(None)?;
        self.check_owner(id, origin).await?;
        let _turn = Turn::take(&self.inner.reservation_locks, &id).await;
        let now = self.shared().clock.now();
        let all: Vec<Sku> = skus
            .iter()
            .cloned()
            .chain(lines.iter().map(|l| l.sku.clone()))
            .fold(Vec::new(), |mut all, sku| {
                if !all.contains(&sku) {
                    all.push(sku);
                }
                all
            });
        let retry = self.applied_before(&request, &all).await?;
        // Every line the reservation holds now (those it no longer holds count as 0).
        let statuses = join_all(skus.iter().map(|sku| self.line_status(sku, id))).await;
        let mut current: Vec<Held> = Vec::new();
        for (sku, status) in skus.iter().zip(statuses) {
            if let LineStatus::Live {
                qty,
                order_id,
                expires_at,
                reserved_at,
                at_risk,
                backordered,
                ..
            } = status?
            {
                current.push(Held {
                    sku: sku.clone(),
                    qty,
                    order_id,
                    expires_at,
                    reserved_at,
                    at_risk,
                    backordered,
                });
            }
        }
        let held_qty = |sku: &Sku| current.iter().find(|h| &h.sku == sku).map(|h| h.qty);
        if !retry {
            // A named line the reservation had must still be held; one it never had
            // is new.
            for line in &lines {
                if skus.contains(&line.sku) && held_qty(&line.sku).is_none() {
                    self.held_lines(id, std::slice::from_ref(&line.sku)).await?;
                }
                if !skus.contains(&line.sku) && line.qty.is_zero() {
                    return Err(Error::Invalid(format!(
                        "SKU {} is not a line of reservation {id}: nothing to remove",
                        line.sku
                    )));
                }
            }
            let left = current
                .iter()
                .filter(|h| {
                    lines
                        .iter()
                        .find(|l| l.sku == h.sku)
                        .is_none_or(|l| !l.qty.is_zero())
                })
                .count()
                + lines
                    .iter()
                    .filter(|l| !skus.contains(&l.sku) && !l.qty.is_zero())
                    .count();
            if left == 0 {
                return Err(Error::Invalid(
                    "an amendment must leave at least one line; release the reservation instead"
                        .into(),
                ));
            }
            if let Some(first) = lines.first()
                && lines
                    .iter()
                    .all(|l| held_qty(&l.sku).is_some_and(|q| q == l.qty))
            {
                return Err(Error::Rejected {
                    sku: first.sku.clone(),
                    rejection: Rejection::Unchanged {
                        reservation_id: id,
                        qty: first.qty,
                    },
                });
            }
            self.secure(id, &current, &request).await?;
        }
        let expires_at = current.iter().map(|h| h.expires_at).min();
        let order_id = current.iter().find_map(|h| h.order_id.clone());
        // Grow first: a line that cannot grow undoes what grew, before anything shrank.
        let grows: Vec<&Line> = lines
            .iter()
            .filter(|l| match held_qty(&l.sku) {
                Some(q) => l.qty > q,
                None => !skus.contains(&l.sku) || retry,
            })
            .filter(|l| !l.qty.is_zero())
            .collect();
        let shrinks: Vec<&Line> = lines
            .iter()
            .filter(|l| held_qty(&l.sku).is_some_and(|q| l.qty < q))
            .collect();
        let channel = origin.channel_or(&self.inner.default_channel);
        let grow = |line: &Line| {
            if skus.contains(&line.sku) {
                Command::Amend(Amend {
                    reservation_id: id,
                    qty: line.qty,
                    placement: line.placement.clone(),
                })
            } else {
                // A new line expires with the others (and at least a moment from now).
                let until = expires_at.unwrap_or(now);
                let ttl =
                    Duration::from_millis(until.as_millis().saturating_sub(now.as_millis()).max(1));
                Command::Reserve(Reserve {
                    customer: None,
                    reservation_id: id,
                    order_id: order_id.clone(),
                    // Not recorded: recovery judges a reservation whole by the lines its
                    // first hold recorded, and an amendment cut short must never make
                    // it release what was held before.
                    lines: Vec::new(),
                    qty: line.qty,
                    ttl,
                    channel: channel.clone(),
                    placement: line.placement.clone(),
                })
            }
        };
        let grown = join_all(
            grows
                .iter()
                .map(|l| self.execute(&l.sku, grow(l), request.clone())),
        )
        .await;
        let mut refusal = None;
        let mut undo: Vec<(&Line, Quantity)> = Vec::new();
        let mut changed: Vec<(Sku, Accepted)> = Vec::new();
        for (line, outcome) in grows.iter().zip(grown) {
            match outcome {
                Ok(accepted) => {
                    if accepted.replayed {
                        // A retry's growth the first attempt wrote: if that attempt was
                        // refused, it undid it, and its refusal stands.
                        if self.held_qty(&line.sku, id).await != line.qty {
                            refusal.get_or_insert(Error::RolledBack {
                                reason: format!(
                                    "an earlier attempt under this key was refused and undone \
                                     ({} no longer holds what it grew to); amend again with a \
                                     new key",
                                    line.sku
                                ),
                            });
                        }
                    } else {
                        undo.push((line, held_qty(&line.sku).unwrap_or(Quantity::ZERO)));
                    }
                    changed.push((line.sku.clone(), accepted));
                }
                Err(e) => {
                    if refusal
                        .as_ref()
                        .is_none_or(|r: &Error| r.rejection().is_none())
                    {
                        refusal = Some(e);
                    }
                }
            }
        }
        if let Some(refusal) = refusal {
            // Back to what each line held; a new line is released.
            // Only what this call wrote: a retry's replayed growth is the first attempt's.
            let unkeyed = RequestMeta {
                scope: None,
                ..request.clone()
            };
            for (line, before) in undo {
                let command = if before.is_zero() {
                    Command::Release(Release { reservation_id: id })
                } else {
                    Command::Amend(Amend {
                        reservation_id: id,
                        qty: before,
                        placement: Placement::default(),
                    })
                };
                if let Err(e) = self.execute(&line.sku, command, unkeyed.clone()).await {
                    // The growth lapses with the hold; nothing is sold.
                    tracing::warn!(sku = %line.sku, error = %e, "could not undo part of a refused amendment");
                }
            }
            return Err(after_rollback(refusal, request.scope.is_some(), true));
        }
        let shrunk = join_all(shrinks.iter().map(|line| {
            let command = Command::Amend(Amend {
                reservation_id: id,
                qty: line.qty,
                placement: line.placement.clone(),
            });
            self.execute(&line.sku, command, request.clone())
        }))
        .await;
        let mut failed = Vec::new();
        for (line, outcome) in shrinks.iter().zip(shrunk) {
            match outcome {
                Ok(accepted) => changed.push((line.sku.clone(), accepted)),
                Err(e) => failed.push((line.sku.clone(), e)),
            }
        }
        let added: Vec<Sku> = all.iter().filter(|s| !skus.contains(s)).cloned().collect();
        if !added.is_empty() {
            // Every SKU of the reservation in one entry: a lookup never sees part of it.
            let channel = self.inner.locator.owner(&id).await.ok().flatten();
            self.inner
                .locator
                .add(id, &all, order_id.as_ref(), channel.as_ref(), now);
        }
        let replayed = retry && changed.iter().all(|(_, a)| a.replayed);
        let mut out = Vec::new();
        let mut earliest = None;
        for sku in &all {
            let accepted = changed.iter().find(|(s, _)| s == sku).map(|(_, a)| a);
            let version = match accepted {
                Some(accepted) => accepted.version,
                None => self.stock(sku).await.map_or(0, |l| l.version),
            };
            // What this call left the line holding comes from what it wrote: a release
            // or commit racing in right after must not turn a done amendment into a
            // refusal.
            let status = self.line_status(sku, id).await;
            let qty = match (accepted.and_then(held_after), &status) {
                (Some(qty), _) => qty,
                (None, Ok(LineStatus::Live { qty, .. })) if accepted.is_none() => *qty,
                _ => continue,
            };
            if let Ok(LineStatus::Live { expires_at, .. }) = status {
                earliest = Some(earliest.map_or(expires_at, |t: Timestamp| t.min(expires_at)));
            }
            if qty.is_zero() {
                continue;
            }
            out.push(ReservedLine {
                sku: sku.clone(),
                qty,
                parts: Vec::new(),
                version,
                backordered: Quantity::ZERO,
                eta: None,
            });
        }
        finish(id, out, failed, earliest.or(expires_at), replayed)
    }

    /// Whether this keyed request already wrote to one of `skus`: its first event there
    /// has the id the key derives.
    async fn applied_before(&self, request: &RequestMeta, skus: &[Sku]) -> Result<bool, Error> {
        let Some(scope) = &request.scope else {
            return Ok(false);
        };
        let store = self.store();
        for sku in skus {
            let stream = StreamName::for_sku(sku);
            let id = event_id(scope, &stream, 0);
            let found = store
                .find_events(&stream, &[id])
                .await
                .map_err(|e| Error::store("look up the request's key", &e))?;
            if !found.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Each of `skus`' line of `id`, live and unlapsed, or the refusal a change of it meets.
    async fn held_lines(&self, id: ReservationId, skus: &[Sku]) -> Result<Vec<Held>, Error> {
        let statuses = join_all(skus.iter().map(|sku| self.line_status(sku, id))).await;
        let mut held = Vec::with_capacity(skus.len());
        for (sku, status) in skus.iter().zip(statuses) {
            let rejection = match status? {
                LineStatus::Live {
                    qty,
                    order_id,
                    expires_at,
                    reserved_at,
                    at_risk,
                    backordered,
                    ..
                } => {
                    held.push(Held {
                        sku: sku.clone(),
                        qty,
                        order_id,
                        expires_at,
                        reserved_at,
                        at_risk,
                        backordered,
                    });
                    continue;
                }
                LineStatus::Lapsed { expires_at, .. } => Rejection::Lapsed {
                    reservation_id: id,
                    expires_at,
                },
                LineStatus::Resolved(resolution) => Rejection::AlreadyResolved {
                    reservation_id: id,
                    resolution,
                },
                LineStatus::Unknown => Rejection::UnknownReservation { reservation_id: id },
            };
            return Err(Error::Rejected {
                sku: sku.clone(),
                rejection,
            });
        }
        Ok(held)
    }

    /// Extends each line of `held` that would lapse within [`COMMIT_MARGIN`] to it, so
    /// that none lapses while the call writes the others. Unkeyed: an extension repeated
    /// by a retry is harmless. A line that may not be held longer is left as it is.
    async fn secure(
        &self,
        id: ReservationId,
        held: &[Held],
        request: &RequestMeta,
    ) -> Result<(), Error> {
        let now = self.shared().clock.now();
        let Some(soon) = now.checked_add(COMMIT_MARGIN) else {
            return Ok(());
        };
        let unkeyed = RequestMeta {
            scope: None,
            ..request.clone()
        };
        for line in held.iter().filter(|h| h.expires_at < soon) {
            let command = Command::Extend(Extend {
                reservation_id: id,
                ttl: COMMIT_MARGIN,
            });
            match self.execute(&line.sku, command, unkeyed.clone()).await {
                Ok(_) => {}
                Err(Error::Rejected {
                    rejection: Rejection::BeyondMaxHold { .. } | Rejection::NotAnExtension { .. },
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// What `sku`'s line of `id` holds now (0 if it holds nothing).
    async fn held_qty(&self, sku: &Sku, id: ReservationId) -> Quantity {
        match self.line_status(sku, id).await {
            Ok(LineStatus::Live { qty, .. }) => qty,
            _ => Quantity::ZERO,
        }
    }

    /// Before a commit of several lines writes anything: every line live, unlapsed and not
    /// at risk (or already committed, by an earlier call), and none about to lapse.
    /// Returns the lines to commit: a line its holder released (taken off by an
    /// amendment or a partial release) is no longer part of the order. A line that lapsed
    /// or expired is: the order is incomplete, and selling the rest is the caller's call
    /// (`commit_part`).
    pub(super) async fn check_commit(
        &self,
        id: ReservationId,
        skus: &[Sku],
        request: &RequestMeta,
    ) -> Result<Vec<Sku>, Error> {
        let retry = self.applied_before(request, skus).await?;
        let mut live = Vec::new();
        let mut to_commit = Vec::with_capacity(skus.len());
        for sku in skus {
            match self.held_lines(id, std::slice::from_ref(sku)).await {
                Ok(mut held) => live.append(&mut held),
                Err(Error::Rejected {
                    rejection:
                        Rejection::AlreadyResolved {
                            resolution: Resolution::Released,
                            ..
                        },
                    ..
                }) => continue,
                Err(Error::Rejected {
                    rejection:
                        Rejection::AlreadyResolved {
                            resolution: Resolution::Committed,
                            ..
                        },
                    ..
                }) => {}
                Err(e) if !retry => return Err(e),
                Err(_) => {}
            }
            to_commit.push(sku.clone());
        }
        if retry {
            return Ok(to_commit);
        }
        if let Some(line) = live.iter().find(|h| h.at_risk) {
            return Err(Error::Rejected {
                sku: line.sku.clone(),
                rejection: Rejection::AtRisk { reservation_id: id },
            });
        }
        if let Some(line) = live.iter().find(|h| !h.backordered.is_zero()) {
            return Err(Error::Rejected {
                sku: line.sku.clone(),
                rejection: Rejection::Backordered {
                    reservation_id: id,
                    backordered: line.backordered,
                },
            });
        }
        self.secure(id, &live, request).await?;
        Ok(to_commit)
    }
}

/// Refuses lines that are not the reservation's, or named twice.
fn check_named<'a>(
    id: ReservationId,
    named: impl Iterator<Item = &'a Sku>,
    skus: &[Sku],
) -> Result<(), Error> {
    let mut seen: Vec<&Sku> = Vec::new();
    for sku in named {
        if !skus.contains(sku) {
            return Err(Error::Invalid(format!(
                "SKU {sku} is not a line of reservation {id}"
            )));
        }
        if seen.contains(&sku) {
            return Err(Error::Invalid(format!(
                "SKU {sku} appears on two lines; merge them"
            )));
        }
        seen.push(sku);
    }
    if seen.is_empty() || seen.len() > MAX_LINES {
        return Err(Error::Invalid(format!("name 1-{MAX_LINES} lines")));
    }
    Ok(())
}

/// What a line holds after the events of `accepted`, if they say (a hold, a growth, or
/// a reduction that left some); `None` when they ended the line or changed nothing.
fn held_after(accepted: &Accepted) -> Option<Quantity> {
    accepted.events.iter().rev().find_map(|event| match event {
        Event::StockReserved(e) => Some(e.qty),
        Event::ReservationIncreased(e) => Some(e.total),
        Event::ReservationReduced(e) => Some(e.remaining),
        _ => None,
    })
}

/// The answer of a change: an error only if nothing changed.
fn finish(
    id: ReservationId,
    lines: Vec<ReservedLine>,
    failed: Vec<(Sku, Error)>,
    expires_at: Option<Timestamp>,
    replayed: bool,
) -> Result<Changed, Error> {
    if lines.is_empty() {
        return Err(most_telling(failed));
    }
    Ok(Changed {
        id,
        expires_at: expires_at.unwrap_or(Timestamp::EPOCH),
        lines,
        failed,
        replayed,
    })
}

/// The refusal to answer with when every line failed: a business one over a transient.
fn most_telling(mut failed: Vec<(Sku, Error)>) -> Error {
    let pick = failed
        .iter()
        .position(|(_, e)| e.rejection().is_some())
        .unwrap_or(0);
    if failed.is_empty() {
        return Error::Invalid("nothing to change".into());
    }
    failed.swap_remove(pick).1
}

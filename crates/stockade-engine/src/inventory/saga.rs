//! The order saga: a reservation of several lines held all or nothing, and its commit
//! and release by id across every SKU it touched.
//!
//! Invariant: every line of one reservation carries the same reservation id. A refused
//! line releases the lines already held before the refusal is returned; if that release
//! cannot be written, the holds lapse at their TTL.

use super::*;

impl Inventory {
    /// Holds every line, or none: a refused line releases the lines already held. A kit's
    /// line holds its components (see `kits`); the answer lists those.
    /// A new reservation's id. A keyed request gets a key-derived one, so a retry names
    /// the same reservation (secret-derived when the engine has a secret, so that nobody
    /// can compute another caller's ids).
    pub(super) fn new_reservation_id(&self, scope: Option<&KeyScope>) -> ReservationId {
        match scope {
            Some(scope) => ReservationId::from_uuid(match &self.inner.id_secret {
                Some(secret) => secret.reservation_id(scope),
                None => scope.derive("reservation"),
            }),
            // Time-ordered, like unkeyed event ids: a reservation's events are filed under
            // its id, and its commit then lands beside its hold in the index.
            None => ReservationId::from_uuid(Uuid::now_v7()),
        }
    }

    pub async fn reserve_order(
        &self,
        lines: Vec<Line>,
        options: ReserveOptions,
    ) -> Result<Reservation, Error> {
        check_lines(&lines)?;
        let lines = self.expand_kits(lines).await?;
        // A version is a stream's; a kit's derived one is not what its components' actors
        // can check. Name the components instead.
        if let Some(named) = options
            .expected_versions
            .keys()
            .find(|sku| !lines.iter().any(|l| &l.sku == *sku))
        {
            return Err(Error::Invalid(format!(
                "expected_versions names {named}, which is not a line of this order once \
                 its kits are expanded; name their components' versions"
            )));
        }
        let origin = &options.origin;
        let request = origin.request(options.order_id.as_ref())?;
        // Two requests under one key run one after the other, so the second sees the
        // first's final outcome (held, or refused and rolled back) and never races it.
        let _turn = match &request.scope {
            Some(scope) => Some(Turn::take(&self.inner.key_locks, scope).await),
            None => None,
        };
        if request.scope.is_some() {
            self.recovered().await?;
        }
        let _in_progress =
            (lines.len() > 1).then(|| InProgress::enter(&self.inner.orders_in_progress));
        let id = self.new_reservation_id(request.scope.as_ref());
        let ttl = options.ttl.unwrap_or(self.shared().config.default_ttl);
        let channel = origin.channel_or(&self.inner.default_channel);
        // Recorded on each line, so that recovery can tell a reservation cut in half.
        let all_skus: Vec<Sku> = match lines.len() {
            1 => Vec::new(),
            _ => lines.iter().map(|l| l.sku.clone()).collect(),
        };
        let attempt = |i: usize| {
            let line = &lines[i];
            let command = Command::Reserve(Reserve {
                customer: options.customer.clone(),
                placement: line.placement.clone(),
                reservation_id: id,
                order_id: options.order_id.clone(),
                lines: all_skus.clone(),
                qty: line.qty,
                ttl,
                channel: channel.clone(),
            });
            let mut request = request.clone();
            request.expected_version = options.expected_versions.get(&line.sku).copied();
            self.execute(&line.sku, command, request)
        };
        // The lines are decided concurrently (each by its own SKU's actor).
        let attempts = match lines.len() {
            1 => vec![attempt(0).await],
            n => join_all((0..n).map(attempt)).await,
        };

        let mut reserved: Vec<(Sku, HeldLine)> = Vec::with_capacity(lines.len());
        let mut refusal = None;
        let mut unknown = Vec::new();
        for (line, attempt) in lines.iter().zip(attempts) {
            match attempt {
                Ok(accepted) => match held_line(&accepted) {
                    Some(held) => reserved.push((line.sku.clone(), held)),
                    // Cannot happen (a reserve writes StockReserved); never report a line
                    // as held without it.
                    None => {
                        unknown.push(line.sku.clone());
                        refusal = Some(Error::Unavailable(format!(
                            "{}: reserve answered without a StockReserved event",
                            line.sku
                        )));
                    }
                },
                Err(e @ Error::Unavailable(_)) => {
                    // Its append may still land: release it with the others.
                    unknown.push(line.sku.clone());
                    if refusal.is_none() {
                        refusal = Some(e);
                    }
                }
                // Keep the most telling refusal: a domain rejection over a transient error.
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
        // A retry whose first attempt was refused and rolled back replays lines that are
        // released by now: that is a refusal too, not a reservation.
        if refusal.is_none() && reserved.iter().any(|(_, r)| r.replayed) {
            refusal = self.rolled_back(&reserved).await;
        }
        if let Some(refusal) = refusal {
            let mut to_release: Vec<Sku> = reserved.iter().map(|(sku, _)| sku.clone()).collect();
            // A keyed order with nothing held and nothing refused, only outcomes unknown,
            // is left as it is: its caller hears "unknown" and a retry under the key learns
            // what the store holds. In every other case the unknown lines are released
            // with the rest, and the actor makes that release win even over an append
            // that lands late (see the actor's invariants).
            let only_unknown = reserved.is_empty()
                && unknown.len() == lines.len()
                && matches!(refusal, Error::Unavailable(_));
            if !(request.scope.is_some() && only_unknown) {
                to_release.extend(unknown);
            }
            // Every line that is or may be held is released now, so the caller may be
            // told "rolled back".
            let compensated = !to_release.is_empty();
            self.compensate(id, &to_release, options.order_id.as_ref())
                .await;
            return Err(after_rollback(
                refusal,
                request.scope.is_some(),
                compensated,
            ));
        }
        let first = reserved.first().map(|(_, r)| r.clone());
        let Some(first) = first else {
            return Err(Error::Invalid(
                "a reservation needs at least one line".into(),
            ));
        };
        let skus: Vec<Sku> = reserved.iter().map(|(sku, _)| sku.clone()).collect();
        // A retry that wrote nothing is not noted: the first attempt was (or the log
        // answers), and the reservation may have gained lines by amendment since, which a
        // cache entry made of these lines alone would hide from a later commit or release.
        if !reserved.iter().all(|(_, r)| r.replayed) {
            self.inner.locator.add(
                first.id,
                &skus,
                first.order_id.as_ref(),
                Some(&channel),
                first.at,
            );
        }
        Ok(Reservation {
            id: first.id,
            order_id: first.order_id.clone(),
            // Lines decided at different instants differ: promise the earliest.
            expires_at: reserved
                .iter()
                .map(|(_, r)| r.expires_at)
                .min()
                .unwrap_or(first.expires_at),
            replayed: reserved.iter().all(|(_, r)| r.replayed),
            lines: reserved
                .into_iter()
                .map(|(sku, r)| ReservedLine {
                    sku,
                    qty: r.qty,
                    parts: r.parts,
                    version: r.version,
                    backordered: r.backordered,
                    eta: r.eta,
                })
                .collect(),
        })
    }

    /// Waits for the start-up pass that releases incomplete reservations.
    async fn recovered(&self) -> Result<(), Error> {
        if *self.inner.recovered.borrow() {
            return Ok(());
        }
        let mut state = self.inner.recovered.clone();
        match tokio::time::timeout(RECOVERY_PATIENCE, state.wait_for(|done| *done)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(
                "the engine is still releasing reservations cut short by the last stop; retry shortly"
                    .into(),
            )),
        }
    }

    /// For a replayed reservation: the refusal its first attempt must have met, if any
    /// line is no longer held.
    async fn rolled_back(&self, reserved: &[(Sku, HeldLine)]) -> Option<Error> {
        for (sku, r) in reserved {
            let status = self.line_status(sku, r.id).await;
            if let Ok(LineStatus::Resolved(
                resolution @ (Resolution::Released | Resolution::Expired),
            )) = status
            {
                return Some(Error::Rejected {
                    sku: sku.clone(),
                    rejection: Rejection::AlreadyResolved {
                        reservation_id: r.id,
                        resolution,
                    },
                });
            }
        }
        None
    }

    /// Releases the lines of reservation `id` on `skus`, for an order that cannot be
    /// completed. A line that is not held (never landed, already released) answers with a
    /// rejection, which is the outcome wanted.
    async fn compensate(&self, id: ReservationId, skus: &[Sku], order: Option<&OrderId>) {
        let outcomes = self
            .shared()
            .release_lines(id, skus, "compensation", order)
            .await;
        for (sku, outcome) in skus.iter().zip(outcomes) {
            if let Err(e @ (Error::Unavailable(_) | Error::Overloaded { .. })) = outcome {
                // Unavailable: the release is decided behind an append with no verdict
                // yet and lands after it. Overloaded, or a store that fails: the hold
                // lapses at its TTL. Either way nothing is sold, nothing is lost.
                tracing::warn!(%sku, error = %e, "could not release a line of a refused order");
            }
        }
    }

    /// Turns every line of reservation `id` into a sale.
    pub async fn commit(&self, id: ReservationId, origin: &Origin) -> Result<Resolved, Error> {
        self.resolve(id, origin, Resolution::Committed).await
    }

    /// Gives every line of reservation `id` back.
    pub async fn release(&self, id: ReservationId, origin: &Origin) -> Result<Resolved, Error> {
        self.resolve(id, origin, Resolution::Released).await
    }

    /// Commits or releases every line of `id`, each by its own SKU's actor. A commit of
    /// several lines is checked whole first (every line live, unlapsed, not at risk), so
    /// any refusal those checks foresee sells nothing. The answer is per line: a call that
    /// changed any line succeeds and names the lines it could not change in `failed` (only
    /// after what no check foresees, such as a count between the check and the sale; the
    /// same call again finishes them: a line already resolved the same way counts as done).
    /// Only a call that changed nothing is an error: the most telling refusal, or "already
    /// resolved" when every line was.
    async fn resolve(
        &self,
        id: ReservationId,
        origin: &Origin,
        resolution: Resolution,
    ) -> Result<Resolved, Error> {
        let skus = self.skus_of(id).await?;
        let request = origin.request(None)?;
        self.check_owner(id, origin).await?;
        // In the reservation's turn, so no change (an amendment growing then undoing a
        // line) interleaves with its resolution. A commit of several lines is checked
        // whole before any line is sold (see `changes`); a single line's commit is one
        // decision already.
        let _turn = Turn::take(&self.inner.reservation_locks, &id).await;
        let skus = match (resolution, skus.len()) {
            (Resolution::Committed, 2..) => self.check_commit(id, &skus, &request).await?,
            _ => skus,
        };
        let outcomes = join_all(skus.iter().map(|sku| {
            let command = match resolution {
                Resolution::Committed => Command::Commit(Commit { reservation_id: id }),
                _ => Command::Release(Release { reservation_id: id }),
            };
            self.execute(sku, command, request.clone())
        }))
        .await;
        let mut lines = Vec::with_capacity(skus.len());
        let mut failed: Vec<(Sku, Error)> = Vec::new();
        let mut changed = false;
        // The refusal for a call that found every line already resolved this way.
        let mut already: Option<Error> = None;
        for (sku, outcome) in skus.into_iter().zip(outcomes) {
            match outcome {
                Ok(accepted) => {
                    // Replayed too: the earlier call under this key changed it, and its
                    // retry answers as it did.
                    changed = true;
                    let qty = accepted
                        .events
                        .iter()
                        .find_map(|e| match e {
                            Event::ReservationCommitted(c) => Some(c.qty),
                            Event::ReservationReleased(r) => Some(r.qty),
                            _ => None,
                        })
                        .unwrap_or(Quantity::ZERO);
                    lines.push(ReservedLine {
                        parts: Vec::new(),
                        sku,
                        qty,
                        version: accepted.version,
                        backordered: Quantity::ZERO,
                        eta: None,
                    });
                }
                // Done by an earlier call (one that answered with this line failed, or
                // whose answer was lost): this call's work on the line is done too.
                Err(Error::Rejected {
                    rejection:
                        Rejection::AlreadyResolved {
                            resolution: done, ..
                        },
                    ..
                }) if done == resolution => {
                    already.get_or_insert_with(|| already_resolved(&sku, id, resolution));
                    let version = self.stock(&sku).await.map_or(0, |level| level.version);
                    lines.push(ReservedLine {
                        parts: Vec::new(),
                        sku,
                        qty: Quantity::ZERO,
                        version,
                        backordered: Quantity::ZERO,
                        eta: None,
                    });
                }
                Err(e) => failed.push((sku, e)),
            }
        }
        if !changed && failed.is_empty() {
            // Nothing to do: say so, as a single line would.
            if let Some(refusal) = already {
                return Err(refusal);
            }
        }
        if !changed && !failed.is_empty() {
            // Nothing changed: the most telling refusal (a business one over a transient).
            let pick = failed
                .iter()
                .position(|(_, e)| e.rejection().is_some())
                .unwrap_or(0);
            return Err(failed.swap_remove(pick).1);
        }
        Ok(Resolved {
            id,
            resolution,
            lines,
            failed,
        })
    }

    /// Refuses a request of a channel the installation does not let resolve `id`.
    pub(super) async fn check_owner(
        &self,
        id: ReservationId,
        origin: &Origin,
    ) -> Result<(), Error> {
        let policy = &self.shared().config.resolve;
        let (ResolvePolicy::Owner { .. }, Some(acting)) = (policy, &origin.channel) else {
            return Ok(());
        };
        match self.inner.locator.owner(&id).await? {
            Some(owner) if !policy.allows(acting, &owner) => Err(Error::NotOwner(format!(
                "reservation {id} was made by channel {owner}; channel {acting} may not resolve it"
            ))),
            _ => Ok(()),
        }
    }

    /// Commits every reservation of `order`.
    pub async fn commit_order(
        &self,
        order: &OrderId,
        origin: &Origin,
    ) -> Result<Vec<Resolved>, Error> {
        self.resolve_order(order, origin, Resolution::Committed)
            .await
    }

    /// Releases every reservation of `order`.
    pub async fn release_order(
        &self,
        order: &OrderId,
        origin: &Origin,
    ) -> Result<Vec<Resolved>, Error> {
        self.resolve_order(order, origin, Resolution::Released)
            .await
    }

    async fn resolve_order(
        &self,
        order: &OrderId,
        origin: &Origin,
        resolution: Resolution,
    ) -> Result<Vec<Resolved>, Error> {
        let ids = self.inner.locator.order(order).await?;
        if ids.is_empty() {
            return Err(Error::NotFound(format!("order {order}")));
        }
        let mut resolved = Vec::with_capacity(ids.len());
        for (id, _) in ids {
            // One key per reservation: an order may hold two reservations on one SKU, and
            // a key is remembered per SKU.
            let origin = Origin {
                idempotency_key: origin.idempotency_key.as_ref().map(|k| format!("{k}/{id}")),
                ..origin.clone()
            };
            resolved.push(self.resolve(id, &origin, resolution).await?);
        }
        Ok(resolved)
    }
}

/// The refusal a commit or release meets on a line already resolved the same way.
fn already_resolved(sku: &Sku, id: ReservationId, resolution: Resolution) -> Error {
    Error::Rejected {
        sku: sku.clone(),
        rejection: Rejection::AlreadyResolved {
            reservation_id: id,
            resolution,
        },
    }
}

/// One line as its SKU holds it: the parts of a `StockReserved` an order needs.
#[derive(Debug, Clone)]
struct HeldLine {
    id: ReservationId,
    order_id: Option<OrderId>,
    qty: Quantity,
    at: Timestamp,
    expires_at: Timestamp,
    version: u64,
    replayed: bool,
    parts: Vec<Part>,
    backordered: Quantity,
    eta: Option<Timestamp>,
}

fn held_line(accepted: &Accepted) -> Option<HeldLine> {
    accepted.events.iter().find_map(|e| match e {
        Event::StockReserved(r) => Some(HeldLine {
            id: r.reservation_id,
            order_id: r.order_id.clone(),
            qty: r.qty,
            at: r.at,
            expires_at: r.expires_at,
            version: accepted.version,
            replayed: accepted.replayed,
            parts: r.parts.clone(),
            backordered: accepted.backordered,
            eta: accepted.eta,
        }),
        _ => None,
    })
}

/// The error a refused order answers with, once its held lines were released. A transient
/// refusal would invite a retry; under the same key that retry finds only the released
/// lines, so a keyed order says so instead.
pub(super) fn after_rollback(refusal: Error, keyed: bool, compensated: bool) -> Error {
    match refusal {
        Error::Unavailable(reason) if keyed && compensated => Error::RolledBack { reason },
        e @ Error::Overloaded { .. } if keyed && compensated => Error::RolledBack {
            reason: e.to_string(),
        },
        Error::Unavailable(reason) if compensated => {
            Error::Unavailable(format!("{reason}; the reservation was rolled back: retry"))
        }
        other => other,
    }
}

fn check_lines(lines: &[Line]) -> Result<(), Error> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(Error::Invalid(format!(
            "a reservation needs 1-{MAX_LINES} lines"
        )));
    }
    for (i, line) in lines.iter().enumerate() {
        // As the SKU's actor would answer; here, before a kit's expansion could absorb
        // a zero line into another line of the same SKU.
        if line.qty.is_zero() {
            return Err(Error::Rejected {
                sku: line.sku.clone(),
                rejection: Rejection::InvalidQuantity,
            });
        }
        if lines[..i].iter().any(|l| l.sku == line.sku) {
            return Err(Error::Invalid(format!(
                "SKU {} appears on two lines; merge them",
                line.sku
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyed_order_rolled_back_for_a_transient_reason_says_use_a_new_key() {
        let sku = Sku::new("A").expect("sku");
        let busy = || Error::Overloaded {
            sku: sku.clone(),
            waiting: 9,
        };
        let down = || Error::Unavailable("disk".into());
        assert!(matches!(
            after_rollback(busy(), true, true),
            Error::RolledBack { .. }
        ));
        assert!(
            matches!(after_rollback(down(), true, true), Error::RolledBack { reason } if reason == "disk")
        );
        // Without a key a retry is a new request; with nothing held there is nothing to undo.
        assert!(matches!(
            after_rollback(busy(), false, true),
            Error::Overloaded { .. }
        ));
        assert!(
            matches!(after_rollback(down(), false, true), Error::Unavailable(m) if m.contains("rolled back"))
        );
        assert!(matches!(
            after_rollback(busy(), true, false),
            Error::Overloaded { .. }
        ));
        // A business refusal stays what it is.
        let sold_out = Error::Rejected {
            sku: sku.clone(),
            rejection: Rejection::InsufficientStock {
                requested: Quantity::new(2),
                available: Quantity::new(1),
            },
        };
        assert_eq!(after_rollback(sold_out.clone(), true, true), sold_out);
    }

    #[test]
    fn orders_with_no_lines_too_many_or_a_repeated_sku_are_invalid() {
        let line = |s: &str| Line {
            placement: Default::default(),
            sku: Sku::new(s).expect("sku"),
            qty: Quantity::new(1),
        };
        assert!(check_lines(&[]).is_err());
        assert!(check_lines(&[line("A"), line("A")]).is_err());
        let many: Vec<Line> = (0..=MAX_LINES).map(|i| line(&format!("S{i}"))).collect();
        assert!(check_lines(&many).is_err());
        assert!(check_lines(&[line("A"), line("B")]).is_ok());
    }
}

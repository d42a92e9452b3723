//! What the multichannel run's loop moves: each channel's copy of each SKU, the truth as
//! the notices tell it, the things due at virtual instants, and the seeded randomness.

use super::*;

/// SplitMix64 as a sequence: small, fast and well mixed; the run needs repeatability,
/// not secrecy.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        splitmix(self.0)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with this mean, in milliseconds (at least 1).
    pub(super) fn exponential_ms(&mut self, mean_ms: f64) -> u64 {
        let draw = -mean_ms * (1.0 - self.unit()).ln();
        (draw.round() as u64).max(1)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Something due at a virtual instant.
#[derive(Debug)]
pub(super) enum Due {
    Arrive(usize),
    Poll(usize),
    Deliver {
        channel: usize,
        sku: usize,
        version: u64,
        available: Option<u64>,
    },
    Checkout {
        channel: usize,
        id: ReservationId,
        pay: bool,
    },
    Restock(usize),
}

/// A channel's copy of one SKU.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ChannelCopy {
    pub(super) version: u64,
    /// `None`: unlimited.
    pub(super) available: Option<u64>,
}

/// The truth about one SKU, as the notices tell it.
#[derive(Debug, Default)]
pub(super) struct Truth {
    pub(super) version: u64,
    pub(super) available: Option<u64>,
    /// Each version's instant (virtual ms) and availability, for the lag of a copy at an
    /// older version.
    pub(super) changed_at: BTreeMap<u64, (u64, Option<u64>)>,
}

pub(super) struct World {
    pub(super) args: Multichannel,
    pub(super) inventory: Inventory,
    pub(super) clock: ManualClock,
    pub(super) projector: Projector,
    pub(super) models: ReadModels,
    pub(super) notices: HubSubscriber,
    pub(super) skus: Vec<Sku>,
    pub(super) index: HashMap<Sku, usize>,
    /// Cumulative popularity weights, for choosing a SKU.
    pub(super) popularity: Vec<f64>,
    pub(super) truth: Vec<Truth>,
    /// copies[channel][sku]
    pub(super) copies: Vec<Vec<ChannelCopy>>,
    /// Notices scheduled but not yet applied, per channel and SKU.
    pub(super) in_flight: Vec<Vec<u32>>,
    pub(super) last_poll: Vec<u64>,
    pub(super) channels: Vec<ChannelReport>,
    pub(super) origins: Vec<Origin>,
    /// Who records deliveries of goods.
    pub(super) warehouse: Origin,
    pub(super) due: BTreeMap<(u64, u64), Due>,
    pub(super) next_seq: u64,
    pub(super) now: u64,
    pub(super) rng: Rng,
    pub(super) notices_seen: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

impl World {
    pub(super) fn at(&mut self, when: u64, what: Due) {
        self.next_seq += 1;
        self.due.insert((when, self.next_seq), what);
    }

    pub(super) fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }

    /// Projects what the engine wrote and schedules each notice's deliveries.
    pub(super) async fn project(&mut self) -> Result<(), String> {
        self.projector
            .catch_up()
            .await
            .map_err(|e| format!("project: {e}"))?;
        while let Some(message) = self.notices.try_recv() {
            let HubMessage::Notice(notice) = message else {
                return Err("the notice hub cut the simulation off".into());
            };
            self.notices_seen += 1;
            let Some(&sku) = self.index.get(&notice.sku) else {
                continue;
            };
            let truth = &mut self.truth[sku];
            truth.version = notice.version;
            truth.available = notice.current.available;
            truth
                .changed_at
                .insert(notice.version, (self.now, notice.current.available));
            if self.args.sync == SyncMode::Push {
                let mean = self.args.push_latency.as_millis() as f64 / std::f64::consts::LN_2;
                for channel in 0..CHANNELS.len() {
                    let delay = self.rng.exponential_ms(mean);
                    self.in_flight[channel][sku] += 1;
                    self.at(
                        self.now.saturating_add(delay),
                        Due::Deliver {
                            channel,
                            sku,
                            version: notice.version,
                            available: notice.current.available,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Every channel's copy of every SKU from the read model (a stock-list read).
    pub(super) async fn poll(&mut self, channel: usize) -> Result<(), String> {
        let mut after = None;
        loop {
            let rows = self
                .models
                .stock_page(after.clone(), 500)
                .await
                .map_err(|e| format!("read the stock list: {e}"))?;
            let Some(last) = rows.last() else { break };
            after = Some(last.sku.clone());
            for row in rows {
                if let Some(&sku) = self.index.get(&row.sku) {
                    self.copies[channel][sku] = ChannelCopy {
                        version: row.version,
                        available: row.level.available,
                    };
                }
            }
        }
        self.last_poll[channel] = self.now;
        Ok(())
    }

    pub(super) fn choose_sku(&mut self) -> usize {
        let total = self.popularity.last().copied().unwrap_or(1.0);
        let draw = self.rng.unit() * total;
        self.popularity
            .partition_point(|&w| w <= draw)
            .min(self.skus.len() - 1)
    }

    pub(super) async fn arrive(&mut self, channel: usize) -> Result<(), String> {
        let sku = self.choose_sku();
        let qty = if self.rng.below(10) == 0 { 2 } else { 1 };
        let copy = self.copies[channel][sku];
        let truth = &self.truth[sku];
        // A copy is behind when what it shows differs from the truth (a commit moves the
        // version, not what is available); it has been since the first later version that
        // showed something else.
        let lag_ms = if copy.version >= truth.version || copy.available == truth.available {
            0
        } else {
            truth
                .changed_at
                .range(copy.version + 1..)
                .find(|(_, (_, available))| *available != copy.available)
                .map_or(0, |(_, (at, _))| self.now.saturating_sub(*at))
        };
        let known_age_ms = match self.args.sync {
            SyncMode::Push => lag_ms,
            SyncMode::Poll => self.now.saturating_sub(self.last_poll[channel]),
        };
        let truly_available = truth.available.is_none_or(|a| a >= qty);
        let c = &mut self.channels[channel];
        c.looks += 1;
        c.lags.push(lag_ms as f64 / 1000.0);
        if lag_ms > 0 {
            c.stale_looks += 1;
        }
        c.trust += (1.0 - known_age_ms as f64 / 1000.0 / TRUST_HORIZON_SECS).max(0.0);
        if copy.available.is_some_and(|a| a < qty) {
            if truly_available {
                c.missed += 1;
            }
            return Ok(());
        }
        c.attempts += 1;
        let options = ReserveOptions {
            ttl: Some(HOLD_TTL),
            origin: self.origins[channel].clone(),
            ..ReserveOptions::default()
        };
        match self
            .inventory
            .reserve(&self.skus[sku], Quantity::new(qty), options)
            .await
        {
            Ok(held) => {
                self.channels[channel].reserved += 1;
                let checkout = CHECKOUT_MS.0 + self.rng.below(CHECKOUT_MS.1 - CHECKOUT_MS.0);
                let pay = self.rng.unit() < self.args.commit_rate;
                self.at(
                    self.now.saturating_add(checkout),
                    Due::Checkout {
                        channel,
                        id: held.id,
                        pay,
                    },
                );
                self.project().await
            }
            Err(Error::Rejected {
                rejection: Rejection::InsufficientStock { .. } | Rejection::Short { .. },
                ..
            }) => {
                let c = &mut self.channels[channel];
                c.phantom += 1;
                if self.in_flight[channel][sku] > 0 {
                    c.phantom_in_flight += 1;
                }
                Ok(())
            }
            Err(e) => {
                self.error(e);
                Ok(())
            }
        }
    }

    pub(super) async fn handle(&mut self, what: Due) -> Result<(), String> {
        let end = self.args.duration.as_millis() as u64;
        match what {
            Due::Arrive(channel) => {
                self.arrive(channel).await?;
                let per_hour = f64::from(self.args.buyers_per_hour) * CHANNELS[channel].1;
                let next = self
                    .now
                    .saturating_add(self.rng.exponential_ms(3_600_000.0 / per_hour));
                if next < end {
                    self.at(next, Due::Arrive(channel));
                }
            }
            Due::Poll(channel) => {
                self.poll(channel).await?;
                let next = self
                    .now
                    .saturating_add(self.args.poll_interval.as_millis() as u64);
                if next < end {
                    self.at(next, Due::Poll(channel));
                }
            }
            Due::Deliver {
                channel,
                sku,
                version,
                available,
            } => {
                self.in_flight[channel][sku] -= 1;
                let copy = &mut self.copies[channel][sku];
                // Consumers keep the newest version: a late notice never rolls a copy back.
                if version > copy.version {
                    *copy = ChannelCopy { version, available };
                }
            }
            Due::Checkout { channel, id, pay } => {
                let origin = self.origins[channel].clone();
                let done = if pay {
                    self.inventory.commit(id, &origin).await
                } else {
                    self.inventory.release(id, &origin).await
                };
                match done {
                    Ok(_) => self.project().await?,
                    Err(e) => self.error(e),
                }
            }
            Due::Restock(sku) => {
                let delivery = Adjustment {
                    location: None,
                    change: StockChange::Delta(i64::try_from(self.args.stock).unwrap_or(i64::MAX)),
                    reason: "goods received".into(),
                    reference: None,
                    expected_version: None,
                };
                match self
                    .inventory
                    .adjust(&self.skus[sku], delivery, &self.warehouse)
                    .await
                {
                    Ok(_) => self.project().await?,
                    Err(e) => self.error(e),
                }
                let next = self
                    .now
                    .saturating_add(self.args.restock_every.as_millis() as u64);
                if next < end {
                    self.at(next, Due::Restock(sku));
                }
            }
        }
        Ok(())
    }
}

//! `stockade simulate multichannel`: sales channels that each show their own copy of the
//! stock, kept fresh by push (the notices) or by polling, and what the copies' staleness
//! costs.
//!
//! The run is in virtual time. A real engine decides every reservation (on a
//! [`ManualClock`], with an in-memory log or the SQLite log of `--data-dir`), and the real
//! projector turns each change into its notice. Around them, a discrete-event loop moves
//! the clock from one due thing to the next: a buyer arriving on a channel, a notice
//! reaching a channel, a channel polling, a checkout finishing, a delivery of goods. A day
//! of traffic therefore takes seconds however long the poll interval is.
//!
//! A buyer acts on their channel's copy. The copy says available → they reserve; a refusal
//! is an order attempted on **phantom stock**. The copy says sold out while there is
//! stock → a **missed sale**. A push channel applies a notice only if it is newer than its
//! copy (notices may overtake each other in delivery), so every phantom it sees has a
//! notice still in flight; those are counted apart.
//!
//! Per look, **staleness** is how long the copy has been behind the truth (0 when it is
//! current). The **AI freshness score** is the mean trust of an agent that trusts a listing
//! `1 − age/30 s` (not at all past 30 s), where age is what the channel can know: for a
//! poll, the time since the poll; for push, the lag itself (the notice stream's sequence
//! numbers tell a reader it has everything but what is in flight). Daily **revenue
//! leakage** = daily orders × phantom rate × (average order value + churn multiplier ×
//! customer lifetime value): each phantom loses the order and, that often, the customer.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use stockade_domain::{Channel, Quantity, Rejection, ReservationId, Sku, StockChange, Timestamp};
use stockade_engine::audit::check_log;
use stockade_engine::{
    Adjustment, EngineConfig, Error, Inventory, InventoryConfig, ManualClock, Origin,
    ReserveOptions, StoreConfig,
};
use stockade_projections::{HubMessage, HubSubscriber, NoticeHub, Projector, ReadModels};

use crate::args::{GOLDEN, parse_duration, parse_money, parse_share, splitmix};
use crate::report::Table;
use crate::simulate::register_run_skus;

/// The channels, and each one's share of the buyers.
const CHANNELS: [(&str, f64); 4] = [
    ("web", 0.35),
    ("marketplace", 0.30),
    ("pos", 0.15),
    ("assistant", 0.20),
];
/// An agent trusts a listing not at all past this age.
const TRUST_HORIZON_SECS: f64 = 30.0;
/// How long a hold lasts; every checkout finishes well before it.
const HOLD_TTL: Duration = Duration::from_secs(15 * 60);
/// A checkout takes between these (uniformly), then pays or cancels.
const CHECKOUT_MS: (u64, u64) = (30_000, 300_000);
/// Black Friday 2026, 00:00 UTC: where virtual time starts.
const START_MILLIS: u64 = 1_795_737_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Each change reaches every channel as a notice, after a delivery delay.
    Push,
    /// Each channel re-reads the stock list every --poll-interval.
    Poll,
}

#[derive(Debug, Args)]
pub struct Multichannel {
    /// How channels keep their copy of the stock.
    #[arg(long, value_enum, default_value_t = SyncMode::Push)]
    sync: SyncMode,
    /// With --sync poll: how often each channel re-reads (e.g. 15m, 90s, 1h).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    poll_interval: Duration,
    /// With --sync push: the median delay from a commit to a channel applying its notice
    /// (delays are exponential around it, so some notices overtake others).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    push_latency: Duration,
    /// Virtual time to simulate (e.g. 24h).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    duration: Duration,
    /// SKUs on sale.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    skus: u32,
    /// Units per SKU at the start, and added at every delivery of goods.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    stock: u64,
    /// Each SKU gets a delivery this often (at its own phase).
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    restock_every: Duration,
    /// Buyers per hour over all channels.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    buyers_per_hour: u32,
    /// Share of reservations paid for; the rest are cancelled at the end of checkout.
    #[arg(long, default_value_t = 0.8, value_parser = parse_share)]
    commit_rate: f64,
    /// Revenue model: orders per day.
    #[arg(long, default_value_t = 500)]
    daily_orders: u64,
    /// Revenue model: average order value.
    #[arg(long, default_value_t = 1500.0, value_parser = parse_money)]
    average_order_value: f64,
    /// Revenue model: customer lifetime value.
    #[arg(long, default_value_t = 8000.0, value_parser = parse_money)]
    customer_lifetime_value: f64,
    /// Revenue model: share of phantom-stock customers lost for good.
    #[arg(long, default_value_t = 0.3, value_parser = parse_share)]
    churn_multiplier: f64,
    /// Write the log to this directory's SQLite file (for `stockade audit`); in memory
    /// when omitted.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Seed of arrivals, choices and delays, to repeat a run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

impl Multichannel {
    pub fn json(&self) -> bool {
        self.json
    }
}

/// One channel's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelReport {
    pub channel: String,
    /// Buyers who looked at a listing.
    pub looks: u64,
    /// Looks that showed stock, so the buyer tried to reserve.
    pub attempts: u64,
    pub reserved: u64,
    /// Attempts refused: the copy showed stock that was gone.
    pub phantom: u64,
    /// Of those, attempts made while a notice of the change was on its way (push only).
    pub phantom_in_flight: u64,
    /// phantom / attempts.
    pub phantom_rate: f64,
    /// Looks that showed sold out while there was stock.
    pub missed: u64,
    /// Looks at a copy behind the truth.
    pub stale_looks: u64,
    pub staleness_p50_seconds: f64,
    pub staleness_p99_seconds: f64,
    pub staleness_max_seconds: f64,
    /// Mean trust of an agent in the listings it looked at (1 = all fresh).
    pub freshness_score: f64,
    pub leakage_per_day: f64,
    #[serde(skip)]
    lags: Vec<f64>,
    #[serde(skip)]
    trust: f64,
}

/// The figures of a run, under the keys `--json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub sync: SyncMode,
    pub poll_interval_seconds: Option<f64>,
    pub push_latency_ms: Option<u64>,
    pub simulated_hours: f64,
    pub skus: u32,
    pub stock_per_sku: u64,
    pub buyers_per_hour: u32,
    pub daily_orders: u64,
    pub average_order_value: f64,
    pub customer_lifetime_value: f64,
    pub churn_multiplier: f64,
    pub channels: Vec<ChannelReport>,
    pub total: ChannelReport,
    pub notices: u64,
    pub log_events: u64,
    pub oversold_units: u64,
    pub errors: u64,
    /// The first call that failed, if any did.
    pub first_error: Option<String>,
    pub log_violations: Vec<String>,
    pub elapsed_seconds: f64,
}

impl Report {
    /// Whether the engine kept its promises: no oversell, a clean log, no errors.
    pub fn passed(&self) -> bool {
        self.oversold_units == 0 && self.log_violations.is_empty() && self.errors == 0
    }

    pub fn table(&self) -> String {
        let sync = match self.sync {
            SyncMode::Push => format!(
                "push (notices, median delivery {} ms)",
                self.push_latency_ms.unwrap_or_default()
            ),
            SyncMode::Poll => format!(
                "poll every {}",
                human_seconds(self.poll_interval_seconds.unwrap_or_default())
            ),
        };
        let mut out = format!(
            "Multichannel, {sync}: {:.0} h simulated, {} SKUs × {} units, {} buyers/h\n\n",
            self.simulated_hours, self.skus, self.stock_per_sku, self.buyers_per_hour
        );
        let mut t = Table::new([
            "channel",
            "looks",
            "attempts",
            "phantom",
            "in flight",
            "phantom %",
            "missed",
            "stale looks",
            "staleness p50",
            "p99",
            "AI freshness",
            "leakage/day",
        ]);
        for c in self.channels.iter().chain(std::iter::once(&self.total)) {
            t.row([
                c.channel.clone(),
                c.looks.to_string(),
                c.attempts.to_string(),
                c.phantom.to_string(),
                c.phantom_in_flight.to_string(),
                format!("{:.2}", c.phantom_rate * 100.0),
                c.missed.to_string(),
                c.stale_looks.to_string(),
                human_seconds(c.staleness_p50_seconds),
                human_seconds(c.staleness_p99_seconds),
                format!("{:.3}", c.freshness_score),
                format!("{:.0}", c.leakage_per_day),
            ]);
        }
        out.push_str(&t.render());
        out.push_str(&format!(
            "\nleakage/day = {} orders × phantom rate × ({} + {} × {}); notices {}; log events {}; \
             oversold units {}; errors {}; {:.2} s\n",
            self.daily_orders,
            self.average_order_value,
            self.churn_multiplier,
            self.customer_lifetime_value,
            self.notices,
            self.log_events,
            self.oversold_units,
            self.errors,
            self.elapsed_seconds,
        ));
        if let Some(e) = &self.first_error {
            out.push_str(&format!("first error: {e}\n"));
        }
        for v in &self.log_violations {
            out.push_str(&format!("violation: {v}\n"));
        }
        out
    }
}

fn human_seconds(s: f64) -> String {
    if s == 0.0 {
        "0".into()
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// SplitMix64 as a sequence: small, fast and well mixed; the run needs repeatability,
/// not secrecy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        splitmix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with this mean, in milliseconds (at least 1).
    fn exponential_ms(&mut self, mean_ms: f64) -> u64 {
        let draw = -mean_ms * (1.0 - self.unit()).ln();
        (draw.round() as u64).max(1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Something due at a virtual instant.
#[derive(Debug)]
enum Due {
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
struct ChannelCopy {
    version: u64,
    /// `None`: unlimited.
    available: Option<u64>,
}

/// The truth about one SKU, as the notices tell it.
#[derive(Debug, Default)]
struct Truth {
    version: u64,
    available: Option<u64>,
    /// Each version's instant (virtual ms) and availability, for the lag of a copy at an
    /// older version.
    changed_at: BTreeMap<u64, (u64, Option<u64>)>,
}

struct World {
    args: Multichannel,
    inventory: Inventory,
    clock: ManualClock,
    projector: Projector,
    models: ReadModels,
    notices: HubSubscriber,
    skus: Vec<Sku>,
    index: HashMap<Sku, usize>,
    /// Cumulative popularity weights, for choosing a SKU.
    popularity: Vec<f64>,
    truth: Vec<Truth>,
    /// copies[channel][sku]
    copies: Vec<Vec<ChannelCopy>>,
    /// Notices scheduled but not yet applied, per channel and SKU.
    in_flight: Vec<Vec<u32>>,
    last_poll: Vec<u64>,
    channels: Vec<ChannelReport>,
    origins: Vec<Origin>,
    /// Who records deliveries of goods.
    warehouse: Origin,
    due: BTreeMap<(u64, u64), Due>,
    next_seq: u64,
    now: u64,
    rng: Rng,
    notices_seen: u64,
    errors: u64,
    first_error: Option<String>,
}

impl World {
    fn at(&mut self, when: u64, what: Due) {
        self.next_seq += 1;
        self.due.insert((when, self.next_seq), what);
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }

    /// Projects what the engine wrote and schedules each notice's deliveries.
    async fn project(&mut self) -> Result<(), String> {
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
    async fn poll(&mut self, channel: usize) -> Result<(), String> {
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

    fn choose_sku(&mut self) -> usize {
        let total = self.popularity.last().copied().unwrap_or(1.0);
        let draw = self.rng.unit() * total;
        self.popularity
            .partition_point(|&w| w <= draw)
            .min(self.skus.len() - 1)
    }

    async fn arrive(&mut self, channel: usize) -> Result<(), String> {
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

    async fn handle(&mut self, what: Due) -> Result<(), String> {
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

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn finish(c: &mut ChannelReport, args: &Multichannel, share: f64) {
    c.lags.sort_by(f64::total_cmp);
    c.staleness_p50_seconds = percentile(&c.lags, 50.0);
    c.staleness_p99_seconds = percentile(&c.lags, 99.0);
    c.staleness_max_seconds = c.lags.last().copied().unwrap_or(0.0);
    c.phantom_rate = if c.attempts == 0 {
        0.0
    } else {
        c.phantom as f64 / c.attempts as f64
    };
    c.freshness_score = if c.looks == 0 {
        1.0
    } else {
        c.trust / c.looks as f64
    };
    c.leakage_per_day = args.daily_orders as f64
        * share
        * c.phantom_rate
        * (args.average_order_value + args.churn_multiplier * args.customer_lifetime_value);
}

pub async fn run(args: Multichannel) -> Result<Report, String> {
    let started = Instant::now();
    let end = u64::try_from(args.duration.as_millis()).map_err(|_| "--duration is too long")?;
    let clock = ManualClock::new(Timestamp::from_millis(START_MILLIS));
    let store = match &args.data_dir {
        Some(dir) => StoreConfig::Sqlite {
            data_dir: dir.clone(),
        },
        None => StoreConfig::Memory,
    };
    let inventory = Inventory::open(
        InventoryConfig::with_store(store)
            .engine(EngineConfig::default())
            .clock(Arc::new(clock.clone())),
    )
    .await
    .map_err(|e| format!("open the engine: {e}"))?;
    let models = ReadModels::in_memory().map_err(|e| format!("open the read models: {e}"))?;
    let hub = NoticeHub::new();
    let notices = hub.subscribe(1 << 20);
    let mut projector = Projector::new(inventory.store(), models.clone(), hub);
    let skus = register_run_skus(&inventory, "MC", args.skus, 4, args.stock).await?;
    projector
        .catch_up()
        .await
        .map_err(|e| format!("project: {e}"))?;
    // A few SKUs sell most: weight 1 / rank^0.8.
    let mut total = 0.0;
    let popularity = (0..skus.len())
        .map(|rank| {
            total += 1.0 / ((rank + 1) as f64).powf(0.8);
            total
        })
        .collect();
    let origins = CHANNELS
        .iter()
        .map(|(name, _)| Channel::new(*name).map(Origin::channel))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let n = skus.len();
    let mut world = World {
        index: skus
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, s)| (s, i))
            .collect(),
        skus,
        popularity,
        truth: (0..n).map(|_| Truth::default()).collect(),
        copies: vec![vec![ChannelCopy::default(); n]; CHANNELS.len()],
        in_flight: vec![vec![0; n]; CHANNELS.len()],
        last_poll: vec![0; CHANNELS.len()],
        channels: CHANNELS
            .iter()
            .map(|(name, _)| ChannelReport {
                channel: (*name).to_owned(),
                ..ChannelReport::default()
            })
            .collect(),
        origins,
        warehouse: Origin::channel(Channel::new("warehouse").map_err(|e| e.to_string())?),
        due: BTreeMap::new(),
        next_seq: 0,
        now: 0,
        rng: Rng(args.seed),
        notices_seen: 0,
        errors: 0,
        first_error: None,
        args,
        inventory,
        clock,
        projector,
        models,
        notices,
    };
    // Registrations are notices too; then every channel starts from a fresh read.
    world.project().await?;
    world.due.clear();
    for (channel, (_, share)) in CHANNELS.iter().enumerate() {
        world.in_flight[channel].iter_mut().for_each(|n| *n = 0);
        world.poll(channel).await?;
        let per_hour = f64::from(world.args.buyers_per_hour) * share;
        let first = world.rng.exponential_ms(3_600_000.0 / per_hour);
        world.at(first, Due::Arrive(channel));
        if world.args.sync == SyncMode::Poll {
            let interval = world.args.poll_interval.as_millis() as u64;
            let phase = 1 + world.rng.below(interval);
            world.at(phase, Due::Poll(channel));
        }
    }
    for sku in 0..n {
        let every = world.args.restock_every.as_millis() as u64;
        let phase = 1 + world.rng.below(every);
        world.at(phase, Due::Restock(sku));
    }

    let bar = ProgressBar::new(end / 1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} simulate [{bar:40}] {pos}/{len} virtual s ({elapsed} elapsed)",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    while let Some(((when, _), what)) = world.due.pop_first() {
        if when >= end {
            break;
        }
        let step = when.saturating_sub(world.now);
        world.clock.advance(Duration::from_millis(step));
        world.now = when;
        if when % 60_000 < step {
            bar.set_position(when / 1000);
        }
        world.handle(what).await?;
    }
    bar.finish_and_clear();

    let log = check_log(&world.inventory.store())
        .await
        .map_err(|e| format!("read the log back: {e}"))?;
    world.inventory.clone().shutdown().await;
    let args = &world.args;
    let mut total = ChannelReport {
        channel: "all".into(),
        ..ChannelReport::default()
    };
    for (c, (_, share)) in world.channels.iter_mut().zip(CHANNELS) {
        total.looks += c.looks;
        total.attempts += c.attempts;
        total.reserved += c.reserved;
        total.phantom += c.phantom;
        total.phantom_in_flight += c.phantom_in_flight;
        total.missed += c.missed;
        total.stale_looks += c.stale_looks;
        total.lags.extend_from_slice(&c.lags);
        total.trust += c.trust;
        finish(c, args, share);
    }
    finish(&mut total, args, 1.0);
    Ok(Report {
        sync: args.sync,
        poll_interval_seconds: (args.sync == SyncMode::Poll)
            .then_some(args.poll_interval.as_secs_f64()),
        push_latency_ms: (args.sync == SyncMode::Push)
            .then_some(args.push_latency.as_millis() as u64),
        simulated_hours: args.duration.as_secs_f64() / 3600.0,
        skus: args.skus,
        stock_per_sku: args.stock,
        buyers_per_hour: args.buyers_per_hour,
        daily_orders: args.daily_orders,
        average_order_value: args.average_order_value,
        customer_lifetime_value: args.customer_lifetime_value,
        churn_multiplier: args.churn_multiplier,
        channels: world.channels,
        total,
        notices: world.notices_seen,
        log_events: log.events,
        oversold_units: log.oversold_units,
        errors: world.errors,
        first_error: world.first_error,
        log_violations: log.violations,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }
}

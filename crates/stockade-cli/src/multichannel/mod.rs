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
//!
//! Layout: this file has the options and [`run`], the loop; `world` has what the loop
//! moves (the channels' copies, the truth as the notices tell it, what is due next);
//! `report` turns the counts into the figures and the table.

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

mod report;
mod world;

use report::finish;
pub use report::{ChannelReport, Report};
use world::{ChannelCopy, Due, Rng, Truth, World};

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
    let skus = register_run_skus(&inventory, "MC", args.skus, 4, args.stock, 1).await?;
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

//! `stockade simulate flash-sale`: real concurrent buyers against a real engine, then an
//! independent check of the log.
//!
//! Each buyer reserves, then commits or walks away (the abandon rate); walked-away holds
//! lapse at their TTL and their stock goes back on sale. With `--kit-share`, that share of
//! the buyers buys a kit made of the sale's first two SKUs instead (one of each, or two of
//! the only one), so the kit's orders and single-SKU buyers compete for the same units.
//! With `--locations`, each SKU's stock is spread over that many locations, and half the
//! single-SKU buyers must have their units from one location they name (the other half
//! let the SKU's writer place them), so buyers race for the last units at each location
//! and the log check judges every location on its own stock. With `--backorder-limit`, each
//! SKU sells that many units beyond on hand as backorders, and with `--incoming` a
//! purchase order of that many units per SKU arrives in parts during the sale (a
//! preorder launch, with `--stock 0`): a buyer whose line waits for stock keeps the hold
//! and commits once an arrival has filled it; the report says how many waited, how many
//! were filled, and the log check holds the fills to line order. With `--per-customer`,
//! every buyer is a customer and each may hold and buy that many units at most; with
//! `--bots`, a share of the attempts comes from a few bots placing order after order; with
//! `--waitlist`, a buyer refused for want of stock joins the SKU's waitlist, and freed
//! stock is held for the first in line, who buys it (or walks away, at the abandon rate).
//! The report then shows units per customer, the bots' take, the waitlist's conversions
//! and how long freed stock waited for its next holder, beside a second run of the same
//! sale without the limit and the waitlist. After the last buyer, the run
//! waits for the abandoned holds to lapse, folds the whole log with the independent
//! checker and compares it with what the buyers were told.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use stockade_domain::{
    Component, LocationConfig, LocationId, Placement, PoolConfig, Quantity, ReservationId, Sku,
};
use stockade_engine::audit::check_log_of;
use stockade_engine::{
    EngineConfig, Error, Inventory, InventoryConfig, Line, Origin, Percentiles, ReserveOptions,
    SQLITE_FILE, StoreConfig,
};
use stockade_esdb::{EsdbConfig, EsdbStore};
use stockade_postgres::{PgConfig, PostgresStore};
use stockade_store::{EventStore, SqliteStore};

use crate::args::{GOLDEN, parse_share, splitmix};
use crate::fairness::{self, Fairness, Waiters, WaitlistStats};
use crate::report::Table;

/// Longest TTL the run waits for, after the last buyer, to see abandoned holds lapse.
const MAX_WAIT_FOR_LAPSE_SECS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// In memory: nothing is written to disk.
    Memory,
    /// The embedded SQLite log, with an fsync per commit.
    Sqlite,
    /// EventStoreDB at --esdb-url.
    Esdb,
    /// PostgreSQL at --pg-url, in the schema --pg-schema.
    Postgres,
}

#[derive(Debug, Clone, Args)]
pub struct FlashSale {
    /// SKUs on sale; buyers are spread over them evenly.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    skus: u32,
    /// Units on hand per SKU.
    #[arg(long, default_value_t = 50_000)]
    stock: u64,
    /// Buyers in total; each tries once.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    buyers: u64,
    /// Buyers shopping at the same time.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// Units each buyer reserves.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    qty: u64,
    /// Seconds a reservation holds before it lapses (the run waits for abandoned holds to
    /// lapse when this is at most 30).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    ttl: u64,
    /// Share of buyers who reserve and never come back (0 to 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_share)]
    abandon_rate: f64,
    /// Share of buyers who buy a kit of the sale's first two SKUs instead (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    kit_share: f64,
    /// Locations each SKU's stock is spread over, evenly (1 to 1000). Above 1, half the
    /// buyers name a location they must be served from.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    locations: u32,
    /// Units each SKU may sell beyond on hand, as backorders filled first in, first out
    /// as stock arrives (one location only).
    #[arg(long, default_value_t = 0)]
    backorder_limit: u64,
    /// Units per SKU expected from a supplier when the sale opens, arriving during it in
    /// --arrivals parts, one every --arrival-every-ms (one location only).
    #[arg(long, default_value_t = 0)]
    incoming: u64,
    /// Parts the incoming stock arrives in.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    arrivals: u64,
    /// Milliseconds between arrivals, the first one after the sale opens.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    arrival_every_ms: u64,
    /// Units one customer may hold and buy during the sale (a purchase limit over a day,
    /// across every order); 0: no limit.
    #[arg(long, default_value_t = 0)]
    per_customer: u64,
    /// Bots: a few customers who place order after order, making --bot-share of the
    /// attempts (they never walk away from a hold).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    bots: u64,
    /// Share of the attempts made by bots (0 to 1).
    #[arg(long, default_value_t = 0.5, value_parser = parse_share)]
    bot_share: f64,
    /// A buyer refused for want of stock joins the SKU's waitlist: freed stock is held for
    /// the first in line, who buys it or walks away (the abandon rate).
    #[arg(long)]
    waitlist: bool,
    /// Seconds a waitlist hold lasts before it passes to the next in line.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    waitlist_hold: u64,
    /// With bots, a limit or a waitlist, skip the second run of the same sale without the
    /// limit and the waitlist (the comparison).
    #[arg(long)]
    no_compare: bool,
    /// Where the events go.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// Directory for the SQLite log (with --store sqlite); a temporary one, deleted
    /// afterwards, when omitted. Each run registers its own SKUs and checks only those, so
    /// runs may share a directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// EventStoreDB connection string (with --store esdb), e.g.
    /// esdb://localhost:2113?tls=false, or a cluster's hosts.
    #[arg(long, env = "STOCKADE_ESDB_URL", hide_env_values = true)]
    esdb_url: Option<String>,
    /// Prefix for the run's streams in EventStoreDB, to keep simulations apart from
    /// production SKUs; the run checks only its own SKUs either way.
    #[arg(long, default_value = "")]
    esdb_namespace: String,
    /// PostgreSQL connection string (with --store postgres), e.g.
    /// postgres://user@localhost:5432/shop.
    #[arg(long, env = "STOCKADE_PG_URL", hide_env_values = true)]
    pg_url: Option<String>,
    /// The schema of the run's log in PostgreSQL (created if missing); keep simulations
    /// out of production's schema. The run checks only its own SKUs either way.
    #[arg(long, default_value = "stockade_simulation")]
    pg_schema: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Seed of the abandon decisions, to repeat a run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

impl FlashSale {
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether the URL came from STOCKADE_ESDB_URL rather than the command line: a URL
    /// in the environment is no mistake when another store was chosen.
    fn esdb_url_from_env(&self) -> bool {
        std::env::var("STOCKADE_ESDB_URL").ok() == self.esdb_url
    }

    /// Whether buyers are customers: with bots, a limit or a waitlist.
    fn fair(&self) -> bool {
        self.bots > 0 || self.per_customer > 0 || self.waitlist
    }

    /// The same sale without the limit and the waitlist, quietly: the comparison.
    fn without_rules(&self) -> FlashSale {
        FlashSale {
            per_customer: 0,
            waitlist: false,
            no_compare: true,
            json: true,
            data_dir: None,
            ..self.clone()
        }
    }
}

/// The figures of a run, under the keys `--json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub store: &'static str,
    pub skus: u32,
    pub stock_per_sku: u64,
    /// Locations per SKU (1: the default location only).
    pub locations: u32,
    /// Reservations of buyers who named their location.
    pub reserved_at_named_location: u64,
    pub buyers: u64,
    pub concurrency: u64,
    pub attempts: u64,
    pub reserved: u64,
    /// Of `reserved`, the kits (each held as its components).
    pub kits_reserved: u64,
    pub committed: u64,
    pub abandoned: u64,
    /// Holds of the abandoned reservations: `abandoned`, plus a kit's extra components.
    pub abandoned_holds: u64,
    /// Expiries in the log (one per hold).
    pub expired: u64,
    pub rejected: u64,
    /// Units each SKU could sell beyond on hand, and units expected per SKU.
    pub backorder_limit: u64,
    pub incoming_per_sku: u64,
    /// Reservations whose line waited for stock when made, and their waiting units.
    pub backordered: u64,
    pub backordered_units: u64,
    /// `BackorderFilled` events in the log (a hold filled by two arrivals counts twice).
    pub fills: u64,
    /// Waiting reservations committed once filled, and those still waiting at the end.
    pub committed_after_fill: u64,
    pub still_waiting: u64,
    /// Units per customer (0: no limit), bots, their attempts, and refusals by the limit.
    pub per_customer: u64,
    pub bots: u64,
    pub bot_attempts: u64,
    pub refused_by_limit: u64,
    /// The waitlist's life, when the buyers had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waitlist: Option<WaitlistStats>,
    /// Places still waiting when the run ended.
    pub still_on_waitlist: u64,
    /// What the log says about who bought what, when buyers were customers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<Fairness>,
    /// The same sale without the limit and the waitlist: what the bots bought, and the
    /// most one customer bought.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub without_rules: Option<Fairness>,
    pub errors: u64,
    pub oversold: u64,
    pub missing_acknowledged: u64,
    pub missing_committed: u64,
    pub log_violations: Vec<String>,
    pub elapsed_seconds: f64,
    pub durable_reservations_per_second: f64,
    pub reserve_latency_ms: Percentiles,
    pub mean_batch: f64,
    pub max_batch: u64,
    pub appends: u64,
}

impl Report {
    /// Whether the run kept every promise, and met no error on the way.
    pub fn passed(&self) -> bool {
        let within_limit = self.per_customer == 0
            || self
                .fairness
                .as_ref()
                .is_some_and(|f| f.max_units_per_customer <= self.per_customer);
        within_limit
            && self.oversold == 0
            && self.missing_acknowledged == 0
            && self.missing_committed == 0
            && self.log_violations.is_empty()
            && self.errors == 0
    }

    pub fn table(&self) -> String {
        let mut t = Table::new(["", ""]);
        let n = |v: u64| v.to_string();
        t.row(["store", self.store]);
        t.row([
            "SKUs × stock".to_string(),
            format!("{} × {}", self.skus, self.stock_per_sku),
        ]);
        t.row([
            "buyers (concurrent)".to_string(),
            format!("{} ({})", self.buyers, self.concurrency),
        ]);
        t.row(["attempts".to_string(), n(self.attempts)]);
        t.row(["reserved".to_string(), n(self.reserved)]);
        if self.kits_reserved > 0 {
            t.row(["  of which kits".to_string(), n(self.kits_reserved)]);
        }
        if self.locations > 1 {
            t.row([
                "  of which at a named location".to_string(),
                format!(
                    "{} (of {} locations per SKU)",
                    self.reserved_at_named_location, self.locations
                ),
            ]);
        }
        t.row(["committed".to_string(), n(self.committed)]);
        if self.backorder_limit > 0 || self.incoming_per_sku > 0 {
            t.row([
                "backorder limit / incoming per SKU".to_string(),
                format!("{} / {}", self.backorder_limit, self.incoming_per_sku),
            ]);
            t.row([
                "held backordered (units)".to_string(),
                format!("{} ({})", self.backordered, self.backordered_units),
            ]);
            t.row(["backorders filled (events)".to_string(), n(self.fills)]);
            t.row([
                "  committed once filled / still waiting".to_string(),
                format!("{} / {}", self.committed_after_fill, self.still_waiting),
            ]);
        }
        if let Some(f) = &self.fairness {
            let limit = match self.per_customer {
                0 => "no limit".to_string(),
                n => format!("limit {n}"),
            };
            t.row([
                "units per customer, most (limit)".to_string(),
                format!("{} ({limit})", f.max_units_per_customer),
            ]);
            t.row([
                "customers who bought".to_string(),
                n(f.customers_who_bought),
            ]);
            if self.bots > 0 {
                t.row([
                    "bots (share of attempts)".to_string(),
                    format!("{} ({} attempts)", self.bots, self.bot_attempts),
                ]);
                t.row([
                    "units bought by bots / by people".to_string(),
                    format!("{} / {}", f.bot_units, f.person_units),
                ]);
            }
            if let Some(w) = &self.without_rules {
                t.row([
                    "  without limit and waitlist: bots / people".to_string(),
                    format!(
                        "{} / {} (most per customer {})",
                        w.bot_units, w.person_units, w.max_units_per_customer
                    ),
                ]);
            }
            t.row(["refused by the limit".to_string(), n(self.refused_by_limit)]);
        }
        if let Some(w) = &self.waitlist {
            t.row([
                "waitlist joined (refused)".to_string(),
                format!("{} ({})", w.joined, w.refused),
            ]);
            t.row([
                "  holds served → bought / walked away".to_string(),
                format!(
                    "{} → {} / {}",
                    w.holds_served, w.holds_bought, w.holds_walked_away
                ),
            ]);
            t.row([
                "  still waiting at the end".to_string(),
                n(self.still_on_waitlist),
            ]);
            if let Some(f) = &self.fairness {
                let p = &f.freed_to_hold_ms;
                t.row([
                    "  freed → held for the next, p50 / p99 / max".to_string(),
                    format!("{:.0} / {:.0} / {:.0} ms", p.p50, p.p99, p.max),
                ]);
            }
        }
        t.row([
            "abandoned → expired".to_string(),
            if self.abandoned_holds == self.abandoned {
                format!("{} → {}", self.abandoned, self.expired)
            } else {
                format!(
                    "{} ({} holds) → {} holds",
                    self.abandoned, self.abandoned_holds, self.expired
                )
            },
        ]);
        t.row(["rejected (sold out)".to_string(), n(self.rejected)]);
        t.row(["errors".to_string(), n(self.errors)]);
        t.row(["oversold (from the log)".to_string(), n(self.oversold)]);
        t.row([
            "acknowledged but missing (holds / sales)".to_string(),
            format!("{} / {}", self.missing_acknowledged, self.missing_committed),
        ]);
        t.row([
            "durable reservations/s".to_string(),
            format!("{:.0}", self.durable_reservations_per_second),
        ]);
        let p = &self.reserve_latency_ms;
        t.row([
            "reserve latency p50 / p99 / p999".to_string(),
            format!("{:.2} / {:.2} / {:.2} ms", p.p50, p.p99, p.p999),
        ]);
        t.row([
            "batch size mean / max".to_string(),
            format!("{:.1} / {}", self.mean_batch, self.max_batch),
        ]);
        t.row(["appends".to_string(), n(self.appends)]);
        t.row([
            "elapsed".to_string(),
            format!("{:.2} s", self.elapsed_seconds),
        ]);
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        t.row(["verdict".to_string(), verdict.to_string()]);
        let mut out = t.render_untitled();
        for v in &self.log_violations {
            out.push_str(&format!("violation: {v}\n"));
        }
        out
    }
}

/// What the buyers saw.
#[derive(Default)]
struct Outcomes {
    latencies_us: Vec<u64>,
    acknowledged: Vec<(Sku, ReservationId)>,
    commits: Vec<(Sku, ReservationId)>,
    reserved: u64,
    kits: u64,
    /// Reservations of buyers who named their location.
    at_named: u64,
    committed: u64,
    /// Holds of the abandoned reservations (a kit's are its components'): the expiries
    /// the log must come to show.
    abandoned_holds: u64,
    abandoned: u64,
    rejected: u64,
    /// Reservations that waited for stock (and their units), to commit once filled.
    backordered: u64,
    backordered_units: u64,
    waiting: Vec<(Vec<Sku>, ReservationId)>,
    bot_attempts: u64,
    refused_by_limit: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Registers `count` physical SKUs of `stock` units each, named `{prefix}-{run}-{n}` with
/// `n` zero-padded to `width`, each at `locations` locations (`loc-0`, `loc-1`, ... in
/// that priority, the stock split evenly, the remainder at the first), or at the default
/// location when `locations` is 1. The run id is new each time, so runs that share a data
/// directory never share a SKU, and each checks only its own.
pub async fn register_run_skus(
    inventory: &Inventory,
    prefix: &str,
    count: u32,
    width: usize,
    stock: u64,
    locations: u32,
) -> Result<Vec<Sku>, String> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let run_id = run_id.get(..8).unwrap_or("run");
    let skus: Vec<Sku> = (0..count)
        .map(|n| Sku::new(format!("{prefix}-{run_id}-{n:0width$}")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    for sku in &skus {
        let pool = match locations {
            0 | 1 => PoolConfig::physical(Quantity::new(stock), Quantity::ZERO),
            n => {
                let (each, extra) = (stock / u64::from(n), stock % u64::from(n));
                let at = (0..n)
                    .map(|i| {
                        Ok(LocationConfig {
                            location: location_name(i)?,
                            on_hand: Quantity::new(each + if i == 0 { extra } else { 0 }),
                            safety_stock: Quantity::ZERO,
                            priority: i,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                PoolConfig::at_locations(at)
            }
        };
        inventory
            .register(sku, pool, &Origin::default())
            .await
            .map_err(|e| format!("register {sku}: {e}"))?;
    }
    Ok(skus)
}

/// A buyer's coin: deterministic per (seed, buyer), so a run can be repeated.
fn abandons(seed: u64, buyer: u64, rate: f64) -> bool {
    // SplitMix64: a well-mixed 64-bit hash of the pair.
    let z = splitmix(seed ^ buyer.wrapping_mul(GOLDEN));
    rate >= 1.0 || (z as f64 / u64::MAX as f64) < rate
}

/// The run's `i`th location.
fn location_name(i: u32) -> Result<LocationId, String> {
    LocationId::new(format!("loc-{i}")).map_err(|e| e.to_string())
}

/// The location a buyer insists on, if any: with several locations, half the buyers name
/// one (a third coin, then an even pick).
fn named_location(seed: u64, buyer: u64, locations: u32) -> Option<LocationId> {
    if locations < 2 || !abandons(splitmix(seed ^ 0x6c6f_6373), buyer, 0.5) {
        return None;
    }
    let pick = splitmix(seed ^ 0x7069_636b ^ buyer.wrapping_mul(GOLDEN)) % u64::from(locations);
    location_name(u32::try_from(pick).unwrap_or(0)).ok()
}

/// Whether a buyer buys the kit: a second coin, independent of the first.
fn buys_kit(seed: u64, buyer: u64, share: f64) -> bool {
    abandons(splitmix(seed ^ 0x6b69_7473), buyer, share)
}

/// Registers the run's kit: one each of the first two SKUs, or two of the only one.
async fn register_kit(inventory: &Inventory, skus: &[Sku]) -> Result<Sku, String> {
    let components = match skus {
        [one] => vec![Component {
            sku: one.clone(),
            qty: Quantity::new(2),
        }],
        [one, two, ..] => [one, two]
            .into_iter()
            .map(|sku| Component {
                sku: sku.clone(),
                qty: Quantity::new(1),
            })
            .collect(),
        [] => return Err("a kit needs a SKU to be made of".into()),
    };
    let kit = Sku::new(format!("{}-KIT", skus[0])).map_err(|e| e.to_string())?;
    inventory
        .register(&kit, PoolConfig::Kit { components }, &Origin::default())
        .await
        .map_err(|e| format!("register {kit}: {e}"))?;
    Ok(kit)
}

/// Where a finished run reads its log back from: a fresh handle, not the engine's.
enum LogSource {
    /// The engine's own store (memory: nothing else could read it).
    Same,
    Sqlite(PathBuf),
    Esdb(EsdbConfig),
    Postgres(PgConfig),
}

/// Runs the sale; with bots, a limit or a waitlist, first the same sale without the limit
/// and the waitlist, for the report's comparison.
pub async fn run(args: FlashSale) -> Result<Report, String> {
    let baseline = match args.fair() && (args.per_customer > 0 || args.waitlist) && !args.no_compare
    {
        true => {
            if !args.json {
                eprintln!("first, the same sale without the limit and the waitlist…");
            }
            Some(run_once(args.without_rules()).await?)
        }
        false => None,
    };
    let mut report = run_once(args).await?;
    report.without_rules = baseline.and_then(|b| b.fairness);
    Ok(report)
}

async fn run_once(args: FlashSale) -> Result<Report, String> {
    let temp;
    if args.store != StoreKind::Sqlite && args.data_dir.is_some() {
        return Err("--data-dir needs --store sqlite".into());
    }
    if args.store != StoreKind::Esdb && args.esdb_url.is_some() && !args.esdb_url_from_env() {
        return Err("--esdb-url needs --store esdb".into());
    }
    if args.store != StoreKind::Postgres
        && args.pg_url.is_some()
        && std::env::var("STOCKADE_PG_URL").ok() != args.pg_url
    {
        return Err("--pg-url needs --store postgres".into());
    }
    let store = match (args.store, &args.data_dir) {
        (StoreKind::Memory, _) => StoreConfig::Memory,
        (StoreKind::Sqlite, Some(dir)) => StoreConfig::Sqlite {
            data_dir: dir.clone(),
        },
        (StoreKind::Sqlite, None) => {
            temp = tempfile::tempdir().map_err(|e| format!("create a temporary directory: {e}"))?;
            StoreConfig::Sqlite {
                data_dir: temp.path().to_path_buf(),
            }
        }
        (StoreKind::Postgres, _) => {
            let url = args.pg_url.clone().ok_or(
                "--store postgres needs --pg-url (or STOCKADE_PG_URL), e.g. postgres://user@localhost:5432/shop",
            )?;
            let config = PgConfig::new(url).schema(args.pg_schema.clone());
            config.validate().map_err(|e| e.to_string())?;
            StoreConfig::Postgres(config)
        }
        (StoreKind::Esdb, _) => {
            let url = args.esdb_url.clone().ok_or(
                "--store esdb needs --esdb-url (or STOCKADE_ESDB_URL), e.g. esdb://localhost:2113?tls=false",
            )?;
            let config = EsdbConfig::new(url).namespace(args.esdb_namespace.clone());
            config.validate().map_err(|e| e.to_string())?;
            StoreConfig::EventStoreDb(config)
        }
    };
    let log_source = match &store {
        StoreConfig::Sqlite { data_dir } => LogSource::Sqlite(data_dir.join(SQLITE_FILE)),
        StoreConfig::EventStoreDb(config) => LogSource::Esdb(config.clone()),
        StoreConfig::Postgres(config) => LogSource::Postgres(config.clone()),
        _ => LogSource::Same,
    };
    let engine = EngineConfig {
        // Buyers beyond the mailbox bound would be refused as overloaded; a simulation
        // wants to measure the queue, not the refusal.
        mailbox_capacity: (args.concurrency as usize).saturating_mul(2).max(1024),
        ..EngineConfig::default()
    };
    let inventory = Inventory::open(InventoryConfig::with_store(store).engine(engine))
        .await
        .map_err(|e| format!("open the inventory: {e}"))?;

    if (args.backorder_limit > 0 || args.incoming > 0) && args.locations > 1 {
        return Err("--backorder-limit and --incoming need --locations 1".into());
    }
    let skus =
        register_run_skus(&inventory, "SALE", args.skus, 0, args.stock, args.locations).await?;
    let receipt = stockade_domain::ReceiptRef::new("PO-LAUNCH").map_err(|e| e.to_string())?;
    for sku in &skus {
        if args.backorder_limit > 0 {
            inventory
                .set_backorder_limit(
                    sku,
                    Quantity::new(args.backorder_limit),
                    None,
                    &Origin::default(),
                )
                .await
                .map_err(|e| format!("backorder limit of {sku}: {e}"))?;
        }
        if args.incoming > 0 {
            let eta = inventory
                .stock(sku)
                .await
                .map_err(|e| e.to_string())?
                .as_of
                .checked_add(Duration::from_millis(args.arrivals * args.arrival_every_ms))
                .ok_or("the arrival time is out of range")?;
            let expected = stockade_engine::Receipt {
                reference: receipt.clone(),
                qty: Quantity::new(args.incoming),
                eta,
                location: None,
            };
            inventory
                .expect_receipt(sku, expected, &Origin::default())
                .await
                .map_err(|e| format!("receipt of {sku}: {e}"))?;
        }
    }
    let kit = match args.kit_share > 0.0 {
        true => Some(register_kit(&inventory, &skus).await?),
        false => None,
    };
    if args.per_customer > 0 || args.waitlist {
        let rules = stockade_engine::FairSelling {
            per_customer: (args.per_customer > 0).then(|| Quantity::new(args.per_customer)),
            window: Duration::from_secs(24 * 3600),
            waitlist_hold: Duration::from_secs(args.waitlist_hold),
        };
        for sku in &skus {
            inventory
                .set_fair_selling(sku, rules, &Origin::default())
                .await
                .map_err(|e| format!("fair-selling rules of {sku}: {e}"))?;
        }
    }
    // Waitlist holds are claimed as the log shows them served.
    let waiters = Arc::new(std::sync::Mutex::new(Waiters::default()));
    let stop_claiming = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let claimer = match args.waitlist {
        true => {
            let from = inventory
                .store()
                .head()
                .await
                .map_err(|e| format!("read the log's head: {e}"))?;
            Some(tokio::spawn(fairness::claim(
                inventory.clone(),
                from,
                waiters.clone(),
                stop_claiming.clone(),
            )))
        }
        false => None,
    };

    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.buyers)
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} buyers {pos}/{len} {wide_bar} {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let before = inventory.stats();
    let next = Arc::new(AtomicUsize::new(0));
    let skus = Arc::new(skus);
    let started = Instant::now();
    // The purchase order arrives in parts while the buyers shop.
    let arrivals = (args.incoming > 0).then(|| {
        let (inventory, skus, receipt) = (inventory.clone(), skus.clone(), receipt.clone());
        let (incoming, parts, every) = (args.incoming, args.arrivals, args.arrival_every_ms);
        tokio::spawn(async move {
            for part in 0..parts {
                tokio::time::sleep(Duration::from_millis(every)).await;
                let qty = incoming / parts
                    + if part + 1 == parts {
                        incoming % parts
                    } else {
                        0
                    };
                if qty == 0 {
                    continue;
                }
                for sku in skus.iter() {
                    inventory
                        .receive_receipt(
                            sku,
                            receipt.clone(),
                            Some(Quantity::new(qty)),
                            &Origin::default(),
                        )
                        .await
                        .map_err(|e| format!("arrival at {sku}: {e}"))?;
                }
            }
            Ok::<(), String>(())
        })
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (inventory, next, skus, progress, kit, waiters) = (
                inventory.clone(),
                next.clone(),
                skus.clone(),
                progress.clone(),
                kit.clone(),
                waiters.clone(),
            );
            let (fair, bots, bot_share, waitlist) =
                (args.fair(), args.bots, args.bot_share, args.waitlist);
            let (buyers, qty, ttl, rate, seed, kit_share, locations) = (
                args.buyers,
                args.qty,
                args.ttl,
                args.abandon_rate,
                args.seed,
                args.kit_share,
                args.locations,
            );
            tokio::spawn(async move {
                let mut seen = Outcomes::default();
                loop {
                    let buyer = next.fetch_add(1, Ordering::Relaxed) as u64;
                    if buyer >= buyers {
                        return seen;
                    }
                    let sku = match &kit {
                        Some(kit) if buys_kit(seed, buyer, kit_share) => kit,
                        _ => &skus[(buyer % skus.len() as u64) as usize],
                    };
                    let (customer, bot) = match fairness::customer_of(seed, buyer, bots, bot_share)
                    {
                        Ok(who) => who,
                        Err(e) => {
                            seen.errors += 1;
                            seen.first_error.get_or_insert(e);
                            continue;
                        }
                    };
                    seen.bot_attempts += u64::from(bot);
                    // Bots never walk away from a hold; people do, at the rate.
                    let walks_away = !bot && abandons(seed, buyer, rate);
                    let options = ReserveOptions {
                        ttl: Some(Duration::from_secs(ttl)),
                        customer: fair.then(|| customer.clone()),
                        ..ReserveOptions::default()
                    };
                    let named = (kit.as_ref() != Some(sku))
                        .then(|| named_location(seed, buyer, locations))
                        .flatten();
                    let line = Line {
                        sku: sku.clone(),
                        qty: Quantity::new(qty),
                        placement: match &named {
                            Some(location) => Placement::at(location.clone()),
                            None => Placement::default(),
                        },
                    };
                    let asked = Instant::now();
                    let outcome = inventory.reserve_order(vec![line], options).await;
                    seen.latencies_us.push(asked.elapsed().as_micros() as u64);
                    match outcome {
                        Ok(held) => {
                            // What the log must show: a hold on every line (a kit's
                            // components), under the reservation's id.
                            let lines: Vec<(Sku, ReservationId)> = held
                                .lines
                                .iter()
                                .map(|l| (l.sku.clone(), held.id))
                                .collect();
                            seen.reserved += 1;
                            seen.kits += u64::from(kit.as_ref() == Some(sku));
                            seen.at_named += u64::from(named.is_some());
                            seen.acknowledged.extend(lines.iter().cloned());
                            let waiting: u64 = held.lines.iter().map(|l| l.backordered.get()).sum();
                            if waiting > 0 {
                                seen.backordered += 1;
                                seen.backordered_units += waiting;
                            }
                            if walks_away {
                                seen.abandoned += 1;
                                seen.abandoned_holds += lines.len() as u64;
                            } else if waiting > 0 {
                                // Sold once stock has filled it (after the arrivals).
                                let skus = lines.iter().map(|(s, _)| s.clone()).collect();
                                seen.waiting.push((skus, held.id));
                            } else {
                                match inventory.commit(held.id, &Origin::default()).await {
                                    Ok(_) => {
                                        seen.committed += 1;
                                        seen.commits.extend(lines);
                                    }
                                    Err(e) => seen.error(e),
                                }
                            }
                        }
                        Err(Error::Rejected { rejection, .. }) => {
                            seen.rejected += 1;
                            use stockade_domain::Rejection as R;
                            match rejection {
                                R::PurchaseLimit { .. } => seen.refused_by_limit += 1,
                                R::InsufficientStock { .. } | R::Waitlisted { .. }
                                    if waitlist && kit.as_ref() != Some(sku) =>
                                {
                                    let joined = inventory
                                        .join_waitlist(
                                            sku,
                                            customer,
                                            Quantity::new(qty),
                                            &Origin::default(),
                                        )
                                        .await;
                                    let mut w = waiters.lock().unwrap_or_else(|p| p.into_inner());
                                    match joined {
                                        Ok(j) => w.joined(j.place.hold_id, sku.clone(), walks_away),
                                        Err(Error::Rejected { .. }) => w.stats.refused += 1,
                                        Err(e) => {
                                            drop(w);
                                            seen.error(e);
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                        Err(e) => seen.error(e),
                    }
                    progress.inc(1);
                }
            })
        })
        .collect();
    let mut seen = Outcomes::default();
    for worker in workers {
        let w = worker
            .await
            .map_err(|e| format!("a buyer task failed: {e}"))?;
        seen.merge(w);
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let during = inventory.stats();
    if let Some(arrivals) = arrivals {
        arrivals
            .await
            .map_err(|e| format!("the arrivals task failed: {e}"))??;
    }
    // The buyers who waited: those filled buy now, the rest are still waiting.
    let (mut committed_after_fill, mut still_waiting) = (0u64, 0u64);
    for (lines, id) in std::mem::take(&mut seen.waiting) {
        let status = inventory.reservation(id).await;
        let filled = status.as_ref().is_ok_and(|s| {
            s.lines.iter().all(|(_, l)| {
                matches!(l, stockade_engine::LineStatus::Live { backordered, .. } if backordered.is_zero())
            })
        });
        if !filled {
            still_waiting += 1;
            continue;
        }
        match inventory.commit(id, &Origin::default()).await {
            Ok(_) => {
                committed_after_fill += 1;
                seen.committed += 1;
                seen.commits.extend(lines.into_iter().map(|sku| (sku, id)));
            }
            Err(e) => seen.error(e),
        }
    }

    let ours: HashSet<Sku> = skus.iter().cloned().collect();
    let store = inventory.store();
    // Let the abandoned holds lapse so their expiries are in the log we check; a long TTL
    // is not waited for (the report then counts the expiries written so far).
    if seen.abandoned > 0 && args.ttl <= MAX_WAIT_FOR_LAPSE_SECS {
        if !args.json {
            eprintln!("waiting {} s for abandoned holds to lapse…", args.ttl);
        }
        let deadline = Instant::now() + Duration::from_secs(args.ttl) + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let report = check_log_of(&store, |s| ours.contains(s))
                .await
                .map_err(|e| e.to_string())?;
            if report.expired >= seen.abandoned_holds || Instant::now() > deadline {
                break;
            }
        }
    }
    // Freed stock goes to the waitlists: wait until they are empty, or no place has been
    // served for a waitlist hold's time (what is left is waiting for stock that will not
    // come), at most a minute.
    let mut still_on_waitlist = 0u64;
    if let Some(claimer) = claimer {
        let patience = Duration::from_secs(args.waitlist_hold + 2);
        let give_up = Instant::now() + Duration::from_secs(60);
        let (mut last_served, mut changed) = (u64::MAX, Instant::now());
        loop {
            let mut waiting = 0u64;
            for sku in skus.iter() {
                let view = inventory
                    .fair_selling(sku, None, 0)
                    .await
                    .map_err(|e| e.to_string())?;
                waiting += view.waiting as u64;
            }
            let served = waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .stats
                .holds_served;
            if served != last_served {
                (last_served, changed) = (served, Instant::now());
            }
            still_on_waitlist = waiting;
            if waiting == 0 || changed.elapsed() > patience || Instant::now() > give_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stop_claiming.store(true, Ordering::Relaxed);
        let bought = claimer
            .await
            .map_err(|e| format!("the waitlist claimer failed: {e}"))?;
        seen.committed += bought.len() as u64;
        seen.commits.extend(bought);
        // Walked-away holds lapse at the waitlist hold's time.
        tokio::time::sleep(Duration::from_secs(args.waitlist_hold + 1)).await;
    }
    inventory.shutdown().await;

    // Check what is on disk, not what the engine holds: the reopened file must have every
    // acknowledged reservation and sale.
    let log_store: Arc<dyn EventStore> = match log_source {
        LogSource::Same => store,
        LogSource::Sqlite(path) => {
            drop(store);
            let reopened = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                .await
                .map_err(|e| format!("reopen the log: {e}"))?
                .map_err(|e| format!("reopen the log: {e}"))?;
            Arc::new(reopened)
        }
        LogSource::Esdb(config) => {
            drop(store);
            let reconnected = EsdbStore::connect(config)
                .await
                .map_err(|e| format!("reconnect to read the log: {e}"))?;
            Arc::new(reconnected)
        }
        LogSource::Postgres(config) => {
            drop(store);
            let reconnected = PostgresStore::connect(config)
                .await
                .map_err(|e| format!("reconnect to read the log: {e}"))?;
            Arc::new(reconnected)
        }
    };
    let log = check_log_of(&log_store, |s| ours.contains(s))
        .await
        .map_err(|e| format!("read the log back: {e}"))?;
    let fairness = match args.fair() {
        true => Some(
            fairness::from_log(&log_store, &skus)
                .await
                .map_err(|e| format!("read the log back: {e}"))?,
        ),
        false => None,
    };
    let in_log = |ids: &HashMap<Sku, HashSet<ReservationId>>, (sku, id): &(Sku, ReservationId)| {
        ids.get(sku).is_some_and(|ids| ids.contains(id))
    };
    let missing = seen
        .acknowledged
        .iter()
        .filter(|ack| !in_log(&log.reservations, ack))
        .count() as u64;
    let missing_committed = seen
        .commits
        .iter()
        .filter(|ack| !in_log(&log.commits, ack))
        .count() as u64;
    if let Some(e) = &seen.first_error {
        eprintln!("first error: {e}");
    }
    let reserved = seen.reserved;
    let appends = during.appends.saturating_sub(before.appends);
    let commands = during.commands.saturating_sub(before.commands);
    let report = Report {
        store: match args.store {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::Esdb => "eventstoredb",
            StoreKind::Postgres => "postgres",
        },
        skus: args.skus,
        stock_per_sku: args.stock,
        buyers: args.buyers,
        concurrency: args.concurrency,
        attempts: seen.latencies_us.len() as u64,
        reserved,
        kits_reserved: seen.kits,
        locations: args.locations,
        reserved_at_named_location: seen.at_named,
        committed: seen.committed,
        abandoned: seen.abandoned,
        abandoned_holds: seen.abandoned_holds,
        expired: log.expired,
        rejected: seen.rejected,
        backorder_limit: args.backorder_limit,
        incoming_per_sku: args.incoming,
        backordered: seen.backordered,
        backordered_units: seen.backordered_units,
        fills: log.filled,
        committed_after_fill,
        still_waiting,
        per_customer: args.per_customer,
        bots: args.bots,
        bot_attempts: seen.bot_attempts,
        refused_by_limit: seen.refused_by_limit,
        waitlist: args.waitlist.then(|| {
            waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .stats
                .clone()
        }),
        still_on_waitlist,
        fairness,
        without_rules: None,
        errors: seen.errors,
        oversold: log.oversold_units,
        missing_acknowledged: missing,
        missing_committed,
        log_violations: log.violations,
        elapsed_seconds: elapsed.as_secs_f64(),
        durable_reservations_per_second: reserved as f64 / elapsed.as_secs_f64().max(1e-9),
        reserve_latency_ms: Percentiles::of_micros(&mut seen.latencies_us),
        mean_batch: if appends == 0 {
            0.0
        } else {
            commands as f64 / appends as f64
        },
        max_batch: during.max_batch,
        appends,
    };
    Ok(report)
}

impl Outcomes {
    fn error(&mut self, e: Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }

    fn merge(&mut self, other: Outcomes) {
        self.latencies_us.extend(other.latencies_us);
        self.acknowledged.extend(other.acknowledged);
        self.commits.extend(other.commits);
        self.reserved += other.reserved;
        self.kits += other.kits;
        self.at_named += other.at_named;
        self.committed += other.committed;
        self.abandoned += other.abandoned;
        self.abandoned_holds += other.abandoned_holds;
        self.rejected += other.rejected;
        self.backordered += other.backordered;
        self.backordered_units += other.backordered_units;
        self.waiting.extend(other.waiting);
        self.bot_attempts += other.bot_attempts;
        self.refused_by_limit += other.refused_by_limit;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abandon_coin_follows_the_rate() {
        let abandoned = (0..100_000).filter(|b| abandons(7, *b, 0.25)).count();
        assert!((24_000..26_000).contains(&abandoned), "{abandoned}");
        assert_eq!((0..1000).filter(|b| abandons(7, *b, 0.0)).count(), 0);
        assert_eq!((0..1000).filter(|b| abandons(7, *b, 1.0)).count(), 1000);
    }
}

//! The multichannel run's figures: per channel and overall, as a table or as JSON.

use super::*;

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
    pub(super) lags: Vec<f64>,
    #[serde(skip)]
    pub(super) trust: f64,
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

pub(super) fn human_seconds(s: f64) -> String {
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

/// Nearest-rank percentile of sorted `values`.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(super) fn finish(c: &mut ChannelReport, args: &Multichannel, share: f64) {
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

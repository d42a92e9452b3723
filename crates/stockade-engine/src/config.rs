//! Engine settings, with the defaults a production deployment starts from.

use std::time::Duration;

/// How the engine runs its SKU actors. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Threads (actix arbiters) the SKU actors are spread over, by hash of the SKU.
    /// Default: one per core.
    pub arbiters: usize,
    /// Commands a SKU may have waiting (in its mailbox or its next batch) before new ones
    /// are refused as `Overloaded`. Bounds memory and latency under overload.
    pub mailbox_capacity: usize,
    /// Most events one append may carry; the batch is also cut below the store's byte limit.
    pub max_batch_events: usize,
    /// How long an append may take before the actor stops waiting and asks the store what
    /// landed.
    pub append_timeout: Duration,
    /// A snapshot is written after this many events since the last one (and never more
    /// often than the snapshot's own size in reservations, so its cost stays amortised).
    pub snapshot_every: u64,
    /// An actor idle this long, with no live reservation and nothing in flight, stops.
    pub idle_timeout: Duration,
    /// How long an idempotency key is remembered per principal.
    pub idempotency_retention: Duration,
    /// TTL of a reservation that does not name one.
    pub default_ttl: Duration,
    /// The secret keyed reservation ids are derived with (see `secret.rs`). `None`: the
    /// embedded store keeps one beside its log, an in-memory store makes one up, and any
    /// other store derives ids from the key alone (anyone can compute them; a warning says
    /// so at start).
    pub id_secret: Option<crate::IdSecret>,
    /// Who may commit or release a reservation.
    pub resolve: ResolvePolicy,
}

/// Who may commit or release a reservation. Requests that name no channel (the embedded
/// library, operator tools) are never restricted: they act for the installation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResolvePolicy {
    /// Any channel. The default: a reservation id is derived with the installation's
    /// secret or at random, so knowing one is itself the capability, and an order service
    /// commonly commits what a storefront reserved.
    #[default]
    Any,
    /// Only the channel that made the reservation, or a channel named as acting for it:
    /// `delegates[acting]` lists the channels `acting` may resolve for.
    Owner {
        delegates: std::collections::BTreeMap<
            stockade_domain::Channel,
            std::collections::BTreeSet<stockade_domain::Channel>,
        >,
    },
}

impl ResolvePolicy {
    /// Whether a request of channel `acting` may resolve a reservation made by `owner`.
    pub fn allows(
        &self,
        acting: &stockade_domain::Channel,
        owner: &stockade_domain::Channel,
    ) -> bool {
        match self {
            ResolvePolicy::Any => true,
            ResolvePolicy::Owner { delegates } => {
                acting == owner || delegates.get(acting).is_some_and(|d| d.contains(owner))
            }
        }
    }
}

/// How long an idempotency key is recognised by default: the longest hold (7 days) plus a
/// day of retries, as long as `stockade serve` remembers a key's request. A same-key retry
/// of a hold that is still live always gets its original answer.
pub const DEFAULT_IDEMPOTENCY_RETENTION: Duration =
    Duration::from_secs(stockade_domain::MAX_TTL.as_secs() + 24 * 3600);

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            arbiters: std::thread::available_parallelism().map_or(2, |n| n.get()),
            mailbox_capacity: 16_384,
            max_batch_events: 4_096,
            append_timeout: Duration::from_secs(10),
            snapshot_every: 1_000,
            idle_timeout: Duration::from_secs(5 * 60),
            idempotency_retention: DEFAULT_IDEMPOTENCY_RETENTION,
            default_ttl: Duration::from_secs(15 * 60),
            id_secret: None,
            resolve: ResolvePolicy::Any,
        }
    }
}

impl EngineConfig {
    /// Checks the settings; a zero where a positive number is needed is refused here rather
    /// than surfacing as a stalled actor later.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("arbiters", self.arbiters as u128),
            ("mailbox_capacity", self.mailbox_capacity as u128),
            ("max_batch_events", self.max_batch_events as u128),
            ("snapshot_every", u128::from(self.snapshot_every)),
            ("append_timeout", self.append_timeout.as_millis()),
            ("idle_timeout", self.idle_timeout.as_millis()),
            ("default_ttl", self.default_ttl.as_millis()),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("engine setting {name} must be positive")),
            None if self.default_ttl > stockade_domain::MAX_TTL => {
                Err("engine setting default_ttl must be at most 7 days".into())
            }
            None => Ok(()),
        }
    }
}

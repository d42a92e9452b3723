//! Webhook delivery: every notice, as an `inventory-updated` event, POSTed to each
//! configured endpoint, signed, retried with backoff, and dead-lettered, never dropped.
//! What the body says is the channels' business (`stockade_wire::webhook`); a [`Sender`]
//! is given the function that writes it.
//!
//! One dispatcher per endpoint reads the notice outbox (`ReadModels::notices`) from its
//! persisted cursor, in `seq` order. It wakes on the hub and, as a fallback, once a second.
//! A notice is retried up to `retries` times, waiting `base`, then twice that, and so on,
//! capped at `max`. After the last failure it goes to the persisted dead-letter queue,
//! in the same transaction that moves the cursor past it. The queue can be listed, and
//! replayed once the endpoint works again.
//!
//! Delivery is at least once: a crash between a successful POST and the cursor update
//! sends that notice again. Receivers dedupe by `eventId`. Order per endpoint follows `seq`.
//!
//! Signature: `X-Stockade-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
//! with the Unix-seconds timestamp sent in `X-Stockade-Timestamp`. A receiver recomputes it
//! and can refuse old timestamps to stop replays.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use ring::hmac;
use serde::Serialize;

use crate::ProjectionError;
use crate::db::ReadModels;
use crate::hub::NoticeHub;
use crate::model::Notice;

pub const SIGNATURE_HEADER: &str = "X-Stockade-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Stockade-Timestamp";
pub const EVENT_ID_HEADER: &str = "X-Stockade-Event-Id";
/// The `reason` physical counts are recorded with; their notices are `SCHEDULED_SYNC`.
pub const PHYSICAL_COUNT_REASON: &str = "physical count";
/// Notices read from the outbox at a time.
const PAGE: usize = 256;
/// Most notices a coalescing window reads before reducing them to one per SKU.
const COALESCE_MAX: usize = 10_000;
/// The dispatcher looks at the outbox at least this often, even without a wake-up.
const POLL: Duration = Duration::from_secs(1);

/// Where notices go, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Names the endpoint's cursor and its dead letters; keep it stable.
    pub name: String,
    pub url: String,
    /// Key of the HMAC signature.
    pub secret: String,
    /// Send only the latest state per SKU in each window of this length (for marketplaces
    /// that limit calls); `None` sends every notice.
    pub coalesce: Option<Duration>,
    /// Longest one POST may take.
    pub timeout: Duration,
}

impl Endpoint {
    pub fn new(name: impl Into<String>, url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            secret: secret.into(),
            coalesce: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// How often, and how patiently, a notice is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): base, 2 × base, 4 × base, ...,
    /// never more than `max`.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Turns a notice into the body of its webhook call. The shape belongs to the channels
/// (`stockade_wire::webhook::body`), so the caller hands it in.
pub type Body = fn(&Notice) -> Result<Vec<u8>, String>;

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Keeps, of each SKU's notices, only the latest; in `seq` order.
pub fn latest_per_sku(notices: Vec<Notice>) -> Vec<Notice> {
    let mut latest: BTreeMap<u64, Notice> = BTreeMap::new();
    let mut by_sku: BTreeMap<String, u64> = BTreeMap::new();
    for notice in notices {
        if let Some(older) = by_sku.insert(notice.sku.to_string(), notice.seq) {
            latest.remove(&older);
        }
        latest.insert(notice.seq, notice);
    }
    latest.into_values().collect()
}

fn unix_seconds() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string()
}

/// Sends notices to one endpoint.
#[derive(Debug, Clone)]
pub struct Sender {
    endpoint: Endpoint,
    body: Body,
    client: reqwest::Client,
}

impl Sender {
    pub fn new(endpoint: Endpoint, body: Body) -> Result<Self, ProjectionError> {
        let client = reqwest::Client::builder()
            .timeout(endpoint.timeout)
            // A redirected POST would be re-sent as a GET, and its 2xx taken for delivery.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProjectionError::Delivery(format!("HTTP client: {e}")))?;
        Ok(Self {
            endpoint,
            body,
            client,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// One POST of one notice; `Err` names why it did not count as delivered.
    pub async fn send(&self, notice: &Notice) -> Result<(), String> {
        let body = (self.body)(notice)?;
        let timestamp = unix_seconds();
        let signature = sign(&self.endpoint.secret, &timestamp, &body);
        let response = self
            .client
            .post(&self.endpoint.url)
            .header("Content-Type", "application/json")
            .header(EVENT_ID_HEADER, notice.event_id.to_string())
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.endpoint.url))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: HTTP {status}", self.endpoint.url))
        }
    }

    /// Sends with retries; on giving up, the attempts made and the last error.
    pub async fn send_with_retries(
        &self,
        notice: &Notice,
        policy: &RetryPolicy,
    ) -> Result<(), (u32, String)> {
        let mut attempt = 1u32;
        loop {
            let sent = self.send(notice).await;
            if sent.is_err() {
                metrics::counter!("stockade_webhook_failures_total",
                    "endpoint" => self.endpoint.name.clone())
                .increment(1);
            }
            match sent {
                Ok(()) => return Ok(()),
                Err(e) if attempt > policy.retries => return Err((attempt, e)),
                Err(e) => {
                    tracing::warn!(endpoint = %self.endpoint.name, seq = notice.seq, attempt,
                        error = %e, "webhook delivery failed; retrying");
                    tokio::time::sleep(policy.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// Delivers the outbox to one endpoint until shut down.
#[derive(Debug)]
pub struct Dispatcher {
    models: ReadModels,
    hub: NoticeHub,
    sender: Sender,
    policy: RetryPolicy,
}

impl Dispatcher {
    pub fn new(models: ReadModels, hub: NoticeHub, sender: Sender, policy: RetryPolicy) -> Self {
        Self {
            models,
            hub,
            sender,
            policy,
        }
    }

    fn channel(&self) -> String {
        format!("webhook:{}", self.sender.endpoint.name)
    }

    /// Runs until `shutdown` completes. A new endpoint starts with the notices produced
    /// after it was first started (its cursor is created at the current end).
    /// A read-model error (a locked or unreadable database) is logged and retried after
    /// a pause: delivery never stops silently.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        if let Ok(depth) = self.models.dead_letter_count().await {
            metrics::gauge!("stockade_dlq_depth").set(depth as f64);
        }
        loop {
            match self.deliver(&mut shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(channel = %self.channel(), error = %e,
                        "webhook dispatcher failed; resuming from its cursor");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = &mut shutdown => return,
                    }
                }
            }
        }
    }

    /// Delivers from the cursor until shut down (`Ok`) or a read-model error.
    async fn deliver(
        &self,
        mut shutdown: &mut (impl Unpin + futures::future::FusedFuture<Output = ()>),
    ) -> Result<(), ProjectionError> {
        let channel = self.channel();
        let mut wake = self.hub.subscribe(crate::hub::DEFAULT_BUFFER);
        let mut cursor = self.models.cursor_or_start(&channel).await?;
        loop {
            let batch = self.models.notices(cursor, PAGE).await?;
            if batch.is_empty() {
                tokio::select! {
                    message = wake.recv() => if message.is_none() {
                        // Cut off or the hub is gone: resubscribe; the outbox has it all.
                        wake = self.hub.subscribe(crate::hub::DEFAULT_BUFFER);
                    },
                    () = tokio::time::sleep(POLL) => {}
                    () = &mut shutdown => return Ok(()),
                }
                continue;
            }
            if let Some(window) = self.sender.endpoint.coalesce {
                tokio::select! {
                    () = tokio::time::sleep(window) => {}
                    () = &mut shutdown => return Ok(()),
                }
                let all = self.models.notices(cursor, COALESCE_MAX).await?;
                let last = all.last().map_or(cursor, |n| n.seq);
                for notice in &latest_per_sku(all) {
                    if !self.handle(&channel, notice, &mut shutdown).await? {
                        return Ok(());
                    }
                }
                // Superseded notices count as handled: the endpoint has each SKU's latest.
                cursor = last;
                self.models.set_cursor(&channel, cursor).await?;
                continue;
            }
            for notice in &batch {
                if !self.handle(&channel, notice, &mut shutdown).await? {
                    return Ok(());
                }
                cursor = notice.seq;
                self.models.set_cursor(&channel, cursor).await?;
            }
        }
    }

    /// Delivers one notice or dead-letters it. Returns false if shut down meanwhile.
    async fn handle(
        &self,
        channel: &str,
        notice: &Notice,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<bool, ProjectionError> {
        let outcome = tokio::select! {
            outcome = self.sender.send_with_retries(notice, &self.policy) => outcome,
            () = shutdown => return Ok(false),
        };
        match outcome {
            Ok(()) => {
                let latency = crate::runner::seconds_since(notice.committed_at);
                metrics::histogram!("stockade_delivery_seconds", "channel" => channel.to_owned())
                    .record(latency);
            }
            Err((attempts, error)) => {
                tracing::error!(channel, seq = notice.seq, attempts, %error,
                    "webhook delivery gave up; notice moved to the dead-letter queue");
                self.models
                    .dead_letter(channel, notice, &error, attempts)
                    .await?;
            }
        }
        Ok(true)
    }
}

/// What a replay of dead letters did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub delivered: usize,
    pub still_failing: usize,
}

/// Tries every dead letter of `sender`'s endpoint once, oldest first. Delivered ones leave
/// the queue; the others stay, with the new error.
pub async fn replay_dead_letters(
    models: &ReadModels,
    sender: &Sender,
) -> Result<ReplayReport, ProjectionError> {
    let channel = format!("webhook:{}", sender.endpoint().name);
    let mut report = ReplayReport::default();
    for letter in models.dead_letters(Some(&channel)).await? {
        match sender.send(&letter.notice).await {
            Ok(()) => {
                models.forget_dead_letter(letter.id).await?;
                report.delivered += 1;
            }
            Err(error) => {
                models.retry_failed(letter.id, &error).await?;
                report.still_failing += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=6).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30]);
        assert_eq!(policy.delay(100), Duration::from_secs(30));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Expected value from Python's hmac module, computed independently:
        // hmac.new(b"whsec_test", b'1700000000.{"eventType":"inventory-updated"}', sha256)
        let signature = sign(
            "whsec_test",
            "1700000000",
            br#"{"eventType":"inventory-updated"}"#,
        );
        assert_eq!(
            signature,
            "sha256=e9d2ff00eac9e4ec8ccf68ff9b64c3ff83e67e8bd9aa142ad3fc49f1302c73dc"
        );
        assert_ne!(sign("other", "1", b"x"), sign("whsec_test", "1", b"x"));
    }
}

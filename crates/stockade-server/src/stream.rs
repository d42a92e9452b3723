//! The live push streams: `GET /api/events` (SSE) and `GET /api/ws` (WebSocket) carry the
//! same [`StreamMessage`]s, produced here by one [`feed`].
//!
//! Order of operations, so that nothing falls between replay and live: subscribe to the
//! hub first, then replay the outbox after the reader's resume point, then forward live
//! notices, skipping any whose `seq` was already sent. A notice is in the outbox before it
//! reaches the hub (the projector publishes after its transaction commits), so whatever
//! the replay misses, the subscription has.
//!
//! A reader more than `replay_max` notices behind, or behind what the outbox still keeps,
//! or cut off by the hub for reading too slowly, gets `resync` and the stream ends: it must
//! reload what it shows and reconnect without a resume point.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use stockade_domain::{Sku, Timestamp};
use stockade_projections::HubMessage;
use stockade_wire::{NoticeOut, StreamMessage};
use tokio::sync::mpsc;

use crate::state::AppState;

/// Notices read from the outbox per query while replaying.
const REPLAY_PAGE: usize = 1000;

/// What a stream writer sends next.
#[derive(Debug)]
pub enum Outgoing {
    /// `seq` for SSE's `id:` line, when the message is a notice.
    Message {
        id: Option<u64>,
        message: StreamMessage,
    },
    /// Nothing to say; keeps proxies and idle timers from closing the stream.
    Keepalive,
}

/// One reader's stream parameters.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The last `seq` the reader has (SSE `Last-Event-ID`, WebSocket `after`).
    pub resume: Option<u64>,
    /// Only these SKUs (all when `None`).
    pub skus: Option<HashSet<Sku>>,
    /// Only notices that move one of these locations, each showing only them (all
    /// notices, whole, when `None`).
    pub locations: Option<HashSet<String>>,
    /// `sse` or `ws`, for the delivery metric.
    pub channel: &'static str,
}

/// Counts an open stream; the count drops when this does.
#[derive(Debug)]
pub struct StreamSlot {
    state: Arc<AppState>,
}

impl StreamSlot {
    /// A slot, or `None` when `max_streams` are open.
    pub fn take(state: &Arc<AppState>) -> Option<Self> {
        let max = state.config.limits.max_streams;
        let taken = state
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| {
            metrics::gauge!("stockade_streams_open").increment(1.0);
            Self {
                state: state.clone(),
            }
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.state.streams.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("stockade_streams_open").decrement(1.0);
    }
}

/// Starts feeding `request`'s stream; messages arrive on the returned receiver until the
/// reader goes away (drop it), a resync, or server shutdown.
pub fn start(state: Arc<AppState>, request: Request, slot: StreamSlot) -> mpsc::Receiver<Outgoing> {
    let (tx, rx) = mpsc::channel(256);
    actix_web::rt::spawn(async move {
        let _slot = slot;
        if let Err(Closed) = feed(&state, &request, &tx).await {
            // The reader left; nothing to tell anyone.
        }
    });
    rx
}

/// The reader went away.
struct Closed;

async fn send(tx: &mpsc::Sender<Outgoing>, out: Outgoing) -> Result<(), Closed> {
    tx.send(out).await.map_err(|_| Closed)
}

fn wanted(request: &Request, n: &stockade_projections::Notice) -> bool {
    request.skus.as_ref().is_none_or(|s| s.contains(&n.sku))
        && request
            .locations
            .as_ref()
            .is_none_or(|wanted| n.locations.iter().any(|l| wanted.contains(&l.location)))
}

/// `n` as this reader gets it: with a location filter, only the locations it asked for.
fn shaped(request: &Request, n: &stockade_projections::Notice) -> NoticeOut {
    let mut out = NoticeOut::from(n);
    if let Some(wanted) = &request.locations {
        out.locations.retain(|l| wanted.contains(&l.location));
    }
    out
}

async fn notice(
    tx: &mpsc::Sender<Outgoing>,
    request: &Request,
    n: &stockade_projections::Notice,
    live: bool,
) -> Result<(), Closed> {
    if !wanted(request, n) {
        return Ok(());
    }
    metrics::counter!("stockade_delivery_total", "channel" => request.channel).increment(1);
    if live {
        // Commit → hand-off to this stream's writer.
        let now = Timestamp::from_system_time(SystemTime::now()).as_millis();
        let ms = now.saturating_sub(n.committed_at.as_millis());
        metrics::histogram!("stockade_delivery_seconds", "channel" => request.channel)
            .record(ms as f64 / 1000.0);
    }
    send(
        tx,
        Outgoing::Message {
            id: Some(n.seq),
            message: StreamMessage::Notice(Box::new(shaped(request, n))),
        },
    )
    .await
}

async fn resync(tx: &mpsc::Sender<Outgoing>, last_seq: u64, reason: &str) -> Result<(), Closed> {
    send(
        tx,
        Outgoing::Message {
            id: None,
            message: StreamMessage::Resync {
                last_seq,
                reason: reason.to_owned(),
            },
        },
    )
    .await
}

async fn feed(
    state: &AppState,
    request: &Request,
    tx: &mpsc::Sender<Outgoing>,
) -> Result<(), Closed> {
    let mut shutdown = state.stop_streams.clone();
    if *shutdown.borrow() {
        return Ok(());
    }
    let mut subscription = state.hub.subscribe(state.config.stream.buffer);
    let head = match state.models.checkpoint().await {
        Ok(c) => c.events,
        Err(e) => {
            tracing::warn!(error = %e, "stream: read models unavailable");
            return resync(tx, request.resume.unwrap_or(0), "read models unavailable").await;
        }
    };
    if let Some(after) = request.resume {
        if after > head {
            return resync(tx, after, "resume point is ahead of this server's notices").await;
        }
        if head - after > state.config.stream.replay_max {
            return resync(tx, after, "too far behind to replay").await;
        }
    }
    send(
        tx,
        Outgoing::Message {
            id: None,
            message: StreamMessage::Hello { last_seq: head },
        },
    )
    .await?;
    // The last seq this reader has; live notices at or below it are duplicates. Without a
    // resume point the reader has nothing yet, and every live notice is new to it.
    let mut last = request.resume.unwrap_or(0);
    while request.resume.is_some() && last < head {
        let page = match state.models.notices(last, REPLAY_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "stream: replay failed");
                return resync(tx, last, "replay failed").await;
            }
        };
        match page.first() {
            Some(first) if first.seq == last + 1 => {}
            // Pruned from the outbox: a gap cannot be replayed.
            _ => return resync(tx, last, "notices after the resume point were pruned").await,
        }
        for n in &page {
            notice(tx, request, n, false).await?;
            last = n.seq;
        }
    }
    let mut keepalive =
        tokio::time::interval(Duration::from_secs(state.config.stream.keepalive_seconds));
    keepalive.tick().await;
    loop {
        tokio::select! {
            message = subscription.recv() => match message {
                Some(HubMessage::Notice(n)) => {
                    if n.seq > last {
                        notice(tx, request, &n, true).await?;
                        last = n.seq;
                    }
                }
                Some(HubMessage::Resync { .. }) => {
                    return resync(tx, last, "this reader fell behind").await;
                }
                None => return Ok(()),
            },
            _ = keepalive.tick() => send(tx, Outgoing::Keepalive).await?,
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

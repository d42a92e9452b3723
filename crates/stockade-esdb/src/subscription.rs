//! Catch-up-then-live subscriptions to this store's SKU events in `$all`, which outlive
//! server restarts and leader changes.
//!
//! A task on the store's runtime holds the server subscription and feeds a bounded channel
//! (a slow reader slows the task, not the server). When the connection drops for a reason
//! that may pass, the task waits (doubling from `reconnect_min` to `reconnect_max`) and
//! subscribes again after the last event it delivered, dropping anything at or before it,
//! so the reader sees every event once, in order. Any other error is delivered and ends the
//! subscription.

use std::sync::Arc;

use futures::stream;
use kurrentdb::SubscribeToAllOptions;
use stockade_store::{Position, RecordedEvent, StoreError, Subscription};
use tokio::sync::mpsc;

use crate::convert::{self, ServerEvent, call_error, incoming, is_transient};
use crate::store::{Inner, sku_filter};

/// Events buffered between the server and a reader that is busy.
const BUFFER: usize = 1024;

pub(crate) fn subscribe(inner: Arc<Inner>, after: Position) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    inner.handle.spawn(pump(inner.clone(), after, tx));
    Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

type Sender = mpsc::Sender<Result<RecordedEvent, StoreError>>;

async fn pump(inner: Arc<Inner>, mut after: Position, tx: Sender) {
    let namespace = inner.config.namespace.clone();
    let mut delay = inner.config.reconnect_min;
    loop {
        let options = SubscribeToAllOptions::default()
            .position(convert::start_after(after))
            .filter(sku_filter(&namespace));
        let mut subscription = inner.client.subscribe_to_all(&options).await;
        loop {
            let next = tokio::select! {
                next = subscription.next() => next,
                () = tx.closed() => return,
            };
            match next {
                Ok(resolved) => {
                    delay = inner.config.reconnect_min;
                    let Some(recorded) = resolved.event.as_ref() else {
                        continue;
                    };
                    let Some(event) = incoming(&namespace, ServerEvent::from(recorded)) else {
                        continue;
                    };
                    if event.position <= after {
                        continue; // delivered before a reconnect
                    }
                    after = event.position;
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, %after,
                        "EventStoreDB subscription dropped; resubscribing");
                    break;
                }
                Err(e) => {
                    let _ = tx.send(Err(call_error("subscribe to $all", e))).await;
                    return;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tx.closed() => return,
        }
        delay = next_delay(delay, inner.config.reconnect_max);
    }
}

/// The wait before the next reconnect attempt: doubled, capped.
pub(crate) fn next_delay(
    delay: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    delay.saturating_mul(2).min(max)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reconnect_delays_double_up_to_the_cap() {
        let max = Duration::from_secs(5);
        let mut d = Duration::from_millis(100);
        let mut seen = vec![d];
        for _ in 0..8 {
            d = next_delay(d, max);
            seen.push(d);
        }
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(seen[5], Duration::from_millis(3200));
        assert_eq!(*seen.last().unwrap(), max);
        assert_eq!(next_delay(Duration::MAX, max), max);
    }
}

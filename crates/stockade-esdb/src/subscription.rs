//! Catch-up-then-live subscriptions to this store's SKU events in `$all`, which outlive
//! server restarts and leader changes.
//!
//! Each subscription runs on a thread of its own, with its own runtime and its own client:
//! - A failure in one subscription's connection cannot touch appends or other readers.
//! - `kurrentdb` 1.2 can spin forever on a subscription call that the server ended
//!   cleanly (ADR 0004). If that happens, it burns this thread only.
//!
//! The task feeds a bounded channel, so a slow reader slows the task, not the server.
//! When the connection drops for a reason that may pass, the task waits (doubling from
//! `reconnect_min` to `reconnect_max`), builds a new client (the old one may be spent,
//! see `connection`) and subscribes again after the last event it delivered. It drops
//! anything at or before that event, so the reader sees every event once, in order. Any
//! other error, or a panic in the client, is delivered as an error and ends the
//! subscription. Dropping the store ends it as well.

use std::sync::Arc;

use futures::stream;
use kurrentdb::{Client, SubscribeToAllOptions};
use stockade_store::{Position, RecordedEvent, StoreError, Subscription};
use tokio::sync::mpsc;

use crate::convert::{self, ServerEvent, call_error, incoming, is_transient};
use crate::store::{Inner, sku_filter};

/// Events buffered between the server and a reader that is busy.
const BUFFER: usize = 1024;

type Sender = mpsc::Sender<Result<RecordedEvent, StoreError>>;

pub(crate) fn subscribe(inner: Arc<Inner>, after: Position) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    let failed = tx.clone();
    let started = std::thread::Builder::new()
        .name("stockade-esdb-sub".into())
        .spawn(move || run(inner, after, tx));
    if let Err(e) = started {
        // The receiver is still held below, so this send finds room.
        let _ = failed.try_send(Err(StoreError::Unavailable(format!(
            "start a subscription thread: {e}"
        ))));
    }
    Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The subscription thread: a runtime for the pump, and an error if the pump panics.
fn run(inner: Arc<Inner>, after: Position, tx: Sender) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = tx.blocking_send(Err(StoreError::Unavailable(format!(
                "start a subscription runtime: {e}"
            ))));
            return;
        }
    };
    runtime.block_on(async move {
        let pump = tokio::spawn(pump(inner, after, tx.clone()));
        if let Err(e) = pump.await {
            let _ = tx
                .send(Err(StoreError::Unavailable(format!(
                    "the EventStoreDB subscription failed: {e}"
                ))))
                .await;
        }
    });
}

async fn pump(inner: Arc<Inner>, mut after: Position, tx: Sender) {
    let namespace = inner.config.namespace.clone();
    let mut closing = inner.closing.clone();
    let mut delay = inner.config.reconnect_min;
    loop {
        let client = match Client::with_runtime_handle(
            tokio::runtime::Handle::current(),
            inner.settings.clone(),
        ) {
            Ok(client) => client,
            Err(e) => {
                let _ = tx
                    .send(Err(StoreError::Unavailable(format!(
                        "build an EventStoreDB client: {e}"
                    ))))
                    .await;
                return;
            }
        };
        let options = SubscribeToAllOptions::default()
            .position(convert::start_after(after))
            .filter(sku_filter(&namespace));
        let mut subscription = client.subscribe_to_all(&options).await;
        loop {
            let next = tokio::select! {
                next = subscription.next() => next,
                () = tx.closed() => return,
                _ = closing.changed() => return,
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
            _ = closing.changed() => return,
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

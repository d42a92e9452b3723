//! The inventory's background work: at start-up, index the reservations the log still
//! needs, wake the SKUs with live holds (so their expiries fire) and release the
//! reservations the last stop cut short; then prune the index now and then.

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::watch;

use super::{PRUNE_EVERY, WAKE_CONCURRENCY};
use crate::actor::ReadStock;
use crate::engine::EngineCore;
use crate::locator::Locator;
use crate::orphans;

/// Background work at start-up: index reservations, wake SKUs with live ones, then prune
/// the index now and then.
pub(super) async fn start_up(
    shared: Arc<EngineCore>,
    locator: Arc<Locator>,
    examine: bool,
    recovered: watch::Sender<bool>,
) {
    let horizon = shared.config.idempotency_retention + stockade_domain::MAX_TTL;
    let since = shared.clock.now().saturating_sub(horizon);
    match locator.scan(&shared.store, since).await {
        Ok(skus) => {
            tracing::info!(
                skus = skus.len(),
                indexed = locator.len(),
                "start-up pass done"
            );
            for chunk in skus.chunks(WAKE_CONCURRENCY) {
                // A read loads the actor, which arms its expiry timer.
                let wakes = chunk
                    .iter()
                    .map(|sku| shared.ask(sku, |reply| ReadStock { reply }));
                for (sku, woke) in chunk.iter().zip(join_all(wakes).await) {
                    if let Err(e) = woke {
                        tracing::warn!(%sku, error = %e, "could not wake SKU for its expiries");
                    }
                }
            }
            if examine {
                match orphans::release_incomplete(&shared, &locator, &skus).await {
                    Ok(r) => tracing::info!(
                        examined = r.examined,
                        incomplete = r.incomplete,
                        released = r.released,
                        "reservations cut short by the last stop released"
                    ),
                    Err(e) => tracing::error!(error = %e,
                        "could not look for reservations cut short; their lines lapse at their TTL"),
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "start-up pass failed; expiries fire on next use");
            locator.failed(e.to_string());
        }
    }
    recovered.send_replace(true);
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        locator.prune(shared.clock.now().saturating_sub(horizon));
    }
}

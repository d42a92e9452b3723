//! History lives in the log, not in memory: a key, a resolution and a reservation's SKUs
//! older than every cache are still found, before and after a restart, on a store with
//! indexes (SQLite) and on one without (the engine's in-memory fallbacks).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::sync::Arc;

use futures::future::join_all;
use stockade_domain::{Principal, Quantity, Rejection, ReservationId, Resolution, Sku};
use stockade_engine::{Error, Inventory, LineStatus, Origin, Reservation, ReserveOptions};
use stockade_store::testkit::Unindexed;
use stockade_store::{EventStore, MemoryStore};
use stockade_tests::engine::{checked_log, open_on, open_sqlite, register, test_engine};

/// More than the engine's recent-key cache and recent-resolution ring hold.
const LATER: usize = 300;

fn keyed(key: &str) -> ReserveOptions {
    ReserveOptions {
        origin: Origin::default()
            .principal(Principal::new("shop").unwrap())
            .idempotency_key(key),
        ..ReserveOptions::default()
    }
}

/// Holds and commits `cart-0`, then `LATER` more keyed carts on the same SKU.
async fn sell(inventory: &Inventory, sku: &Sku) -> Reservation {
    let first = inventory
        .reserve(sku, Quantity::new(1), keyed("cart-0"))
        .await
        .unwrap();
    inventory
        .commit(first.id, &Origin::default())
        .await
        .unwrap();
    for wave in (1..=LATER).collect::<Vec<_>>().chunks(50) {
        join_all(wave.iter().map(|n| async move {
            let held = inventory
                .reserve(sku, Quantity::new(1), keyed(&format!("cart-{n}")))
                .await
                .unwrap();
            inventory.commit(held.id, &Origin::default()).await.unwrap();
        }))
        .await;
    }
    first
}

/// What must still be known of `first`, long after.
async fn remembers(inventory: &Inventory, sku: &Sku, first: &Reservation) {
    let retry = inventory
        .reserve(sku, Quantity::new(1), keyed("cart-0"))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!((retry.id, retry.expires_at), (first.id, first.expires_at));
    let misuse = inventory
        .reserve(sku, Quantity::new(2), keyed("cart-0"))
        .await;
    assert!(matches!(misuse, Err(Error::KeyReused { .. })), "{misuse:?}");

    let again = inventory.commit(first.id, &Origin::default()).await;
    assert!(
        matches!(
            again,
            Err(Error::Rejected {
                rejection: Rejection::AlreadyResolved {
                    resolution: Resolution::Committed,
                    ..
                },
                ..
            })
        ),
        "{again:?}"
    );
    let status = inventory.reservation(first.id).await.unwrap();
    assert_eq!(
        status.lines,
        [(sku.clone(), LineStatus::Resolved(Resolution::Committed))]
    );
    let unknown = inventory
        .release(ReservationId::from_u128(7), &Origin::default())
        .await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_keys_and_resolutions_are_found_in_the_log_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let sku = register(&inventory, "HISTORY", 1_000).await;
    let first = sell(&inventory, &sku).await;
    remembers(&inventory, &sku, &first).await;
    inventory.shutdown().await;

    let reopened = open_sqlite(dir.path()).await;
    remembers(&reopened, &sku, &first).await;
    let report = checked_log(&reopened.store()).await;
    assert_eq!(report.reserved, 1 + LATER as u64);
    assert_eq!(
        reopened.stock(&sku).await.unwrap().view.limit,
        Some(Quantity::new(1_000 - 1 - LATER as u64))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_store_without_indexes_the_engine_keeps_what_it_needs() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let unindexed: Arc<dyn EventStore> = Arc::new(Unindexed(memory.clone()));
    let inventory = open_on(unindexed.clone(), test_engine()).await;
    let sku = register(&inventory, "SCANNED", 1_000).await;
    let first = sell(&inventory, &sku).await;
    remembers(&inventory, &sku, &first).await;
    inventory.shutdown().await;

    let reopened = open_on(unindexed, test_engine()).await;
    remembers(&reopened, &sku, &first).await;
    assert_eq!(checked_log(&memory).await.reserved, 1 + LATER as u64);
}

//! A retried request with the same idempotency key gets the first outcome and reserves
//! nothing twice, also after a restart; the same key with a different request is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use stockade_domain::{Principal, Quantity};
use stockade_engine::{Error, Origin, ReserveOptions};
use stockade_tests::engine::{checked_log, open_sqlite, register};

fn keyed(principal: &str, key: &str) -> ReserveOptions {
    ReserveOptions {
        origin: Origin::default()
            .principal(Principal::new(principal).unwrap())
            .idempotency_key(key),
        ..ReserveOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_returns_the_first_reservation_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let sku = register(&inventory, "KEYED", 10).await;

    let first = inventory
        .reserve(&sku, Quantity::new(3), keyed("shop-1", "cart-42"))
        .await
        .unwrap();
    assert!(!first.replayed);
    let retry = inventory
        .reserve(&sku, Quantity::new(3), keyed("shop-1", "cart-42"))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!((retry.id, retry.expires_at), (first.id, first.expires_at));

    // Another principal may use the same key for its own request.
    let other = inventory
        .reserve(&sku, Quantity::new(1), keyed("shop-2", "cart-42"))
        .await
        .unwrap();
    assert_ne!(other.id, first.id);

    // Same key, different request: refused, nothing written.
    let misuse = inventory
        .reserve(&sku, Quantity::new(4), keyed("shop-1", "cart-42"))
        .await;
    assert!(matches!(misuse, Err(Error::KeyReused { .. })), "{misuse:?}");
    inventory.shutdown().await;

    let reopened = open_sqlite(dir.path()).await;
    let after_restart = reopened
        .reserve(&sku, Quantity::new(3), keyed("shop-1", "cart-42"))
        .await
        .unwrap();
    assert!(after_restart.replayed);
    assert_eq!(after_restart.id, first.id);
    let stock = reopened.stock(&sku).await.unwrap();
    assert_eq!(stock.view.reserved, Quantity::new(4));
    assert_eq!(checked_log(&reopened.store()).await.reserved, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_key_reserve_once() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let sku = register(&inventory, "STORM", 100).await;
    let retries = (0..50).map(|_| {
        let (inventory, sku) = (inventory.clone(), sku.clone());
        tokio::spawn(async move {
            inventory
                .reserve(&sku, Quantity::new(1), keyed("app", "double-click"))
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(retries).await;
    let ids: std::collections::HashSet<_> = outcomes.into_iter().map(|o| o.unwrap().id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(checked_log(&inventory.store()).await.reserved, 1);
}

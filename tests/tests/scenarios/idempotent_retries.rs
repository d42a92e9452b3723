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

/// The bulk path: a new SKU is registered straight into the log, without an actor; an
/// existing one, a keyed retry, and a SKU whose actor is running all get the answers
/// `register_if_absent` gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_new_skus_in_bulk_answers_as_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = stockade_tests::engine::open_sqlite(dir.path()).await;
    let pool = stockade_tests::engine::physical(5);
    let keyed = Origin::default().idempotency_key("bulk-1/1");
    let item = stockade_tests::engine::sku("BULK-1");
    let first = inventory
        .register_new(&item, pool.clone(), &keyed)
        .await
        .unwrap();
    assert_eq!((first.created, first.version), (true, 1));
    assert_eq!(inventory.active_skus(), 0, "no actor was started");
    // The same keyed registration again: replayed, still "created" by that key.
    let again = inventory
        .register_new(&item, pool.clone(), &keyed)
        .await
        .unwrap();
    assert_eq!((again.created, again.version), (true, 1));
    // Unkeyed, it exists: not created, nothing written.
    let exists = inventory
        .register_new(&item, pool.clone(), &Origin::default())
        .await
        .unwrap();
    assert_eq!((exists.created, exists.version), (false, 1));
    assert_eq!(
        inventory.stock(&item).await.unwrap().view.limit,
        Some(Quantity::new(5))
    );
    // A SKU someone just asked about has an actor: the actor's path registers it.
    let other = stockade_tests::engine::sku("BULK-2");
    assert!(inventory.stock(&other).await.is_err());
    let through_actor = inventory
        .register_new(&other, pool, &Origin::default())
        .await
        .unwrap();
    assert!(through_actor.created);
    assert_eq!(inventory.stock(&other).await.unwrap().version, 1);
    let report = stockade_tests::engine::checked_log(&inventory.store()).await;
    assert_eq!(report.events, 2, "one registration each");
}

/// A shipment's transfer id is its key when the caller sends none: a retry that arrives
/// after the transfer was received (so no longer in transit for the writer to refuse)
/// gets the first answer and moves nothing again, also after a restart; another shipment
/// under the same id is a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_retried_after_its_receipt_moves_nothing_again() {
    use stockade_domain::{LocationId, PoolConfig, Rejection, TransferId};
    use stockade_engine::Transfer;
    use stockade_tests::engine::located;

    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let sku = stockade_tests::engine::sku("SHELF");
    let pool = PoolConfig::at_locations(vec![located("berlin", 10, 0), located("paris", 0, 0)]);
    let admin = Origin::default().principal(Principal::new("admin").unwrap());
    inventory.register(&sku, pool, &admin).await.unwrap();
    let shipment = |qty: u64| Transfer {
        transfer_id: TransferId::new("T-9").unwrap(),
        from: LocationId::new("berlin").unwrap(),
        to: LocationId::new("paris").unwrap(),
        qty: Quantity::new(qty),
        reference: None,
        expected_version: None,
    };
    let first = inventory
        .ship_transfer(&sku, shipment(4), &admin)
        .await
        .unwrap();
    assert!(!first.replayed);
    inventory
        .receive_transfer(&sku, TransferId::new("T-9").unwrap(), &admin)
        .await
        .unwrap();
    let on_hand = |level: &stockade_engine::StockLevel| -> Vec<u64> {
        level
            .view
            .locations
            .iter()
            .map(|l| l.on_hand.get())
            .collect()
    };
    let moved = inventory.stock(&sku).await.unwrap();
    assert_eq!(on_hand(&moved), [6, 4]);

    let mut inventory = inventory;
    for round in 0..2 {
        if round == 1 {
            inventory.shutdown().await;
            inventory = open_sqlite(dir.path()).await;
        }
        let retry = inventory
            .ship_transfer(&sku, shipment(4), &admin)
            .await
            .unwrap();
        assert!(retry.replayed);
        assert_eq!(retry.version, first.version);
        let other = inventory.ship_transfer(&sku, shipment(2), &admin).await;
        assert!(
            matches!(
                other,
                Err(Error::Rejected {
                    rejection: Rejection::DuplicateTransfer { .. },
                    ..
                })
            ),
            "{other:?}"
        );
        let now = inventory.stock(&sku).await.unwrap();
        assert_eq!((on_hand(&now), now.version), (vec![6, 4], moved.version));
    }
}

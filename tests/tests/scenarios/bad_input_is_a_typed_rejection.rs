//! Bad input gets a clear, typed refusal and writes nothing: unknown SKU, zero or
//! overflowing quantities, zero or absurd TTLs, resolving what is already resolved.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::time::Duration;

use stockade_domain::{PoolConfig, Quantity, Rejection, ReservationId, Resolution};
use stockade_engine::{Error, Line, Origin, ReserveOptions};
use stockade_tests::engine::{checked_log, open_sqlite, register, sku};

fn rejection(outcome: Result<impl std::fmt::Debug, Error>) -> Rejection {
    match outcome {
        Err(Error::Rejected { rejection, .. }) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn ttl(d: Duration) -> ReserveOptions {
    ReserveOptions {
        ttl: Some(d),
        ..ReserveOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let item = register(&inventory, "SHELF", 5).await;
    let none = Origin::default();
    let one = Quantity::new(1);

    let unknown = inventory
        .reserve(&sku("NOPE"), one, ReserveOptions::default())
        .await;
    assert_eq!(rejection(unknown), Rejection::UnknownSku);
    assert_eq!(
        rejection(inventory.stock(&sku("NOPE")).await),
        Rejection::UnknownSku
    );
    let zero = inventory
        .reserve(&item, Quantity::ZERO, ReserveOptions::default())
        .await;
    assert_eq!(rejection(zero), Rejection::InvalidQuantity);
    let too_many = inventory
        .reserve(&item, Quantity::MAX, ReserveOptions::default())
        .await;
    assert!(matches!(
        rejection(too_many),
        Rejection::InsufficientStock { .. }
    ));
    assert_eq!(
        rejection(inventory.reserve(&item, one, ttl(Duration::ZERO)).await),
        Rejection::InvalidTtl
    );
    let eight_days = ttl(Duration::from_secs(8 * 24 * 3600));
    assert_eq!(
        rejection(inventory.reserve(&item, one, eight_days).await),
        Rejection::InvalidTtl
    );
    let registered_twice = inventory
        .register(&item, stockade_tests::engine::physical(1), &none)
        .await;
    assert!(matches!(
        rejection(registered_twice),
        Rejection::AlreadyRegistered { .. }
    ));

    // Holding beyond u64 on an unlimited pool: an arithmetic refusal, never a wrap.
    let keys = sku("KEYS");
    inventory
        .register(
            &keys,
            PoolConfig::Digital {
                license_limit: None,
            },
            &none,
        )
        .await
        .unwrap();
    inventory
        .reserve(&keys, Quantity::MAX, ReserveOptions::default())
        .await
        .unwrap();
    let overflow = inventory
        .reserve(&keys, one, ReserveOptions::default())
        .await;
    assert!(matches!(rejection(overflow), Rejection::OutOfRange { .. }));

    // Resolving twice, or after release.
    let held = inventory
        .reserve(&item, one, ReserveOptions::default())
        .await
        .unwrap();
    inventory.release(held.id, &none).await.unwrap();
    let again = inventory.release(held.id, &none).await;
    assert!(matches!(
        rejection(again),
        Rejection::AlreadyResolved {
            resolution: Resolution::Released,
            ..
        }
    ));
    let commit_released = inventory.commit(held.id, &none).await;
    assert!(matches!(
        rejection(commit_released),
        Rejection::AlreadyResolved { .. }
    ));

    // Requests the engine cannot route.
    let missing = inventory.commit(ReservationId::from_u128(7), &none).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let doubled = inventory
        .reserve_order(
            vec![
                Line {
                    placement: Default::default(),
                    sku: item.clone(),
                    qty: one,
                },
                Line {
                    placement: Default::default(),
                    sku: item.clone(),
                    qty: one,
                },
            ],
            ReserveOptions::default(),
        )
        .await;
    assert!(matches!(doubled, Err(Error::Invalid(_))), "{doubled:?}");
    let long_key = ReserveOptions {
        origin: Origin::default().idempotency_key("k".repeat(300)),
        ..ReserveOptions::default()
    };
    assert!(matches!(
        inventory.reserve(&item, one, long_key).await,
        Err(Error::Invalid(_))
    ));

    // Nothing above wrote anything it should not have.
    let report = checked_log(&inventory.store()).await;
    assert_eq!((report.reserved, report.released), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_expiry_is_refused_as_lapsed() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let item = register(&inventory, "BRIEF", 1).await;
    let held = inventory
        .reserve(&item, Quantity::new(1), ttl(Duration::from_millis(30)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let late = inventory.commit(held.id, &Origin::default()).await;
    let refused = rejection(late);
    assert!(
        matches!(
            refused,
            Rejection::Lapsed { .. }
                | Rejection::AlreadyResolved {
                    resolution: Resolution::Expired,
                    ..
                }
        ),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_too_large_for_one_append_is_refused_and_its_key_stays_usable() {
    let inventory = stockade_tests::engine::open_on(
        std::sync::Arc::new(stockade_store::MemoryStore::new()),
        stockade_tests::engine::test_engine(),
    )
    .await;
    let item = register(&inventory, "CROWDED", 60_000).await;
    let buyers = (0..200).map(|_| {
        let (inventory, item) = (inventory.clone(), item.clone());
        tokio::spawn(async move {
            for _ in 0..300 {
                let held = inventory.reserve(&item, Quantity::new(1), ReserveOptions::default());
                held.await.unwrap();
            }
        })
    });
    for buyer in futures::future::join_all(buyers).await {
        buyer.unwrap();
    }
    // A count of zero puts all 60 000 holds at risk: the event naming them exceeds 1 MiB.
    let count = stockade_engine::Adjustment {
        location: None,
        change: stockade_domain::StockChange::Count(Quantity::ZERO),
        reason: "flood".into(),
        reference: None,
        expected_version: None,
    };
    let keyed = Origin::default().idempotency_key("count-1");
    for _ in 0..2 {
        // The retry gets the same answer, and does not wait on a key left pending.
        let refused = tokio::time::timeout(
            stockade_tests::PATIENCE,
            inventory.adjust(&item, count.clone(), &keyed),
        )
        .await
        .expect("an answer, not a hang");
        assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    }
    // Nothing changed: the SKU still sells what it has.
    let stock = inventory.stock(&item).await.unwrap();
    assert_eq!(stock.view.reserved, Quantity::new(60_000));
    assert_eq!(stock.version, 60_001);
}

//! Many buyers racing for few units get exactly as many reservations as there are units,
//! and every acknowledged reservation is in the log after the store is reopened.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::collections::HashSet;

use futures::future::join_all;
use stockade_domain::Quantity;
use stockade_engine::{Error, ReserveOptions};
use stockade_tests::engine::{checked_log, open_sqlite, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_on_one_unit_make_exactly_one_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let sku = register(&inventory, "LAST-ONE", 1).await;
    let attempts = join_all((0..1000).map(|_| {
        let (inventory, sku) = (inventory.clone(), sku.clone());
        tokio::spawn(async move {
            inventory
                .reserve(&sku, Quantity::new(1), ReserveOptions::default())
                .await
        })
    }))
    .await;
    let mut won = 0;
    for attempt in attempts {
        match attempt.unwrap() {
            Ok(_) => won += 1,
            Err(Error::Rejected { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let report = checked_log(&inventory.store()).await;
    assert_eq!(report.reserved, 1);
    // The pipeline batched: far fewer appends than the 1000 commands it decided.
    assert!(inventory.stats().appends <= 2, "{:?}", inventory.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_buyers_on_a_hundred_units_over_ten_skus_keep_exactly_a_hundred() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let mut skus = Vec::new();
    for n in 0..10 {
        skus.push(register(&inventory, &format!("DROP-{n}"), 10).await);
    }
    let attempts = join_all((0..10_000).map(|buyer| {
        let (inventory, sku) = (inventory.clone(), skus[buyer % 10].clone());
        tokio::spawn(async move {
            let held = inventory
                .reserve(&sku, Quantity::new(1), ReserveOptions::default())
                .await;
            held.map(|r| (sku, r.id))
        })
    }))
    .await;
    let mut acknowledged = HashSet::new();
    for attempt in attempts {
        match attempt.unwrap() {
            Ok(won) => assert!(acknowledged.insert(won)),
            Err(Error::Rejected { rejection, .. }) => {
                assert_eq!(rejection.code(), "insufficient_stock")
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(acknowledged.len(), 100);
    for sku in &skus {
        let stock = inventory.stock(sku).await.unwrap();
        assert_eq!(stock.view.reserved, Quantity::new(10));
    }
    inventory.shutdown().await;

    // Reopened: every acknowledged reservation is there, and nothing else.
    let reopened = open_sqlite(dir.path()).await;
    let report = checked_log(&reopened.store()).await;
    let in_log: HashSet<_> = report
        .reservations
        .iter()
        .flat_map(|(sku, ids)| ids.iter().map(|id| (sku.clone(), *id)))
        .collect();
    assert_eq!(in_log, acknowledged);
    for sku in &skus {
        let stock = reopened.stock(sku).await.unwrap();
        assert_eq!(stock.view.reserved, Quantity::new(10));
        assert!(!stock.view.available.covers(Quantity::new(1)));
    }
}

//! The projector keeps each SKU's figures without its holds, and learns what a hold was
//! when it ends: from a hold made earlier in the same batch, from its own `reservations`
//! rows, or, for a SKU folded again from its stream, from the stream. A projector with a
//! one-SKU cache and three-event batches folds from the stream all the time, and one that
//! resumes where another stopped reads the rows; both must write exactly the notices and
//! rows of one that projects everything at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use stockade_domain::{OrderId, Quantity, Timestamp};
use stockade_engine::{Inventory, InventoryConfig, ManualClock, Origin, ReserveOptions};
use stockade_projections::{NoticeHub, Projector, ProjectorConfig, ReadModels};
use stockade_tests::engine::{register, test_engine};

async fn project(inventory: &Inventory, config: ProjectorConfig) -> ReadModels {
    let models = ReadModels::in_memory().unwrap();
    let mut projector =
        Projector::with_config(inventory.store(), models.clone(), NoticeHub::new(), config);
    projector.catch_up().await.unwrap();
    models
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_sku_cache_and_small_batches_project_what_a_large_cache_does() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let inventory = Inventory::open(
        InventoryConfig::memory()
            .engine(test_engine())
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let skus = [
        register(&inventory, "TINY-A", 50).await,
        register(&inventory, "TINY-B", 50).await,
    ];
    let mut held = Vec::new();
    for n in 0..24u64 {
        let sku = &skus[(n % 2) as usize];
        let options = ReserveOptions {
            order_id: Some(OrderId::new(format!("order-{n}")).unwrap()),
            ttl: Some(Duration::from_secs(30 + n)),
            ..ReserveOptions::default()
        };
        held.push(
            inventory
                .reserve(sku, Quantity::new(1 + n % 3), options)
                .await
                .unwrap(),
        );
    }
    // Some end by commit, some by release, the rest lapse.
    for (n, r) in held.iter().enumerate() {
        match n % 3 {
            0 => drop(inventory.commit(r.id, &Origin::default()).await.unwrap()),
            1 => drop(inventory.release(r.id, &Origin::default()).await.unwrap()),
            _ => {}
        }
    }
    clock.advance(Duration::from_secs(120));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if live_holds(&inventory, &skus).await == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "holds did not expire");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let large = project(&inventory, ProjectorConfig::default()).await;
    let tiny = project(
        &inventory,
        ProjectorConfig {
            batch: 3,
            state_cache: 1,
            ..ProjectorConfig::default()
        },
    )
    .await;
    let (a, b) = (
        large.notices(0, 1000).await.unwrap(),
        tiny.notices(0, 1000).await.unwrap(),
    );
    assert_eq!(a.len(), 2 + 24 * 2, "a notice per event");
    assert_eq!(a, b);
    assert!(
        a.iter()
            .filter(|n| n.cause.command != "register" && n.cause.command != "adjust")
            .all(|n| n.cause.order_id.is_some()),
        "every hold's end names its order"
    );
    assert_eq!(
        large.stock_page(None, 10).await.unwrap(),
        tiny.stock_page(None, 10).await.unwrap()
    );

    // A projector that starts where another stopped knows no recent holds: the holds the
    // first one made are read back from the `reservations` rows.
    let resumed = ReadModels::in_memory().unwrap();
    let store = inventory.store();
    let first_half = store
        .read_all(stockade_store::Position::START, 26)
        .await
        .unwrap();
    Projector::new(store.clone(), resumed.clone(), NoticeHub::new())
        .project(first_half)
        .await
        .unwrap();
    Projector::new(store, resumed.clone(), NoticeHub::new())
        .catch_up()
        .await
        .unwrap();
    assert_eq!(resumed.notices(0, 1000).await.unwrap(), a);
    assert_eq!(
        resumed.stock_page(None, 10).await.unwrap(),
        large.stock_page(None, 10).await.unwrap()
    );
    inventory.shutdown().await;
}

/// Holds not yet ended by an event over `skus` (lapsed ones count until expired).
async fn live_holds(inventory: &Inventory, skus: &[stockade_domain::Sku]) -> usize {
    let mut total = 0;
    for sku in skus {
        total += inventory.stock(sku).await.unwrap().view.live_reservations;
    }
    total
}

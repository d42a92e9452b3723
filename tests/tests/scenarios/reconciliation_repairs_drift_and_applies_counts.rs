//! Reconciliation: a deliberately corrupted read-model row is repaired by the next run and
//! the correction is logged; a physical count taken before three sales is applied without
//! erasing those sales, and applying it again changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use stockade_domain::{Quantity, Timestamp};
use stockade_engine::{Inventory, InventoryConfig, ManualClock, Origin, ReserveOptions};
use stockade_projections::reconcile::{Reconciler, apply_counts, parse_counts};
use stockade_projections::{NoticeHub, Projector, ReadModels, Status};
use stockade_tests::engine::{checked_log, register, test_engine};

async fn open(clock: &ManualClock) -> Inventory {
    Inventory::open(
        InventoryConfig::memory()
            .engine(test_engine())
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap()
}

async fn sell(inventory: &Inventory, sku: &stockade_domain::Sku, n: u64) {
    let held = inventory
        .reserve(sku, Quantity::new(n), ReserveOptions::default())
        .await
        .unwrap();
    inventory.commit(held.id, &Origin::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_row_is_repaired_by_the_next_run_and_the_correction_logged() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let inventory = open(&clock).await;
    let tee = register(&inventory, "TEE", 10).await;
    let cap = register(&inventory, "CAP", 4).await;
    sell(&inventory, &tee, 3).await;
    sell(&inventory, &cap, 1).await;
    let models = ReadModels::in_memory().unwrap();
    let mut projector = Projector::new(inventory.store(), models.clone(), NoticeHub::new());
    projector.catch_up().await.unwrap();
    let mut reconciler = Reconciler::new(inventory.store(), models.clone());
    assert!(
        reconciler.reconcile(false).await.unwrap().is_empty(),
        "clean to begin with"
    );

    let good = models.stock(&tee).await.unwrap().unwrap();
    let mut bad = good.clone();
    bad.level.on_hand = Some(999);
    bad.level.available = Some(999);
    bad.status = Status::OutOfStock;
    models.put_stock_row(bad.clone()).await.unwrap();

    let dry = reconciler.reconcile(true).await.unwrap();
    assert_eq!(dry.len(), 1, "a dry run reports the drift");
    assert_eq!(
        models.stock(&tee).await.unwrap().unwrap(),
        bad,
        "and changes nothing"
    );

    let corrections = reconciler.reconcile(false).await.unwrap();
    assert_eq!(corrections.len(), 1);
    assert_eq!(corrections[0].sku, "TEE");
    assert_eq!(corrections[0].found, bad);
    assert_eq!(corrections[0].expected, good);
    assert_eq!(models.stock(&tee).await.unwrap().unwrap(), good);
    let logged = models.corrections(0, 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].1, "TEE");
    assert!(
        logged[0].2.contains("999"),
        "the wrong row is kept: {}",
        logged[0].2
    );
    assert!(
        reconciler.reconcile(false).await.unwrap().is_empty(),
        "nothing left to fix"
    );

    // A repair checked at a version the projector has since moved past is not made: the
    // newer row stays, and the next run checks it afresh.
    let stale = stockade_projections::reconcile::Correction {
        locations: Vec::new(),
        sku: "TEE".into(),
        found: good.clone(),
        expected: bad.clone(),
    };
    sell(&inventory, &tee, 1).await;
    projector.catch_up().await.unwrap();
    let moved = models.stock(&tee).await.unwrap().unwrap();
    assert!(moved.version > good.version);
    assert!(!models.repair(&stale).await.unwrap());
    assert_eq!(models.stock(&tee).await.unwrap().unwrap(), moved);
    assert!(reconciler.reconcile(false).await.unwrap().is_empty());
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_past_the_hold_budget_is_checked_from_its_snapshot_and_not_kept() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let inventory = Inventory::open(
        InventoryConfig::memory()
            .engine(stockade_engine::EngineConfig {
                snapshot_every: 4,
                ..test_engine()
            })
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let tee = register(&inventory, "TEE", 100).await;
    for _ in 0..40 {
        inventory
            .reserve(&tee, Quantity::new(1), ReserveOptions::default())
            .await
            .unwrap();
    }
    sell(&inventory, &tee, 2).await;
    let store = inventory.store();
    let stream = stockade_store::StreamName::for_sku(&tee);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.load_snapshot(&stream).await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot was taken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let models = ReadModels::in_memory().unwrap();
    Projector::new(store.clone(), models.clone(), NoticeHub::new())
        .catch_up()
        .await
        .unwrap();

    // A budget of no holds: nothing is kept, every row is checked from the snapshot.
    let mut reconciler = Reconciler::with_hold_budget(store.clone(), models.clone(), 0);
    assert!(reconciler.reconcile(false).await.unwrap().is_empty());
    assert_eq!(reconciler.kept(), 0, "a state past the budget is not kept");

    let good = models.stock(&tee).await.unwrap().unwrap();
    assert_eq!(good.level.reserved, 40);
    let mut bad = good.clone();
    bad.level.reserved = 3;
    models.put_stock_row(bad.clone()).await.unwrap();
    let corrections = reconciler.reconcile(false).await.unwrap();
    assert_eq!(corrections.len(), 1);
    assert_eq!(corrections[0].expected, good);
    assert_eq!(models.stock(&tee).await.unwrap().unwrap(), good);

    // The default budget keeps a state this small.
    let mut keeping = Reconciler::new(store, models);
    assert!(keeping.reconcile(false).await.unwrap().is_empty());
    assert_eq!(keeping.kept(), 1);
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_taken_before_three_sales_keeps_the_sales() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let inventory = open(&clock).await;
    let tee = register(&inventory, "COUNTED", 20).await;
    clock.advance(Duration::from_secs(60));
    // The count: 18 on the shelf at this instant (two units went missing).
    let counted_at = clock_now(&clock);
    clock.advance(Duration::from_secs(30));
    let between = clock_now(&clock);
    clock.advance(Duration::from_secs(30));
    for _ in 0..3 {
        sell(&inventory, &tee, 1).await;
        clock.advance(Duration::from_secs(5));
    }
    assert_eq!(on_hand(&inventory, &tee).await, 17);
    let after_sales = clock_now(&clock);
    clock.advance(Duration::from_secs(60));

    let csv = format!("sku,counted_on_hand,counted_at\nCOUNTED,18,{counted_at}\n");
    let counts = parse_counts(&csv).unwrap();
    let preview = apply_counts(&inventory, &counts, true).await.unwrap();
    assert_eq!(preview[0].outcome, "would apply");
    assert_eq!(
        on_hand(&inventory, &tee).await,
        17,
        "a dry run writes nothing"
    );

    let done = apply_counts(&inventory, &counts, false).await.unwrap();
    assert_eq!(done[0].on_hand_then, Some(20));
    assert_eq!(done[0].delta, -2);
    assert_eq!(done[0].outcome, "applied");
    // 20 − 3 sold − 2 missing: the three sales after the count still count. Setting the
    // count outright (18) would have erased them.
    assert_eq!(on_hand(&inventory, &tee).await, 15);

    let again = apply_counts(&inventory, &counts, false).await.unwrap();
    assert_eq!(again[0].outcome, "already applied");
    assert_eq!(on_hand(&inventory, &tee).await, 15);

    // A second count, taken after the sales (but before the first was applied), finds 14:
    // one more unit gone. The log's 17 at that instant, less the 2 the first count has
    // since corrected, is 15, so the delta is −1, not −3.
    let csv = format!("sku,counted_on_hand,counted_at\nCOUNTED,14,{after_sales}\n");
    let second = apply_counts(&inventory, &parse_counts(&csv).unwrap(), false)
        .await
        .unwrap();
    assert_eq!(
        (second[0].on_hand_then, second[0].delta),
        (Some(15), -1),
        "{second:?}"
    );
    assert_eq!(on_hand(&inventory, &tee).await, 14);
    // A count older than one already applied is refused: the later one set the truth.
    let csv = format!("sku,counted_on_hand,counted_at\nCOUNTED,30,{between}\n");
    let stale = apply_counts(&inventory, &parse_counts(&csv).unwrap(), false)
        .await
        .unwrap();
    assert!(stale[0].outcome.contains("older than"), "{stale:?}");
    assert_eq!(on_hand(&inventory, &tee).await, 14);

    // The adjustment's notice is a scheduled sync, as a webhook receiver sees it.
    let models = ReadModels::in_memory().unwrap();
    let mut projector = Projector::new(inventory.store(), models.clone(), NoticeHub::new());
    projector.catch_up().await.unwrap();
    let notices = models.notices(0, 100).await.unwrap();
    let last = notices.last().unwrap();
    assert_eq!(
        stockade_wire::webhook::trigger(&last.cause),
        "SCHEDULED_SYNC"
    );
    assert_eq!(checked_log(&inventory.store()).await.oversold_units, 0);

    // A count for a SKU that did not exist yet is refused, and names why.
    let early =
        parse_counts("sku,counted_on_hand,counted_at\nGHOST,5,2020-01-01T00:00:00Z").unwrap();
    let refused = apply_counts(&inventory, &early, false).await.unwrap();
    assert!(
        refused[0].outcome.contains("not registered"),
        "{:?}",
        refused[0]
    );
    inventory.shutdown().await;
}

fn clock_now(clock: &ManualClock) -> Timestamp {
    use stockade_engine::Clock;
    clock.now()
}

async fn on_hand(inventory: &Inventory, sku: &stockade_domain::Sku) -> u64 {
    inventory
        .stock(sku)
        .await
        .unwrap()
        .view
        .limit
        .unwrap()
        .get()
}

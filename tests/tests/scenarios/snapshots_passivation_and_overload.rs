//! Actors snapshot as they go and recover from snapshot + tail; idle actors stop and come
//! back with the same state; a SKU with too many commands waiting says `Overloaded`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use stockade_domain::{Principal, Quantity};
use stockade_engine::{EngineConfig, Error, Inventory, InventoryConfig, Origin, ReserveOptions};
use stockade_store::{EventStore, MemoryStore, StreamName};
use stockade_tests::PATIENCE;
use stockade_tests::engine::{Fault, FaultyStore, checked_log, open_on, register, test_engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_from_a_snapshot_keeps_stock_and_idempotency_keys() {
    let dir = tempfile::tempdir().unwrap();
    let engine = EngineConfig {
        snapshot_every: 10,
        ..test_engine()
    };
    let open = || Inventory::open(InventoryConfig::sqlite(dir.path()).engine(engine.clone()));
    let inventory = open().await.unwrap();
    let item = register(&inventory, "SNAP", 100).await;
    let keyed = |n: u32| ReserveOptions {
        origin: Origin::default()
            .principal(Principal::new("shop").unwrap())
            .idempotency_key(format!("k-{n}")),
        ..ReserveOptions::default()
    };
    let mut first = Vec::new();
    for n in 0..5 {
        let held = inventory.reserve(&item, Quantity::new(1), keyed(n));
        first.push(held.await.unwrap());
    }
    // Traffic after the keyed holds, so that snapshots are due (a snapshot waits for at
    // least as many events as the state it would write holds).
    for _ in 0..60 {
        let held = inventory.reserve(&item, Quantity::new(1), ReserveOptions::default());
        let held = held.await.unwrap();
        inventory
            .release(held.id, &Origin::default())
            .await
            .unwrap();
    }
    // Snapshots are written in the background.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while inventory.stats().snapshots == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = inventory.stock(&item).await.unwrap();
    assert!(inventory.stats().snapshots >= 1, "{:?}", inventory.stats());
    let store = inventory.store();
    let snapshot = store
        .load_snapshot(&StreamName::for_sku(&item))
        .await
        .unwrap()
        .unwrap();
    assert!(snapshot.revision >= 9);
    drop(store);
    inventory.shutdown().await;

    let inventory = open().await.unwrap();
    let after = inventory.stock(&item).await.unwrap();
    assert_eq!((after.view, after.version), (before.view, before.version));
    // A key recorded before the snapshot is still recognised after recovery from it.
    let retry = inventory
        .reserve(&item, Quantity::new(1), keyed(0))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.id, first[0].id);
    checked_log(&inventory.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_actor_without_live_holds_stops_and_comes_back_intact() {
    let engine = EngineConfig {
        idle_timeout: Duration::from_millis(40),
        ..test_engine()
    };
    let inventory = open_on(Arc::new(MemoryStore::new()), engine).await;
    let idle = register(&inventory, "IDLE", 3).await;
    let busy = register(&inventory, "BUSY", 3).await;
    inventory
        .reserve(&busy, Quantity::new(1), ReserveOptions::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while inventory.stats().passivations == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        inventory.stats().passivations,
        1,
        "only the SKU with no hold stops"
    );
    assert_eq!(inventory.active_skus(), 1);
    // It comes back on the next command, from the log.
    let stock = inventory.stock(&idle).await.unwrap();
    assert_eq!(stock.view.limit, Some(Quantity::new(3)));
    assert_eq!(stock.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_with_a_full_mailbox_answers_overloaded() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // Appends after the registration take a while, so commands pile up.
    let slow = Arc::new(FaultyStore::new(memory, |n| {
        if n == 0 {
            Fault::None
        } else {
            Fault::Slow(Duration::from_millis(200))
        }
    }));
    let engine = EngineConfig {
        mailbox_capacity: 8,
        ..test_engine()
    };
    let inventory = open_on(slow, engine).await;
    let item = register(&inventory, "HOT", 1_000).await;
    let attempts = join_all(
        (0..64).map(|_| inventory.reserve(&item, Quantity::new(1), ReserveOptions::default())),
    )
    .await;
    let overloaded = attempts
        .iter()
        .filter(|a| matches!(a, Err(Error::Overloaded { .. })))
        .count();
    let held = attempts.iter().filter(|a| a.is_ok()).count();
    assert_eq!(
        overloaded + held,
        64,
        "only successes and overloads: {attempts:?}"
    );
    assert!(
        overloaded >= 56 && held >= 1,
        "held {held}, overloaded {overloaded}"
    );
    assert_eq!(
        checked_log(&inventory.store()).await.reserved as usize,
        held,
        "an overloaded command writes nothing"
    );
}

/// A SKU replayed from far back at load (no snapshot, or one this build cannot read) is
/// snapshotted then, so the replay is paid once, not at every cold read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_replay_at_load_is_snapshotted_at_once() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // Written with snapshots out of the way.
    let never = EngineConfig {
        snapshot_every: 1_000_000,
        ..test_engine()
    };
    let inventory = open_on(memory.clone(), never).await;
    let item = register(&inventory, "REPLAYED", 1_000).await;
    for _ in 0..40 {
        let held = inventory
            .reserve(&item, Quantity::new(1), ReserveOptions::default())
            .await
            .unwrap();
        inventory.commit(held.id, &Origin::default()).await.unwrap();
    }
    inventory.shutdown().await;
    let stream = StreamName::for_sku(&item);
    assert!(memory.load_snapshot(&stream).await.unwrap().is_none());

    let engine = EngineConfig {
        snapshot_every: 10,
        ..test_engine()
    };
    let reopened = open_on(memory.clone(), engine).await;
    // A read only: no write follows the load.
    assert_eq!(reopened.stock(&item).await.unwrap().version, 81);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut snapshot = None;
    while snapshot.is_none() && tokio::time::Instant::now() < deadline {
        snapshot = memory.load_snapshot(&stream).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(snapshot.map(|s| s.revision), Some(80));
}

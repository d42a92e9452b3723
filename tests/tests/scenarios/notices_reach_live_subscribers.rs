//! The projector following the log live: each change reaches a hub subscriber as one
//! notice, numbered in order, with the levels before and after, the cause and the scopes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::time::Duration;

use stockade_domain::{OrderId, Quantity};
use stockade_engine::{Inventory, InventoryConfig, Origin, ReserveOptions};
use stockade_projections::{HubMessage, HubSubscriber, NoticeHub, Projector, ReadModels, Status};
use stockade_tests::PATIENCE;
use stockade_tests::engine::{register, test_engine};

/// An engine on SQLite in a directory, with a projector following its log live and a
/// hub subscriber; `stop` ends the projector, `running` is its task.
struct Live {
    inventory: Inventory,
    models: ReadModels,
    subscriber: HubSubscriber,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<()>,
}

impl Live {
    async fn start(dir: &std::path::Path) -> Live {
        let inventory = Inventory::open(InventoryConfig::sqlite(dir).engine(test_engine()))
            .await
            .unwrap();
        let models = ReadModels::open(&dir.join("projections.db")).unwrap();
        let hub = NoticeHub::new();
        let subscriber = hub.subscribe(64);
        let projector = Projector::new(inventory.store(), models.clone(), hub.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(projector.run(async move {
            let _ = stopped.await;
        }));
        Live {
            inventory,
            models,
            subscriber,
            stop,
            running,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_a_live_subscriber_as_one_notice() {
    let dir = tempfile::tempdir().unwrap();
    let Live {
        inventory,
        models,
        mut subscriber,
        stop,
        running,
    } = Live::start(dir.path()).await;

    let sku = register(&inventory, "LIVE", 4).await;
    let options = ReserveOptions {
        order_id: Some(OrderId::new("order-9").unwrap()),
        ..ReserveOptions::default()
    };
    let held = inventory
        .reserve(&sku, Quantity::new(3), options)
        .await
        .unwrap();
    inventory.commit(held.id, &Origin::default()).await.unwrap();

    let mut notices = Vec::new();
    while notices.len() < 3 {
        match tokio::time::timeout(PATIENCE, subscriber.recv())
            .await
            .unwrap()
        {
            Some(HubMessage::Notice(n)) => notices.push(n),
            other => panic!("unexpected {other:?}"),
        }
    }
    let seqs: Vec<u64> = notices.iter().map(|n| n.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let reserve = &notices[1];
    assert_eq!(reserve.cause.command, "reserve");
    assert_eq!(reserve.cause.order_id.as_deref(), Some("order-9"));
    assert_eq!(reserve.cause.channel.as_deref(), Some("direct"));
    assert_eq!(
        (reserve.previous.available, reserve.current.available),
        (Some(4), Some(1))
    );
    assert_eq!(
        (reserve.previous_status, reserve.status),
        (Status::InStock, Status::LowStock)
    );
    assert_eq!(reserve.scopes, ["inventory.LIVE", "products.LIVE"]);
    let commit = &notices[2];
    assert_eq!(commit.cause.command, "commit");
    // A commit names its reservation, not its order: the order comes from the state.
    assert_eq!(commit.cause.order_id.as_deref(), Some("order-9"));
    assert_eq!(
        (commit.current.on_hand, commit.current.reserved),
        (Some(1), 0)
    );
    assert_eq!(commit.version, 3);

    // The read models say the same, and the reservation is findable by order.
    let row = models.stock(&sku).await.unwrap().unwrap();
    assert_eq!(
        (row.level.available, row.status, row.version),
        (Some(1), Status::LowStock, 3)
    );
    let lines = models.order("order-9").await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].state, "committed");
    let alerts = models.alerts(0, 10).await.unwrap();
    assert_eq!(
        alerts.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        ["low_stock"]
    );

    drop(stop);
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap();
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_last_notices_and_everything_a_channel_has_yet_to_read() {
    let inventory = Inventory::open(InventoryConfig::memory().engine(test_engine()))
        .await
        .unwrap();
    let sku = register(&inventory, "PRUNED", 100).await;
    for _ in 0..39 {
        inventory
            .reserve(&sku, Quantity::new(1), ReserveOptions::default())
            .await
            .unwrap();
    }
    let models = ReadModels::in_memory().unwrap();
    let mut projector = Projector::new(inventory.store(), models.clone(), NoticeHub::new());
    assert_eq!(projector.catch_up().await.unwrap().events, 40);
    // A webhook that has read up to 25 holds everything after it.
    models.set_cursor("webhook:slow", 25).await.unwrap();
    assert_eq!(models.prune_notices(10).await.unwrap(), 25);
    let left: Vec<u64> = models
        .notices(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|n| n.seq)
        .collect();
    assert_eq!(left, (26..=40).collect::<Vec<_>>());
    // Once it has read everything, only the last 10 stay.
    models.set_cursor("webhook:slow", 40).await.unwrap();
    assert_eq!(models.prune_notices(10).await.unwrap(), 5);
    assert_eq!(
        models.notices(0, 100).await.unwrap().first().unwrap().seq,
        31
    );
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_notice_shows_the_hold_coming_back_and_raises_back_in_stock() {
    use std::sync::Arc;

    use stockade_domain::Timestamp;
    use stockade_engine::ManualClock;

    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let inventory = Inventory::open(
        InventoryConfig::memory()
            .engine(test_engine())
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let sku = register(&inventory, "LAPSING", 1).await;
    let options = ReserveOptions {
        ttl: Some(Duration::from_secs(60)),
        order_id: Some(OrderId::new("order-lapse").unwrap()),
        ..ReserveOptions::default()
    };
    inventory
        .reserve(&sku, Quantity::new(1), options)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let models = ReadModels::in_memory().unwrap();
    let mut projector = Projector::new(inventory.store(), models.clone(), NoticeHub::new());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while projector.catch_up().await.unwrap().events < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no expiry written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let notices = models.notices(0, 10).await.unwrap();
    let expiry = &notices[2];
    assert_eq!(expiry.cause.command, "expire");
    assert_eq!(expiry.cause.order_id.as_deref(), Some("order-lapse"));
    assert_eq!(
        (expiry.previous.available, expiry.current.available),
        (Some(0), Some(1))
    );
    assert_eq!(
        (expiry.previous_status, expiry.status),
        (Status::OutOfStock, Status::LowStock)
    );
    let kinds: Vec<String> = models
        .alerts(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["low_stock", "out_of_stock", "back_in_stock"]);
    inventory.shutdown().await;
}

/// A projector that starts on read models already at the head of the log has nothing to
/// project, yet its watermark must reach the head at once: readers that wait for it (MCP
/// sessions, before each result) would otherwise wait out their timeout on every call
/// after a restart, until the next write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_reaches_the_head_on_a_restart_with_nothing_to_project() {
    let dir = tempfile::tempdir().unwrap();
    stockade_tests::projection::mixed_history(dir.path(), 2, 40, 3).await;
    let store: std::sync::Arc<dyn stockade_store::EventStore> = std::sync::Arc::new(
        stockade_store::SqliteStore::open(dir.path().join("stockade.db")).unwrap(),
    );
    let head = store.head().await.unwrap();
    let models = ReadModels::open(&dir.path().join("projections.db")).unwrap();
    let mut first = Projector::new(store.clone(), models.clone(), NoticeHub::new());
    assert_eq!(first.catch_up().await.unwrap().position, head);

    // "Restart": a new hub and projector on the caught-up read models.
    let hub = NoticeHub::new();
    assert!(hub.published() < head);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let projector = Projector::new(store, models, hub.clone());
    let running = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    assert!(
        hub.wait_published(head, PATIENCE).await,
        "the watermark stayed at {:?}, the head is {head:?}",
        hub.published()
    );
    let _ = stop.send(());
    running.await.unwrap();
}

/// A backorder filled by an arrival is its own notice, naming the filled reservation and
/// its order (not the arrival's), and webhooks say `BACKORDER_FILLED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_backorder_names_its_reservation_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let Live {
        inventory,
        models: _,
        mut subscriber,
        stop,
        running,
    } = Live::start(dir.path()).await;
    let origin = Origin::default();
    let sku = register(&inventory, "PRE", 0).await;
    inventory
        .set_backorder_limit(&sku, Quantity::new(5), None, &origin)
        .await
        .unwrap();
    let options = ReserveOptions {
        order_id: Some(OrderId::new("order-pre").unwrap()),
        ..ReserveOptions::default()
    };
    let held = inventory
        .reserve(&sku, Quantity::new(2), options)
        .await
        .unwrap();
    let reference = stockade_domain::ReceiptRef::new("PO-9").unwrap();
    let eta = stockade_domain::Timestamp::from_millis(4_000_000_000_000);
    inventory
        .expect_receipt(
            &sku,
            stockade_engine::Receipt {
                reference: reference.clone(),
                qty: Quantity::new(2),
                eta,
                location: None,
            },
            &origin,
        )
        .await
        .unwrap();
    inventory
        .receive_receipt(&sku, reference, None, &origin)
        .await
        .unwrap();
    let mut notices = Vec::new();
    while notices.len() < 6 {
        match tokio::time::timeout(PATIENCE, subscriber.recv())
            .await
            .unwrap()
        {
            Some(HubMessage::Notice(n)) => notices.push(n),
            other => panic!("unexpected {other:?}"),
        }
    }
    let commands: Vec<&str> = notices.iter().map(|n| n.cause.command.as_str()).collect();
    assert_eq!(
        commands,
        [
            "register",
            "set_backorder_limit",
            "reserve",
            "expect_receipt",
            "receive_receipt",
            "fill_backorder"
        ]
    );
    let fill = &notices[5];
    assert_eq!(
        fill.cause.reservation_id.as_deref(),
        Some(held.id.to_string().as_str())
    );
    assert_eq!(fill.cause.order_id.as_deref(), Some("order-pre"));
    // Nothing on hand: backorders alone, then a pre-order once stock is expected.
    assert_eq!(notices[2].status, Status::Backorder);
    assert_eq!(notices[3].status, Status::Preorder);
    assert_eq!(notices[2].current.backordered, 2);
    assert_eq!(fill.current.backordered, 0);
    let webhook = stockade_wire::webhook::WebhookEvent::from(fill.as_ref());
    assert_eq!(webhook.payload.trigger, "BACKORDER_FILLED");
    assert_eq!(
        webhook.payload.reservation_id.as_deref(),
        Some(held.id.to_string().as_str())
    );
    stop.send(()).unwrap();
    running.await.unwrap();
    inventory.shutdown().await;
}

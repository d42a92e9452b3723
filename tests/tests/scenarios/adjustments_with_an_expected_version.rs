//! An adjustment can name the version it was decided on and is refused if the SKU moved;
//! a count below what is held is accepted, and the SKU turns short. An order can name the
//! versions it was decided on too: one moved SKU refuses the whole order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use stockade_domain::{Quantity, StockChange};
use stockade_engine::{Adjustment, Error, Line, Origin, ReserveOptions};
use stockade_tests::engine::{checked_log, open_sqlite, register};

fn count(n: u64, expected_version: Option<u64>) -> Adjustment {
    Adjustment {
        location: None,
        change: StockChange::Count(Quantity::new(n)),
        reason: "cycle count".into(),
        reference: Some("sheet-12".into()),
        expected_version,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_is_a_conflict_and_a_low_count_makes_the_sku_short() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let item = register(&inventory, "COUNTED", 5).await;
    let read = inventory.stock(&item).await.unwrap();
    // Someone reserves after our read.
    let held = inventory
        .reserve(&item, Quantity::new(3), ReserveOptions::default())
        .await
        .unwrap();
    let stale = inventory
        .adjust(&item, count(2, Some(read.version)), &Origin::default())
        .await;
    assert!(
        matches!(
            stale,
            Err(Error::Conflict {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{stale:?}"
    );

    // Read again, decide again: 2 counted while 3 are held is a fact, and the hold is at risk.
    let read = inventory.stock(&item).await.unwrap();
    let adjusted = inventory
        .adjust(&item, count(2, Some(read.version)), &Origin::default())
        .await
        .unwrap();
    assert_eq!(
        (adjusted.previous, adjusted.current),
        (Quantity::new(5), Quantity::new(2))
    );
    assert_eq!(adjusted.at_risk, vec![held.id]);
    let short = inventory
        .reserve(&item, Quantity::new(1), ReserveOptions::default())
        .await;
    assert!(
        matches!(&short, Err(Error::Rejected { rejection, .. }) if rejection.code() == "short"),
        "{short:?}"
    );
    let at_risk = inventory.commit(held.id, &Origin::default()).await;
    assert!(
        matches!(&at_risk, Err(Error::Rejected { rejection, .. }) if rejection.code() == "at_risk"),
        "{at_risk:?}"
    );
    checked_log(&inventory.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_decided_on_a_moved_version_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let a = register(&inventory, "EV-A", 5).await;
    let b = register(&inventory, "EV-B", 5).await;
    let read_a = inventory.stock(&a).await.unwrap().version;
    let read_b = inventory.stock(&b).await.unwrap().version;
    // B moves after the read.
    inventory
        .reserve(&b, Quantity::new(1), ReserveOptions::default())
        .await
        .unwrap();
    let lines = vec![
        Line {
            placement: Default::default(),
            sku: a.clone(),
            qty: Quantity::new(2),
        },
        Line {
            placement: Default::default(),
            sku: b.clone(),
            qty: Quantity::new(2),
        },
    ];
    let decided_on = |va: u64, vb: u64| ReserveOptions {
        origin: Origin::default().idempotency_key(format!("ev-{va}-{vb}")),
        expected_versions: [(a.clone(), va), (b.clone(), vb)].into(),
        ..ReserveOptions::default()
    };
    let stale = inventory
        .reserve_order(lines.clone(), decided_on(read_a, read_b))
        .await;
    assert!(
        matches!(&stale, Err(Error::Conflict { sku, expected, actual }) if *sku == b && *expected == read_b && *actual == read_b + 1),
        "{stale:?}"
    );
    let level = |s| inventory.stock(s);
    assert_eq!(
        level(&a).await.unwrap().view.reserved,
        Quantity::new(0),
        "A rolled back"
    );
    assert_eq!(level(&b).await.unwrap().view.reserved, Quantity::new(1));

    // Decided on what is there now: held. A retry under its key replays, although the
    // versions it names have moved since (by the order itself).
    let now_a = level(&a).await.unwrap().version;
    let now_b = level(&b).await.unwrap().version;
    let held = inventory
        .reserve_order(lines.clone(), decided_on(now_a, now_b))
        .await
        .unwrap();
    let again = inventory
        .reserve_order(lines, decided_on(now_a, now_b))
        .await
        .unwrap();
    assert_eq!(again.id, held.id);
    assert!(again.replayed);
    assert_eq!(level(&b).await.unwrap().view.reserved, Quantity::new(3));
    checked_log(&inventory.store()).await;
}

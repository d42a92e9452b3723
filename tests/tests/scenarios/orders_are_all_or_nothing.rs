//! An order over several SKUs holds every line or none, and can be committed or released
//! by its order id, also after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::sync::Arc;

use stockade_domain::{OrderId, Quantity, Resolution, Sku};
use stockade_engine::{Error, Line, LineStatus, Origin, ReserveOptions};
use stockade_store::{EventStore, MemoryStore};
use stockade_tests::engine::{
    Fault, FaultyStore, checked_log, open_on, open_sqlite, register, test_engine,
};

/// An order of `a` units of one SKU and `b` of another.
fn two_lines(one: &Sku, a: u64, two: &Sku, b: u64) -> Vec<Line> {
    vec![
        Line {
            placement: Default::default(),
            sku: one.clone(),
            qty: Quantity::new(a),
        },
        Line {
            placement: Default::default(),
            sku: two.clone(),
            qty: Quantity::new(b),
        },
    ]
}

fn order(id: &str) -> ReserveOptions {
    ReserveOptions {
        order_id: Some(OrderId::new(id).unwrap()),
        ..ReserveOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_line_releases_the_lines_already_held() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let shirt = register(&inventory, "SHIRT", 5).await;
    let cap = register(&inventory, "CAP", 1).await;
    let lines = two_lines(&shirt, 2, &cap, 3);
    let refused = inventory.reserve_order(lines, order("ORD-1")).await;
    match refused {
        Err(Error::Rejected { sku, rejection }) => {
            assert_eq!(sku, cap);
            assert_eq!(rejection.code(), "insufficient_stock");
        }
        other => panic!("expected the cap line to be refused, got {other:?}"),
    }
    // The shirt line was held and given back: nothing is held anywhere.
    for sku in [&shirt, &cap] {
        assert_eq!(
            inventory.stock(sku).await.unwrap().view.reserved,
            Quantity::ZERO
        );
    }
    let report = checked_log(&inventory.store()).await;
    assert_eq!((report.reserved, report.released), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_committed_by_its_id_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let order_id = OrderId::new("ORD-2").unwrap();
    let (shirt, cap, id) = {
        let inventory = open_sqlite(dir.path()).await;
        let shirt = register(&inventory, "SHIRT", 5).await;
        let cap = register(&inventory, "CAP", 5).await;
        let lines = two_lines(&shirt, 2, &cap, 1);
        let held = inventory
            .reserve_order(lines, order("ORD-2"))
            .await
            .unwrap();
        assert_eq!(held.lines.len(), 2);
        inventory.shutdown().await;
        (shirt, cap, held.id)
    };
    let inventory = open_sqlite(dir.path()).await;
    let committed = inventory
        .commit_order(&order_id, &Origin::default())
        .await
        .unwrap();
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].id, id);
    let status = inventory.reservation(id).await.unwrap();
    for (_, line) in &status.lines {
        assert_eq!(line, &LineStatus::Resolved(Resolution::Committed));
    }
    assert_eq!(
        inventory.stock(&shirt).await.unwrap().view.limit,
        Some(Quantity::new(3))
    );
    assert_eq!(
        inventory.stock(&cap).await.unwrap().view.limit,
        Some(Quantity::new(4))
    );
    // Releasing a committed order is refused, line by line.
    let late = inventory.release_order(&order_id, &Origin::default()).await;
    assert!(matches!(late, Err(Error::Rejected { .. })), "{late:?}");
}

/// A commit reaches each line's SKU on its own; when one line's append fails, the other is
/// sold. The caller must hear that, not an error for a call that changed state, and the
/// same call again must finish the order rather than fail on the line already sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_sold_some_lines_says_which_and_a_repeat_finishes_it() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // Appends: 0-1 registrations, 2-3 the two lines, 4-5 their commits (one fails).
    let faulty = Arc::new(FaultyStore::new(memory.clone(), |n| match n {
        4 => Fault::Fail,
        _ => Fault::None,
    }));
    let inventory = open_on(faulty, test_engine()).await;
    let shirt = register(&inventory, "SHIRT", 5).await;
    let cap = register(&inventory, "CAP", 5).await;
    let lines = two_lines(&shirt, 2, &cap, 1);
    let held = inventory
        .reserve_order(lines, ReserveOptions::default())
        .await
        .unwrap();

    let first = inventory.commit(held.id, &Origin::default()).await;
    let first = first.expect("a commit that sold a line is not an error");
    assert_eq!((first.lines.len(), first.failed.len()), (1, 1), "{first:?}");
    assert!(!first.complete());
    let (sold, failed) = (first.lines[0].sku.clone(), first.failed[0].0.clone());
    assert_ne!(sold, failed);
    assert!(
        matches!(first.failed[0].1, Error::Unavailable(_)),
        "{first:?}"
    );
    let status = inventory.reservation(held.id).await.unwrap();
    for (sku, line) in &status.lines {
        if *sku == sold {
            assert_eq!(line, &LineStatus::Resolved(Resolution::Committed));
        } else {
            assert!(matches!(line, LineStatus::Live { .. }), "{line:?}");
        }
    }

    // The same call, unkeyed: the sold line counts as done, the other is sold now.
    let again = inventory.commit(held.id, &Origin::default()).await.unwrap();
    assert!(again.complete(), "{again:?}");
    assert_eq!(again.lines.len(), 2);
    for sku in [&shirt, &cap] {
        let level = inventory.stock(sku).await.unwrap();
        assert_eq!(level.view.reserved, Quantity::ZERO);
    }
    // A third time nothing is left to do: "already committed", as for a single line.
    let third = inventory.commit(held.id, &Origin::default()).await;
    assert!(
        matches!(
            &third,
            Err(Error::Rejected {
                rejection: stockade_domain::Rejection::AlreadyResolved {
                    resolution: Resolution::Committed,
                    ..
                },
                ..
            })
        ),
        "{third:?}"
    );
    let report = checked_log(&memory).await;
    assert_eq!(report.committed, 2);
}

/// The review's crash: the process dies after one line of a keyed order is written and
/// before the other is. Nobody was told of the order, so nobody releases it; the engine
/// that opens the log next must, before it takes the key again, without any retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cut_short_by_a_crash_is_released_at_the_next_start() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // Appends: 0-1 registrations, 2-3 the two lines; the second never lands.
    let faulty = Arc::new(FaultyStore::new(memory.clone(), |n| match n {
        3 => Fault::Held,
        _ => Fault::None,
    }));
    let first = open_on(faulty, test_engine()).await;
    let shirt = register(&first, "SHIRT", 5).await;
    let cap = register(&first, "CAP", 5).await;
    let lines = two_lines(&shirt, 2, &cap, 1);
    let keyed = ReserveOptions {
        order_id: Some(OrderId::new("ORD-CUT").unwrap()),
        origin: Origin::default().idempotency_key("cart-cut"),
        ..ReserveOptions::default()
    };
    let cut = {
        let (first, lines, keyed) = (first.clone(), lines.clone(), keyed.clone());
        tokio::spawn(async move { first.reserve_order(lines, keyed).await })
    };
    // Wait until one line is written, then "crash": the order is abandoned mid-way.
    let mut landed = None;
    for _ in 0..200 {
        for sku in [&shirt, &cap] {
            if first.stock(sku).await.unwrap().view.reserved > Quantity::ZERO {
                landed = Some(sku.clone());
            }
        }
        if landed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let landed = landed.expect("one line lands");
    cut.abort();
    drop(first);

    let second = open_on(memory.clone(), test_engine()).await;
    // No client retries: the start-up pass alone releases the line that landed.
    let mut released = false;
    for _ in 0..300 {
        if second.stock(&landed).await.unwrap().view.reserved == Quantity::ZERO {
            released = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(released, "the lone line of {landed} is still held");
    // A retry under the key learns the order is gone, and holds nothing.
    let retry = second.reserve_order(lines, keyed).await;
    assert!(retry.is_err(), "{retry:?}");
    for sku in [&shirt, &cap] {
        assert_eq!(
            second.stock(sku).await.unwrap().view.reserved,
            Quantity::ZERO,
            "{sku}"
        );
    }
    checked_log(&memory).await;
}

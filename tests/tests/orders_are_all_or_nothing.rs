//! An order over several SKUs holds every line or none, and can be committed or released
//! by its order id, also after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use stockade_domain::{OrderId, Quantity, Resolution};
use stockade_engine::{Error, Line, LineStatus, Origin, ReserveOptions};
use stockade_tests::engine::{checked_log, open_sqlite, register};

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
    let lines = vec![
        Line {
            sku: shirt.clone(),
            qty: Quantity::new(2),
        },
        Line {
            sku: cap.clone(),
            qty: Quantity::new(3),
        },
    ];
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
        let lines = vec![
            Line {
                sku: shirt.clone(),
                qty: Quantity::new(2),
            },
            Line {
                sku: cap.clone(),
                qty: Quantity::new(1),
            },
        ];
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

//! An adjustment can name the version it was decided on and is refused if the SKU moved;
//! a count below what is held is accepted, and the SKU turns short.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use stockade_domain::{Quantity, StockChange};
use stockade_engine::{Adjustment, Error, Origin, ReserveOptions};
use stockade_tests::engine::{checked_log, open_sqlite, register};

fn count(n: u64, expected_version: Option<u64>) -> Adjustment {
    Adjustment {
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

//! Two engines on one SQLite file (two nodes sharing a store) contend on the same SKU: the
//! expected-revision fence makes the loser of each race re-read and decide again, so the
//! SKU is never oversold and both keep serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use futures::future::join_all;
use stockade_domain::Quantity;
use stockade_engine::{Error, Origin, ReserveOptions};
use stockade_tests::engine::{checked_log, open_sqlite, physical, sku};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_file_never_oversell() {
    let dir = tempfile::tempdir().unwrap();
    let a = open_sqlite(dir.path()).await;
    let b = open_sqlite(dir.path()).await;
    let hot = sku("SHARED-HOT");
    a.register(&hot, physical(50), &Origin::default())
        .await
        .unwrap();

    // Waves of buyers on both engines at once, so each keeps losing races to the other.
    let mut won = [0, 0];
    for _wave in 0..10 {
        let buyers = (0..40).map(|i| {
            let engine = if i % 2 == 0 { a.clone() } else { b.clone() };
            let hot = hot.clone();
            tokio::spawn(async move {
                let outcome = engine
                    .reserve(&hot, Quantity::new(1), ReserveOptions::default())
                    .await;
                (i % 2, outcome)
            })
        });
        for outcome in join_all(buyers).await {
            match outcome.unwrap() {
                (engine, Ok(_)) => won[engine] += 1,
                (_, Err(Error::Rejected { rejection, .. })) => {
                    assert_eq!(rejection.code(), "insufficient_stock")
                }
                (_, Err(other)) => panic!("unexpected error {other:?}"),
            }
        }
    }
    assert_eq!(won[0] + won[1], 50);
    // The loser of each race re-read and carried on: both engines sold.
    assert!(won[0] > 0 && won[1] > 0, "{won:?}");
    let conflicts = a.stats().conflicts + b.stats().conflicts;
    assert!(
        conflicts > 0,
        "the engines never raced; the test proves nothing"
    );

    // Both engines agree on the durable state once each has re-read.
    let report = checked_log(&a.store()).await;
    assert_eq!(report.reserved, 50);
    for engine in [&a, &b] {
        let stock = engine.stock(&hot).await.unwrap();
        assert_eq!(stock.view.reserved, Quantity::new(50));
    }
}

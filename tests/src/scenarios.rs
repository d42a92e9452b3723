//! Engine concurrency scenarios written once and run on every backend: the SQLite files in
//! `tests/tests/scenarios/` run them always, its `on_eventstoredb` module when a server is set.

use std::collections::HashSet;

use futures::future::join_all;
use stockade_domain::{LocationId, Placement, PoolConfig, Quantity};
use stockade_engine::{Error, Line, Origin, ReserveOptions};

use crate::backend::Backend;
use crate::engine::{checked_log, located, physical, register, sku};

/// A thousand buyers race for one unit: exactly one reservation, in few appends.
pub async fn a_thousand_buyers_on_one_unit(backend: &Backend) {
    let inventory = backend.open().await;
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
    inventory.shutdown().await;
}

/// A SKU at four locations with one unit at each of three and none at the fourth; a
/// thousand buyers race: a third must have Berlin's unit, a third Munich's, a third take
/// any. Exactly three hold, one at each stocked location; nobody gets the empty one; the
/// parts answered are the parts in the log; and after a reopen every figure is the same.
pub async fn a_thousand_buyers_on_the_last_unit_at_each_location(backend: &Backend) {
    let inventory = backend.open().await;
    let sku = sku("LAST-AT-EACH");
    let pool = PoolConfig::at_locations(vec![
        located("berlin", 1, 1),
        located("munich", 1, 2),
        located("hamburg", 1, 3),
        located("paris", 0, 0),
    ]);
    inventory
        .register(&sku, pool, &Origin::default())
        .await
        .unwrap();
    let attempts = join_all((0..1000).map(|buyer| {
        let (inventory, sku) = (inventory.clone(), sku.clone());
        let placement = match buyer % 3 {
            0 => Placement::at(LocationId::new("berlin").unwrap()),
            1 => Placement::at(LocationId::new("munich").unwrap()),
            _ => Placement::default(),
        };
        tokio::spawn(async move {
            let line = Line {
                sku,
                qty: Quantity::new(1),
                placement,
            };
            inventory
                .reserve_order(vec![line], ReserveOptions::default())
                .await
        })
    }))
    .await;
    let mut held_at: Vec<String> = Vec::new();
    for attempt in attempts {
        match attempt.unwrap() {
            Ok(r) => {
                let parts = &r.lines[0].parts;
                assert_eq!(parts.len(), 1, "{parts:?}");
                held_at.push(parts[0].location.to_string());
            }
            Err(Error::Rejected { rejection, .. }) => {
                assert_eq!(rejection.code(), "insufficient_stock")
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    held_at.sort();
    assert_eq!(held_at, ["berlin", "hamburg", "munich"]);
    let report = checked_log(&inventory.store()).await;
    assert_eq!(report.reserved, 3);
    let figures = |view: &stockade_domain::StockView| -> Vec<(String, u64, u64)> {
        view.locations
            .iter()
            .map(|l| (l.location.to_string(), l.reserved.get(), l.available.get()))
            .collect()
    };
    let before = figures(&inventory.stock(&sku).await.unwrap().view);
    assert_eq!(
        before,
        [
            ("berlin".to_owned(), 1, 0),
            ("munich".to_owned(), 1, 0),
            ("hamburg".to_owned(), 1, 0),
            ("paris".to_owned(), 0, 0),
        ]
    );
    inventory.shutdown().await;

    let reopened = backend.open().await;
    assert_eq!(figures(&reopened.stock(&sku).await.unwrap().view), before);
    reopened.shutdown().await;
}

/// Ten thousand buyers over ten SKUs of ten units: exactly a hundred reservations, and
/// after a restart the log holds every acknowledged one and nothing else.
pub async fn ten_thousand_buyers_on_ten_skus_then_a_restart(backend: &Backend) {
    let inventory = backend.open().await;
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
    let reopened = backend.open().await;
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
    reopened.shutdown().await;
}

/// Two engines on one log (two nodes, or a misrouted writer) contend on the same SKU: the
/// expected-revision fence makes the loser of each race re-read and decide again, so the
/// SKU is never oversold and both keep serving.
pub async fn two_engines_on_one_log_never_oversell(backend: &Backend) {
    let a = backend.open().await;
    let b = backend.open().await;
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
    a.shutdown().await;
    b.shutdown().await;
}

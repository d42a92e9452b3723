//! A held reservation can be extended, partly committed or released per line and
//! quantity, and amended, all or nothing across its lines, by key exactly once (also after
//! a restart); every refusal writes nothing, and the log passes the independent audit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::time::Duration;

use stockade_domain::{Principal, Quantity, Rejection, Sku, StockChange, Timestamp};
use stockade_engine::{
    Adjustment, Error, Inventory, Line, LineStatus, ManualClock, Origin, ReserveOptions,
};
use stockade_tests::engine::{checked_log, open_with_clock, physical, rejection, sku};

const START: u64 = 1_800_000_000_000;

async fn stocked(inventory: &Inventory, name: &str, on_hand: u64) -> Sku {
    let item = sku(name);
    inventory
        .register(&item, physical(on_hand), &Origin::default())
        .await
        .unwrap();
    item
}

fn line(sku: &Sku, qty: u64) -> Line {
    Line::new(sku.clone(), Quantity::new(qty))
}

fn keyed(key: &str) -> Origin {
    Origin::default()
        .principal(Principal::new("shop").unwrap())
        .idempotency_key(key)
}

/// (reserved, on hand) of `sku` now.
async fn figures(inventory: &Inventory, sku: &Sku) -> (u64, u64) {
    let view = inventory.stock(sku).await.unwrap().view;
    (view.reserved.get(), view.limit.unwrap().get())
}

async fn held(inventory: &Inventory, sku: &Sku, id: stockade_domain::ReservationId) -> Option<u64> {
    let status = inventory.reservation(id).await.unwrap();
    status
        .lines
        .iter()
        .find(|(s, _)| s == sku)
        .and_then(|(_, st)| match st {
            LineStatus::Live { qty, .. } => Some(qty.get()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_partial_commit_and_release_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let (tee, mug) = (
        stocked(&inventory, "TEE", 10).await,
        stocked(&inventory, "MUG", 10).await,
    );
    let order = inventory
        .reserve_order(
            vec![line(&tee, 3), line(&mug, 2)],
            ReserveOptions {
                ttl: Some(Duration::from_secs(600)),
                ..ReserveOptions::default()
            },
        )
        .await
        .unwrap();
    let id = order.id;

    // 3-D Secure outlasts the TTL: extend every line.
    clock.advance(Duration::from_secs(500));
    let extended = inventory
        .extend(id, Duration::from_secs(900), &Origin::default())
        .await
        .unwrap();
    assert_eq!(
        extended.expires_at,
        Timestamp::from_millis(START + 1_400_000)
    );
    clock.advance(Duration::from_secs(200));
    assert_eq!(
        held(&inventory, &tee, id).await,
        Some(3),
        "held past its first TTL"
    );
    // Not an extension, and past 7 days from its making: refused, nothing written.
    assert!(matches!(
        rejection(
            inventory
                .extend(id, Duration::from_secs(60), &Origin::default())
                .await
        ),
        Rejection::NotAnExtension { .. }
    ));
    assert!(matches!(
        rejection(
            inventory
                .extend(id, Duration::from_secs(7 * 24 * 3600), &Origin::default())
                .await
        ),
        Rejection::BeyondMaxHold { .. }
    ));

    // One tee ships now, the mug line is taken off the cart.
    let sold = inventory
        .commit_part(id, &[(tee.clone(), Quantity::new(1))], &Origin::default())
        .await
        .unwrap();
    assert_eq!(sold.lines[0].qty, Quantity::new(1));
    assert_eq!(figures(&inventory, &tee).await, (2, 9));
    inventory
        .release_part(id, &[(mug.clone(), Quantity::new(2))], &Origin::default())
        .await
        .unwrap();
    assert_eq!(figures(&inventory, &mug).await, (0, 10));
    // More than held: refused, nothing written.
    assert_eq!(
        rejection(
            inventory
                .commit_part(id, &[(tee.clone(), Quantity::new(3))], &Origin::default())
                .await
        ),
        Rejection::ExceedsHold {
            reservation_id: id,
            requested: Quantity::new(3),
            held: Quantity::new(2),
        }
    );
    // The rest sells with the ordinary commit (the released mug line counts as ended).
    inventory
        .commit_part(id, &[(tee.clone(), Quantity::new(2))], &Origin::default())
        .await
        .unwrap();
    assert_eq!(figures(&inventory, &tee).await, (0, 7));
    // Two extensions and one partial commit change holds; a reduction by a whole line
    // is that line's release or commit.
    let report = checked_log(&inventory.store()).await;
    assert_eq!(
        (report.changed, report.committed, report.released),
        (3, 1, 1),
        "{report:?}"
    );
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_of_several_lines_sells_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let (a, b) = (
        stocked(&inventory, "A", 5).await,
        stocked(&inventory, "B", 5).await,
    );
    let first = inventory
        .reserve_order(vec![line(&a, 1), line(&b, 3)], ReserveOptions::default())
        .await
        .unwrap();
    let second = inventory
        .reserve_order(vec![line(&b, 2)], ReserveOptions::default())
        .await
        .unwrap();
    // A count finds 2 of B: the newest holds of B are at risk, the first order's among
    // them (3 + 2 promised, 2 there).
    inventory
        .adjust(
            &b,
            Adjustment {
                change: StockChange::Count(Quantity::new(2)),
                reason: "cycle count".into(),
                reference: None,
                expected_version: None,
                location: None,
            },
            &Origin::default(),
        )
        .await
        .unwrap();
    let refused = inventory.commit(first.id, &Origin::default()).await;
    assert!(matches!(rejection(refused), Rejection::AtRisk { .. }));
    // Line A was not sold.
    assert_eq!(figures(&inventory, &a).await, (1, 5));
    assert_eq!(checked_log(&inventory.store()).await.committed, 0);
    inventory
        .release(second.id, &Origin::default())
        .await
        .unwrap();
    inventory
        .release_part(
            first.id,
            &[(b.clone(), Quantity::new(1))],
            &Origin::default(),
        )
        .await
        .unwrap();

    // A line about to lapse is extended before anything is sold, so the commit is whole.
    clock.advance(Duration::from_secs(15 * 60) - Duration::from_secs(2));
    let committed = inventory
        .commit(first.id, &Origin::default())
        .await
        .unwrap();
    assert!(committed.complete(), "{committed:?}");
    assert_eq!(figures(&inventory, &a).await, (0, 4));
    assert_eq!(figures(&inventory, &b).await, (0, 0));
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_changes_every_line_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let (a, b, c, d) = (
        stocked(&inventory, "A", 5).await,
        stocked(&inventory, "B", 5).await,
        stocked(&inventory, "C", 5).await,
        stocked(&inventory, "D", 5).await,
    );
    let order = inventory
        .reserve_order(vec![line(&a, 2), line(&b, 2)], ReserveOptions::default())
        .await
        .unwrap();
    let id = order.id;

    // A to 4, a new line C, B removed: one call, the same id.
    let amended = inventory
        .amend(
            id,
            vec![line(&a, 4), line(&c, 1), line(&b, 0)],
            &Origin::default(),
        )
        .await
        .unwrap();
    let lines: Vec<(String, u64)> = amended
        .lines
        .iter()
        .map(|l| (l.sku.to_string(), l.qty.get()))
        .collect();
    assert_eq!(lines, vec![("A".into(), 4), ("C".into(), 1)]);
    assert_eq!(
        amended.expires_at, order.expires_at,
        "the new line expires with the others"
    );
    assert_eq!(figures(&inventory, &b).await, (0, 5));

    // C cannot grow to 9: A's growth is undone, D's new line released, nothing moves.
    let refused = inventory
        .amend(
            id,
            vec![line(&a, 5), line(&d, 1), line(&c, 9)],
            &Origin::default(),
        )
        .await;
    assert!(matches!(
        rejection(refused),
        Rejection::InsufficientStock { .. }
    ));
    assert_eq!(held(&inventory, &a, id).await, Some(4));
    assert_eq!(held(&inventory, &d, id).await, None);
    assert_eq!(held(&inventory, &c, id).await, Some(1));
    assert_eq!(figures(&inventory, &a).await, (4, 5));
    assert_eq!(figures(&inventory, &d).await, (0, 5));
    // A removed line is ended: holding it again takes a new reservation.
    assert!(matches!(
        rejection(
            inventory
                .amend(id, vec![line(&b, 1)], &Origin::default())
                .await
        ),
        Rejection::AlreadyResolved { .. }
    ));

    // Bad amendments: every line to 0, and a line as it is.
    assert!(matches!(
        inventory
            .amend(id, vec![line(&a, 0), line(&c, 0)], &Origin::default())
            .await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        rejection(
            inventory
                .amend(id, vec![line(&a, 4)], &Origin::default())
                .await
        ),
        Rejection::Unchanged { .. }
    ));
    // The whole amended reservation commits by its id.
    let committed = inventory.commit(id, &Origin::default()).await.unwrap();
    assert!(committed.complete(), "{committed:?}");
    assert_eq!(figures(&inventory, &a).await, (0, 1));
    assert_eq!(figures(&inventory, &c).await, (0, 4));
    checked_log(&inventory.store()).await;
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_changes_apply_once_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let (a, b) = (
        stocked(&inventory, "A", 10).await,
        stocked(&inventory, "B", 2).await,
    );
    let id = inventory
        .reserve_order(vec![line(&a, 4), line(&b, 1)], ReserveOptions::default())
        .await
        .unwrap()
        .id;
    let part = [(a.clone(), Quantity::new(1))];
    let first = inventory
        .commit_part(id, &part, &keyed("ship-1"))
        .await
        .unwrap();
    let again = inventory
        .commit_part(id, &part, &keyed("ship-1"))
        .await
        .unwrap();
    assert_eq!(first.lines, again.lines);
    assert_eq!(figures(&inventory, &a).await, (3, 9), "sold once");
    // The same key for another request is refused.
    let other = [(a.clone(), Quantity::new(2))];
    assert!(matches!(
        inventory.commit_part(id, &other, &keyed("ship-1")).await,
        Err(Error::KeyReused { .. })
    ));

    // A keyed amendment refused for stock, retried under the same key once stock came
    // back: the first attempt's refusal stands, so nothing is held twice.
    let grow = vec![line(&a, 5), line(&b, 3)];
    assert!(matches!(
        rejection(inventory.amend(id, grow.clone(), &keyed("cart-7")).await),
        Rejection::InsufficientStock { .. }
    ));
    assert_eq!(held(&inventory, &a, id).await, Some(3));
    inventory.shutdown().await;

    let inventory = open_with_clock(dir.path(), &clock).await;
    inventory
        .adjust(
            &b,
            Adjustment {
                change: StockChange::Delta(5),
                reason: "goods in".into(),
                reference: None,
                expected_version: None,
                location: None,
            },
            &Origin::default(),
        )
        .await
        .unwrap();
    let retried = inventory.amend(id, grow, &keyed("cart-7")).await;
    assert!(
        matches!(retried, Err(Error::RolledBack { .. })),
        "{retried:?}"
    );
    assert_eq!(held(&inventory, &a, id).await, Some(3));
    assert_eq!(held(&inventory, &b, id).await, Some(1));
    let again = inventory
        .commit_part(id, &part, &keyed("ship-1"))
        .await
        .unwrap();
    assert!(again.lines.iter().all(|l| l.qty == Quantity::new(1)));
    assert_eq!(
        figures(&inventory, &a).await,
        (3, 9),
        "still sold once after a restart"
    );
    let extended = inventory
        .extend(id, Duration::from_secs(3600), &keyed("3ds"))
        .await
        .unwrap();
    let replay = inventory
        .extend(id, Duration::from_secs(3600), &keyed("3ds"))
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.expires_at, extended.expires_at);
    let report = checked_log(&inventory.store()).await;
    assert_eq!(report.committed, 0);
    inventory.shutdown().await;
}

/// A reservation that gained a line by amendment, whose first request is retried after a
/// restart (its answer replayed), is still released whole: the retry's lines are not
/// taken for all of the reservation's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_reservation_keeps_the_lines_amendments_added() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let (a, c) = (
        stocked(&inventory, "A", 10).await,
        stocked(&inventory, "C", 10).await,
    );
    let first = |inventory: Inventory| {
        let a = a.clone();
        async move {
            inventory
                .reserve_order(
                    vec![line(&a, 1)],
                    ReserveOptions {
                        origin: keyed("buy-98"),
                        ..ReserveOptions::default()
                    },
                )
                .await
                .unwrap()
        }
    };
    let id = first(inventory.clone()).await.id;
    inventory
        .amend(id, vec![line(&c, 1)], &Origin::default())
        .await
        .unwrap();
    inventory.shutdown().await;

    let inventory = open_with_clock(dir.path(), &clock).await;
    let again = first(inventory.clone()).await;
    assert!(again.replayed && again.id == id);
    let released = inventory.release(id, &Origin::default()).await.unwrap();
    assert_eq!(released.lines.len(), 2, "{released:?}");
    assert_eq!(figures(&inventory, &a).await, (0, 10));
    assert_eq!(figures(&inventory, &c).await, (0, 10));
    inventory.shutdown().await;
}

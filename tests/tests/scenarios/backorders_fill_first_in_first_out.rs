//! A SKU that takes backorders holds lines beyond what is on hand, says which units wait
//! and when their stock is due; stock released or received fills them in the order they
//! were held, each filling a `BackorderFilled` event; nothing backordered is sold before
//! it is filled; all of it survives a restart and passes the independent audit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::time::Duration;

use stockade_domain::{Event, Quantity, ReceiptRef, Rejection, Timestamp};
use stockade_engine::{Error, Inventory, LineStatus, ManualClock, Origin, Receipt, ReserveOptions};
use stockade_store::{Position, scan_all};
use stockade_tests::engine::{checked_log, open_with_clock, register, rejection};

const START: u64 = 1_800_000_000_000;

fn hold(ttl_secs: u64) -> ReserveOptions {
    ReserveOptions {
        ttl: Some(Duration::from_secs(ttl_secs)),
        ..ReserveOptions::default()
    }
}

fn po(name: &str) -> ReceiptRef {
    ReceiptRef::new(name).unwrap()
}

/// Every `BackorderFilled` in the log, in log order: (reservation, units).
async fn fills(inventory: &Inventory) -> Vec<(stockade_domain::ReservationId, u64)> {
    let mut out = Vec::new();
    scan_all(
        inventory.store().as_ref(),
        Position::START,
        1024,
        |recorded| {
            if let Ok((Event::BackorderFilled(e), _)) = stockade_store::codec::decode(recorded) {
                out.push((e.reservation_id, e.qty.get()));
            }
            Ok(())
        },
    )
    .await
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backorders_wait_in_line_and_are_filled_by_what_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let origin = Origin::default();
    let tee = register(&inventory, "PRE-TEE", 3).await;
    // Without a backorder limit, beyond stock is refused as ever.
    assert!(matches!(
        rejection(inventory.reserve(&tee, Quantity::new(4), hold(600)).await),
        Rejection::InsufficientStock { .. }
    ));
    let set = inventory
        .set_backorder_limit(&tee, Quantity::new(5), None, &origin)
        .await
        .unwrap();
    assert_eq!(
        (set.previous, set.limit),
        (Quantity::ZERO, Quantity::new(5))
    );

    let first = inventory
        .reserve(&tee, Quantity::new(2), hold(600))
        .await
        .unwrap();
    assert_eq!(first.lines[0].backordered, Quantity::ZERO);
    let second = inventory
        .reserve(&tee, Quantity::new(4), hold(600))
        .await
        .unwrap();
    assert_eq!(second.lines[0].backordered, Quantity::new(3));
    assert_eq!(second.lines[0].eta, None, "no receipt expected yet");
    let level = inventory.stock(&tee).await.unwrap().view;
    assert_eq!(
        (level.reserved.get(), level.backordered.get()),
        (6, 3),
        "{level:?}"
    );

    // A purchase order is due in a day: the waiting units are expected with it.
    let due = Timestamp::from_millis(START + 86_400_000);
    let expected = inventory
        .expect_receipt(
            &tee,
            Receipt {
                reference: po("PO-100"),
                qty: Quantity::new(10),
                eta: due,
                location: None,
            },
            &origin,
        )
        .await
        .unwrap();
    assert_eq!(expected.remaining, Quantity::new(10));
    let status = inventory.reservation(second.id).await.unwrap();
    match &status.lines[0].1 {
        LineStatus::Live {
            backordered, eta, ..
        } => assert_eq!((*backordered, *eta), (Quantity::new(3), Some(due))),
        other => panic!("{other:?}"),
    }

    // Nothing backordered sells; the covered reservation does.
    assert!(matches!(
        rejection(inventory.commit(second.id, &origin).await),
        Rejection::Backordered { .. }
    ));
    // The first reservation is given back: its two units go to the second, in line.
    inventory.release(first.id, &origin).await.unwrap();
    assert_eq!(fills(&inventory).await, vec![(second.id, 2)]);
    inventory.shutdown().await;

    // After a restart the limit, the receipt and the line are as they were.
    let inventory = open_with_clock(dir.path(), &clock).await;
    let level = inventory.stock(&tee).await.unwrap().view;
    assert_eq!(
        (
            level.backorder_limit.get(),
            level.backordered.get(),
            level.incoming.get()
        ),
        (5, 1, 10)
    );
    let arrived = inventory
        .receive_receipt(&tee, po("PO-100"), Some(Quantity::new(4)), &origin)
        .await
        .unwrap();
    assert_eq!(arrived.remaining, Quantity::new(6));
    assert_eq!(
        arrived.filled,
        vec![(second.id, Quantity::new(1), Quantity::ZERO)]
    );
    inventory.commit(second.id, &origin).await.unwrap();
    let level = inventory.stock(&tee).await.unwrap().view;
    assert_eq!((level.limit.unwrap().get(), level.reserved.get()), (3, 0));

    // Bad receipts write nothing.
    let past = Receipt {
        reference: po("PO-101"),
        qty: Quantity::new(1),
        eta: Timestamp::from_millis(START - 1),
        location: None,
    };
    assert!(matches!(
        rejection(inventory.expect_receipt(&tee, past, &origin).await),
        Rejection::InvalidReceipt { .. }
    ));
    assert!(matches!(
        rejection(
            inventory
                .receive_receipt(&tee, po("NONE"), None, &origin)
                .await
        ),
        Rejection::UnknownReceipt { .. }
    ));
    let cancelled = inventory
        .cancel_receipt(&tee, po("PO-100"), &origin)
        .await
        .unwrap();
    assert_eq!(cancelled.qty, Quantity::new(6));
    let report = checked_log(&inventory.store()).await;
    assert_eq!(report.filled, 2);
    inventory.shutdown().await;
}

/// Many buyers at once on a preorder (nothing on hand, all backordered): the stock that
/// arrives fills them exactly in the order their holds were made, never more than came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preorder_rush_is_filled_in_the_order_it_was_held() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let origin = Origin::default();
    let item = register(&inventory, "PRE-CONSOLE", 0).await;
    inventory
        .set_backorder_limit(&item, Quantity::new(100), None, &origin)
        .await
        .unwrap();
    let buyers: Vec<_> = (0..60)
        .map(|n| {
            let (inventory, item) = (inventory.clone(), item.clone());
            tokio::spawn(async move {
                inventory
                    .reserve(&item, Quantity::new(1 + n % 3), hold(3600))
                    .await
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut refused = 0;
    for b in buyers {
        match b.await.unwrap() {
            Ok(r) => held.push(r),
            Err(Error::Rejected {
                rejection: Rejection::InsufficientStock { .. },
                ..
            }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let promised: u64 = held.iter().map(|r| r.lines[0].qty.get()).sum();
    assert!(promised <= 100, "promised {promised} of 100 backorders");
    assert!(refused > 0, "the limit was never reached");
    assert!(
        held.iter()
            .all(|r| r.lines[0].backordered == r.lines[0].qty)
    );
    // The order the holds were made in is the log's.
    let mut line = Vec::new();
    scan_all(
        inventory.store().as_ref(),
        Position::START,
        1024,
        |recorded| {
            if let Ok((Event::StockReserved(e), _)) = stockade_store::codec::decode(recorded) {
                line.push((e.reservation_id, e.qty.get()));
            }
            Ok(())
        },
    )
    .await
    .unwrap();
    let due = Timestamp::from_millis(START + 3_600_000);
    inventory
        .expect_receipt(
            &item,
            Receipt {
                reference: po("ASN-1"),
                qty: Quantity::new(40),
                eta: due,
                location: None,
            },
            &origin,
        )
        .await
        .unwrap();
    let arrived = inventory
        .receive_receipt(&item, po("ASN-1"), None, &origin)
        .await
        .unwrap();
    // Filled first in, first out: the first holds, whole, up to 40 units.
    let mut expected = Vec::new();
    let mut left = 40u64;
    for (id, qty) in &line {
        if left == 0 {
            break;
        }
        let take = (*qty).min(left);
        left -= take;
        expected.push((*id, take));
    }
    let got: Vec<_> = arrived
        .filled
        .iter()
        .map(|(id, qty, _)| (*id, qty.get()))
        .collect();
    assert_eq!(got, expected);
    let level = inventory.stock(&item).await.unwrap().view;
    assert_eq!(level.backordered.get(), promised - 40);
    checked_log(&inventory.store()).await;
    inventory.shutdown().await;
}

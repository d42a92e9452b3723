//! A reservation gives its stock back at its expiry, not a millisecond before, and its
//! `ReservationExpired` is written exactly once, also across a restart in between.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::time::Duration;

use stockade_domain::{Quantity, Timestamp};
use stockade_engine::{Inventory, LineStatus, ManualClock, Origin, ReserveOptions};
use stockade_tests::PATIENCE;
use stockade_tests::engine::{checked_log, open_with_clock, physical, sku};

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);

/// Waits until the log holds `n` expiries (the timer writes them in the background).
async fn expiries_reach(inventory: &Inventory, n: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let expired = checked_log(&inventory.store()).await.expired;
        if expired >= n || tokio::time::Instant::now() > deadline {
            return expired;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifteen_minute_hold_lapses_at_fifteen_minutes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let item = sku("LIMITED");
    inventory
        .register(&item, physical(1), &Origin::default())
        .await
        .unwrap();
    let held = inventory
        .reserve(&item, Quantity::new(1), ReserveOptions::default())
        .await
        .unwrap();
    assert_eq!(
        held.expires_at,
        Timestamp::from_millis(1_800_000_000_000 + 900_000)
    );

    clock.advance(FIFTEEN_MINUTES - Duration::from_millis(1));
    let stock = inventory.stock(&item).await.unwrap();
    assert!(
        !stock.view.available.covers(Quantity::new(1)),
        "freed early"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(checked_log(&inventory.store()).await.expired, 0);

    clock.advance(Duration::from_millis(1));
    // Available at once (lazy expiry), before the timer has even written the event.
    let stock = inventory.stock(&item).await.unwrap();
    assert!(stock.view.available.covers(Quantity::new(1)));
    assert_eq!(expiries_reach(&inventory, 1).await, 1);
    let status = inventory.reservation(held.id).await.unwrap();
    assert_eq!(
        status.lines[0].1,
        LineStatus::Resolved(stockade_domain::Resolution::Expired)
    );
    // Time moving on writes nothing more.
    clock.advance(FIFTEEN_MINUTES);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(checked_log(&inventory.store()).await.expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_made_before_a_restart_expires_after_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    {
        let inventory = open_with_clock(dir.path(), &clock).await;
        let item = sku("RESTARTED");
        inventory
            .register(&item, physical(2), &Origin::default())
            .await
            .unwrap();
        for _ in 0..2 {
            inventory
                .reserve(&item, Quantity::new(1), ReserveOptions::default())
                .await
                .unwrap();
        }
        inventory.shutdown().await;
    }
    clock.advance(Duration::from_secs(10 * 60));
    {
        // Restarted mid-hold: nothing lapses yet.
        let inventory = open_with_clock(dir.path(), &clock).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(checked_log(&inventory.store()).await.expired, 0);
        inventory.shutdown().await;
    }
    clock.advance(Duration::from_secs(5 * 60));
    // Restarted after the expiry, with no traffic at all: the start-up pass wakes the SKU
    // and its timer writes both expiries, once each.
    let inventory = open_with_clock(dir.path(), &clock).await;
    assert_eq!(expiries_reach(&inventory, 2).await, 2);
    clock.advance(FIFTEEN_MINUTES);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(checked_log(&inventory.store()).await.expired, 2);
    let stock = inventory.stock(&sku("RESTARTED")).await.unwrap();
    assert_eq!(stock.view.reserved, Quantity::ZERO);
}

/// The key window covers the longest hold: a same-key retry of a seven-day hold, days
/// later and across a restart, gets its original answer, never "duplicate reservation".
/// (With a 24 h window it did not: the review's finding.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_retry_of_a_week_long_hold_days_later_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let item = sku("WEEK");
    let options = ReserveOptions {
        ttl: Some(stockade_domain::MAX_TTL),
        origin: Origin::default().idempotency_key("slow-checkout"),
        ..ReserveOptions::default()
    };
    let first = {
        let inventory = open_with_clock(dir.path(), &clock).await;
        inventory
            .register(&item, physical(5), &Origin::default())
            .await
            .unwrap();
        let held = inventory
            .reserve(&item, Quantity::new(2), options.clone())
            .await
            .unwrap();
        inventory.shutdown().await;
        held
    };
    clock.advance(Duration::from_secs(6 * 24 * 3600));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let retry = inventory
        .reserve(&item, Quantity::new(2), options)
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!((retry.id, retry.expires_at), (first.id, first.expires_at));
    assert_eq!(
        inventory.stock(&item).await.unwrap().view.reserved,
        Quantity::new(2)
    );
}

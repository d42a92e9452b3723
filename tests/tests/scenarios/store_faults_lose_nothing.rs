//! A store that fails appends, answers slowly, or writes but loses its reply: no oversell,
//! no acknowledged reservation missing, none applied twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use stockade_domain::{Principal, Quantity};
use stockade_engine::{EngineConfig, Error, Origin, ReserveOptions};
use stockade_store::{EventStore, MemoryStore};
use stockade_tests::engine::{
    Fault, FaultyStore, checked_log, open_on, physical, sku, test_engine,
};

/// One append in three fails outright, one in three lands with its reply lost, and every
/// fifth of the rest is slower than the engine's patience.
fn schedule(n: u64) -> Fault {
    match n % 15 {
        0 => Fault::None, // the registration
        1 | 4 | 7 | 10 | 13 => Fault::Fail,
        2 | 5 | 8 | 11 | 14 => Fault::LostReply,
        3 => Fault::Slow(Duration::from_millis(300)),
        _ => Fault::None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_appends_never_oversell_or_lose_an_acknowledged_reservation() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let faulty = Arc::new(FaultyStore::new(memory.clone(), schedule));
    let engine = EngineConfig {
        append_timeout: Duration::from_millis(100),
        ..test_engine()
    };
    let inventory = open_on(faulty.clone(), engine).await;
    let item = sku("FLAKY");
    // Registration may itself meet a fault; retry it with a key until it lands.
    let origin = Origin::default().idempotency_key("register-flaky");
    let mut registered = false;
    for _ in 0..20 {
        if inventory
            .register(&item, physical(60), &origin)
            .await
            .is_ok()
        {
            registered = true;
            break;
        }
    }
    assert!(registered);

    let mut acknowledged = HashSet::new();
    let mut unknown = 0;
    for wave in 0..30 {
        let buyers = (0..5).map(|buyer| {
            let (inventory, item) = (inventory.clone(), item.clone());
            tokio::spawn(async move {
                // Each buyer retries with its key until it gets a definite answer.
                let options = ReserveOptions {
                    origin: Origin::default()
                        .principal(Principal::new("shop").unwrap())
                        .idempotency_key(format!("buyer-{wave}-{buyer}")),
                    ..ReserveOptions::default()
                };
                let mut unknown = 0;
                for _ in 0..20 {
                    match inventory
                        .reserve(&item, Quantity::new(1), options.clone())
                        .await
                    {
                        // A client backs off before it tries again.
                        Err(Error::Unavailable(_)) => {
                            unknown += 1;
                            tokio::time::sleep(Duration::from_millis(25)).await;
                        }
                        outcome => return (outcome, unknown),
                    }
                }
                panic!("no definite answer after 20 tries");
            })
        });
        for outcome in join_all(buyers).await {
            let (outcome, retries) = outcome.unwrap();
            unknown += retries;
            match outcome {
                Ok(held) => {
                    acknowledged.insert(held.id);
                }
                Err(Error::Rejected { rejection, .. }) => {
                    assert_eq!(rejection.code(), "insufficient_stock")
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
    }
    let injected = faulty.injected.load(Ordering::Relaxed);
    assert!(
        injected >= 20,
        "only {injected} faults: too few to prove anything"
    );
    assert!(unknown > 0, "no caller ever saw an unknown outcome");
    assert_eq!(acknowledged.len(), 60, "all stock sold, exactly");

    // The log: no breach, and every acknowledged reservation exactly once.
    let report = checked_log(&memory).await;
    let in_log = &report.reservations[&item];
    assert_eq!(in_log, &acknowledged);
    assert_eq!(report.reserved, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_reply_was_lost_is_acknowledged_once_it_is_found() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // Registration goes through, then every reservation's reply is lost.
    let faulty = Arc::new(FaultyStore::new(memory.clone(), |n| {
        if n == 0 {
            Fault::None
        } else {
            Fault::LostReply
        }
    }));
    let inventory = open_on(faulty, test_engine()).await;
    let item = sku("LOST");
    inventory
        .register(&item, physical(5), &Origin::default())
        .await
        .unwrap();
    // No key: the engine alone must find that the append landed.
    let held = inventory
        .reserve(&item, Quantity::new(2), ReserveOptions::default())
        .await
        .unwrap();
    assert_eq!(
        inventory.stock(&item).await.unwrap().view.reserved,
        Quantity::new(2)
    );
    let report = checked_log(&memory).await;
    assert_eq!(report.reservations[&item], HashSet::from([held.id]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_retry_after_a_timed_out_append_gets_what_the_store_holds() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // The first reservation's append lands only after the engine stopped waiting for it.
    let faulty = Arc::new(FaultyStore::new(memory.clone(), |n| {
        if n == 1 {
            Fault::Slow(Duration::from_millis(300))
        } else {
            Fault::None
        }
    }));
    let engine = EngineConfig {
        append_timeout: Duration::from_millis(100),
        ..test_engine()
    };
    let inventory = open_on(faulty, engine).await;
    let item = sku("LATE");
    inventory
        .register(&item, physical(5), &Origin::default())
        .await
        .unwrap();
    let options = ReserveOptions {
        origin: Origin::default().idempotency_key("slow-cart"),
        ..ReserveOptions::default()
    };
    let first = inventory
        .reserve(&item, Quantity::new(2), options.clone())
        .await;
    assert!(matches!(first, Err(Error::Unavailable(_))), "{first:?}");
    tokio::time::sleep(Duration::from_millis(400)).await; // the late append lands

    // The retry is decided again with the same event ids; the store takes it for the
    // landed one, and the engine answers with what the store holds.
    let retry = inventory
        .reserve(&item, Quantity::new(2), options)
        .await
        .unwrap();
    let report = checked_log(&memory).await;
    assert_eq!(report.reserved, 1);
    let stored = memory
        .read_stream(&stockade_store::StreamName::for_sku(&item), 1, 1)
        .await
        .unwrap();
    let (event, _) = stockade_store::codec::decode(&stored[0]).unwrap();
    match event {
        stockade_domain::Event::StockReserved(e) => {
            assert_eq!(
                (e.reservation_id, e.expires_at),
                (retry.id, retry.expires_at)
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        inventory.stock(&item).await.unwrap().view.reserved,
        Quantity::new(2)
    );
}

/// The review's case: a keyed reserve times out and its re-read fails, so its actor stops;
/// the retry is decided again by a fresh actor (a later instant, so another expiry), and
/// the first append lands just before the retry's. The store takes the retry for the
/// landed append: the engine must answer, and remember, what landed, not what it decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_decided_by_a_fresh_actor_answers_with_the_late_append_that_landed() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let faulty = Arc::new(FaultyStore::new(memory.clone(), |n| match n {
        1 => Fault::Held,
        2 => Fault::ReleaseHeld,
        _ => Fault::None,
    }));
    let engine = EngineConfig {
        append_timeout: Duration::from_millis(100),
        ..test_engine()
    };
    let inventory = open_on(faulty.clone(), engine).await;
    let item = sku("STALE");
    inventory
        .register(&item, physical(5), &Origin::default())
        .await
        .unwrap();
    let options = ReserveOptions {
        origin: Origin::default().idempotency_key("stuck-cart"),
        ..ReserveOptions::default()
    };
    faulty.reads_fail.store(true, Ordering::Relaxed);
    let first = inventory
        .reserve(&item, Quantity::new(2), options.clone())
        .await;
    assert!(matches!(first, Err(Error::Unavailable(_))), "{first:?}");
    faulty.reads_fail.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(20)).await; // a later decision instant

    let retry = inventory
        .reserve(&item, Quantity::new(2), options)
        .await
        .unwrap();
    let stored = memory
        .read_stream(&stockade_store::StreamName::for_sku(&item), 1, 1)
        .await
        .unwrap();
    let (event, _) = stockade_store::codec::decode(&stored[0]).unwrap();
    let stockade_domain::Event::StockReserved(landed) = event else {
        panic!("unexpected {event:?}");
    };
    assert_eq!(
        (retry.id, retry.expires_at),
        (landed.reservation_id, landed.expires_at),
        "the answer is the stored hold"
    );
    let status = inventory.reservation(retry.id).await.unwrap();
    assert!(
        matches!(
            status.lines[0].1,
            stockade_engine::LineStatus::Live { expires_at, .. } if expires_at == landed.expires_at
        ),
        "the engine's memory is the stored hold: {status:?}"
    );
    checked_log(&memory).await;
}

/// A refusal decided against a commit still in flight waits for it; when that commit's
/// append fails, the refusal's premise is gone and it is decided again. Answered at once,
/// the second caller would have been told "already committed" of a hold that stayed live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_decided_against_a_failed_append_is_decided_again() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // Appends: 0 registration, 1 reservation, 2 the first commit (hangs, then fails).
    let faulty = Arc::new(FaultyStore::new(memory.clone(), |n| match n {
        2 => Fault::FailAfter(Duration::from_millis(200)),
        _ => Fault::None,
    }));
    let inventory = open_on(faulty, test_engine()).await;
    let item = sku("PREMISE");
    inventory
        .register(&item, physical(5), &Origin::default())
        .await
        .unwrap();
    let held = inventory
        .reserve(&item, Quantity::new(2), ReserveOptions::default())
        .await
        .unwrap();
    let first = {
        let inventory = inventory.clone();
        tokio::spawn(async move { inventory.commit(held.id, &Origin::default()).await })
    };
    // Sent while the first commit's append hangs: decided against it, "already resolved".
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = inventory.commit(held.id, &Origin::default()).await;
    let first = first.await.unwrap();
    assert!(matches!(first, Err(Error::Unavailable(_))), "{first:?}");
    assert!(
        second.is_ok(),
        "the second commit must be decided again once the first failed: {second:?}"
    );
    let level = inventory.stock(&item).await.unwrap();
    assert_eq!(level.view.reserved, Quantity::new(0));
    assert_eq!(level.view.limit, Some(Quantity::new(3)), "sold once");
    checked_log(&memory).await;
}

/// The review's orphan without a crash: one line's append is late, another line is sold
/// out, so the order is rolled back while the late append is still on its way. The
/// release must win over the late hold: when everything has landed, nothing is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_line_whose_append_was_late_ends_released() {
    let memory: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // Appends: 0-1 registrations, 2 the shirt line (lands after the engine's patience).
    let faulty = Arc::new(FaultyStore::new(memory.clone(), |n| match n {
        2 => Fault::Slow(Duration::from_millis(400)),
        _ => Fault::None,
    }));
    let engine = EngineConfig {
        append_timeout: Duration::from_millis(100),
        ..test_engine()
    };
    let inventory = open_on(faulty, engine).await;
    let (shirt, cap) = (sku("SHIRT"), sku("CAP"));
    for item in [&shirt, &cap] {
        inventory
            .register(item, physical(1), &Origin::default())
            .await
            .unwrap();
    }
    let lines = vec![
        stockade_engine::Line {
            placement: Default::default(),
            sku: shirt.clone(),
            qty: Quantity::new(1),
        },
        stockade_engine::Line {
            placement: Default::default(),
            sku: cap.clone(),
            qty: Quantity::new(2),
        },
    ];
    let refused = inventory
        .reserve_order(lines, ReserveOptions::default())
        .await;
    assert!(
        matches!(&refused, Err(Error::Rejected { sku, .. }) if *sku == cap),
        "{refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await; // the late append has landed
    let report = checked_log(&memory).await;
    assert_eq!(
        (report.reserved, report.released),
        (1, 1),
        "the late hold is released"
    );
    // The engine's own view agrees, and the unit can be sold to someone else.
    assert_eq!(
        inventory.stock(&shirt).await.unwrap().view.reserved,
        Quantity::ZERO
    );
    inventory
        .reserve(&shirt, Quantity::new(1), ReserveOptions::default())
        .await
        .unwrap();
}

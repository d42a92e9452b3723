//! Concurrent reservations, commits, releases and reads on a few SKUs, recorded as a
//! history (invocation and return instants, results) and checked against the sequential
//! model of a SKU, SKU by SKU (`stockade_tests::linearizability`). Stock is scarce, so
//! refusals and races for the last units are the common case. Small histories (up to 100
//! operations per SKU), several seeds: what CI can afford. The same at a SKU stocked at
//! three locations, with lines that name a location and lines the writer places; and with
//! holds changed while they live (partly sold or given back, amended, extended); and at a
//! SKU with a purchase limit, with three customers ordering, buying and growing holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use stockade_domain::{LocationConfig, LocationId, Placement, PoolConfig, Quantity, Rejection};
use stockade_engine::{Error, Inventory, Line, Origin, ReserveOptions};
use stockade_tests::engine::{open_sqlite, register};
use stockade_tests::linearizability::{Call, Op, Ret, check, check_at, check_limited};
use stockade_tests::projection::Lcg;

const SKUS: usize = 3;
const STOCK: u64 = 6;
const TASKS_PER_SKU: usize = 4;
const OPS_PER_TASK: usize = 25;

fn not_live(e: &Error) -> bool {
    matches!(
        e,
        Error::NotFound(_)
            | Error::Rejected {
                rejection: Rejection::AlreadyResolved { .. } | Rejection::UnknownReservation { .. },
                ..
            }
    )
}

/// Commits (or releases) hold `id`, as a recorded call and its result.
async fn resolve(
    inventory: &Inventory,
    id: stockade_domain::ReservationId,
    commit: bool,
) -> (Call, Ret) {
    let outcome = if commit {
        inventory.commit(id, &Origin::default()).await.map(|_| ())
    } else {
        inventory.release(id, &Origin::default()).await.map(|_| ())
    };
    let ret = match outcome {
        Ok(()) => Ret::Done,
        Err(e) if not_live(&e) => Ret::NotLive,
        Err(e) => panic!("commit or release: {e}"),
    };
    let id = id.as_uuid().as_u128();
    let call = if commit {
        Call::Commit { id }
    } else {
        Call::Release { id }
    };
    (call, ret)
}

/// Fails the test with the history, in invocation order, unless the checker found a
/// sequential order of it that fits the model (`verdict`).
fn explained(sku: &stockade_domain::Sku, verdict: Result<bool, String>, mut history: Vec<Op>) {
    if verdict == Ok(true) {
        return;
    }
    history.sort_by_key(|o| o.invoked);
    let lines: Vec<String> = history
        .iter()
        .map(|o| {
            format!(
                "{:>9}..{:>9} {:?} -> {:?}",
                o.invoked / 1000,
                o.returned / 1000,
                o.call,
                o.ret
            )
        })
        .collect();
    panic!(
        "{sku}: not linearizable ({verdict:?}; µs):\n{}",
        lines.join("\n")
    );
}

/// What a run's tasks do besides reserving, committing, releasing and reading.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    /// The SKU is stocked at the [`AT_LOCATIONS`]: reserves name a location or let the
    /// writer place them, and reads record every location's figures.
    at_locations: bool,
    /// Live holds are partly sold or given back, amended and extended.
    changes: bool,
    /// Each reserve is for one of [`CUSTOMERS`] customers (the SKU has a purchase limit).
    customers: bool,
}

/// One task's operations on `sku`, shaped by `shape`; holds it got are shared with the
/// SKU's other tasks, so commits and releases race each other too.
async fn client(
    inventory: Inventory,
    sku: stockade_domain::Sku,
    seed: u64,
    clock: Instant,
    holds: Arc<Mutex<Vec<stockade_domain::ReservationId>>>,
    shape: Shape,
) -> Vec<Op> {
    let Shape {
        at_locations,
        changes,
        customers,
    } = shape;
    let mut rng = Lcg(seed);
    let mut history = Vec::with_capacity(OPS_PER_TASK);
    let at = || clock.elapsed().as_nanos() as u64;
    for _ in 0..OPS_PER_TASK {
        let pick = {
            let holds = holds.lock().unwrap();
            // Changes aim at the newest holds, which are the likeliest to be live.
            let from = if changes {
                holds.len().saturating_sub(3)
            } else {
                0
            };
            (holds.len() > from)
                .then(|| holds[from + rng.below((holds.len() - from) as u64) as usize])
        };
        let choice = rng.below(10);
        let invoked = at();
        let (call, ret) = match (choice, pick) {
            (2..=4, Some(id)) if changes => change(&inventory, &sku, id, &mut rng).await,
            (0..=4, _) | (_, None) => {
                let (qty, hard) = match at_locations {
                    false => (1 + rng.below(3), None),
                    true => {
                        let qty = 1 + rng.below(2);
                        let named = rng.below(4);
                        (qty, (named < 3).then_some(named as usize))
                    }
                };
                let line = Line {
                    sku: sku.clone(),
                    qty: Quantity::new(qty),
                    placement: hard.map(|l| Placement::at(location(l))).unwrap_or_default(),
                };
                let customer = customers.then(|| rng.below(CUSTOMERS) as u8);
                let options = ReserveOptions {
                    customer: customer
                        .map(|c| stockade_domain::CustomerId::new(format!("c{c}")).unwrap()),
                    ..ReserveOptions::default()
                };
                let outcome = inventory.reserve_order(vec![line], options).await;
                let ret = match outcome {
                    Ok(held) => {
                        holds.lock().unwrap().push(held.id);
                        let id = held.id.as_uuid().as_u128();
                        let parts = &held.lines[0].parts;
                        match at_locations {
                            false => Ret::Held { id },
                            true => {
                                assert_eq!(parts.len(), 1, "never split: {parts:?}");
                                let placed = (0..AT_LOCATIONS.len())
                                    .find(|l| location(*l) == parts[0].location)
                                    .unwrap();
                                Ret::HeldAt {
                                    id,
                                    location: placed,
                                }
                            }
                        }
                    }
                    Err(Error::Rejected {
                        rejection: Rejection::InsufficientStock { .. },
                        ..
                    }) => Ret::Refused,
                    Err(Error::Rejected {
                        rejection: Rejection::PurchaseLimit { .. },
                        ..
                    }) => Ret::OverLimit,
                    Err(e) => panic!("reserve: {e}"),
                };
                let call = match (at_locations, customer) {
                    (true, _) => Call::ReserveAt {
                        qty,
                        location: hard,
                    },
                    (false, Some(customer)) => Call::ReserveFor { qty, customer },
                    (false, None) => Call::Reserve { qty },
                };
                (call, ret)
            }
            (5..=6, Some(id)) => resolve(&inventory, id, true).await,
            (7, Some(id)) => resolve(&inventory, id, false).await,
            _ => {
                let view = inventory.stock(&sku).await.unwrap().view;
                let each = |f: fn(&stockade_domain::LocationView) -> Quantity| {
                    view.locations.iter().map(|l| f(l).get()).collect()
                };
                match at_locations {
                    false => (
                        Call::Read,
                        Ret::Level {
                            on_hand: view.limit.map_or(0, |l| l.get()),
                            reserved: view.reserved.get(),
                        },
                    ),
                    true => (
                        Call::ReadLocations,
                        Ret::Levels {
                            on_hand: each(|l| l.on_hand),
                            reserved: each(|l| l.reserved),
                        },
                    ),
                }
            }
        };
        if changes && let Some(id) = pick {
            // Ended holds leave the pool of targets, so changes mostly meet live ones.
            let ended = ret == Ret::NotLive
                || (ret == Ret::Done && matches!(call, Call::Commit { .. } | Call::Release { .. }));
            if ended {
                holds.lock().unwrap().retain(|h| *h != id);
            }
        }
        history.push(Op {
            call,
            ret,
            invoked,
            returned: at(),
        });
    }
    history
}

/// Runs [`TASKS_PER_SKU`] clients of `shape` against `sku` at once (seeds from `seed`
/// up) and returns their operations together: one SKU's history.
async fn recorded(
    inventory: &Inventory,
    sku: &stockade_domain::Sku,
    seed: u64,
    shape: Shape,
) -> Vec<Op> {
    let clock = Instant::now();
    let holds = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..TASKS_PER_SKU)
        .map(|t| {
            tokio::spawn(client(
                inventory.clone(),
                sku.clone(),
                seed + t as u64,
                clock,
                holds.clone(),
                shape,
            ))
        })
        .collect();
    let mut history = Vec::new();
    for task in tasks {
        history.extend(task.await.unwrap());
    }
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_history_has_a_sequential_explanation() {
    let (mut checked, mut refused, mut not_live_seen) = (0, 0, 0);
    for round in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let inventory = open_sqlite(dir.path()).await;
        let mut skus = Vec::new();
        for s in 0..SKUS {
            skus.push(register(&inventory, &format!("LIN-{round}-{s}"), STOCK).await);
        }
        let clock = Instant::now();
        let mut runs = Vec::new();
        for (s, sku) in skus.iter().enumerate() {
            let holds = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..TASKS_PER_SKU)
                .map(|t| {
                    tokio::spawn(client(
                        inventory.clone(),
                        sku.clone(),
                        round * 1000 + (s * TASKS_PER_SKU + t) as u64 + 1,
                        clock,
                        holds.clone(),
                        Shape::default(),
                    ))
                })
                .collect();
            runs.push((sku.clone(), tasks));
        }
        for (sku, tasks) in runs {
            let mut history = Vec::new();
            for task in tasks {
                history.extend(task.await.unwrap());
            }
            refused += history.iter().filter(|o| o.ret == Ret::Refused).count();
            not_live_seen += history.iter().filter(|o| o.ret == Ret::NotLive).count();
            checked += history.len();
            explained(&sku, check(STOCK, &history), history);
        }
        inventory.shutdown().await;
    }
    eprintln!(
        "linearizability: {checked} operations checked; {refused} refusals, {not_live_seen} resolutions of holds no longer live"
    );
    assert!(refused > 0 && not_live_seen > 0, "the runs never contended");
}

/// A change to live hold `id`, chosen by `rng`, as a recorded call and its result.
async fn change(
    inventory: &Inventory,
    sku: &stockade_domain::Sku,
    id: stockade_domain::ReservationId,
    rng: &mut Lcg,
) -> (Call, Ret) {
    let qty = rng.below(4);
    let origin = Origin::default();
    let (call, outcome) = match rng.below(4) {
        0 | 1 => {
            let sell = rng.below(2) == 0;
            let lines = [(sku.clone(), Quantity::new(qty.max(1)))];
            let outcome = if sell {
                inventory.commit_part(id, &lines, &origin).await.map(|_| ())
            } else {
                inventory
                    .release_part(id, &lines, &origin)
                    .await
                    .map(|_| ())
            };
            let call = Call::Reduce {
                id: id.as_uuid().as_u128(),
                qty: qty.max(1),
                sell,
            };
            (call, outcome)
        }
        2 => {
            // Not 0: a reservation's only line taken off is its release, refused as such.
            let qty = qty.max(1);
            let line = Line::new(sku.clone(), Quantity::new(qty));
            let outcome = inventory.amend(id, vec![line], &origin).await.map(|_| ());
            (
                Call::Amend {
                    id: id.as_uuid().as_u128(),
                    qty,
                },
                outcome,
            )
        }
        _ => {
            let ttl = std::time::Duration::from_secs(3600 + rng.below(600));
            let outcome = inventory.extend(id, ttl, &origin).await.map(|_| ());
            (
                Call::Extend {
                    id: id.as_uuid().as_u128(),
                },
                outcome,
            )
        }
    };
    let ret = match outcome {
        Ok(()) => Ret::Done,
        Err(e) if not_live(&e) => Ret::NotLive,
        Err(Error::Rejected {
            rejection: Rejection::ExceedsHold { .. },
            ..
        }) => Ret::TooMany,
        Err(Error::Rejected {
            rejection: Rejection::Unchanged { .. },
            ..
        }) => Ret::Unchanged,
        Err(Error::Rejected {
            rejection: Rejection::InsufficientStock { .. },
            ..
        }) => Ret::Refused,
        Err(Error::Rejected {
            rejection: Rejection::PurchaseLimit { .. },
            ..
        }) => Ret::OverLimit,
        // A racing extension already took it further: live, and unchanged.
        Err(Error::Rejected {
            rejection: Rejection::NotAnExtension { .. },
            ..
        }) => Ret::Unchanged,
        Err(e) => panic!("{call:?}: {e}"),
    };
    (call, ret)
}

/// Stock at each of three locations, in priority order: scarce, so lines race for the
/// last units at one location while others still have some.
const AT_LOCATIONS: [u64; 3] = [2, 3, 1];

fn location(i: usize) -> LocationId {
    LocationId::new(format!("loc-{i}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_at_several_locations_have_a_sequential_explanation() {
    let (mut checked, mut refused, mut elsewhere) = (0, 0, 0);
    for round in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let inventory = open_sqlite(dir.path()).await;
        let sku = stockade_domain::Sku::new(format!("LOC-LIN-{round}")).unwrap();
        let pool = PoolConfig::at_locations(
            AT_LOCATIONS
                .iter()
                .enumerate()
                .map(|(i, n)| LocationConfig {
                    location: location(i),
                    on_hand: Quantity::new(*n),
                    safety_stock: Quantity::ZERO,
                    priority: i as u32,
                })
                .collect(),
        );
        inventory
            .register(&sku, pool, &Origin::default())
            .await
            .unwrap();
        let shape = Shape {
            at_locations: true,
            ..Shape::default()
        };
        let history = recorded(&inventory, &sku, round * 1000 + 7, shape).await;
        refused += history.iter().filter(|o| o.ret == Ret::Refused).count();
        elsewhere += history
            .iter()
            .filter(|o| {
                matches!(o.call, Call::ReserveAt { location: None, .. })
                    && matches!(
                        o.ret,
                        Ret::HeldAt {
                            location: 1..=2,
                            ..
                        }
                    )
            })
            .count();
        checked += history.len();
        explained(&sku, check_at(&AT_LOCATIONS, &history), history);
        inventory.shutdown().await;
    }
    eprintln!(
        "linearizability at locations: {checked} operations checked; {refused} refusals, {elsewhere} placed past the first location"
    );
    assert!(refused > 0 && elsewhere > 0, "the runs never contended");
}

const CHANGE_STOCK: u64 = 14;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_that_change_live_holds_have_a_sequential_explanation() {
    let (mut checked, mut changed, mut refused) = (0, 0, 0);
    for round in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let inventory = open_sqlite(dir.path()).await;
        // More stock than the other runs: commits sell it off, and a sold-out SKU has no
        // live holds left to change.
        let sku = register(&inventory, &format!("CHG-LIN-{round}"), CHANGE_STOCK).await;
        let shape = Shape {
            changes: true,
            ..Shape::default()
        };
        let history = recorded(&inventory, &sku, round * 1000 + 31, shape).await;
        changed += history
            .iter()
            .filter(|o| {
                matches!(
                    o.call,
                    Call::Reduce { .. } | Call::Amend { .. } | Call::Extend { .. }
                ) && o.ret == Ret::Done
            })
            .count();
        refused += history.iter().filter(|o| o.ret == Ret::Refused).count();
        checked += history.len();
        explained(&sku, check(CHANGE_STOCK, &history), history);
        inventory.shutdown().await;
    }
    eprintln!(
        "linearizability with changes: {checked} operations checked; {changed} changes of live holds, {refused} refusals"
    );
    assert!(
        changed > 0 && refused > 0,
        "the runs never changed a hold or contended"
    );
}

/// Units per customer in the limited runs: small, so customers meet it often.
const LIMIT: u64 = 3;
const CUSTOMERS: u64 = 3;
/// Less than the customers' limits together: stock runs out too.
const LIMITED_STOCK: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_under_a_purchase_limit_have_a_sequential_explanation() {
    let (mut checked, mut over, mut refused) = (0, 0, 0);
    for round in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let inventory = open_sqlite(dir.path()).await;
        let sku = register(&inventory, &format!("LIM-LIN-{round}"), LIMITED_STOCK).await;
        let rules = stockade_engine::FairSelling {
            per_customer: Some(Quantity::new(LIMIT)),
            window: std::time::Duration::from_secs(3600),
            waitlist_hold: std::time::Duration::from_secs(60),
        };
        inventory
            .set_fair_selling(&sku, rules, &Origin::default())
            .await
            .unwrap();
        let shape = Shape {
            changes: true,
            customers: true,
            ..Shape::default()
        };
        let history = recorded(&inventory, &sku, round * 1000 + 77, shape).await;
        over += history.iter().filter(|o| o.ret == Ret::OverLimit).count();
        refused += history.iter().filter(|o| o.ret == Ret::Refused).count();
        checked += history.len();
        explained(&sku, check_limited(LIMITED_STOCK, LIMIT, &history), history);
        inventory.shutdown().await;
    }
    eprintln!(
        "linearizability under a purchase limit: {checked} operations checked; {over} refused by the limit, {refused} for stock"
    );
    assert!(
        over > 0 && refused > 0,
        "the runs never met the limit, or never ran out"
    );
}

//! A kit is held, sold and given back as its components, all or nothing; a component
//! shared by kits and sold alone is decided by its one writer, so nothing is oversold;
//! a kit's stock is derived from its components'.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::collections::BTreeMap;

use stockade_domain::{Availability, PoolKind, Quantity, Rejection, Sku};
use stockade_engine::{Error, Inventory, Line, Origin, ReserveOptions};
use stockade_tests::engine::{checked_log, kit, open_sqlite, register, sku};

fn line(sku: &Sku, qty: u64) -> Line {
    Line {
        placement: Default::default(),
        sku: sku.clone(),
        qty: Quantity::new(qty),
    }
}

async fn available(inventory: &Inventory, sku: &Sku) -> u64 {
    match inventory.stock(sku).await.unwrap().view.available {
        Availability::Limited(q) => q.get(),
        Availability::Unlimited => u64::MAX,
    }
}

async fn reserved(inventory: &Inventory, sku: &Sku) -> u64 {
    inventory.stock(sku).await.unwrap().view.reserved.get()
}

/// MUG and TEA with `mugs` and `teas` on hand, and the kit GIFT of two mugs and a tea.
async fn gift_shop(inventory: &Inventory, mugs: u64, teas: u64) -> (Sku, Sku, Sku) {
    let mug = register(inventory, "MUG", mugs).await;
    let tea = register(inventory, "TEA", teas).await;
    let gift = sku("GIFT");
    inventory
        .register(&gift, kit(&[(&mug, 2), (&tea, 1)]), &Origin::default())
        .await
        .unwrap();
    (mug, tea, gift)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kit_holds_its_components_and_its_stock_follows_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let (mug, tea, gift) = gift_shop(&inventory, 10, 5).await;

    let level = inventory.stock(&gift).await.unwrap();
    assert_eq!(level.view.pool, PoolKind::Kit);
    assert_eq!(level.view.components.len(), 2);
    assert_eq!(available(&inventory, &gift).await, 5, "min(10 / 2, 5 / 1)");
    let before = level.version;

    // Two kits and one more mug, in one order: the mugs are summed into one line.
    let held = inventory
        .reserve_order(
            vec![line(&gift, 2), line(&mug, 1)],
            ReserveOptions::default(),
        )
        .await
        .unwrap();
    let lines: BTreeMap<String, u64> = held
        .lines
        .iter()
        .map(|l| (l.sku.to_string(), l.qty.get()))
        .collect();
    assert_eq!(
        lines,
        BTreeMap::from([("MUG".into(), 5), ("TEA".into(), 2)])
    );
    assert_eq!(available(&inventory, &gift).await, 2, "min(5 / 2, 3 / 1)");
    // The kit's version moves when a component's does.
    assert!(inventory.stock(&gift).await.unwrap().version > before);

    // Committed by id, every component line is sold.
    inventory.commit(held.id, &Origin::default()).await.unwrap();
    let mug_now = inventory.stock(&mug).await.unwrap().view;
    assert_eq!(mug_now.limit, Some(Quantity::new(5)));
    assert_eq!(mug_now.reserved, Quantity::ZERO);
    assert_eq!(available(&inventory, &tea).await, 3);

    // A kit that cannot be filled holds nothing at all.
    let refused = inventory
        .reserve_order(vec![line(&gift, 3)], ReserveOptions::default())
        .await;
    assert!(
        matches!(&refused, Err(Error::Rejected { sku, rejection: Rejection::InsufficientStock { .. } }) if *sku == mug),
        "{refused:?}"
    );
    assert_eq!(reserved(&inventory, &mug).await, 0);
    assert_eq!(reserved(&inventory, &tea).await, 0);

    // `reserve` of one kit goes through the same expansion.
    let one = inventory
        .reserve(&gift, Quantity::new(1), ReserveOptions::default())
        .await
        .unwrap();
    assert_eq!(one.lines.len(), 2);
    assert_eq!(reserved(&inventory, &mug).await, 2);
    checked_log(&inventory.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_kits_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let mug = register(&inventory, "MUG", 10).await;
    let ghost = sku("GHOST");
    let cases = [
        (
            sku("K1"),
            kit(&[(&mug, 1), (&ghost, 1)]),
            "component GHOST is not registered; register it first",
        ),
        (
            sku("K2"),
            kit(&[(&mug, 0)]),
            "component MUG needs a quantity of at least 1",
        ),
        (
            sku("K3"),
            kit(&[(&mug, 1), (&sku("K3"), 1)]),
            "kit K3 cannot contain itself",
        ),
        (sku("K4"), kit(&[]), "a kit needs 1-50 components"),
    ];
    for (name, pool, reason) in cases {
        let refused = inventory.register(&name, pool, &Origin::default()).await;
        match refused {
            Err(Error::Rejected {
                rejection: Rejection::InvalidPool { reason: got },
                ..
            }) => assert_eq!(got, reason),
            other => panic!("{name}: expected invalid_pool, got {other:?}"),
        }
        assert!(matches!(
            inventory.stock(&name).await,
            Err(Error::Rejected {
                rejection: Rejection::UnknownSku,
                ..
            })
        ));
    }
    let report = checked_log(&inventory.store()).await;
    assert_eq!(report.events, 1, "only MUG's registration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kits_in_kits_expand_and_a_restarted_engine_still_knows_its_kits() {
    let dir = tempfile::tempdir().unwrap();
    let (mug, tea, box_, gift) = (sku("MUG"), sku("TEA"), sku("BOX"), sku("HAMPER"));
    {
        let inventory = open_sqlite(dir.path()).await;
        register(&inventory, "MUG", 20).await;
        register(&inventory, "TEA", 20).await;
        inventory
            .register(&box_, kit(&[(&mug, 2), (&tea, 1)]), &Origin::default())
            .await
            .unwrap();
        inventory
            .register(&gift, kit(&[(&box_, 2), (&tea, 3)]), &Origin::default())
            .await
            .unwrap();
        inventory.shutdown().await;
    }
    // A new engine has seen nothing: it learns that HAMPER and BOX are kits when asked.
    let inventory = open_sqlite(dir.path()).await;
    assert_eq!(available(&inventory, &gift).await, 4, "min(20 / 4, 20 / 5)");
    let held = inventory
        .reserve_order(vec![line(&gift, 1)], ReserveOptions::default())
        .await
        .unwrap();
    let lines: BTreeMap<String, u64> = held
        .lines
        .iter()
        .map(|l| (l.sku.to_string(), l.qty.get()))
        .collect();
    assert_eq!(
        lines,
        BTreeMap::from([("MUG".into(), 4), ("TEA".into(), 5)])
    );
    // A version a caller read can only be checked on a stream: a kit is refused there.
    let named = inventory
        .reserve_order(
            vec![line(&gift, 1)],
            ReserveOptions {
                expected_versions: BTreeMap::from([(gift.clone(), 1)]),
                ..ReserveOptions::default()
            },
        )
        .await;
    assert!(matches!(named, Err(Error::Invalid(_))), "{named:?}");
    inventory
        .release(held.id, &Origin::default())
        .await
        .unwrap();
    assert_eq!(reserved(&inventory, &mug).await, 0);
    assert_eq!(reserved(&inventory, &tea).await, 0);
}

/// 1000 buyers at once: 500 want the kit (2 mugs and a tea), 500 want a mug alone; there
/// are 100 mugs and 30 teas. Whoever wins, no component is ever promised twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_on_a_kit_and_its_component_never_oversell() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let (mug, tea, gift) = gift_shop(&inventory, 100, 30).await;
    let buyers: Vec<_> = (0..1000)
        .map(|i| {
            let inventory = inventory.clone();
            let want = if i % 2 == 0 {
                gift.clone()
            } else {
                mug.clone()
            };
            tokio::spawn(async move {
                let held = inventory
                    .reserve_order(vec![line(&want, 1)], ReserveOptions::default())
                    .await;
                (want, held.is_ok())
            })
        })
        .collect();
    let (mut kits, mut mugs) = (0u64, 0u64);
    for buyer in buyers {
        match buyer.await.unwrap() {
            (want, true) if want == gift => kits += 1,
            (_, true) => mugs += 1,
            _ => {}
        }
    }
    let mug_reserved = reserved(&inventory, &mug).await;
    let tea_reserved = reserved(&inventory, &tea).await;
    eprintln!("{kits} kits and {mugs} single mugs held: {mug_reserved} mugs, {tea_reserved} teas");
    assert_eq!(
        mug_reserved,
        2 * kits + mugs,
        "every acknowledged unit is held"
    );
    assert_eq!(tea_reserved, kits);
    assert!(
        mug_reserved <= 100 && tea_reserved <= 30,
        "{mug_reserved} mugs, {tea_reserved} teas"
    );
    assert!(kits <= 30);
    assert!(
        kits > 0 && mugs > 0,
        "{kits} kits, {mugs} mugs: both kinds of buyer got some"
    );
    // And the log, checked on its own, shows no unit promised twice.
    checked_log(&inventory.store()).await;
}

/// What a kit cannot be or do, each refused before anything is written: nested more than
/// `MAX_KIT_DEPTH` deep, coming down to more SKUs than an order may hold, adjusted (even
/// with the version a read of it showed), or ordered zero times beside its own component.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kits_stay_within_their_limits_and_their_own_stream_is_never_changed() {
    use stockade_engine::{Adjustment, MAX_KIT_DEPTH};
    let dir = tempfile::tempdir().unwrap();
    let inventory = open_sqlite(dir.path()).await;
    let mug = register(&inventory, "MUG", 100).await;
    let tea = register(&inventory, "TEA", 100).await;

    // A chain of kits, each containing the one before: the one past the limit is refused.
    let mut inner = mug.clone();
    for depth in 1..=MAX_KIT_DEPTH + 1 {
        let name = sku(&format!("NEST-{depth}"));
        let registered = inventory
            .register(&name, kit(&[(&inner, 1), (&tea, 1)]), &Origin::default())
            .await;
        if depth <= MAX_KIT_DEPTH {
            registered.unwrap();
        } else {
            match registered {
                Err(Error::Rejected {
                    rejection: Rejection::InvalidPool { reason },
                    ..
                }) => assert!(reason.contains("nest more than"), "{reason}"),
                other => panic!("a kit {depth} deep: {other:?}"),
            }
        }
        inner = name;
    }

    // 3 kits of 40 plain SKUs each come down to 120 SKUs: more than an order may hold.
    let mut wide = Vec::new();
    for k in 0..3 {
        let mut parts = Vec::new();
        for n in 0..40 {
            parts.push(register(&inventory, &format!("P{k}-{n}"), 10).await);
        }
        let components: Vec<(&Sku, u64)> = parts.iter().map(|p| (p, 1)).collect();
        let name = sku(&format!("WIDE-{k}"));
        inventory
            .register(&name, kit(&components), &Origin::default())
            .await
            .unwrap();
        wide.push(name);
    }
    let parts: Vec<(&Sku, u64)> = wide.iter().map(|w| (w, 1)).collect();
    let too_wide = inventory
        .register(&sku("WIDEST"), kit(&parts), &Origin::default())
        .await;
    assert!(
        matches!(&too_wide, Err(Error::Rejected { rejection: Rejection::InvalidPool { reason }, .. }) if reason.contains("more than 100")),
        "{too_wide:?}"
    );
    let order = inventory
        .reserve_order(
            wide.iter().map(|w| line(w, 1)).collect(),
            ReserveOptions::default(),
        )
        .await;
    assert!(matches!(order, Err(Error::Invalid(_))), "{order:?}");

    // A kit's own stream is never adjusted, whatever version the caller names.
    let gift = sku("NEST-1");
    let shown = inventory.stock(&gift).await.unwrap().version;
    let adjusted = inventory
        .adjust(
            &gift,
            Adjustment {
                location: None,
                change: stockade_domain::StockChange::Delta(5),
                reason: "received".into(),
                reference: None,
                expected_version: Some(shown),
            },
            &Origin::default(),
        )
        .await;
    assert!(
        matches!(
            &adjusted,
            Err(Error::Rejected {
                rejection: Rejection::UnsupportedForPool { .. },
                ..
            })
        ),
        "{adjusted:?}"
    );

    // Zero kits beside one of its component: refused, not absorbed into the mug line.
    let zero = inventory
        .reserve_order(
            vec![line(&gift, 0), line(&mug, 1)],
            ReserveOptions::default(),
        )
        .await;
    assert!(
        matches!(
            &zero,
            Err(Error::Rejected {
                rejection: Rejection::InvalidQuantity,
                ..
            })
        ),
        "{zero:?}"
    );
    assert_eq!(reserved(&inventory, &mug).await, 0);
    let report = checked_log(&inventory.store()).await;
    assert_eq!(report.reserved, 0, "nothing was ever held");
}

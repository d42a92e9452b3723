//! The read models carry kits and locations (ADR 0006): a kit's row is derived from its
//! parts' rows and gets a notice whenever a part moves what it offers; a SKU at several
//! locations has a row per location, and each notice names the locations it moved. Both
//! end the same whether projected live in small batches or rebuilt in one, and the
//! reconciler derives them as the projector does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::collections::HashSet;
use std::sync::Arc;

use stockade_domain::{LocationId, Placement, PoolConfig, Quantity, Sku, TransferId};
use stockade_engine::{Inventory, Line, Origin, ReserveOptions, Transfer};
use stockade_projections::model::{LocationRow, Status};
use stockade_projections::{Notice, NoticeHub, Projector, ProjectorConfig, ReadModels};
use stockade_store::{EventStore, SqliteStore};
use stockade_tests::engine::{kit, located, open_on, register, sku, test_engine};
use stockade_tests::projection::dump;

/// A projector that commits one event per batch, as a busy live run might.
fn one_by_one(store: Arc<dyn EventStore>, models: ReadModels, hub: NoticeHub) -> Projector {
    let config = ProjectorConfig {
        batch: 1,
        ..ProjectorConfig::default()
    };
    Projector::with_config(store, models, hub, config)
}

struct Shop {
    inventory: Inventory,
    store: Arc<dyn EventStore>,
    models: ReadModels,
    projector: Projector,
    notices: stockade_projections::HubSubscriber,
}

impl Shop {
    /// Projects what is new and returns the notices it published.
    async fn project(&mut self) -> Vec<Notice> {
        self.projector.catch_up().await.unwrap();
        let mut out = Vec::new();
        while let Some(n) = self.notices.try_recv() {
            match n {
                stockade_projections::HubMessage::Notice(n) => out.push((*n).clone()),
                other => panic!("{other:?}"),
            }
        }
        out
    }

    async fn reserve(
        &self,
        sku: &Sku,
        qty: u64,
        placement: Placement,
    ) -> stockade_domain::ReservationId {
        let line = Line {
            sku: sku.clone(),
            qty: Quantity::new(qty),
            placement,
        };
        self.inventory
            .reserve_order(vec![line], ReserveOptions::default())
            .await
            .unwrap()
            .id
    }

    /// The kit's row agrees with the engine's exact read: same availability, same version.
    async fn row_matches_the_engine(&self, sku: &Sku) {
        let row = self.models.stock(sku).await.unwrap().unwrap();
        let exact = self.inventory.stock(sku).await.unwrap();
        let available = match exact.view.available {
            stockade_domain::Availability::Limited(q) => Some(q.get()),
            stockade_domain::Availability::Unlimited => None,
        };
        assert_eq!(row.level.available, available, "{sku}");
        assert_eq!(row.version, exact.version, "{sku}");
    }

    async fn location(&self, sku: &Sku, location: &str) -> LocationRow {
        self.models
            .locations(sku)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.level.location == location)
            .unwrap()
    }
}

fn of<'a>(notices: &'a [Notice], sku: &Sku) -> Vec<&'a Notice> {
    notices.iter().filter(|n| &n.sku == sku).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kits_and_locations_are_projected_derived_and_rebuilt_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(dir.path().join("stockade.db")).unwrap());
    let inventory = open_on(store.clone(), test_engine()).await;
    let models = ReadModels::open(&dir.path().join("projections.db")).unwrap();
    let hub = NoticeHub::new();
    let notices = hub.subscribe(4096);
    let projector = one_by_one(store.clone(), models.clone(), hub);
    let mut shop = Shop {
        inventory,
        store,
        models,
        projector,
        notices,
    };
    let origin = Origin::default();

    // MUG and TEA; SHELF at Berlin (6) and Paris (4); GIFT = 2 mugs + a tea; SET = a
    // gift and a shelf (a kit of a kit).
    let mug = register(&shop.inventory, "MUG", 10).await;
    let tea = register(&shop.inventory, "TEA", 5).await;
    let shelf = sku("SHELF");
    let pool = PoolConfig::at_locations(vec![located("berlin", 6, 1), located("paris", 4, 2)]);
    shop.inventory
        .register(&shelf, pool, &origin)
        .await
        .unwrap();
    let gift = sku("GIFT");
    let set = sku("SET");
    shop.inventory
        .register(&gift, kit(&[(&mug, 2), (&tea, 1)]), &origin)
        .await
        .unwrap();
    shop.inventory
        .register(&set, kit(&[(&gift, 1), (&shelf, 1)]), &origin)
        .await
        .unwrap();
    let first = shop.project().await;
    // Registration of a kit is its first notice; SHELF's names both its locations.
    assert_eq!(of(&first, &gift).len(), 1);
    assert_eq!(of(&first, &gift)[0].cause.command, "register");
    let shelf_registered = of(&first, &shelf)[0];
    let named: Vec<&str> = shelf_registered
        .locations
        .iter()
        .map(|l| l.location.as_str())
        .collect();
    assert_eq!(named, ["berlin", "paris"]);
    let gift_row = shop.models.stock(&gift).await.unwrap().unwrap();
    assert_eq!(gift_row.pool, stockade_domain::PoolKind::Kit);
    assert_eq!(gift_row.level.available, Some(5), "min(10 / 2, 5 / 1)");
    assert_eq!(
        shop.models
            .stock(&set)
            .await
            .unwrap()
            .unwrap()
            .level
            .available,
        Some(5)
    );
    for k in [&gift, &set] {
        shop.row_matches_the_engine(k).await;
    }

    // Four teas sold alone: both kits fall to 1 and are told, naming the tea.
    let teas = shop.reserve(&tea, 4, Placement::default()).await;
    let moved = shop.project().await;
    for k in [&gift, &set] {
        let told = of(&moved, k);
        assert_eq!(told.len(), 1, "{k}: {moved:?}");
        assert_eq!(told[0].current.available, Some(1));
        assert_eq!(told[0].status, Status::LowStock);
        assert_eq!(told[0].cause.via.as_deref(), Some("TEA"));
        assert_eq!(told[0].cause.command, "reserve");
        shop.row_matches_the_engine(k).await;
    }
    // A mug alone: the kits still offer 1, so no notice, but their versions move.
    shop.reserve(&mug, 1, Placement::default()).await;
    let quiet = shop.project().await;
    assert!(
        of(&quiet, &gift).is_empty() && of(&quiet, &set).is_empty(),
        "{quiet:?}"
    );
    for k in [&gift, &set] {
        shop.row_matches_the_engine(k).await;
    }
    // The last tea goes elsewhere: the kits sell out, with an alert; then it comes back.
    let last = shop.reserve(&tea, 1, Placement::default()).await;
    let gone = shop.project().await;
    assert_eq!(of(&gone, &gift)[0].status, Status::OutOfStock);
    shop.inventory.release(last, &origin).await.unwrap();
    shop.inventory.commit(teas, &origin).await.unwrap();
    let back = shop.project().await;
    assert_eq!(of(&back, &gift).last().unwrap().status, Status::LowStock);
    let kinds: Vec<String> = shop
        .models
        .alerts(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.sku == "GIFT")
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["low_stock", "out_of_stock", "back_in_stock"]);

    // A kit ordered: its parts are held; the kits that contain them are told once each.
    let sets = shop
        .inventory
        .reserve_order(
            vec![Line::new(set.clone(), Quantity::new(1))],
            ReserveOptions::default(),
        )
        .await
        .unwrap();
    let ordered = shop.project().await;
    assert_eq!(
        of(&ordered, &set).last().unwrap().current.available,
        Some(0)
    );
    for k in [&gift, &set] {
        shop.row_matches_the_engine(k).await;
    }
    shop.inventory.release(sets.id, &origin).await.unwrap();
    shop.project().await;

    // Locations: two held at Paris move Paris only.
    let paris = Placement::at(LocationId::new("paris").unwrap());
    shop.reserve(&shelf, 2, paris).await;
    let held = shop.project().await;
    let shelf_notice = of(&held, &shelf)[0];
    assert_eq!(shelf_notice.locations.len(), 1, "{shelf_notice:?}");
    assert_eq!(shelf_notice.locations[0].location, "paris");
    assert_eq!(shelf_notice.locations[0].previous.available, Some(4));
    assert_eq!(shelf_notice.locations[0].current.available, Some(2));
    assert_eq!(shop.location(&shelf, "paris").await.level.available, 2);
    assert_eq!(shop.location(&shelf, "berlin").await.level.available, 6);
    let at_paris = shop.models.stock_at("paris", None, "", 10).await.unwrap();
    assert_eq!(at_paris.len(), 1);
    assert_eq!(
        (at_paris[0].0.sku.as_str(), at_paris[0].1.level.reserved),
        ("SHELF", 2)
    );
    assert!(
        shop.models
            .stock_at("rome", None, "", 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A transfer from Berlin: both move, and Paris shows what is on its way.
    let transfer = Transfer {
        transfer_id: TransferId::new("T-1").unwrap(),
        from: LocationId::new("berlin").unwrap(),
        to: LocationId::new("paris").unwrap(),
        qty: Quantity::new(3),
        reference: None,
        expected_version: None,
    };
    shop.inventory
        .ship_transfer(&shelf, transfer, &origin)
        .await
        .unwrap();
    let shipped = shop.project().await;
    let moved: HashSet<&str> = of(&shipped, &shelf)[0]
        .locations
        .iter()
        .map(|l| l.location.as_str())
        .collect();
    assert_eq!(moved, HashSet::from(["berlin", "paris"]));
    assert_eq!(shop.location(&shelf, "paris").await.level.incoming, 3);
    // Berlin's 3 left is low under the default threshold (3).
    assert_eq!(
        shop.location(&shelf, "berlin").await.status,
        Status::LowStock
    );
    shop.inventory
        .receive_transfer(&shelf, TransferId::new("T-1").unwrap(), &origin)
        .await
        .unwrap();
    shop.project().await;
    let paris_row = shop.location(&shelf, "paris").await;
    assert_eq!(
        (paris_row.level.available, paris_row.level.incoming),
        (5, 0)
    );
    // A threshold reaches the location rows too: under 2, Berlin's 3 is not low.
    shop.models.set_threshold(&shelf, 2).await.unwrap();
    assert_eq!(
        shop.location(&shelf, "berlin").await.status,
        Status::InStock
    );
    shop.models.set_threshold(&shelf, 3).await.unwrap();

    // Every notice once, numbered without a gap; kit notices have ids of their own.
    let all = shop.models.notices(0, usize::MAX).await.unwrap();
    assert!(all.iter().zip(1..).all(|(n, seq)| n.seq == seq));
    let ids: HashSet<_> = all.iter().map(|n| n.event_id).collect();
    assert_eq!(ids.len(), all.len(), "an event id twice");

    // A rebuild in one batch ends the same as the live run in batches of one.
    shop.inventory.clone().shutdown().await;
    let rebuilt = ReadModels::open(&dir.path().join("rebuilt.db")).unwrap();
    Projector::new(shop.store.clone(), rebuilt.clone(), NoticeHub::new())
        .rebuild()
        .await
        .unwrap();
    let (live, again) = (dump(&shop.models).await, dump(&rebuilt).await);
    assert_eq!(live.len(), again.len());
    for (a, b) in live.iter().zip(&again) {
        assert_eq!(a, b, "the live read models differ from the rebuild");
    }

    // The reconciler derives kits and locations as the projector does: nothing to repair.
    let mut reconciler =
        stockade_projections::reconcile::Reconciler::new(shop.store.clone(), shop.models.clone());
    assert_eq!(reconciler.reconcile(true).await.unwrap(), []);
    // A kit row and a location row that drifted are put back.
    let mut drifted = shop.models.stock(&gift).await.unwrap().unwrap();
    let good = drifted.clone();
    drifted.level.available = Some(99);
    shop.models.put_stock_row(drifted).await.unwrap();
    let mut wrong = shop.location(&shelf, "berlin").await;
    let berlin = wrong.clone();
    wrong.level.available += 7;
    shop.models.put_location_row(wrong).await.unwrap();
    let repaired = reconciler.reconcile(false).await.unwrap();
    assert_eq!(repaired.len(), 2, "{repaired:?}");
    assert_eq!(shop.models.stock(&gift).await.unwrap().unwrap(), good);
    assert_eq!(shop.location(&shelf, "berlin").await.level, berlin.level);
    assert_eq!(reconciler.reconcile(true).await.unwrap(), []);
}

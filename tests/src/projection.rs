//! Helpers for the projection scenarios: a mixed history written by the real engine, and
//! a dump of every read-model table to compare two projections of the same log.

use std::sync::Arc;
use std::time::Duration;

use stockade_domain::{OrderId, Quantity, StockChange, Timestamp};
use stockade_engine::{
    Adjustment, Inventory, InventoryConfig, ManualClock, Origin, ReserveOptions,
};
use stockade_projections::ReadModels;

use crate::engine::{register, test_engine};

/// A small deterministic generator (64-bit LCG), so a scenario can be repeated.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Writes a history through the engine on the SQLite log in `dir`: `skus` SKUs, then
/// `rounds` reservations (some in orders), each committed, released or left to expire,
/// recounts now and then, and finally the expiry of everything left. Returns the number
/// of SKU events written.
pub async fn mixed_history(dir: &std::path::Path, skus: usize, rounds: usize, seed: u64) -> u64 {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let inventory = Inventory::open(
        InventoryConfig::sqlite(dir)
            .engine(test_engine())
            .clock(Arc::new(clock.clone())),
    )
    .await
    .unwrap();
    let mut rng = Lcg(seed);
    let mut names = Vec::new();
    for n in 0..skus {
        names.push(register(&inventory, &format!("P-{n}"), 60 + rng.below(100)).await);
    }
    let mut abandoned = 0u64;
    for round in 0..rounds {
        let sku = &names[rng.below(skus as u64) as usize];
        if round % 40 == 39 {
            let count = StockChange::Count(Quantity::new(40 + rng.below(80)));
            let adjustment = Adjustment {
                location: None,
                change: count,
                reason: "cycle count".into(),
                reference: None,
                expected_version: None,
            };
            inventory
                .adjust(sku, adjustment, &Origin::default())
                .await
                .unwrap();
            continue;
        }
        let options = ReserveOptions {
            ttl: Some(Duration::from_secs(600)),
            order_id: (round % 3 == 0).then(|| OrderId::new(format!("order-{round}")).unwrap()),
            ..ReserveOptions::default()
        };
        let Ok(held) = inventory
            .reserve(sku, Quantity::new(1 + rng.below(3)), options)
            .await
        else {
            continue; // sold out: a refusal writes nothing
        };
        match rng.below(4) {
            0 | 1 => {
                inventory.commit(held.id, &Origin::default()).await.unwrap();
            }
            2 => {
                inventory
                    .release(held.id, &Origin::default())
                    .await
                    .unwrap();
            }
            _ => abandoned += 1,
        }
        clock.advance(Duration::from_millis(250));
    }
    // Everything abandoned lapses; wait for the timers to write the expiries.
    clock.advance(Duration::from_secs(3600));
    let deadline = tokio::time::Instant::now() + crate::PATIENCE;
    loop {
        let report = crate::engine::checked_log(&inventory.store()).await;
        if report.expired >= abandoned || tokio::time::Instant::now() > deadline {
            assert_eq!(report.expired, abandoned, "expiries missing");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = crate::engine::checked_log(&inventory.store()).await.events;
    inventory.shutdown().await;
    events
}

/// Every row of every derived table, as text, in a stable order.
pub async fn dump(models: &ReadModels) -> Vec<String> {
    models.dump_derived().await.expect("dump the read models")
}

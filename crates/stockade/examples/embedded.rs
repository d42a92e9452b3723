//! The program of `docs/embedding.md`: a shop that embeds Stockade, registers its
//! catalogue at every start, and sells from it. Run it twice on one directory: the
//! second run finds the catalogue and the first run's sale, and sells again.
//!
//! `cargo run -p stockade --example embedded -- ./stockade-data`

use std::path::Path;
use std::time::Duration;

use stockade::{
    Error, Inventory, InventoryConfig, Line, Origin, PoolConfig, Quantity, ReserveOptions, Sku,
};

/// What one run saw and did.
#[derive(Debug)]
pub struct Run {
    /// SKUs this run registered (the first run: all; later runs: none).
    pub registered: usize,
    /// Mugs on hand after this run's sale.
    pub mugs_on_hand: u64,
}

pub async fn run(data_dir: &Path) -> Result<Run, Box<dyn std::error::Error>> {
    // The embedded log: `stockade.db` in `data_dir`, created on first use.
    let inventory = Inventory::open(InventoryConfig::sqlite(data_dir)).await?;

    // The catalogue, registered at every start: a SKU that exists is left as it is.
    let mug = Sku::new("MUG-BLUE")?;
    let tee = Sku::new("TEE-M")?;
    let mut registered = 0;
    for (sku, on_hand) in [(&mug, 100), (&tee, 40)] {
        let pool = PoolConfig::physical(Quantity::new(on_hand), Quantity::ZERO);
        if inventory
            .register_if_absent(sku, pool, &Origin::default())
            .await?
            .created
        {
            registered += 1;
        }
    }

    // A checkout: both lines are held, or neither. The cart's id is the key, so a retry
    // after a lost answer gets this reservation back instead of holding twice.
    let cart = vec![
        Line::new(mug.clone(), Quantity::new(2)),
        Line::new(tee.clone(), Quantity::new(1)),
    ];
    let options = ReserveOptions {
        ttl: Some(Duration::from_secs(15 * 60)),
        origin: Origin::default().idempotency_key(format!("cart-{}", uuid_like())),
        ..ReserveOptions::default()
    };
    let held = match inventory.reserve_order(cart, options).await {
        Ok(held) => held,
        // Sold out, or a SKU short: nothing was written; tell the shopper.
        Err(Error::Rejected { sku, rejection }) => {
            return Err(format!("{sku}: {rejection}").into());
        }
        // The store could not answer, so the outcome may be unknown: retry with the same
        // options (the same key) to learn it without holding twice.
        Err(e) => return Err(e.into()),
    };

    // Payment went through.
    inventory.commit(held.id, &Origin::default()).await?;
    let mugs = inventory.stock(&mug).await?;

    // Waits for writes in flight, then stops the SKU actors.
    inventory.shutdown().await;
    Ok(Run {
        registered,
        mugs_on_hand: mugs.view.limit.map_or(0, Quantity::get),
    })
}

/// A fresh cart id (a real shop has its own).
fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::main]
#[allow(clippy::print_stdout)] // the program's answer
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "stockade-data".into());
    let run = run(Path::new(&dir)).await?;
    println!(
        "registered {} SKU(s); {} mugs on hand",
        run.registered, run.mugs_on_hand
    );
    Ok(())
}

//! A checkout against the embedded store: register, reserve with a key, retry, commit.
//!
//! `cargo run -p stockade --example checkout`

use stockade::{Inventory, InventoryConfig, Origin, PoolConfig, Quantity, ReserveOptions, Sku};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let inventory = Inventory::open(InventoryConfig::sqlite(data.path())).await?;
    let sku = Sku::new("MUG-BLUE")?;
    let pool = PoolConfig::physical(Quantity::new(5), Quantity::new(1));
    inventory.register(&sku, pool, &Origin::default()).await?;

    let options = ReserveOptions {
        origin: Origin::default().idempotency_key("checkout-1001"),
        ..ReserveOptions::default()
    };
    let held = inventory
        .reserve(&sku, Quantity::new(2), options.clone())
        .await?;
    // The client lost the reply and tries again: same reservation, nothing held twice.
    let again = inventory.reserve(&sku, Quantity::new(2), options).await?;
    assert_eq!(held.id, again.id);
    inventory.commit(held.id, &Origin::default()).await?;

    let level = inventory.stock(&sku).await?;
    eprintln!(
        "{sku}: on hand {:?}, available {:?}, version {}",
        level.view.limit, level.view.available, level.version
    );
    inventory.shutdown().await;
    Ok(())
}

//! Webhook delivery against real HTTP servers on 127.0.0.1: an endpoint that fails three
//! times gets the notice after backoff; one that never answers ends in the dead-letter
//! queue, which lists it and replays it once the endpoint works; a coalescing endpoint
//! gets only the latest state per SKU.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::time::Duration;

use stockade_domain::Quantity;
use stockade_engine::{Inventory, InventoryConfig, ReserveOptions};
use stockade_projections::webhook::{
    self, Dispatcher, Endpoint, RetryPolicy, SIGNATURE_HEADER, Sender, TIMESTAMP_HEADER,
};
use stockade_projections::{NoticeHub, Projector, ReadModels};
use stockade_tests::PATIENCE;
use stockade_tests::engine::{register, test_engine};
use stockade_tests::http_receiver::{Behaviour, Receiver};
use tokio::sync::oneshot;

struct Fixture {
    inventory: Inventory,
    models: ReadModels,
    hub: NoticeHub,
    projector: Projector,
}

async fn fixture() -> Fixture {
    let inventory = Inventory::open(InventoryConfig::memory().engine(test_engine()))
        .await
        .unwrap();
    let models = ReadModels::in_memory().unwrap();
    let hub = NoticeHub::new();
    let projector = Projector::new(inventory.store(), models.clone(), hub.clone());
    Fixture {
        inventory,
        models,
        hub,
        projector,
    }
}

/// Starts a dispatcher; dropping the returned sender stops it.
fn dispatch(f: &Fixture, endpoint: Endpoint, policy: RetryPolicy) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let sender = Sender::new(endpoint, stockade_wire::webhook::body).unwrap();
    let dispatcher = Dispatcher::new(f.models.clone(), f.hub.clone(), sender, policy);
    tokio::spawn(dispatcher.run(async move {
        let _ = stopped.await;
    }));
    stop
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_endpoint_gets_the_notice_after_backoff_and_a_dead_one_dead_letters_it() {
    let mut f = fixture().await;
    let sku = register(&f.inventory, "HOOKED", 10).await;
    f.projector.catch_up().await.unwrap();

    let flaky = Receiver::start(Behaviour::FailFirst(3)).await;
    let dead = Receiver::start(Behaviour::Down).await;
    let flaky_policy = RetryPolicy {
        retries: 5,
        base: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    let dead_policy = RetryPolicy {
        retries: 2,
        base: Duration::from_millis(20),
        max: Duration::from_millis(40),
    };
    let flaky_endpoint = Endpoint::new("flaky", &flaky.url, "flaky-secret");
    let dead_endpoint = Endpoint::new("dead", &dead.url, "dead-secret");
    // Cursors first: each endpoint gets what happens from here on.
    for name in ["webhook:flaky", "webhook:dead"] {
        f.models.cursor_or_start(name).await.unwrap();
    }
    let _stop_flaky = dispatch(&f, flaky_endpoint, flaky_policy);
    let _stop_dead = dispatch(&f, dead_endpoint.clone(), dead_policy);

    f.inventory
        .reserve(&sku, Quantity::new(1), ReserveOptions::default())
        .await
        .unwrap();
    f.projector.catch_up().await.unwrap();

    // The flaky endpoint: three 500s, then the same notice accepted.
    until("the flaky endpoint to accept", || {
        flaky.delivered().len() == 1
    })
    .await;
    let attempts = flaky.received();
    assert_eq!(attempts.len(), 4, "three failures and one success");
    assert!(attempts.iter().all(|a| a.body == attempts[0].body));
    for (retry, pair) in attempts.windows(2).enumerate() {
        let waited = pair[1].at - pair[0].at;
        let backoff = flaky_policy.delay(retry as u32 + 1);
        assert!(
            waited >= backoff,
            "retry {} after {waited:?}, before {backoff:?}",
            retry + 1
        );
    }
    let delivered = &attempts[3];
    let event: serde_json::Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(event["eventType"], "inventory-updated");
    assert_eq!(event["payload"]["sku"], "HOOKED");
    assert_eq!(event["payload"]["previousQuantity"], 10);
    assert_eq!(event["payload"]["newQuantity"], 9);
    assert_eq!(event["payload"]["trigger"], "RESERVED");
    assert_eq!(event["version"], 2);
    // The signature is HMAC-SHA256 of "<timestamp>.<body>" under this endpoint's secret.
    let timestamp = &delivered.headers[&TIMESTAMP_HEADER.to_ascii_lowercase()];
    assert_eq!(
        delivered.headers[&SIGNATURE_HEADER.to_ascii_lowercase()],
        webhook::sign("flaky-secret", timestamp, &delivered.body)
    );

    // The dead endpoint: three attempts, then the dead-letter queue.
    let channel = "webhook:dead";
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let letters = loop {
        let letters = f.models.dead_letters(Some(channel)).await.unwrap();
        if !letters.is_empty() || tokio::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].error.contains("503"), "{}", letters[0].error);
    assert_eq!(dead.received().len(), 3);
    assert!(dead.delivered().is_empty());

    // A replay while still down keeps it; once up, delivers it and empties the queue.
    let sender = Sender::new(dead_endpoint, stockade_wire::webhook::body).unwrap();
    let report = webhook::replay_dead_letters(&f.models, &sender)
        .await
        .unwrap();
    assert_eq!((report.delivered, report.still_failing), (0, 1));
    assert_eq!(
        f.models.dead_letters(Some(channel)).await.unwrap()[0].attempts,
        4
    );
    dead.set(Behaviour::Up);
    let report = webhook::replay_dead_letters(&f.models, &sender)
        .await
        .unwrap();
    assert_eq!((report.delivered, report.still_failing), (1, 0));
    assert!(f.models.dead_letters(None).await.unwrap().is_empty());
    let replayed: serde_json::Value = serde_json::from_slice(&dead.delivered()[0].body).unwrap();
    assert_eq!(
        replayed["eventId"], event["eventId"],
        "the same notice, not a new one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalescing_endpoint_gets_only_the_latest_state_of_each_sku() {
    let mut f = fixture().await;
    let hot = register(&f.inventory, "HOT", 100).await;
    let cold = register(&f.inventory, "COLD", 100).await;
    f.projector.catch_up().await.unwrap();
    let marketplace = Receiver::start(Behaviour::Up).await;
    let mut endpoint = Endpoint::new("marketplace", &marketplace.url, "s");
    endpoint.coalesce = Some(Duration::from_millis(300));
    f.models
        .cursor_or_start("webhook:marketplace")
        .await
        .unwrap();
    let _stop = dispatch(&f, endpoint, RetryPolicy::default());

    for _ in 0..5 {
        f.inventory
            .reserve(&hot, Quantity::new(1), ReserveOptions::default())
            .await
            .unwrap();
    }
    f.inventory
        .reserve(&cold, Quantity::new(2), ReserveOptions::default())
        .await
        .unwrap();
    f.projector.catch_up().await.unwrap();

    until("both SKUs delivered", || marketplace.delivered().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bodies: Vec<serde_json::Value> = marketplace
        .delivered()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "one call per SKU: {bodies:?}");
    assert_eq!(bodies[0]["payload"]["sku"], "HOT");
    assert_eq!(
        bodies[0]["payload"]["newQuantity"], 95,
        "the latest state, not the first"
    );
    assert_eq!(bodies[1]["payload"]["sku"], "COLD");
    assert_eq!(bodies[1]["payload"]["newQuantity"], 98);
}

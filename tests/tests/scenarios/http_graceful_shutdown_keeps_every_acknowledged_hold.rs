//! Shutting down under load loses nothing acknowledged: while hundreds of reservations are
//! in flight the server is told to stop; every 201 it gave is in the log after a restart,
//! and at most the requests that got no answer besides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use stockade_tests::server::{Client, TestServer, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_201_given_before_shutdown_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("STOP-1", 1_000_000).await;

    // 400 buyers, each reserving until its request fails (the server went away).
    let buyers: Vec<_> = (0..400)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let (mut held, mut unanswered) = (0u64, 0u64);
                for _ in 0..50 {
                    match client.try_reserve("STOP-1", 1).await {
                        Some(201) => held += 1,
                        // Any other answer is a refusal: nothing was written.
                        Some(_) => break,
                        // No answer: it may or may not have landed.
                        None => {
                            unanswered += 1;
                            break;
                        }
                    }
                }
                (held, unanswered)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    let (mut acknowledged, mut unanswered) = (0, 0);
    for buyer in buyers {
        let (held, lost_reply) = buyer.await.unwrap();
        acknowledged += held;
        unanswered += lost_reply;
    }
    stopping.await.unwrap().unwrap();
    assert!(
        acknowledged > 0,
        "some reservations were answered before the stop"
    );

    let again = TestServer::start(config(dir.path()));
    let client = Client::new(&again);
    let stock = client.get("/api/inventory/products/STOP-1", None).await;
    let reserved = stock.body["reserved"].as_u64().unwrap();
    assert!(
        (acknowledged..=acknowledged + unanswered).contains(&reserved),
        "{acknowledged} acknowledged, {unanswered} unanswered, {reserved} held"
    );
    assert_eq!(stock.body["available"], 1_000_000 - reserved);
    again.stop().unwrap();
}

//! `Idempotency-Key` over HTTP: the same key and body get the same response, before and
//! after a restart; the same key with another body is 422, even when the other body names
//! SKUs the first request never touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stockade_tests::server::{Client, POS, TestServer, WEB, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_gets_one_outcome_across_retries_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let body =
        json!({"items": [{"sku": "KEY-A", "qty": 2}], "ttl_seconds": 600, "order_id": "o-7"});
    let bytes = body.to_string().into_bytes();
    let first;
    {
        let server = TestServer::start(config(dir.path()));
        let client = Client::new(&server);
        client.register("KEY-A", 5).await;
        client.register("KEY-B", 5).await;
        let key = [("idempotency-key", "checkout-7f3a")];
        first = client
            .send(
                "POST",
                "/api/reservations",
                Some(WEB),
                &key,
                Some(bytes.clone()),
            )
            .await;
        assert_eq!(first.status, 201, "{}", first.text);
        assert!(!first.headers.contains_key("idempotent-replayed"));

        // A retry (say the reply was lost): the same body, byte for byte; no second hold.
        let retry = client
            .send(
                "POST",
                "/api/reservations",
                Some(WEB),
                &key,
                Some(bytes.clone()),
            )
            .await;
        assert_eq!(retry.status, 201);
        assert_eq!(retry.text, first.text);
        assert_eq!(retry.headers["idempotent-replayed"], "true");
        assert_eq!(client.available("KEY-A").await, Some(3));

        // Key order and spacing do not make it another request.
        let reordered = br#"{ "order_id": "o-7", "ttl_seconds": 600, "items": [ {"qty": 2, "sku": "KEY-A"} ] }"#;
        let same = client
            .send(
                "POST",
                "/api/reservations",
                Some(WEB),
                &key,
                Some(reordered.to_vec()),
            )
            .await;
        assert_eq!(same.text, first.text);

        // The same key with another quantity, or over another SKU: refused, nothing held.
        for other in [
            json!({"items": [{"sku": "KEY-A", "qty": 1}], "ttl_seconds": 600, "order_id": "o-7"}),
            json!({"items": [{"sku": "KEY-B", "qty": 2}], "ttl_seconds": 600, "order_id": "o-7"}),
        ] {
            let reused = client
                .send(
                    "POST",
                    "/api/reservations",
                    Some(WEB),
                    &key,
                    Some(other.to_string().into_bytes()),
                )
                .await;
            assert_eq!(reused.status, 422, "{}", reused.text);
            assert_eq!(reused.body["error"], "idempotency_key_reused");
        }
        assert_eq!(client.available("KEY-B").await, Some(5));

        // Keys belong to their principal: the POS channel's "checkout-7f3a" is its own.
        let pos = client
            .send(
                "POST",
                "/api/reservations",
                Some(POS),
                &key,
                Some(
                    json!({"items": [{"sku": "KEY-B", "qty": 1}]})
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        assert_eq!(pos.status, 201, "{}", pos.text);
        server.stop().unwrap();
    }
    // After a restart on the same data directory, the retry still gets the first answer.
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    let after = client
        .send(
            "POST",
            "/api/reservations",
            Some(WEB),
            &[("idempotency-key", "checkout-7f3a")],
            Some(bytes),
        )
        .await;
    assert_eq!(after.status, 201, "{}", after.text);
    assert_eq!(after.text, first.text);
    assert_eq!(client.available("KEY-A").await, Some(3));
    // Committing under a key is idempotent too.
    let id = first.body["reservation_id"].as_str().unwrap();
    let commit = |key: &'static str| {
        let client = client.clone();
        let path = format!("/api/reservations/{id}/commit");
        async move {
            client
                .send("POST", &path, Some(WEB), &[("idempotency-key", key)], None)
                .await
        }
    };
    let once = commit("commit-1").await;
    assert_eq!(once.status, 200, "{}", once.text);
    let twice = commit("commit-1").await;
    assert_eq!(
        twice.status, 200,
        "a keyed retry of a commit is not a conflict"
    );
    assert_eq!(twice.body, once.body);
    server.stop().unwrap();
}

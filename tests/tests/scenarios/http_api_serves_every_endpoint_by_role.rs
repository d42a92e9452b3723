//! Every REST endpoint over a real socket, with each role: 401 without a token (or with a
//! token that matches nothing), 403 with the wrong role, and the documented answer with
//! the right one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use stockade_tests::server::{ADMIN, Client, POS, READER, TestServer, WEB, config};

struct Case {
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// Tokens that may call it; the others get 403.
    allowed: &'static [&'static str],
}

async fn status(client: &Client, case: &Case, token: Option<&str>) -> u16 {
    let body = case.body.as_ref().map(|b| b.to_string().into_bytes());
    client
        .send(case.method, &case.path, token, &[], body)
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_endpoint_admits_exactly_its_roles() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.auth.public_reads = false;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("ROLE-A", 100).await;
    client.register("ROLE-W", 0).await;
    let held = client.reserve("ROLE-A", 1).await;
    assert_eq!(held.status, 201, "{}", held.text);
    let id = held.body["reservation_id"].as_str().unwrap().to_owned();

    let all: &[&str] = &[ADMIN, WEB, POS, READER];
    let cases = [
        Case {
            method: "POST",
            path: "/api/skus".into(),
            body: Some(json!({"sku": "ROLE-B", "pool": "digital"})),
            allowed: &[ADMIN],
        },
        Case {
            method: "POST",
            path: "/api/inventory/products/ROLE-A/adjustments".into(),
            body: Some(json!({"delta": 1, "reason": "received"})),
            allowed: &[ADMIN],
        },
        Case {
            method: "POST",
            path: "/api/inventory/products/ROLE-A/backorders".into(),
            body: Some(json!({"limit": 5})),
            allowed: &[ADMIN],
        },
        Case {
            method: "POST",
            path: "/api/inventory/products/ROLE-A/receipts".into(),
            body: Some(json!({"reference": "PO-R", "qty": 2, "eta": "2099-01-01T00:00:00Z"})),
            allowed: &[ADMIN],
        },
        Case {
            method: "POST",
            path: "/api/inventory/products/ROLE-A/receipts/PO-R/receive".into(),
            body: Some(json!({"qty": 1})),
            allowed: &[ADMIN],
        },
        Case {
            method: "POST",
            path: "/api/inventory/products/ROLE-A/receipts/PO-R/cancel".into(),
            body: None,
            allowed: &[ADMIN],
        },
        Case {
            method: "POST",
            path: "/api/reservations".into(),
            body: Some(json!({"items": [{"sku": "ROLE-A", "qty": 1}]})),
            allowed: &[WEB, POS],
        },
        Case {
            method: "POST",
            path: format!("/api/reservations/{id}/release"),
            body: None,
            allowed: &[WEB, POS],
        },
        Case {
            method: "PUT",
            path: "/api/inventory/products/ROLE-A/fair-selling".into(),
            body: Some(json!({"waitlist_hold_seconds": 60})),
            allowed: &[ADMIN],
        },
        Case {
            method: "GET",
            path: "/api/inventory/products/ROLE-A/fair-selling".into(),
            body: None,
            allowed: &[ADMIN],
        },
        // At a sold-out SKU, so the place waits (with stock free it is served at once).
        Case {
            method: "POST",
            path: "/api/inventory/products/ROLE-W/waitlist".into(),
            body: Some(json!({"customer": "role-w", "qty": 1})),
            allowed: &[WEB, POS],
        },
        Case {
            method: "GET",
            path: "/api/inventory/products/ROLE-W/waitlist/role-w".into(),
            body: None,
            allowed: &[WEB, POS],
        },
        Case {
            method: "DELETE",
            path: "/api/inventory/products/ROLE-W/waitlist/role-w".into(),
            body: None,
            allowed: &[WEB, POS],
        },
        Case {
            method: "GET",
            path: "/api/inventory/products/ROLE-A".into(),
            body: None,
            allowed: all,
        },
        Case {
            method: "GET",
            path: "/api/inventory/products".into(),
            body: None,
            allowed: all,
        },
        Case {
            method: "GET",
            path: format!("/api/reservations/{id}"),
            body: None,
            allowed: all,
        },
        Case {
            method: "GET",
            path: "/metrics".into(),
            body: None,
            allowed: all,
        },
    ];
    for case in &cases {
        let label = format!("{} {}", case.method, case.path);
        assert_eq!(
            status(&client, case, None).await,
            401,
            "{label} without a token"
        );
        assert_eq!(
            status(&client, case, Some("not-a-token-at-all-000")).await,
            401,
            "{label} with a bad token"
        );
        for token in all {
            let got = status(&client, case, Some(token)).await;
            if case.allowed.contains(token) {
                // A second allowed caller meets what the first did: a released hold, a
                // customer already waiting, a place already left. Still not a 401 or 403.
                let repeated = (got == 409
                    && (case.path.ends_with("/release") || case.path.ends_with("/waitlist")))
                    || (case.method == "DELETE" && got == 404);
                assert!(
                    (200..300).contains(&got) || repeated,
                    "{label} with an allowed token: {got}"
                );
            } else {
                assert_eq!(got, 403, "{label} with a wrong-role token");
            }
        }
    }
    // A malformed Authorization header is a 401 too, not a 400 or a 500.
    let answer = client
        .send(
            "GET",
            "/api/inventory/products/ROLE-A",
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
            None,
        )
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["error"], "unauthorized");
    // Health and readiness are for load balancers: no token.
    assert_eq!(client.get("/healthz", None).await.status, 200);
    assert_eq!(client.get("/readyz", None).await.status, 200);
    server.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skus_stock_adjustments_and_reservations_answer_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);

    // Register one SKU of each pool.
    let tee = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "TEE-M", "pool": "physical", "on_hand": 10, "low_stock_threshold": 2}),
        )
        .await;
    assert_eq!(tee.status, 201, "{}", tee.text);
    assert_eq!(tee.headers["location"], "/api/inventory/products/TEE-M");
    for (key, value) in [
        ("sku", json!("TEE-M")),
        ("on_hand", json!(10)),
        ("reserved", json!(0)),
        ("available", json!(10)),
        ("status", json!("in_stock")),
        ("version", json!(1)),
    ] {
        assert_eq!(tee.body[key], value, "{key} in {}", tee.text);
    }
    assert!(tee.body["updated_at"].as_str().unwrap().ends_with('Z'));
    let ebook = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "EBOOK", "pool": "digital"}),
        )
        .await;
    assert_eq!(ebook.status, 201);
    assert_eq!(ebook.body["available"], Value::Null, "unlimited is null");
    let print = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "POSTER", "pool": "print_on_demand", "capacity": 5}),
        )
        .await;
    assert_eq!(print.status, 201, "{}", print.text);
    let again = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "TEE-M", "pool": "physical"}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"], "already_registered");
    // A refused registration changes nothing, not even the low-stock threshold.
    let with_threshold = client
        .post(
            "/api/skus",
            Some(ADMIN),
            json!({"sku": "TEE-M", "pool": "physical", "low_stock_threshold": 50}),
        )
        .await;
    assert_eq!(with_threshold.status, 409);
    assert_eq!(
        client.get("/api/inventory/products/TEE-M", None).await.body["status"],
        "in_stock"
    );

    // Unknown SKU: 404 with the JSON error shape.
    let missing = client.get("/api/inventory/products/NOPE", None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"], "unknown_sku");
    assert!(missing.body["message"].is_string());

    // A paged list. It comes from the read models, which follow the log within
    // milliseconds: wait until all three SKUs are projected, then page through them.
    let mut all = client.get("/api/inventory/products", None).await;
    for _ in 0..250 {
        if all.body["items"].as_array().is_some_and(|i| i.len() == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        all = client.get("/api/inventory/products", None).await;
    }
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        all.text
    );
    let page = client.get("/api/inventory/products?limit=2", None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items[0]["sku"], "EBOOK");
    assert_eq!(items[1]["sku"], "POSTER");
    assert_eq!(page.body["next_after"], "POSTER");
    let rest = client
        .get("/api/inventory/products?limit=2&after=POSTER", None)
        .await;
    assert_eq!(rest.body["items"][0]["sku"], "TEE-M");
    assert_eq!(rest.body["next_after"], Value::Null);

    // Reserve two lines at once; both are held.
    let cap = client.register("CAP", 1).await;
    assert_eq!(cap.body["version"], 1);
    let order = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "TEE-M", "qty": 3}, {"sku": "CAP", "qty": 1}],
                   "ttl_seconds": 600, "order_id": "order-1"}),
        )
        .await;
    assert_eq!(order.status, 201, "{}", order.text);
    let id = order.body["reservation_id"].as_str().unwrap().to_owned();
    assert_eq!(order.body["order_id"], "order-1");
    assert_eq!(order.body["items"].as_array().unwrap().len(), 2);
    assert!(order.body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(client.available("TEE-M").await, Some(7));
    let status = client.get(&format!("/api/reservations/{id}"), None).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "held");

    // Sold out: 409 with what is left; an order that cannot be whole holds nothing.
    let refused = client
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "TEE-M", "qty": 1}, {"sku": "CAP", "qty": 1}]}),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.body["error"], "insufficient_stock");
    assert_eq!(refused.body["sku"], "CAP");
    assert_eq!(refused.body["available"], 0);
    assert_eq!(client.available("TEE-M").await, Some(7), "rolled back");

    // Commit, then a second commit is a conflict.
    let commit = client
        .send(
            "POST",
            &format!("/api/reservations/{id}/commit"),
            Some(POS),
            &[],
            None,
        )
        .await;
    assert_eq!(commit.status, 200, "{}", commit.text);
    assert_eq!(commit.body["status"], "committed");
    let twice = client
        .send(
            "POST",
            &format!("/api/reservations/{id}/commit"),
            Some(POS),
            &[],
            None,
        )
        .await;
    assert_eq!(twice.status, 409);
    assert_eq!(twice.body["error"], "already_resolved");
    let tee_now = client.get("/api/inventory/products/TEE-M", None).await;
    assert_eq!(tee_now.body["on_hand"], 7);
    assert_eq!(tee_now.body["sold"], 0, "physical sales leave on hand");

    // Release gives stock back.
    let hold = client.reserve("TEE-M", 5).await;
    // Register, hold, the refused order's hold and its compensation, commit: this is 6.
    assert_eq!(hold.body["items"][0]["version"], 6);
    let hid = hold.body["reservation_id"].as_str().unwrap();
    assert_eq!(
        client.get("/api/inventory/products/TEE-M", None).await.body["status"],
        "low_stock"
    );
    let release = client
        .send(
            "POST",
            &format!("/api/reservations/{hid}/release"),
            Some(WEB),
            &[],
            None,
        )
        .await;
    assert_eq!(release.status, 200);
    assert_eq!(release.body["status"], "released");
    assert_eq!(client.available("TEE-M").await, Some(7));
    assert_eq!(
        client
            .get(&format!("/api/reservations/{hid}"), None)
            .await
            .body["status"],
        "released"
    );
    let unknown = client
        .get(
            "/api/reservations/00000000-0000-4000-8000-000000000000",
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);

    // Adjustments, with and without an expected version.
    let received = client
        .post(
            "/api/inventory/products/TEE-M/adjustments",
            Some(ADMIN),
            json!({"delta": 5, "reason": "received", "reference": "PO-9"}),
        )
        .await;
    assert_eq!(received.status, 200, "{}", received.text);
    assert_eq!(received.body["previous"], 7);
    assert_eq!(received.body["current"], 12);
    let version = received.body["version"].as_u64().unwrap();
    let stale = client
        .post(
            "/api/inventory/products/TEE-M/adjustments",
            Some(ADMIN),
            json!({"counted_on_hand": 11, "reason": "count", "expected_version": version - 1}),
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.text);
    assert_eq!(stale.body["error"], "version_conflict");
    assert_eq!(stale.body["current_version"], version);
    assert_eq!(
        stale.body["current"]["on_hand"], 12,
        "the current value comes back"
    );
    let counted = client
        .post(
            "/api/inventory/products/TEE-M/adjustments",
            Some(ADMIN),
            json!({"counted_on_hand": 11, "reason": "count", "expected_version": version}),
        )
        .await;
    assert_eq!(counted.status, 200, "{}", counted.text);
    assert_eq!(counted.body["current"], 11);

    // Operations endpoints.
    let metrics = client.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text.contains("stockade_http_requests_total"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("stockade_reservations_total"));
    let dashboard = client.get("/", None).await;
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.headers["content-type"].starts_with("text/html"));
    server.stop().unwrap();
}

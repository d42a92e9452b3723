//! Bad input over HTTP: every case gets the documented 4xx with a JSON `{"error",
//! "message"}` body. Never a 5xx, never a panic, and nothing written: the SKU's version is
//! the same after the whole table as before it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use stockade_tests::server::{ADMIN, Client, TestServer, WEB, config};

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    token: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &str,
    token: &'static str,
    body: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        token,
        body: body.as_bytes().to_vec(),
        status,
        code,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_documented_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_body_bytes = 4096;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("BAD-1", 10).await;
    let before = client.get("/api/inventory/products/BAD-1", None).await.body["version"].clone();

    let r = "/api/reservations";
    let a = "/api/inventory/products/BAD-1/adjustments";
    let s = "/api/skus";
    let huge = format!(
        r#"{{"items":[{{"sku":"BAD-1","qty":1}}],"order_id":"{}"}}"#,
        "x".repeat(5000)
    );
    let cases = vec![
        // Not JSON at all.
        case(
            "malformed JSON",
            "POST",
            r,
            WEB,
            r#"{"items": [{"sku": "BAD-1""#,
            400,
            "malformed_json",
        ),
        case(
            "not JSON",
            "POST",
            r,
            WEB,
            "items=BAD-1",
            400,
            "malformed_json",
        ),
        case("empty body", "POST", r, WEB, "", 400, "malformed_json"),
        // JSON of the wrong shape.
        case(
            "a list, not an object",
            "POST",
            r,
            WEB,
            "[1,2]",
            422,
            "invalid_body",
        ),
        case("missing items", "POST", r, WEB, "{}", 422, "invalid_body"),
        case(
            "qty as a string",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":"2"}]}"#,
            422,
            "invalid_body",
        ),
        case(
            "negative qty",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":-1}]}"#,
            422,
            "invalid_body",
        ),
        case(
            "fractional qty",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1.5}]}"#,
            422,
            "invalid_body",
        ),
        case(
            "qty beyond u64",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":18446744073709551616}]}"#,
            422,
            "invalid_body",
        ),
        case(
            "qty 1e30",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1e30}]}"#,
            422,
            "invalid_body",
        ),
        case(
            "unknown field",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1}],"tll_seconds":5}"#,
            422,
            "invalid_body",
        ),
        case(
            "unknown item field",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1,"colour":"red"}]}"#,
            422,
            "invalid_body",
        ),
        case(
            "null items",
            "POST",
            r,
            WEB,
            r#"{"items":null}"#,
            422,
            "invalid_body",
        ),
        // Values out of range.
        case(
            "a quantity past what the read models store (i64::MAX + 1)",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":9223372036854775808}]}"#,
            422,
            "out_of_range",
        ),
        case(
            "on hand past the range",
            "POST",
            s,
            ADMIN,
            r#"{"sku":"BAD-3","pool":"physical","on_hand":18446744073709551615}"#,
            422,
            "out_of_range",
        ),
        case(
            "a license limit past the range",
            "POST",
            s,
            ADMIN,
            r#"{"sku":"BAD-3","pool":"digital","license_limit":9223372036854775808}"#,
            422,
            "out_of_range",
        ),
        case(
            "a count past the range",
            "POST",
            a,
            ADMIN,
            r#"{"counted_on_hand":9223372036854775808,"reason":"count"}"#,
            422,
            "out_of_range",
        ),
        case(
            "zero qty",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":0}]}"#,
            422,
            "invalid_quantity",
        ),
        case(
            "no items",
            "POST",
            r,
            WEB,
            r#"{"items":[]}"#,
            422,
            "invalid_field",
        ),
        case(
            "the same SKU twice",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1},{"sku":"BAD-1","qty":1}]}"#,
            422,
            "invalid_field",
        ),
        case(
            "zero ttl",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1}],"ttl_seconds":0}"#,
            422,
            "invalid_ttl",
        ),
        case(
            "ttl over 7 days",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1}],"ttl_seconds":604801}"#,
            422,
            "invalid_ttl",
        ),
        case(
            "invalid SKU id",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD 1","qty":1}]}"#,
            422,
            "invalid_sku",
        ),
        case(
            "over-long SKU id",
            "POST",
            r,
            WEB,
            &format!(r#"{{"items":[{{"sku":"{}","qty":1}}]}}"#, "S".repeat(65)),
            422,
            "invalid_sku",
        ),
        case(
            "invalid order id",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1}],"order_id":"a/b"}"#,
            422,
            "invalid_field",
        ),
        // Huge, but well-formed: the state says no.
        case(
            "huge qty (u64::MAX)",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":18446744073709551615}]}"#,
            422,
            "out_of_range",
        ),
        case(
            "unknown SKU",
            "POST",
            r,
            WEB,
            r#"{"items":[{"sku":"NO-SUCH","qty":1}]}"#,
            404,
            "unknown_sku",
        ),
        // Size.
        case(
            "oversized body",
            "POST",
            r,
            WEB,
            &huge,
            413,
            "payload_too_large",
        ),
        // Registration.
        case(
            "unknown pool",
            "POST",
            s,
            ADMIN,
            r#"{"sku":"BAD-2","pool":"lake"}"#,
            422,
            "invalid_body",
        ),
        case(
            "field of another pool",
            "POST",
            s,
            ADMIN,
            r#"{"sku":"BAD-2","pool":"digital","on_hand":3}"#,
            422,
            "invalid_field",
        ),
        case(
            "negative on hand",
            "POST",
            s,
            ADMIN,
            r#"{"sku":"BAD-2","pool":"physical","on_hand":-3}"#,
            422,
            "invalid_body",
        ),
        case(
            "invalid SKU at registration",
            "POST",
            s,
            ADMIN,
            r#"{"sku":"","pool":"physical"}"#,
            422,
            "invalid_sku",
        ),
        // Adjustments.
        case(
            "delta and count",
            "POST",
            a,
            ADMIN,
            r#"{"delta":1,"counted_on_hand":3,"reason":"x"}"#,
            422,
            "invalid_field",
        ),
        case(
            "no reason",
            "POST",
            a,
            ADMIN,
            r#"{"delta":1}"#,
            422,
            "invalid_body",
        ),
        case(
            "empty reason",
            "POST",
            a,
            ADMIN,
            r#"{"delta":1,"reason":""}"#,
            422,
            "invalid_reason",
        ),
        case(
            "zero delta",
            "POST",
            a,
            ADMIN,
            r#"{"delta":0,"reason":"x"}"#,
            422,
            "zero_delta",
        ),
        case(
            "below zero",
            "POST",
            a,
            ADMIN,
            r#"{"delta":-11,"reason":"x"}"#,
            409,
            "below_zero",
        ),
        case(
            "delta beyond i64",
            "POST",
            a,
            ADMIN,
            r#"{"delta":9223372036854775808,"reason":"x"}"#,
            422,
            "invalid_body",
        ),
        case(
            "adjusting an unknown SKU",
            "POST",
            "/api/inventory/products/NO-SUCH/adjustments",
            ADMIN,
            r#"{"delta":1,"reason":"x"}"#,
            404,
            "unknown_sku",
        ),
        case(
            "invalid SKU in the path",
            "POST",
            "/api/inventory/products/B%20D/adjustments",
            ADMIN,
            r#"{"delta":1,"reason":"x"}"#,
            422,
            "invalid_sku",
        ),
        // Reservation ids.
        case(
            "unknown reservation",
            "POST",
            "/api/reservations/00000000-0000-4000-8000-000000000001/commit",
            WEB,
            "",
            404,
            "not_found",
        ),
        case(
            "malformed reservation id",
            "POST",
            "/api/reservations/not-a-uuid/commit",
            WEB,
            "",
            404,
            "not_found",
        ),
        case(
            "malformed reservation id (read)",
            "GET",
            "/api/reservations/%00",
            WEB,
            "",
            404,
            "not_found",
        ),
        case(
            "a body on commit",
            "POST",
            "/api/reservations/00000000-0000-4000-8000-000000000001/commit",
            WEB,
            r#"{"qty":1}"#,
            422,
            "invalid_body",
        ),
        // Paths, methods, queries.
        case(
            "no such path",
            "GET",
            "/api/nothing",
            WEB,
            "",
            404,
            "no_route",
        ),
        case(
            "wrong method",
            "DELETE",
            "/api/skus",
            ADMIN,
            "",
            405,
            "method_not_allowed",
        ),
        case(
            "bad page size",
            "GET",
            "/api/inventory/products?limit=0",
            WEB,
            "",
            422,
            "invalid_field",
        ),
        case(
            "page size not a number",
            "GET",
            "/api/inventory/products?limit=many",
            WEB,
            "",
            422,
            "invalid_query",
        ),
        case(
            "unknown query parameter",
            "GET",
            "/api/inventory/products?sort=desc",
            WEB,
            "",
            422,
            "invalid_query",
        ),
        case(
            "invalid SKU in a read",
            "GET",
            "/api/inventory/products/%F0%9F%98%80",
            WEB,
            "",
            422,
            "invalid_sku",
        ),
        case(
            "bad SSE filter",
            "GET",
            "/api/events?sku=a%20b",
            WEB,
            "",
            422,
            "invalid_sku",
        ),
        // Fair selling: nothing of it is written either.
        case(
            "a purchase limit of 0",
            "PUT",
            "/api/inventory/products/BAD-1/fair-selling",
            ADMIN,
            r#"{"per_customer":0,"window_seconds":60}"#,
            422,
            "invalid_field",
        ),
        case(
            "a purchase limit without its window",
            "PUT",
            "/api/inventory/products/BAD-1/fair-selling",
            ADMIN,
            r#"{"per_customer":2}"#,
            422,
            "invalid_field",
        ),
        case(
            "a window past 366 days",
            "PUT",
            "/api/inventory/products/BAD-1/fair-selling",
            ADMIN,
            r#"{"per_customer":2,"window_seconds":99999999}"#,
            422,
            "invalid_rules",
        ),
        case(
            "a reservation for a customer id with a space",
            "POST",
            "/api/reservations",
            WEB,
            r#"{"items":[{"sku":"BAD-1","qty":1}],"customer":"ann smith"}"#,
            422,
            "invalid_field",
        ),
        case(
            "a waitlist place of zero units",
            "POST",
            "/api/inventory/products/BAD-1/waitlist",
            WEB,
            r#"{"customer":"ann","qty":0}"#,
            422,
            "invalid_quantity",
        ),
        case(
            "a waitlist place for a customer id past 128 characters",
            "POST",
            "/api/inventory/products/BAD-1/waitlist",
            WEB,
            &format!(r#"{{"customer":"{}"}}"#, "c".repeat(129)),
            422,
            "invalid_field",
        ),
        case(
            "a waitlist read for a malformed customer",
            "GET",
            "/api/inventory/products/BAD-1/waitlist/a%20b",
            WEB,
            "",
            422,
            "invalid_field",
        ),
        case(
            "leaving a waitlist one is not on",
            "DELETE",
            "/api/inventory/products/BAD-1/waitlist/nobody",
            WEB,
            "",
            404,
            "not_waiting",
        ),
        // Backorders and receipts: nothing of them is written either.
        case(
            "backorder limit as a string",
            "POST",
            "/api/inventory/products/BAD-1/backorders",
            ADMIN,
            r#"{"limit":"5"}"#,
            422,
            "invalid_body",
        ),
        case(
            "backorder limit at a location the SKU lacks",
            "POST",
            "/api/inventory/products/BAD-1/backorders",
            ADMIN,
            r#"{"limit":5,"location":"mars"}"#,
            422,
            "unknown_location",
        ),
        case(
            "receipt due in the past",
            "POST",
            "/api/inventory/products/BAD-1/receipts",
            ADMIN,
            r#"{"reference":"PO-1","qty":1,"eta":"2001-01-01T00:00:00Z"}"#,
            422,
            "invalid_receipt",
        ),
        case(
            "receipt with an unknown field",
            "POST",
            "/api/inventory/products/BAD-1/receipts",
            ADMIN,
            r#"{"reference":"PO-1","qty":1,"eta":"2099-01-01T00:00:00Z","supplier":"x"}"#,
            422,
            "invalid_body",
        ),
        case(
            "receipt of zero units",
            "POST",
            "/api/inventory/products/BAD-1/receipts",
            ADMIN,
            r#"{"reference":"PO-1","qty":0,"eta":"2099-01-01T00:00:00Z"}"#,
            422,
            "invalid_quantity",
        ),
        case(
            "receipt reference with a space",
            "POST",
            "/api/inventory/products/BAD-1/receipts",
            ADMIN,
            r#"{"reference":"PO 1","qty":1,"eta":"2099-01-01T00:00:00Z"}"#,
            422,
            "invalid_field",
        ),
        case(
            "arrival of a receipt never expected",
            "POST",
            "/api/inventory/products/BAD-1/receipts/PO-9/receive",
            ADMIN,
            "{}",
            404,
            "unknown_receipt",
        ),
        case(
            "arrival as a string",
            "POST",
            "/api/inventory/products/BAD-1/receipts/PO-9/receive",
            ADMIN,
            r#"{"qty":"1"}"#,
            422,
            "invalid_body",
        ),
    ];
    // An over-long idempotency key, sent as a header.
    let long_key = "k".repeat(300);
    let mut failures = Vec::new();
    for c in &cases {
        let body = (!c.body.is_empty()).then(|| c.body.clone());
        let answer = client
            .send(c.method, &c.path, Some(c.token), &[], body)
            .await;
        let code = answer.body["error"].as_str().unwrap_or("<no JSON error>");
        let has_message = answer.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
        if answer.status != c.status || code != c.code || !has_message {
            failures.push(format!(
                "{}: got {} {} ({}), want {} {}",
                c.what, answer.status, code, answer.text, c.status, c.code
            ));
        }
    }
    let keyed = client
        .send(
            "POST",
            r,
            Some(WEB),
            &[("idempotency-key", long_key.as_str())],
            Some(br#"{"items":[{"sku":"BAD-1","qty":1}]}"#.to_vec()),
        )
        .await;
    if keyed.status != 422 || keyed.body["error"] != "invalid_request" {
        failures.push(format!(
            "over-long idempotency key: {} {}",
            keyed.status, keyed.text
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The refusal names the range, in the server's words (no library detail).
    let past = client
        .send(
            "POST",
            r,
            Some(WEB),
            &[],
            Some(br#"{"items":[{"sku":"BAD-1","qty":9223372036854775808}]}"#.to_vec()),
        )
        .await;
    assert_eq!(past.body["max"], i64::MAX, "{}", past.text);
    assert!(past.body.get("source").is_none(), "{}", past.text);

    // Nothing above wrote anything, and the server still serves.
    let after = client.get("/api/inventory/products/BAD-1", None).await;
    assert_eq!(after.body["version"], before);
    assert_eq!(after.body["available"], 10);
    assert_eq!(client.get("/healthz", None).await.status, 200);

    // Reads of made-up SKUs (public by default) do not leave an actor each behind.
    for i in 0..50 {
        let missing = client
            .get(&format!("/api/inventory/products/MADE-UP-{i}"), None)
            .await;
        assert_eq!(missing.status, 404);
    }
    let mut active = f64::MAX;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let metrics = client.get("/metrics", None).await.text;
        active = metrics
            .lines()
            .find_map(|l| l.strip_prefix("stockade_active_skus ")?.trim().parse().ok())
            .unwrap_or(f64::MAX);
        if active <= 1.0 {
            break;
        }
    }
    assert!(
        active <= 1.0,
        "{active} actors still running for 1 registered SKU"
    );
    server.stop().unwrap();
}

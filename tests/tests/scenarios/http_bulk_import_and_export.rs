//! Bulk paths over HTTP: an NDJSON and a CSV import answered line by line (registered,
//! updated, unchanged, refused), the same import again under its key changing nothing,
//! and the stock and reservations streamed back out as NDJSON and CSV.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use stockade_tests::server::{ADMIN, Client, TestServer, WEB, config};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn import(client: &Client, body: &str, csv: bool, key: Option<&str>) -> (u16, Vec<Value>) {
    let mut headers = vec![(
        "content-type",
        if csv {
            "text/csv"
        } else {
            "application/x-ndjson"
        },
    )];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    let answer = client
        .send(
            "POST",
            "/api/skus/import",
            Some(ADMIN),
            &headers,
            Some(body.as_bytes().to_vec()),
        )
        .await;
    (answer.status, lines(&answer.text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_skus_are_imported_line_by_line_and_exported_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let client = Client::new(&server);
    client.register("OLD-1", 10).await;
    client.register("OLD-2", 4).await;

    let ndjson = [
        r#"{"sku":"NEW-1","pool":"physical","on_hand":7,"low_stock_threshold":2}"#,
        r#"{"sku":"NEW-2","pool":"digital"}"#,
        r#"{"sku":"OLD-1","pool":"physical","on_hand":12}"#,
        r#"{"sku":"OLD-2","pool":"physical","on_hand":4}"#,
        r#"{"sku":"BAD SKU","pool":"physical"}"#,
        r#"{"sku":"NEW-3","pool":"physical","on_hand":-1}"#,
        "",
        r#"{"sku":"OLD-1","pool":"digital"}"#,
    ]
    .join("\n");
    let (status, first) = import(&client, &ndjson, false, Some("erp-sync-1")).await;
    assert_eq!(status, 200);
    let outcomes: Vec<&str> = first[..7]
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "registered",
            "registered",
            "updated",
            "unchanged",
            "error",
            "error",
            "error"
        ],
        "{first:?}"
    );
    assert_eq!(first[4]["error"], "invalid_sku");
    assert_eq!(first[6]["error"], "unsupported_for_pool", "{first:?}");
    assert_eq!(
        first[7]["summary"],
        serde_json::json!({"lines": 7, "registered": 2, "updated": 1, "unchanged": 1, "errors": 3})
    );
    assert_eq!(
        client.get("/api/inventory/products/OLD-1", None).await.body["on_hand"],
        12
    );
    // The same import under the same key changes nothing: the registrations replay, the
    // update finds its count already there.
    let (_, again) = import(&client, &ndjson, false, Some("erp-sync-1")).await;
    assert_eq!(
        again[7]["summary"],
        serde_json::json!({"lines": 7, "registered": 2, "updated": 0, "unchanged": 2, "errors": 3}),
        "{again:?}"
    );
    assert_eq!(
        client.get("/api/inventory/products/OLD-1", None).await.body["version"],
        2,
        "updated once"
    );

    // CSV, the same fields as columns.
    let csv = "sku,pool,on_hand,capacity\nCSV-1,physical,3,\nCSV-2,print_on_demand,,20\nCSV-3,physical,x,\n";
    let (_, from_csv) = import(&client, csv, true, None).await;
    let outcomes: Vec<&str> = from_csv[..3]
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["registered", "registered", "error"],
        "{from_csv:?}"
    );

    // Only an admin imports.
    let refused = client
        .send(
            "POST",
            "/api/skus/import",
            Some(WEB),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(refused.status, 403);

    // Export: every SKU as NDJSON (the API's stock shape) and as CSV.
    assert_eq!(client.reserve("NEW-1", 2).await.status, 201);
    let mut exported = Vec::new();
    for _ in 0..100 {
        let answer = client.get("/api/skus/export", None).await;
        exported = lines(&answer.text);
        if exported
            .iter()
            .any(|s| s["sku"] == "NEW-1" && s["reserved"] == 2)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let skus: Vec<&str> = exported
        .iter()
        .map(|s| s["sku"].as_str().unwrap())
        .collect();
    assert_eq!(
        skus,
        ["CSV-1", "CSV-2", "NEW-1", "NEW-2", "OLD-1", "OLD-2"],
        "{exported:?}"
    );
    let new1 = exported.iter().find(|s| s["sku"] == "NEW-1").unwrap();
    assert_eq!(
        (new1["on_hand"].as_u64(), new1["status"].as_str()),
        (Some(7), Some("in_stock"))
    );
    let csv_out = client.get("/api/skus/export?format=csv", None).await.text;
    assert!(
        csv_out
            .starts_with("sku,pool,on_hand,reserved,available,status,version,updated_at\nCSV-1,"),
        "{csv_out}"
    );
    assert_eq!(csv_out.lines().count(), 7);

    // Reservations, for an admin only.
    assert_eq!(
        client
            .get("/api/reservations/export", Some(WEB))
            .await
            .status,
        403
    );
    let holds = lines(
        &client
            .get("/api/reservations/export", Some(ADMIN))
            .await
            .text,
    );
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert_eq!(
        (holds[0]["sku"].as_str(), holds[0]["qty"].as_u64()),
        (Some("NEW-1"), Some(2))
    );
    assert!(holds[0]["reserved_at"].as_str().unwrap().ends_with('Z'));
    server.stop().unwrap();
}

//! MCP at `/mcp` inside `stockade serve`, driven by rmcp's own client over streamable
//! HTTP: both reference scenarios; staleness told only to the session that read the SKU;
//! bad arguments answered as tool errors the model can read; roles from the same bearer
//! tokens as the REST API; resource subscriptions; an invalid policy stops start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use stockade_tests::mcp::{
    McpClient, bad_arguments_are_tool_errors, own_order_invalidates_its_read,
    stale_read_after_a_web_checkout,
};
use stockade_tests::server::{ADMIN, ASSISTANT, Client, READER, TestServer, WEB, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_scenarios_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    let assistant = McpClient::http(&server.base, Some(ASSISTANT)).await;

    let tools = assistant.service.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "inventory.adjust",
            "inventory.cancelReceipt",
            "inventory.expectReceipt",
            "inventory.getStock",
            "inventory.joinWaitlist",
            "inventory.leaveWaitlist",
            "inventory.list",
            "inventory.receiveReceipt",
            "inventory.receiveTransfer",
            "inventory.setBackorderLimit",
            "inventory.setFairSelling",
            "inventory.transfer",
            "inventory.waitlistPosition",
            "orders.amend",
            "orders.cancel",
            "orders.confirm",
            "orders.create",
            "orders.extend",
            "reference.poolTypes"
        ]
    );
    for tool in &tools {
        let description = tool.description.as_deref().unwrap();
        assert!(
            description.ends_with("[Cache-Control: no-store]")
                || description.ends_with("[Cache-Control: immutable]"),
            "{description}"
        );
    }

    stale_read_after_a_web_checkout(&assistant, &web, "SKU-7782").await;
    own_order_invalidates_its_read(&assistant, &web, "SKU-SELF").await;

    // Reference data: immutable, and no block of any kind.
    let pools = assistant.call("reference.poolTypes", json!({})).await;
    assert!(
        !pools.is_error && pools.system_blocks().is_empty(),
        "{pools:?}"
    );
    assert_eq!(pools.structured["pool_types"][0]["pool"], "physical");

    // A page of the read model, each item with its version.
    let listed = assistant.call("inventory.list", json!({"limit": 10})).await;
    assert!(!listed.is_error, "{listed:?}");
    assert!(listed.structured["items"].as_array().unwrap().len() >= 2);
    assistant.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_is_told_only_to_the_session_that_read_the_sku() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    web.register("ISO-A", 10).await;
    web.register("ISO-B", 10).await;

    let read_a = McpClient::http(&server.base, Some(READER)).await;
    let read_b = McpClient::http(&server.base, Some(READER)).await;
    let read_nothing = McpClient::http(&server.base, None).await;
    assert!(
        !read_a
            .call("inventory.getStock", json!({"sku": "ISO-A"}))
            .await
            .is_error
    );
    assert!(
        !read_b
            .call("inventory.getStock", json!({"sku": "ISO-B"}))
            .await
            .is_error
    );

    // A POS sale of B, an admin adjustment of B.
    web.checkout("ISO-B", 1).await;
    let adjusted = web
        .post(
            "/api/inventory/products/ISO-B/adjustments",
            Some(ADMIN),
            json!({"delta": -2, "reason": "damaged"}),
        )
        .await;
    assert_eq!(adjusted.status, 200, "{}", adjusted.text);

    let a = read_a.call("reference.poolTypes", json!({})).await;
    assert!(a.system_blocks().is_empty(), "A read only ISO-A: {a:?}");
    let nothing = read_nothing.call("reference.poolTypes", json!({})).await;
    assert!(nothing.system_blocks().is_empty(), "{nothing:?}");
    let b = read_b.call("reference.poolTypes", json!({})).await;
    let blocks = b.system_blocks();
    assert_eq!(blocks.len(), 1, "{b:?}");
    assert!(
        blocks[0].contains(
            "inventory.ISO-B v1 → v4 (now 7 available), caused by admin adjustment (damaged)"
        ),
        "{}",
        blocks[0]
    );
    assert!(!blocks[0].contains("ISO-A"));

    // Another assistant is a channel like any other: its order is news to this session.
    web.register("ISO-C", 10).await;
    assert!(
        !read_b
            .call("inventory.getStock", json!({"sku": "ISO-C"}))
            .await
            .is_error
    );
    let other_assistant = McpClient::http(&server.base, Some(ASSISTANT)).await;
    let held = other_assistant
        .call(
            "orders.create",
            json!({"items": [{"sku": "ISO-C", "qty": 4}]}),
        )
        .await;
    assert!(!held.is_error, "{held:?}");
    let told = read_b.call("reference.poolTypes", json!({})).await;
    assert!(
        told.system_blocks()[0]
            .contains("inventory.ISO-C v1 → v2 (now 6 available), caused by assistant reservation"),
        "{told:?}"
    );
    other_assistant.close().await;

    // An expiry is a change too: a hold lapsing makes A's read stale.
    let hold = web
        .post(
            "/api/reservations",
            Some(WEB),
            json!({"items": [{"sku": "ISO-A", "qty": 1}], "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(hold.status, 201);
    let first = read_a.call("reference.poolTypes", json!({})).await;
    assert!(
        first.system_blocks()[0].contains("caused by web reservation"),
        "{first:?}"
    );
    let reread = read_a
        .call("inventory.getStock", json!({"sku": "ISO-A"}))
        .await;
    assert_eq!(reread.structured["available"], 9);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = read_a.call("reference.poolTypes", json!({})).await;
        if let Some(block) = answer.system_blocks().first() {
            assert!(
                block.contains("(now 10 available), caused by expiry"),
                "{block}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no expiry notice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for client in [read_a, read_b, read_nothing] {
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_missing_rights_are_tool_errors_the_model_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    web.register("ARGS-1", 5).await;
    let assistant = McpClient::http(&server.base, Some(ASSISTANT)).await;
    let anonymous = McpClient::http(&server.base, None).await;

    let order = |items: serde_json::Value| json!({ "items": items });
    let table: Vec<(&McpClient, &str, serde_json::Value, &str)> = vec![
        (
            &assistant,
            "inventory.getStock",
            json!({}),
            "missing field `sku`",
        ),
        (
            &assistant,
            "inventory.getStock",
            json!({"sku": 7}),
            "invalid type",
        ),
        (
            &assistant,
            "inventory.getStock",
            json!({"sku": "NOPE-1"}),
            "unknown_sku",
        ),
        (
            &assistant,
            "inventory.getStock",
            json!({"sku": "bad sku"}),
            "invalid_sku",
        ),
        (
            &assistant,
            "inventory.getStock",
            json!({"sku": "ARGS-1", "x": 1}),
            "unknown field `x`",
        ),
        (
            &assistant,
            "orders.create",
            json!({}),
            "missing field `items`",
        ),
        (
            &assistant,
            "orders.create",
            order(json!("three")),
            "invalid type",
        ),
        (&assistant, "orders.create", order(json!([])), "needs 1-"),
        (
            &assistant,
            "orders.create",
            order(json!([{"sku": "ARGS-1", "qty": 0}])),
            "invalid_quantity",
        ),
        (
            &assistant,
            "orders.create",
            order(json!([{"sku": "ARGS-1", "qty": -1}])),
            "invalid value",
        ),
        (
            &assistant,
            "orders.create",
            order(json!([{"sku": "ARGS-1", "qty": "2"}])),
            "invalid type",
        ),
        (
            &assistant,
            "orders.create",
            order(json!([{"sku": "ARGS-1"}])),
            "missing field `qty`",
        ),
        (
            &assistant,
            "orders.create",
            order(json!([{"sku": "NOPE-1", "qty": 1}])),
            "unknown_sku",
        ),
        (
            &assistant,
            "orders.create",
            order(json!([{"sku": "ARGS-1", "qty": 99}])),
            "insufficient_stock",
        ),
        (
            &assistant,
            "orders.create",
            json!({"items": [{"sku": "ARGS-1", "qty": 1}], "ttl_seconds": 0}),
            "invalid_ttl",
        ),
        (
            &assistant,
            "orders.create",
            json!({"items": [{"sku": "ARGS-1", "qty": 1}], "expected_versions": {"OTHER": 1}}),
            "not on any item",
        ),
        (
            &assistant,
            "orders.confirm",
            json!({"reservation_id": "not-a-uuid"}),
            "not_found",
        ),
        (
            &assistant,
            "orders.cancel",
            json!({"reservation_id": "0195f9c4-0000-7000-8000-000000000000"}),
            "not_found",
        ),
        (
            &assistant,
            "inventory.list",
            json!({"limit": 0}),
            "limit must be",
        ),
        (
            &assistant,
            "inventory.adjust",
            json!({"sku": "ARGS-1", "delta": 1, "reason": "x"}),
            "needs an admin token",
        ),
        (
            &anonymous,
            "orders.create",
            order(json!([{"sku": "ARGS-1", "qty": 1}])),
            "needs a channel token",
        ),
        (
            &anonymous,
            "reference.poolTypes",
            json!({"extra": true}),
            "unknown field `extra`",
        ),
    ];
    for (client, tool, args, expected) in &table {
        let answer = client.call(tool, args.clone()).await;
        assert!(answer.is_error, "{tool} {args}: not an error: {answer:?}");
        let text = answer.body_text();
        assert!(
            text.contains(expected),
            "{tool} {args}: expected {expected:?} in {text:?}"
        );
        assert!(text.starts_with(&format!("{tool} refused")), "{text}");
    }
    bad_arguments_are_tool_errors(&assistant, "ARGS-1").await;
    // Nothing was held by any of them.
    assert_eq!(web.available("ARGS-1").await, Some(5));
    // An unknown tool is the one protocol error.
    assert!(
        assistant
            .try_call("inventory.nope", json!({}))
            .await
            .is_err()
    );
    // And the session still works afterwards.
    let fine = assistant
        .call("inventory.getStock", json!({"sku": "ARGS-1"}))
        .await;
    assert!(!fine.is_error, "{fine:?}");

    // A bad token is refused before MCP: 401 with the REST API's JSON error.
    let refused = web
        .send(
            "POST",
            "/mcp",
            Some("not-a-valid-token-at-all"),
            &[("accept", "application/json, text/event-stream")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(refused.body["error"], "unauthorized");
    assistant.close().await;
    anonymous.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_adjust_with_an_expected_version_and_subscribers_hear_of_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    web.register("RES-1", 5).await;
    let mut admin = McpClient::http(&server.base, Some(ADMIN)).await;

    #[allow(deprecated)]
    admin
        .service
        .subscribe(rmcp::model::SubscribeRequestParams::new(
            "inventory://sku/RES-1",
        ))
        .await
        .unwrap();
    #[allow(deprecated)]
    let unknown = admin
        .service
        .subscribe(rmcp::model::SubscribeRequestParams::new(
            "inventory://sku/NOPE-9",
        ))
        .await;
    assert!(
        unknown.is_err(),
        "a subscription to an unknown SKU is refused"
    );

    let resource = admin
        .service
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "inventory://sku/RES-1",
        ))
        .await
        .unwrap();
    let rmcp::model::ResourceContents::TextResourceContents { text, .. } = &resource.contents[0]
    else {
        panic!("{resource:?}");
    };
    let stock: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(stock["available"], 5);
    let version = stock["version"].as_u64().unwrap();

    web.checkout("RES-1", 1).await;
    assert_eq!(
        admin.next_update(Duration::from_secs(5)).await.as_deref(),
        Some("inventory://sku/RES-1")
    );

    // The resource read counts as a read: the checkout made it stale.
    let stale = admin
        .call(
            "inventory.adjust",
            json!({"sku": "RES-1", "counted_on_hand": 9, "reason": "cycle count", "expected_version": version}),
        )
        .await;
    assert!(stale.is_error, "{stale:?}");
    assert!(
        stale.system_blocks()[0].contains("inventory.RES-1"),
        "{stale:?}"
    );
    assert_eq!(stale.structured["error"], "version_conflict");
    let current = stale.structured["current"]["version"].as_u64().unwrap();
    assert_eq!(stale.structured["current"]["available"], 4);

    let counted = admin
        .call(
            "inventory.adjust",
            json!({"sku": "RES-1", "counted_on_hand": 9, "reason": "cycle count", "expected_version": current}),
        )
        .await;
    assert!(!counted.is_error, "{counted:?}");
    assert!(
        counted.texts[0].contains("caused by inventory.adjust"),
        "{counted:?}"
    );
    assert_eq!(counted.structured["current"], 9);
    assert_eq!(web.available("RES-1").await, Some(9));
    assert_eq!(
        admin.next_update(Duration::from_secs(5)).await.as_deref(),
        Some("inventory://sku/RES-1"),
        "the admin's own change is pushed to its subscription too"
    );
    // Admins do not place orders.
    let order = admin
        .call(
            "orders.create",
            json!({"items": [{"sku": "RES-1", "qty": 1}]}),
        )
        .await;
    assert!(order.is_error && order.body_text().contains("needs a channel token"));
    admin.close().await;
}

#[test]
fn an_invalid_policy_stops_start_up_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rules]]\ntools = \"inv*\"\ncache = \"immutable\"\n",
    )
    .unwrap();
    let mut cfg = config(dir.path());
    cfg.mcp.policy_file = Some(policy);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = stockade_server::spawn(cfg, listener)
        .unwrap_err()
        .to_string();
    assert!(error.contains("policy.toml"), "{error}");
    assert!(error.contains("`*` and `**` must stand alone"), "{error}");
    assert!(
        !dir.path().join("stockade.db").exists(),
        "nothing was opened before the policy was checked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessionless_client_gets_versions_checks_and_listen_but_no_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    web.register("NEW-1", 5).await;
    let assistant = McpClient::http_sessionless(&server.base, Some(ASSISTANT)).await;
    assert_eq!(
        assistant
            .service
            .peer_info()
            .map(|i| i.protocol_version.clone()),
        Some(rmcp::model::ProtocolVersion::V_2026_07_28),
        "the client speaks the sessionless revision"
    );

    let read = assistant
        .call("inventory.getStock", json!({"sku": "NEW-1"}))
        .await;
    assert_eq!(read.structured["available"], 5, "{read:?}");
    let version = read.structured["version"].as_u64().unwrap();

    let filter = rmcp::model::SubscriptionFilter::builder()
        .resource_subscription("inventory://sku/NEW-1")
        .build();
    let mut listening = assistant.service.listen(filter).await.unwrap();
    web.checkout("NEW-1", 2).await;
    let pushed = tokio::time::timeout(Duration::from_secs(5), listening.next())
        .await
        .expect("no notification")
        .unwrap();
    assert!(
        matches!(&pushed, Some(rmcp::model::ServerNotification::ResourceUpdatedNotification(n)) if n.params.uri == "inventory://sku/NEW-1"),
        "{pushed:?}"
    );

    // No session, so no ledger: nothing says the read went stale (docs/mcp.md)...
    let next = assistant.call("reference.poolTypes", json!({})).await;
    assert!(next.system_blocks().is_empty(), "{next:?}");
    // ...but an order decided on it is still refused, with the stock now.
    let order = assistant
        .call(
            "orders.create",
            json!({"items": [{"sku": "NEW-1", "qty": 5}], "expected_versions": {"NEW-1": version}}),
        )
        .await;
    assert!(order.is_error, "{order:?}");
    assert_eq!(order.structured["error"], "version_conflict");
    assert_eq!(order.structured["current"]["available"], 3);
    let _ = listening.cancel().await;
    assistant.close().await;
}

/// One JSON-RPC exchange over raw HTTP: the answer's JSON (from an SSE `data:` line or a
/// JSON body) and its headers.
async fn rpc(
    web: &Client,
    token: Option<&str>,
    session: Option<&str>,
    body: serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    let mut headers = vec![
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    if let Some(session) = session {
        headers.push(("mcp-session-id", session));
    }
    let answer = web
        .send(
            "POST",
            "/mcp",
            token,
            &headers,
            Some(body.to_string().into_bytes()),
        )
        .await;
    let json = answer
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .next_back()
        .unwrap_or(answer.body.clone());
    (
        answer.status,
        answer.headers.get("mcp-session-id").cloned(),
        json,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_answers_only_the_principal_that_opened_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    web.register("OWN-1", 5).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let (status, session, answer) = rpc(&web, Some(ASSISTANT), None, init).await;
    assert_eq!(status, 200, "{answer}");
    let session = session.expect("Mcp-Session-Id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = rpc(&web, Some(ASSISTANT), Some(&session), initialized).await;
    assert_eq!(status, 202);

    let call = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "inventory.getStock", "arguments": {"sku": "OWN-1"}}})
    };
    let (_, _, mine) = rpc(&web, Some(ASSISTANT), Some(&session), call(2)).await;
    assert_eq!(mine["result"]["isError"], false, "{mine}");
    assert_eq!(mine["result"]["structuredContent"]["available"], 5);

    // Someone else's valid token on this session id, or none (reads are public): refused
    // before MCP, for every method, and the session is not taken over.
    let (status, _, theirs) = rpc(&web, Some(WEB), Some(&session), call(3)).await;
    assert_eq!(
        (status, theirs["error"].as_str()),
        (403, Some("session_owner")),
        "{theirs}"
    );
    let (status, _, anonymous) = rpc(&web, None, Some(&session), call(4)).await;
    assert_eq!(status, 403, "{anonymous}");
    for method in ["GET", "DELETE"] {
        let answer = web
            .send(
                method,
                "/mcp",
                Some(WEB),
                &[
                    ("mcp-session-id", session.as_str()),
                    ("accept", "text/event-stream"),
                ],
                None,
            )
            .await;
        assert_eq!(answer.status, 403, "{method}: {}", answer.text);
    }
    let (_, _, still_mine) = rpc(&web, Some(ASSISTANT), Some(&session), call(5)).await;
    assert_eq!(still_mine["result"]["isError"], false, "{still_mine}");

    // The owner ends it; the id then names nothing.
    let ended = web
        .send(
            "DELETE",
            "/mcp",
            Some(ASSISTANT),
            &[("mcp-session-id", session.as_str())],
            None,
        )
        .await;
    // 204: clients (the official Python SDK among them) read it as done.
    assert_eq!(ended.status, 204, "{}", ended.text);
    let (status, _, _) = rpc(&web, Some(ASSISTANT), Some(&session), call(6)).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_the_bound_are_refused_at_initialize() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.mcp.max_sessions = 2;
    let server = TestServer::start(cfg);
    let web = Client::new(&server);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _, answer) = rpc(&web, Some(ASSISTANT), None, init.clone()).await;
        statuses.push((status, answer["error"].as_str().map(str::to_owned)));
    }
    assert_eq!(
        statuses,
        [
            (200, None),
            (200, None),
            (503, Some("too_many_sessions".to_owned()))
        ]
    );
}

/// The review's lock-out: anonymous `initialize` calls used to fill `max_sessions`, and
/// every token holder then got 503 for half an hour. Anonymous sessions now have a budget
/// of their own and a shorter idle time, and each token its own bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sessions_cannot_lock_token_holders_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.mcp.max_sessions = 10;
    cfg.mcp.max_sessions_per_principal = 3;
    cfg.mcp.max_anonymous_sessions = 4;
    cfg.mcp.anonymous_session_idle_seconds = 1;
    let server = TestServer::start(cfg);
    let web = Client::new(&server);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let mut anonymous = Vec::new();
    let mut first_session = None;
    for _ in 0..10 {
        let (status, session, _) = rpc(&web, None, None, init.clone()).await;
        anonymous.push(status);
        first_session = first_session.or(session);
    }
    assert_eq!(
        anonymous.iter().filter(|s| **s == 200).count(),
        4,
        "{anonymous:?}"
    );
    assert_eq!(
        anonymous.iter().filter(|s| **s == 503).count(),
        6,
        "{anonymous:?}"
    );

    // Token holders are not locked out; one token is bounded on its own.
    let mut assistant = Vec::new();
    for _ in 0..4 {
        assistant.push(rpc(&web, Some(ASSISTANT), None, init.clone()).await.0);
    }
    assert_eq!(assistant, [200, 200, 200, 503]);
    assert_eq!(rpc(&web, Some(WEB), None, init.clone()).await.0, 200);

    // An idle anonymous session stops counting, and cannot be used afterwards.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(rpc(&web, None, None, init.clone()).await.0, 200);
    let stale = first_session.expect("a session id");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, answer) = rpc(&web, None, Some(&stale), list).await;
    assert_eq!(status, 404, "{answer}");
}

/// SEP-2549 cache hints, as rmcp's client reads them: listings (the same for every
/// caller, changing only with the server) may be kept an hour, publicly; a stock read is
/// `no-store` in the policy, so `ttlMs: 0`, private to its caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_and_reads_carry_cache_hints_that_follow_the_policy() {
    use rmcp::model::{CacheScope, ReadResourceRequestParams};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    let web = Client::new(&server);
    web.register("HINT-1", 5).await;
    let client = McpClient::http(&server.base, Some(READER)).await;

    let tools = client.service.list_tools(None).await.unwrap();
    assert_eq!(
        (tools.ttl_ms, tools.cache_scope),
        (Some(3_600_000), Some(CacheScope::Public))
    );
    let templates = client.service.list_resource_templates(None).await.unwrap();
    assert_eq!(templates.ttl_ms, Some(3_600_000));
    let resources = client.service.list_resources(None).await.unwrap();
    assert_eq!(resources.ttl_ms, Some(3_600_000));
    let read = client
        .service
        .read_resource(ReadResourceRequestParams::new("inventory://sku/HINT-1"))
        .await
        .unwrap();
    assert_eq!(
        (read.ttl_ms, read.cache_scope),
        (Some(0), Some(CacheScope::Private))
    );
    client.close().await;
}

//! The official Python MCP SDK (`mcp` on PyPI, pinned by `.ci/run` in
//! `target/mcp-sdk-venv`) against `/mcp`: it initializes, lists the tools, reads a SKU,
//! calls a tool and ends its session without a warning (it used to log "Session
//! termination failed: 202"). Where the SDK negotiates the 2026-07-28 revision, the cache
//! hints must read as the policy says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Command;

use stockade_tests::server::{Client, READER, TestServer, config};

/// The venv's Python with the SDK, if there is one.
fn sdk_python() -> Option<PathBuf> {
    let python = std::env::var_os("STOCKADE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/mcp-sdk-venv/bin/python")
        });
    let has_sdk = Command::new(&python)
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_sdk.then_some(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_with_mcp_over_http() {
    let Some(python) = sdk_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Python MCP SDK is missing: .ci/run installs it in target/mcp-sdk-venv"
        );
        println!("SKIPPED mcp_with_the_official_python_sdk: no Python with `mcp` (see .ci/run)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path()));
    Client::new(&server).register("PY-1", 3).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/mcp_sdk_client.py");
    let url = server.url("/mcp");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([url.as_str(), READER, "PY-1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        seen["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "inventory.getStock"),
        "{seen}"
    );
    assert_eq!(seen["read"]["available"], 3, "{seen}");
    assert_eq!(seen["call_is_error"], false, "{seen}");
    assert_eq!(seen["warnings"], serde_json::json!([]), "{seen}");
    if seen["protocol"] == "2026-07-28" {
        assert_eq!(seen["tools_ttl_ms"], 3_600_000, "{seen}");
        assert_eq!(seen["read_ttl_ms"], 0, "{seen}");
    }
    println!("the Python SDK negotiated {}", seen["protocol"]);
    server.stop().unwrap();
}

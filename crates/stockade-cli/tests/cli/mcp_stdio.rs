//! `stockade mcp` as an assistant's host runs it: a child process speaking MCP on
//! stdin/stdout, driven by rmcp's client through both reference scenarios while the web
//! shop buys through the same process's REST API (`--listen`). It exits 0 when its client
//! closes stdin, and refuses an invalid policy with one line and status 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use rmcp::transport::TokioChildProcess;
use stockade_tests::mcp::{
    McpClient, bad_arguments_are_tool_errors, own_order_invalidates_its_read,
    stale_read_after_a_web_checkout,
};
use stockade_tests::server::{ADMIN, Client, WEB};
use tokio::io::{AsyncBufReadExt, BufReader};

fn command(data_dir: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockade"));
    command
        .arg("mcp")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("STOCKADE_ESDB_URL")
        .env_remove("STOCKADE_CONFIG")
        .env_remove("STOCKADE_READ_TOKENS")
        .env("STOCKADE_ADMIN_TOKEN", ADMIN)
        .env("STOCKADE_CHANNEL_TOKENS", format!("web:{WEB}"))
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_scenarios_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stockade mcp");
    // The banner (on stderr: stdout is the protocol) names the HTTP address.
    let mut lines = BufReader::new(stderr.unwrap()).lines();
    let mut banner = String::new();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("banner");
            banner.push_str(&line);
            banner.push('\n');
            if let Some(addr) = line.split("listening on http://").nth(1) {
                return addr.trim().to_owned();
            }
        }
    })
    .await
    .expect("no banner");
    assert!(
        banner.starts_with("stockade mcp: MCP on stdio, orders as channel assistant"),
        "{banner}"
    );
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let web = Client::at(&format!("http://{addr}"));
    let assistant = McpClient::over(transport).await;
    stale_read_after_a_web_checkout(&assistant, &web, "SKU-7782").await;
    own_order_invalidates_its_read(&assistant, &web, "SKU-SELF").await;
    bad_arguments_are_tool_errors(&assistant, "SKU-7782").await;

    // The process is the session: a read from before is still remembered, so a POS-less
    // web sale of the first SKU is told on the next result, whatever the tool.
    web.checkout("SKU-7782", 1).await;
    let next = assistant
        .call("reference.poolTypes", serde_json::json!({}))
        .await;
    assert_eq!(next.system_blocks().len(), 1, "{next:?}");
    assert!(
        next.system_blocks()[0].contains("inventory.SKU-7782"),
        "{next:?}"
    );
    // The stdio operator may adjust stock (it owns the data directory).
    let adjusted = assistant
        .call(
            "inventory.adjust",
            serde_json::json!({"sku": "SKU-7782", "delta": 5, "reason": "received PO-1"}),
        )
        .await;
    assert!(!adjusted.is_error, "{adjusted:?}");
    assert_eq!(web.available("SKU-7782").await, Some(5));
    assistant.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_exits_cleanly_when_its_client_closes_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Give it a moment to open the data directory, then hang up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("did not exit after stdin closed")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.path().join("stockade.db").exists());
}

#[tokio::test]
async fn an_invalid_policy_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "default = \"forever\"\n").unwrap();
    let output = command(dir.path())
        .arg("--policy")
        .arg(&policy)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains("policy.toml") && lines[0].contains("forever"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing but protocol on stdout");
}

/// The newcomer's finding: the desktop config in `docs/mcp.md` set only a channel token,
/// so a fresh directory had no admin token and no SKU could ever be registered. The
/// config, as the page shows it, is started here as a host starts it (only its `env`, a
/// fresh data directory), then the page's steps: the admin token from `tokens.toml`, a SKU
/// registered over REST, and the assistant reading and ordering it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_config_starts_from_an_empty_directory() {
    let guide = include_str!("../../../../docs/mcp.md");
    let start = guide
        .find("```json\n{\n  \"mcpServers\"")
        .expect("the desktop config")
        + "```json\n".len();
    let end = start + guide[start..].find("```").expect("its end");
    let config: serde_json::Value = serde_json::from_str(&guide[start..end]).unwrap();
    let server = &config["mcpServers"]["stockade"];

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let mut args: Vec<String> = server["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    for (flag, value) in [
        ("--data-dir", data.to_str().unwrap()),
        ("--listen", "127.0.0.1:0"),
    ] {
        let at = args.iter().position(|a| a == flag).expect(flag) + 1;
        args[at] = value.to_owned();
    }
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stockade"));
    cmd.args(&args).env_clear().kill_on_drop(true);
    for (k, v) in server["env"].as_object().unwrap() {
        cmd.env(k, v.as_str().unwrap());
    }
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the configured command");
    let mut lines = BufReader::new(stderr.unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("banner");
            if let Some(addr) = line.split("listening on http://").nth(1) {
                return addr.trim().to_owned();
            }
        }
    })
    .await
    .expect("no banner");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let assistant = McpClient::over(transport).await;

    // Step 2 of the page: the admin token from tokens.toml, a SKU over REST.
    let tokens = std::fs::read_to_string(data.join("tokens.toml")).expect("tokens.toml");
    let admin = tokens
        .lines()
        .find_map(|l| l.strip_prefix("admin_tokens = [\""))
        .and_then(|l| l.strip_suffix("\"]"))
        .expect("an admin token")
        .to_owned();
    let web = Client::at(&format!("http://{addr}"));
    let registered = web
        .post(
            "/api/skus",
            Some(&admin),
            serde_json::json!({"sku": "SKU-7782", "pool": "physical", "on_hand": 3}),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);

    let read = assistant
        .call("inventory.getStock", serde_json::json!({"sku": "SKU-7782"}))
        .await;
    assert!(!read.is_error, "{read:?}");
    assert_eq!(read.structured["available"], 3, "{read:?}");
    let order = assistant
        .call(
            "orders.create",
            serde_json::json!({"items": [{"sku": "SKU-7782", "qty": 1}]}),
        )
        .await;
    assert!(!order.is_error, "{order:?}");
    assistant.close().await;
}

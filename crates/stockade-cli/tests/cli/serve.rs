//! `stockade serve` as an operator runs it: the binary prints where it listens and the
//! tokens it generated (once), answers over HTTP, shuts down on SIGTERM with status 0, and
//! refuses a bad setting with one line and status 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The child, killed if the test fails before it has stopped it.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn serve(data_dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockade"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("STOCKADE_ESDB_URL")
        .env_remove("STOCKADE_ADMIN_TOKEN")
        .env_remove("STOCKADE_CHANNEL_TOKENS")
        .env_remove("STOCKADE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.spawn().expect("start stockade serve")
}

/// Reads the banner, which ends with the line saying how to stop.
fn banner(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.trim_start().starts_with("stop with") {
            break;
        }
    }
    text
}

fn addr_of(banner: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.split("listening on http://").nth(1))
        .expect("listening line")
        .trim()
        .to_owned()
}

fn get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_prints_its_address_and_tokens_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Serving(serve(dir.path(), &[]));
    let text = banner(&mut first.0);
    assert!(text.contains("dashboard  http://127.0.0.1:"), "{text}");
    assert!(
        text.contains("stk_adm_") && text.contains("stk_web_"),
        "{text}"
    );
    let addr = addr_of(&text);
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(get(&addr, "/").contains("<html"), "the dashboard page");
    assert!(terminate(&mut first.0).success(), "SIGTERM is a clean exit");

    // The second start reuses the saved tokens and shows none.
    let mut second = Serving(serve(dir.path(), &[]));
    let text = banner(&mut second.0);
    assert!(!text.contains("stk_adm_"), "tokens are shown once: {text}");
    assert!(
        text.contains("tokens.toml (generated at the first start)"),
        "{text}"
    );
    assert!(terminate(&mut second.0).success());
}

#[test]
fn a_bad_setting_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = serve(dir.path(), &[("STOCKADE_ADMIN_TOKEN", "short")])
        .wait_with_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("16 characters"), "{stderr}");
    let missing = Command::new(env!("CARGO_BIN_EXE_stockade"))
        .args(["serve", "--config", "/nonexistent/stockade.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/stockade.toml"));
}

//! The data directory's disk fills up under `stockade serve`: writes get 503 with a JSON
//! error (never a 500, never a hang), reads keep answering, and once space returns,
//! writes succeed again and every acknowledged reservation is there; every refused
//! request, retried under its key, is decided once. A read-only data directory stops
//! start-up with a clear error. The disk is a 4 MiB tmpfs mounted for the test; where mounting
//! is not allowed (not root), the test says SKIPPED. (The engine's handling of failing
//! appends is covered without a mount by `store_faults_lose_nothing`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use stockade_tests::server::{Client, TestServer, WEB, config};

/// A mounted tmpfs, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_owned()))
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the disk with a file until it is full.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    // The last partial block: byte by byte.
    while file.write_all(&[0]).is_ok() && file.flush().is_ok() {}
    path
}

async fn reserve(client: &Client, key: &str) -> u16 {
    client
        .send(
            "POST",
            "/api/reservations",
            Some(WEB),
            &[("idempotency-key", key)],
            Some(
                json!({"items": [{"sku": "DISK-1", "qty": 1}]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_then_read_only_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(dir.path(), "4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); see store_faults_lose_nothing");
        return;
    };
    let data = dir.path().join("data");
    let mut cfg = config(&data);
    cfg.engine.default_ttl_seconds = 3600;
    let server = TestServer::start(cfg);
    let client = Client::new(&server);
    client.register("DISK-1", 1_000_000).await;

    let mut held = Vec::new();
    let mut refused = Vec::new();
    let mut n = 0;
    let mut next_key = || {
        n += 1;
        format!("disk-{n}")
    };
    for _ in 0..50 {
        let key = next_key();
        assert_eq!(reserve(&client, &key).await, 201);
        held.push(key);
    }

    // Full: every write is refused with 503 and a body, reads go on.
    let filler = fill(dir.path());
    let mut saw_503 = false;
    for _ in 0..400 {
        let key = next_key();
        let status = reserve(&client, &key).await;
        assert!(
            status == 201 || status == 503,
            "reserve on a full disk: {status}"
        );
        if status == 201 {
            held.push(key);
        } else {
            refused.push(key);
            saw_503 = true;
            if refused.len() >= 20 {
                break;
            }
        }
    }
    assert!(saw_503, "a full disk never refused a write");
    // An unkeyed write's refusal says why in its body. Space can come back for a moment
    // (the store's own checkpoints free pages), so a write may still land: it is counted.
    let mut landed_unkeyed = 0usize;
    let refusal = loop {
        let answer = client
            .send(
                "POST",
                "/api/reservations",
                Some(WEB),
                &[],
                Some(
                    json!({"items": [{"sku": "DISK-1", "qty": 1}]})
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        if answer.status != 201 {
            break answer;
        }
        landed_unkeyed += 1;
        assert!(landed_unkeyed < 50, "a full disk took 50 writes in a row");
    };
    assert_eq!(refusal.status, 503, "{}", refusal.text);
    assert!(refusal.body["error"].is_string(), "{}", refusal.text);
    let read = client.get("/api/inventory/products/DISK-1", None).await;
    assert_eq!(read.status, 200, "reads on a full disk: {}", read.text);
    assert_eq!(client.get("/healthz", None).await.status, 200);

    // Space returns: writes succeed again (the engine re-reads and goes on).
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let key = next_key();
        if reserve(&client, &key).await == 201 {
            held.push(key);
            break;
        }
        refused.push(key);
        assert!(
            Instant::now() < deadline,
            "writes did not recover after space returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every refused request retried under its key gets a definite answer now; then the
    // held units are exactly the acknowledged ones.
    for key in &refused {
        let status = reserve(&client, key).await;
        assert_eq!(status, 201, "retry of {key}");
    }
    let level = client.get("/api/inventory/products/DISK-1", None).await;
    assert_eq!(
        level.body["reserved"],
        (held.len() + refused.len() + landed_unkeyed) as u64,
        "{}",
        level.text
    );
    eprintln!(
        "disk faults: {} held, {} refused with 503 and then retried",
        held.len(),
        refused.len()
    );
    server.stop().unwrap();

    // Read-only: Linux will not turn a disk read-only under open files, so the server
    // meets it at start: one clear error, nothing half started.
    disk.remount("ro");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = stockade_server::spawn(config(&data), listener)
        .unwrap_err()
        .to_string();
    eprintln!("read-only data dir: {error}");
    assert!(
        error.contains("is not writable") && error.contains("Read-only file system"),
        "{error}"
    );
    disk.remount("rw");
}

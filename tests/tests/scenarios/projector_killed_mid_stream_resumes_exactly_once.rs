//! A projector killed mid-stream and restarted ends with read models equal to a rebuild
//! from zero: every event applied once, every notice produced once, with the same `seq`.
//!
//! The engine writes a mixed history (reservations in and out of orders, commits,
//! releases, recounts, expiries). Then this test re-runs its own binary as a child that
//! projects the log in small batches, and SIGKILLs it at random moments just after it
//! starts to make progress, ten times. After
//! the last kill it finishes the projection in-process, rebuilds a second database from
//! zero, and compares every table row by row.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use stockade_projections::{NoticeHub, Projector, ProjectorConfig, ReadModels};
use stockade_store::{EventStore, SqliteStore};
use stockade_tests::projection::{Lcg, dump, mixed_history};

const CHILD_ENV: &str = "STOCKADE_PROJECTOR_CHILD_DIR";
const CHILD_TEST: &str = "child_projects_until_killed";
const KILLS: usize = 10;

fn open_store(dir: &std::path::Path) -> Arc<dyn EventStore> {
    Arc::new(SqliteStore::open(dir.join("stockade.db")).unwrap())
}

/// One event per transaction: the child is slow enough to be killed mid-stream, and each
/// kill can land before, during or after a commit.
fn small_batches() -> ProjectorConfig {
    ProjectorConfig {
        batch: 1,
        ..ProjectorConfig::default()
    }
}

#[test]
fn a_projector_killed_mid_stream_ends_equal_to_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events = runtime.block_on(mixed_history(dir.path(), 6, 900, 11));
    assert!(
        events > 1000,
        "history too short to kill anything mid-stream: {events}"
    );

    let models_path = dir.path().join("projections.db");
    let mut rng = Lcg(42);
    let mut checkpoints = Vec::new();
    for _ in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                crate::child_test(module_path!(), CHILD_TEST).as_str(),
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Kill a few milliseconds after the child starts to make progress, not at a fixed
        // time after spawning: on a loaded machine (this binary runs other scenarios
        // beside this one) a fixed sleep can outlast a whole pass of the projection.
        let before = checkpoints.last().copied().unwrap_or(0);
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none()
            && checkpoint_events(&models_path).is_none_or(|at| at <= before)
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        // SIGKILL: no destructor, no flush, whatever the child was doing.
        child.kill().unwrap();
        child.wait().unwrap();
        let at = runtime.block_on(async {
            ReadModels::open(&models_path)
                .unwrap()
                .checkpoint()
                .await
                .unwrap()
        });
        checkpoints.push(at.events);
    }
    eprintln!("checkpoints after each kill: {checkpoints:?} of {events} events");
    let mid_stream = checkpoints.iter().filter(|&&n| n > 0 && n < events).count();
    // Timing decides where each kill lands; a few mid-stream kills are enough to prove
    // the point, and the comparison below holds wherever they land.
    assert!(
        mid_stream >= 3,
        "most kills should land mid-stream: {checkpoints:?} of {events}"
    );
    assert!(
        checkpoints.windows(2).all(|w| w[0] <= w[1]),
        "{checkpoints:?}"
    );

    runtime.block_on(async {
        let store = open_store(dir.path());
        // Finish after the last kill.
        let resumed = ReadModels::open(&models_path).unwrap();
        let mut projector = Projector::with_config(
            store.clone(),
            resumed.clone(),
            NoticeHub::new(),
            small_batches(),
        );
        let done = projector.catch_up().await.unwrap();
        assert_eq!(done.events, events);
        // A rebuild from zero, in a database of its own.
        let fresh = ReadModels::open(&dir.path().join("rebuilt.db")).unwrap();
        let mut rebuilder = Projector::new(store, fresh.clone(), NoticeHub::new());
        rebuilder.rebuild().await.unwrap();

        let (after_kills, rebuilt) = (dump(&resumed).await, dump(&fresh).await);
        assert_eq!(after_kills.len(), rebuilt.len());
        for (a, b) in after_kills.iter().zip(&rebuilt) {
            assert_eq!(a, b, "read models differ from the rebuild");
        }
        // One notice per event, numbered 1..=events, none twice.
        let notices = resumed.notices(0, usize::MAX).await.unwrap();
        assert_eq!(notices.len() as u64, events);
        assert!(notices.iter().zip(1..).all(|(n, seq)| n.seq == seq));
        let ids: std::collections::HashSet<_> = notices.iter().map(|n| n.event_id).collect();
        assert_eq!(
            ids.len() as u64,
            events,
            "a notice for the same event twice"
        );
    });
}

/// The child's checkpoint, read beside its writes; `None` until the child has made it.
fn checkpoint_events(path: &std::path::Path) -> Option<u64> {
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).ok()?;
    conn.query_row("SELECT events FROM checkpoint WHERE id = 1", [], |row| {
        row.get::<_, i64>(0)
    })
    .ok()
    .and_then(|n| u64::try_from(n).ok())
}

/// The child's body: project in small batches until killed.
#[test]
#[ignore = "entry point of the child process of a_projector_killed_mid_stream_ends_equal_to_a_rebuild"]
fn child_projects_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let models = ReadModels::open(&dir.join("projections.db")).unwrap();
        let mut projector =
            Projector::with_config(open_store(&dir), models, NoticeHub::new(), small_batches());
        projector.catch_up().await.unwrap();
        // Finished before the kill: wait for it.
        std::future::pending::<()>().await;
    });
}

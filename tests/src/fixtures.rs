//! Hand-made logs for the audit tools: `tests/fixtures/audit/*.jsonl`, one JSON object per
//! line, written into a real SQLite log.
//!
//! A line is either the fixture's header, `{"about": "...", "expect": ["..."]}` (the
//! violations `stockade audit verify` must name, as substrings), or one event:
//! `{"stream": "sku-A", "event": {...}, "meta": {"principal", "channel",
//! "idempotency_key"}, "revision": N}`. `event` is the domain event in its JSON form;
//! `meta` and `revision` are optional. A `revision` rewrites the stored revision after the
//! append, which is the only way to make a gap: the store itself never leaves one.

use std::path::{Path, PathBuf};

use serde_json::Value;
use stockade_domain::{Channel, Event, EventMetadata, Principal};
use stockade_engine::SQLITE_FILE;
use stockade_store::{EventStore, ExpectedRevision, SqliteStore, StreamName, codec};
use uuid::Uuid;

/// The directory of the audit fixtures.
pub fn audit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audit")
}

/// What a fixture promises.
#[derive(Debug, Default)]
pub struct Fixture {
    pub about: String,
    pub expect: Vec<String>,
}

/// Writes the fixture `name` as the log of `data_dir`.
pub async fn load_log(name: &str, data_dir: &Path) -> Fixture {
    let path = audit_dir().join(name);
    let text = std::fs::read_to_string(&path).expect("read the fixture");
    let store = SqliteStore::open(data_dir.join(SQLITE_FILE)).expect("open the log");
    let mut fixture = Fixture::default();
    let mut rewrites = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
        if let Some(about) = value.get("about") {
            fixture.about = about.as_str().unwrap_or_default().to_owned();
            for e in value["expect"].as_array().into_iter().flatten() {
                fixture.expect.push(e.as_str().unwrap().to_owned());
            }
            continue;
        }
        let event: Event = serde_json::from_value(value["event"].clone())
            .unwrap_or_else(|e| panic!("{}:{}: event: {e}", path.display(), n + 1));
        let meta = &value["meta"];
        let text = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_owned);
        let metadata = EventMetadata {
            principal: text("principal").map(|p| Principal::new(p).unwrap()),
            channel: text("channel").map(|c| Channel::new(c).unwrap()),
            idempotency_key: text("idempotency_key"),
            ..EventMetadata::new(Uuid::new_v4(), event.at())
        };
        let stream = StreamName::new(value["stream"].as_str().unwrap()).unwrap();
        let data = codec::encode(&event, &metadata).unwrap();
        let landed = store
            .append(&stream, ExpectedRevision::Any, vec![data])
            .await
            .unwrap();
        if let Some(revision) = value.get("revision").and_then(Value::as_u64) {
            rewrites.push((landed.position.commit, revision));
        }
    }
    drop(store);
    if !rewrites.is_empty() {
        let db = rusqlite::Connection::open(data_dir.join(SQLITE_FILE)).unwrap();
        // Latest first, so raising revisions never collides with the next event's.
        for (position, revision) in rewrites.into_iter().rev() {
            db.execute(
                "UPDATE events SET revision = ?1 WHERE position = ?2",
                rusqlite::params![revision as i64, position as i64],
            )
            .unwrap();
        }
    }
    fixture
}

/// Every fixture file name, sorted.
pub fn audit_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(audit_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
}

//! The log's tables, created (or checked) when a store connects.
//!
//! Every node of one log runs this at start-up; an advisory lock keyed on the schema
//! makes concurrent starts take turns, so two nodes never race to create one table.
//! Every statement is `IF NOT EXISTS`, so once an owner role has created the schema the
//! nodes may run as a role that can only read and write rows (docs/operations.md).

use stockade_store::Position;
use tokio_postgres::Client;

/// Bumped when the layout changes; a newer log refuses older nodes.
pub const SCHEMA_VERSION: i64 = 1;

/// The tables of a log in `schema` (already checked by `config::check_schema`).
///
/// - `log` is one row: the head position. Every append transaction locks it first
///   (`SELECT ... FOR UPDATE`) and holds it until commit, so positions are handed out in
///   commit order and a transaction that takes positions after another's can only commit
///   after it. A reader that sees position `p` therefore sees every position below `p`:
///   `WHERE position > $after ORDER BY position` never skips an event committed late
///   (the gap that a bare `bigserial` leaves open).
/// - `events.position` is that sequence: gap-free, never reused.
/// - `streams` keeps each stream's last revision (the expected-revision check reads one
///   row, not an index range) and how many subjects (live holds) it has open.
/// - `request_keys` is the HTTP idempotency table, shared by every node of the log.
pub fn ddl(schema: &str) -> String {
    format!(
        "
CREATE TABLE IF NOT EXISTS {schema}.meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.log (
    id   smallint PRIMARY KEY CHECK (id = 1),
    head bigint   NOT NULL CHECK (head >= 0)
);
INSERT INTO {schema}.log (id, head) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS {schema}.streams (
    name          text   PRIMARY KEY,
    last_revision bigint NOT NULL,
    open_subjects bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {schema}.events (
    position    bigint PRIMARY KEY,
    stream      text   NOT NULL,
    revision    bigint NOT NULL,
    event_id    uuid   NOT NULL,
    event_type  text   NOT NULL,
    data        bytea  NOT NULL,
    metadata    bytea  NOT NULL,
    recorded_at bigint NOT NULL,
    subject     uuid,
    correlation text,
    UNIQUE (stream, revision)
);
CREATE INDEX IF NOT EXISTS events_by_id ON {schema}.events (event_id);
CREATE INDEX IF NOT EXISTS events_by_subject ON {schema}.events (subject)
    WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_correlation ON {schema}.events (correlation)
    WHERE correlation IS NOT NULL;
CREATE TABLE IF NOT EXISTS {schema}.snapshots (
    stream   text   PRIMARY KEY,
    revision bigint NOT NULL,
    data     bytea  NOT NULL,
    taken_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.request_keys (
    principal  text   NOT NULL,
    key        text   NOT NULL,
    digest     bytea  NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX IF NOT EXISTS request_keys_by_age ON {schema}.request_keys (created_at);
INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', {SCHEMA_VERSION})
    ON CONFLICT (key) DO NOTHING;
"
    )
}

/// The last position handed out in `schema`'s log, as committed now.
pub async fn read_head(client: &Client, schema: &str) -> Result<Position, String> {
    let head: i64 = client
        .query_one(&format!("SELECT head FROM {schema}.log WHERE id = 1"), &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| crate::conn::describe(&e))?;
    u64::try_from(head)
        .map(Position::at)
        .map_err(|_| format!("the head of {schema}'s log is {head}"))
}

/// The `LISTEN` channel commits to `schema` are announced on.
pub fn channel(schema: &str) -> String {
    format!("stockade_log_{schema}")
}

/// Creates what is missing and checks the version, under a transaction-scoped advisory
/// lock so that nodes starting together take turns. A log already at this version is
/// only read, so nodes may run as a role without `CREATE` rights.
pub async fn prepare(client: &mut Client, schema: &str) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('stockade schema ' || $1::text))",
        &[&schema],
    )
    .await
    .map_err(|e| format!("lock the schema for set-up: {e}"))?;
    let mut version = read_version(&tx, schema).await?;
    if version.is_none() {
        // Only when missing: `CREATE SCHEMA IF NOT EXISTS` needs CREATE on the database
        // even when the schema is there, which an owner given only its schema lacks.
        let exists: bool = tx
            .query_one("SELECT to_regnamespace($1::text) IS NOT NULL", &[&schema])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| format!("look for schema {schema}: {e}"))?;
        if !exists {
            tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .map_err(|e| format!("create schema {schema}: {e}"))?;
        }
        tx.batch_execute(&ddl(schema))
            .await
            .map_err(|e| format!("create the log's tables in schema {schema}: {e}"))?;
        version = read_version(&tx, schema).await?;
    }
    match version {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(format!(
                "schema {schema} is at version {v}, newer than this build's \
                 {SCHEMA_VERSION}: upgrade stockade"
            ));
        }
        Some(_) => {}
        None => return Err(format!("schema {schema} has no version after set-up")),
    }
    tx.commit()
        .await
        .map_err(|e| format!("commit the schema set-up: {e}"))
}

/// The log's layout version, or `None` when its tables are not there yet.
async fn read_version(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
) -> Result<Option<i64>, String> {
    let read = |e: tokio_postgres::Error| format!("read the schema version of {schema}: {e}");
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass($1::text) IS NOT NULL",
            &[&format!("{schema}.meta")],
        )
        .await
        .map_err(read)?
        .try_get(0)
        .map_err(read)?;
    if !exists {
        return Ok(None);
    }
    let row = tx
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .map_err(read)?;
    row.map(|r| r.try_get(0)).transpose().map_err(read)
}

//! The read models' tables, and which of them a rebuild clears.

/// Version of the schema below; a file from a newer build is refused, one from an older
/// build is brought up to it by [`MIGRATIONS`].
pub(super) const SCHEMA_VERSION: i64 = 2;

/// What brings a file at version `n` (index `n - 1`) to `n + 1`.
pub(super) const MIGRATIONS: [&str; 1] = [
    // 2: where each hold's units are, for SKUs at several locations.
    "ALTER TABLE reservations ADD COLUMN parts TEXT;",
];

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoint (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    commit_pos  INTEGER NOT NULL,
    prepare_pos INTEGER NOT NULL,
    events      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stock_levels (
    sku        TEXT PRIMARY KEY,
    pool       TEXT NOT NULL,
    on_hand    INTEGER,
    reserved   INTEGER NOT NULL,
    available  INTEGER,
    status     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    id          TEXT NOT NULL,
    sku         TEXT NOT NULL,
    order_id    TEXT,
    qty         INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    state       TEXT NOT NULL,
    reserved_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    -- JSON [{location, qty}] of a hold at a SKU with several locations; NULL otherwise.
    parts       TEXT,
    PRIMARY KEY (id, sku)
);
CREATE INDEX IF NOT EXISTS reservations_by_order ON reservations (order_id)
    WHERE order_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS alerts (
    seq       INTEGER PRIMARY KEY,
    sku       TEXT NOT NULL,
    kind      TEXT NOT NULL,
    available INTEGER,
    threshold INTEGER NOT NULL,
    version   INTEGER NOT NULL,
    at        INTEGER NOT NULL
);
-- An operator's acknowledgement of an alert, by the alert's seq. Not derived from the log:
-- a rebuild keeps them, and a rebuilt alert gets the same seq again.
CREATE TABLE IF NOT EXISTS alert_acks (
    seq INTEGER PRIMARY KEY,
    at  INTEGER NOT NULL,
    by  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    seq      INTEGER PRIMARY KEY,
    sku      TEXT NOT NULL,
    event_id TEXT NOT NULL,
    body     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS thresholds (
    sku       TEXT PRIMARY KEY,
    low_stock INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS delivery_cursors (
    channel TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS corrections (
    seq      INTEGER PRIMARY KEY,
    sku      TEXT NOT NULL,
    found    TEXT NOT NULL,
    expected TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id        INTEGER PRIMARY KEY,
    channel   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    body      TEXT NOT NULL,
    error     TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
);
";

/// Tables derived from the log: emptied by a rebuild. Thresholds and cursors are not.
pub(super) const DERIVED: [&str; 5] = [
    "checkpoint",
    "stock_levels",
    "reservations",
    "alerts",
    "notices",
];

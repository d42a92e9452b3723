//! The read models' tables, and which of them a rebuild clears.

/// Version of the schema below; a file from a newer build is refused, one from an older
/// build is brought up to it by [`MIGRATIONS`].
pub(super) const SCHEMA_VERSION: i64 = 7;

/// What brings a file at version `n` (index `n - 1`) to `n + 1`.
pub(super) const MIGRATIONS: [&str; 6] = [
    // 2: where each hold's units are, for SKUs at several locations.
    "ALTER TABLE reservations ADD COLUMN parts TEXT;",
    // 3: per-location rows and kits' derived rows. Both come from events already in the
    // log, which the old file skipped: the derived tables are emptied, so the projector
    // projects the log again from its start (notices get the same seq as before, and the
    // delivery cursors, kept, skip what was delivered). Alerts are numbered afresh, now
    // with kits' among them, so acknowledgements by number would land on other alerts:
    // they go too (dropped, not emptied: a file older than that table has none; the
    // schema below creates it again).
    "DELETE FROM checkpoint; DELETE FROM stock_levels; DELETE FROM reservations;
     DELETE FROM alerts; DELETE FROM notices; DROP TABLE IF EXISTS alert_acks;",
    // 4: units a live hold sold by partial commits. A log written before has none.
    "ALTER TABLE reservations ADD COLUMN sold INTEGER NOT NULL DEFAULT 0;",
    // 5: backorders and incoming stock per SKU. A log written before has none.
    "ALTER TABLE stock_levels ADD COLUMN backorder_limit INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE stock_levels ADD COLUMN backordered INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE stock_levels ADD COLUMN incoming INTEGER NOT NULL DEFAULT 0;",
    // 6: backorders per location. A file from before schema 3 has no per-location table
    // yet: it gets the table as schema 5 had it, then the columns.
    "CREATE TABLE IF NOT EXISTS stock_locations (
         sku TEXT NOT NULL, location TEXT NOT NULL, priority INTEGER NOT NULL,
         on_hand INTEGER NOT NULL, safety_stock INTEGER NOT NULL, reserved INTEGER NOT NULL,
         available INTEGER NOT NULL, shortfall INTEGER NOT NULL, incoming INTEGER NOT NULL,
         status TEXT NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL,
         PRIMARY KEY (sku, location));
     ALTER TABLE stock_locations ADD COLUMN backorder_limit INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE stock_locations ADD COLUMN backordered INTEGER NOT NULL DEFAULT 0;",
    // 7: fair selling: the purchase limit and the waitlist's length per SKU. A log written
    // before has neither.
    "ALTER TABLE stock_levels ADD COLUMN per_customer INTEGER;
     ALTER TABLE stock_levels ADD COLUMN waitlist INTEGER NOT NULL DEFAULT 0;",
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
    updated_at INTEGER NOT NULL,
    backorder_limit INTEGER NOT NULL DEFAULT 0,
    backordered     INTEGER NOT NULL DEFAULT 0,
    incoming        INTEGER NOT NULL DEFAULT 0,
    per_customer    INTEGER,
    waitlist        INTEGER NOT NULL DEFAULT 0
);
-- A SKU registered with locations, at each of them. The version is the SKU's.
CREATE TABLE IF NOT EXISTS stock_locations (
    sku          TEXT NOT NULL,
    location     TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    on_hand      INTEGER NOT NULL,
    safety_stock INTEGER NOT NULL,
    reserved     INTEGER NOT NULL,
    available    INTEGER NOT NULL,
    shortfall    INTEGER NOT NULL,
    incoming     INTEGER NOT NULL,
    status       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    backorder_limit INTEGER NOT NULL DEFAULT 0,
    backordered  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sku, location)
);
CREATE INDEX IF NOT EXISTS stock_locations_by_location ON stock_locations (location, sku);
-- Each kit flattened into the plain SKUs it comes down to, units per kit; by SKU, the
-- kits a change of that SKU moves.
CREATE TABLE IF NOT EXISTS kit_parts (
    kit         TEXT NOT NULL,
    sku         TEXT NOT NULL,
    qty         INTEGER NOT NULL,
    -- The kit stream's own version (its registration's), counted in the kit's row version.
    kit_version INTEGER NOT NULL,
    PRIMARY KEY (kit, sku)
);
CREATE INDEX IF NOT EXISTS kit_parts_by_sku ON kit_parts (sku, kit);
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
    -- Units sold by partial commits while the hold lived (its final commit is in qty).
    sold        INTEGER NOT NULL DEFAULT 0,
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
pub(super) const DERIVED: [&str; 7] = [
    "checkpoint",
    "stock_levels",
    "stock_locations",
    "kit_parts",
    "reservations",
    "alerts",
    "notices",
];

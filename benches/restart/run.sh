#!/usr/bin/env bash
# Restart bench: a log with one SKU of BUYERS*2 events (a flash sale, every hold
# committed), then `stockade serve` started on it RUNS times. Each start reports the time
# to /readyz, the first exact read of the cold SKU (its actor loads from snapshot + tail)
# and a status read of an early reservation (found through the log's indexes), with RSS.
#
#   bash benches/restart/run.sh                 # BUYERS=600000 (1.2 M events), RUNS=3
#   STOCKADE_BIN=path/to/stockade bash benches/restart/run.sh
#
# The first start on a log written by this build has a snapshot to start from; a log
# from a build with another snapshot format is replayed once, then snapshotted.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${STOCKADE_BIN:-target/release/stockade}
BUYERS=${BUYERS:-600000}
RUNS=${RUNS:-3}
[[ -x $BIN ]] || cargo build --release -p stockade-cli
command -v python3 >/dev/null || { echo "python3 is needed to read the log" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
echo "== writing the log: $BUYERS buyers on one SKU" >&2
"$BIN" simulate flash-sale --skus 1 --stock "$BUYERS" --buyers "$BUYERS" --abandon-rate 0 \
    --store sqlite --data-dir "$work/data" >/dev/null
read -r SKU RID < <(python3 - "$work/data/stockade.db" <<'PY'
import sqlite3, sys, uuid
db = sqlite3.connect(sys.argv[1])
name = db.execute("SELECT name FROM streams LIMIT 1").fetchone()[0]
subject = db.execute("SELECT subject FROM events WHERE subject IS NOT NULL LIMIT 1 OFFSET 1000").fetchone()[0]
print(name.removeprefix("sku-"), uuid.UUID(bytes=subject))
PY
)
events=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM events').fetchone()[0])" "$work/data/stockade.db")
printf '\n| start | events | ready after (ms) | cold exact read (ms) | old reservation status (ms) | RSS (MiB) |\n|---:|---:|---:|---:|---:|---:|\n'
for run in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    STOCKADE_ADMIN_TOKEN=restart-admin-token-0001 STOCKADE_CHANNEL_TOKENS="web:restart-web-token-00001" \
        "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
    pid=$!
    addr=""
    until [[ -n $addr ]]; do
        addr=$(grep -o 'listening on http://[0-9.:]*' "$work/out" | head -1 | sed 's|listening on http://||') || true
        sleep 0.005
    done
    until curl -sf "http://$addr/readyz" >/dev/null; do sleep 0.005; done
    t1=$(date +%s%N)
    read_s=$(curl -sf -o /dev/null -w '%{time_total}' "http://$addr/api/inventory/products/$SKU")
    status_s=$(curl -sf -o /dev/null -w '%{time_total}' "http://$addr/api/reservations/$RID")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    printf '| %d | %d | %d | %.1f | %.1f | %d |\n' "$run" "$events" $(( (t1 - t0) / 1000000 )) \
        "$(echo "$read_s * 1000" | bc)" "$(echo "$status_s * 1000" | bc)" $(( rss / 1024 ))
done

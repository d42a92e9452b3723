#!/usr/bin/env bash
# Fair-selling bench: what a purchase limit costs as users meet it. The release binary
# (`stockade serve`, SQLite with fsync) driven over HTTP by `wrk`, every reservation for
# a customer of its own (a sale's distinct buyers), state piling up as in a real sale:
#
#   1. holds without a customer (the baseline),
#   2. holds with a customer, no limit (each hold keeps its customer beside it),
#   3. holds with a customer under a limit of 2 per 30 days (each also keeps an account),
#   4. buyers without a limit: reserve -> commit cycles (the history a sale leaves),
#   5. buyers under that limit: the same, each also leaving a purchase inside the window
#      (the account outlives the hold until the window passes it).
#
# Each phase runs PHASE_SECS against a fresh server; RSS is read before and after, so
# (after - before) / count is what each hold or buyer costs, and phase 5 less phase 4 is
# what an account costs. Prints a table and writes
# target/fair.json. Installs wrk (Debian package) if missing.
#
#   bash benches/fair/run.sh                  # PHASE_SECS=15, CONNECTIONS=64
# Environment: STOCKADE_BIN (default target/release/stockade, built if missing).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source benches/lib.sh
here=benches/fair

CONNECTIONS=${CONNECTIONS:-64}
PHASE_SECS=${PHASE_SECS:-15}
BIN=${STOCKADE_BIN:-target/release/stockade}
ADMIN=fair-bench-admin-token-001
WEB=fair-bench-web-token-00001

log() { printf '== %s\n' "$*" >&2; }

need_wrk
need_bin "$BIN"

work=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
counts() { grep -o "$1=[0-9]*" "$2" | cut -d= -f2; }

# A fresh server per phase, so nothing one phase left (holds, snapshots, caches) weighs
# on the next: each starts from the same RSS.
start() { # name: starts a server on its own data directory, sets H
    STOCKADE_ADMIN_TOKEN=$ADMIN STOCKADE_CHANNEL_TOKENS="web:$WEB" \
        "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/$1-data" >"$work/$1-out" 2>"$work/$1-err" &
    pid=$!
    addr=$(listening_address "$work/$1-out" "$work/$1-err") || exit 1
    H=http://$addr
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=; }
register() {
    curl -sf -XPOST "$H/api/skus" -H "Authorization: Bearer $ADMIN" \
        -d "{\"sku\":\"$1\",\"pool\":\"physical\",\"on_hand\":1000000000}" >/dev/null
}
limit() {
    curl -sf -XPUT "$H/api/inventory/products/$1/fair-selling" -H "Authorization: Bearer $ADMIN" \
        -d '{"per_customer":2,"window_seconds":2592000}' >/dev/null
}

rows=()
json=()
phase() { # name limited(yes|no) script mode label
    local name=$1 limited=$2 script=$3 mode=$4 label=$5 before after count rate p99 bytes
    start "$name"
    register FAIR
    if [[ $limited == yes ]]; then limit FAIR; fi
    sleep 2
    before=$(rss)
    log "$label: ${PHASE_SECS}s from RSS $before KiB"
    if [[ $script == hold ]]; then
        wrk -t2 -c"$CONNECTIONS" -d"${PHASE_SECS}s" -s benches/memory/hold.lua "$H" -- FAIR "$WEB" 100000000 >"$work/$name"
        count=$(counts holds "$work/$name")
    else
        wrk -t2 -c"$CONNECTIONS" -d"${PHASE_SECS}s" -s $here/customers.lua "$H" -- FAIR "$WEB" "$mode" "$name" >"$work/$name"
        if [[ $mode == buy ]]; then count=$(counts commits "$work/$name"); else count=$(counts reserves "$work/$name"); fi
    fi
    sleep 2
    after=$(rss)
    stop
    p99=$(counts p99_us "$work/$name")
    rate=$(( count / PHASE_SECS ))
    bytes=$(( (after - before) * 1024 / (count > 0 ? count : 1) ))
    log "$count, RSS $before -> $after KiB: $bytes B each"
    rows+=("| $label | $count | $rate/s | $p99 | $before → $after | $bytes |")
    json+=("\"$name\": {\"count\": $count, \"per_sec\": $rate, \"p99_us\": $p99, \"rss_before_kib\": $before, \"rss_after_kib\": $after, \"bytes_each\": $bytes}")
}

phase none no hold - "holds, no customer"
phase cust no customers hold "holds, each for its own customer, no limit"
phase lim yes customers hold "holds, each for its own customer, limit 2 / 30 days"
phase buyfree no customers buy "buyers, no limit (reserve -> commit)"
phase buy yes customers buy "buyers under the limit (reserve -> commit)"

printf '\n| phase (%d conns, %d s each) | count | rate | p99 (us) | RSS (KiB) | bytes each |\n' "$CONNECTIONS" "$PHASE_SECS"
printf '|---|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${rows[@]}"
mkdir -p target
( IFS=,; printf '{%s}\n' "${json[*]}" ) >target/fair.json

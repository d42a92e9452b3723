#!/usr/bin/env bash
# Memory bench: what `stockade serve` keeps in RAM per resolved reservation and per live
# hold, measured as users meet it: the release binary, driven over HTTP by `wrk`.
#
#   bash benches/memory/run.sh              # defaults below
#   CYCLE_SECS=120 HOLDS=600000 bash benches/memory/run.sh
#
# Phase 1, history: keyed reserve -> commit cycles on one SKU (a fresh Idempotency-Key on
#   every reserve, as storefronts send them). After a warm-up of the same load, RSS is
#   sampled before and after CYCLE_SECS of cycles: (RSS after - RSS before) / cycles is
#   what each resolved reservation leaves behind in memory.
# Phase 2, live holds: HOLDS reservations with 7-day TTLs piling up on one SKU;
#   (RSS after - RSS before) / holds is what a live hold costs.
#
# Prints a table, and writes target/memory.json. Installs wrk (Debian package) if missing.
# Environment: STOCKADE_BIN (default target/release/stockade, built if missing),
# CONNECTIONS (64), CYCLE_SECS (60), WARMUP_SECS (15), HOLDS (600000).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source benches/lib.sh
here=benches/memory

CONNECTIONS=${CONNECTIONS:-64}
CYCLE_SECS=${CYCLE_SECS:-60}
WARMUP_SECS=${WARMUP_SECS:-15}
HOLDS=${HOLDS:-600000}
BIN=${STOCKADE_BIN:-target/release/stockade}
ADMIN=mem-bench-admin-token-0001
WEB=mem-bench-web-token-000001

log() { printf '== %s\n' "$*" >&2; }

need_wrk
need_bin "$BIN"

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
STOCKADE_ADMIN_TOKEN=$ADMIN STOCKADE_CHANNEL_TOKENS="web:$WEB" \
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
addr=$(listening_address "$work/out" "$work/err") || exit 1
H=http://$addr
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
register() {
    curl -sf -XPOST "$H/api/skus" -H "Authorization: Bearer $ADMIN" \
        -d "{\"sku\":\"$1\",\"pool\":\"physical\",\"on_hand\":$2}" >/dev/null
}
counts() { grep -o "$1=[0-9]*" "$2" | cut -d= -f2; }

register MEM-CYCLE 1000000000
register MEM-HOLD 1000000000
log "server at $H (pid $pid), RSS $(rss) KiB"

log "warm-up: ${WARMUP_SECS}s of keyed reserve -> commit cycles"
wrk -t2 -c"$CONNECTIONS" -d"${WARMUP_SECS}s" -s $here/cycle.lua "$H" -- MEM-CYCLE "$WEB" >"$work/warm"
sleep 2
before=$(rss)
log "history: ${CYCLE_SECS}s of cycles from RSS $before KiB"
wrk -t2 -c"$CONNECTIONS" -d"${CYCLE_SECS}s" -s $here/cycle.lua "$H" -- MEM-CYCLE "$WEB" >"$work/cycle"
sleep 2
after=$(rss)
cycles=$(counts commits "$work/cycle")
cycle_p99=$(counts p99_us "$work/cycle")
per_resolved=$(( (after - before) * 1024 / (cycles > 0 ? cycles : 1) ))
log "cycles $cycles, RSS $before -> $after KiB: $per_resolved B per resolved reservation"

before_holds=$(rss)
hold_secs=$(( HOLDS / 4000 + 30 ))
log "live holds: $HOLDS on one SKU (at most ${hold_secs}s) from RSS $before_holds KiB"
wrk -t2 -c"$CONNECTIONS" -d"${hold_secs}s" -s $here/hold.lua "$H" -- MEM-HOLD "$WEB" $(( HOLDS / 2 )) >"$work/hold"
sleep 2
after_holds=$(rss)
holds=$(counts holds "$work/hold")
per_hold=$(( (after_holds - before_holds) * 1024 / (holds > 0 ? holds : 1) ))
live=$(curl -sf "$H/api/inventory/products/MEM-HOLD" | grep -o '"reserved":[0-9]*' | cut -d: -f2)
log "holds $holds (the SKU says $live reserved), RSS $before_holds -> $after_holds KiB: $per_hold B per live hold"

cycle_rate=$(( cycles / CYCLE_SECS ))
printf '\n| measure | count | RSS before (KiB) | RSS after (KiB) | bytes each | rate |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
printf '| resolved reservation (keyed reserve -> commit, %d conns) | %d | %d | %d | %d | %d cycles/s, p99 %d us |\n' \
    "$CONNECTIONS" "$cycles" "$before" "$after" "$per_resolved" "$cycle_rate" "$cycle_p99"
printf '| live hold (one SKU, 7-day TTL) | %d | %d | %d | %d | |\n' \
    "$holds" "$before_holds" "$after_holds" "$per_hold"
mkdir -p target
cat >target/memory.json <<JSON
{"connections": $CONNECTIONS, "cycle_secs": $CYCLE_SECS, "cycles": $cycles,
 "rss_before_cycles_kib": $before, "rss_after_cycles_kib": $after,
 "bytes_per_resolved": $per_resolved, "cycles_per_sec": $cycle_rate, "cycle_p99_us": $cycle_p99,
 "holds": $holds, "rss_before_holds_kib": $before_holds, "rss_after_holds_kib": $after_holds,
 "bytes_per_live_hold": $per_hold}
JSON

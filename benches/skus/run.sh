#!/usr/bin/env bash
# Many SKUs: what `stockade serve` costs with a large catalogue registered, measured as
# users meet it: the release binary, SKUs registered over HTTP by `wrk`, then listed page
# by page with curl as a storefront's catalogue sync or an admin console would.
#
#   bash benches/skus/run.sh                 # 1,000,000 SKUs
#   SKUS=100000 bash benches/skus/run.sh
#
# Reports RSS after registration, RSS once the SKUs' actors have gone idle and stopped
# (IDLE_SECS after the last registration; the server is started with that idle timeout),
# the time to page through every SKU (1000 per page), and RSS after paging.
# Prints a table and writes target/skus.json. Installs wrk (Debian package) if missing.
# Environment: STOCKADE_BIN (default target/release/stockade, built if missing), SKUS
# (1000000), CONNECTIONS (32), IDLE_SECS (60).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source benches/lib.sh
here=benches/skus

SKUS=${SKUS:-1000000}
CONNECTIONS=${CONNECTIONS:-32}
IDLE_SECS=${IDLE_SECS:-60}
BIN=${STOCKADE_BIN:-target/release/stockade}
ADMIN=skus-bench-admin-token-001

log() { printf '== %s\n' "$*" >&2; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

need_wrk
need_bin "$BIN"

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/stockade.toml" <<TOML
[engine]
idle_timeout_seconds = $(( IDLE_SECS / 2 > 0 ? IDLE_SECS / 2 : 1 ))
TOML
STOCKADE_ADMIN_TOKEN=$ADMIN STOCKADE_CONFIG="$work/stockade.toml" \
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
addr=$(listening_address "$work/out" "$work/err") || exit 1
H=http://$addr
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
rss_start=$(rss)
log "server at $H (pid $pid), RSS $rss_start KiB; registering $SKUS SKUs"

created=0
chunk=0
started=$(now)
while (( created < SKUS )); do
    chunk=$((chunk + 1))
    # Chunks of at most 20 s, shorter at the end so that idle time does not count.
    secs=$(( (SKUS - created) / 3000 + 2 ))
    wrk -t2 -c"$CONNECTIONS" -d"$(( secs < 20 ? secs : 20 ))s" -s $here/register.lua "$H" -- "$ADMIN" "$chunk" \
        $(( (SKUS - created + 1) / 2 )) >"$work/reg"
    got=$(grep -o 'created=[0-9]*' "$work/reg" | cut -d= -f2)
    failed=$(grep -o 'failures=[0-9]*' "$work/reg" | cut -d= -f2)
    created=$((created + got))
    log "registered $created of $SKUS ($failed refused in this chunk), RSS $(rss) KiB"
done
reg_secs=$(calc "$(now) - $started")
rss_registered=$(rss)
log "idle for ${IDLE_SECS}s while the actors stop"
sleep "$IDLE_SECS"
rss_idle=$(rss)

log "paging through every SKU, 1000 per page"
after=""
listed=0
pages=0
page_started=$(now)
while :; do
    curl -sf "$H/api/inventory/products?limit=1000${after:+&after=$after}" >"$work/page"
    n=$({ grep -o '"sku":' "$work/page" || true; } | wc -l)
    listed=$((listed + n))
    pages=$((pages + 1))
    after=$({ grep -o '"next_after":"[^"]*"' "$work/page" || true; } | cut -d'"' -f4)
    if (( pages % 200 == 0 )); then log "listed $listed SKUs"; fi
    [[ -z $after ]] && break
done
page_secs=$(calc "$(now) - $page_started")
rss_paged=$(rss)
one=$(curl -s -o /dev/null -w '%{time_total}' "$H/api/inventory/products/SKU-1-1-1")

printf '\n| measure | value |\n|---|---:|\n'
printf '| SKUs registered | %d in %.0f s (%.0f/s) |\n' "$created" "$reg_secs" "$(calc "$created / $reg_secs")"
printf '| RSS at start | %d MiB |\n' $(( rss_start / 1024 ))
printf '| RSS after registering | %d MiB |\n' $(( rss_registered / 1024 ))
printf '| RSS idle (%d s later, actors stopped) | %d MiB (%d B per SKU) |\n' "$IDLE_SECS" \
    $(( rss_idle / 1024 )) $(( (rss_idle - rss_start) * 1024 / (created > 0 ? created : 1) ))
printf '| paging through every SKU (%d pages of 1000) | %d SKUs in %.1f s |\n' "$pages" "$listed" "$page_secs"
printf '| RSS after paging | %d MiB |\n' $(( rss_paged / 1024 ))
printf '| first exact read of a cold SKU | %.1f ms |\n' "$(calc "$one * 1000")"
mkdir -p target
cat >target/skus.json <<JSON
{"skus": $created, "register_secs": $reg_secs, "rss_start_kib": $rss_start,
 "rss_registered_kib": $rss_registered, "rss_idle_kib": $rss_idle, "idle_secs": $IDLE_SECS,
 "listed": $listed, "pages": $pages, "page_secs": $page_secs, "rss_paged_kib": $rss_paged,
 "cold_read_secs": $one}
JSON

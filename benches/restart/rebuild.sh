#!/usr/bin/env bash
# Read-model rebuild from zero: `stockade serve` on DATA_DIR with its projections.db
# moved aside, sampled every second until the projector has caught up with the log.
# Prints the projected position, the rate and RSS per sample, then the mean rate.
#
#   bash benches/restart/rebuild.sh DATA_DIR     (a data directory with a stockade.db)

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${STOCKADE_BIN:-target/release/stockade}
DIR=${1:?usage: rebuild.sh DATA_DIR}
[[ -f $DIR/stockade.db ]] || { echo "no log at $DIR/stockade.db" >&2; exit 2; }
for f in projections.db projections.db-wal projections.db-shm; do
    [[ -e $DIR/$f ]] && mv "$DIR/$f" "$DIR/$f.aside"
done
STOCKADE_ADMIN_TOKEN=rebuild-admin-token-0001 STOCKADE_CHANNEL_TOKENS="web:rebuild-web-token-00001" \
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DIR" >/tmp/rebuild.out 2>/tmp/rebuild.err &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
addr=""
until [[ -n $addr ]]; do
    addr=$(grep -o 'listening on http://[0-9.:]*' /tmp/rebuild.out | head -1 | sed 's|listening on http://||') || true
    sleep 0.01
done
start=$(date +%s%N)
printf '| s | projected | events/s | RSS (MiB) |\n|---:|---:|---:|---:|\n'
last=0
while true; do
    sleep 1
    body=$(curl -sf "http://$addr/readyz" || true)
    at=$(echo "$body" | grep -o '"projected_position":"[0-9]*"' | grep -o '[0-9]*' || echo 0)
    head=$(echo "$body" | grep -o '"log_position":"[0-9]*"' | grep -o '[0-9]*' || echo 0)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    now=$(date +%s%N)
    printf '| %d | %d | %d | %d |\n' $(( (now - start) / 1000000000 )) "$at" $(( at - last )) $(( rss / 1024 ))
    last=$at
    if [[ $at -ge $head && $head -gt 0 ]]; then break; fi
done
end=$(date +%s%N)
echo "rebuilt $head events in $(( (end - start) / 1000000 )) ms: $(( head * 1000000000 / (end - start) )) events/s"

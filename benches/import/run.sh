#!/usr/bin/env bash
# Imports N SKUs (default 1 000 000) into a fresh `stockade serve` through
# POST /api/skus/import, one streamed NDJSON body, and reports the time, the rate and the
# server's peak RSS; then exports them back (GET /api/skus/export) and counts the lines.
#
#   cargo build --release -p stockade-cli
#   bash benches/import/run.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
BIN=target/release/stockade
DIR=$(mktemp -d)
PORT=18123
ADMIN=bench-admin-token-000001
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT

python3 - "$N" > "$DIR/skus.ndjson" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    out.write('{"sku":"IMP-%07d","pool":"physical","on_hand":%d}\n' % (i, 10 + i % 90))
PY

STOCKADE_ADMIN_TOKEN=$ADMIN STOCKADE_CHANNEL_TOKENS=web:bench-web-token-0000001 \
    "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" > "$DIR/serve.log" 2>&1 &
SERVER=$!
sleep 1.5

peak=0
( while kill -0 $SERVER 2>/dev/null; do
      rss=$(awk '/VmRSS/ {print $2}' /proc/$SERVER/status 2>/dev/null || echo 0)
      echo "$rss"; sleep 0.5
  done ) > "$DIR/rss.log" &
SAMPLER=$!

start=$(date +%s.%N)
curl -sS -XPOST "http://127.0.0.1:$PORT/api/skus/import" \
    -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$DIR/skus.ndjson" | tail -1 > "$DIR/summary.json"
end=$(date +%s.%N)
# The read models follow the log by a moment: wait until they hold every SKU (2 min at
# most), then time one whole export.
for _ in $(seq 60); do
    rows=$(curl -sS "http://127.0.0.1:$PORT/api/inventory/products?limit=1&after=IMP-$(printf '%07d' $((N - 2)))" | grep -c "IMP-" || true)
    [ "$rows" -ge 1 ] && break
    sleep 2
done
exported_start=$(date +%s.%N)
lines=$(curl -sS "http://127.0.0.1:$PORT/api/skus/export" | wc -l)
exported_end=$(date +%s.%N)
kill $SAMPLER 2>/dev/null || true
peak=$(sort -n "$DIR/rss.log" | tail -1)
last=$(tail -1 "$DIR/rss.log")

python3 - "$N" "$start" "$end" "$exported_start" "$exported_end" "$lines" "$peak" "$last" "$DIR/summary.json" <<'PY'
import json, sys
n, s, e, xs, xe, lines, peak, last, summary = sys.argv[1:]
took = float(e) - float(s)
print(f"| SKUs | import | rate | summary | export (lines, time) | peak RSS | RSS after |")
print(f"|---:|---:|---:|---|---:|---:|---:|")
print(f"| {int(n):,} | {took:.1f} s | {int(n)/took:,.0f}/s | {json.load(open(summary))['summary']} "
      f"| {int(lines):,} in {float(xe)-float(xs):.1f} s | {int(peak)//1024} MiB | {int(last)//1024} MiB |")
PY

#!/usr/bin/env bash
# The inner half of benches/wire/run.sh: expects STOCKADE_PEER_PG_URL and
# STOCKADE_PEER_REDIS_URL (set by benches/peer/run.sh) and runs, at each connection count,
# in this order on state that accumulates through the run (holds with a 10-minute TTL
# pile up in Stockade, the Redis list and the PostgreSQL table grow):
#   1. wrk, unkeyed:   POST /api/reservations, one unit of HOT;
#   2. wrk, keyed:     the same with a fresh Idempotency-Key on every request;
#   3. redis-benchmark: EVALSHA of a check-and-decrement + RPUSH Lua script, and of its
#                      keyed twin (the outcome kept under a fresh key per request);
#   4. pgbench:        one statement, a conditional UPDATE of the stock row and an INSERT
#                      of the reservation row.
# Every acknowledged reservation is durable before its answer in all three systems.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source benches/lib.sh
here=benches/wire
: "${STOCKADE_PEER_PG_URL:?run benches/wire/run.sh, which starts PostgreSQL and Redis}"
: "${STOCKADE_PEER_REDIS_URL:?run benches/wire/run.sh, which starts PostgreSQL and Redis}"
CONNS=${CONNS:-1 64 256 512 1000}
SECS=${SECS:-10}
BIN=${STOCKADE_BIN:-}
OUT=${STOCKADE_PEER_DIR:-target/peer}
ADMIN=wire-bench-admin-token-0001
WEB=wire-bench-web-token-000001
log() { printf '== %s\n' "$*" >&2; }

need_wrk
# redis-benchmark comes with redis-server (redis-tools), pgbench with the PostgreSQL
# server package, both installed by benches/peer/run.sh.
for tool in wrk redis-benchmark pgbench python3; do
    command -v "$tool" >/dev/null || { echo "wire: $tool not found" >&2; exit 1; }
done
# Without STOCKADE_BIN, the binary of this checkout: cargo rebuilds it if it is stale (a
# no-op when it is not), so a run never measures an older build by mistake.
if [[ -z $BIN ]]; then
    log "building the release binary (if it is not up to date)"
    cargo build --release -p stockade-cli
    BIN=target/release/stockade
fi
[[ -x $BIN ]] || { echo "wire: $BIN is not an executable" >&2; exit 1; }
# 1000 connections on each side of loopback, plus the servers' files.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

redis_port=${STOCKADE_PEER_REDIS_URL##*:}; redis_port=${redis_port%/}
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
redis_pid=$(rcli info server | tr -d '\r' | sed -n 's/^process_id://p')

work=$(mktemp -d)
results=$work/results.tsv
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# --- Stockade ---------------------------------------------------------------------
STOCKADE_ADMIN_TOKEN=$ADMIN STOCKADE_CHANNEL_TOKENS="web:$WEB" \
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
addr=$(listening_address "$work/out" "$work/err") || exit 1
H=http://$addr
curl -sf -XPOST "$H/api/skus" -H "Authorization: Bearer $ADMIN" \
    -d '{"sku":"HOT","pool":"physical","on_hand":1000000000}' >/dev/null

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# PostgreSQL is many processes sharing buffers: their proportional set sizes add up.
pg_pss_kib() {
    local total=0 p v
    for p in $(pgrep -x postgres); do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# --- Redis --------------------------------------------------------------------------
rcli flushall >/dev/null
rcli set stock 1000000000000 >/dev/null
lua='local a = tonumber(redis.call("GET", KEYS[1]))
if a >= tonumber(ARGV[1]) then
  redis.call("DECRBY", KEYS[1], ARGV[1])
  redis.call("RPUSH", KEYS[2], ARGV[2])
  return 1
end
return 0'
sha=$(rcli script load "$lua")
# The keyed twin: a retry under a key answers what the first request got, as Stockade's
# Idempotency-Key does; keys are kept 8 days, in memory, as Redis keeps everything.
lua_keyed='local prior = redis.call("GET", KEYS[3])
if prior then return tonumber(prior) end
local a = tonumber(redis.call("GET", KEYS[1]))
local r = 0
if a >= tonumber(ARGV[1]) then
  redis.call("DECRBY", KEYS[1], ARGV[1])
  redis.call("RPUSH", KEYS[2], ARGV[2])
  r = 1
end
redis.call("SET", KEYS[3], r, "EX", 691200)
return r'
sha_keyed=$(rcli script load "$lua_keyed")

# --- PostgreSQL ---------------------------------------------------------------------
psql -X -q -v ON_ERROR_STOP=1 "$STOCKADE_PEER_PG_URL" <<'SQL'
DROP TABLE IF EXISTS wire_stock, wire_reservations;
CREATE TABLE wire_stock (sku text PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0));
CREATE TABLE wire_reservations (id bigserial PRIMARY KEY, sku text NOT NULL, qty int NOT NULL,
                                at timestamptz NOT NULL DEFAULT now());
INSERT INTO wire_stock VALUES ('HOT', 1000000000000);
SQL
cat >"$work/reserve.sql" <<'SQL'
WITH taken AS (UPDATE wire_stock SET available = available - 1
               WHERE sku = 'HOT' AND available >= 1 RETURNING sku)
INSERT INTO wire_reservations (sku, qty) SELECT sku, 1 FROM taken;
SQL

# One figure of wrk's COUNTS line (the last phase's, in $line).
get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
# CPU time in clock ticks, user + system: of a process; of PostgreSQL's processes and the
# backends that have exited (the postmaster's reaped children) together.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
    local total=0 p
    for p in $(pgrep -x postgres); do total=$((total + $(ticks "$p"))); done
    p=$(pgrep -o -x postgres) && total=$((total + $(awk '{print $16 + $17}' "/proc/$p/stat")))
    echo "$total"
}
hz=$(getconf CLK_TCK)
# Stockade's threads: "tid name ticks" lines (names as the kernel shows them).
thread_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s\t%s\t%s\n' "${t##*/}" "$(cat "$t/comm" 2>/dev/null)" \
            "$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)"
    done
}
# "name=us;name=us": microseconds of CPU per request by thread name between two
# thread_ticks files, thread by thread (one born in between counts from zero; the CPU of
# one that ended in between, such as an idle blocking-pool thread, is not counted).
threads_per_request() {
    python3 - "$1" "$2" "$3" "$hz" <<'PY'
import sys
def read(path):
    rows = (line.rstrip("\n").split("\t") for line in open(path))
    return {r[0]: (r[1], int(r[2])) for r in rows if len(r) == 3 and r[2].isdigit()}
before, after, n, hz = read(sys.argv[1]), read(sys.argv[2]), max(1, int(sys.argv[3])), int(sys.argv[4])
by_name = {}
for tid, (name, ticks) in after.items():
    by_name[name] = by_name.get(name, 0) + ticks - before.get(tid, (name, 0))[1]
print(";".join(f"{k}={v / hz * 1e6 / n:.1f}" for k, v in sorted(by_name.items())))
PY
}
# Runs a client, its output to $work/client.out; its CPU seconds (user + system) to
# $work/client.cpu. The clients share the cores with the servers, so what a client costs
# per request is part of the comparison.
client() {
    local TIMEFORMAT='%3U %3S'
    { time "$@" >"$work/client.out" 2>"$work/client.err"; } 2>"$work/client.time" ||
        { cat "$work/client.err" >&2; return 1; }
    awk '{print $1 + $2}' "$work/client.time" >"$work/client.cpu"
}
# Microseconds of CPU per request, from ticks before and after and the request count.
per_request() { python3 -c "print(f'{($2 - $1) / $hz * 1e6 / max(1, $3):.1f}')"; }
client_per_request() { python3 -c "print(f'{$(cat "$work/client.cpu") * 1e6 / max(1, $1):.1f}')"; }
# A Stockade row of the results, after a wrk phase that began at $before and
# $work/threads.before.
stockade_row() {
    line=$(grep '^COUNTS' "$work/client.out")
    thread_ticks "$pid" >"$work/threads.after"
    printf 'stockade\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$c" \
        "$(get reserved)" "$(get secs)" "$(get p50_us)" "$(get p99_us)" "$(get max_us)" \
        "$(get failures)" "$(rss_kib "$pid")" "$(get p999_us)" \
        "$(per_request "$before" "$(ticks "$pid")" "$(get reserved)")" \
        "$(client_per_request "$(get reserved)")" \
        "$(threads_per_request "$work/threads.before" "$work/threads.after" "$(get reserved)")" \
        "$(cat "$work/sse" 2>/dev/null || true)" >>"$results"
}
total_201=0
# wrk stops at its deadline with a request in flight on each connection: the server may
# still hold those units, but no client was told. So at most this many more than the 201s.
cut_off=0
for c in $CONNS; do
    threads=$((c < 2 ? 1 : 2))
    for mode in plain keyed; do
        log "stockade $mode, $c connections, ${SECS}s"
        script=$here/reserve.lua
        [[ $mode == keyed ]] && script=$here/reserve-keyed.lua
        # A storefront on the live stream through the phase: how fresh its notices are.
        rm -f "$work/sse"
        python3 $here/sse_lag.py "$addr" "$WEB" "$work/sse" & sse=$!
        sleep 0.2
        before=$(ticks "$pid")
        thread_ticks "$pid" >"$work/threads.before"
        client wrk -t"$threads" -c"$c" -d"${SECS}s" --timeout 10s -s "$script" "$H" \
            -- HOT "$WEB" "$c-$(date +%s%N)" || { echo "wire: wrk failed" >&2; exit 1; }
        sleep 0.5 # the last notices of the phase
        kill "$sse" 2>/dev/null; wait "$sse" 2>/dev/null || true
        stockade_row "$mode"
        total_201=$((total_201 + $(get reserved)))
        cut_off=$((cut_off + c))
    done
    # The floor: what an HTTP request that does nothing costs, on the same connections.
    log "stockade GET /healthz (the HTTP floor), $c connections, ${SECS}s"
    before=$(ticks "$pid")
    thread_ticks "$pid" >"$work/threads.before"
    client wrk -t"$threads" -c"$c" -d"${SECS}s" --timeout 10s -s "$here/floor.lua" "$H" \
        -- HOT "$WEB" || { echo "wire: wrk failed" >&2; exit 1; }
    rm -f "$work/sse"
    stockade_row floor

    for mode in lua keyed; do
        log "redis-benchmark $mode, $c connections"
        # Enough requests to keep Redis busy for about SECS seconds: a rough rate, alone and
        # with many clients, not a measurement (the run reports what it measured). -r:
        # __rand_int__ ranges over a billion values, so every keyed request has a fresh key.
        n=$(( (c == 1 ? 4000 : 45000) * SECS ))
        if [[ $mode == lua ]]; then
            command=(EVALSHA "$sha" 2 stock reservations 1 __rand_int__)
        else
            command=(EVALSHA "$sha_keyed" 3 stock reservations key:__rand_int__ 1 __rand_int__)
        fi
        before=$(ticks "$redis_pid")
        client redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$c" -n "$n" -r 1000000000 \
            --csv --precision 3 "${command[@]}"
        csv=$(tail -1 "$work/client.out")
        IFS=, read -r _ rps _ _ p50 _ p99 max <<<"$(tr -d '"' <<<"$csv")"
        printf 'redis\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t0\t%s\t\t%s\t%s\n' "$mode" "$c" "$n" \
            "$(python3 -c "print(f'{$n/$rps:.3f}')")" \
            "$(python3 -c "print(round($p50*1000))")" "$(python3 -c "print(round($p99*1000))")" \
            "$(python3 -c "print(round($max*1000))")" "$(rss_kib "$redis_pid")" \
            "$(per_request "$before" "$(ticks "$redis_pid")" "$n")" \
            "$(client_per_request "$n")" >>"$results"
    done

    log "pgbench, $c connections, ${SECS}s"
    rm -f "$work"/pgbench_log.*
    before=$(pg_ticks)
    (cd "$work" && client pgbench -n -M prepared -c "$c" -j "$threads" -T "$SECS" -l \
        -f reserve.sql "$STOCKADE_PEER_PG_URL") || { echo "wire: pgbench failed" >&2; exit 1; }
    python3 - "$work" "$c" "$(pg_pss_kib)" "$SECS" "$before" "$(pg_ticks)" "$hz" \
        "$(cat "$work/client.cpu")" >>"$results" <<'PY'
import glob, sys
work, conns, pss, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
before, after, hz, client = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
lat = []
for path in glob.glob(f"{work}/pgbench_log.*"):
    for line in open(path):
        f = line.split()
        if len(f) >= 3 and f[2].isdigit():
            lat.append(int(f[2]))
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0
n = max(1, len(lat))
print(f"postgres\tupdate\t{conns}\t{len(lat)}\t{secs:.3f}\t{pick(0.5)}\t{pick(0.99)}\t"
      f"{lat[-1] if lat else 0}\t0\t{pss}\t{pick(0.999)}\t"
      f"{(after - before) / hz * 1e6 / n:.1f}\t{client * 1e6 / n:.1f}")
PY
done

# Nothing acknowledged and lost: every 201 is a live hold now (holds last 10 minutes);
# the only extra holds are requests wrk cut off at a deadline, at most one per connection.
reserved=$(curl -sf "$H/api/inventory/products/HOT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reserved"])')
log "stockade: $total_201 reservations acknowledged, $reserved held ($((reserved - total_201)) cut off by wrk's deadlines, at most $cut_off)"
if ((reserved < total_201 || reserved > total_201 + cut_off)); then
    echo "wire: the ledger disagrees: $reserved held, $total_201 acknowledged, $cut_off cut off at most" >&2
    exit 1
fi

mkdir -p "$OUT"
python3 $here/report.py "$results" "$OUT" "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    "$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')" \
    "$(postgres --version 2>/dev/null | sed -e "s/^postgres (PostgreSQL) //" -e "s/ (.*//")" "$reserved"
cat "$OUT/wire.md"

#!/usr/bin/env bash
# Scale-out bench: one hot SKU, as external clients meet it, on every shape of Stockade
# that shares a PostgreSQL log, beside the plain PostgreSQL UPDATE a team would write.
#
#   bash benches/scaleout/run.sh                 # CONNS=64 SECS=15
#
# Phases, each on fresh servers and a fresh schema, holds (10 minutes) piling up on the
# SKU through the phase, every request with its own Idempotency-Key:
#   1. one node on SQLite (the embedded default), wrk straight to it;
#   2. one node on PostgreSQL, wrk straight to it;
#   3. three nodes on PostgreSQL behind HAProxy (ops/haproxy/stockade.cfg), wrk sending
#      X-Stockade-Sku: every request reaches the SKU's owner;
#   4. the same three nodes, without the header: HAProxy spreads the requests round
#      robin, so every node writes the hot SKU and the fence settles each race;
#   5. pgbench: one conditional UPDATE of a stock row joined to an INSERT (the peer
#      bench's PostgreSQL baseline), on the same server.
# Prints a table (rate, latency, errors, RSS of the nodes, and each node's fence
# conflicts), then what the nodes logged at WARN or ERROR, and writes both to
# target/scaleout.md. Everything shares the 2 cores. PHASES="2 3" runs some of them.
#
# Installs wrk, haproxy and PostgreSQL from Debian if missing; starts a throwaway
# PostgreSQL (durable: fsync and synchronous_commit on) on STOCKADE_CI_PG_PORT (default
# 55434) and stops it on exit. STOCKADE_BIN: default target/release/stockade.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source benches/lib.sh
source .ci/postgres.sh

CONNS=${CONNS:-64}
PHASES=${PHASES:-1 2 3 4 5}
want() { [[ " $PHASES " == *" $1 "* ]]; }
SECS=${SECS:-15}
BIN=${STOCKADE_BIN:-target/release/stockade}
ADMIN=scaleout-admin-token-0001
WEB=scaleout-web-token-000001
SECRET=scaleout-bench-shared-id-secret-0001
here=benches/scaleout

log() { printf '== %s\n' "$*" >&2; }

need_wrk
need_bin "$BIN"
if ! ci_pg_bin >/dev/null || ! command -v haproxy >/dev/null || ! command -v pgbench >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        postgresql postgresql-contrib haproxy >/dev/null
fi
export STOCKADE_CI_PG_PORT=${STOCKADE_CI_PG_PORT:-55434}
ci_pg_start >&2
work=$(mktemp -d)
pids=()
lb=
stop_all() {
    local p
    for p in "${pids[@]}" $lb; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}" $lb; do wait "$p" 2>/dev/null || true; done
    pids=()
    lb=
}
trap 'stop_all; ci_pg_stop; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node NAME STORE [SCHEMA]: a node on a port of its own; appends its address to
# $addrs and its pid to $pids.
start_node() {
    local name=$1 store=$2 schema=${3:-} port
    port=$(free_port)
    env STOCKADE_ADMIN_TOKEN=$ADMIN STOCKADE_CHANNEL_TOKENS="web:$WEB" STOCKADE_ID_SECRET=$SECRET \
        ${schema:+STOCKADE_PG_SCHEMA=$schema} \
        "$BIN" serve --store "$store" --listen "127.0.0.1:$port" --data-dir "$work/$name" \
        >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    addrs+=("$(listening_address "$work/$name.out" "$work/$name.err")") || exit 1
}

start_lb() {
    local port
    port=$(free_port)
    LB=127.0.0.1:$port
    STOCKADE_LB_BIND=$LB STOCKADE_NODE1=${addrs[0]} STOCKADE_NODE2=${addrs[1]} \
        STOCKADE_NODE3=${addrs[2]} haproxy -f ops/haproxy/stockade.cfg -db \
        >"$work/haproxy.log" 2>&1 &
    lb=$!
    for _ in $(seq 100); do
        curl -sf "http://$LB/readyz" >/dev/null && return 0
        sleep 0.1
    done
    cat "$work/haproxy.log" >&2
    echo "haproxy did not become ready" >&2
    exit 1
}

register() {
    curl -sf -XPOST "$1/api/skus" -H "Authorization: Bearer $ADMIN" -H 'X-Stockade-Sku: HOT' \
        -d '{"sku":"HOT","pool":"physical","on_hand":1000000000000}' >/dev/null
}

rss_mib() { # the nodes' resident memory together
    local total=0 p
    for p in "${pids[@]}"; do
        total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
    done
    echo $((total / 1024))
}

conflicts() { # each node's fence conflicts so far, as "a/b/c"
    local a out=()
    for a in "${addrs[@]}"; do
        out+=("$(curl -sf -H "Authorization: Bearer $ADMIN" "http://$a/metrics" |
            awk '/^stockade_engine_conflicts / {print $2}')")
    done
    (IFS=/; echo "${out[*]}")
}

get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
rows=()
logged=()
# What the nodes of the phase logged at WARN or ERROR, counted by message.
node_logs() { # LABEL
    local lines
    lines=$(cat "$work"/*.err 2>/dev/null | grep -E ' (WARN|ERROR) ' |
        sed -E 's/^[^ ]+ +//; s/ (sku|error|durable)=.*//' | sort | uniq -c | sort -rn | head -5) || true
    [[ -z $lines ]] || logged+=("$1:" "$lines")
    rm -f "$work"/*.err
}
run_wrk() { # LABEL URL SCRIPT
    local label=$1 url=$2 script=$3
    log "$label: wrk -c$CONNS ${SECS}s"
    line=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$script" "$url" -- HOT "$WEB" "$RANDOM$RANDOM" |
        grep '^COUNTS')
    local secs rate
    secs=$(get secs)
    rate=$(awk -v n="$(get reserved)" -v s="$secs" 'BEGIN {printf "%d", n / s}')
    rows+=("| $label | $rate | $(awk -v u="$(get p50_us)" 'BEGIN {printf "%.1f", u/1000}') | $(awk -v u="$(get p99_us)" 'BEGIN {printf "%.1f", u/1000}') | $(get failures) | $(rss_mib) | $(conflicts) |")
}

# 1. one node, SQLite
if want 1; then
    addrs=()
    start_node sqlite sqlite
    register "http://${addrs[0]}"
    run_wrk "1 node, SQLite" "http://${addrs[0]}" benches/wire/reserve-keyed.lua
    stop_all
    node_logs "1 node, SQLite"
fi

# 2. one node, PostgreSQL
if want 2; then
    addrs=()
    start_node pg1 postgres one_node
    register "http://${addrs[0]}"
    run_wrk "1 node, PostgreSQL" "http://${addrs[0]}" benches/wire/reserve-keyed.lua
    stop_all
    node_logs "1 node, PostgreSQL"
fi

# 3 and 4. three nodes, one log, behind HAProxy
for shape in routed spread; do
    if [[ $shape == routed ]]; then want 3 || continue; else want 4 || continue; fi
    addrs=()
    for n in 1 2 3; do start_node "$shape$n" postgres "three_$shape"; done
    start_lb
    register "http://$LB"
    if [[ $shape == routed ]]; then
        run_wrk "3 nodes + HAProxy, X-Stockade-Sku" "http://$LB" $here/reserve-routed.lua
    else
        run_wrk "3 nodes + HAProxy, no header (round robin)" "http://$LB" benches/wire/reserve-keyed.lua
    fi
    stop_all
    node_logs "3 nodes, $shape"
done

# 5. PostgreSQL's own conditional UPDATE
if want 5; then
psql -X -q -v ON_ERROR_STOP=1 "$STOCKADE_PG_URL" <<'SQL'
CREATE TABLE bench_stock (sku text PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0));
CREATE TABLE bench_reservations (id bigserial PRIMARY KEY, sku text NOT NULL, qty int NOT NULL,
                                 at timestamptz NOT NULL DEFAULT now());
INSERT INTO bench_stock VALUES ('HOT', 1000000000000);
SQL
cat >"$work/reserve.sql" <<'SQL'
WITH taken AS (UPDATE bench_stock SET available = available - 1
               WHERE sku = 'HOT' AND available >= 1 RETURNING sku)
INSERT INTO bench_reservations (sku, qty) SELECT sku, 1 FROM taken;
SQL
log "pgbench -c$CONNS ${SECS}s"
out=$(cd "$work" && pgbench -n -M prepared -c "$CONNS" -j 2 -T "$SECS" -f reserve.sql \
    -l --log-prefix="$work/pglog" "$STOCKADE_PG_URL" 2>&1)
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
# Per-transaction latencies (microseconds, third field) from pgbench's logs.
read -r p50 p99 < <(cat "$work"/pglog.* | awk '{print $3}' | sort -n |
    awk '{v[NR] = $1} END {printf "%.1f %.1f\n", v[int(NR * 0.5)] / 1000, v[int(NR * 0.99)] / 1000}')
rows+=("| PostgreSQL conditional UPDATE + INSERT, pgbench | ${tps%.*} | $p50 | $p99 | ${failed:-0} | – | – |")
fi

{
    echo "One hot SKU, $CONNS connections, ${SECS} s per phase, keyed reservations of one unit ($(date -u +%F), $(git rev-parse --short HEAD))."
    echo
    echo "| shape | reservations/s | p50 ms | p99 ms | errors | nodes' RSS MiB | fence conflicts per node |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
    if ((${#logged[@]})); then
        echo
        echo "Logged by the nodes at WARN or ERROR (count, message):"
        echo
        echo '```'
        printf '%s\n' "${logged[@]}"
        echo '```'
    fi
} | tee target/scaleout.md

#!/usr/bin/env bash
# Peer benchmark: Stockade vs PostgreSQL vs Redis, all on loopback.
#
#   bash benches/peer/run.sh [criterion args...]
#
# Installs PostgreSQL and Redis from Debian packages if they are missing (uses
# only the binaries, never the system services). Then starts a private,
# throwaway instance of each under $STOCKADE_PEER_DIR/run, exports their URLs,
# runs `cargo bench -p stockade-benches --bench peer -- "$@"`, and stops both
# instances on exit, whether the benchmark succeeds, fails or is interrupted.
#
# Both servers are configured for durable writes, so every acknowledged write
# is on disk, as with Stockade:
#   PostgreSQL: fsync=on, synchronous_commit=on, full_page_writes=on
#   Redis:      appendonly yes, appendfsync always, no RDB snapshots
#
# Environment:
#   STOCKADE_PEER_DIR         work dir root (default target/peer; wiped each run)
#   STOCKADE_PEER_PG_PORT     PostgreSQL port on 127.0.0.1 (default 55432)
#   STOCKADE_PEER_REDIS_PORT  Redis port on 127.0.0.1 (default 56379)
#   STOCKADE_PEER_SERVICES_ONLY=1
#       Start the services but, instead of the benchmark, run the arguments
#       as one shell command line (`bash -c "$*"`), so single-quoted variable
#       references expand in the child, where the URLs are set:
#         STOCKADE_PEER_SERVICES_ONLY=1 bash benches/peer/run.sh \
#           'psql "$STOCKADE_PEER_PG_URL" -c "show synchronous_commit"'
#
# Exported to the benchmark (or command):
#   STOCKADE_PEER_PG_URL=postgres://postgres@127.0.0.1:<port>/peer
#   STOCKADE_PEER_REDIS_URL=redis://127.0.0.1:<port>/
# and PATH starts with the PostgreSQL bin dir, so `psql` matches the server.
#
# When run as root, PostgreSQL (which refuses to run as root) runs as the
# `postgres` system user created by the Debian package.

set -euo pipefail
umask 022
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'peer/run.sh: error: %s\n' "$*" >&2; exit 1; }

PG_PORT=${STOCKADE_PEER_PG_PORT:-55432}
REDIS_PORT=${STOCKADE_PEER_REDIS_PORT:-56379}
for port in "$PG_PORT" "$REDIS_PORT"; do
    [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "bad port: $port"
done
[[ $PG_PORT != "$REDIS_PORT" ]] || die "PostgreSQL and Redis ports are both $PG_PORT"

# --- binaries ---------------------------------------------------------------

# Highest-versioned /usr/lib/postgresql/*/bin holding the server binaries (a
# client-only install has psql there but no initdb/postgres): CI's own lookup.
source .ci/postgres.sh
find_pg_bin() { ci_pg_bin; }

if ! command -v redis-server >/dev/null || ! find_pg_bin >/dev/null; then
    log "installing postgresql and redis-server from Debian packages"
    command -v apt-get >/dev/null || die "apt-get not found; install PostgreSQL and Redis by hand"
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "not root and no sudo; install postgresql and redis-server by hand"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends postgresql redis-server
fi
PG_BIN=$(find_pg_bin) || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
command -v redis-server >/dev/null || die "redis-server not on PATH"
command -v redis-cli >/dev/null || die "redis-cli not on PATH"
PG_MAJOR=$(basename "$(dirname "$PG_BIN")")

# PostgreSQL refuses to run as root: use the package's system user then.
if ((EUID == 0)); then
    PG_USER=postgres
    id -u "$PG_USER" >/dev/null 2>&1 || die "running as root but there is no '$PG_USER' system user"
else
    PG_USER=$(id -un)
fi

as_pg() {
    if ((EUID != 0)); then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u "$PG_USER" -- "$@"
    else
        su "$PG_USER" -s /bin/bash -c "$(printf '%q ' "$@")"
    fi
}

# --- work dir ---------------------------------------------------------------

mkdir -p "${STOCKADE_PEER_DIR:-target/peer}"
RUN=$(cd "${STOCKADE_PEER_DIR:-target/peer}" && pwd)/run
PG_DIR=$RUN/pg
PG_DATA=$PG_DIR/data
REDIS_DIR=$RUN/redis
REDIS_PIDFILE=$REDIS_DIR/redis.pid
MARKER=$RUN/.stockade-peer

stop_pg() {
    [[ -f $PG_DATA/postmaster.pid ]] || return 0
    log "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null ||
        log "warning: pg_ctl stop failed; see $PG_DIR/postgres.log"
}

# Only ever signal the pid from our own pidfile, and only if it is a
# redis-server: never `redis-cli shutdown`, which could hit someone else's.
stop_redis() {
    [[ -f $REDIS_PIDFILE ]] || return 0
    local pid i
    pid=$(<"$REDIS_PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]] || return 0
    log "stopping Redis"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "warning: Redis did not stop in 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    set +e
    stop_redis
    stop_pg
}

# The EXIT trap runs on normal exit, on `set -e` failures, and (via these
# traps) on Ctrl-C / SIGTERM.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stop leftovers of a run that was killed before its trap could run, then wipe.
if [[ -e $RUN ]]; then
    [[ -e $MARKER || -z $(ls -A "$RUN") ]] ||
        die "$RUN exists but was not created by this script; refusing to delete it"
    cleanup
    rm -rf "$RUN"
fi
mkdir -p "$PG_DIR" "$REDIS_DIR"
touch "$MARKER"

# A Unix socket path is limited to 107 bytes.
((${#PG_DIR} + 20 < 107)) || die "work dir path too long for a Unix socket: $PG_DIR (set STOCKADE_PEER_DIR)"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_in_use "$PG_PORT" &&
    die "port $PG_PORT on 127.0.0.1 is already in use (set STOCKADE_PEER_PG_PORT)"
port_in_use "$REDIS_PORT" &&
    die "port $REDIS_PORT on 127.0.0.1 is already in use (set STOCKADE_PEER_REDIS_PORT)"

# --- PostgreSQL -------------------------------------------------------------

if ((EUID == 0)); then
    chown -R "$PG_USER:" "$PG_DIR"
    as_pg test -w "$PG_DIR" ||
        die "user $PG_USER cannot write $PG_DIR (a parent dir not traversable?); set STOCKADE_PEER_DIR to e.g. /tmp/stockade-peer"
fi

log "starting PostgreSQL $PG_MAJOR on 127.0.0.1:$PG_PORT (data in $PG_DATA)"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
    { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed; see $PG_DIR/initdb.log"; }

# Appended last, so these override initdb's defaults.
cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- stockade peer benchmark ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 1500
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
EOF

as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 30 >/dev/null ||
    { tail -n 20 "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start; see $PG_DIR/postgres.log"; }

ready=
for ((i = 0; i < 60; i++)); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; then
        ready=1
        break
    fi
    sleep 0.5
done
[[ -n $ready ]] || die "PostgreSQL not accepting connections on 127.0.0.1:$PG_PORT after 30 s; see $PG_DIR/postgres.log"

"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
    -c 'CREATE DATABASE peer' || die "could not create database 'peer'"

# --- Redis ------------------------------------------------------------------

log "starting Redis on 127.0.0.1:$REDIS_PORT (data in $REDIS_DIR)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --appendonly yes --appendfsync always --save '' \
    --dir "$REDIS_DIR" --daemonize yes \
    --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_DIR/redis.log" ||
    die "redis-server failed; see $REDIS_DIR/redis.log"

# With --daemonize the command returns before the port is bound, so wait for
# a PONG and the pidfile; give up early if the server aborted (e.g. bind).
ready=
for ((i = 0; i < 60; i++)); do
    if [[ -f $REDIS_PIDFILE && $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
        ready=1
        break
    fi
    grep -q -e 'aborting' -e 'Fatal' "$REDIS_DIR/redis.log" 2>/dev/null && break
    sleep 0.5
done
if [[ -z $ready ]]; then
    tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
    die "Redis not answering PING on 127.0.0.1:$REDIS_PORT; see $REDIS_DIR/redis.log"
fi
[[ $(redis-cli --raw -h 127.0.0.1 -p "$REDIS_PORT" config get dir | sed -n 2p) == "$REDIS_DIR" ]] ||
    die "the Redis on 127.0.0.1:$REDIS_PORT is not the one just started"

# --- run ----------------------------------------------------------------------

export STOCKADE_PEER_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/peer"
export STOCKADE_PEER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
export PATH="$PG_BIN:$PATH"

pg_version=$("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')
redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
log "peers: PostgreSQL $pg_version, Redis $redis_version"

if [[ ${STOCKADE_PEER_SERVICES_ONLY:-} == 1 ]]; then
    echo "STOCKADE_PEER_PG_URL=$STOCKADE_PEER_PG_URL"
    echo "STOCKADE_PEER_REDIS_URL=$STOCKADE_PEER_REDIS_URL"
    bash -c "$*"
else
    cargo bench -p stockade-benches --bench peer -- "$@"
fi

# Sourced by .ci/run: a throwaway PostgreSQL on loopback for the live PostgreSQL suites
# and the three-node test, stopped when the run exits however it ends.
#
# Exports STOCKADE_PG_URL=postgres://postgres@127.0.0.1:<port>/stockade. The server is
# durable as in production (fsync, synchronous_commit on); its data lives under /tmp so
# that the `postgres` system user can reach it when CI runs as root. Every step is bounded
# in time: start and readiness 60 s, stop 30 s.

ci_pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

ci_pg_start() {
    local bin port dir user
    bin=$(ci_pg_bin) || { echo "no PostgreSQL server binaries" >&2; return 1; }
    port=${STOCKADE_CI_PG_PORT:-55433}
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port on 127.0.0.1 is in use (set STOCKADE_CI_PG_PORT)" >&2
        return 1
    fi
    dir=$(mktemp -d /tmp/stockade-ci-pg.XXXXXX)
    chmod 755 "$dir"
    # PostgreSQL refuses to run as root: use the package's system user then.
    if ((EUID == 0)); then
        user=postgres
        chown "$user:" "$dir"
        CI_PG_AS=(runuser -u "$user" --)
    else
        CI_PG_AS=()
    fi
    CI_PG_DATA=$dir/data
    CI_PG_CTL=$bin/pg_ctl
    "${CI_PG_AS[@]}" "$bin/initdb" -D "$CI_PG_DATA" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { tail -n 20 "$dir/initdb.log" >&2; return 1; }
    cat >>"$CI_PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 400
shared_buffers = 128MB
fsync = on
synchronous_commit = on
logging_collector = off
CONF
    trap ci_pg_stop EXIT
    timeout 90 "${CI_PG_AS[@]}" "$CI_PG_CTL" start -D "$CI_PG_DATA" -l "$dir/postgres.log" -w -t 60 \
        >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; return 1; }
    timeout 30 "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres \
        -d postgres -c 'CREATE DATABASE stockade' || return 1
    export STOCKADE_PG_URL="postgres://postgres@127.0.0.1:$port/stockade"
    export PATH="$bin:$PATH"
    echo "== $("$bin/postgres" --version) at $STOCKADE_PG_URL"
}

ci_pg_stop() {
    [[ -n ${CI_PG_DATA:-} && -f $CI_PG_DATA/postmaster.pid ]] || return 0
    timeout 40 "${CI_PG_AS[@]}" "$CI_PG_CTL" stop -D "$CI_PG_DATA" -m fast -w -t 30 \
        >/dev/null 2>&1 || true
    rm -rf "$(dirname "$CI_PG_DATA")"
}

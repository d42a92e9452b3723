#!/usr/bin/env bash
# Stockade against Redis and PostgreSQL as their own standard clients see them:
# `wrk` against `stockade serve`, `redis-benchmark` against Redis, `pgbench` against
# PostgreSQL, side by side in one run, on one hot SKU, on loopback.
#
#   bash benches/wire/run.sh                      # CONNS="1 64 256 512 1000" SECS=10
#   CONNS="64 1000" SECS=5 bash benches/wire/run.sh
#
# benches/peer/run.sh installs and starts the private PostgreSQL and Redis (durable:
# fsync + synchronous_commit on; appendonly + appendfsync always) and stops them after;
# benches/wire/compare.sh runs the clients. Writes target/peer/wire.md, wire.json and
# wire.svg. Environment: CONNS, SECS, STOCKADE_BIN (default: this checkout's release
# binary, built or brought up to date first), STOCKADE_PEER_DIR and the ports of
# benches/peer/run.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exec env STOCKADE_PEER_SERVICES_ONLY=1 bash benches/peer/run.sh 'bash benches/wire/compare.sh'

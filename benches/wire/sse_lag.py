"""A storefront's view of freshness during a wire phase: reads GET /api/events and, for
every notice, how long after its commit it arrived (receive time minus `committed_at`, both
from this machine's clock, to the millisecond). Runs until SIGTERM, then writes
"count p50_ms p99_ms max_ms resyncs" to OUT.

    python3 sse_lag.py HOST:PORT TOKEN OUT

It reads the stream as a browser would, without parsing each JSON body (a Python client
that did would take a core's share of the CPU from the server it measures): only the
`committed_at` field is cut out of each data line.
"""
import datetime
import http.client
import signal
import sys
import time

host, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
lags, resyncs = [], 0


def finish(*_):
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else 0
    with open(out, "w") as f:
        f.write(f"{len(lags)} {pick(0.5)} {pick(0.99)} {lags[-1] if lags else 0} {resyncs}\n")
    sys.exit(0)


signal.signal(signal.SIGTERM, finish)
conn = http.client.HTTPConnection(host, timeout=None)
conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {token}"})
response = conn.getresponse()
if response.status != 200:
    sys.exit(f"sse_lag: GET /api/events answered {response.status}")
marker = b'"committed_at":"'
epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
while True:
    line = response.fp.readline()
    if not line:
        finish()
    if line.startswith(b"event: resync"):
        resyncs += 1
        continue
    at = line.find(marker)
    if at < 0:
        continue
    now_ms = time.time() * 1000
    stamp = line[at + len(marker):at + len(marker) + 24].decode()
    committed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    lags.append(max(0, round(now_ms - (committed - epoch).total_seconds() * 1000)))

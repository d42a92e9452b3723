#!/usr/bin/env python3
"""Probes a release `stockade serve` on loopback the way the security review did, as an
attacker and as a careless client, and prints what holds as a Markdown table.

    cargo build --release -p stockade-cli
    python3 benches/security/probe.py [path/to/stockade]

Standard library only. Every connection goes to 127.0.0.1; every probe is bounded in
count and time. The server runs on a fresh data directory and is stopped at the end.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ADMIN = "probe-admin-token-000001"
WEB = "probe-web-token-00000001"
BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/stockade"


def start(data_dir, log):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("STOCKADE_"):
            del env[k]
    env.update(
        STOCKADE_ADMIN_TOKEN=ADMIN,
        STOCKADE_CHANNEL_TOKENS=f"web:{WEB}",
        STOCKADE_WORKERS="2",
    )
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    for line in proc.stdout:
        if "http://" in line:
            url = line[line.index("http://") :].split()[0]
            port = int(url.rsplit(":", 1)[1].strip("/"))
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, port
    raise SystemExit("the server did not start")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(port, method, path, body=None, headers=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode("utf-8", "replace")
    conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), text


def raw(port, data, wait=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    return out.decode("utf-8", "replace")


def ws_open(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        (
            f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    return s


def ws_huge_frame(port, declared, send_up_to):
    """Declares a `declared`-byte text frame and sends payload until the server closes;
    returns the bytes it took."""
    s = ws_open(port)
    s.sendall(bytes([0x81, 0xFF]) + declared.to_bytes(8, "big") + b"\x07\x07\x07\x07")
    sent, chunk = 0, b"x" * (1 << 20)
    try:
        while sent < send_up_to:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    s.close()
    return sent


def initialize(port, token=None):
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    return request(port, "POST", "/mcp", body, headers, token)[0]


def main():
    rows = []

    def row(probe, how, now):
        rows.append((probe, how, now))
        print(f"  {probe}: {now}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two, open(
        os.path.join(one, "..", f"probe-{os.getpid()}.log"), "w"
    ) as log:
        proc, port = start(one, log)
        request(port, "POST", "/api/skus", {"sku": "PROBE", "pool": "physical", "on_hand": 100}, token=ADMIN)
        request(port, "POST", "/api/skus", {"sku": "KEYS", "pool": "digital"}, token=ADMIN)

        # Reservation ids: two installations, the same channel and key.
        keyed = {"items": [{"sku": "PROBE", "qty": 1}]}
        a = json.loads(request(port, "POST", "/api/reservations", keyed, {"Idempotency-Key": "cart-1"}, WEB)[2])
        proc2, port2 = start(two, log)
        request(port2, "POST", "/api/skus", {"sku": "PROBE", "pool": "physical", "on_hand": 100}, token=ADMIN)
        b = json.loads(request(port2, "POST", "/api/reservations", keyed, {"Idempotency-Key": "cart-1"}, WEB)[2])
        proc2.terminate()
        proc2.wait()
        row(
            "predictable reservation ids",
            "two fresh servers, `web` + `Idempotency-Key: cart-1`",
            "different ids" if a["reservation_id"] != b["reservation_id"] else "SAME id",
        )

        # WebSocket frames.
        before = rss_kib(proc.pid)
        took = ws_huge_frame(port, 512 << 20, 64 << 20)
        time.sleep(0.5)
        row(
            "unbounded WebSocket frame",
            "a 512 MiB text frame declared on `/api/ws`, up to 64 MiB sent",
            f"closed after {took >> 20} MiB sent by the client; RSS {before // 1024} → {rss_kib(proc.pid) // 1024} MiB",
        )
        before = rss_kib(proc.pid)
        threads = [threading.Thread(target=ws_huge_frame, args=(port, 64 << 20, 64 << 20)) for _ in range(8)]
        peak = before
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.02)
        row(
            "eight parallel 64 MiB frames",
            "8 connections at once",
            f"RSS {before // 1024} MiB, peak {peak // 1024} MiB",
        )

        # Anonymous MCP sessions.
        statuses = [initialize(port) for _ in range(1000)]
        holder = initialize(port, WEB)
        row(
            "anonymous MCP sessions lock out token holders",
            "1000 anonymous `initialize`, then one with a channel token",
            f"{statuses.count(200)} anonymous opened, {statuses.count(503)} refused (503); token holder: {holder}",
        )

        # Slow bodies.
        trickles = []
        for _ in range(25):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(
                (
                    f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                    "Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{"
                ).encode()
            )
            trickles.append(s)
        time.sleep(0.5)
        during = (
            request(port, "GET", "/healthz")[0],
            request(port, "GET", "/api/inventory/products/PROBE", token=WEB)[0],
            request(port, "POST", "/api/reservations", {"items": [{"sku": "PROBE", "qty": 1}]}, token=WEB)[0],
        )
        started = time.time()
        answers = []
        for s in trickles:
            try:
                answers.append(s.recv(64)[9:12].decode())
            except OSError:
                answers.append("none")
            s.close()
        row(
            "slow anonymous bodies starve everyone",
            "25 connections send a 1000-byte `POST /mcp` body, one byte, then nothing",
            f"meanwhile /healthz {during[0]}, read {during[1]}, reserve {during[2]}; trickles answered "
            f"{answers.count('503')}×503 at once, {answers.count('408')}×408 within {time.time() - started:.1f} s",
        )

        # Quantities past the read model.
        big = request(port, "POST", "/api/reservations", {"items": [{"sku": "KEYS", "qty": 2**63}]}, token=WEB)
        biggest = request(port, "POST", "/api/reservations", {"items": [{"sku": "KEYS", "qty": 2**63 - 1}]}, token=WEB)
        more = request(port, "POST", "/api/reservations", {"items": [{"sku": "KEYS", "qty": 8}]}, token=WEB)
        onhand = request(port, "POST", "/api/skus", {"sku": "HUGE", "pool": "physical", "on_hand": 2**64 - 1}, token=ADMIN)
        row(
            "quantities past what the read model stores",
            "reserve 2^63 and 2^63−1 then 8 more on an unlimited SKU; register on_hand 2^64−1",
            f"2^63: {big[0]} {json.loads(big[2]).get('error')}; 2^63−1: {biggest[0]}; +8: {more[0]} "
            f"{json.loads(more[2]).get('error')}; on_hand: {onhand[0]} {json.loads(onhand[2]).get('error')}",
        )

        # Headers, hosts, echoes.
        dup = raw(
            port,
            (
                f"GET /api/inventory/products/PROBE HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                f"Authorization: Bearer {WEB}\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
            ).encode(),
        )
        row("a doubled Authorization header", "two `Authorization` values", dup[9:12])
        hosts = [
            raw(port, f"GET {p} HTTP/1.1\r\nHost: evil.com@127.0.0.1\r\nConnection: close\r\n\r\n".encode())[9:12]
            for p in ("/mcp", "/healthz", "/api/inventory/products")
        ]
        row("`Host: evil.com@127.0.0.1`", "on `/mcp`, `/healthz`, `/api/inventory/products`", ", ".join(hosts))
        status, _, text = request(port, "GET", "/" + "p" * 8000)
        row("an 8 KB path", "`GET /ppp…` (8001 bytes)", f"{status}, a {len(text)}-byte body")
        status, headers, _ = request(port, "POST", "/api/skus", {"sku": "X"})
        row("401 without a scheme", "`POST /api/skus` without a token", f"{status} `WWW-Authenticate: {headers.get('www-authenticate')}`")
        status, headers, _ = request(port, "PUT", "/api/skus", token=ADMIN)
        row("405 without Allow", "`PUT /api/skus`", f"{status} `Allow: {headers.get('allow')}`")
        status, headers, _ = request(port, "GET", "/")
        row(
            "dashboard framing and scripts",
            "`GET /`",
            f"`X-Frame-Options: {headers.get('x-frame-options')}`, CSP "
            f"{'with' if 'frame-ancestors' in headers.get('content-security-policy', '') else 'WITHOUT'} frame-ancestors and hashed script",
        )
        for n in range(100):
            body = ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": 7}, "{not json", "[]")[n % 3]
            request(port, "POST", "/mcp", body, {"Accept": "application/json, text/event-stream"})
        for _ in range(30):
            ws_huge_frame(port, 1 << 30, 1 << 20)
        proc.terminate()
        proc.wait()
        log.flush()
        with open(log.name) as f:
            lines = re.sub(r"\x1b\[[0-9;]*m", "", f.read()).splitlines()
        row(
            "malformed requests fill the log",
            "100 malformed MCP calls and 30 oversized WebSocket frames, after the probes above",
            f"{sum(' ERROR ' in l for l in lines)} ERROR and {sum(' WARN ' in l for l in lines)} WARN lines in the whole run",
        )
        modes = ", ".join(
            f"{name} {oct(os.stat(os.path.join(one, name)).st_mode & 0o777)}"
            for name in ("stockade.db", "stockade.secret", "tokens.toml")
            if os.path.exists(os.path.join(one, name))
        )
        row("world-readable data", "file modes in a new data directory", modes)
        os.remove(log.name)

    print("| probe | how | now |")
    print("|---|---|---|")
    for probe, how, now in rows:
        print(f"| {probe} | {how} | {now} |")


if __name__ == "__main__":
    main()

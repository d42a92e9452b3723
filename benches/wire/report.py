"""Turns benches/wire/compare.sh's rows into target/peer/wire.md, wire.json and wire.svg.

Rows (tab-separated): system, mode, connections, acknowledged, seconds, p50 us, p99 us,
max us, failures, RSS KiB (PSS summed over processes for PostgreSQL), p99.9 us, server
CPU us per request, client CPU us per request, and for Stockade the server's CPU us per
request by thread name ("name=us;...") and what an SSE reader saw through the phase
("notices p50_ms p99_ms max_ms resyncs", from sse_lag.py). Stockade's "floor" rows are
GET /healthz: they go to the CPU tables only.
"""
import json
import sys

rows_path, out, when, redis_version, pg_version, held = sys.argv[1:7]
NAMES = {
    ("stockade", "plain"): "Stockade, wrk",
    ("stockade", "keyed"): "Stockade, wrk, Idempotency-Key",
    ("redis", "lua"): f"Redis {redis_version} Lua, redis-benchmark",
    ("redis", "keyed"): f"Redis {redis_version} Lua, keyed, redis-benchmark",
    ("postgres", "update"): f"PostgreSQL {pg_version} conditional UPDATE, pgbench",
    ("stockade", "floor"): "Stockade, wrk, GET /healthz (no work: the HTTP floor)",
}
# Short names for the chart's legend.
SHORT = {
    ("stockade", "plain"): "Stockade",
    ("stockade", "keyed"): "Stockade, keyed",
    ("redis", "lua"): "Redis Lua",
    ("redis", "keyed"): "Redis Lua, keyed",
    ("postgres", "update"): "PostgreSQL UPDATE",
}
rows = []
for line in open(rows_path):
    f = line.rstrip("\n").split("\t")
    count, secs = int(f[3]), float(f[4])
    rows.append({
        "system": f[0], "mode": f[1], "connections": int(f[2]),
        "name": NAMES[(f[0], f[1])],
        "acknowledged": count, "seconds": secs,
        "per_second": count / secs if secs else 0.0,
        "p50_ms": int(f[5]) / 1000, "p99_ms": int(f[6]) / 1000,
        "p999_ms": int(f[10]) / 1000 if len(f) > 10 and f[10] else None,
        "max_ms": int(f[7]) / 1000, "failures": int(f[8]), "rss_mib": int(f[9]) / 1024,
        "server_cpu_us": float(f[11]) if len(f) > 11 and f[11] else None,
        "client_cpu_us": float(f[12]) if len(f) > 12 and f[12] else None,
        "threads_us": {k: float(v) for k, v in
                       (kv.split("=", 1) for kv in f[13].split(";") if "=" in kv)}
                      if len(f) > 13 and f[13] else {},
        "sse": dict(zip(("notices", "p50_ms", "p99_ms", "max_ms", "resyncs"),
                        map(int, f[14].split()))) if len(f) > 14 and f[14].strip() else None,
    })
floors = [r for r in rows if r["mode"] == "floor"]
rows = [r for r in rows if r["mode"] != "floor"]
# Keyed rows are compared with keyed Redis, the others with plain Redis.
redis = {(r["connections"], r["mode"] == "keyed"): r["per_second"]
         for r in rows if r["system"] == "redis"}
for r in rows:
    base = redis.get((r["connections"], r["mode"] == "keyed"))
    r["vs_redis"] = r["per_second"] / base if base else None

md = [
    f"Run {when}: one hot SKU on loopback, every acknowledged reservation durable "
    f"(Stockade: SQLite `synchronous=FULL`; Redis `appendfsync always`; PostgreSQL "
    f"`fsync`, `synchronous_commit` on). Clients and servers share the machine's cores. "
    f"Afterwards Stockade held {held} units: every 201 its clients counted, plus requests "
    f"`wrk` cut off at its deadlines (at most one per connection per phase).",
    "",
    "\"vs Redis\" compares a keyed row with keyed Redis, the others with plain Redis.",
    "",
    "| connections | system and client | reservations/s | vs Redis | p50 ms | p99 ms | p99.9 ms | max ms | errors | server RSS MiB |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for r in rows:
    vs = f"{r['vs_redis']:.2f}×" if r["vs_redis"] is not None else "—"
    p999 = f"{r['p999_ms']:.2f}" if r["p999_ms"] is not None else "—"
    md.append(
        f"| {r['connections']} | {r['name']} | {r['per_second']:,.0f} | {vs} | "
        f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {p999} | {r['max_ms']:.1f} | "
        f"{r['failures']} | {r['rss_mib']:.0f} |"
    )

# Where the cores went: the server's and the client's CPU per request, measured from
# /proc and the shell's `time` around each phase. On two shared cores, throughput is
# bounded by 2 s / (server + client CPU per request) once the cores are busy.
cpu = lambda v: f"{v:.1f}" if v is not None else "—"
md += [
    "",
    "CPU per request, from the processes' user + system time over each phase (servers) "
    "and `time` around each client. With both cores busy, requests/s cannot exceed "
    "2 s / (server + client CPU per request).",
    "",
    "| connections | system and client | requests/s | server CPU µs | client CPU µs |",
    "|---:|---|---:|---:|---:|",
]
for r in sorted(rows + floors, key=lambda r: r["connections"]):
    md.append(
        f"| {r['connections']} | {r['name']} | {r['per_second']:,.0f} | "
        f"{cpu(r['server_cpu_us'])} | {cpu(r['client_cpu_us'])} |"
    )

# Stockade's server CPU by what does it, from the threads' names (as the kernel shows
# them: cut to 15 characters).
PARTS = [
    ("HTTP workers", ("actix-rt|system", "actix-server ac")),
    ("SKU actors", ("stockade-skus",)),
    ("log writer and checkpointer", ("stockade-sqlite",)),
    ("projector (main thread)", ("stockade",)),
    ("blocking pool: read models, log reads", ("tokio-rt-worker",)),
    ("idempotency keys", ("stockade-keys",)),
]
known = {n for _, names in PARTS for n in names}
md += [
    "",
    "Stockade's server CPU per request by thread, µs:",
    "",
    "| connections | request | " + " | ".join(p for p, _ in PARTS) + " | other |",
    "|---:|---|" + "---:|" * (len(PARTS) + 1),
]
for r in sorted((r for r in rows + floors if r["threads_us"]), key=lambda r: r["connections"]):
    t = r["threads_us"]
    cells = [sum(t.get(n, 0.0) for n in names) for _, names in PARTS]
    cells.append(sum(v for n, v in t.items() if n not in known))
    what = {"plain": "reserve", "keyed": "reserve, keyed", "floor": "GET /healthz"}[r["mode"]]
    md.append(f"| {r['connections']} | {what} | " + " | ".join(f"{v:.1f}" for v in cells) + " |")

# Freshness under the load: a storefront's SSE stream open through each Stockade phase.
md += [
    "",
    "Commit → SSE notice during each Stockade phase, as one storefront reading "
    "`GET /api/events` saw it (its clock minus `committed_at`, 1 ms resolution):",
    "",
    "| connections | request | notices read | p50 ms | p99 ms | max ms | resyncs |",
    "|---:|---|---:|---:|---:|---:|---:|",
]
for r in rows:
    if r["system"] == "stockade" and r.get("sse"):
        e = r["sse"]
        what = "reserve, keyed" if r["mode"] == "keyed" else "reserve"
        md.append(f"| {r['connections']} | {what} | {e['notices']:,} | {e['p50_ms']} | "
                  f"{e['p99_ms']} | {e['max_ms']} | {e['resyncs']} |")
open(f"{out}/wire.md", "w").write("\n".join(md) + "\n")
json.dump({"when": when, "rows": rows, "floor": floors},
          open(f"{out}/wire.json", "w"), indent=2)

# A line chart: reservations/s against connections, one line per system.
conns = sorted({r["connections"] for r in rows})
series = {}
for r in rows:
    series.setdefault(SHORT[(r["system"], r["mode"])], {})[r["connections"]] = r["per_second"]
W, H, L, T, B, R = 760, 420, 70, 30, 60, 250
top = max(r["per_second"] for r in rows) * 1.1 or 1
x = lambda i: L + (W - L - R) * (i / max(1, len(conns) - 1))
y = lambda v: T + (H - T - B) * (1 - v / top)
colours = ["#1f77b4", "#6baed6", "#d62728", "#ff9896", "#2ca02c"]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
       f'font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{L}" y="18" font-size="14">Durable reservations/s on one hot SKU, '
       f'standard clients on loopback</text>']
for k in range(6):
    v = top * k / 5
    svg.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v / 1000:.0f}k</text>')
for i, c in enumerate(conns):
    svg.append(f'<text x="{x(i):.1f}" y="{H - B + 18}" text-anchor="middle">{c}</text>')
svg.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 20}" text-anchor="middle">connections</text>')
for n, (name, points) in enumerate(series.items()):
    colour = colours[n % len(colours)]
    pts = " ".join(f"{x(conns.index(c)):.1f},{y(v):.1f}" for c, v in sorted(points.items()))
    svg.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for c, v in points.items():
        svg.append(f'<circle cx="{x(conns.index(c)):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
    svg.append(f'<rect x="{W - R + 15}" y="{T + 20 * n}" width="12" height="12" fill="{colour}"/>')
    svg.append(f'<text x="{W - R + 32}" y="{T + 20 * n + 10}">{name}</text>')
svg.append("</svg>")
open(f"{out}/wire.svg", "w").write("\n".join(svg) + "\n")

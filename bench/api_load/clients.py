"""The load: many concurrent HTTP clients in one process (asyncio + httpx), apart from the server.

    python -m bench.api_load.clients PARAMS_JSON  -> one JSON line of results on stdout

Each client runs a loop for ``seconds``: it picks the next request of its mix, sends it, waits
for the answer (closed loop, no think time unless ``think_s``), and records the latency and the
outcome. Writers (every ``writer_every``-th client) POST one new data point per turn with a key
of their own and remember whether it was acknowledged (a 200), refused (an answer that is not a
2xx) or unknown (a transport error or timeout: the client cannot tell).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import httpx


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mix(p: dict[str, Any], client: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, path, params) requests a reader cycles through: list, series by day over 90 days,
    series by week over a year, run routes."""
    today = datetime.fromisoformat(p["today"]).date()
    source = p["sources"][client % len(p["sources"])]
    series = {"metric": "visits", "sourceId": source, "to": today.isoformat()}
    day = {**series, "from": (today - timedelta(days=89)).isoformat(), "granularity": "day"}
    week = {**series, "from": (today - timedelta(days=364)).isoformat(), "granularity": "week"}
    return [
        ("list", "/api/data-sources", {}),
        ("series_day", "/api/data-points", day),
        ("series_week", "/api/data-points", week),
        ("runs", f"/api/data-sources/{source}/runs", {}),
        ("run", f"/api/runs/{p['run_id']}", {}),
    ]


async def stagger(p: dict[str, Any], client: int) -> None:
    """Paced clients (``think_s``) start spread over one think time, not all at once."""
    if p["think_s"]:
        await asyncio.sleep(p["think_s"] * client / p["clients"])


SLOW_S = 0.1  # answers slower than this are counted by when in the load they came
SLICE_S = 10


def record(stats: dict[str, Any], kind: str, started: float) -> None:
    took = time.perf_counter() - started
    stats["latency"][kind].append(took)
    if took > SLOW_S:
        at = int((started - stats["started"]) // SLICE_S) * SLICE_S
        stats["slow"][f"{at}-{at + SLICE_S} s {kind}"] += 1


async def reader(
    http: httpx.AsyncClient, p: dict[str, Any], client: int, stats: dict[str, Any]
) -> None:
    requests = mix(p, client)
    turn = client  # clients start at different places of the mix
    await stagger(p, client)
    while time.monotonic() < stats["until"]:
        kind, path, params = requests[turn % len(requests)]
        turn += 1
        started = time.perf_counter()
        try:
            response = await http.get(path, params=params)
            ok = response.status_code == 200
            outcome = "ok" if ok else str(response.status_code)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        record(stats, kind, started)
        stats["outcomes"][kind][outcome] += 1
        if p["think_s"]:
            await asyncio.sleep(p["think_s"])


async def writer(
    http: httpx.AsyncClient, p: dict[str, Any], client: int, stats: dict[str, Any]
) -> None:
    """One new point per turn on the round's write source: one hour after the other, with the
    client's own ``writer`` dimension."""
    base = datetime.fromisoformat(p["write_base"])
    n = 0
    await stagger(p, client)
    while time.monotonic() < stats["until"]:
        start = base + timedelta(hours=n)
        n += 1
        point = {
            "sourceId": p["write_source"],
            "metric": "visits",
            "value": float(n),
            "periodStart": start.isoformat(),
            "periodEnd": (start + timedelta(hours=1)).isoformat(),
            "granularity": "hour",
            "dimensions": {"writer": str(client)},
        }
        key = f"{client}|{start.isoformat()}"
        started = time.perf_counter()
        try:
            response = await http.post("/api/data-points", json={"dataPoints": [point]})
            if response.status_code == 200:
                stats["acknowledged"].append(key)
                outcome = "ok"
            else:
                stats["refused"].append(key)
                outcome = str(response.status_code)
        except httpx.HTTPError as exc:
            stats["unknown"].append(key)
            outcome = type(exc).__name__
        record(stats, "write", started)
        stats["outcomes"]["write"][outcome] += 1
        if p["think_s"]:
            await asyncio.sleep(p["think_s"])


async def run(p: dict[str, Any]) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "latency": defaultdict(list),
        "outcomes": defaultdict(lambda: defaultdict(int)),
        "acknowledged": [],
        "refused": [],
        "unknown": [],
        "slow": defaultdict(int),
    }
    limits = httpx.Limits(max_connections=p["clients"] + 10, max_keepalive_connections=None)
    headers = {"Authorization": f"Bearer {p['token']}"}
    timeout = httpx.Timeout(p["timeout_s"])
    async with httpx.AsyncClient(
        base_url=p["base_url"], headers=headers, limits=limits, timeout=timeout
    ) as http:
        stats["until"] = time.monotonic() + p["seconds"]
        started = stats["started"] = time.perf_counter()
        stats["wall_start"] = time.time()
        tasks = []
        for client in range(p["clients"]):
            is_writer = p["writer_every"] and client % p["writer_every"] == 0
            role = writer if is_writer else reader
            tasks.append(asyncio.create_task(role(http, p, client, stats)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    routes = {}
    for kind, values in stats["latency"].items():
        outcomes = dict(stats["outcomes"][kind])
        routes[kind] = {
            "count": len(values),
            "p50_ms": percentile(values, 0.50) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "max_ms": max(values) * 1000,
            "errors": sum(v for k, v in outcomes.items() if k != "ok"),
            "outcomes": outcomes,
        }
    return {
        "seconds": elapsed,
        "requests": sum(r["count"] for r in routes.values()),
        "routes": routes,
        "acknowledged": stats["acknowledged"],
        "refused": stats["refused"],
        "unknown": stats["unknown"],
        "slow_by_slice": dict(sorted(stats["slow"].items())),
        "wall_start": stats["wall_start"],
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.loads(sys.argv[1])))))

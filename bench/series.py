"""Series latency at 1,000,000 stored points, in process: the first (uncached) read and the
cached one, per backend.

    .venv/bin/python -m bench.series [--points 1000000] [--backends sqlite,postgres]
                                     [--repeat 30] [--small]

A fresh migrated database per backend is seeded as ``bench.api_load`` seeds it (``example``
sources of 400 days x 2 metrics x 5 pages through the one upsert path, ten sources a user).
Then, for one source and for all ten sources of the user, each query of the API's series route
— ``visits`` by day over 90 days, by ISO week over a year, by month over a year — is read
``--repeat`` times through ``SeriesQuery`` in a fresh session (what the route does after
authentication): **cold** with a fresh ``SeriesCache`` each time (the read a cache miss pays:
the fingerprint and a pass over the stored points), **cached** through one ``SeriesCache``
(the fingerprint query only). Printed as Markdown: p50, p99 and max in ms, and the points read.
This is one client, no concurrency: ``bench.api_load`` measures the route under load.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.api_load.__main__ import seed
from bench.sync_throughput import Databases
from inflow.api.services.series import Granularity

QUERIES: tuple[tuple[str, Granularity, int], ...] = (  # (name, granularity, days back)
    ("day, 90 days", "day", 89),
    ("week, a year", "week", 364),
    ("month, a year", "month", 364),
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(db_url: str, source_ids: list[str], repeat: int) -> list[dict[str, Any]]:
    from inflow.api.services.series import Range, SeriesCache, SeriesQuery
    from inflow.storage.db import create_db_engine, make_session_factory
    from inflow.storage.models import DataSource

    engine = create_db_engine(db_url)
    factory = make_session_factory(engine)
    today = datetime.now(UTC).date()
    rows = []
    try:
        with factory() as session:
            types = {
                uuid.UUID(s): session.get_one(DataSource, uuid.UUID(s)).type for s in source_ids
            }
        for scope, sources in (("1 source", dict(list(types.items())[:1])), ("10 sources", types)):
            for name, granularity, back in QUERIES:
                window = Range(today - timedelta(days=back), today)
                shared = SeriesCache()
                timings: dict[str, list[float]] = {"cold": [], "cached": []}
                periods = 0
                for kind in ("cold", "cached"):
                    for _ in range(repeat):
                        cache = SeriesCache() if kind == "cold" else shared
                        started = time.perf_counter()
                        with factory() as session:
                            query = SeriesQuery(session, sources=sources, window=window)
                            periods = len(cache.series(query, "visits", granularity))
                        timings[kind].append((time.perf_counter() - started) * 1000)
                with factory() as session:
                    query = SeriesQuery(session, sources=sources, window=window)
                    read = len(query.rows("visits"))
                rows.append(
                    {
                        "scope": scope,
                        "query": name,
                        "points": read,
                        "periods": periods,
                        **{
                            f"{k}_{q}": percentile(v, p)
                            for k, v in timings.items()
                            for q, p in (("p50", 0.5), ("p99", 0.99))
                        },
                        "cold_max": max(timings["cold"]),
                    }
                )
    finally:
        engine.dispose()
    return rows


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(prog="python -m bench.series")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--small", action="store_true", help="10,000 points, 5 repeats")
    args = parser.parse_args()
    if args.small:
        args.points, args.repeat = 10_000, 5
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; {args.points:,} points, {args.repeat} reads per query"
    )
    with tempfile.TemporaryDirectory(prefix="inflow-bench-series-") as tmp:
        dbs = Databases(Path(tmp))
        try:
            for backend in args.backends.split(","):
                db_url, _ = dbs.fresh(backend)
                loader = seed(db_url, Path(tmp) / f"data-{backend}", args.points)
                print(f"\n### {backend}: {loader['stored']:,} points seeded\n")
                print(
                    "| sources | query | points read | periods | cold p50 ms | cold p99 ms "
                    "| cold max ms | cached p50 ms | cached p99 ms |\n"
                    "|---|---|---:|---:|---:|---:|---:|---:|---:|"
                )
                for r in measure(db_url, loader["sources"], args.repeat):
                    print(
                        f"| {r['scope']} | {r['query']} | {r['points']:,} | {r['periods']} "
                        f"| {r['cold_p50']:.1f} | {r['cold_p99']:.1f} | {r['cold_max']:.1f} "
                        f"| {r['cached_p50']:.1f} | {r['cached_p99']:.1f} |"
                    )
                dbs.drop(db_url)  # a no-op for SQLite (its file goes with the folder)
        finally:
            dbs.close()


if __name__ == "__main__":
    main()

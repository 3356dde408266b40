"""The series' grouped read against reading every point, A/B in one run.

    .venv/bin/python -m bench.series_ab [--backend sqlite|postgres] [--points 100000] [--reads 12]

A fresh database is seeded as ``bench.api_load`` seeds it; then one source's and ten sources'
``visits`` (day over 90 days, week over a year) are read through ``SeriesQuery``, A (the
grouped read: one row per source, stored period and breakdown) and B (the same query with the
grouped read switched off: one row per point) interleaved, each in a fresh session. Printed:
p50 of each and B/A. The two must give the same values (checked); on a busy machine the ratio,
not the milliseconds, is the result.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.api_load.__main__ import seed
from bench.sync_throughput import Databases


def main() -> None:
    from inflow.api.services.series import Range, SeriesQuery
    from inflow.storage.db import create_db_engine, make_session_factory
    from inflow.storage.models import DataSource

    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(Path(tmp))
        try:
            url, _ = dbs.fresh(args.backend)
            loader = seed(url, Path(tmp) / "data", args.points)
            factory = make_session_factory(create_db_engine(url))
            with factory() as session:
                types = {
                    uuid.UUID(s): session.get_one(DataSource, uuid.UUID(s)).type
                    for s in loader["sources"]
                }
            today = datetime.now(UTC).date()
            print("| backend | query | grouped p50 ms | per point p50 ms | ratio |")
            print("|---|---|---:|---:|---:|")
            for scope, sources in (("1 source", dict(list(types.items())[:1])), ("10", types)):
                for granularity, back in (("day", 89), ("week", 364)):
                    window = Range(today - timedelta(days=back), today)
                    timings: dict[str, list[float]] = {"grouped": [], "points": []}
                    values: dict[str, list[float | None]] = {}
                    for _ in range(args.reads):
                        for kind in timings:
                            with factory() as session:
                                query = SeriesQuery(session, sources=sources, window=window)
                                if kind == "points":
                                    query.grouped = lambda _metric: None  # type: ignore[method-assign]
                                started = time.perf_counter()
                                periods = query.series("visits", granularity)  # type: ignore[arg-type]
                                timings[kind].append((time.perf_counter() - started) * 1000)
                                values[kind] = [p.value for p in periods]
                    for a, b in zip(values["grouped"], values["points"], strict=True):
                        if a != b and abs((a or 0) - (b or 0)) > 1e-9 * max(1, abs(b or 0)):
                            raise SystemExit(f"the two reads differ: {a} != {b}")
                    grouped = statistics.median(timings["grouped"])
                    points = statistics.median(timings["points"])
                    name = f"{scope if scope != '10' else '10 sources'}, {granularity}"
                    print(
                        f"| {args.backend} | {name} | {grouped:.1f} | {points:.1f} "
                        f"| {points / grouped:.1f} |"
                    )
        finally:
            dbs.close()


if __name__ == "__main__":
    main()

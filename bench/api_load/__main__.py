"""The API under load, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.api_load [--points 1000000] [--clients 50,200] [--seconds 20]
                                       [--backends sqlite,postgres] [--small]

For each backend: a fresh migrated database is seeded with ``--points`` data points through the
one upsert path (``repo.upsert_data_points``): ``example`` sources of 400 days x 2 metrics x 5
pages (4,000 points each), ten sources per user. A real ``inflow serve`` then runs in its own
process on a loopback port, next to the provider sandbox (``python -m inflow.sandbox``) in
another. For each client count, a fresh API token (used for the first time by the load) and a
fresh ``example`` source against the sandbox are made, that source's sync is started
(``POST /api/data-sources/{id}/sync``), and a separate process (``bench.api_load.clients``) runs
that many concurrent clients for ``--seconds``: readers cycle through the list, the series (day
over 90 days, week over a year), and the run routes; one client in ten POSTs new data points.
Afterwards the sync's run is awaited and the stored points are compared with the acknowledged
ones. ``--small`` (10,000 points, 3 s per load) is the smoke test. Results print as Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.child import run_module
from bench.sync_throughput import Databases, free_port, sandbox

INFLOW = Path(sys.executable).with_name("inflow")
DAYS, PAGES, METRICS = 400, 5, ("visits", "signups")
PER_SOURCE = DAYS * PAGES * len(METRICS)
SOURCES_PER_USER = 10
SECRET = "bench-api-load-secret-key-0123456789"  # noqa: S105 (a throwaway database's key)
WRITE_BASE = datetime(2001, 1, 1, tzinfo=UTC)  # writers' points: far from the seeded ones


def _settings(data_dir: Path, db_url: str) -> Any:
    from inflow.settings import Settings

    return Settings(data_dir=data_dir, database_url=db_url, secret_key=SECRET)


def seed(db_url: str, data_dir: Path, points: int) -> dict[str, Any]:
    """Users, their sources and ``points`` data points; returns the load user's email and
    source ids. The points go in source by source through ``repo.upsert_data_points``."""
    from inflow.api.services import accounts
    from inflow.api.services.sources import create_source
    from inflow.connectors.records import DataPoint
    from inflow.storage import repo
    from inflow.storage.crypto import KeyRing, Vault
    from inflow.storage.db import create_db_engine, make_session_factory, session_scope

    engine = create_db_engine(db_url)
    factory = make_session_factory(engine)
    vault = Vault.from_keyring(KeyRing(_settings(data_dir, db_url)))
    today = datetime.now(UTC).date()
    first = today - timedelta(days=DAYS - 1)
    count = max(2, round(points / PER_SOURCE))
    started = time.perf_counter()
    loader: dict[str, Any] = {"sources": []}
    user: Any = None
    for s in range(count):
        with session_scope(factory) as session:
            if s % SOURCES_PER_USER == 0:
                email = f"bench-{s // SOURCES_PER_USER}@example.com"
                user = accounts.create_user(session, email=email, password=uuid.uuid4().hex)
                loader.setdefault("email", email)
            else:
                user = session.merge(user)
            source = create_source(
                session,
                owner=user,
                name=f"seeded {s}",
                type_="example",
                config={"apiKey": "unused-seeded-key", "baseUrl": "http://127.0.0.1:9/example"},
                vault=vault,
            )
            if s < SOURCES_PER_USER:
                loader["sources"].append(str(source.id))
            batch = []
            for d in range(DAYS):
                day = first + timedelta(days=d)
                begin = datetime(day.year, day.month, day.day, tzinfo=UTC)
                for k in range(PAGES):
                    for m, metric in enumerate(METRICS):
                        batch.append(
                            DataPoint(
                                metric=metric,
                                value=float(100 * m + k + d % 7),
                                period_start=begin,
                                period_end=begin + timedelta(days=1),
                                dimensions={"page": f"/p/{k}"},
                                complete=day < today,
                            )
                        )
            repo.upsert_data_points(session, source_id=source.id, points=batch)
    # A database that has settled: its planner statistics up to date, as autovacuum leaves a
    # real one (otherwise PostgreSQL's autovacuum analyses the fresh million rows during the load)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            auto.exec_driver_sql("VACUUM ANALYZE data_points")
            # and the seed's WAL written out now, not by a checkpoint during the load
            auto.exec_driver_sql("CHECKPOINT")
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    engine.dispose()
    loader["stored"] = count * PER_SOURCE
    loader["seed_s"] = time.perf_counter() - started
    return loader


@contextlib.contextmanager
def serve(db_url: str, data_dir: Path, log: Path, *, external: bool = False) -> Iterator[str]:
    """``inflow serve`` in its own process; yields its URL once /api/health answers. With
    ``external``, syncs run in an ``inflow worker`` process beside it (INFLOW_WORKER=external),
    as a team on PostgreSQL runs them, instead of in the API's interpreter."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLOW_")}
    env.update(
        INFLOW_DATABASE_URL=db_url,
        INFLOW_DATA_DIR=str(data_dir),
        INFLOW_SECRET_KEY=SECRET,
        INFLOW_ALLOW_PRIVATE_URLS="true",
        INFLOW_RATE_LIMIT_DEFAULT="100000000/minute",  # the load is one user: measure the rest
        INFLOW_LOG_LEVEL="WARNING",
        INFLOW_WORKER="external" if external else "embedded",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(INFLOW), "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
        worker = (
            subprocess.Popen([str(INFLOW), "worker"], env=env, stdout=out, stderr=out)
            if external
            else None
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"inflow serve did not start:\n{log.read_text()}") from None
                time.sleep(0.2)
        yield url
    finally:
        for child in (proc, worker):
            if child is None:
                continue
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a stalled server does not finish its requests
                child.kill()
                child.wait(timeout=30)


def fresh_token(db_url: str, email: str) -> str:
    from inflow.api.services import accounts
    from inflow.storage.db import create_db_engine, make_session_factory, session_scope

    engine = create_db_engine(db_url)
    with session_scope(make_session_factory(engine)) as session:
        user = accounts.get_user_by_email(session, email=email)
        assert user is not None  # noqa: S101 (seeded)
        _row, token = accounts.issue_token(session, user=user, name=f"load {uuid.uuid4().hex[:6]}")
    engine.dispose()
    return token


def start_sync(url: str, token: str, sandbox_url: str) -> tuple[str, str]:
    """A fresh ``example`` source against the sandbox and its sync: (source id, run id)."""
    config = httpx.get(f"{sandbox_url}/_sandbox/credentials").json()["example"]["config"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"name": f"synced {uuid.uuid4().hex[:6]}", "type": "example", "config": config}
    made = httpx.post(f"{url}/api/data-sources", json=body, headers=headers, timeout=60)
    made.raise_for_status()
    source_id = made.json()["id"]
    run = httpx.post(f"{url}/api/data-sources/{source_id}/sync", headers=headers, timeout=60)
    run.raise_for_status()
    return source_id, run.json()["runId"]


def await_run(url: str, token: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = httpx.get(
            f"{url}/api/runs/{run_id}", headers=headers, timeout=60
        ).json()
        if run.get("status") not in ("queued", "running") or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def stored_writes(db_url: str, source_id: str) -> set[str]:
    """The writers' points stored on ``source_id``, as ``writer|periodStart`` keys."""
    from sqlalchemy import select

    from inflow.storage.db import create_db_engine, make_session_factory
    from inflow.storage.models import DataPoint

    engine = create_db_engine(db_url)
    with make_session_factory(engine)() as session:
        rows = session.execute(
            select(DataPoint.dimensions, DataPoint.period_start).where(
                DataPoint.source_id == uuid.UUID(source_id), DataPoint.granularity == "hour"
            )
        )
        found = {f"{dims['writer']}|{_utc(start)}" for dims, start in rows}
    engine.dispose()
    return found


def _utc(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def load(params: dict[str, Any]) -> dict[str, Any]:
    return run_module("the load", "bench.api_load.clients", json.dumps(params))


def one_backend(backend: str, args: argparse.Namespace, dbs: Databases, tmp: Path) -> None:
    db_url, _dsn = dbs.fresh(backend)
    data_dir = tmp / f"data-{backend}"
    loader = seed(db_url, data_dir, args.points)
    print(
        f"\n### {backend}: {loader['stored']:,} points seeded in {loader['seed_s']:.0f} s "
        f"(the load's user owns {len(loader['sources'])} sources)\n"
    )
    print(
        "| clients | route | requests | p50 ms | p99 ms | max ms | errors |\n"
        "|---:|---|---:|---:|---:|---:|---|"
    )
    summaries = []
    with sandbox() as sandbox_url:
        httpx.post(
            f"{sandbox_url}/_sandbox/example/config",
            json={"volume": {"pages": args.sync_pages, "reports": 0, "dashboards": 0}},
        ).raise_for_status()
        external = args.external_worker and backend == "postgres"
        log = tmp / f"serve-{backend}.log"
        with serve(db_url, data_dir, log, external=external) as url:
            for round_, clients in enumerate(args.clients):
                write_source = loader["sources"][round_ % len(loader["sources"])]
                token = fresh_token(db_url, loader["email"])
                # the token's first use is the load itself: create the sync source with another
                setup = fresh_token(db_url, loader["email"])
                try:
                    if args.no_sync:  # the run routes then read a run of no sync
                        run_id = str(uuid.uuid4())
                    else:
                        _source, run_id = start_sync(url, setup, sandbox_url)
                except httpx.HTTPError as exc:  # a server stalled by the previous round
                    print(f"| {clients} | (no sync started: {type(exc).__name__}) | | | | | |")
                    run_id = str(uuid.uuid4())
                params = {
                    "base_url": url,
                    "token": token,
                    "clients": clients,
                    "seconds": args.seconds,
                    "think_s": args.think,
                    "timeout_s": args.timeout,
                    "writer_every": 10,
                    "sources": loader["sources"],
                    "run_id": run_id,
                    "today": datetime.now(UTC).date().isoformat(),
                    "write_base": WRITE_BASE.isoformat(),
                    "write_source": write_source,
                }
                result = load(params)
                try:
                    if args.no_sync:
                        run = {"status": "none (--no-sync)", "counts": {"created": 0}}
                    else:
                        run = await_run(url, setup, run_id)
                except (httpx.HTTPError, ValueError) as exc:
                    run = {"status": f"unknown ({type(exc).__name__})", "counts": {"created": 0}}
                stored = stored_writes(db_url, write_source)
                acknowledged = set(result["acknowledged"])
                unacknowledged = set(result["refused"]) | set(result["unknown"])
                for kind in ("list", "series_day", "series_week", "runs", "run", "write"):
                    r = result["routes"].get(kind)
                    if r is None:
                        continue
                    errors = ", ".join(f"{k}: {v}" for k, v in r["outcomes"].items() if k != "ok")
                    print(
                        f"| {clients} | {kind} | {r['count']:,} | {r['p50_ms']:.0f} | "
                        f"{r['p99_ms']:.0f} | {r['max_ms']:.0f} | {r['errors']}"
                        f"{' (' + errors + ')' if errors else ''} |"
                    )
                slices = ", ".join(f"{k}: {v}" for k, v in result["slow_by_slice"].items())
                print(f"\nanswers over 100 ms, by when in the load: {slices or 'none'}")
                if run.get("startedAt") and run.get("finishedAt"):
                    t0 = result["wall_start"]
                    began, ended = (
                        datetime.fromisoformat(run[k].replace("Z", "+00:00")).timestamp() - t0
                        for k in ("startedAt", "finishedAt")
                    )
                    print(f"the sync ran from {began:.0f} s to {ended:.0f} s of the load")
                print()
                summaries.append(
                    f"| {clients} | {result['requests'] / result['seconds']:.0f} | "
                    f"{len(acknowledged):,} | {len(acknowledged & stored):,} | "
                    f"{len(acknowledged - stored)} | {len(unacknowledged)} | "
                    f"{len(unacknowledged & stored)} | {run['status']} "
                    f"({run['counts']['created']:,} created{', ' + str(run.get('error')) if run.get('error') else ''}) |"
                )
    print(
        "\n| clients | requests/s | writes acknowledged | of them stored | lost | "
        "not acknowledged | of them stored | sync meanwhile |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    for line in summaries:
        print(line)
    dbs.drop(db_url)


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(prog="python -m bench.api_load")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--clients", default="50,200")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--think", type=float, default=0.0, help="seconds between requests")
    parser.add_argument("--timeout", type=float, default=60, help="a client's request timeout")
    parser.add_argument("--sync-pages", type=int, default=1000, help="sandbox rows per day")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-sync", action="store_true", help="no sync during the load")
    parser.add_argument("--small", action="store_true", help="10,000 points, 3 s loads")
    parser.add_argument(
        "--external-worker",
        action="store_true",
        help="PostgreSQL: syncs in an `inflow worker` process (INFLOW_WORKER=external)",
    )
    args = parser.parse_args()
    if args.small:
        args.points, args.seconds, args.sync_pages = 10_000, 3.0, 50
    args.clients = [int(c) for c in args.clients.split(",")]
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; {args.points:,} points, {args.seconds:.0f} s per load, "
        f"think {args.think} s, client timeout {args.timeout:.0f} s"
        + (", PostgreSQL syncs in an `inflow worker` process" if args.external_worker else "")
    )
    with tempfile.TemporaryDirectory(prefix="inflow-api-load-") as tmp:
        dbs = Databases(Path(tmp))
        try:
            for backend in args.backends.split(","):
                one_backend(backend, args, dbs, Path(tmp))
        finally:
            dbs.close()


if __name__ == "__main__":
    main()

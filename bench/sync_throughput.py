"""Sync throughput against its physical limits, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.sync_throughput [--sizes 100000,1000000] [--backends sqlite,postgres]

For each size N (stored data points) and backend, three measurements run back to back, each in
a fresh Python process (so each peak RSS is that process's own), against one sandbox served by
uvicorn in another process over loopback HTTP:

- ``sync``: a real ``example`` source (``create_source`` with the sandbox's credentials, its
  ``metrics`` cursor seeded so the window covers ``DAYS`` days) synced by ``enqueue_run`` +
  ``run_sync``; N = DAYS x pages x 2 (visits and signups per row).
- ``paging``: the same pages (same dates, page_size, following ``next_page_token``) with a plain
  ``httpx.AsyncClient`` and ``orjson.loads``, nothing built or stored: the network/parse limit.
- ``insert``: the same N rows into the same ``data_points`` table of a fresh migrated database,
  one plain DBAPI ``executemany`` + commit per batch: the storage limit.

Sizes below ``--single-above`` run ``--rounds`` rounds of the three, interleaved; each speed is
its kind's median round, the ratio is the median of the rounds' own ratios, memory the worst
round's. Setup (migrations, the user, the source, the seeded cursor) happens in this process,
outside every timed region and every measured process; each measured process also makes one
untimed HTTP request first (httpx loads its transport lazily). The results print as Markdown
tables; see BENCHMARKS.md for the method and a reading.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.child import run_module

DAYS = 25  # the synced window, today included
PAGE_SIZE = 5000  # the example connector's `metrics` page size
# The engine writes once EngineDeps.batch_size (5000) points are pending; a page brings
# PAGE_SIZE rows = 2 x PAGE_SIZE points, so each transaction holds one page. The insert limit
# commits transactions of that same size.
BATCH = 2 * PAGE_SIZE
PG_ADMIN_URL = os.environ.get(
    "INFLOW_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
COLUMNS = (
    "id", "source_id", "metric", "granularity", "period_start", "period_end", "timezone",
    "dimensions", "dimensions_key", "value", "unit", "weight", "complete", "created_at",
    "updated_at",
)  # fmt: skip


# ---------------------------------------------------------------- measured processes


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_peak_mb() -> float:
    """This process's peak resident set size since it started (ru_maxrss is in KiB on Linux).

    It includes the transient peak of importing (compiling) Inflow and its dependencies."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_measurement() -> float:
    """Reset the peak RSS (VmHWM) to the current RSS and return that baseline, in MB.

    Writing 5 to /proc/self/clear_refs resets VmHWM (Linux 4.0+), so ``run_peak_mb`` then
    reports the peak of the measured work alone, without the import-time peak before it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def run_peak_mb() -> float:
    """The peak RSS since ``start_measurement`` (VmHWM), in MB."""
    return _status_mb("VmHWM")


def rss_fields(baseline: float) -> dict[str, float]:
    return {
        "rss_mb": run_peak_mb(),
        "rss_start_mb": baseline,
        "rss_process_mb": process_peak_mb(),
    }


def window(today: date) -> tuple[date, date]:
    return today - timedelta(days=DAYS - 1), today


def warm_up(base_url: str, api_key: str) -> None:
    """One request through httpx before the clock starts.

    httpx loads httpcore, anyio's backend and h11 on first use; in a long-lived worker that
    happens once per process, not once per sync, so no measurement should pay for it."""
    import httpx

    async def get() -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            (await client.get("/v1/me")).raise_for_status()

    asyncio.run(get())


def one_sync(
    p: dict[str, Any], *, warm: Callable[[], None], start: Callable[[], None], tag: str
) -> tuple[Any, Any, Any]:
    """One real sync of the prepared source ``p["source_id"]`` (``enqueue_run`` + ``run_sync``
    into ``p["db_url"]``): ``warm`` runs before the clock, ``start`` starts it. Returns (the
    run's result, the session factory, the engine to dispose); a cProfile dump per sync goes to
    ``p["profile"]`` when set (slower than bare: not for figures)."""
    from inflow.http.client import HttpOptions
    from inflow.storage.crypto import Vault
    from inflow.storage.db import create_db_engine, make_session_factory, session_scope
    from inflow.storage.models import DataSource
    from inflow.sync.engine import EngineDeps, enqueue_run, run_sync

    engine = create_db_engine(p["db_url"])
    factory = make_session_factory(engine)
    deps = EngineDeps(
        factory=factory,
        vault=Vault([p["vault_key"].encode()]),
        options=HttpOptions(allow_private_urls=True),
    )
    source_id = uuid.UUID(p["source_id"])
    warm()
    start()
    with session_scope(factory) as session:
        source = session.get(DataSource, source_id)
        assert source is not None  # noqa: S101 (created by the parent)
        run_id = enqueue_run(session, source=source, trigger="manual").id
    if p.get("profile"):
        import cProfile

        with cProfile.Profile() as profile:
            result = asyncio.run(run_sync(deps, run_id))
        profile.dump_stats(Path(p["profile"]) / f"{tag}-{uuid.uuid4().hex[:8]}.prof")
    else:
        result = asyncio.run(run_sync(deps, run_id))
    return result, factory, engine


def child_sync(p: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import func, select

    from inflow.storage.models import DataPoint

    clock: dict[str, float] = {}

    def start() -> None:
        clock["rss"] = start_measurement()
        clock["at"] = time.perf_counter()

    result, factory, engine = one_sync(
        p, warm=lambda: warm_up(p["base_url"], p["api_key"]), start=start, tag="sync"
    )
    seconds = time.perf_counter() - clock["at"]
    rss = rss_fields(clock["rss"])
    source_id = uuid.UUID(p["source_id"])
    with factory() as session:
        stored = session.execute(
            select(func.count()).select_from(DataPoint).where(DataPoint.source_id == source_id)
        ).scalar_one()
    engine.dispose()
    if result.status != "succeeded":
        raise SystemExit(f"sync {result.status}: {result.error}")
    return {
        "records": stored,
        "created": result.counts.created,
        "seconds": seconds,
        **rss,
    }


def child_paging(p: dict[str, Any]) -> dict[str, Any]:
    import httpx
    import orjson

    async def read() -> int:
        params = {
            "start_date": p["start"],
            "end_date": p["end"],
            "page_size": str(p["page_size"]),
        }
        headers = {"Authorization": f"Bearer {p['api_key']}"}
        records = 0
        async with httpx.AsyncClient(base_url=p["base_url"], headers=headers) as client:
            token: str | None = None
            while True:
                query = {**params, "page_token": token} if token else params
                response = await client.get("/v1/metrics", params=query)
                response.raise_for_status()
                body = orjson.loads(response.content)
                records += 2 * len(body["rows"])
                token = body.get("next_page_token")
                if not token:
                    return records

    warm_up(p["base_url"], p["api_key"])
    rss_start = start_measurement()
    started = time.perf_counter()
    records = asyncio.run(read())
    seconds = time.perf_counter() - started
    return {"records": records, "seconds": seconds, **rss_fields(rss_start)}


def point_rows(p: dict[str, Any], *, sqlite: bool) -> Iterator[list[tuple[Any, ...]]]:
    """The N rows a sync stores, batch by batch, in each driver's native parameter types.

    For SQLite they are encoded as SQLAlchemy stores them (hex UUIDs, ISO text datetimes).
    """
    start = date.fromisoformat(p["start"])
    today = datetime.now(UTC).date()
    source = uuid.UUID(p["source_id"])
    now = datetime.now(UTC)
    batch: list[tuple[Any, ...]] = []
    for d in range(DAYS):
        day = start + timedelta(days=d)
        begin = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = begin + timedelta(days=1)
        for k in range(p["pages"]):
            path = f"/p/{k + 1:04d}"
            dims, key = json.dumps({"page": path}), "page=" + path.replace("/", "%2F")
            for metric, value in (("visits", 400.0 + k), ("signups", 12.0 + k % 7)):
                row: tuple[Any, ...] = (
                    uuid.uuid4(), source, metric, "day", begin, end, "UTC", dims, key,
                    value, None, None, day < today, now, now,
                )  # fmt: skip
                if sqlite:
                    row = (
                        row[0].hex, source.hex, metric, "day", _sqlite_dt(begin),
                        _sqlite_dt(end), "UTC", dims, key, value, None, None, int(day < today),
                        _sqlite_dt(now), _sqlite_dt(now),
                    )  # fmt: skip
                batch.append(row)
                if len(batch) == BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _sqlite_dt(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def child_insert(p: dict[str, Any]) -> dict[str, Any]:
    """One ``executemany`` and one commit per batch; building the rows is not timed."""
    import psycopg

    sql_cols = ", ".join(COLUMNS)
    records, seconds = 0, 0.0
    rss_start = start_measurement()
    if p["backend"] == "sqlite":
        conn = sqlite3.connect(p["db_path"])
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        sql = f"INSERT INTO data_points ({sql_cols}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
        for batch in point_rows(p, sqlite=True):
            started = time.perf_counter()
            conn.executemany(sql, batch)
            conn.commit()
            seconds += time.perf_counter() - started
            records += len(batch)
        conn.close()
    else:
        sql = f"INSERT INTO data_points ({sql_cols}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"  # noqa: S608
        with psycopg.connect(p["db_dsn"]) as pg:
            for batch in point_rows(p, sqlite=False):
                started = time.perf_counter()
                with pg.cursor() as cur:
                    cur.executemany(sql, batch)
                pg.commit()
                seconds += time.perf_counter() - started
                records += len(batch)
    return {"records": records, "seconds": seconds, **rss_fields(rss_start)}


CHILDREN = {"sync": child_sync, "paging": child_paging, "insert": child_insert}


def run_child(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its last stdout line is the JSON result."""
    result = run_module(kind, "bench.sync_throughput", "--child", kind, json.dumps(params))
    result["rate"] = result["records"] / result["seconds"]
    return result


# ---------------------------------------------------------------- the sandbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def sandbox(argv: Sequence[str] = ("-m", "inflow.sandbox")) -> Iterator[str]:
    """``python -m inflow.sandbox`` (or ``argv``, which takes ``--port``) in its own process;
    yields its root URL once ``/_sandbox/credentials`` answers."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *argv, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sandbox/credentials", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- databases


class Databases:
    """Fresh migrated databases: copies of a migrated SQLite file, or PostgreSQL databases
    created from a migrated template (all dropped at the end)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.template: Path | None = None
        self.pg_template: str | None = None
        self.pg_created: list[str] = []

    def fresh(self, backend: str) -> tuple[str, str]:
        """(SQLAlchemy URL, DBAPI path or DSN) of a fresh migrated database."""
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        from inflow.storage.db import create_db_engine, upgrade

        if backend == "sqlite":
            if self.template is None:
                self.template = self.tmp / "template.db"
                engine = create_db_engine(f"sqlite:///{self.template}")
                upgrade(engine)
                with engine.connect() as conn:
                    conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
                engine.dispose()
            path = self.tmp / f"{uuid.uuid4().hex[:8]}.db"
            shutil.copy(self.template, path)
            return f"sqlite:///{path}", str(path)
        name = f"inflow_bench_{uuid.uuid4().hex[:10]}"
        with self._admin() as conn:
            if self.pg_template is None:
                self.pg_template = name + "_tpl"
                conn.execute(text(f'CREATE DATABASE "{self.pg_template}"'))
                self.pg_created.append(self.pg_template)
                engine = create_db_engine(self._url(self.pg_template))
                upgrade(engine)
                engine.dispose()
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"'))
            self.pg_created.append(name)
        url = self._url(name)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        return url, dsn

    def _url(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    @contextlib.contextmanager
    def _admin(self) -> Iterator[Any]:
        from sqlalchemy import create_engine

        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                yield conn
        finally:
            admin.dispose()

    def drop(self, url: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        if make_url(url).get_backend_name() == "sqlite" or name is None:
            return
        with self._admin() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.pg_created.remove(name)

    def close(self) -> None:
        from sqlalchemy import text

        if self.pg_created:
            with self._admin() as conn:
                for name in list(self.pg_created):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.pg_created.clear()


def new_source(
    db_url: str,
    vault_key: str,
    type_: str,
    config: dict[str, Any],
    state: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A fresh user and a ``type_`` source of theirs (with its streams' ``state``, if given),
    created through the API's own service; returns the source id."""
    from inflow.api.services import accounts
    from inflow.api.services.sources import create_source
    from inflow.storage import repo
    from inflow.storage.crypto import Vault
    from inflow.storage.db import create_db_engine, make_session_factory, session_scope

    engine = create_db_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        user = accounts.create_user(
            session, email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password=uuid.uuid4().hex
        )
        source = create_source(
            session,
            owner=user,
            name="bench",
            type_=type_,
            config=config,
            vault=Vault([vault_key.encode()]),
        )
        for stream, stream_state in (state or {}).items():
            repo.save_state(session, source_id=source.id, stream=stream, state=stream_state)
        source_id = str(source.id)
    engine.dispose()
    return source_id


def prepare_source(db_url: str, vault_key: str, credentials: dict[str, Any], start: date) -> str:
    """A user and an ``example`` source whose ``metrics`` cursor makes the sync start at
    ``start`` (the stream reads from cursor - lookback); returns the source id."""
    from inflow.connectors.example import CONNECTOR

    metrics = next(s for s in CONNECTOR.streams if s.name == "metrics")
    assert metrics.incremental is not None  # noqa: S101 (the example stream is incremental)
    lookback = metrics.incremental.lookback
    cursor = datetime(start.year, start.month, start.day, tzinfo=UTC) + lookback
    state = {"metrics": {"cursor": cursor.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    return new_source(db_url, vault_key, "example", credentials, state)


# ---------------------------------------------------------------- the run


@dataclass
class Row:
    backend: str
    n: int
    sync: dict[str, Any]
    paging: dict[str, Any]
    insert: dict[str, Any]
    rounds: list[float]  # each round's own sync / min(limits)

    @property
    def ratio(self) -> float:
        """The median of the rounds' own ratios (each round's three runs ran back to back)."""
        return statistics.median(self.rounds)


def measure(
    url: str,
    dbs: Databases,
    backend: str,
    n: int,
    vault_key: str,
    rounds: int,
    profile: str | None = None,
) -> Row:
    import httpx

    if n % (2 * DAYS):
        raise SystemExit(f"size {n} is not a multiple of {2 * DAYS} (2 points x {DAYS} days)")
    pages = n // (2 * DAYS)
    from inflow.connectors.example import CONNECTOR

    stream = next(s for s in CONNECTOR.streams if s.name == "metrics")
    if getattr(stream.pages, "size", None) != PAGE_SIZE:
        raise SystemExit(f"the metrics stream pages by {stream.pages}; set PAGE_SIZE to match")
    volume = {"pages": pages, "reports": 0, "dashboards": 0}
    httpx.post(f"{url}/_sandbox/example/config", json={"volume": volume}).raise_for_status()
    credentials = httpx.get(f"{url}/_sandbox/credentials").json()["example"]["config"]
    start, end = window(datetime.now(UTC).date())
    warm_up = {"start_date": start.isoformat(), "end_date": end.isoformat(), "page_size": "1"}
    httpx.get(  # the server's first request builds its route table: not part of a limit
        f"{credentials['baseUrl']}/v1/metrics",
        params=warm_up,
        headers={"Authorization": f"Bearer {credentials['apiKey']}"},
    ).raise_for_status()

    results: dict[str, list[dict[str, Any]]] = {"paging": [], "insert": [], "sync": []}
    for _ in range(rounds):  # interleaved, so a noisy moment hits every kind alike
        results["paging"].append(
            run_child(
                "paging",
                {
                    "base_url": credentials["baseUrl"],
                    "api_key": credentials["apiKey"],
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "page_size": PAGE_SIZE,
                },
            )
        )

        db_url, native = dbs.fresh(backend)
        source_id = prepare_source(db_url, vault_key, credentials, start)
        target = {"db_path": native} if backend == "sqlite" else {"db_dsn": native}
        results["insert"].append(
            run_child(
                "insert",
                {
                    "backend": backend,
                    "source_id": source_id,
                    "start": start.isoformat(),
                    "pages": pages,
                }
                | target,
            )
        )
        dbs.drop(db_url)

        db_url, _ = dbs.fresh(backend)
        source_id = prepare_source(db_url, vault_key, credentials, start)
        results["sync"].append(
            run_child(
                "sync",
                {
                    "db_url": db_url,
                    "vault_key": vault_key,
                    "source_id": source_id,
                    "base_url": credentials["baseUrl"],
                    "api_key": credentials["apiKey"],
                    "profile": profile,
                },
            )
        )
        dbs.drop(db_url)
    for name, runs in results.items():
        for result in runs:
            if result["records"] != n:
                raise SystemExit(f"{backend} {name}: {result['records']} records, expected {n}")
    # Speeds are each kind's median round; memory is the worst round's.
    best = {
        name: sorted(runs, key=lambda r: r["rate"])[(len(runs) - 1) // 2]
        for name, runs in results.items()
    }
    for key in ("rss_mb", "rss_start_mb", "rss_process_mb"):
        best["sync"][key] = max(r[key] for r in results["sync"])
    per_round = [
        s["rate"] / min(p["rate"], i["rate"])
        for p, i, s in zip(results["paging"], results["insert"], results["sync"], strict=True)
    ]
    return Row(backend, n, best["sync"], best["paging"], best["insert"], per_round)


def versions(backends: list[str]) -> list[str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    lines = [
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"CPU: {model}, {os.cpu_count()} cores; RAM {mem_kb / 1024 / 1024:.1f} GiB",
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]
    if "postgres" in backends:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            lines.append(
                str(conn.execute(text("SHOW server_version")).scalar_one()).join(
                    ("PostgreSQL ", "")
                )
            )
        engine.dispose()
    lines.append(f"page size {PAGE_SIZE} rows, {BATCH} points per transaction, window {DAYS} days")
    return lines


def report(rows: list[Row], backends: list[str]) -> str:
    out: list[str] = []
    for backend in backends:
        mine = [r for r in rows if r.backend == backend]
        out += [
            f"\n### {backend}\n",
            "| N | rounds | sync rec/s | raw paging rec/s | raw executemany rec/s | "
            "sync / min(limits), median | each round's ratio | sync peak RSS, run (MB) | "
            "RSS before the run (MB) | peak RSS, whole process (MB) |",
            "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
        ]
        out += [
            f"| {r.n:,} | {len(r.rounds)} | {r.sync['rate']:,.0f} | {r.paging['rate']:,.0f} | "
            f"{r.insert['rate']:,.0f} | {r.ratio:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in r.rounds)} | {r.sync['rss_mb']:.0f} | "
            f"{r.sync['rss_start_mb']:.0f} | {r.sync['rss_process_mb']:.0f} |"
            for r in mine
        ]
        by_n = {r.n: r for r in mine}
        if len(by_n) >= 2:
            small, large = by_n[min(by_n)].sync, by_n[max(by_n)].sync
            out.append(
                f"\nRSS({max(by_n):,}) / RSS({min(by_n):,}) = "
                f"{large['rss_mb'] / small['rss_mb']:.2f} (run peak), "
                f"{large['rss_process_mb'] / small['rss_process_mb']:.2f} (whole process)"
            )
        out.append(
            "\nwall seconds (sync / paging / executemany): "
            + "; ".join(
                f"{r.n:,}: {r.sync['seconds']:.1f} / {r.paging['seconds']:.1f} / "
                f"{r.insert['seconds']:.1f}"
                for r in mine
            )
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_throughput")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per size (the median is reported)"
    )
    parser.add_argument(
        "--single-above",
        type=int,
        default=1_000_000,
        help="sizes from this one up run one round (time budget)",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="dump a cProfile of each sync into DIR (not for figures)"
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, params = args.child
        print(json.dumps(CHILDREN[kind](json.loads(params))))
        return

    from cryptography.fernet import Fernet

    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.backends.split(",")]
    vault_key = Fernet.generate_key().decode()
    rows: list[Row] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inflow-bench-") as tmp, sandbox() as url:
        dbs = Databases(Path(tmp))
        try:
            for n in sizes:
                for backend in backends:
                    rounds = args.rounds if n < args.single_above else 1
                    row = measure(url, dbs, backend, n, vault_key, rounds, args.profile)
                    rows.append(row)
                    print(
                        f"{backend} N={n:,}: sync {row.sync['rate']:,.0f}/s, paging "
                        f"{row.paging['rate']:,.0f}/s, executemany {row.insert['rate']:,.0f}/s, "
                        f"ratio {row.ratio:.2f}, RSS {row.sync['rss_mb']:.0f} MB",
                        flush=True,
                    )
        finally:
            dbs.close()
    print("\n" + "\n".join(versions(backends)))
    print(report(rows, backends))
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

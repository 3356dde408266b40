"""Helpers for the sync and OAuth integration tests: people, sources and runs through the real
API, the sandbox's control routes, and the database content a sync leaves behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.services import sources as source_service
from inflow.sandbox.data import DailySeries
from inflow.storage.crypto import Vault
from inflow.storage.db import session_scope
from inflow.storage.models import Asset, DataPoint, DataSource, SyncRun, User
from inflow.sync.engine import EngineDeps, RunResult, enqueue_run, run_sync
from tests.factories import PASSWORD as PASSWORD  # re-exported: the sync tests import them here
from tests.factories import person as person

ROOT = Path(__file__).resolve().parents[2]
# Bytecode shared by the processes the tests start (with PYTHONDONTWRITEBYTECODE set, as on our
# machines, each would otherwise recompile its imports).
PYCACHE = Path(tempfile.gettempdir()) / "inflow-tests-pycache"


def child_env() -> dict[str, str]:
    """The environment of a Python process a test starts: no INFLOW_* from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLOW_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


API_KEY = "sk_test_inflow_example_0001"  # the sandbox's test key (a fake, like Stripe's)
SANDBOX_HOST = "http://sandbox.test"  # the in-process sandbox (ASGITransport ignores the host)
EXAMPLE_URL = f"{SANDBOX_HOST}/example"
EXAMPLE = {"baseUrl": EXAMPLE_URL, "apiKey": API_KEY, "workspace": "demo"}
OAUTH_CLIENT = {"clientId": "example-client", "clientSecret": "example-secret"}
EXAMPLE_OAUTH = {"baseUrl": EXAMPLE_URL, "authUrl": EXAMPLE_URL, **OAUTH_CLIENT}
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


# ---------------------------------------------------------------- people and sources


def create_source(
    client: Any,
    headers: dict[str, str],
    type_: str = "example",
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A data source made through ``POST /api/data-sources``."""
    body = {"name": f"{type_} source", "type": type_, "config": config or EXAMPLE}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    return source


def make_source(
    factory: sessionmaker[Session],
    vault: Vault,
    *,
    type_: str = "example",
    config: dict[str, Any] | None = None,
    owner: User | None = None,
) -> uuid.UUID:
    """A data source made by the service the API uses (for tests that need no API)."""
    owner = owner or person(factory)[0]
    with session_scope(factory) as session:
        source = source_service.create_source(
            session,
            owner=owner,
            name=f"{type_} source",
            type_=type_,
            config=config or EXAMPLE,
            vault=vault,
        )
        return source.id


def start_sync(client: Any, headers: dict[str, str], source_id: str) -> str:
    response = client.post(f"/api/data-sources/{source_id}/sync", headers=headers)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["runId"]
    return run_id


def poll_run(
    client: Any,
    headers: dict[str, str],
    run_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] = lambda run: run["status"] in TERMINAL,
    timeout: float = 60.0,
    every: float = 0.02,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``GET /api/runs/{id}`` until ``until(run)``; the last run and every run seen on the way."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/runs/{run_id}", headers=headers)
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        seen.append(run)
        if until(run):
            return run, seen
        assert time.monotonic() < deadline, f"run {run_id} is still {run['status']}: {run}"
        time.sleep(every)


def sync_and_wait(client: Any, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    run, _ = poll_run(client, headers, start_sync(client, headers, source_id))
    return run


def health(client: Any, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    response = client.get(f"/api/data-sources/{source_id}", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["health"]
    return result


def run_direct(deps: EngineDeps, source_id: uuid.UUID, trigger: str = "manual") -> RunResult:
    """Enqueue a run and execute it on this thread (the engine without the API)."""
    with deps.factory() as session:
        source = session.get(DataSource, source_id)
        assert source is not None
        run_id = enqueue_run(session, source=source, trigger=trigger).id
        session.commit()
    return asyncio.run(run_sync(deps, run_id))


def start_runner(
    database_url: str, data_dir: Path, run_id: uuid.UUID, log: Path, batch_size: int | None = None
) -> subprocess.Popen[bytes]:
    """``tests/sync/crash_runner.py``: a queued run executed in a process of its own (a test
    may kill it), its output appended to ``log``."""
    args = [database_url, str(data_dir), str(run_id)]
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.sync.crash_runner", *args]
            + ([str(batch_size)] if batch_size is not None else []),
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def get_run(factory: sessionmaker[Session], run_id: uuid.UUID | str) -> SyncRun:
    with factory() as session:
        run = session.get(SyncRun, uuid.UUID(str(run_id)))
        assert run is not None
        return run


# ---------------------------------------------------------------- what a sync left behind

PointRow = tuple[str, str, str, float]
AssetRow = tuple[str, str, str, str | None, str | None, str | None, str | None, bool]


def points_of(factory: sessionmaker[Session], source_id: uuid.UUID | str) -> set[PointRow]:
    """Every stored data point of a source as (metric, periodStart, dimensionsKey, value)."""
    with factory() as session:
        rows = session.execute(
            select(
                DataPoint.metric, DataPoint.period_start, DataPoint.dimensions_key, DataPoint.value
            ).where(DataPoint.source_id == uuid.UUID(str(source_id)))
        ).all()
    out = {(m, start.isoformat(), key, value) for m, start, key, value in rows}
    assert len(out) == len(rows), "a data point is stored twice"
    return out


def committed_days(factory: sessionmaker[Session], source_id: uuid.UUID | str) -> int:
    """How many periods a source has points for (the days a sync has committed)."""
    with factory() as session:
        days = session.scalar(
            select(func.count(distinct(DataPoint.period_start))).where(
                DataPoint.source_id == uuid.UUID(str(source_id))
            )
        )
    return int(days or 0)


def assets_of(factory: sessionmaker[Session], source_id: uuid.UUID | str) -> set[AssetRow]:
    """Every stored asset of a source, without ids and bookkeeping times."""
    with factory() as session:
        rows = session.execute(
            select(Asset).where(Asset.source_id == uuid.UUID(str(source_id)))
        ).scalars()
        return {
            (
                a.external_id,
                a.kind,
                a.name,
                a.url,
                a.embed_url,
                a.folder,
                a.remote_updated_at.isoformat() if a.remote_updated_at else None,
                a.deleted_at is not None,
            )
            for a in rows
        }


def daily_totals(
    points: set[PointRow] | list[tuple[str, str, float]],
) -> dict[str, dict[str, float]]:
    """{day: {metric: total over pages}} of (metric, periodStart, ..., value) rows."""
    totals: dict[str, dict[str, float]] = {}
    for row in points:
        metric, start, value = row[0], row[1], row[-1]
        day = start[:10]
        totals.setdefault(day, {}).setdefault(metric, 0.0)
        totals[day][metric] += float(value)  # type: ignore[arg-type]
    return totals


def sandbox_points(seed: int, pages: int, first: date, last: date) -> set[PointRow]:
    """Every data point the example emulator's data implies for ``first``..``last``, exactly
    (its own generator is the oracle: ``/_sandbox/example/expected`` gives daily totals)."""
    series = DailySeries(seed, pages)
    out: set[PointRow] = set()
    day = first
    while day <= last:
        visits, signups = series.values(day.toordinal(), 0, pages)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()
        for k in range(pages):
            key = f"page=%2Fp%2F{k + 1:04d}"
            out.add(("visits", start, key, float(visits[k])))
            out.add(("signups", start, key, float(signups[k])))
        day += timedelta(days=1)
    return out


def today() -> date:
    return datetime.now(UTC).date()


def days_back(n: int) -> date:
    return today() - timedelta(days=n)


# ---------------------------------------------------------------- the sandbox's control routes


class SandboxControl:
    """``/_sandbox/*`` of one sandbox, in-process (a TestClient) or over loopback (httpx)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, **body: Any) -> dict[str, Any]:
        """``POST /_sandbox/example/config`` (``volume=…``, ``faults=…``, ``seed=…``)."""
        result: dict[str, Any] = self._ok(self.http.post("/_sandbox/example/config", json=body))
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self.http.get("/_sandbox/example/stats"))
        return result

    def expected(self, start: date | None = None, end: date | None = None) -> dict[str, Any]:
        params = (
            {"start_date": start.isoformat(), "end_date": end.isoformat()} if start and end else {}
        )
        result: dict[str, Any] = self._ok(
            self.http.get("/_sandbox/example/expected", params=params)
        )
        return result

    def reset(self) -> None:
        self._ok(self.http.post("/_sandbox/reset"))

    def revoke_all(self) -> None:
        self._ok(self.http.post("/_sandbox/example/oauth/revoke-all"))

    def listing(self, path: str, records: str, **params: Any) -> list[dict[str, Any]]:
        """One page of the example API itself, with the sandbox's test key."""
        auth = {"Authorization": f"Bearer {API_KEY}"}
        body = self._ok(self.http.get(f"/example{path}", params=params, headers=auth))
        items: list[dict[str, Any]] = body[records]
        return items

    def credentials(self) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self.http.get("/_sandbox/credentials"))
        return result

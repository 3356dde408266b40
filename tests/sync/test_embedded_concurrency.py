"""The embedded worker's cap (``INFLOW_EMBEDDED_CONCURRENCY``): runs beyond it stay ``queued``
(the API shows them so) and start as slots free, in the order they were submitted; a backfill's
chunks take a slot as a run does. The database's own times show it: no more runs overlap than
the cap allows."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import Engine, select

from inflow.settings import Settings
from inflow.storage.models import SyncRun
from inflow.sync.worker import InProcessWorker
from tests.conftest import TestClient
from tests.sync.helpers import TERMINAL, create_source, person, start_sync

CAP, RUNS = 2, 5


@pytest.fixture
def capped(settings: Settings, engine: Engine, sandbox: FastAPI) -> Iterator[TestClient]:
    from inflow.api.app import create_app

    app = create_app(
        settings.model_copy(update={"embedded_concurrency": CAP}),
        engine=engine,
        migrate=False,
        transport=httpx.ASGITransport(app=sandbox),
    )
    with TestClient(app) as client:
        yield client


def _most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans open at one instant (an end at the instant another starts: not both)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_runs_beyond_the_cap_stay_queued_and_start_in_submission_order(capped, factory, sb):
    _, headers = person(factory)
    sources = [create_source(capped, headers)["id"] for _ in range(RUNS)]
    sb.configure(faults={"latencyMs": 300}, volume={"pages": 1})  # each run lasts a while

    run_ids = [start_sync(capped, headers, s) for s in sources]

    shown = capped.get(f"/api/runs/{run_ids[-1]}", headers=headers).json()
    assert shown["status"] == "queued", shown  # the API shows it waiting for a slot
    ids = [uuid.UUID(r) for r in run_ids]
    seen: list[list[str]] = []
    deadline = time.monotonic() + 120
    while True:
        with factory() as session:  # one query: the runs at one instant
            rows = session.execute(select(SyncRun.id, SyncRun.status).where(SyncRun.id.in_(ids)))
            status = {row.id: row.status for row in rows}
        statuses = [str(status[i]) for i in ids]
        seen.append(statuses)
        assert statuses.count("running") <= CAP, statuses
        if all(s in TERMINAL for s in statuses):
            break
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.02)
    assert seen[-1] == ["succeeded"] * RUNS
    assert any(s.count("queued") >= RUNS - CAP for s in seen), seen[:3]

    with factory() as session:
        runs = [session.get_one(SyncRun, uuid.UUID(r)) for r in run_ids]
    spans = [(r.started_at, r.finished_at) for r in runs]
    assert all(s is not None and e is not None for s, e in spans)
    assert _most_at_once(spans) == CAP  # type: ignore[arg-type]
    starts = [r.started_at for r in runs]
    assert starts == sorted(starts)  # type: ignore[type-var]  # first submitted, first started
    assert all(r.created > 0 for r in runs)


def test_the_cap_is_a_setting_checked_at_start(monkeypatch):
    monkeypatch.setenv("INFLOW_EMBEDDED_CONCURRENCY", "3")
    assert Settings().embedded_concurrency == 3
    monkeypatch.setenv("INFLOW_EMBEDDED_CONCURRENCY", "0")
    with pytest.raises(ValidationError, match="embedded_concurrency"):
        Settings()


def test_a_worker_of_no_slots_is_refused(deps):
    with pytest.raises(ValueError, match="at least 1"):
        InProcessWorker(deps, concurrency=0)

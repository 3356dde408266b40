"""Cancellation: a running sync stops after its current batch, keeps what it committed, and the
next sync continues from the checkpoint it reached."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from inflow.storage.db import session_scope
from inflow.storage.models import Asset, DataPoint, DataSource, StreamState, SyncRun
from inflow.sync import engine
from inflow.sync.engine import enqueue_run
from tests.sync.connectors import INITIAL
from tests.sync.helpers import (
    EXAMPLE,
    create_source,
    days_back,
    make_source,
    person,
    points_of,
    poll_run,
    sandbox_points,
    start_sync,
    sync_and_wait,
    today,
)

PAGES = 20


def _cursor(factory, source_id: str) -> str | None:
    with factory() as session:
        row = session.get(StreamState, (uuid.UUID(source_id), "metrics"))
        return row.state["cursor"] if row is not None else None


def _stored(factory, source_id: str) -> int:
    sid = uuid.UUID(source_id)
    with factory() as session:
        points = session.scalar(select(func.count()).where(DataPoint.source_id == sid)) or 0
        assets = session.scalar(select(func.count()).where(Asset.source_id == sid)) or 0
    return int(points) + int(assets)


def test_cancel_during_a_long_run_keeps_what_was_committed_and_the_next_sync_resumes(
    app, client, factory, sb, windowed
):
    _, headers = person(factory)
    source = create_source(client, headers, windowed)
    sb.configure(volume={"pages": PAGES}, faults={"latencyMs": 150})
    app.state.engine_deps.batch_size = 100  # a batch (and a cancellation check) per window

    run_id = start_sync(client, headers, source["id"])
    poll_run(client, headers, run_id, until=lambda _: _cursor(factory, source["id"]) is not None)
    response = client.post(f"/api/runs/{run_id}/cancel", headers=headers)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running"  # it stops at its next batch
    run, _ = poll_run(client, headers, run_id)
    assert run["status"] == "cancelled", run
    assert run["error"] is None
    assert run["finishedAt"] is not None

    total = 160 + 2 * PAGES * (INITIAL.days + 1)
    stored = _stored(factory, source["id"])
    assert 160 < stored < total, "the cancel came too late to test anything"
    assert run["counts"]["created"] == stored  # what it reported is what it kept
    checkpoint = _cursor(factory, source["id"])
    assert checkpoint is not None
    assert checkpoint[:10] < today().isoformat()

    sb.configure(faults={"latencyMs": 0})
    second = sync_and_wait(client, headers, source["id"])

    assert second["status"] == "succeeded", second
    metrics = [
        e["path"]
        for e in client.get(f"/api/runs/{second['id']}", headers=headers).json()["timeline"][
            "recent"
        ]
        if e["path"].startswith("/example/v1/metrics")
    ]
    resume_from = date.fromisoformat(checkpoint[:10]) - timedelta(days=2)  # minus the lookback
    assert f"start_date={resume_from.isoformat()}" in metrics[0]
    assert second["counts"]["created"] == total - stored
    assert second["counts"]["updated"] == 0
    assert points_of(factory, source["id"]) == sandbox_points(
        sb.configure()["seed"], PAGES, days_back(INITIAL.days), today()
    )


def test_cancel_of_a_queued_run_ends_it_at_once(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    with factory() as session:
        row = session.get(DataSource, uuid.UUID(source["id"]))
        run_id = str(enqueue_run(session, source=row, trigger="schedule").id)
        session.commit()

    response = client.post(f"/api/runs/{run_id}/cancel", headers=headers)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    run = client.get(f"/api/runs/{run_id}", headers=headers).json()
    assert run["status"] == "cancelled"
    assert run["finishedAt"] is not None
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"


def test_a_stranger_cannot_see_or_cancel_my_run(client, factory):
    _, headers = person(factory)
    _, stranger = person(factory)
    source = create_source(client, headers, config=EXAMPLE)
    run = sync_and_wait(client, headers, source["id"])

    assert client.get(f"/api/runs/{run['id']}", headers=stranger).status_code == 404
    assert client.post(f"/api/runs/{run['id']}/cancel", headers=stranger).status_code == 404


def test_a_process_stopping_as_a_run_starts_ends_the_run_it_claimed(
    deps, factory, vault, monkeypatch
):
    """The stop (Ctrl-C, SIGTERM) lands after the claim committed and before the run's first
    read: the run ends as interrupted, never left running for a live process."""
    source_id = make_source(factory, vault)
    with session_scope(factory) as session:
        source = session.get_one(DataSource, source_id)
        run_id = enqueue_run(session, source=source, trigger="manual").id
    load_config, claimed = engine._load_config, threading.Event()

    def load_config_slowly(*args, **kwargs):  # the claim is committed by now
        claimed.set()
        time.sleep(0.5)
        return load_config(*args, **kwargs)

    monkeypatch.setattr(engine, "_load_config", load_config_slowly)

    async def stop_as_it_starts() -> None:
        task = asyncio.create_task(engine.run_sync(deps, run_id))
        assert await asyncio.to_thread(claimed.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_as_it_starts())

    with factory() as session:
        run = session.get_one(SyncRun, run_id)
        assert (run.status, run.error["type"]) == ("interrupted", "ShutDown")

"""SQLite with ``INFLOW_WORKER=external``: ``inflow serve`` only queues, and ``inflow worker``
(the polling worker) runs queued syncs and backfills, each a real process against the sandbox
served by ``inflow sandbox``.

- A backfill asked for through the API is read by the worker, chunk by chunk, each chunk a run
  holding its source (one writer per source, as for syncs).
- A worker stopped mid-chunk (SIGTERM) hands it back: the backfill says it waits to be resumed
  (shut down); the next worker reads that chunk again; a worker SIGKILLed mid-chunk leaves its
  run to the next worker, which ends it ``interrupted`` (the process is gone) and reads the chunk
  again. The data equal the chunks' counts: nothing lost, nothing doubled.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from inflow.storage.db import create_db_engine
from inflow.storage.models import SyncRun, utcnow
from tests.cli import test_processes
from tests.cli.conftest import Workspace
from tests.cli.test_jobs import Setup, wait_until
from tests.cli.test_processes import Process
from tests.sync.helpers import points_of

start = test_processes.start  # the fixture that starts `inflow` processes


@pytest.fixture
def polling(workspace: Workspace, start, tmp_path: Path):  # type: ignore[no-untyped-def]
    made = Setup(workspace, start, tmp_path)
    try:
        yield made
    finally:
        made.api.stop()


def _backfill(setup: Setup, source_id: str, weeks: int) -> str:
    last = utcnow().date() - timedelta(days=1)
    first = last - timedelta(days=7 * weeks - 1)
    started = httpx.post(
        f"{setup.api.base_url}/api/data-sources/{source_id}/backfill",
        headers=setup.headers,
        json={"from": first.isoformat(), "to": last.isoformat()},
    )
    assert started.status_code == 202, started.text
    assert started.json()["chunksTotal"] == weeks
    return str(started.json()["id"])


def _progress(setup: Setup, backfill_id: str) -> dict[str, Any]:
    got = httpx.get(f"{setup.api.base_url}/api/backfills/{backfill_id}", headers=setup.headers)
    assert got.status_code == 200, got.text
    return dict(got.json())


def _runs(setup: Setup, source_id: str) -> list[tuple[str, str, str | None]]:
    """The source's runs, oldest first: trigger, status, error type."""
    engine = create_db_engine(setup.env["INFLOW_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(SyncRun.trigger, SyncRun.status, SyncRun.error)
                .where(SyncRun.source_id == uuid.UUID(source_id))
                .order_by(SyncRun.created_at)
            ).all()
    finally:
        engine.dispose()
    return [(t, s, (e or {}).get("type")) for t, s, e in rows]


def _stored(setup: Setup, source_id: str) -> int:
    engine = create_db_engine(setup.env["INFLOW_DATABASE_URL"])
    try:
        return len(points_of(sessionmaker(engine), source_id))
    finally:
        engine.dispose()


def _worker(setup: Setup, concurrency: int = 2) -> Process:
    return setup.start("worker", "--concurrency", str(concurrency), env=setup.env)


def test_the_polling_worker_runs_a_backfill_asked_for_through_the_api(polling: Setup):
    source_id = polling.source("backfilled")
    other_id = polling.source("synced")
    backfill_id = _backfill(polling, source_id, weeks=3)
    run_id = polling.sync(other_id)
    time.sleep(1)
    assert _progress(polling, backfill_id)["state"] == "queued"  # the API runs nothing itself
    assert polling.run(run_id)["status"] == "queued"

    workers = [_worker(polling), _worker(polling)]
    wait_until(
        "the backfill and the sync",
        lambda: _progress(polling, backfill_id)["state"] == "succeeded"
        and polling.run(run_id)["status"] == "succeeded",
        workers,
        120,
    )

    done = _progress(polling, backfill_id)
    assert (done["chunksDone"], done["chunksTotal"], done["waiting"]) == (3, 3, None)
    assert _runs(polling, source_id) == [("backfill", "succeeded", None)] * 3  # one per chunk
    assert _stored(polling, source_id) == sum(c["points"] for c in done["chunks"]) > 0
    for worker in workers:
        assert worker.terminate() == 0, worker.output
        assert "worker stopped" in worker.output
        assert "Traceback" not in worker.output


def test_a_stopped_or_killed_workers_chunk_is_read_again_by_the_next_worker(polling: Setup):
    polling.sandbox_config(volume={"pages": 3}, faults={"latencyMs": 700})  # a chunk lasts a while
    source_id = polling.source("stopped, then killed")
    backfill_id = _backfill(polling, source_id, weeks=2)

    def reading() -> bool:
        current = _progress(polling, backfill_id)["currentChunk"]
        return current is not None and current["state"] == "running"

    # SIGTERM mid-chunk: handed back, and the backfill says so
    stopped = _worker(polling, 1)
    wait_until("a chunk being read", reading, [stopped], 60)
    assert stopped.terminate() == 0, stopped.output
    shown = _progress(polling, backfill_id)
    assert shown["state"] == "waiting", shown
    assert shown["waiting"]["interrupted"] is True
    assert "shut down" in shown["waiting"]["reason"]
    assert shown["currentChunk"]["state"] == "pending"
    assert _runs(polling, source_id) == [("backfill", "interrupted", "ShutDown")]

    # the next worker reads that chunk again; SIGKILLed mid-chunk, it cannot tell anyone
    doomed = _worker(polling, 1)
    wait_until("the chunk read again", reading, [doomed], 60)
    doomed.kill()
    assert _progress(polling, backfill_id)["state"] == "running"  # nobody knows yet
    assert _runs(polling, source_id)[-1][:2] == ("backfill", "running")

    polling.sandbox_config(faults={"latencyMs": 0})
    fresh = _worker(polling, 1)  # its process is gone (this host): its run is taken at once
    wait_until(
        "the backfill", lambda: _progress(polling, backfill_id)["state"] == "succeeded", [fresh], 90
    )
    done = _progress(polling, backfill_id)
    assert (done["chunksDone"], done["waiting"]) == (2, None)
    runs = _runs(polling, source_id)
    assert runs[:2] == [
        ("backfill", "interrupted", "ShutDown"),
        ("backfill", "interrupted", "WorkerLost"),  # never "running" for a dead process
    ]
    assert runs[2:] == [("backfill", "succeeded", None)] * 2
    assert _stored(polling, source_id) == sum(c["points"] for c in done["chunks"]) > 0
    assert fresh.terminate() == 0, fresh.output

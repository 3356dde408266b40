"""A backfill chunk whose process stopped is never shown ``running``: once its run is known to be
a stopped process's (a process of this host that no longer runs: at once; another host's: when
its lease lapses; a server shut down: as it stops), the chunk is ``pending`` again and the
backfill ``waiting`` to be resumed, saying why, and the next process reads that chunk again:
``inflow worker`` (the polling worker) at its next poll, the embedded worker at its start. On
both backends; procrastinate's stalled jobs are in tests/cli/test_jobs.py."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
import uuid
from datetime import timedelta

import httpx

from inflow.storage.db import session_scope
from inflow.storage.models import Backfill, DataSource, RunStatus, SyncRun, utcnow
from inflow.sync import backfill as bf
from inflow.sync import worker as worker_module
from inflow.sync.engine import LEASE, enqueue_run
from inflow.sync.worker import run_worker
from tests.conftest import TestClient
from tests.sync.helpers import create_source, days_back, make_source, person, sandbox_points
from tests.sync.test_backfill import _backfill, _plan, _poll_direct, points_of

DEAD_HERE = f"{socket.gethostname()}:999999999:gone"  # a process of this host, no longer running
ELSEWHERE = "another-host:4242:alive"  # a process of another host: only its lease tells


def _dead_chunk(factory, backfill_id: uuid.UUID, seq: int, owner: str) -> uuid.UUID:
    """The state a process reading chunk ``seq`` leaves when it is killed: its run holds the
    source, the chunk is ``running``."""
    with session_scope(factory) as session:
        row = session.get_one(Backfill, backfill_id)
        run = SyncRun(
            source_id=row.source_id,
            trigger="backfill",
            status=RunStatus.RUNNING,
            started_at=utcnow(),
            lease_until=utcnow() + LEASE,
            owner=owner,
        )
        session.add(run)
        session.flush()
        row.chunks[seq].state, row.chunks[seq].run_id = "running", run.id
        row.state = "running"
        return run.id


def _interrupted(factory, backfill_id: uuid.UUID, run_id: uuid.UUID, how: str) -> Backfill:
    """The backfill, checked to be waiting to be resumed after its chunk's run was lost."""
    row = _backfill(factory, backfill_id)
    assert row.state == "waiting", row.state
    assert row.waiting is not None
    assert row.waiting["interrupted"] is True
    assert how in row.waiting["reason"]
    assert "reads that chunk again" in row.waiting["reason"]
    assert "running" not in [c.state for c in row.chunks]
    with factory() as session:
        run = session.get_one(SyncRun, run_id)
        assert run.status == RunStatus.INTERRUPTED
        assert run.error is not None
        assert run.error["type"] == ("ShutDown" if how == "shut down" else "WorkerLost")
    return row


def test_a_dead_workers_chunk_is_shown_waiting_and_the_next_worker_reads_it(
    deps, factory, vault, sb
):
    source_id = make_source(factory, vault)
    config = sb.configure()
    first, last = days_back(24), days_back(4)  # three chunks
    backfill_id = _plan(factory, source_id, first, last)
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "more"
    per_chunk = sb.stats()["total"]
    lost = _dead_chunk(factory, backfill_id, 1, DEAD_HERE)

    worker_module._recover(deps)  # what a polling worker does first at every poll

    row = _interrupted(factory, backfill_id, lost, "killed or crashed")
    assert [c.state for c in row.chunks] == ["done", "pending", "pending"]
    assert "chunk 2" in row.waiting["reason"]  # type: ignore[index]
    ran = asyncio.run(run_worker(deps, concurrency=2, poll_s=0.05, once=True))
    assert ran == 2  # the two chunks not done, each once
    row = _backfill(factory, backfill_id)
    assert (row.state, row.waiting) == ("succeeded", None)
    assert [c.state for c in row.chunks] == ["done"] * 3
    assert sb.stats()["total"] == 3 * per_chunk
    assert points_of(factory, source_id) == sandbox_points(
        config["seed"], config["volume"]["pages"], first, last
    )


def test_another_hosts_chunk_is_handed_back_only_when_its_lease_lapses(
    deps, factory, vault, sb, test_clock
):
    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(10), days_back(4))
    held = _dead_chunk(factory, backfill_id, 0, ELSEWHERE)

    worker_module._recover(deps)  # its lease runs: the process may be alive, reading it
    row = _backfill(factory, backfill_id)
    assert (row.state, [c.state for c in row.chunks]) == ("running", ["running"])
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "busy"  # not read beside it
    assert sb.stats()["total"] == 0

    test_clock.shift(LEASE + timedelta(seconds=1))  # no renewal: its process is gone
    worker_module._recover(deps)

    _interrupted(factory, backfill_id, held, "killed or crashed")
    assert asyncio.run(run_worker(deps, concurrency=1, poll_s=0.05, once=True)) == 1
    assert _backfill(factory, backfill_id).state == "succeeded"


def test_a_polling_worker_runs_a_backfill_beside_syncs_one_writer_per_source(
    deps, factory, vault, sb, monkeypatch
):
    monkeypatch.setattr(bf, "BUSY_WAIT_S", 0.05)
    source_id = make_source(factory, vault)
    other = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(17), days_back(4))  # two chunks
    with session_scope(factory) as session:  # a sync of each source, queued after it
        source_run = enqueue_run(
            session, source=session.get_one(DataSource, source_id), trigger="manual"
        ).id
        other_run = enqueue_run(
            session, source=session.get_one(DataSource, other), trigger="manual"
        ).id

    async def two_workers() -> list[int]:
        return list(
            await asyncio.gather(
                run_worker(deps, concurrency=2, poll_s=0.05, once=True),
                run_worker(deps, concurrency=2, poll_s=0.05, once=True),
            )
        )

    deadline = time.monotonic() + 60
    ran = sum(asyncio.run(two_workers()))
    while _backfill(factory, backfill_id).state != "succeeded":  # a chunk that had to wait
        assert time.monotonic() < deadline
        ran += asyncio.run(run_worker(deps, concurrency=2, poll_s=0.05, once=True))
    assert ran == 4  # two syncs and two chunks, none twice
    with factory() as session:
        assert session.get_one(SyncRun, source_run).status == RunStatus.SUCCEEDED
        assert session.get_one(SyncRun, other_run).status == RunStatus.SUCCEEDED
        spans = [
            (r.started_at, r.finished_at)
            for r in session.query(SyncRun).filter(SyncRun.source_id == source_id)
        ]
    spans.sort()
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start  # one writer of the source at a time


def test_a_restarted_server_shows_its_lost_chunk_waiting_until_a_slot_reads_it(
    settings, engine, sandbox, factory, vault, sb, deps
):
    from inflow.api.app import create_app

    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(17), days_back(4))  # two chunks
    lost = _dead_chunk(factory, backfill_id, 0, DEAD_HERE)  # the server was killed meanwhile
    slow = make_source(factory, vault)
    with session_scope(factory) as session:  # queued before: it takes the one slot first
        enqueue_run(session, source=session.get_one(DataSource, slow), trigger="manual")
    sb.configure(faults={"latencyMs": 1500}, volume={"pages": 1})

    app = create_app(
        settings.model_copy(update={"embedded_concurrency": 1}),
        engine=engine,
        migrate=False,
        transport=httpx.ASGITransport(app=sandbox),
    )
    with TestClient(app):
        row = _interrupted(factory, backfill_id, lost, "killed or crashed")
        assert [c.state for c in row.chunks] == ["pending", "pending"]
        sb.configure(faults={"latencyMs": 0})
        done = _poll_direct(factory, backfill_id)

    assert done.state == "succeeded"
    assert [c.state for c in done.chunks] == ["done", "done"]


def test_a_server_shut_down_mid_chunk_shows_it_waiting_and_resumes_it_at_start(
    settings, engine, sandbox, factory, sb
):
    from inflow.api.app import create_app

    def app():  # type: ignore[no-untyped-def]
        return create_app(
            settings, engine=engine, migrate=False, transport=httpx.ASGITransport(app=sandbox)
        )

    _, headers = person(factory)
    sb.configure(faults={"latencyMs": 500}, volume={"pages": 3})
    with TestClient(app()) as client:
        source = create_source(client, headers)
        body = {"from": days_back(17).isoformat(), "to": days_back(4).isoformat()}
        started = client.post(
            f"/api/data-sources/{source['id']}/backfill", headers=headers, json=body
        )
        assert started.status_code == 202, started.text
        backfill_id = uuid.UUID(started.json()["id"])
        deadline = time.monotonic() + 30
        while (shown := client.get(f"/api/backfills/{backfill_id}", headers=headers).json())[
            "currentChunk"
        ] is None or shown["currentChunk"]["state"] != "running":
            assert time.monotonic() < deadline, shown
            time.sleep(0.02)
        lost = _backfill(factory, backfill_id).chunks[0].run_id
    assert lost is not None

    _interrupted(factory, backfill_id, lost, "shut down")  # the server stopped: it says so
    sb.configure(faults={"latencyMs": 0})
    with TestClient(app()) as client:
        done = _poll_direct(factory, backfill_id)
        shown = client.get(f"/api/backfills/{backfill_id}", headers=headers).json()
    assert done.state == "succeeded"
    assert (shown["state"], shown["chunksDone"], shown["waiting"]) == ("succeeded", 2, None)
    with factory() as session:  # the lost chunk's run stays as it ended
        assert session.get_one(SyncRun, lost).status == RunStatus.INTERRUPTED


def test_a_stalled_jobs_chunk_is_put_back_with_its_run(deps, factory, vault, sb):
    """What procrastinate's stalled-job recovery does for a backfill job (``jobs._interrupt``,
    before the job is retried): the run ends interrupted, the chunk waits to be read again."""
    from inflow.sync import jobs

    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(17), days_back(4))
    lost = _dead_chunk(factory, backfill_id, 0, ELSEWHERE)  # its lease still runs

    jobs._interrupt(factory, source_id)

    row = _interrupted(factory, backfill_id, lost, "killed or crashed")
    assert [c.state for c in row.chunks] == ["pending", "pending"]
    assert asyncio.run(bf.run_backfill(deps, backfill_id)) == "succeeded"

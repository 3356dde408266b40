"""Backfills of the `example` source: chunks that are jobs of their own, stored through the sync's
upsert, resumable (a chunk done is never read again: the sandbox's request counts), waiting on
rate limits and on a sync holding the source, and ranges refused with the field named."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from inflow.api.services.backfills import start_backfill
from inflow.connectors import registry
from inflow.storage.db import session_scope
from inflow.storage.models import AuditEvent, Backfill, DataSource, RunStatus, SyncRun, utcnow
from inflow.sync import backfill as bf
from inflow.sync.engine import LEASE, enqueue_run
from tests.sync.helpers import (
    create_source,
    days_back,
    make_source,
    person,
    points_of,
    sandbox_points,
)

WEEKS = 3


def _poll(client, headers, backfill_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/backfills/{backfill_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["state"] in bf.FINAL:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def _plan(factory, source_id: uuid.UUID, first, last) -> uuid.UUID:
    with session_scope(factory) as session:
        source = session.get_one(DataSource, source_id)
        backfill, new = start_backfill(
            session, source=source, first=first, last=last, created_by="test"
        )
        assert new
        return backfill.id


def _backfill(factory, backfill_id: uuid.UUID) -> Backfill:
    with factory() as session:
        return session.get_one(Backfill, backfill_id)


def test_backfill_stores_what_a_fetch_of_the_range_gives(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    config = sb.configure()
    first, last = days_back(7 * WEEKS + 6), days_back(7)

    response = client.post(
        f"/api/data-sources/{source['id']}/backfill",
        headers=headers,
        json={"from": first.isoformat(), "to": last.isoformat()},
    )

    assert response.status_code == 202, response.text
    started = response.json()
    assert (started["from"], started["to"]) == (first.isoformat(), last.isoformat())
    assert started["chunksTotal"] == WEEKS
    assert [c["start"][:10] for c in started["chunks"]] == [
        (first + timedelta(days=7 * k)).isoformat() for k in range(WEEKS)
    ]
    done = _poll(client, headers, started["id"])
    assert done["state"] == "succeeded", done
    assert (done["chunksDone"], done["chunksTotal"], done["currentChunk"]) == (WEEKS, WEEKS, None)

    stored = points_of(factory, source["id"])
    assert stored == sandbox_points(config["seed"], config["volume"]["pages"], first, last)
    fetched = client.post(
        f"/api/data-sources/{source['id']}/fetch",
        headers=headers,
        json={"startDate": first.isoformat(), "endDate": last.isoformat()},
    ).json()["dataPoints"]
    assert {(p["metric"], p["periodStart"][:10], p["value"]) for p in fetched} == {
        (m, start[:10], v) for m, start, _, v in stored
    }
    assert len(fetched) == len(stored)
    assert sum(c["points"] for c in done["chunks"]) == len(stored)

    runs = client.get(f"/api/data-sources/{source['id']}/runs", headers=headers).json()
    assert [(r["trigger"], r["status"]) for r in runs] == [("backfill", "succeeded")] * WEEKS
    listed = client.get(f"/api/data-sources/{source['id']}/backfills", headers=headers).json()
    assert [b["id"] for b in listed] == [started["id"]]
    with factory() as session:
        (event,) = session.execute(
            select(AuditEvent).where(AuditEvent.action == "source.backfill")
        ).scalars()
    assert event.details["backfillId"] == started["id"]
    assert event.details["chunks"] == WEEKS


def test_backfill_interrupted_after_k_chunks_resumes_with_the_rest(deps, factory, vault, sb):
    source_id = make_source(factory, vault)
    config = sb.configure()
    first, last = days_back(7 * 4 + 6), days_back(7)  # four weeks: four chunks
    backfill_id = _plan(factory, source_id, first, last)

    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "more"
    per_chunk = sb.stats()["total"]
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "more"
    assert sb.stats()["total"] == 2 * per_chunk
    # the process reading the third chunk died: its run still holds the source
    with session_scope(factory) as session:
        run = SyncRun(
            source_id=source_id,
            trigger="backfill",
            status=RunStatus.RUNNING,
            started_at=utcnow(),
            lease_until=utcnow() + LEASE,
            owner=f"{socket.gethostname()}:999999999:gone",
        )
        session.add(run)
        session.flush()
        row = session.get_one(Backfill, backfill_id)
        row.chunks[2].state, row.chunks[2].run_id = "running", run.id
        dead_run = run.id

    assert asyncio.run(bf.run_backfill(deps, backfill_id)) == "succeeded"

    assert sb.stats()["total"] == 4 * per_chunk  # the two chunks done were not read again
    row = _backfill(factory, backfill_id)
    assert [c.state for c in row.chunks] == ["done"] * 4
    with factory() as session:
        assert session.get_one(SyncRun, dead_run).status == RunStatus.INTERRUPTED
    assert points_of(factory, source_id) == sandbox_points(
        config["seed"], config["volume"]["pages"], first, last
    )


def test_backfill_waits_while_a_sync_holds_the_source(deps, factory, vault, sb):
    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(10), days_back(4))
    with session_scope(factory) as session:
        run_id = enqueue_run(
            session, source=session.get_one(DataSource, source_id), trigger="manual"
        ).id

    outcome = asyncio.run(bf.run_chunk(deps, backfill_id))

    assert (outcome.kind, outcome.state) == ("busy", "waiting")
    row = _backfill(factory, backfill_id)
    assert row.state == "waiting"
    assert row.waiting is not None
    assert "sync" in row.waiting["reason"]
    assert [c.state for c in row.chunks] == ["pending"]
    assert sb.stats()["total"] == 0
    with session_scope(factory) as session:  # the sync ends: the backfill goes on
        session.get_one(SyncRun, run_id).status = RunStatus.CANCELLED
    assert asyncio.run(bf.run_backfill(deps, backfill_id)) == "succeeded"


def test_a_sync_asked_for_while_a_chunk_is_read_is_refused(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    with session_scope(factory) as session:
        held = bf._hold_source(session, uuid.UUID(source["id"]))  # a chunk is being read

    response = client.post(f"/api/data-sources/{source['id']}/sync", headers=headers)

    assert response.status_code == 409, response.text
    with session_scope(factory) as session:
        session.get_one(SyncRun, held).status = RunStatus.SUCCEEDED


def test_a_rate_limited_chunk_waits_instead_of_failing(deps, factory, vault, sb, fast_retries):
    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(10), days_back(4))
    sb.configure(faults={"status429Rate": 1.0})

    outcome = asyncio.run(bf.run_chunk(deps, backfill_id))

    assert (outcome.kind, outcome.state) == ("wait", "waiting")
    assert outcome.wait_s >= 1
    row = _backfill(factory, backfill_id)
    assert row.state == "waiting"
    assert row.error is None
    assert row.waiting is not None
    assert datetime.fromisoformat(row.waiting["until"]) > datetime.now(UTC)
    assert [c.state for c in row.chunks] == ["pending"]
    sb.configure(faults={"status429Rate": 0.0})
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).state == "succeeded"


def test_a_cancelled_backfill_reads_nothing_more(factory, vault, sb, deps):
    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(20), days_back(4))
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "more"
    requests = sb.stats()["total"]
    with session_scope(factory) as session:
        bf.cancel(session.get_one(Backfill, backfill_id))

    assert asyncio.run(bf.run_backfill(deps, backfill_id)) == "cancelled"

    assert sb.stats()["total"] == requests
    row = _backfill(factory, backfill_id)
    assert [c.state for c in row.chunks] == ["done", "cancelled", "cancelled"]


@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_cancel_between_chunks_is_never_overwritten_by_the_next_chunk(factory, vault):
    """A cancel committed while the next chunk is being taken: the chunk sees it (its read of
    the backfill waits for the cancel's lock) and ends the backfill, never shows it running."""
    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(20), days_back(4))
    with factory() as canceller:
        bf.cancel(canceller.get_one(Backfill, backfill_id))  # locked, not committed yet
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            taking = pool.submit(bf._begin, factory, backfill_id)
            with pytest.raises(concurrent.futures.TimeoutError):
                taking.result(timeout=1.0)  # waiting on the cancel's row lock
            canceller.commit()
            outcome = taking.result(timeout=30)

    assert outcome == bf.ChunkOutcome("ended", "cancelled")
    row = _backfill(factory, backfill_id)
    assert row.state == "cancelled"
    assert {c.state for c in row.chunks} == {"cancelled"}
    with factory() as session:
        held = session.scalars(select(SyncRun).where(SyncRun.source_id == source_id)).all()
    assert [r.status for r in held] == []  # the run taken to hold the source is gone


def test_a_chunk_taken_over_after_its_run_was_recovered_is_left_to_its_new_writer(factory, vault):
    """A chunk's process seen as stopped (its run recovered, the chunk handed back) and taken
    by another writer: when the first process then gives the chunk up, it leaves the chunk,
    the backfill and the new run alone (it no longer holds the source)."""
    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(20), days_back(4))
    first = bf._begin(factory, backfill_id)
    assert isinstance(first, bf._Held)
    with session_scope(factory) as session:  # as recover_stale_runs ends a lost process's run
        session.get_one(SyncRun, first.run_id).status = RunStatus.INTERRUPTED
        session.flush()
        assert bf.recover_chunks(session, source_id=source_id) == 1
    second = bf._begin(factory, backfill_id)
    assert isinstance(second, bf._Held)
    assert second.seq == first.seq

    bf._stopped(
        factory,
        backfill_id,
        first,
        bf.RunRecorder(),
        run_status=RunStatus.CANCELLED,
        run_error=None,
        state="waiting",
        waiting=bf._waiting("rate limited", utcnow()),
    )

    row = _backfill(factory, backfill_id)
    chunk = next(c for c in row.chunks if c.seq == first.seq)
    assert (chunk.state, chunk.run_id, row.state) == ("running", second.run_id, "running")
    with factory() as session:
        assert session.get_one(SyncRun, second.run_id).status == RunStatus.RUNNING
        assert session.get_one(SyncRun, first.run_id).status == RunStatus.INTERRUPTED


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param({"from": 5, "to": 9}, "to", "before the first", id="from_after_to"),
        pytest.param({"from": 3, "to": -2}, "to", "future", id="to_in_the_future"),
        pytest.param({"from": 1200, "to": 2}, "to", "at most 1096 days", id="over_three_years"),
        pytest.param({"from": 200, "to": 2}, "from", "the earliest day is", id="before_history"),
    ],
)
def test_backfill_ranges_are_checked(client, factory, monkeypatch, body, field, words):
    if field == "from":  # a provider that serves only its last 90 days
        example = dataclasses.replace(registry()["example"], history=timedelta(days=90))
        monkeypatch.setitem(registry(), "example", example)
    _, headers = person(factory)
    source = create_source(client, headers)
    days = {k: days_back(v).isoformat() for k, v in body.items()}

    response = client.post(f"/api/data-sources/{source['id']}/backfill", headers=headers, json=days)

    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field], errors
    assert words in errors[0]["message"]
    if field == "from":
        assert days_back(89).isoformat() in errors[0]["message"]
    with factory() as session:
        assert session.execute(select(Backfill)).first() is None


def test_backfill_of_a_stranger_s_source_is_a_404(client, factory):
    _, owner = person(factory)
    _, stranger = person(factory)
    source = create_source(client, owner)
    body = {"from": days_back(9).isoformat(), "to": days_back(3).isoformat()}

    response = client.post(
        f"/api/data-sources/{source['id']}/backfill", headers=stranger, json=body
    )

    assert response.status_code == 404, response.text
    assert client.get(f"/api/backfills/{uuid.uuid4()}", headers=owner).status_code == 404


def test_a_restarted_server_carries_on_with_the_chunks_not_done(
    settings, engine, sandbox, factory, vault, sb, deps
):
    from inflow.api.app import create_app
    from tests.conftest import TestClient

    source_id = make_source(factory, vault)
    config = sb.configure()
    first, last = days_back(20), days_back(4)
    backfill_id = _plan(factory, source_id, first, last)
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "more"  # then the server stopped
    per_chunk = sb.stats()["total"]

    app = create_app(
        settings, engine=engine, migrate=False, transport=httpx.ASGITransport(app=sandbox)
    )
    with TestClient(app):
        done = _poll_direct(factory, backfill_id)

    assert done.state == "succeeded"
    assert sb.stats()["total"] == 3 * per_chunk
    assert points_of(factory, source_id) == sandbox_points(
        config["seed"], config["volume"]["pages"], first, last
    )


def _poll_direct(factory, backfill_id: uuid.UUID, timeout: float = 60.0) -> Backfill:
    deadline = time.monotonic() + timeout
    while True:
        row = _backfill(factory, backfill_id)
        if row.state in bf.FINAL:
            return row
        assert time.monotonic() < deadline, row.state
        time.sleep(0.02)


def test_two_runners_of_one_backfill_read_each_chunk_once(deps, factory, vault, sb, monkeypatch):
    monkeypatch.setattr(bf, "BUSY_WAIT_S", 0.05)
    source_id = make_source(factory, vault)
    backfill_id = _plan(factory, source_id, days_back(24), days_back(4))  # three chunks
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "more"
    per_chunk = sb.stats()["total"]

    async def both() -> list[str]:
        return list(
            await asyncio.gather(
                bf.run_backfill(deps, backfill_id), bf.run_backfill(deps, backfill_id)
            )
        )

    assert asyncio.run(both()) == ["succeeded", "succeeded"]
    assert sb.stats()["total"] == 3 * per_chunk
    with factory() as session:
        runs = (
            session.execute(select(SyncRun.status).where(SyncRun.source_id == source_id))
            .scalars()
            .all()
        )
    assert runs == [RunStatus.SUCCEEDED] * 3  # one run per chunk: none held for nothing


def test_a_failed_backfill_asked_for_again_reads_only_its_chunks_not_done(
    deps, factory, vault, sb, fast_retries
):
    source_id = make_source(factory, vault)
    first, last = days_back(24), days_back(4)  # three chunks
    backfill_id = _plan(factory, source_id, first, last)
    assert asyncio.run(bf.run_chunk(deps, backfill_id)).kind == "more"
    per_chunk = sb.stats()["total"]
    sb.configure(faults={"errorRate": 1.0})

    assert asyncio.run(bf.run_backfill(deps, backfill_id)) == "failed"

    row = _backfill(factory, backfill_id)
    assert [c.state for c in row.chunks] == ["done", "failed", "pending"]
    assert row.error is not None
    assert row.error["fault"] == "provider"
    sb.configure(faults={"errorRate": 0.0})
    failed_requests = sb.stats()["total"]
    with session_scope(factory) as session:
        again, new = start_backfill(
            session,
            source=session.get_one(DataSource, source_id),
            first=first,
            last=last,
            created_by="test",
        )
        assert (again.id, new, again.state) == (backfill_id, False, "queued")
    assert asyncio.run(bf.run_backfill(deps, backfill_id)) == "succeeded"
    assert sb.stats()["total"] - failed_requests == 2 * per_chunk  # the first chunk not again


def test_a_chunk_whose_daily_quota_is_spent_waits_for_the_reset(deps, factory, vault, sb):
    """Clarity allows ten export calls a project a UTC day: spent (by another client of the
    project), the chunk asks nothing of the provider and the backfill waits until midnight."""
    from inflow.storage.quota import take_call

    config = sb.http.get("/_sandbox/credentials").json()["microsoft_clarity"]["config"]
    source_id = make_source(factory, vault, type_="microsoft_clarity", config=config)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with session_scope(factory) as session:
        for _ in range(10):
            key = f"microsoft_clarity:{config['projectId']}"
            assert take_call(session, key=key, window_start=midnight, limit=10)
    backfill_id = _plan(factory, source_id, days_back(2), days_back(1))

    outcome = asyncio.run(bf.run_chunk(deps, backfill_id))

    assert (outcome.kind, outcome.state) == ("wait", "waiting")
    reset = midnight + timedelta(days=1)
    assert abs(outcome.wait_s - (reset - now).total_seconds()) < 60
    row = _backfill(factory, backfill_id)
    assert row.state == "waiting"
    assert row.waiting is not None
    assert abs(datetime.fromisoformat(row.waiting["until"]) - reset) < timedelta(minutes=1)
    assert [c.state for c in row.chunks] == ["pending"]
    clarity = sb.http.get("/_sandbox/microsoft_clarity/stats").json()
    assert clarity["total"] == 0

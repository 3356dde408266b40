"""One run per source at a time: the API answers 409 naming the active run, two sessions
enqueueing at once get one run and one ConflictError, and the database's partial unique index
is what enforces it, on both backends."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from inflow.errors import ConflictError
from inflow.storage.models import DataSource, RunStatus, SyncRun
from inflow.sync import engine as engine_module
from inflow.sync.engine import enqueue_run
from tests.sync.helpers import create_source, make_source, person, poll_run


def test_second_sync_request_is_409_naming_the_active_run(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(faults={"latencyMs": 200}, volume={"pages": 1})  # a run that lasts a moment

    first = client.post(f"/api/data-sources/{source['id']}/sync", headers=headers)
    second = client.post(f"/api/data-sources/{source['id']}/sync", headers=headers)

    assert first.status_code == 202, first.text
    run_id = first.json()["runId"]
    assert second.status_code == 409, second.text
    assert second.headers["content-type"] == "application/problem+json"
    assert run_id in second.json()["detail"]

    run, _ = poll_run(client, headers, run_id)
    assert run["status"] == "succeeded"
    runs = client.get(f"/api/data-sources/{source['id']}/runs", headers=headers).json()
    assert [r["id"] for r in runs] == [run_id]

    again = client.post(f"/api/data-sources/{source['id']}/sync", headers=headers)
    assert again.status_code == 202, again.text  # once it ended, the next one may start
    poll_run(client, headers, again.json()["runId"])


def test_two_sessions_enqueueing_at_once_get_one_run(factory, vault):
    source_id = make_source(factory, vault)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def enqueue() -> None:
        with factory() as session:
            source = session.get(DataSource, source_id)
            barrier.wait()
            try:
                run = enqueue_run(session, source=source, trigger="manual")
                session.commit()
                outcomes.append(run.id)
            except ConflictError as exc:
                session.rollback()
                outcomes.append(exc)

    threads = [threading.Thread(target=enqueue) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    runs = [o for o in outcomes if isinstance(o, uuid.UUID)]
    conflicts = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(outcomes) == 2, outcomes
    assert len(runs) == 1, outcomes
    assert len(conflicts) == 1, outcomes
    assert "already queued or running" in conflicts[0].message
    with factory() as session:
        stored = session.execute(select(SyncRun.id).where(SyncRun.source_id == source_id)).scalars()
        assert list(stored) == runs


def test_a_run_enqueued_while_another_is_uncommitted_waits_and_conflicts(factory, vault):
    """The check-then-insert race: B looks while A's run is not committed yet. On PostgreSQL B
    sees nothing and inserts, and the unique index makes it wait for A and then refuse; on
    SQLite B waits for A's write lock and then sees A's run."""
    source_id = make_source(factory, vault)
    outcome: list[object] = []

    def enqueue_b() -> None:
        with factory() as session:
            source = session.get(DataSource, source_id)
            try:
                outcome.append(enqueue_run(session, source=source, trigger="schedule").id)
                session.commit()
            except ConflictError as exc:
                outcome.append(exc)

    with factory() as a:
        run_a = enqueue_run(a, source=a.get(DataSource, source_id), trigger="manual")
        b = threading.Thread(target=enqueue_b)
        b.start()
        b.join(timeout=0.5)
        assert b.is_alive(), f"B did not wait for A's transaction: {outcome}"
        a.commit()
    b.join(timeout=30)

    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], ConflictError), outcome
    with factory() as session:
        stored = session.execute(select(SyncRun.id).where(SyncRun.source_id == source_id)).scalars()
        assert list(stored) == [run_a.id]


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_the_partial_unique_index_refuses_a_second_active_run(factory, vault, status):
    source_id = make_source(factory, vault)
    with factory() as session:
        session.add(SyncRun(source_id=source_id, trigger="manual", status=RunStatus.RUNNING))
        session.commit()
        session.add(SyncRun(source_id=source_id, trigger="manual", status=status))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()

        # Finished runs are outside the index: any number of them, beside one active run.
        session.add_all(
            SyncRun(source_id=source_id, trigger="manual", status=s)
            for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.FAILED)
        )
        session.commit()
        other = make_source(factory, vault)
        session.add(SyncRun(source_id=other, trigger="manual", status=status))
        session.commit()  # another source's active run is its own business


def test_a_waiting_run_keeps_its_lease_so_no_second_run_starts(client, factory, sb, monkeypatch):
    """A run that waits (a long Retry-After) or reads slowly for longer than its lease, without
    writing a batch, is alive: its worker renews the lease, so it is not taken for a dead one
    and no second run starts beside it."""
    monkeypatch.setattr(engine_module, "LEASE", timedelta(seconds=1.5))
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(faults={"status429Burst": 1, "retryAfterS": 3}, volume={"pages": 1})

    run_id = client.post(f"/api/data-sources/{source['id']}/sync", headers=headers).json()["runId"]
    time.sleep(2.2)  # past the lease, still waiting out the Retry-After: no batch written yet
    second = client.post(f"/api/data-sources/{source['id']}/sync", headers=headers)

    assert second.status_code == 409, second.text
    run, _ = poll_run(client, headers, run_id)
    assert run["status"] == "succeeded", run
    assert sb.stats()["retryAfterViolations"] == 0

"""Crash safety: a sync in another process is SIGKILLed mid-run, over real loopback HTTP to the
sandbox served by uvicorn in its own process. While that process lives its run is never taken;
once it is gone its run is recovered at once (it ran on this host: no need to wait out the
lease) as interrupted, the next run resumes from the last checkpoint, and the database ends up
exactly as a clean run into a fresh database leaves it: nothing lost, nothing doubled. A run of
another host's process is recovered only when its lease lapses."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from inflow.errors import ConflictError
from inflow.http.client import HttpOptions
from inflow.storage.models import Asset, DataPoint, DataSource, StreamState, SyncRun, utcnow
from inflow.sync.engine import EngineDeps, enqueue_run, recover_stale_runs
from tests.sync.connectors import INITIAL
from tests.sync.helpers import (
    API_KEY,
    assets_of,
    get_run,
    make_source,
    points_of,
    run_direct,
    start_runner,
)

PAGES = 40  # 40 pages x 61 days x 2 metrics = 4,880 data points, in 13 five-day windows
BATCH = 300


def _queue(factory, source_id: uuid.UUID) -> uuid.UUID:
    with factory() as session:
        source = session.get(DataSource, source_id)
        run_id = enqueue_run(session, source=source, trigger="manual").id
        session.commit()
    return run_id


def _checkpoint(factory, source_id: uuid.UUID) -> str | None:
    with factory() as session:
        row = session.get(StreamState, (source_id, "metrics"))
        return row.state.get("cursor") if row is not None else None


def _stored(factory, source_id: uuid.UUID) -> int:
    with factory() as session:
        points = session.scalar(select(func.count()).where(DataPoint.source_id == source_id))
        assets = session.scalar(select(func.count()).where(Asset.source_id == source_id))
    return int(points or 0) + int(assets or 0)


def test_killed_sync_resumes_from_its_checkpoint_and_ends_like_a_clean_run(
    engine, factory, fresh_factory, vault, settings, live_sb, live_sandbox_url, windowed, tmp_path
):
    live_sb.configure(volume={"pages": PAGES})
    config = {"baseUrl": f"{live_sandbox_url}/example", "apiKey": API_KEY}
    source_id = make_source(factory, vault, type_=windowed, config=config)
    run_id = _queue(factory, source_id)

    url = engine.url.render_as_string(hide_password=False)
    log = tmp_path / "runner.log"
    proc = start_runner(url, settings.data_dir, run_id, log, BATCH)
    try:
        deadline = time.monotonic() + 60
        # Kill it as soon as a window's checkpoint is committed: mid-run, between batches or
        # in the middle of one (whatever the worker was doing at that instant).
        while _checkpoint(factory, source_id) is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.005)
        with factory() as session:  # a live process's run is its own: nobody takes it
            assert recover_stale_runs(session, source_id=source_id) == 0
            with pytest.raises(ConflictError):
                enqueue_run(session, source=session.get(DataSource, source_id), trigger="manual")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    dead = get_run(factory, run_id)
    assert dead.status == "running"  # nobody is left to say otherwise
    cursor = _checkpoint(factory, source_id)
    assert cursor is not None
    stored = _stored(factory, source_id)
    total = 160 + 2 * PAGES * (INITIAL.days + 1)
    assert 0 < stored < total, "the kill came too late to test anything"
    # Counts commit with the batch they count: what the dead run reported is what is stored.
    assert dead.created == stored

    assert dead.lease_until > utcnow()  # its lease is fresh, but its process is gone
    with factory() as session:
        assert recover_stale_runs(session, source_id=source_id) == 1
        session.commit()
    recovered = get_run(factory, run_id)
    assert recovered.status == "interrupted"
    assert recovered.error["type"] == "WorkerLost"
    assert "resumes from the last checkpoint" in recovered.error["message"]
    assert recovered.finished_at is not None

    deps = EngineDeps(
        factory=factory, vault=vault, options=HttpOptions(allow_private_urls=True), batch_size=BATCH
    )
    resumed = run_direct(deps, source_id)

    assert resumed.status == "succeeded", resumed.error
    assert resumed.counts.created == total - stored
    assert resumed.counts.updated == 0
    resumed_run = get_run(factory, resumed.run_id)
    first_metrics = next(
        e["path"]
        for e in resumed_run.timeline["recent"]
        if e["path"].startswith("/example/v1/metrics")
    )
    restart = date.fromisoformat(cursor[:10]) - timedelta(days=2)  # the cursor minus lookback
    assert f"start_date={restart.isoformat()}" in first_metrics
    final = _checkpoint(factory, source_id)
    assert final is not None
    assert final > cursor

    clean_source = make_source(fresh_factory, vault, type_=windowed, config=config)
    clean = run_direct(
        EngineDeps(
            factory=fresh_factory,
            vault=vault,
            options=HttpOptions(allow_private_urls=True),
            batch_size=BATCH,
        ),
        clean_source,
    )
    assert clean.status == "succeeded", clean.error
    assert clean.counts.created == total

    assert points_of(factory, source_id) == points_of(fresh_factory, clean_source)
    assert assets_of(factory, source_id) == assets_of(fresh_factory, clean_source)


def test_a_run_of_another_hosts_process_waits_for_its_lease(factory, vault):
    """Distributed workers: whether a process of another machine lives is unknown here, so its
    run is taken only when it stopped renewing its lease."""
    source_id = make_source(factory, vault)
    run_id = _queue(factory, source_id)
    with factory() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(
                status="running",
                owner="another-host.example:4242:0a1b2c3d4e5f",
                lease_until=utcnow() + timedelta(seconds=60),
            )
        )
        session.commit()

    with factory() as session:
        assert recover_stale_runs(session) == 0
        with pytest.raises(ConflictError):
            enqueue_run(session, source=session.get(DataSource, source_id), trigger="manual")
    assert get_run(factory, run_id).status == "running"

    with factory() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
        session.commit()
        run = enqueue_run(session, source=session.get(DataSource, source_id), trigger="manual")
        session.commit()
    lapsed = get_run(factory, run_id)
    assert lapsed.status == "interrupted"
    assert lapsed.error["type"] == "WorkerLost"
    assert get_run(factory, run.id).status == "queued"

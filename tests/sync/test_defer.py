"""Deferring many sources' sync jobs at once (the tick's orphaned runs, a burst of schedules):
one batch statement, each job with its source's locks; a source with a job already waiting is
skipped, not a failure of the batch. On a real PostgreSQL queue (procrastinate's schema)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text

from inflow.storage.db import apply_job_schema, create_db_engine, session_scope
from inflow.storage.models import DataSource, SyncRun, utcnow
from inflow.sync.jobs import SYNC, build_app, defer_sync, defer_syncs, tick_job
from tests.conftest import fresh_pg_database
from tests.sync.helpers import make_source

pytestmark = pytest.mark.postgres


@pytest.fixture
def queue() -> Iterator[tuple[str, Engine]]:
    with fresh_pg_database("inflow_defer") as url:
        engine = create_db_engine(url)
        apply_job_schema(engine)
        yield url, engine
        engine.dispose()


def jobs(engine: Engine) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT args->>'source_id', lock, queueing_lock, status FROM procrastinate_jobs"
                " WHERE task_name = :task ORDER BY id"
            ),
            {"task": SYNC},
        ).all()
    return [tuple(r) for r in rows]


def test_many_sources_get_one_job_each_with_their_locks(queue):
    url, engine = queue
    sources = [uuid.uuid4() for _ in range(50)]

    async def run() -> None:
        app = build_app(url)
        async with app.open_async():
            await defer_syncs(app, sources)

    asyncio.run(run())

    assert jobs(engine) == [(str(s), f"source:{s}", f"sync:{s}", "todo") for s in sources]


def test_a_source_with_a_job_waiting_is_skipped_and_the_others_deferred(queue):
    url, engine = queue
    waiting, *others = [uuid.uuid4() for _ in range(4)]

    async def run() -> None:
        app = build_app(url)
        async with app.open_async():
            await defer_sync(app, waiting)
            await defer_syncs(app, [*others[:2], waiting, others[2]])

    asyncio.run(run())

    got = jobs(engine)
    assert sorted(j[0] for j in got) == sorted(str(s) for s in [waiting, *others])
    assert all(status == "todo" for *_, status in got)


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_due_schedule_gets_its_job_at_the_tick_that_queues_its_run(engine, factory, deps, vault):
    """Not 30 s later as an orphan: the tick that queues a due run defers its job too."""
    apply_job_schema(engine)
    source_id = make_source(factory, vault)
    with session_scope(factory) as session:
        source = session.get_one(DataSource, source_id)
        source.schedule, source.next_run_at = "every 1h", utcnow() - timedelta(minutes=5)
    url = engine.url.render_as_string(hide_password=False)

    async def tick() -> None:
        app = build_app(url)
        async with app.open_async():
            await tick_job(app, deps)

    asyncio.run(tick())

    with factory() as session:
        [run] = session.scalars(select(SyncRun).where(SyncRun.source_id == source_id)).all()
    assert (run.trigger, run.status) == ("schedule", "queued")
    mine = [j for j in jobs(engine) if j[0] == str(source_id)]
    assert mine == [(str(source_id), f"source:{source_id}", f"sync:{source_id}", "todo")]

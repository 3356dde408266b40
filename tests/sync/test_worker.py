"""Distributed mode: the API only queues runs; `inflow worker` processes claim and run them,
each run exactly once however many workers poll."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select

from inflow.storage.models import SyncRun
from inflow.sync.worker import run_worker
from tests.conftest import TestClient
from tests.sync.helpers import create_source, person, start_sync


def test_external_mode_queues_and_workers_run_each_run_once(settings, engine, sandbox, sb, deps):
    from inflow.api.app import create_app

    app = create_app(
        settings.model_copy(update={"worker": "external"}),
        engine=engine,
        migrate=False,
        transport=httpx.ASGITransport(app=sandbox),
    )
    sb.configure(volume={"pages": 2})
    _, headers = person(deps.factory)
    with TestClient(app) as client:
        run_ids = []
        for _ in range(4):
            source = create_source(client, headers)
            run_ids.append(start_sync(client, headers, source["id"]))
        statuses = [client.get(f"/api/runs/{r}", headers=headers).json()["status"] for r in run_ids]
        assert statuses == ["queued"] * 4  # nobody in the API process runs them

        async def two_workers() -> list[int]:
            return list(
                await asyncio.gather(
                    run_worker(deps, concurrency=2, poll_s=0.05, once=True),
                    run_worker(deps, concurrency=2, poll_s=0.05, once=True),
                )
            )

        ran = asyncio.run(two_workers())
        assert sum(ran) == 4  # every run once, none twice

    with deps.factory() as session:
        runs = (
            session.execute(select(SyncRun).where(SyncRun.id.in_([uuid.UUID(r) for r in run_ids])))
            .scalars()
            .all()
        )
    assert {r.status for r in runs} == {"succeeded"}
    assert all(r.created > 0 for r in runs)

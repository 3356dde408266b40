"""The demo's data: one source per sandbox connector for the demo admin, synced at start."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.services import sources as svc
from inflow.connectors import get_connector
from inflow.connectors.spec import Connector
from inflow.errors import ConflictError, ValidationFailedError
from inflow.logging import get_logger
from inflow.storage.crypto import Vault
from inflow.storage.db import session_scope
from inflow.storage.models import DataSource, User
from inflow.sync.engine import enqueue_run
from inflow.sync.worker import InProcessWorker

log = get_logger(__name__)
DEMO_SCHEDULE = "every 1h"  # so the embedded scheduler has something to do


def wait_until_up(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not come up")


def _demo_schedule(connector: Connector) -> str:
    """Hourly, or daily where a call quota would not allow it (Clarity: ten calls a day)."""
    try:
        svc.check_schedule(DEMO_SCHEDULE, connector)
    except ValidationFailedError:
        return "@daily"
    return DEMO_SCHEDULE


def seed_sources(
    factory: sessionmaker[Session],
    vault: Vault,
    *,
    admin_id: uuid.UUID,
    credentials: dict[str, Any],
) -> list[uuid.UUID]:
    """A source per connector the sandbox has working credentials for (OAuth ones need consent,
    so they are left for the user to connect); an existing demo source gets today's base URL."""
    ids: list[uuid.UUID] = []
    with session_scope(factory) as session:
        admin = session.get(User, admin_id)
        assert admin is not None  # noqa: S101 - created by the caller
        for type_, entry in sorted(credentials.items()):
            connector = get_connector(type_)
            config = entry.get("config") if isinstance(entry, dict) else None
            if connector is None or not config:
                continue
            name = f"Demo {connector.title}"
            existing = session.execute(
                select(DataSource).where(DataSource.owner_id == admin.id, DataSource.name == name)
            ).scalar_one_or_none()
            if existing is None:
                source = svc.create_source(
                    session,
                    owner=admin,
                    name=name,
                    type_=type_,
                    config=config,
                    vault=vault,
                    schedule=_demo_schedule(connector),
                )
            else:
                source = svc.update_source(session, source=existing, vault=vault, config=config)
            ids.append(source.id)
    return ids


def sync_all(
    factory: sessionmaker[Session], worker: InProcessWorker, source_ids: list[uuid.UUID]
) -> None:
    for source_id in source_ids:
        with session_scope(factory) as session:
            source = session.get(DataSource, source_id)
            if source is None:
                continue
            try:
                run = enqueue_run(session, source=source, trigger="demo")
            except ConflictError:
                continue
            run_id = run.id
        worker.submit(run_id)


def seed_and_sync(
    url: str,
    factory: sessionmaker[Session],
    vault: Vault,
    worker: InProcessWorker,
    admin_id: uuid.UUID,
) -> list[uuid.UUID]:
    """Once the server answers: create the demo sources against its mounted sandbox and sync."""
    wait_until_up(url)
    credentials = httpx.get(f"{url}/sandbox/_sandbox/credentials", timeout=10).json()
    ids = seed_sources(factory, vault, admin_id=admin_id, credentials=credentials)
    sync_all(factory, worker, ids)
    log.info("demo sources syncing", sources=len(ids))
    return ids

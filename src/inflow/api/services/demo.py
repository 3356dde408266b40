"""The demo's data: one source per sandbox connector for the demo admin, synced at start."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.services import accounts
from inflow.api.services import sources as svc
from inflow.connectors import get_connector
from inflow.connectors.spec import Connector, OAuth2AuthorizationCode
from inflow.errors import ConflictError, ValidationFailedError
from inflow.logging import get_logger
from inflow.storage.crypto import Vault
from inflow.storage.db import session_scope
from inflow.storage.models import (
    DataPoint,
    DataSource,
    Experiment,
    ExperimentDataPoint,
    RunStatus,
    Space,
    SyncRun,
    User,
)
from inflow.sync.engine import enqueue_run
from inflow.sync.worker import InProcessWorker

log = get_logger(__name__)
DEMO_SPACE = "Demo space"
DEMO_SCHEDULE = "every 1h"  # so the embedded scheduler has something to do
DEMO_TEST = "Demo: post twice a week on LinkedIn"
DEMO_TEST_SOURCE = "linkedin"
DEMO_TEST_METRIC = "impressions"
# What the demo's sources show beyond the sandbox's defaults: Aircall's team works New York
# days (a day is midnight to midnight there; inbound calls by Aircall's own outcomes), set when
# the source is created (a time zone is fixed once a source holds data); RingCentral's account
# is not Confirmed yet (its Test passes with a warning naming why).
DEMO_CONFIG: dict[str, dict[str, Any]] = {"aircall": {"timezone": "America/New_York"}}
DEMO_SANDBOX: dict[str, dict[str, int]] = {"ringcentral": {"accountStatus": 1}}
DEMO_WINDOWS = "microsoft_clarity"  # fetched over 72 hours and stored beside its 24-hour sync


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


def _demo_space(session: Session, admin: User) -> Space:
    space = session.execute(
        select(Space).where(Space.owner_id == admin.id, Space.name == DEMO_SPACE)
    ).scalar_one_or_none()
    if space is None:
        space = Space(
            name=DEMO_SPACE,
            description="Reports and dashboards of the demo's BI plugins.",
            owner_id=admin.id,
        )
        session.add(space)
        session.flush()
    return space


def seed_sources(
    factory: sessionmaker[Session],
    vault: Vault,
    *,
    admin_id: uuid.UUID,
    credentials: dict[str, Any],
) -> list[uuid.UUID]:
    """A source per connector the sandbox has working credentials for; an existing demo source
    gets today's base URL. OAuth sources still need consent: see ``connect_oauth``."""
    ids: list[uuid.UUID] = []
    with session_scope(factory) as session:
        admin = session.get(User, admin_id)
        assert admin is not None  # noqa: S101 - created by the caller
        space = _demo_space(session, admin)
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
                    config={**config, **DEMO_CONFIG.get(type_, {})},
                    vault=vault,
                    schedule=_demo_schedule(connector),
                    # The Marketplace's installations sync their reports into the demo space.
                    space_id=space.id if connector.category == "bi" else None,
                )
            else:
                source = svc.update_source(session, source=existing, vault=vault, config=config)
            ids.append(source.id)
    return ids


def connect_oauth(
    url: str, factory: sessionmaker[Session], *, admin_id: uuid.UUID, source_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Give consent for each OAuth source without tokens, as a user would click through it:
    Inflow's authorize route → the sandbox's consent page (automatic) → Inflow's callback.
    Returns the sources that are connected; a failure is logged and the source left as is."""
    with session_scope(factory) as session:
        admin = session.get(User, admin_id)
        assert admin is not None  # noqa: S101 - created by the caller
        sources = session.execute(select(DataSource).where(DataSource.id.in_(source_ids)))
        pending = [
            (s.id, s.type)
            for s in sources.scalars()
            if isinstance(_auth_of(s.type), OAuth2AuthorizationCode) and not s.tokens
        ]
        if not pending:
            return []
        row, token = accounts.issue_token(session, user=admin, name="demo consent", ttl_s=300)
        token_id = row.id
    connected: list[uuid.UUID] = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30, follow_redirects=True) as http:
        for source_id, type_ in pending:
            try:
                reply = http.get(
                    f"/api/oauth/{type_}/authorize", params={"sourceId": str(source_id)}
                )
            except httpx.HTTPError as exc:
                log.warning("demo consent failed", source=str(source_id), error=str(exc))
                continue
            # the callback sends the browser to the source's page (a login page for this client)
            if any("oauth=connected" in str(r.url) for r in (*reply.history, reply)):
                connected.append(source_id)
            else:
                log.warning("demo consent failed", source=str(source_id), url=str(reply.url))
    with session_scope(factory) as session:
        admin = session.get_one(User, admin_id)
        accounts.revoke_token(session, user=admin, token_id=token_id)
    return connected


def _auth_of(type_: str) -> object:
    connector = get_connector(type_)
    return connector.auth if connector is not None else None


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


def wait_for_runs(
    factory: sessionmaker[Session], source_ids: list[uuid.UUID], timeout_s: float = 120.0
) -> None:
    """Until no run of these sources is queued or running (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with factory() as session:
            active = session.execute(
                select(SyncRun.id).where(
                    SyncRun.source_id.in_(source_ids),
                    SyncRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)),
                )
            ).first()
        if active is None:
            return
        time.sleep(0.5)


def seed_test(
    factory: sessionmaker[Session], *, admin_id: uuid.UUID, source_ids: list[uuid.UUID]
) -> uuid.UUID | None:
    """A running test (experiment) linked to the last six weeks of the demo's LinkedIn
    impressions, so its results page has a baseline and a test window to compare."""
    today = datetime.now(UTC).date()
    with session_scope(factory) as session:
        existing = session.execute(
            select(Experiment.id).where(
                Experiment.owner_id == admin_id, Experiment.name == DEMO_TEST
            )
        ).scalar_one_or_none()
        if existing is not None:
            return existing
        points = (
            session.execute(
                select(DataPoint.id)
                .join(DataSource, DataSource.id == DataPoint.source_id)
                .where(
                    DataPoint.source_id.in_(source_ids),
                    DataSource.type == DEMO_TEST_SOURCE,
                    DataPoint.metric == DEMO_TEST_METRIC,
                    DataPoint.period_start >= datetime.now(UTC) - timedelta(weeks=6),
                )
            )
            .scalars()
            .all()
        )
        if not points:
            return None
        test = Experiment(
            owner_id=admin_id,
            name=DEMO_TEST,
            hypothesis="Posting twice a week instead of once raises daily impressions.",
            metric=DEMO_TEST_METRIC,
            start_date=today - timedelta(days=14),
            status="running",
        )
        session.add(test)
        session.flush()
        session.add_all(ExperimentDataPoint(test_id=test.id, data_point_id=p) for p in points)
        return test.id


def configure_sandbox(url: str) -> None:
    """Set the sandbox's switches the demo shows (``DEMO_SANDBOX``); a failure is logged."""
    for slug, volume in DEMO_SANDBOX.items():
        try:
            reply = httpx.post(
                f"{url}/sandbox/_sandbox/{slug}/config", json={"volume": volume}, timeout=10
            )
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("demo sandbox switch failed", emulator=slug, error=str(exc))


def show_windows(
    url: str, factory: sessionmaker[Session], *, admin_id: uuid.UUID, source_ids: list[uuid.UUID]
) -> None:
    """Clarity's last 72 hours fetched and stored (Create All) as a person would through the
    API, beside the sync's 24 hours: each window kept as what it is (``72h``, ``24h``)."""
    with session_scope(factory) as session:
        admin = session.get_one(User, admin_id)
        clarity = session.execute(
            select(DataSource.id).where(
                DataSource.id.in_(source_ids), DataSource.type == DEMO_WINDOWS
            )
        ).scalar_one_or_none()
        if clarity is None:
            return
        row, token = accounts.issue_token(session, user=admin, name="demo windows", ttl_s=300)
        token_id = row.id
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            start = datetime.now(UTC) - timedelta(hours=60)  # numOfDays=3: the last 72 hours
            fetched = http.post(
                f"/api/data-sources/{clarity}/fetch", json={"startDate": start.isoformat()}
            ).json()
            if fetched.get("success") and fetched.get("dataPoints"):
                points = {"dataPoints": fetched["dataPoints"]}
                http.post("/api/data-points", json=points).raise_for_status()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("demo windows failed", error=str(exc))
    finally:
        with session_scope(factory) as session:
            admin = session.get_one(User, admin_id)
            accounts.revoke_token(session, user=admin, token_id=token_id)


def seed_and_sync(
    url: str,
    factory: sessionmaker[Session],
    vault: Vault,
    worker: InProcessWorker,
    admin_id: uuid.UUID,
) -> list[uuid.UUID]:
    """Once the server answers: create the demo sources against its mounted sandbox and sync."""
    wait_until_up(url)
    configure_sandbox(url)
    credentials = httpx.get(f"{url}/sandbox/_sandbox/credentials", timeout=10).json()
    ids = seed_sources(factory, vault, admin_id=admin_id, credentials=credentials)
    connect_oauth(url, factory, admin_id=admin_id, source_ids=ids)
    sync_all(factory, worker, ids)
    log.info("demo sources syncing", sources=len(ids))
    with factory() as session:  # the demo test needs LinkedIn's points; the rest sync on
        linkedin = list(
            session.execute(
                select(DataSource.id).where(
                    DataSource.id.in_(ids), DataSource.type == DEMO_TEST_SOURCE
                )
            ).scalars()
        )
    wait_for_runs(factory, linkedin)
    seed_test(factory, admin_id=admin_id, source_ids=ids)
    show_windows(url, factory, admin_id=admin_id, source_ids=ids)
    return ids


def latest_runs(
    factory: sessionmaker[Session], source_ids: list[uuid.UUID]
) -> list[tuple[DataSource, SyncRun | None]]:
    """Each demo source with its latest run (the demo's live view of its syncs)."""
    with factory() as session:
        found: list[tuple[DataSource, SyncRun | None]] = []
        for source in session.execute(
            select(DataSource).where(DataSource.id.in_(source_ids)).order_by(DataSource.name)
        ).scalars():
            run = session.execute(
                select(SyncRun)
                .where(SyncRun.source_id == source.id)
                .order_by(SyncRun.created_at.desc())
                .limit(1)
            ).scalar_one_or_none()
            found.append((source, run))
        session.expunge_all()
    return found

"""Connection tests, fetch previews, syncs and their runs."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field
from sqlalchemy import select

from inflow.api.authz import require, require_of_source
from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.api.schemas import DayOrMoment, Schema
from inflow.api.services import data_points
from inflow.api.services.runs import run_state, stream_progress
from inflow.connectors import get_connector
from inflow.connectors.records import DataPoint
from inflow.connectors.runtime import days_zone
from inflow.connectors.spec import Connector, Window
from inflow.errors import FieldError, InflowError, ValidationFailedError
from inflow.storage import repo
from inflow.storage.models import (
    DataSource,
    SyncRun,
    utcnow,
)
from inflow.sync.engine import enqueue_run, fetch_points, test_source
from inflow.sync.scheduler import is_late
from inflow.sync.worker import InProcessWorker

router = APIRouter(tags=["runs"])


class CheckPublic(Schema):
    name: str
    ok: bool
    message: str
    warning: bool = False  # passed, with something the user should know (the message)


class TestResult(Schema):
    success: bool
    message: str
    checks: list[CheckPublic]


class FetchRequest(Schema):
    start_date: DayOrMoment = None
    end_date: DayOrMoment = None
    auto_create: bool = False
    link_to_tests: list[uuid.UUID] = Field(default_factory=list, max_length=100)


class DataPointPublic(Schema):
    source_id: uuid.UUID  # a fetched point posts back to POST /api/data-points unchanged
    metric: str
    value: float
    unit: str | None
    period_start: datetime
    period_end: datetime
    dimensions: dict[str, str]
    complete: bool
    # What "Create All" needs to store the point as read (POST /api/data-points).
    granularity: str = "day"
    timezone: str = "UTC"
    weight: float | None = None


class FetchResult(Schema):
    success: bool
    message: str
    data_points: list[DataPointPublic]
    created: int


class RunCounts(Schema):
    created: int
    updated: int
    unchanged: int
    deleted: int


class StreamCheckpoint(Schema):
    """Where a run is with one stream of its source, and that stream's last checkpoint."""

    name: str
    step: str  # done | reading | pending | stopped | not read
    requests: int
    checkpoint_at: datetime | None
    in_this_run: bool  # the checkpoint was committed by this run
    incremental: bool


class RunPublic(Schema):
    id: uuid.UUID
    source_id: uuid.UUID
    trigger: str
    status: str
    # status, made honest for a reader: ``waiting`` for a queued or running run that waits
    # (a rate limit, a retry's backoff: ``waiting`` says what for and until when)
    state: str
    scheduled_for: datetime | None = None  # a scheduled run's slot
    late: bool = False  # created well after its slot (no worker ran then); it ran once
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: RunCounts
    error: dict[str, Any] | None = None
    waiting: dict[str, Any] | None = None
    timeline: dict[str, Any] | None = None
    streams: list[StreamCheckpoint] | None = None  # GET /api/runs/{id}: checkpoint progress


class RunQueued(Schema):
    run_id: uuid.UUID


def _worker(request: Request) -> InProcessWorker:
    worker: InProcessWorker = request.app.state.worker
    return worker


def run_public(run: SyncRun, *, timeline: bool = False) -> RunPublic:
    return RunPublic(
        id=run.id,
        source_id=run.source_id,
        trigger=run.trigger,
        status=run.status,
        state=run_state(run),
        scheduled_for=run.scheduled_for,
        late=is_late(run.scheduled_for, run.created_at),
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        counts=RunCounts(
            created=run.created, updated=run.updated, unchanged=run.unchanged, deleted=run.deleted
        ),
        error=run.error,
        waiting=run.waiting,
        timeline=run.timeline if timeline else None,
    )


@router.post("/api/data-sources/{source_id}/test", operation_id="data-sources-test")
def test(
    source_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> TestResult:
    """Test the connection step by step; updates the source's health."""
    require(session, user, DataSource, source_id, audit=audit)
    session.commit()  # release the database before the (slow) provider calls
    steps = _worker(request).call(test_source(request.app.state.engine_deps, source_id))
    ok = bool(steps) and all(s.ok for s in steps)
    failed = next((s for s in steps if not s.ok), None)
    message = "connection test passed" if ok else (failed.message if failed else "no checks ran")
    warned = next((s for s in steps if s.ok and s.warning), None)
    if ok and warned is not None:
        message = f"connection test passed with a warning: {warned.message}"
    audit(
        "source.test",
        "success" if ok else "failure",
        target=f"data_sources:{source_id}",
        details={"failedStep": failed.name if failed else None},
    )
    return TestResult(
        success=ok,
        message=message,
        checks=[
            CheckPublic(name=s.name, ok=s.ok, message=s.message, warning=s.warning) for s in steps
        ],
    )


def _as_moment(value: datetime | date, *, end: bool, zone: tzinfo = UTC) -> datetime:
    """An instant as given; a date as the midnight that starts it (``end``: the one after it)
    in ``zone``, the source's own days."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    day = value + timedelta(days=1) if end and value < date.max else value
    moment = datetime.combine(day, time.min, zone)
    if end and value == date.max:
        moment = datetime.combine(value, time.max, zone)
    return moment.astimezone(UTC)


def read_range(window: Window, zone: tzinfo = UTC) -> str:
    """The range a read covered, as a person names it: the source's days, first and last
    included (``2026-11-30 to 2026-12-06 (America/New_York)``), or instants where a bound is
    not a midnight of ``zone``."""
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    name = getattr(zone, "key", "UTC")
    if start.time() == end.time() == time.min:
        last = (end - timedelta(days=1)).date()
        return f"{start.date()} to {last} ({name})"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({name})"


def _span(length: timedelta) -> str:
    days = length / timedelta(days=1)
    if days < 2 and length % timedelta(days=1):
        hours = round(length / timedelta(hours=1))
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{days:g} day{'s' if days != 1 else ''}" if days.is_integer() else f"{days:.1f} days"


FETCH_SLACK = timedelta(minutes=5)  # a range computed a moment ago still fits


def fetch_window(
    body: FetchRequest, now: datetime, connector: Connector | None = None, zone: tzinfo = UTC
) -> Window:
    """The date range asked for, checked: end after start, nothing in the future, and within
    the provider's reach (``connector.history``: how far back it serves; ``max_range``: the
    widest single read). A date is a day of ``zone`` (the source's days: 7 days of a New York
    source are 7 New York days). A start left out is a week before the end, cut to that reach."""
    history = connector.history if connector else None
    widest = connector.max_range if connector else None
    title = connector.title if connector else ""
    end = _as_moment(body.end_date, end=True, zone=zone) if body.end_date else now
    reach = min(end, now)  # nothing after now exists yet: the span that counts ends there
    if body.start_date:
        start = _as_moment(body.start_date, end=False, zone=zone)
    else:
        start = end - timedelta(days=7)
        if history is not None:
            start = max(start, now - history)
        if widest is not None:
            start = max(start, reach - widest)
    errors: dict[str, str] = {}  # one message per field, the most telling first
    if history is not None and end <= now - history:
        errors["endDate"] = f"{title} serves only the last {_span(history)}; the range ends before"
    if start >= end:
        errors.setdefault("endDate", "the end must be after the start")
    if start > now:
        errors["startDate"] = "the start is in the future"
    if end > now + timedelta(days=1):
        errors.setdefault("endDate", "the end is in the future")
    if history is not None and start < now - history - FETCH_SLACK:
        errors.setdefault(
            "startDate",
            f"{title} serves only the last {_span(history)}; "
            f"{start:%Y-%m-%d %H:%M} UTC is further back",
        )
    # a start out of reach is the reason; the width that follows from it is not another one
    if widest is not None and reach - start > widest + FETCH_SLACK and "startDate" not in errors:
        errors.setdefault(
            "endDate",
            f"{title} reads at most {_span(widest)} at once; this range spans "
            f"{_span(reach - start)}: narrow it",
        )
    if errors:
        raise ValidationFailedError(
            "invalid date range", [FieldError(k, m) for k, m in errors.items()]
        )
    return Window(start, min(end, now + timedelta(days=1)))


def link_points(
    session: SessionDep, *, source_id: uuid.UUID, points: list[DataPoint], test_ids: list[uuid.UUID]
) -> None:
    """Link the stored points of a fetch (found by their natural key) to the tests."""
    if not test_ids or not points:
        return
    from inflow.storage.models import DataPoint as Row

    keys = {(p.metric, p.granularity, p.period_start, p.dimensions_key) for p in points}
    rows = session.execute(
        select(Row.id, Row.metric, Row.granularity, Row.period_start, Row.dimensions_key).where(
            Row.source_id == source_id, Row.metric.in_({k[0] for k in keys})
        )
    )
    ids = [
        r.id for r in rows if (r.metric, r.granularity, r.period_start, r.dimensions_key) in keys
    ]
    data_points.link(session, test_ids=test_ids, point_ids=ids)


@router.post("/api/data-sources/{source_id}/fetch", operation_id="data-sources-fetch")
def fetch(
    source_id: uuid.UUID,
    body: FetchRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
) -> FetchResult:
    """Read metrics for a date range; with autoCreate store them (idempotently) and link them."""
    source = require(session, user, DataSource, source_id, audit=audit)
    connector = get_connector(source.type)
    zone = days_zone(connector, source.config)
    window = fetch_window(body, datetime.now(UTC), connector, zone)
    tests = data_points.check_tests(session, user, body.link_to_tests, audit)
    session.commit()
    deps = request.app.state.engine_deps
    try:
        points = _worker(request).call(fetch_points(deps, source_id, window))
    except InflowError as exc:
        audit(
            "source.fetch",
            "failure",
            target=f"data_sources:{source_id}",
            details={"error": exc.message},
        )
        session.commit()
        return FetchResult(success=False, message=exc.message, data_points=[], created=0)
    created = 0
    if body.auto_create:
        counts = repo.upsert_data_points(session, source_id=source.id, points=points)
        session.flush()
        link_points(session, source_id=source.id, points=points, test_ids=tests)
        created = counts.created
    audit(
        "source.fetch",
        target=f"data_sources:{source_id}",
        details={"points": len(points), "created": created, "autoCreate": body.auto_create},
    )
    return FetchResult(
        success=True,
        message=f"{len(points)} data points for {read_range(window, zone)}",
        data_points=[
            DataPointPublic(
                source_id=source.id,
                metric=p.metric,
                value=p.value,
                unit=p.unit,
                period_start=p.period_start,
                period_end=p.period_end,
                dimensions=dict(p.dimensions),
                complete=p.complete,
                granularity=p.granularity,
                timezone=p.timezone,
                weight=p.weight,
            )
            for p in points
        ],
        created=created,
    )


@router.post(
    "/api/data-sources/{source_id}/sync", status_code=202, operation_id="data-sources-sync"
)
def sync(
    source_id: uuid.UUID, request: Request, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> RunQueued:
    """Start an incremental sync in the background (409 while one is queued or running)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    run = enqueue_run(session, source=source, trigger="manual")
    audit("source.sync", target=f"data_sources:{source_id}", details={"runId": str(run.id)})
    session.commit()
    _worker(request).submit(run.id)
    return RunQueued(run_id=run.id)


@router.get("/api/runs/{run_id}", operation_id="runs-get")
def get_run(
    run_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> RunPublic:
    """A run with its counts, error, waiting state, request timeline and, per stream, where
    it is and its last checkpoint."""
    run = require_of_source(session, user, SyncRun, run_id, audit=audit)
    public = run_public(run, timeline=True)
    source = session.get(DataSource, run.source_id)
    if source is not None:
        public.streams = [
            StreamCheckpoint(
                name=p.name,
                step=p.step,
                requests=p.requests,
                checkpoint_at=p.checkpoint_at,
                in_this_run=p.in_this_run,
                incremental=p.incremental,
            )
            for p in stream_progress(session, run, source.type, run.timeline)
        ]
    return public


@router.post("/api/runs/{run_id}/cancel", status_code=202, operation_id="runs-cancel")
def cancel_run(
    run_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> RunPublic:
    """Ask a queued or running run to stop after its current batch."""
    run = require_of_source(session, user, SyncRun, run_id, audit=audit)
    if run.status in ("queued", "running"):
        run.cancel_requested = True
        if run.status == "queued":
            run.status = "cancelled"
            run.finished_at = utcnow()
    audit("run.cancel", target=f"sync_runs:{run_id}")
    return run_public(run)


@router.get("/api/data-sources/{source_id}/runs", operation_id="data-sources-runs")
def list_runs(
    source_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> list[RunPublic]:
    """The source's runs, newest first."""
    require(session, user, DataSource, source_id, audit=audit, action="read")
    rows = session.execute(
        select(SyncRun)
        .where(SyncRun.source_id == source_id)
        .order_by(SyncRun.created_at.desc())
        .limit(100)
    ).scalars()
    return [run_public(r) for r in rows]

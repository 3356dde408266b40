"""Data points: "Create All" after a fetch preview, series aggregated by each metric's rule,
period-over-period trends, raw points and a point's history."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, Field

from inflow import bounds
from inflow.api.authz import require
from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.api.schemas import DayOrMoment, Moment, Schema, aware
from inflow.api.services import data_points as svc
from inflow.api.services import metrics
from inflow.api.services.series import (
    Granularity,
    Period,
    Range,
    SeriesCache,
    SeriesQuery,
    change,
    check_range,
    parse_dimensions,
    zone,
)
from inflow.errors import FieldError, ValidationFailedError
from inflow.storage.models import DataSource, User

router = APIRouter(tags=["data-points"])


def _known_zone(value: str) -> str:
    if zone(value) is UTC:  # the fallback of a name this system does not know
        raise ValueError(f"unknown time zone {value!r} (an IANA name like 'Europe/Berlin')")
    return value


class DataPointIn(Schema):
    source_id: uuid.UUID
    metric: str = Field(min_length=1, max_length=128)
    value: float = Field(allow_inf_nan=False)
    unit: str | None = Field(default=None, max_length=32)
    period_start: Moment
    period_end: Moment
    dimensions: dict[str, str] = Field(default_factory=dict)
    granularity: Literal["hour", "day", "24h", "48h", "72h", "week", "month"] = "day"
    timezone: Annotated[str, AfterValidator(_known_zone)] = Field(default="UTC", max_length=64)
    complete: bool = True
    weight: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class DataPointsCreate(Schema):
    data_points: list[DataPointIn] = Field(min_length=1, max_length=20_000)
    link_to_tests: list[uuid.UUID] = Field(default_factory=list, max_length=100)


class DataPointsCreated(Schema):
    created: int
    updated: int
    unchanged: int


class PeriodPublic(Schema):
    period_start: datetime
    period_end: datetime
    value: float | None
    complete: bool


class SeriesPublic(Schema):
    metric: str
    unit: str | None
    granularity: str
    aggregation: str
    points: list[PeriodPublic]


class ChangePublic(Schema):
    absolute: float | None
    relative: float | None


class TrendPublic(Schema):
    metric: str
    unit: str | None
    aggregation: str
    current: PeriodPublic
    previous: PeriodPublic
    change: ChangePublic


class PointPublic(Schema):
    id: uuid.UUID
    source_id: uuid.UUID
    metric: str
    value: float
    unit: str | None
    period_start: datetime
    period_end: datetime
    granularity: str
    timezone: str
    dimensions: dict[str, Any]
    weight: float | None
    complete: bool
    updated_at: datetime


class PointsPublic(Schema):
    items: list[PointPublic]
    count: int


class RevisionPublic(Schema):
    value: float
    complete: bool
    weight: float | None = None
    period_end: datetime | None = None  # null in revisions written before it was kept
    recorded_at: datetime
    replaced_at: datetime


class HistoryPublic(Schema):
    point: PointPublic
    revisions: list[RevisionPublic]


MetricQuery = Annotated[str, Query(min_length=1, max_length=128)]
FromQuery = Annotated[DayOrMoment, Query(alias="from")]
ToQuery = Annotated[DayOrMoment, Query(alias="to")]


def _sources(
    session: SessionDep, user: User, source_id: uuid.UUID | None, audit: AuditDep
) -> dict[uuid.UUID, str]:
    """Source id → type: the one asked for (404 unless the caller may read it) or all of the
    caller's sources."""
    if source_id is not None:
        source = require(session, user, DataSource, source_id, audit=audit, action="read")
        return {source.id: source.type}
    return svc.visible_sources(session, user)


def _query(
    session: SessionDep,
    user: User,
    metric: str,
    sources: dict[uuid.UUID, str],
    window: Range,
    dimensions: str | None,
) -> SeriesQuery:
    formulas = metrics.formulas(session, owner_id=user.id)
    query = SeriesQuery(
        session,
        sources=sources,
        window=window,
        formulas=formulas,
        dimensions=parse_dimensions(dimensions),
    )
    # a connector's metric, one a source declares (a custom source's own), or a formula
    if metric not in formulas and query.definition(metric) is None:
        raise ValidationFailedError(
            "unknown metric",
            [FieldError("metric", f"{metric!r} is neither a connector metric nor yours")],
        )
    return query


def _aggregation(query: SeriesQuery, metric: str) -> str:
    return "formula" if metric in query.formulas else query.rule(metric).aggregation


def _unit(session: SessionDep, user: User, query: SeriesQuery, metric: str) -> str | None:
    if metric in query.formulas:
        custom = {m.key: m for m in metrics.list_custom(session, owner_id=user.id)}
        return custom[metric].unit
    return query.unit(metric)


def _public(period: Period) -> PeriodPublic:
    return PeriodPublic(
        period_start=period.start,
        period_end=period.end,
        value=period.value,
        complete=period.complete,
    )


@router.post("/api/data-points", operation_id="data-points-create")
def create_points(
    body: DataPointsCreate, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> DataPointsCreated:
    """Store reviewed data points (idempotently) and link them to tests; all or nothing."""
    counts = svc.create_points(
        session,
        user=user,
        points=[
            svc.NewPoint(
                source_id=p.source_id,
                metric=p.metric,
                value=p.value,
                period_start=p.period_start,
                period_end=p.period_end,
                dimensions=p.dimensions,
                granularity=p.granularity,
                unit=p.unit,
                timezone=p.timezone,
                complete=p.complete,
                weight=p.weight,
            )
            for p in body.data_points
        ],
        test_ids=body.link_to_tests,
        audit=audit,
    )
    audit(
        "data_points.create",
        details={
            **counts.as_dict(),
            "sources": len({p.source_id for p in body.data_points}),
            "tests": [str(t) for t in body.link_to_tests],
        },
    )
    return DataPointsCreated(
        created=counts.created, updated=counts.updated, unchanged=counts.unchanged
    )


def _series_cache(request: Request) -> SeriesCache:
    """The process's series cache (see ``SeriesCache``), made on first use."""
    cache: SeriesCache | None = getattr(request.app.state, "series_cache", None)
    if cache is None:
        cache = request.app.state.series_cache = SeriesCache()
    return cache


def _series_response(head: SeriesPublic, periods: list[Period]) -> Response:
    """``head`` with ``periods`` as its points, rendered by orjson: the same JSON pydantic
    writes for ``SeriesPublic`` (tests/api/test_data_points.py holds them equal), without a
    model per period (thousands per request on the hot route)."""
    body = head.model_dump(by_alias=True, mode="json")
    body["points"] = [
        {"periodStart": p.start, "periodEnd": p.end, "value": p.value, "complete": p.complete}
        for p in periods
    ]
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


@router.get("/api/data-points", operation_id="data-points-series", response_model=SeriesPublic)
def series(
    request: Request,
    metric: MetricQuery,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
    source_id: Annotated[uuid.UUID | None, Query(alias="sourceId")] = None,
    start: FromQuery = None,
    end: ToQuery = None,
    granularity: Granularity = "day",
    dimensions: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """A metric per day, ISO week or month by its own rule; ``dimensions``: ``page:/a,device:m`` or JSON."""
    window = Range(start, end)
    check_range(window)
    sources = _sources(session, user, source_id, audit)
    query = _query(session, user, metric, sources, window, dimensions)
    head = SeriesPublic(
        metric=metric,
        unit=_unit(session, user, query, metric),
        granularity=granularity,
        aggregation=_aggregation(query, metric),
        points=[],
    )
    return _series_response(head, _series_cache(request).series(query, metric, granularity))


@router.get("/api/data-points/trends", operation_id="data-points-trends")
def trends(
    metric: MetricQuery,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
    source_id: Annotated[uuid.UUID | None, Query(alias="sourceId")] = None,
    start: FromQuery = None,
    end: ToQuery = None,
    dimensions: Annotated[str | None, Query(max_length=2000)] = None,
) -> TrendPublic:
    """The metric over a period vs the period of the same length just before it.

    ``from``/``to`` default to the last seven whole days (UTC); ``current`` and ``previous``
    each hold ``{periodStart, periodEnd, value, complete}`` (the whole period aggregated by the
    metric's rule), ``change`` holds ``absolute`` (current - previous) and ``relative``
    ((current - previous) / |previous|; null when previous is 0 or either value is missing).
    """
    today = datetime.now(UTC).date()
    end = end if end is not None else today - timedelta(days=1)
    start = start if start is not None else _as_day(end) - timedelta(days=6)
    window = Range(start, end)
    check_range(window)
    sources = _sources(session, user, source_id, audit)
    current = _query(session, user, metric, sources, window, dimensions)
    before = window.shifted_back()
    previous = _query(session, user, metric, sources, before, dimensions)

    def period(query: SeriesQuery, span: Range) -> Period:
        found = query.total(metric)
        if found is not None:
            return found
        now = datetime.now(UTC)  # both bounds are set: the fallbacks are for the type checker
        return Period(span.start_instant() or now, span.end_instant() or now, None, False)

    now_period, then_period = period(current, window), period(previous, before)
    moved = change(now_period.value, then_period.value)
    return TrendPublic(
        metric=metric,
        unit=_unit(session, user, current, metric),
        aggregation=_aggregation(current, metric),
        current=_public(now_period),
        previous=_public(then_period),
        change=ChangePublic(absolute=moved.absolute, relative=moved.relative),
    )


def _as_day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _moment(value: date | datetime | None, *, end: bool) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return aware(value) if value is not None else None
    return datetime.combine(value + timedelta(days=1) if end else value, time.min, UTC)


def point_public(point: Any) -> PointPublic:
    return PointPublic.model_validate(point)


@router.get("/api/data-points/raw", operation_id="data-points-raw")
def raw_points(
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
    source_id: Annotated[uuid.UUID | None, Query(alias="sourceId")] = None,
    metric: Annotated[str | None, Query(max_length=128)] = None,
    start: FromQuery = None,
    end: ToQuery = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=bounds.MAX_OFFSET)] = 0,
) -> PointsPublic:
    """Stored points as they are (oldest period first), with their ids; dates are UTC."""
    sources = _sources(session, user, source_id, audit)
    rows, total = svc.list_points(
        session,
        source_ids=list(sources),
        metric=metric,
        start=_moment(start, end=False),
        end=_moment(end, end=True),
        limit=limit,
        offset=offset,
    )
    return PointsPublic(items=[point_public(r) for r in rows], count=total)


@router.get("/api/data-points/{point_id}/history", operation_id="data-points-history")
def history(point_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> HistoryPublic:
    """A point's current value and the values it replaced (newest first)."""
    point = svc.require_point(session, user, point_id)
    return HistoryPublic(
        point=point_public(point),
        revisions=[RevisionPublic.model_validate(r) for r in svc.revisions(session, point)],
    )

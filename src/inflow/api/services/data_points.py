"""Data points from the API: "Create All Data Points" after a fetch preview, links to tests,
raw listings and a point's history of restated values.

Every write goes through ``repo.upsert_data_points`` (the sync engine's own upsert), so a
point sent twice is stored once and a restated value keeps its previous one as a revision.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from inflow.api.authz import allowed, require
from inflow.api.deps import Auditor
from inflow.connectors import get_connector
from inflow.connectors.records import DataPoint as Record
from inflow.connectors.records import Granularity
from inflow.errors import FieldError, NotFoundError, PermissionDeniedError, ValidationFailedError
from inflow.storage import repo
from inflow.storage.models import (
    DataPoint,
    DataPointRevision,
    DataSource,
    Experiment,
    ExperimentDataPoint,
    Role,
    User,
)

MAX_DIMENSIONS_KEY = 512  # the column's width


@dataclass(frozen=True)
class NewPoint:
    """One point of a "Create All" request, as the fetch preview showed it."""

    source_id: uuid.UUID
    metric: str
    value: float
    period_start: datetime
    period_end: datetime
    dimensions: dict[str, str]
    granularity: Granularity = "day"
    unit: str | None = None
    timezone: str = "UTC"
    complete: bool = True
    weight: float | None = None

    @classmethod
    def of(cls, source_id: uuid.UUID, point: Record) -> NewPoint:
        """A point a connector read (a fetch kept for review), to be stored for ``source_id``."""
        return cls(
            source_id=source_id,
            metric=point.metric,
            value=point.value,
            period_start=point.period_start,
            period_end=point.period_end,
            dimensions=dict(point.dimensions),
            granularity=point.granularity,
            unit=point.unit,
            timezone=point.timezone,
            complete=point.complete,
            weight=point.weight,
        )


def own_source(
    session: Session, user: User, source_id: uuid.UUID, audit: Auditor
) -> DataSource | None:
    """The source, if the caller may write to it (a refusal is audited by ``require``)."""
    try:
        return require(session, user, DataSource, source_id, audit=audit)
    except (NotFoundError, PermissionDeniedError):
        return None


def check_tests(
    session: Session,
    user: User,
    ids: Sequence[uuid.UUID],
    audit: Auditor,
    *,
    field: str = "linkToTests",
) -> list[uuid.UUID]:
    """The test ids, if each is a test the caller may change; else a 422 naming each other
    one (a stranger's test reads exactly like a missing one)."""
    bad = []
    for index, test_id in enumerate(ids):
        try:
            require(session, user, Experiment, test_id, audit=audit)
        except (NotFoundError, PermissionDeniedError):
            bad.append(FieldError(f"{field}.{index}", f"test {test_id} not found"))
    if bad:
        raise ValidationFailedError(f"unknown tests in {field}", bad)
    return list(dict.fromkeys(ids))


def link(session: Session, *, test_ids: Sequence[uuid.UUID], point_ids: Sequence[uuid.UUID]) -> int:
    """Link points to tests (once each); returns how many links are new."""
    new = 0
    wanted = list(dict.fromkeys(point_ids))
    for test_id in test_ids:
        linked = set(
            session.execute(
                select(ExperimentDataPoint.data_point_id).where(
                    ExperimentDataPoint.test_id == test_id
                )
            ).scalars()
        )
        fresh = [p for p in wanted if p not in linked]
        session.add_all(ExperimentDataPoint(test_id=test_id, data_point_id=p) for p in fresh)
        new += len(fresh)
    session.flush()
    return new


def _check_points(
    session: Session, user: User, points: Sequence[NewPoint], audit: Auditor
) -> list[FieldError]:
    errors: list[FieldError] = []
    sources: dict[uuid.UUID, DataSource | None] = {}
    for index, p in enumerate(points):
        where = f"dataPoints.{index}"
        if p.source_id not in sources:
            sources[p.source_id] = own_source(session, user, p.source_id, audit)
        source = sources[p.source_id]
        if source is None:  # missing or a stranger's: the same answer
            errors.append(FieldError(f"{where}.sourceId", f"data source {p.source_id} not found"))
            continue
        connector = get_connector(source.type)
        if connector is None or connector.metric(p.metric, source.config) is None:
            known = ", ".join(m.key for m in connector.metrics) if connector else "none"
            title = connector.title if connector else source.type
            errors.append(
                FieldError(
                    f"{where}.metric",
                    f"{p.metric!r} is not a metric of {title} (known: {known})",
                )
            )
        if p.period_end <= p.period_start:
            errors.append(FieldError(f"{where}.periodEnd", "the end must be after the start"))
        if len(Record("m", 0, p.period_start, p.period_end, dimensions=p.dimensions)
               .dimensions_key) > MAX_DIMENSIONS_KEY:  # fmt: skip
            errors.append(FieldError(f"{where}.dimensions", "too many or too long dimensions"))
    return errors


def _record(p: NewPoint, source: DataSource) -> Record:
    connector = get_connector(source.type)
    definition = connector.metric(p.metric, source.config) if connector else None
    return Record(
        metric=p.metric,
        value=p.value,
        period_start=p.period_start,
        period_end=p.period_end,
        granularity=p.granularity,
        dimensions=p.dimensions,
        unit=p.unit if p.unit is not None else (definition.unit if definition else None),
        timezone=p.timezone,
        complete=p.complete,
        weight=p.weight,
    )


def _point_ids(
    session: Session, source_id: uuid.UUID, records: Sequence[Record]
) -> list[uuid.UUID]:
    keys = {(r.metric, r.granularity, r.period_start, r.dimensions_key) for r in records}
    starts = [r.period_start for r in records]
    rows = session.execute(
        select(
            DataPoint.id,
            DataPoint.metric,
            DataPoint.granularity,
            DataPoint.period_start,
            DataPoint.dimensions_key,
        ).where(
            DataPoint.source_id == source_id,
            DataPoint.metric.in_({r.metric for r in records}),
            DataPoint.period_start >= min(starts),
            DataPoint.period_start <= max(starts),
        )
    )
    return [
        r.id for r in rows if (r.metric, r.granularity, r.period_start, r.dimensions_key) in keys
    ]


def create_points(
    session: Session,
    *,
    user: User,
    points: Sequence[NewPoint],
    test_ids: Sequence[uuid.UUID],
    audit: Auditor,
) -> repo.Counts:
    """Check every point and test first (a 422 naming each bad item; nothing is written),
    then upsert per source and link the points to the tests."""
    errors = _check_points(session, user, points, audit)
    try:
        tests = check_tests(session, user, test_ids, audit)
    except ValidationFailedError as exc:
        errors.extend(exc.errors)
        tests = []
    if errors:
        raise ValidationFailedError("invalid data points", errors)
    by_source: dict[uuid.UUID, list[Record]] = defaultdict(list)
    sources: dict[uuid.UUID, DataSource] = {}
    for p in points:
        source = sources.get(p.source_id) or session.get(DataSource, p.source_id)
        assert source is not None  # noqa: S101 - checked above
        sources[p.source_id] = source
        by_source[p.source_id].append(_record(p, source))
    counts = repo.Counts()
    for source_id, records in by_source.items():
        counts.add(repo.upsert_data_points(session, source_id=source_id, points=records))
        if tests:
            session.flush()
            link(session, test_ids=tests, point_ids=_point_ids(session, source_id, records))
    return counts


def visible_sources(session: Session, user: User) -> dict[uuid.UUID, str]:
    """Id → type of the sources the caller may read (all of them for an admin)."""
    stmt = select(DataSource.id, DataSource.type)
    if user.role != Role.ADMIN:
        stmt = stmt.where(DataSource.owner_id == user.id)
    return {row.id: row.type for row in session.execute(stmt)}


def require_point(session: Session, user: User, point_id: uuid.UUID) -> DataPoint:
    """A point of a source the caller may read; else a 404 (a stranger's reads as missing)."""
    point = session.get(DataPoint, point_id)
    source = session.get(DataSource, point.source_id) if point is not None else None
    if point is None or source is None or not allowed(session, user, source, "read"):
        raise NotFoundError(f"data point {point_id} not found")
    return point


def revisions(session: Session, point: DataPoint) -> list[DataPointRevision]:
    """The point's previous values, newest first."""
    return list(
        session.execute(
            select(DataPointRevision)
            .where(DataPointRevision.data_point_id == point.id)
            .order_by(DataPointRevision.replaced_at.desc(), DataPointRevision.id.desc())
        ).scalars()
    )


def list_points(
    session: Session,
    *,
    source_ids: Sequence[uuid.UUID],
    metric: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[DataPoint], int]:
    """Stored points (oldest period first) and how many match in all."""
    where: list[ColumnElement[bool]] = [DataPoint.source_id.in_(source_ids)]
    if metric is not None:
        where.append(DataPoint.metric == metric)
    if start is not None:
        where.append(DataPoint.period_start >= start)
    if end is not None:
        where.append(DataPoint.period_start < end)
    total = session.scalar(select(func.count()).select_from(DataPoint).where(*where)) or 0
    rows = session.execute(
        select(DataPoint)
        .where(*where)
        .order_by(DataPoint.period_start, DataPoint.metric, DataPoint.dimensions_key, DataPoint.id)
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), int(total)


@dataclass(frozen=True)
class StoredMetric:
    """What a source holds of one metric: how many points, from which period to which."""

    metric: str
    points: int
    first: datetime
    last: datetime


def stored_summary(session: Session, source_id: uuid.UUID) -> list[StoredMetric]:
    """Per metric of the source: its stored points' count and first and last period start."""
    rows = session.execute(
        select(
            DataPoint.metric,
            func.count(),
            func.min(DataPoint.period_start),
            func.max(DataPoint.period_start),
        )
        .where(DataPoint.source_id == source_id)
        .group_by(DataPoint.metric)
    )
    return [StoredMetric(metric, int(n), first, last) for metric, n, first, last in rows]

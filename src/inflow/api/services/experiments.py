"""Tests (experiments): checks on their fields, linked data points, and their results.

Results, per metric of the test (each metric of its linked points, and its own ``metric``):
- which data: the series (source and dimension values) of the test's linked points of that
  metric, every stored point of them, not only the linked ones; a metric without linked
  points (the test's ``metric`` alone) reads the sources of the test's linked points, or all
  of the owner's sources when nothing is linked, over all dimension values;
- ``during``: the test's days, ``startDate`` through ``endDate`` (or today while it runs);
  ``baseline``: the same number of days just before ``startDate`` (those of them with data);
- each value is the window aggregated by the metric's rule (a custom metric: its operands,
  then its formula); additive (``sum``) metrics are compared per day with data, so a baseline
  with fewer days of data still compares;
- the change is significant when ``|during - baseline|`` is more than twice the standard
  deviation of the baseline's daily values (at least two days of them; else unknown).
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inflow.api.authz import allowed
from inflow.api.services import metrics
from inflow.api.services.formula import Formula
from inflow.api.services.series import Period, Range, SeriesQuery, change, shift
from inflow.errors import FieldError, ValidationFailedError
from inflow.storage.models import (
    DataPoint,
    DataSource,
    Experiment,
    ExperimentDataPoint,
    Role,
    User,
)

STATUSES = ("draft", "running", "completed", "cancelled")
SIGNIFICANCE = 2.0
RULE = (
    "significant when |during - baseline| > 2 times the standard deviation of the baseline's daily "
    "values (needs at least 2 baseline days with data); additive metrics compare per day"
)


def check_fields(
    session: Session, *, owner_id: uuid.UUID, metric: str | None, start: date, end: date | None
) -> None:
    """422s for a metric nobody defines and an end before the start."""
    errors = []
    if metric is not None and not metrics.is_known(session, owner_id=owner_id, key=metric):
        errors.append(
            FieldError("metric", f"{metric!r} is neither a connector metric nor a custom one")
        )
    if end is not None and end < start:
        errors.append(FieldError("endDate", "the end date is before the start date"))
    if errors:
        raise ValidationFailedError("invalid test", errors)


def list_tests(session: Session, *, user: User) -> list[Experiment]:
    stmt = select(Experiment).order_by(Experiment.created_at)
    if user.role != Role.ADMIN:
        stmt = stmt.where(Experiment.owner_id == user.id)
    return list(session.execute(stmt).scalars())


def point_counts(session: Session, test_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not test_ids:
        return {}
    rows = session.execute(
        select(ExperimentDataPoint.test_id, func.count())
        .where(ExperimentDataPoint.test_id.in_(test_ids))
        .group_by(ExperimentDataPoint.test_id)
    )
    return {test_id: int(n) for test_id, n in rows}


def link_points(
    session: Session, *, user: User, test: Experiment, ids: Sequence[uuid.UUID]
) -> tuple[int, int]:
    """Link the caller's points to ``test``: (new links, already linked). A point that is
    missing or on a source the caller may not change is a 422 naming it; nothing is linked."""
    wanted = list(dict.fromkeys(ids))
    found = {
        p.id: p.source_id
        for p in session.execute(
            select(DataPoint.id, DataPoint.source_id).where(DataPoint.id.in_(wanted))
        )
    }
    sources = {
        s.id: s
        for s in session.execute(
            select(DataSource).where(DataSource.id.in_(set(found.values())))
        ).scalars()
    }
    bad = [
        FieldError(f"ids.{index}", f"data point {point_id} not found")
        for index, point_id in enumerate(ids)
        if point_id not in found or not allowed(session, user, sources[found[point_id]], "write")
    ]
    if bad:
        raise ValidationFailedError("unknown data points", bad)
    linked = set(
        session.execute(
            select(ExperimentDataPoint.data_point_id).where(
                ExperimentDataPoint.test_id == test.id,
                ExperimentDataPoint.data_point_id.in_(wanted),
            )
        ).scalars()
    )
    fresh = [p for p in wanted if p not in linked]
    session.add_all(ExperimentDataPoint(test_id=test.id, data_point_id=p) for p in fresh)
    session.flush()
    return len(fresh), len(wanted) - len(fresh)


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Window:
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def windows(test: Experiment, today: date) -> tuple[Window | None, Window] | None:
    """(baseline, during); ``None`` before the test has started. The baseline is cut at the
    calendar's start (``None`` for a test stored as starting on its first day)."""
    end = min(test.end_date or today, today)
    if test.start_date > today or end < test.start_date:
        return None
    during = Window(test.start_date, end)
    if test.start_date == date.min:
        return None, during
    baseline = Window(shift(test.start_date, -during.days), shift(test.start_date, -1))
    return baseline, during


def _scopes(session: Session, test: Experiment) -> dict[str, set[tuple[uuid.UUID, str]]]:
    """metric → the (source, dimensions key) series of the test's linked points."""
    rows = session.execute(
        select(DataPoint.metric, DataPoint.source_id, DataPoint.dimensions_key)
        .join(ExperimentDataPoint, ExperimentDataPoint.data_point_id == DataPoint.id)
        .where(ExperimentDataPoint.test_id == test.id)
        .distinct()
    )
    scopes: dict[str, set[tuple[uuid.UUID, str]]] = defaultdict(set)
    for metric, source_id, dims in rows:
        scopes[metric].add((source_id, dims))
    return scopes


def _window_public(window: Window, total: Period | None) -> dict[str, Any]:
    return {
        "from": window.first,
        "to": window.last,
        "days": total.days if total else 0,
        "value": total.value if total else None,
        "complete": total.complete if total else False,
    }


@dataclass
class _Context:
    session: Session
    test: Experiment
    scopes: dict[str, set[tuple[uuid.UUID, str]]]
    formulas: dict[str, Formula]
    units: dict[str, str]
    now: datetime

    def sources(self, metric: str) -> dict[uuid.UUID, str]:
        """Source id → type of the sources a metric of the test is read from."""
        scope = self.scopes.get(metric)
        if scope is not None:
            ids = {source for source, _ in scope}
        else:
            ids = {source for s in self.scopes.values() for source, _ in s}
        stmt = select(DataSource.id, DataSource.type)
        stmt = (
            stmt.where(DataSource.id.in_(ids))
            if ids
            else stmt.where(DataSource.owner_id == self.test.owner_id)
        )
        return {row.id: row.type for row in self.session.execute(stmt)}

    def query(self, metric: str, window: Window) -> SeriesQuery:
        types = self.sources(metric)
        return SeriesQuery(
            self.session,
            sources=types,
            window=Range(window.first, window.last),
            formulas=self.formulas,
            scope={metric: self.scopes[metric]} if metric in self.scopes else None,
            now=self.now,
        )

    def result(self, metric: str, spans: tuple[Window | None, Window] | None) -> dict[str, Any]:
        custom = metric in self.formulas
        entry: dict[str, Any] = {
            "metric": metric,
            "unit": self.units.get(metric),
            "aggregation": "formula" if custom else None,
            "baseline": None,
            "during": None,
            "change": {"absolute": None, "relative": None},
            "baselineDailyStdDev": None,
            "significant": None,
        }
        if spans is None:
            return entry
        baseline_window, during_window = spans
        before = self.query(metric, baseline_window) if baseline_window else None
        during = self.query(metric, during_window)
        base = before.total(metric, per_day=True) if before else None
        now = during.total(metric, per_day=True)
        # a day whose sum overflowed a double (values near 1e308) has no spread to give
        days = before.daily_values(metric).values() if before else []
        daily = [v for v in days if v is not None and math.isfinite(v)]
        spread = statistics.stdev(daily) if len(daily) >= 2 else None
        moved = change(now.value if now else None, base.value if base else None)
        significant = None
        if moved.absolute is not None and spread is not None:
            significant = abs(moved.absolute) > SIGNIFICANCE * spread
        if not custom:
            entry["unit"] = during.unit(metric)
            entry["aggregation"] = during.rule(metric).aggregation
        entry |= {
            "baseline": _window_public(baseline_window, base) if baseline_window else None,
            "during": _window_public(during_window, now),
            "change": {"absolute": moved.absolute, "relative": moved.relative},
            "baselineDailyStdDev": spread,
            "significant": significant,
        }
        return entry


def results(session: Session, test: Experiment, *, now: datetime | None = None) -> dict[str, Any]:
    """The test's results (the rules are in the module docstring)."""
    now = now or datetime.now(UTC)
    scopes = _scopes(session, test)
    names = sorted(scopes)
    if test.metric and test.metric not in scopes:
        names.insert(0, test.metric)
    elif test.metric:
        names.remove(test.metric)
        names.insert(0, test.metric)
    context = _Context(
        session,
        test,
        scopes,
        metrics.formulas(session, owner_id=test.owner_id),
        {m.key: m.unit for m in metrics.list_custom(session, owner_id=test.owner_id)},
        now,
    )
    spans = windows(test, now.date())
    return {
        "testId": test.id,
        "rule": RULE,
        "started": spans is not None,
        "metrics": [context.result(name, spans) for name in names],
    }


def daily_series(
    session: Session,
    test: Experiment,
    metric: str,
    first: date,
    last: date,
    *,
    now: datetime | None = None,
) -> list[Period]:
    """A metric of the test per day from ``first`` to ``last``, read as its results read it
    (the series of the linked points; see the module docstring): what a chart of the results
    draws."""
    context = _Context(
        session,
        test,
        _scopes(session, test),
        metrics.formulas(session, owner_id=test.owner_id),
        {},
        now or datetime.now(UTC),
    )
    return context.query(metric, Window(first, last)).series(metric, "day")

"""Tests (experiments): checks on their fields, linked data points, and their results.

Results, per metric of the test (each metric of its linked points, and its own ``metric``):
- which data: the series (source and dimension values) of the test's linked points of that
  metric, every stored point of them, not only the linked ones; a metric without linked
  points (the test's ``metric`` alone) reads the sources of the test's linked points, or all
  of the owner's sources when nothing is linked, over all dimension values;
- ``during``: the test's days, ``startDate`` through ``endDate`` (or today while it runs);
  ``baseline``: the same days moved back by whole weeks (``stats.baseline_lag``: 7 days for
  a test of a week or less, 14 for one of 8 to 14 days...), so both windows hold the same
  weekdays; days before the calendar's start are left out;
- each window's value is the window aggregated by the metric's rule (a custom metric: its
  operands, then its formula); additive (``sum``) metrics are compared per day with data;
- whether the change is more than noise: a paired t-test of the daily values, each test day
  against the same weekday in the baseline (``inflow.api.services.stats`` says why), with a
  95 % interval and a p-value; fewer than 7 such pairs: ``significant`` is ``None`` and
  ``reason`` says what is missing;
- with a ``control`` (a metric, source or dimension values the change did not touch), the
  test's metric is also compared by difference-in-differences: the same test on each day's
  treated minus control value, so a trend both share cancels;
- each guardrail (a metric, the direction that is bad, a relative tolerance) is ``breached``
  when its interval of the relative change reaches past the tolerance in the bad direction,
  ``ok`` when it stays within, ``inconclusive`` when there are too few days to tell.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inflow.api.authz import allowed
from inflow.api.services import metrics, stats
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
RULE = (
    "significant when the 95 % confidence interval of the change excludes 0 (p < 0.05): a paired "
    "t-test of daily values, each test day against the same weekday in the baseline, the test "
    f"window moved back by whole weeks; at least {stats.MIN_PAIRS} such pairs of days (a full "
    "week) before anything is called significant; additive metrics compare per day"
)


def check_fields(
    session: Session,
    *,
    owner_id: uuid.UUID,
    metric: str | None,
    start: date,
    end: date | None,
    control: Mapping[str, Any] | None = None,
    guardrails: Sequence[Mapping[str, Any]] = (),
) -> None:
    """422s for a metric nobody defines (the test's, its control's, a guardrail's), an end
    before the start, a control on a source the owner does not have or without the test's
    metric."""
    errors = []

    def unknown(key: str) -> bool:
        return not metrics.is_known(session, owner_id=owner_id, key=key)

    def problem(key: str) -> str:
        return f"{key!r} is neither a connector metric nor a custom one"

    if metric is not None and unknown(metric):
        errors.append(FieldError("metric", problem(metric)))
    if end is not None and end < start:
        errors.append(FieldError("endDate", "the end date is before the start date"))
    if control is not None:
        if metric is None:
            errors.append(FieldError("control", "a control needs the test's metric"))
        if (name := control.get("metric")) is not None and unknown(name):
            errors.append(FieldError("control.metric", problem(name)))
        if (source_id := control.get("sourceId")) is not None:
            owner = session.scalar(
                select(DataSource.owner_id).where(DataSource.id == uuid.UUID(str(source_id)))
            )
            if owner != owner_id:
                errors.append(FieldError("control.sourceId", f"source {source_id} not found"))
    for index, guardrail in enumerate(guardrails):
        if unknown(guardrail["metric"]):
            errors.append(FieldError(f"guardrails.{index}.metric", problem(guardrail["metric"])))
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
    """(baseline, during); ``None`` before the test has started. The baseline is the test
    window moved back by whole weeks, cut at the calendar's start (``None`` when nothing of
    it is left)."""
    end = min(test.end_date or today, today)
    if test.start_date > today or end < test.start_date:
        return None
    during = Window(test.start_date, end)
    lag = stats.baseline_lag(during.days)
    if test.start_date.toordinal() <= lag:
        return None, during
    return Window(shift(during.first, -lag), shift(during.last, -lag)), during


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


# ---------------------------------------------------------------- words


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _number(value: float) -> str:
    return f"{value:.4g}"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _interval_words(analysis: Mapping[str, Any]) -> str:
    """ "95 % CI 4.0 % to 20.0 %" (relative where a relative change exists, else absolute)."""
    level = f"{analysis['confidence'] * 100:g} % CI"
    relative = analysis["interval"]["relative"]
    if relative is not None:
        return f"{level} {_percent(relative[0])} to {_percent(relative[1])}"
    low, high = analysis["interval"]["absolute"]
    return f"{level} {_number(low)} to {_number(high)}"


def _moved(metric: str, analysis: Mapping[str, Any], *, more: str = "") -> str:
    """ "visits rose 12.0 %" / "visits fell by 3" / "visits did not change"."""
    effect = analysis["effect"]
    size = effect["relative"] if effect["relative"] is not None else effect["absolute"]
    if size == 0:
        return f"{metric} did not change{more}"
    verb = "rose" if size > 0 else "fell"
    amount = _percent(abs(size)) if effect["relative"] is not None else f"by {_number(abs(size))}"
    return f"{metric} {verb} {amount}{more}"


# ---------------------------------------------------------------- analysis


def _analysis(
    baseline: Mapping[date, float | None], during: Mapping[date, float | None], lag: int
) -> dict[str, Any]:
    """The paired t-test of the daily values (``stats``), as the result shows it."""
    pairs = stats.pair(baseline, during, lag)
    entry: dict[str, Any] = {
        "method": stats.METHOD,
        "confidence": stats.CONFIDENCE,
        "effect": {"absolute": None, "relative": None},
        "interval": None,
        "pValue": None,
        "degreesOfFreedom": None,
        "days": {
            "baseline": len(pairs.baseline),
            "during": len(pairs.during),
            "paired": len(pairs.pairs),
            "required": stats.MIN_PAIRS,
            "lag": lag,
        },
        "significant": None,
        "reason": None,
    }
    if len(pairs.during) < stats.MIN_PAIRS:
        entry["reason"] = (
            f"Not enough days yet: {len(pairs.during)} of {stats.MIN_PAIRS} in the test window."
        )
        return entry
    if len(pairs.pairs) < stats.MIN_PAIRS:
        entry["reason"] = (
            f"Not enough baseline days: {len(pairs.pairs)} of the test window's "
            f"{len(pairs.during)} days have data on the same weekday {lag} days earlier; "
            f"{stats.MIN_PAIRS} are needed."
        )
        return entry
    test = stats.mean_difference(pairs.differences)
    if not all(math.isfinite(x) for x in (test.mean, test.low, test.high, test.p_value)):
        entry["reason"] = "The daily values are too large to compare (past a double's range)."
        return entry
    base = pairs.baseline_mean
    scale = abs(base) if base and math.isfinite(base) else None
    if scale and not all(math.isfinite(x / scale) for x in (test.mean, test.low, test.high)):
        scale = None  # a baseline near 0: no relative change
    entry |= {
        "effect": {
            "absolute": test.mean,
            "relative": test.mean / scale if scale else None,
        },
        "interval": {
            "absolute": [test.low, test.high],
            "relative": [test.low / scale, test.high / scale] if scale else None,
        },
        "pValue": test.p_value,
        "degreesOfFreedom": test.df,
        "significant": test.significant,
    }
    return entry


def _summary(metric: str, analysis: Mapping[str, Any]) -> str:
    """One or two sentences of what the numbers support."""
    if analysis["reason"] is not None:
        return str(analysis["reason"])
    days = analysis["days"]
    how = (
        f"({_interval_words(analysis)}, {_p(analysis['pValue'])}, paired t on "
        f"{days['paired']} days, each against the same weekday {days['lag']} days earlier)"
    )
    if analysis["significant"]:
        return f"{_moved(metric, analysis)} {how}: the change is significant."
    return f"{_moved(metric, analysis)} {how}: not significant, the interval includes no change."


def _control_summary(metric: str, analysis: Mapping[str, Any]) -> str:
    if analysis["reason"] is not None:
        return f"Against the control: {analysis['reason']}"
    how = (
        f"({_interval_words(analysis)}, {_p(analysis['pValue'])}, difference-in-differences "
        f"on {analysis['days']['paired']} days)"
    )
    verdict = (
        "the change is significant beyond the control's trend."
        if analysis["significant"]
        else "not significant once the control's trend is taken out."
    )
    return f"Against the control, {_moved(metric, analysis)} {how}: {verdict}"


def _guardrail_status(guardrail: Mapping[str, Any], analysis: Mapping[str, Any]) -> tuple[str, str]:
    """(status, words): ``breached`` when the relative interval reaches past the tolerance in
    the bad direction, ``ok`` when it stays within, else ``inconclusive``."""
    metric, tolerance = guardrail["metric"], float(guardrail["tolerance"])
    bad = guardrail["badDirection"]
    if analysis["reason"] is not None:
        return "inconclusive", str(analysis["reason"])
    relative = analysis["interval"]["relative"]
    if relative is None:
        return "inconclusive", f"{metric}'s baseline is 0: no relative change to hold to."
    low, high = relative
    # the interval of the change in the bad direction (a fall counted as a positive amount)
    worst, best = (high, low) if bad == "increase" else (-low, -high)
    word = "risen" if bad == "increase" else "fallen"
    limit = f"the {_percent(tolerance)} tolerated"
    ci = _interval_words(analysis)
    if worst <= tolerance:
        return "ok", f"{metric} stayed within {limit} ({ci})."
    if best > tolerance:
        return "breached", f"{metric} has {word} by more than {limit} ({ci})."
    return "breached", f"{metric} may have {word} by more than {limit} ({ci})."


def _overall(
    started: bool, found: Sequence[Mapping[str, Any]], guards: Sequence[Mapping[str, Any]]
) -> str:
    """The test's verdict in words: its first metric (and against the control), then the
    guardrails."""
    if not started:
        return "The test has not started."
    words = []
    if not found:
        words.append("The test has no metric yet: name one or link data points.")
    else:
        words.append(found[0]["summary"])
        if found[0]["control"] is not None:
            words.append(found[0]["control"]["summary"])
    by_status: dict[str, list[str]] = defaultdict(list)
    for guard in guards:
        by_status[guard["status"]].append(guard["metric"])
    if by_status["breached"]:
        words.append(f"Guardrails breached: {', '.join(by_status['breached'])}.")
    if by_status["inconclusive"]:
        words.append(f"Guardrails not yet decided: {', '.join(by_status['inconclusive'])}.")
    if guards and not by_status["breached"] and not by_status["inconclusive"]:
        words.append(f"Guardrails held: {', '.join(by_status['ok'])}.")
    return " ".join(words)


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

    def control_query(self, metric: str, window: Window) -> SeriesQuery:
        """The control's series: its metric (else the test's), its source (else the sources
        the test's metric is read from), its dimension values (else all)."""
        control = self.test.control or {}
        source_id = control.get("sourceId")
        if source_id is not None:
            wanted = uuid.UUID(str(source_id))
            types = {
                row.id: row.type
                for row in self.session.execute(
                    select(DataSource.id, DataSource.type).where(
                        DataSource.id == wanted, DataSource.owner_id == self.test.owner_id
                    )
                )
            }
        else:
            types = self.sources(metric)
        return SeriesQuery(
            self.session,
            sources=types,
            window=Range(window.first, window.last),
            formulas=self.formulas,
            dimensions=control.get("dimensions") or {},
            now=self.now,
        )

    def daily(
        self, metric: str, spans: tuple[Window | None, Window]
    ) -> tuple[dict[date, float | None], dict[date, float | None]]:
        baseline_window, during_window = spans
        before = self.query(metric, baseline_window).daily_values(metric) if baseline_window else {}
        return before, self.query(metric, during_window).daily_values(metric)

    def control(
        self,
        metric: str,
        spans: tuple[Window | None, Window],
        treated: tuple[Mapping[date, float | None], Mapping[date, float | None]],
    ) -> dict[str, Any]:
        """Difference-in-differences of ``metric`` (its daily values ``treated``: baseline,
        test window) against the test's control."""
        control = self.test.control or {}
        name = control.get("metric") or metric
        baseline_window, during_window = spans
        before_query = self.control_query(name, baseline_window) if baseline_window else None
        during_query = self.control_query(name, during_window)
        before = before_query.daily_values(name) if before_query else {}
        during = during_query.daily_values(name)
        lag = stats.baseline_lag(during_window.days)
        analysis = _analysis(
            stats.difference_series(treated[0], before),
            stats.difference_series(treated[1], during),
            lag,
        )
        # relative to the treated metric's level (the difference's own level may be ~0)
        pairs = stats.pair(treated[0], treated[1], lag)
        scale = abs(pairs.baseline_mean) if pairs.baseline_mean else None
        if analysis["reason"] is None:
            low, high = analysis["interval"]["absolute"]
            analysis["effect"]["relative"] = (
                analysis["effect"]["absolute"] / scale if scale else None
            )
            analysis["interval"]["relative"] = [low / scale, high / scale] if scale else None
        elif not during_query.source_ids:
            analysis["reason"] = "The control's source is gone: nothing to compare with."
        analysis["method"] = f"difference-in-differences, {stats.METHOD}"
        return {
            "metric": name,
            "sourceId": control.get("sourceId"),
            "dimensions": control.get("dimensions") or {},
            **analysis,
            "summary": _control_summary(metric, analysis),
        }

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
            **_analysis({}, {}, 7),
            "significant": None,
            "reason": "The test has not started.",
            "summary": "The test has not started.",
            "control": None,
        }
        if spans is None:
            return entry
        baseline_window, during_window = spans
        before = self.query(metric, baseline_window) if baseline_window else None
        during = self.query(metric, during_window)
        base = before.total(metric, per_day=True) if before else None
        now = during.total(metric, per_day=True)
        daily_before = before.daily_values(metric) if before else {}
        daily = [v for v in daily_before.values() if v is not None and math.isfinite(v)]
        spread = statistics.stdev(daily) if len(daily) >= 2 else None
        moved = change(now.value if now else None, base.value if base else None)
        if not custom:
            entry["unit"] = during.unit(metric)
            entry["aggregation"] = during.rule(metric).aggregation
        daily_during = during.daily_values(metric)
        analysis = _analysis(daily_before, daily_during, stats.baseline_lag(during_window.days))
        if baseline_window is None:
            analysis["reason"] = "No baseline: the test starts at the calendar's first days."
        entry |= {
            "baseline": _window_public(baseline_window, base) if baseline_window else None,
            "during": _window_public(during_window, now),
            "change": {"absolute": moved.absolute, "relative": moved.relative},
            "baselineDailyStdDev": spread,
            **analysis,
            "summary": _summary(metric, analysis),
        }
        if self.test.control and metric == self.test.metric:
            entry["control"] = self.control(metric, spans, (daily_before, daily_during))
        return entry

    def guardrail(
        self, guardrail: Mapping[str, Any], spans: tuple[Window | None, Window] | None
    ) -> dict[str, Any]:
        metric = guardrail["metric"]
        entry: dict[str, Any] = {
            "metric": metric,
            "badDirection": guardrail["badDirection"],
            "tolerance": guardrail["tolerance"],
            **_analysis({}, {}, 7),
        }
        if spans is None:
            reason = "The test has not started."
            return entry | {"reason": reason, "status": "inconclusive", "summary": reason}
        before, during = self.daily(metric, spans)
        analysis = _analysis(before, during, stats.baseline_lag(spans[1].days))
        status, words = _guardrail_status(guardrail, analysis)
        return entry | analysis | {"status": status, "summary": words}


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
    found = [context.result(name, spans) for name in names]
    guards = [context.guardrail(g, spans) for g in test.guardrails or []]
    return {
        "testId": test.id,
        "summary": _overall(spans is not None, found, guards),
        "rule": RULE,
        "method": stats.METHOD,
        "methodName": stats.METHOD_NAME,
        "confidence": stats.CONFIDENCE,
        "started": spans is not None,
        "metrics": found,
        "guardrails": guards,
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

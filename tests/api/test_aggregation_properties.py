"""The aggregation rules (docs/aggregation.md) over random points, on a real database.

Each example stores two weeks of one source's daily points (per day a total, a breakdown by
region, both, or nothing) through the one upsert path, reads them through ``SeriesQuery`` (what
the series route, the trends and the tests' results read) and compares with an oracle written
here from the rules table: no rule counts a value twice, a series over all dimensions equals
the total where one exists, and a point restated in any field changes what every read returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.services.series import Range, SeriesQuery
from inflow.connectors.records import DataPoint
from inflow.storage import repo
from inflow.storage.models import DataSource
from tests.factories import make_user

MONDAY = date(2025, 3, 3)
DAYS = [MONDAY + timedelta(days=n) for n in range(14)]  # two whole ISO weeks
REGIONS = ("eu", "us")
# (connector type, metric, rule) as the catalogs declare them
METRICS = {
    "sum": ("example", "visits"),
    "last": ("instagram", "followers"),
    "max": ("microsoft_clarity", "distinct_users"),
    "average": ("microsoft_clarity", "pages_per_session"),
}
SHAPES = ("none", "total", "regions", "both", "eu_only")
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@st.composite
def days_of_points(draw: Any, rule: str) -> list[DataPoint]:
    """Per day a shape and its values; a weighted metric's points carry a weight or (rarely)
    none, which is then unknown (no weight-metric points are stored)."""
    metric = METRICS[rule][1]
    weighted = rule == "average"
    value = (
        st.floats(0, 10, allow_nan=False).map(lambda v: round(v, 3))
        if weighted
        else st.integers(0, 1000).map(float)
    )
    weight = st.one_of(st.integers(1, 500).map(float), st.none()) if weighted else st.none()
    points: list[DataPoint] = []
    for day in DAYS:
        shape = draw(st.sampled_from(SHAPES))
        start, end = _midnight(day), _midnight(day + timedelta(days=1))
        dims: list[dict[str, str]] = []
        if shape in ("total", "both"):
            dims.append({})
        if shape in ("regions", "both"):
            dims += [{"region": r} for r in REGIONS]
        if shape == "eu_only":
            dims.append({"region": "eu"})
        points.extend(
            DataPoint(metric, draw(value), start, end, dimensions=d, weight=draw(weight))
            for d in dims
        )
    return points


# ---------------------------------------------------------------- the oracle (docs/aggregation.md)


def chosen(points: Sequence[DataPoint], wanted: dict[str, str]) -> dict[date, list[DataPoint]]:
    """Per stored day, the points that count: the filter, then the coarsest breakdown."""
    by_day: dict[date, list[DataPoint]] = {}
    for p in points:
        if all(p.dimensions.get(k) == v for k, v in wanted.items()):
            by_day.setdefault(p.period_start.date(), []).append(p)
    out = {}
    for day, group in by_day.items():
        fewest = min(len(p.dimensions) for p in group)
        out[day] = [p for p in group if len(p.dimensions) == fewest]
    return out


def oracle(
    points: Sequence[DataPoint], rule: str, days: Sequence[date], wanted: dict[str, str]
) -> float | None:
    """The value of the period made of ``days`` (None: no point)."""
    picked = chosen(points, wanted)
    present = [d for d in days if d in picked]
    if not present:
        return None
    levels = {d: sum(p.value for p in picked[d]) for d in present}
    if rule == "sum":
        return sum(levels.values())
    if rule == "last":
        return levels[max(present)]
    if rule == "max":
        return max(levels.values())
    rows = [p for d in present for p in picked[d]]
    known = [(p.value, p.weight) for p in rows if p.weight is not None]
    if not known:
        return sum(p.value for p in rows) / len(rows)
    total = sum(w for _, w in known)
    return sum(v * w for v, w in known) / total if total else None


def expected(points: Sequence[DataPoint], rule: str, wanted: dict[str, str]) -> dict[str, Any]:
    days = {d.isoformat(): oracle(points, rule, [d], wanted) for d in DAYS}
    weeks = {DAYS[k].isoformat(): oracle(points, rule, DAYS[k : k + 7], wanted) for k in (0, 7)}
    return {
        "day": {k: v for k, v in days.items() if v is not None},
        "week": {k: v for k, v in weeks.items() if v is not None},
    }


# ---------------------------------------------------------------- reading


def new_source(factory: sessionmaker[Session], type_: str) -> uuid.UUID:
    owner = make_user(factory, f"{uuid.uuid4().hex}@example.com")
    with factory() as session, session.begin():
        source = DataSource(name="random", type=type_, config={}, owner_id=owner.id)
        session.add(source)
        session.flush()
        return source.id


def read(
    factory: sessionmaker[Session], source: uuid.UUID, type_: str, rule: str, wanted: dict
) -> dict[str, Any]:
    metric = METRICS[rule][1]
    window = Range(DAYS[0], DAYS[-1])
    with factory() as session:
        query = SeriesQuery(session, sources={source: type_}, window=window, dimensions=wanted)
        return {
            g: {p.start.date().isoformat(): p.value for p in query.series(metric, g)}
            for g in ("day", "week")
        }


def assert_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    for granularity in ("day", "week"):
        assert got[granularity].keys() == want[granularity].keys(), granularity
        for key, value in want[granularity].items():
            assert got[granularity][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (
                granularity,
                key,
            )


@pytest.mark.parametrize("rule", sorted(METRICS))
def test_every_rule_reads_what_the_rules_table_says(factory, rule):
    type_ = METRICS[rule][0]

    @PROPERTY
    @given(points=days_of_points(rule), restate=st.data())
    def check(points: list[DataPoint], restate: st.DataObject) -> None:
        source = new_source(factory, type_)
        with factory() as session, session.begin():
            repo.upsert_data_points(session, source_id=source, points=points)

        for wanted in ({}, {"region": "eu"}):
            assert_equal(read(factory, source, type_, rule, wanted), expected(points, rule, wanted))
        # a series over all dimensions equals the provider's total wherever one is stored
        totals = {p.period_start.date().isoformat(): p.value for p in points if not p.dimensions}
        everything = read(factory, source, type_, rule, {})["day"]
        assert {d: everything[d] for d in totals} == pytest.approx(totals)
        if not points:
            return

        # restate one point in one field: the read follows (the stored point changed)
        at = restate.draw(st.integers(0, len(points) - 1))
        field = restate.draw(
            st.sampled_from(["value", "weight"] if rule == "average" else ["value"])
        )
        old = points[at]
        if field == "value":
            new = replace(old, value=old.value + 7.0)
        else:
            new = replace(old, weight=(old.weight or 0.0) + 11.0)
        with factory() as session, session.begin():
            counts = repo.upsert_data_points(session, source_id=source, points=[new])
        assert (counts.updated, counts.unchanged) == (1, 0)
        restated = [*points[:at], new, *points[at + 1 :]]
        for wanted in ({}, {"region": "eu"}):
            got = read(factory, source, type_, rule, wanted)
            assert_equal(got, expected(restated, rule, wanted))

    check()

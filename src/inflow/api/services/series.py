"""Metric series: stored data points aggregated per period, each metric by its own rule.

How points combine (over periods, dimension values and sources) is written down once, in
``docs/aggregation.md``: which stored points count (finest granularity, no overlapping periods,
the coarsest breakdown per stored period), each rule (``sum``; ``average``/``ratio`` weighted,
a point of unknown weight left out; ``last`` and ``max``/``min`` over whole-period levels;
formulas per period), periods in each point's own time zone, and when a period is complete.
This module follows that table; ``tests/api/test_aggregation_properties.py`` holds it to an
oracle written from it.

Input is bounded (``inflow/bounds.py``), but a point stored before the bounds existed may sit
at the ends of the calendar: dates move by saturating arithmetic (a period that would end
after 9999-12-31 ends at its last instant), so such a point never makes a read fail.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Dialect, Numeric, case, cast, func, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from inflow.api.services.formula import Formula
from inflow.api.services.metrics import catalog
from inflow.connectors import get_connector, records
from inflow.connectors.spec import Aggregation, Connector, MetricDef
from inflow.errors import FieldError, ValidationFailedError
from inflow.storage.models import DataPoint, DataSource

Granularity = Literal["day", "week", "month"]
Bucket = tuple[date, date]  # first day, day after the last (local calendar dates)
WHOLE: Bucket = (date.min, date.max)  # the whole range as one period
# Clarity's rolling 24/48/72-hour windows rank with days: of overlapping ones the shorter
# counts (``_periods_without_overlaps``), and none of them hides a source's other windows
GRANULARITY_RANK = {"hour": 0, "day": 1, "24h": 1, "48h": 1, "72h": 1, "week": 2, "month": 3}
MAX_FORMULA_DEPTH = 10
DAY = timedelta(days=1)


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """The time zone of a stored name (UTC for one this system does not know)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def shift(day: date, days: int) -> date:
    """``day`` + ``days``, held within Python's calendar (``date.min`` .. ``date.max``)."""
    return date.fromordinal(min(max(day.toordinal() + days, 1), date.max.toordinal()))


def shift_moment(moment: datetime, delta: timedelta) -> datetime:
    """``moment`` + ``delta``, held within Python's calendar (UTC at its ends)."""
    try:
        return moment + delta
    except OverflowError:
        if delta > timedelta(0):
            return datetime.max.replace(tzinfo=UTC)
        return datetime.min.replace(tzinfo=UTC)


def local_day(moment: datetime, zone_name: str) -> date:
    """The date of ``moment`` in a zone (the UTC date where the local one leaves the calendar)."""
    try:
        return moment.astimezone(zone(zone_name)).date()
    except OverflowError:
        return moment.date()


def bucket_of(day: date, granularity: Granularity) -> Bucket:
    if granularity == "day":
        return day, shift(day, 1)
    if granularity == "week":
        monday = shift(day, -day.weekday())  # ISO weeks start on Monday
        return monday, shift(monday, 7)
    first = day.replace(day=1)
    following = shift(first, 32)
    return first, following.replace(day=1) if following != date.max else following


# ---------------------------------------------------------------- query parameters


@dataclass(frozen=True)
class Range:
    """A ``from``/``to`` filter on a point's ``periodStart``. A date bound compares with the
    point's local date and includes that day; a datetime bound compares instants, ``end``
    excluded."""

    start: date | datetime | None = None
    end: date | datetime | None = None

    def contains(self, instant: datetime, day: date) -> bool:
        if isinstance(self.start, datetime):
            if instant < self.start:
                return False
        elif self.start is not None and day < self.start:
            return False
        if isinstance(self.end, datetime):
            return instant < self.end
        return self.end is None or day <= self.end

    def cuts(self, key: Bucket, start: datetime, end: datetime) -> bool:
        """Whether the range leaves out part of the period ``key`` (its local first day and the
        day after its last; ``start``/``end`` its instants): such a period is partial."""
        if isinstance(self.start, datetime):
            if start < self.start:
                return True
        elif self.start is not None and key[0] < self.start:
            return True
        if isinstance(self.end, datetime):
            return self.end < end
        return self.end is not None and shift(self.end, 1) < key[1]

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """Instants that surely hold the range, whatever the points' time zones (a local date
        is at most 14 hours from UTC)."""
        lo, hi = self.start_instant(), self.end_instant()
        return (shift_moment(lo, -DAY) if lo else None), (shift_moment(hi, DAY) if hi else None)

    def start_instant(self) -> datetime | None:
        """The start as an instant (a date: its midnight, UTC)."""
        return _instant(self.start, end=False)

    def end_instant(self) -> datetime | None:
        """The end as an instant (a date: the midnight after it, UTC)."""
        return _instant(self.end, end=True)

    def shifted_back(self) -> Range:
        """The range of the same length just before this one (both bounds needed)."""
        if self.start is None or self.end is None:
            raise ValueError("both bounds are needed")
        if isinstance(self.start, datetime) and isinstance(self.end, datetime):
            length = self.end - self.start
            return Range(shift_moment(self.start, -length), self.start)
        start, end = _as_day(self.start), _as_day(self.end)
        days = (end - start).days + 1
        return Range(shift(start, -days), shift(start, -1))


def _as_day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _instant(value: date | datetime | None, *, end: bool) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return _midnight(value, end=end)


def _midnight(day: date, *, end: bool) -> datetime:
    """The start of ``day`` (UTC), or with ``end`` the midnight after it (the calendar's last
    instant where that is past the calendar)."""
    if end and day == date.max:
        return datetime.combine(day, time.max, UTC)
    return datetime.combine(shift(day, 1) if end else day, time.min, UTC)


def _local(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tz)


def _local_end(day: date, tz: tzinfo) -> datetime:
    """The midnight after ``day`` in ``tz`` (the calendar's last instant past its end)."""
    return datetime.combine(day, time.max, tz) if day == date.max else _local(shift(day, 1), tz)


def check_range(window: Range, *, end_field: str = "to") -> None:
    """A 422 naming ``end_field`` when the range ends before it starts (or is empty)."""
    start, end = window.start_instant(), window.end_instant()
    if start is not None and end is not None and end <= start:
        raise ValidationFailedError(
            "invalid range", [FieldError(end_field, "the end is before the start")]
        )


def parse_dimensions(text: str | None) -> dict[str, str]:
    """The ``dimensions`` filter: a JSON object (``{"page": "/home"}``) or ``name:value``
    pairs separated by commas (``page:/home,device:mobile``)."""
    if text is None or not text.strip():
        return {}
    raw = text.strip()
    problem = "a JSON object of strings, or name:value pairs separated by commas"
    if raw.startswith("{"):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in parsed.values()
        ):
            raise ValidationFailedError("invalid dimensions", [FieldError("dimensions", problem)])
        return {str(k): str(v) for k, v in parsed.items()}
    found: dict[str, str] = {}
    for pair in raw.split(","):
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise ValidationFailedError("invalid dimensions", [FieldError("dimensions", problem)])
        found[name.strip()] = value.strip()
    return found


# ---------------------------------------------------------------- aggregation


@dataclass(frozen=True, slots=True)
class Row:
    """A stored point, as aggregation needs it."""

    source_id: uuid.UUID
    granularity: str
    period_start: datetime
    period_end: datetime
    day: date  # local date of period_start
    zone: str
    dimensions: Mapping[str, str]
    dimensions_key: str
    value: float
    weight: float | None
    complete: bool
    # A stored period's points of one breakdown added up in the database (``grouped``): how
    # many, the sum of value * weight over those with a weight (``weight`` is then the sum of
    # their weights), and how many have none. A single point: 1, ``None`` (value * weight), 0.
    count: int = 1
    product: float | None = None
    unweighted: int = 0

    @property
    def lacks_weight(self) -> bool:
        return self.weight is None or self.unweighted > 0


@dataclass(frozen=True)
class Rule:
    aggregation: Aggregation = "sum"
    weight_metric: str | None = None
    unit: str | None = None


@dataclass
class Cell:
    """One period's aggregate (before any per-day scaling)."""

    value: float | None
    additive: bool
    days: frozenset[date]
    complete: bool
    zones: frozenset[str]


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    value: float | None
    complete: bool
    days: int = 0


def _periods_without_overlaps(rows: Sequence[Row]) -> set[tuple[datetime, datetime]] | None:
    """Of one source's rows, the stored periods that count: where periods overlap (Clarity's
    rolling 24/48/72-hour windows read at different times), a shorter one wins over a longer one
    and, of equal length, the later one; the others are left out, so no hour is counted twice.
    ``None`` when no two overlap (the usual case): every period counts."""
    ordered = sorted({(r.period_start, r.period_end) for r in rows})
    if all(b[0] >= a[1] for a, b in pairwise(ordered)):
        return None
    chosen: list[tuple[datetime, datetime]] = []
    for start, end in sorted(ordered, key=lambda p: (p[1] - p[0], -p[0].timestamp())):
        if all(end <= s or e <= start for s, e in chosen):
            chosen.append((start, end))
    return set(chosen)


def _shape(row: Row) -> tuple[int, tuple[str, ...]]:
    """A breakdown's rank: fewer dimensions first (a total before any breakdown)."""
    names = tuple(sorted(row.dimensions))
    return len(names), names


def _select(rows: Iterable[Row], wanted: Mapping[str, str]) -> list[Row]:
    """The points that count (see the module docstring): filter, finest granularity per
    source, coarsest breakdown per source and stored period. (Rows are taken source by source:
    a UUID hashes in Python, so a source id is a dictionary key once per row, not per step.)"""
    by_source: dict[uuid.UUID, list[Row]] = defaultdict(list)
    for r in rows:
        if not wanted or all(r.dimensions.get(k) == v for k, v in wanted.items()):
            by_source[r.source_id].append(r)
    chosen: list[Row] = []
    for group in by_source.values():
        finest = min(GRANULARITY_RANK.get(r.granularity, 1) for r in group)
        if any(GRANULARITY_RANK.get(r.granularity, 1) != finest for r in group):
            group = [r for r in group if GRANULARITY_RANK.get(r.granularity, 1) == finest]
        kept = _periods_without_overlaps(group)
        periods: dict[datetime, list[Row]] = defaultdict(list)
        for r in group:
            if kept is None or (r.period_start, r.period_end) in kept:
                periods[r.period_start].append(r)
        for same in periods.values():
            if len(same) == 1:
                chosen.append(same[0])
                continue
            coarsest = min(_shape(r) for r in same)
            chosen.extend(r for r in same if _shape(r) == coarsest)
    return chosen


def _levels(rows: Iterable[Row]) -> dict[datetime, float]:
    """Per stored period (its start), the value over every source and dimension value read:
    the rows chosen (a total, or one breakdown: ``_select``) added."""
    levels: dict[datetime, float] = defaultdict(float)
    for r in rows:
        levels[r.period_start] += r.value
    return levels


def _combine(
    rows: Sequence[Row], rule: Rule, weights: Mapping[tuple[object, ...], float]
) -> float | None:
    rule_name = rule.aggregation
    values = [r.value for r in rows]
    if rule_name == "sum":
        return sum(values)
    if rule_name in ("max", "min"):
        # compared level with level (a stored period's total over its dimension values), never
        # a region's value with a total's
        pick = max if rule_name == "max" else min
        return pick(_levels(rows).values())
    if rule_name == "last":
        # per source, the level of its latest stored period in the bucket; added over sources
        by_source: dict[uuid.UUID, list[Row]] = defaultdict(list)
        for r in rows:
            by_source[r.source_id].append(r)
        total = 0.0
        for group in by_source.values():
            latest = max(r.period_start for r in group)
            total += sum(r.value for r in group if r.period_start == latest)
        return total
    # average / ratio: weighted, never summed; a point whose weight is unknown (none on it,
    # no weight-metric point beside it) is left out, unless no point has one (a plain mean)
    known: list[tuple[float, float]] = []  # (value * weight, weight)
    for r in rows:
        w = r.weight
        if w is None:
            w = weights.get((r.source_id, r.granularity, r.period_start, r.dimensions_key))
            if w is None:
                continue
        known.append((r.value * w if r.product is None else r.product, w))
    if not known:
        return sum(values) / sum(r.count for r in rows)
    total = sum(w for _, w in known)
    if total == 0:
        return None
    return sum(product for product, _ in known) / total


class _Memo:
    """A column's raw driver values converted by the column type's own result processor, once
    per distinct value (the same Python value a plain select gives, shared between rows)."""

    def __init__(self, column: Any, dialect: Dialect) -> None:
        self.process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        self.seen: dict[Any, Any] = {}

    def __call__(self, raw: Any) -> Any:
        if raw is None or self.process is None:
            return raw
        try:
            return self.seen[raw]
        except KeyError:
            value = self.seen[raw] = self.process(raw)
            return value
        except TypeError:  # unhashable (a driver that decodes JSON itself)
            return self.process(raw)


class SeriesQuery:
    """Aggregates one user's view of stored points: which sources, which dimension values,
    which custom formulas; one query object per request (rows are loaded once per metric)."""

    def __init__(
        self,
        session: Session,
        *,
        sources: Mapping[uuid.UUID, str],
        window: Range,
        formulas: Mapping[str, Formula] | None = None,
        dimensions: Mapping[str, str] | None = None,
        scope: Mapping[str, set[tuple[uuid.UUID, str]]] | None = None,
        now: datetime | None = None,
    ) -> None:
        self.session = session
        self.source_ids = list(sources)  # id → connector type
        self.window = window
        self.formulas = dict(formulas or {})
        self.dimensions = dict(dimensions or {})
        self.scope = scope or {}  # metric → the (source, dimensions key) series it is limited to
        self.now = now or datetime.now(UTC)
        self.connectors: list[Connector] = sorted(
            {c.slug: c for t in sources.values() if (c := get_connector(t))}.values(),
            key=lambda c: c.slug,
        )
        self._rows: dict[str, list[Row]] = {}
        self._days: dict[tuple[datetime, str], date | None] = {}
        self._declared: list[tuple[Connector, dict[str, Any]]] | None = None

    # ------------------------------------------------------------ metadata

    def definition(self, metric: str) -> MetricDef | None:
        for connector in self.connectors:
            found = connector.metric(metric)
            if found is not None:
                return found
        for connector, config in self._declaring():  # a custom source's own metrics
            found = connector.metric(metric, config)
            if found is not None:
                return found
        return catalog().get(metric)

    def _declaring(self) -> list[tuple[Connector, dict[str, Any]]]:
        """The sources whose config declares metrics, with that (public) config; loaded once."""
        if self._declared is None:
            self._declared = []
            types = {c.slug for c in self.connectors if c.declared is not None}
            if types:
                rows = self.session.execute(
                    select(DataSource.type, DataSource.config)
                    .where(DataSource.id.in_(self.source_ids), DataSource.type.in_(types))
                    .order_by(DataSource.created_at)
                )
                for row in rows:
                    if (connector := get_connector(row.type)) is not None:
                        self._declared.append((connector, row.config))
        return self._declared

    def rule(self, metric: str) -> Rule:
        found = self.definition(metric)
        if found is None:
            return Rule()
        return Rule(found.aggregation, found.weight_metric, found.unit)

    def unit(self, metric: str) -> str | None:
        return self.rule(metric).unit

    # ------------------------------------------------------------ cache keys

    def key(self) -> tuple[Hashable, ...]:
        """What, besides the metric and granularity, a series of this query depends on."""
        return (
            tuple(sorted(self.source_ids)),
            self.window,
            tuple(sorted(self.dimensions.items())),
            tuple(sorted((k, f.text) for k, f in self.formulas.items())),
            tuple(sorted((m, tuple(sorted(s))) for m, s in self.scope.items())),
        )

    def fingerprint(self, metric: str) -> Hashable:
        """A value that changes whenever a point the metric's series reads does (one aggregate
        query over the same rows), or a source's config (a custom source's metric rules)."""
        if not self.source_ids:
            return ()
        names = set(self.leaves(metric))
        names.update(r.weight_metric for n in list(names) if (r := self.rule(n)).weight_metric)
        stmt = (
            select(
                DataPoint.metric,
                func.count(),
                func.max(DataPoint.updated_at),
                # numeric: a sum of doubles near 1e308 overflows on PostgreSQL (an error)
                func.sum(cast(DataPoint.value, Numeric)),
                func.sum(case((DataPoint.complete, 1), else_=0)),
            )
            .where(DataPoint.metric.in_(sorted(names)), DataPoint.source_id.in_(self.source_ids))
            .group_by(DataPoint.metric)
        )
        stmt = self._near_window(stmt)
        configs = (
            select(func.max(DataSource.updated_at))
            .where(DataSource.id.in_(self.source_ids))
            .scalar_subquery()
        )
        # one round trip: the sources' latest change rides along on each metric's row
        return tuple(sorted(tuple(row) for row in self.session.execute(stmt.add_columns(configs))))

    # ------------------------------------------------------------ rows

    def _near_window(self, stmt: Any) -> Any:
        """``stmt`` limited to points that may lie in the window (``Range.bounds``: the local
        dates of every time zone); ``_day_in_window`` then decides each one."""
        lo, hi = self.window.bounds()
        if lo is not None:
            stmt = stmt.where(DataPoint.period_start >= lo)
        if hi is not None:
            stmt = stmt.where(DataPoint.period_start < hi)
        return stmt

    def _day_in_window(self, start: datetime, zone_name: str) -> date | None:
        """The local date of a period starting at ``start`` in ``zone_name``, or ``None`` when
        the window leaves it out. Periods and zones repeat over the rows: each pair is worked
        out once per query."""
        key = (start, zone_name)
        if key not in self._days:
            day = local_day(start, zone_name)
            self._days[key] = day if self.window.contains(start, day) else None
        return self._days[key]

    def rows(self, metric: str) -> list[Row]:
        """The metric's stored points in the range (all dimension values).

        Sources, periods, time zones and dimension sets repeat over the rows (a day's points
        share a period, a source's points their dimension sets), so their raw driver values are
        converted once each, by each column type's own processor (``_Memo``)."""
        if metric in self._rows:
            return self._rows[metric]
        rows: list[Row] = []
        if self.source_ids:
            dialect = self.session.get_bind().dialect
            columns = (
                DataPoint.source_id,
                DataPoint.granularity,
                DataPoint.period_start,
                DataPoint.period_end,
                DataPoint.timezone,
                DataPoint.dimensions,
                DataPoint.dimensions_key,
                DataPoint.value,
                DataPoint.weight,
                DataPoint.complete,
            )
            # the repeating ones are fetched raw and converted once per distinct value
            repeating = {"source_id", "period_start", "period_end", "dimensions"}
            memo = [_Memo(c, dialect) if c.key in repeating else None for c in columns]
            stmt = select(
                *(
                    type_coerce(c, NullType()).label(c.key) if c.key in repeating else c
                    for c in columns
                )
            ).where(DataPoint.metric == metric, DataPoint.source_id.in_(self.source_ids))
            stmt = self._near_window(stmt)
            scope = self.scope.get(metric)
            for raw in self.session.execute(stmt):
                r: list[Any] = [
                    value if convert is None else convert(value)
                    for convert, value in zip(memo, raw, strict=True)
                ]
                source_id, period_start, tz_name, dimensions_key = r[0], r[2], r[4], r[6]
                if scope is not None and (source_id, dimensions_key) not in scope:
                    continue
                day = self._day_in_window(period_start, tz_name)
                if day is None:
                    continue
                rows.append(
                    Row(
                        source_id,
                        r[1],
                        period_start,
                        r[3],
                        day,
                        tz_name,
                        r[5],
                        dimensions_key,
                        r[7],
                        r[8],
                        r[9],
                    )
                )
        self._rows[metric] = rows
        return rows

    def grouped(self, metric: str) -> list[Row] | None:
        """The metric's stored periods in the range, each breakdown's points added up in the
        database: one row per source, stored period and breakdown (``Row.count`` points), where
        ``rows`` gives one per point. The same choice of points follows (``_select`` takes a
        breakdown whole), so a series reads the same values for a fraction of the rows in
        Python (a page breakdown of 100 values: 1 row instead of 100). ``None`` while a stored
        point's breakdown is unknown (stored before migration 0012 finished)."""
        if not self.source_ids:
            return []
        dialect = self.session.get_bind().dialect
        postgres = dialect.name == "postgresql"

        value: Any = DataPoint.value
        weight: Any = DataPoint.weight
        if postgres:  # in numeric: a sum of doubles near 1e308 is an error there, not infinity
            value, weight = cast(value, Numeric), cast(weight, Numeric)
        total = func.sum if postgres else func.total  # SQLite's total(): a float, never overflows
        keys = (
            DataPoint.source_id,
            DataPoint.granularity,
            DataPoint.period_start,
            DataPoint.period_end,
            DataPoint.timezone,
            DataPoint.dimension_names,
        )
        # as in ``rows``: sources and periods repeat, each raw value is converted once
        memo = {0: _Memo(keys[0], dialect), 2: _Memo(keys[2], dialect), 3: _Memo(keys[3], dialect)}
        stmt = (
            select(
                *(type_coerce(c, NullType()) if i in memo else c for i, c in enumerate(keys)),
                total(value),
                func.count(),
                total(weight),
                func.count(DataPoint.weight),
                total(value * weight),
                func.min(case((DataPoint.complete, 1), else_=0)),
            )
            .where(DataPoint.metric == metric, DataPoint.source_id.in_(self.source_ids))
            .group_by(*keys)
        )
        stmt = self._near_window(stmt)
        rows: list[Row] = []
        shapes: dict[str, dict[str, str]] = {}
        result: Any = self.session.execute(stmt)
        for r in result:
            key: list[Any] = [memo[i](v) if i in memo else v for i, v in enumerate(r[:6])]
            source_id, granularity, start, end, tz_name, names = key
            if names is None:
                return None
            day = self._day_in_window(start, tz_name)
            if day is None:
                continue
            dimensions = shapes.get(names)
            if dimensions is None:  # a breakdown's names (its values differ from row to row)
                dimensions = shapes[names] = dict.fromkeys(names.split("&"), "*") if names else {}
            count, known = int(r[7]), int(r[9])
            rows.append(
                Row(
                    source_id,
                    granularity,
                    start,
                    end,
                    day,
                    tz_name,
                    dimensions,
                    "",
                    float(r[6]),
                    float(r[8]) if known else None,
                    bool(r[11]),
                    count,
                    float(r[10] or 0) if known else None,
                    count - known,
                )
            )
        return rows

    # ------------------------------------------------------------ cells

    def leaf_cells(self, metric: str, bucketing: Callable[[date], Bucket]) -> dict[Bucket, Cell]:
        rule = self.rule(metric)
        weighted = rule.aggregation in ("average", "ratio") and rule.weight_metric
        # unfiltered, a stored period's breakdown is added up in the database; filtered by a
        # dimension value (or limited to some series), each point is read
        found = None if self.dimensions or metric in self.scope else self.grouped(metric)
        chosen = _select(self.rows(metric) if found is None else found, self.dimensions)
        weights: dict[tuple[object, ...], float] = {}
        if weighted and rule.weight_metric and any(r.lacks_weight for r in chosen):
            if found is not None:  # a weight to find per point: the points themselves
                chosen = _select(self.rows(metric), self.dimensions)
            weights = {
                (w.source_id, w.granularity, w.period_start, w.dimensions_key): w.value
                for w in self.rows(rule.weight_metric)
            }
        grouped: dict[Bucket, list[Row]] = defaultdict(list)
        for r in chosen:
            grouped[bucketing(r.day)].append(r)
        return {
            key: Cell(
                value=_combine(rows, rule, weights),
                additive=rule.aggregation == "sum",
                days=frozenset(r.day for r in rows),
                complete=all(r.complete for r in rows),
                zones=frozenset(r.zone for r in rows),
            )
            for key, rows in grouped.items()
        }

    def leaves(self, metric: str, depth: int = 0) -> set[str]:
        """The stored metrics a metric reads (itself, or its formula's, recursively)."""
        formula = self.formulas.get(metric)
        if formula is None:
            return {metric}
        if depth > MAX_FORMULA_DEPTH:
            return set()
        return {leaf for op in formula.operands for leaf in self.leaves(op, depth + 1)}

    def _value(
        self,
        metric: str,
        key: Bucket,
        leaf: Mapping[str, Mapping[Bucket, Cell]],
        divisor: int | None,
        depth: int = 0,
    ) -> float | None:
        formula = self.formulas.get(metric)
        if formula is None:
            cell = leaf.get(metric, {}).get(key)
            if cell is None or cell.value is None:
                return None
            return cell.value / divisor if divisor and cell.additive else cell.value
        if depth > MAX_FORMULA_DEPTH:
            return None
        return formula.evaluate(
            {op: self._value(op, key, leaf, divisor, depth + 1) for op in formula.operands}
        )

    def cells(
        self, metric: str, bucketing: Callable[[date], Bucket], *, per_day: bool = False
    ) -> dict[Bucket, Cell]:
        """The metric's aggregate per period. ``per_day``: additive (``sum``) values are
        divided by the number of days with data (for comparing windows of unequal length)."""
        names = self.leaves(metric)
        leaf = {name: self.leaf_cells(name, bucketing) for name in names}
        keys = {k for cells in leaf.values() for k in cells}
        result: dict[Bucket, Cell] = {}
        for key in keys:
            present = [cells[key] for cells in leaf.values() if key in cells]
            days = frozenset().union(*(c.days for c in present))
            result[key] = Cell(
                value=self._value(metric, key, leaf, len(days) if per_day else None),
                additive=metric not in self.formulas and all(c.additive for c in present),
                days=days,
                complete=len(present) == len(leaf) and all(c.complete for c in present),
                zones=frozenset().union(*(c.zones for c in present)),
            )
        return result

    # ------------------------------------------------------------ periods

    def _period(self, key: Bucket, cell: Cell) -> Period:
        tz = zone(next(iter(cell.zones))) if len(cell.zones) == 1 else UTC
        if key == WHOLE:
            # date bounds (and no bounds) are the points' own local days: a Berlin source's
            # week starts at its midnight, not at UTC's
            first, last = self.window.start, self.window.end
            start = first if isinstance(first, datetime) else _local(first or min(cell.days), tz)
            end = last if isinstance(last, datetime) else _local_end(last or max(cell.days), tz)
        else:
            start = datetime.combine(key[0], time.min, tz)
            # a period cut at the calendar's end ends at its last instant
            end = datetime.combine(key[1], time.max if key[1] == date.max else time.min, tz)
        whole = key == WHOLE or not self.window.cuts(key, start, end)
        complete = cell.complete and end <= self.now and whole
        return Period(start, end, cell.value, complete, len(cell.days))

    def series(self, metric: str, granularity: Granularity) -> list[Period]:
        cells = self.cells(metric, lambda day: bucket_of(day, granularity))
        return [self._period(key, cells[key]) for key in sorted(cells)]

    def daily_values(self, metric: str) -> dict[date, float | None]:
        cells = self.cells(metric, lambda day: bucket_of(day, "day"))
        return {key[0]: cell.value for key, cell in cells.items()}

    def total(self, metric: str, *, per_day: bool = False) -> Period | None:
        """The whole range as one period (``None`` when it holds no point)."""
        cell = self.cells(metric, lambda _day: WHOLE, per_day=per_day).get(WHOLE)
        return self._period(WHOLE, cell) if cell is not None else None


class SeriesCache:
    """Series recently answered, each reused while what it read is unchanged.

    A series costs a pass over every stored point it reads (thousands, in Python); checking
    that those points are unchanged is one aggregate query over the same index range
    (``SeriesQuery.fingerprint``: per metric read, the count, the latest ``updated_at`` and the
    sum of values, and the sources' own ``updated_at``). An entry also ends when its next
    period ends (a period's ``complete`` flips then). Entries are per process, bounded (LRU).
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Hashable, datetime, list[Period]]] = (
            OrderedDict()
        )

    def series(self, query: SeriesQuery, metric: str, granularity: Granularity) -> list[Period]:
        key = (metric, granularity, *query.key())
        fingerprint = query.fingerprint(metric)
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] == fingerprint and query.now < found[1]:
                self._entries.move_to_end(key)
                return found[2]
        periods = query.series(metric, granularity)
        upcoming = [p.end for p in periods if p.end > query.now]
        until = min(upcoming, default=datetime.max.replace(tzinfo=UTC))
        with self._lock:
            self._entries[key] = (fingerprint, until, periods)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return periods


@dataclass
class Change:
    absolute: float | None
    relative: float | None


def change(current: float | None, previous: float | None) -> Change:
    if current is None or previous is None:
        return Change(None, None)
    absolute = current - previous
    return Change(absolute, absolute / abs(previous) if previous != 0 else None)


# ---------------------------------------------------------------- fetched points


def fetched_totals(
    points: Sequence[records.DataPoint],
    connector: Connector | None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, float | None]:
    """Each metric's total over the points of one fetch (read, not stored), by the rules a
    stored series follows (the module docstring): what the fetch review shows as its total."""
    source = uuid.UUID(int=0)  # one source: the points' own
    rows: dict[str, list[Row]] = defaultdict(list)
    for p in points:
        key = records.dimensions_key(p.dimensions)
        rows[p.metric].append(
            Row(
                source,
                p.granularity,
                p.period_start,
                p.period_end,
                p.period_start.date(),
                p.timezone,
                p.dimensions,
                key,
                p.value,
                p.weight,
                p.complete,
            )
        )
    totals: dict[str, float | None] = {}
    for metric, metric_rows in rows.items():
        found = connector.metric(metric, config) if connector is not None else None
        if found is None:
            found = catalog().get(metric)
        rule = Rule(found.aggregation, found.weight_metric) if found else Rule()
        weights: dict[tuple[object, ...], float] = {
            (w.source_id, w.granularity, w.period_start, w.dimensions_key): w.value
            for w in rows.get(rule.weight_metric or "", [])
        }
        totals[metric] = _combine(_select(metric_rows, {}), rule, weights)
    return totals

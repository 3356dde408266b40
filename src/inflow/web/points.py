"""Data points for people: grouped by metric with a total (by the metric's own rule), and the
fetched batches a review dialog stores with "Create All Data Points".

A fetch's points stay on the server (``Batches``, keyed by a random id, per user, for
``TTL``): the review dialog posts back only that id, so storing months of points never needs a
multi-megabyte request body, and the stored values are exactly those the user reviewed. The
batches live in the server process's memory: a restart (or another server process behind a
load balancer) answers "fetch again", which costs one provider read and loses nothing stored.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inflow.connectors.records import DataPoint
from inflow.connectors.spec import Connector

TTL_S = 30 * 60
MAX_BATCHES = 64  # in all: the oldest goes first


class PointLike(Protocol):
    """A fetched (``connectors.records.DataPoint``) or a stored (``models.DataPoint``) point."""

    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def period_start(self) -> datetime: ...
    @property
    def granularity(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def weight(self) -> float | None: ...


@dataclass
class PointGroup:
    """One metric's rows for the ``data_point_table`` macro."""

    metric: str
    label: str
    unit: str | None
    total: float | None
    total_label: str
    points: list[dict[str, Any]] = field(default_factory=list)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def period_label(start: datetime, granularity: str, timezone: str = "UTC") -> str:
    """A period as its days read in the point's time zone (``2026-11-17``, ``2026-11``)."""
    zone = _zone(timezone)
    local = start.astimezone(zone) if zone is not None else start
    if granularity == "hour":
        return local.strftime("%Y-%m-%d %H:%M")
    if granularity == "week":
        return "week of " + local.strftime("%Y-%m-%d")
    if granularity == "month":
        return local.strftime("%Y-%m")
    if granularity in ("24h", "48h", "72h"):  # a rolling window ending at any hour
        return f"{granularity} from " + local.strftime("%Y-%m-%d %H:%M")
    return local.strftime("%Y-%m-%d")


_TOTALS = {"sum": "Total", "max": "Highest", "min": "Lowest", "last": "Latest"}


def _total(points: Sequence[PointLike], aggregation: str) -> tuple[float | None, str]:
    values = [p.value for p in points]
    if not values:
        return None, "Total"
    if aggregation == "sum":
        return sum(values), "Total"
    if aggregation == "max":
        return max(values), _TOTALS["max"]
    if aggregation == "min":
        return min(values), _TOTALS["min"]
    if aggregation == "last":
        return max(points, key=lambda p: p.period_start).value, _TOTALS["last"]
    weights = [p.weight for p in points]
    if all(w is not None for w in weights) and sum(w or 0 for w in weights) > 0:
        weighted = sum(p.value * (p.weight or 0) for p in points)
        return weighted / sum(w or 0 for w in weights), "Average (weighted)"
    return sum(values) / len(values), "Average"


def _dimensions(point: PointLike) -> dict[str, str]:
    return dict(getattr(point, "dimensions", None) or {})


def _one_breakdown(points: Sequence[PointLike]) -> list[PointLike]:
    """The points a total may combine without counting anything twice: a provider reports a
    day's overall value beside its breakdowns (all calls, and calls by direction), so only
    the rows of the coarsest breakdown count (the overall ones when there are any)."""
    if not points:
        return []
    coarsest = min(len(_dimensions(p)) for p in points)
    keys = next(tuple(sorted(_dimensions(p))) for p in points if len(_dimensions(p)) == coarsest)
    return [p for p in points if tuple(sorted(_dimensions(p))) == keys]


def group_points(
    points: Iterable[PointLike],
    connector: Connector | None,
    config: dict[str, Any] | None = None,
) -> list[PointGroup]:
    """Points by metric (catalog order, then by name), each sorted by period, with a total."""
    by_metric: dict[str, list[PointLike]] = {}
    for p in points:
        by_metric.setdefault(p.metric, []).append(p)
    order = {m.key: i for i, m in enumerate(connector.metrics)} if connector else {}
    groups = []
    for metric in sorted(by_metric, key=lambda m: (order.get(m, len(order)), m)):
        rows = sorted(
            by_metric[metric],
            key=lambda p: (p.period_start, sorted(_dimensions(p).items())),
        )
        definition = connector.metric(metric, config) if connector else None
        counted = _one_breakdown(rows)
        total, total_label = _total(counted, definition.aggregation if definition else "sum")
        groups.append(
            PointGroup(
                metric=metric,
                label=definition.label if definition else metric,
                unit=definition.unit if definition and definition.unit != "count" else None,
                total=total,
                total_label=total_label,
                points=[
                    {
                        "period": period_label(p.period_start, p.granularity, p.timezone),
                        "dimensions": _dimensions(p),
                        "value": p.value,
                    }
                    for p in rows
                ],
            )
        )
    return groups


@dataclass(frozen=True)
class Batch:
    """Points a fetch read, kept for their review."""

    id: str
    user_id: uuid.UUID
    source_id: uuid.UUID
    points: tuple[DataPoint, ...]
    start: datetime
    end: datetime
    made: float  # time.monotonic()


class Batches:
    """Fetched batches awaiting "Create All", per server process (see the module docstring)."""

    def __init__(self, ttl_s: float = TTL_S, most: int = MAX_BATCHES) -> None:
        self.ttl_s = ttl_s
        self.most = most
        self._lock = threading.Lock()
        self._items: dict[str, Batch] = {}

    def put(
        self,
        *,
        user_id: uuid.UUID,
        source_id: uuid.UUID,
        points: Sequence[DataPoint],
        start: datetime,
        end: datetime,
    ) -> Batch:
        batch = Batch(
            id=secrets.token_urlsafe(16),
            user_id=user_id,
            source_id=source_id,
            points=tuple(points),
            start=start,
            end=end,
            made=time.monotonic(),
        )
        with self._lock:
            self._drop_old()
            while len(self._items) >= self.most:
                self._items.pop(next(iter(self._items)))
            self._items[batch.id] = batch
        return batch

    def get(self, batch_id: str, *, user_id: uuid.UUID, source_id: uuid.UUID) -> Batch | None:
        """The batch, if it is this user's for this source and still fresh."""
        with self._lock:
            self._drop_old()
            batch = self._items.get(batch_id)
        if batch is None or batch.user_id != user_id or batch.source_id != source_id:
            return None
        return batch

    def discard(self, batch_id: str) -> None:
        with self._lock:
            self._items.pop(batch_id, None)

    def _drop_old(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        for key in [k for k, b in self._items.items() if b.made < cutoff]:
            del self._items[key]

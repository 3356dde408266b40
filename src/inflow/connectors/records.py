"""What streams yield: plain typed records the sync engine stores.

``Asset`` is a report or dashboard (upserted by ``(source, external_id)``); ``DataPoint`` is one
metric value for one period (upserted by ``(source, metric, granularity, period_start,
dimensions_key)``). Both check the types of what a provider's answer fills in as they are made
(a ``TypeError`` saying which type came instead): a connector reading an unexpected answer
fails there, where the runtime names the request, and never in the database.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote

AssetKind = Literal["report", "dashboard", "folder"]  # a folder holds the others (Grafana)
# "24h", "48h", "72h": a rolling window of that length ending at any hour (Clarity's live
# insights), never a calendar day
Granularity = Literal["hour", "day", "24h", "48h", "72h", "week", "month"]
ROLLING: dict[str, int] = {"24h": 1, "48h": 2, "72h": 3}  # rolling granularity -> days


@dataclass(frozen=True, slots=True)
class Asset:
    external_id: str
    kind: AssetKind
    name: str
    url: str | None = None
    embed_url: str | None = None
    folder: str | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.external_id, str, "external_id")
        _require(self.name, str, "name")
        for name in ("url", "embed_url", "folder"):
            value = getattr(self, name)
            if value is not None:
                _require(value, str, name)
        if self.updated_at is not None:
            _require(self.updated_at, datetime, "updated_at")
        _require(self.extra, Mapping, "extra")


_NUMBERS = frozenset((int, float))


_KINDS = {str: "a string", datetime: "a date and time", Mapping: "an object"}


def _require(value: Any, kind: type | tuple[type, ...], name: str) -> None:
    """A ``TypeError`` naming the field and the type that came instead (``name is 'dict',
    expected a string``)."""
    if not isinstance(value, kind) or isinstance(value, bool):
        wanted = _KINDS.get(kind, "a number") if isinstance(kind, type) else "a number"
        raise TypeError(f"{name} is '{type(value).__name__}', expected {wanted}")


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def today_ordinal() -> int:
    """Today's UTC date as ``date.toordinal()``: cheap enough to call for every record."""
    return int(time.time() // 86400) + _EPOCH_ORDINAL


def dimensions_key(dimensions: Mapping[str, str]) -> str:
    """A canonical, order-independent key: ``k1=v1&k2=v2`` sorted, percent-encoded."""
    if not dimensions:
        return ""
    items = tuple(sorted((str(k), str(v)) for k, v in dimensions.items()))
    return _encoded(items)


@lru_cache(maxsize=65536)
def _encoded(items: tuple[tuple[str, str], ...]) -> str:
    # The same dimension sets recur on every day and every sync (one per page or country):
    # percent-encoding them once each is most of the cost of a key.
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in items)


@dataclass(frozen=True, slots=True)
class DataPoint:
    metric: str
    value: float
    period_start: datetime
    period_end: datetime
    granularity: Granularity = "day"
    dimensions: Mapping[str, str] = field(default_factory=dict)
    unit: str | None = None
    timezone: str = "UTC"
    complete: bool = True
    weight: float | None = None

    def __post_init__(self) -> None:
        # Inline: a sync may make millions of points.
        metric: object = self.metric
        if metric.__class__ is not str:
            _require(metric, str, "metric")
        value: object = self.value
        if value.__class__ not in _NUMBERS:
            _require(value, (int, float), "value")
        start: object = self.period_start
        end: object = self.period_end
        if not (isinstance(start, datetime) and isinstance(end, datetime)):
            _require(start, datetime, "period_start")
            _require(end, datetime, "period_end")
        weight: object = self.weight
        if weight is not None and weight.__class__ not in _NUMBERS:
            _require(weight, (int, float), "weight")
        for key, item in self.dimensions.items():  # a key of the upsert: strings only
            if key.__class__ is not str or item.__class__ is not str:
                _require(key, str, "dimension name")
                _require(item, str, f"dimension {key}")

    @property
    def dimensions_key(self) -> str:
        return dimensions_key(self.dimensions)


Record = Asset | DataPoint

"""What streams yield: plain typed records the sync engine stores.

``Asset`` is a report or dashboard (upserted by ``(source, external_id)``); ``DataPoint`` is one
metric value for one period (upserted by ``(source, metric, granularity, period_start,
dimensions_key)``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote

AssetKind = Literal["report", "dashboard"]
Granularity = Literal["hour", "day", "week", "month"]


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

    @property
    def dimensions_key(self) -> str:
        return dimensions_key(self.dimensions)


Record = Asset | DataPoint

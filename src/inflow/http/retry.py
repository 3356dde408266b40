"""Retry policy: bounded by attempts and total time, exponential backoff with full jitter,
``Retry-After`` (seconds or an HTTP date) honoured. Tests switch waits off with ``set_testing``."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_TESTING = {"on": False, "cap_s": 0.0}


def set_testing(on: bool, *, cap_s: float = 0.0) -> None:
    """In tests, cap every wait at ``cap_s`` seconds (0: no wait) so fault tests stay fast."""
    _TESTING["on"] = on
    _TESTING["cap_s"] = cap_s


def testing_cap(delay: float) -> float:
    return min(delay, _TESTING["cap_s"]) if _TESTING["on"] else delay


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    Args:
        attempts: total tries, the first included.
        base_s / max_s: backoff is ``uniform(0, min(max_s, base_s * 2**n))`` (full jitter).
        total_s: give up once this much time went into waiting.
        max_retry_after_s: a provider's ``Retry-After`` longer than this is not waited out
            inside one request; the error surfaces (and the run reports it) instead.
    """

    attempts: int = 6
    base_s: float = 0.5
    max_s: float = 30.0
    total_s: float = 300.0
    max_retry_after_s: float = 900.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None  # "nan", "inf": garbage
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

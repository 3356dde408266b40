"""Retries on stamina, with Inflow's rules as its hooks.

stamina (on tenacity) runs the loop: it counts the attempts and sleeps between them. What it
waits, and whether it tries again at all, our hook decides from the failed try
(``RetryableFailure``) and the request's ``RetryBudget``:

- a provider's ``Retry-After`` (seconds or an HTTP date) or reset header, else exponential
  backoff with full jitter (``RetryPolicy.backoff``);
- a wait longer than ``max_retry_after_s`` is not waited out: the error surfaces instead;
- the waits of one request (rate-limit slots included) stay within ``total_s``;
- at most ``attempts`` tries, the first included.

Tests switch waits off with ``set_testing`` (stamina's test mode: no waits, the attempts still
happen), or cap them at ``cap_s`` seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import stamina

# Test mode with a cap above zero: stamina's own test mode waits nothing, so the cap is ours.
_TESTING = {"on": False, "cap_s": 0.0}
# stamina's test mode replaces the attempts; capped at this many, a policy keeps its own.
_TEST_ATTEMPTS = 1_000_000


def set_testing(on: bool, *, cap_s: float = 0.0) -> None:
    """In tests, cap every wait at ``cap_s`` seconds (0: no wait) so fault tests stay fast.

    With ``cap_s`` 0 this is stamina's test mode (every wait is zero, each policy keeps its
    number of attempts); a wait capped above zero is applied by our hook."""
    _TESTING["on"] = on
    _TESTING["cap_s"] = cap_s
    stamina.set_testing(on and cap_s <= 0, attempts=_TEST_ATTEMPTS, cap=True)


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


class RetryableFailure(Exception):  # noqa: N818 - a signal to the retry loop, never surfaced
    """A try that failed in a way worth another, and the seconds to wait first (planned by
    ``RetryBudget.plan``). Raised inside the stamina loop only: a final failure is raised as
    the ``InflowError`` it is."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass
class RetryBudget:
    """One request's retry budget under ``policy``: its tries and the time spent waiting."""

    policy: RetryPolicy
    waited: float = 0.0

    def plan(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before try ``attempt + 1``, or None when the failure is final: no
        tries left, a provider's wait longer than ``max_retry_after_s``, or the total budget
        spent. ``retry_after``: the provider's own wait (``Retry-After`` or a reset header)."""
        policy = self.policy
        if attempt >= policy.attempts:
            return None
        delay = retry_after if retry_after is not None else policy.backoff(attempt)
        if delay > policy.max_retry_after_s or self.waited + delay > policy.total_s:
            return None
        self.waited += delay
        return delay


def backoff_hook(exc: Exception) -> bool | float:
    """stamina's ``on`` hook: retry a ``RetryableFailure`` after its planned wait; anything
    else is final."""
    if isinstance(exc, RetryableFailure):
        return testing_cap(exc.delay)
    return False


def retrying(policy: RetryPolicy) -> AsyncIterable[stamina.Attempt]:
    """stamina's retry loop under ``policy`` (``async for attempt in ...: with attempt: ...``).
    The time budget is the hook's (it counts waits, not the requests' own time)."""
    return stamina.retry_context(on=backoff_hook, attempts=policy.attempts, timeout=None)


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

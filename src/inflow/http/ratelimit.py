"""Outbound rate limits per (connector, credential): wait for a slot instead of being refused.

Windows are ``limits`` strings (``"25/second"``, ``"60/minute"``, ``"10/day"``); the storage is
in memory, or Redis when configured so that every worker shares one budget. A wait longer than
``max_wait_s`` (a daily quota, say) is not slept through: ``RateLimitedError`` says until when.
Windows of a few seconds keep ``HEADROOM`` of their budget unused: the provider counts requests
as they arrive, and the transit time of requests granted together varies (by hundreds of ms
on a busy host), so a window filled to the last slot here may hold one more there.
A Redis that does not answer is ``ServiceUnavailableError`` (the run fails saying so; the next
run tries again), never a raw redis exception: ``store_errors`` converts, for the API's limiter
too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from inflow.errors import RateLimitedError, ServiceUnavailableError
from inflow.http.redact import redact_url
from inflow.logging import get_logger

log = get_logger(__name__)

WaitHook = Callable[[str, float], Awaitable[None] | None]

# Options of the Redis storage: failures come out as ``limits.errors.StorageError`` whatever the
# driver, and a host that does not answer costs seconds, not the OS's minutes-long connect timeout.
REDIS_OPTIONS: dict[str, float | str | bool] = {
    "wrap_exceptions": True,
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
}
STORE_DOWN = "the rate-limit store (Redis) is unreachable; try again in a few seconds"
HEADROOM = 0.1  # of a short window's budget, at least one request
SHORT_WINDOW_S = 10  # windows up to this long keep the headroom


def planned(limit: str) -> RateLimitItem:
    """The window we fill: the provider's, less ``HEADROOM`` when it is short (where transit
    jitter is a sizeable part of it); at least one request."""
    item = parse(limit)
    if item.get_expiry() > SHORT_WINDOW_S or item.amount < 2:
        return item
    amount = max(1, item.amount - max(1, int(item.amount * HEADROOM)))
    return type(item)(amount, item.multiples, item.namespace)


@contextmanager
def store_errors(redis_url: str | None) -> Iterator[None]:
    """Turn a failing rate-limit store into ``ServiceUnavailableError``. The message names no
    address (it may reach anonymous callers); the log has the URL, its password masked."""
    try:
        yield
    except StorageError as exc:
        log.warning(
            "rate-limit store unreachable",
            url=redact_url(redis_url or ""),
            error=f"{type(exc.storage_error).__name__}: {exc.storage_error}",
        )
        raise ServiceUnavailableError(STORE_DOWN) from exc


class OutboundLimiter:
    """Token windows keyed by a string; ``acquire`` sleeps until every window has room."""

    def __init__(self, redis_url: str | None = None, *, namespace: str = "inflow-out") -> None:
        storage = (
            storage_from_string(
                redis_url if redis_url.startswith("async+") else "async+" + redis_url,
                implementation="redispy",
                key_prefix=namespace,
                **REDIS_OPTIONS,
            )
            if redis_url
            else storage_from_string("async+memory://")
        )
        assert isinstance(storage, Storage)  # noqa: S101 - the async+ scheme guarantees it
        self.redis_url = redis_url
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(self.storage)

    async def delay_for(self, items: Sequence[RateLimitItem], key: str) -> float:
        """Seconds until ``key`` may send again under every window (0 when it may now)."""
        delay = 0.0
        with store_errors(self.redis_url):
            for item in items:
                if not await self._limiter.test(item, key):
                    stats = await self._limiter.get_window_stats(item, key)
                    delay = max(delay, stats.reset_time - time.time(), 0.01)
        return delay

    async def acquire(
        self,
        limits: Sequence[str],
        key: str,
        *,
        max_wait_s: float = 120.0,
        on_wait: WaitHook | None = None,
    ) -> float:
        """Take one slot in every window, waiting as needed; returns the seconds waited."""
        items = [planned(limit) for limit in limits]
        waited = 0.0
        while True:
            delay = await self.delay_for(items, key)
            if delay <= 0:
                with store_errors(self.redis_url):
                    hits = [await self._limiter.hit(item, key) for item in items]
                if all(hits):
                    return waited
                continue  # another worker took the slot between test and hit
            if delay > max_wait_s:
                raise RateLimitedError(
                    f"the budget {', '.join(limits)} is used up; the next slot opens in "
                    f"{delay:.0f} s",
                    retry_after=delay,
                )
            if on_wait is not None:
                maybe = on_wait(f"rate limit {', '.join(limits)}", delay)
                if maybe is not None:
                    await maybe
            await asyncio.sleep(delay)
            waited += delay

    async def remaining(self, limit: str, key: str) -> tuple[int, float]:
        """(slots left, epoch seconds when the window resets) for one window (as filled:
        ``planned``)."""
        with store_errors(self.redis_url):
            stats = await self._limiter.get_window_stats(planned(limit), key)
        return stats.remaining, stats.reset_time

    async def reset(self) -> None:
        with store_errors(self.redis_url):
            await self.storage.reset()

    async def aclose(self) -> None:
        """Close the Redis connections, if any (the memory storage holds none)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

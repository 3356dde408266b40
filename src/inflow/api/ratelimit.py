"""Rate limits for Inflow's own routes, with the ``limits`` library.

Memory storage by default (one process); Redis when ``INFLOW_REDIS_URL`` is set, so every API
process shares one count. Over the limit → ``RateLimitExceededError`` carrying ``Retry-After``.
Redis unreachable → ``ServiceUnavailableError`` (503): never fail open, the limits guard login
against guessing. The one exception is the health check, which reports the outage itself.
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from inflow.errors import RateLimitExceededError
from inflow.http.ratelimit import REDIS_OPTIONS, store_errors


class Limiter:
    """Checks and counts hits of a limit string (``"5/minute"``) for a key."""

    def __init__(self, redis_url: str | None = None, namespace: str = "inflow") -> None:
        uri = redis_url if redis_url else "memory://"
        options = {"key_prefix": namespace, **REDIS_OPTIONS} if redis_url else {}
        self.redis_url = redis_url
        self.storage = storage_from_string(uri, **options)
        self._limiter = MovingWindowRateLimiter(self.storage)

    @property
    def shared(self) -> bool:
        """Whether the counts live in Redis (shared by every process) rather than in memory."""
        return bool(self.redis_url)

    def hit(self, limit: str, *keys: str) -> None:
        """Count one hit; raise ``RateLimitExceededError`` when the limit is already used up,
        ``ServiceUnavailableError`` when Redis does not answer."""
        item = parse(limit)
        with store_errors(self.redis_url):
            if self._limiter.hit(item, *keys):
                return
            reset_at, _remaining = self._limiter.get_window_stats(item, *keys)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimitExceededError(
            f"too many requests: limit is {limit}; retry in {retry_after} s",
            retry_after=retry_after,
        )

    def clear(self, limit: str, *keys: str) -> None:
        with store_errors(self.redis_url):
            self._limiter.clear(parse(limit), *keys)

    def reachable(self) -> bool:
        """Whether the store answers a ping (memory always does)."""
        return bool(self.storage.check())

    def reset(self) -> None:
        with store_errors(self.redis_url):
            self.storage.reset()

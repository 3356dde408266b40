"""Rate limits for Inflow's own routes, with the ``limits`` library.

Memory storage by default (one process); Redis when ``INFLOW_REDIS_URL`` is set, so every API
process shares one count. Over the limit → ``RateLimitExceededError`` carrying ``Retry-After``.
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from inflow.errors import RateLimitExceededError


class Limiter:
    """Checks and counts hits of a limit string (``"5/minute"``) for a key."""

    def __init__(self, redis_url: str | None = None, namespace: str = "inflow") -> None:
        uri = redis_url if redis_url else "memory://"
        options = {"key_prefix": namespace} if redis_url else {}
        self.storage = storage_from_string(uri, **options)
        self._limiter = MovingWindowRateLimiter(self.storage)

    def hit(self, limit: str, *keys: str) -> None:
        """Count one hit; raise ``RateLimitExceededError`` when the limit is already used up."""
        item = parse(limit)
        if self._limiter.hit(item, *keys):
            return
        reset_at, _remaining = self._limiter.get_window_stats(item, *keys)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimitExceededError(
            f"too many requests: limit is {limit}; retry in {retry_after} s",
            retry_after=retry_after,
        )

    def clear(self, limit: str, *keys: str) -> None:
        self._limiter.clear(parse(limit), *keys)

    def reset(self) -> None:
        self.storage.reset()

"""Request statistics per emulator: what tests read to prove a client stayed within limits.

`retryAfterViolations` counts requests from one client (its Authorization header, or its IP
when it sends none) that arrived before the `Retry-After` it was last given had elapsed.
`maxInMovingSecond` is the most requests that arrived within any one second (a moving window,
not calendar seconds: what a provider's "N per second" means); `?arrivals=true` adds each
request's arrival time (epoch seconds, the last `ARRIVALS_KEPT`), for windows of other sizes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, deque

from inflow.sandbox.emulator import JSONObject, JSONValue

# Retry-After is whole seconds; a client that waited exactly that long may arrive a hair early
# by its own clock's rounding.
RETRY_AFTER_GRACE_S = 0.01
ARRIVALS_KEPT = 20_000


def max_in_window(arrivals: list[float], window_s: float) -> int:
    """The most arrivals (sorted) within any span shorter than ``window_s``."""
    most = 0
    for i, at in enumerate(arrivals):
        first = bisect_left(arrivals, at - window_s + 1e-6, 0, i + 1)
        most = max(most, i - first + 1)
    return most


class Stats:
    """Counters for one emulator; `public()` is the `GET /_sandbox/{slug}/stats` body."""

    def __init__(self) -> None:
        self.total = 0
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_second: Counter[int] = Counter()
        self.throttled = 0
        self.retry_after_violations = 0
        self._retry_not_before: dict[str, float] = {}
        self.mutated = 0  # answers changed by the `mutate` fault
        self.mutations: list[str] = []  # the last few: "GET /path: value[3] → null"
        self.arrivals: deque[float] = deque(maxlen=ARRIVALS_KEPT)

    def record_arrival(self, client: str, endpoint: str, now: float) -> None:
        """Count a request as it arrives, before any fault or handler runs."""
        self.total += 1
        self.by_endpoint[endpoint] += 1
        self.by_second[int(now)] += 1
        self.arrivals.append(now)
        not_before = self._retry_not_before.get(client)
        if not_before is not None and now < not_before - RETRY_AFTER_GRACE_S:
            self.retry_after_violations += 1

    def record_response(
        self, client: str, status: int, retry_after_s: float | None, now: float
    ) -> None:
        """Count a response; a 429 remembers when this client may come back."""
        self.by_status[str(status)] += 1
        if status == 429:
            self.throttled += 1
            self._retry_not_before[client] = now + (retry_after_s or 0.0)

    def record_mutation(self, what: str) -> None:
        """Count an answer the `mutate` fault changed (the last 20 are kept)."""
        self.mutated += 1
        self.mutations = [*self.mutations[-19:], what]

    def public(self, *, arrivals: bool = False) -> JSONObject:
        """The stats as JSON (with ``arrivals``: every kept request's arrival time)."""
        times = sorted(self.arrivals)
        body: dict[str, JSONValue] = {
            "total": self.total,
            "byEndpoint": dict(self.by_endpoint),
            "byStatus": dict(self.by_status),
            "bySecond": {str(s): n for s, n in sorted(self.by_second.items())},
            "maxPerSecond": max(self.by_second.values(), default=0),
            "maxInMovingSecond": max_in_window(times, 1.0),
            "throttled": self.throttled,
            "retryAfterViolations": self.retry_after_violations,
            "mutated": self.mutated,
            "mutations": list(self.mutations),
        }
        if arrivals:
            body["arrivals"] = [round(t, 6) for t in times]
        return body

"""Outbound rate limits per (connector, credential): wait for a slot instead of being refused.

Windows are ``limits`` strings (``"25/second"``, ``"60/minute"``, ``"10/day"``), of two kinds:

- A short window (up to ``SHORT_WINDOW_S``) is a pace: grants for one key come one every
  ``window / amount`` seconds, never two closer (GCRA: each key keeps the "theoretical arrival
  time" of its next request; a grant takes the slot at that time or now, whichever is later, and
  moves it on by the spacing). Granting a window's slots together, as a moving window does,
  let a provider that counts arrivals in a moving second see up to 17 under a 10/second limit:
  on a busy host the transit of requests granted at one instant varies by hundreds of ms.
- A longer window (per minute, per day) is a quota: ``limits``' moving window, with
  ``remaining`` and, past ``max_wait_s`` (Clarity's 10/day, say), ``RateLimitedError`` saying
  until when rather than a sleep through it. A connector that declares both kinds is held to
  both: the pace first, then the quotas.

The storage is in memory (this process's monotonic clock), or Redis when configured so that
every worker shares one budget per key. On Redis a grant is one Lua script: it reads Redis's
own clock (one clock for every host), takes the slot and stores the next one in one atomic
step, so two processes never get the same slot.

The GCRA is ours: ``limits`` (5.8, its newest) offers fixed, moving and sliding-window-counter
strategies, each of which lets a window's whole budget through at once; aiolimiter spaces
requests but in one process's memory only; pyrate-limiter's leaky bucket is a sliding log that
also admits a window's budget together; the small Redis GCRA packages (aiopylimit,
pyredis-rate-limiter) are unmaintained. The algorithm is a dozen lines here.

Even spacing removes the bursts, not the transit jitter: a request sent late (a starved
process, a busy event loop, the host's scheduler) lands close to the next one, and the
provider's moving window counts both. So a grant woken more than ``LATE_FRACTION`` of a
spacing after its slot is given up and the next free slot taken, and a short window is filled
as if it were ``JITTER_S`` longer (``planned``: 10/second is paced at 8, one every 125 ms).
Measured with the shared-rate-limit process test (tests/cli/test_jobs.py: three ``inflow
worker`` processes, one 10/second key, 48 requests, this 2-core host at load 4-9; the most in
a moving second of the workers' send times / of the sandbox's arrivals, ``maxInMovingSecond``):
paced at 9 (the former 10 % headroom) 12/12, 12/10, 14/11, 12/10; with the give-up added, at
the full 10/second 15/13, 11/13, 12/11, at 9 11/11, 10/11, 11/11, 11/10, at 8 9/10, 9/10,
11/11; with lateness also counting a slow answer from Redis (as now), at 8 11/9, 9/9, 9/9.
The arrivals are what a provider counts; the send times are read on each worker's own clock,
and those differ by tens of ms.

A Redis that does not answer is ``ServiceUnavailableError`` (the run fails saying so; the next
run tries again), never a raw redis exception: ``store_errors`` converts, for the API's limiter
too.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from limits import RateLimitItem, WindowStats, parse
from limits import strategies as sync_strategies
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from redis.exceptions import RedisError

from inflow.errors import RateLimitedError, ServiceUnavailableError
from inflow.http.redact import redact_url
from inflow.logging import get_logger

log = get_logger(__name__)

WaitHook = Callable[[str, float], Awaitable[None] | None]
GrantHook = Callable[[str, float], None]

# Options of the Redis storage: failures come out as ``limits.errors.StorageError`` whatever the
# driver, and a host that does not answer costs seconds, not the OS's minutes-long connect timeout.
REDIS_OPTIONS: dict[str, float | str | bool] = {
    "wrap_exceptions": True,
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
}
STORE_DOWN = "the rate-limit store (Redis) is unreachable; try again in a few seconds"
# A short window is filled as if it were this much longer (at least one request less): the
# spread of the transit of requests sent one spacing apart, on a busy host (see above).
JITTER_S = 0.25
SHORT_WINDOW_S = 10  # windows up to this long are paced (and allow for JITTER_S)
# A wait for the pace shorter than this is the pace's ordinary gap: counted in the seconds
# ``acquire`` returns, not announced to ``on_wait`` (which stores the run's waiting state: a
# write per request at 50/second).
NOTED_WAIT_S = 0.1
# A paced grant woken later than this part of its spacing after its slot (a busy event loop, a
# starved process) is given up and the next free slot taken: sent late, it would land close to
# the next grant's request and crowd the provider's moving window.
LATE_FRACTION = 0.25

# KEYS: each short window's next slot (µs on Redis's clock). ARGV: each window's spacing (µs),
# then the longest wait to accept (µs), then 1 to take the slot or 0 to look only.
# Returns {taken (1/0), the slot, now}: the slot is the latest next slot, or now.
PACE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = now
for _, key in ipairs(KEYS) do
  local next_slot = tonumber(redis.call('GET', key))
  if next_slot and next_slot > slot then slot = next_slot end
end
local n = #KEYS
if ARGV[n + 2] == '1' and slot - now <= tonumber(ARGV[n + 1]) then
  for i, key in ipairs(KEYS) do
    local spacing = tonumber(ARGV[i])
    local keep_ms = math.ceil((slot - now + spacing) / 1000) + 1000
    redis.call('SET', key, string.format('%.0f', slot + spacing), 'PX', keep_ms)
  end
  return {1, slot, now}
end
return {0, slot, now}
"""


def planned(limit: str) -> RateLimitItem:
    """The window we fill: the provider's, or when it is short (where transit jitter is a
    sizeable part of it) its pace over the window plus ``JITTER_S``, at least one request
    less; never none."""
    item = parse(limit)
    if not is_short(item) or item.amount < 2:
        return item
    window = item.get_expiry()
    amount = max(1, min(item.amount - 1, math.floor(item.amount * window / (window + JITTER_S))))
    return type(item)(amount, item.multiples, item.namespace)


def is_short(item: RateLimitItem) -> bool:
    """A window paced evenly (rather than a quota spent as it comes)."""
    return bool(item.get_expiry() <= SHORT_WINDOW_S)


def spacing(item: RateLimitItem) -> float:
    """Seconds between two grants under a short window."""
    return float(item.get_expiry()) / item.amount


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


class _MemoryQuotas:
    """The quotas' moving windows in this process's memory: ``limits``' synchronous memory
    storage behind the async strategy's three calls (nothing in them waits on I/O).

    Not the async memory storage: it expires its keys in a pass that hops to a thread once per
    key, started again after every hit; with 1,000 keys (a source each) that pass took 85 % of
    a core while they were used (measured: 0.95 s of CPU for 200 acquires in 1 s, against
    0.11 s with this one, whose timer thread scans the keys without hops)."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self._limiter = sync_strategies.MovingWindowRateLimiter(self.storage)

    async def test(self, item: RateLimitItem, key: str) -> bool:
        return self._limiter.test(item, key)

    async def hit(self, item: RateLimitItem, key: str) -> bool:
        return self._limiter.hit(item, key)

    async def get_window_stats(self, item: RateLimitItem, key: str) -> WindowStats:
        return self._limiter.get_window_stats(item, key)


class OutboundLimiter:
    """Paces and quotas keyed by a string; ``acquire`` sleeps until every window has room.

    ``on_grant`` (for tests and metrics) is told each grant under a short window: the key and
    the instant of its slot, in seconds on the pace's clock (Redis's, or this process's
    monotonic clock in memory)."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str = "inflow-out",
        on_grant: GrantHook | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.on_grant = on_grant
        self.storage: Storage | None = None
        self._memory: _MemoryQuotas | None = None
        self._limiter: MovingWindowRateLimiter | _MemoryQuotas
        if redis_url:
            storage = storage_from_string(
                redis_url if redis_url.startswith("async+") else "async+" + redis_url,
                implementation="redispy",
                key_prefix=namespace,
                **REDIS_OPTIONS,
            )
            assert isinstance(storage, Storage)  # noqa: S101 - the async+ scheme guarantees it
            self.storage = storage
            self._limiter = MovingWindowRateLimiter(storage)
        else:
            self._memory = self._limiter = _MemoryQuotas()
        self._bridge: Any = getattr(self.storage, "bridge", None)
        self._pace_script: Any = None
        self._next_slot: dict[str, float] = {}  # in memory: key -> monotonic seconds
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the pace (GCRA)

    def _pace_key(self, item: RateLimitItem, key: str) -> str:
        return "pace/" + str(item.key_for(key))

    async def _pace(
        self, items: Sequence[RateLimitItem], key: str, *, take: bool, max_wait_s: float
    ) -> tuple[bool, float, float]:
        """(taken, the slot, seconds from now until it) under the short windows ``items``:
        with ``take``, the slot is this caller's if it is at most ``max_wait_s`` away."""
        if self._bridge is None:
            return self._pace_memory(items, key, take=take, max_wait_s=max_wait_s)
        if self._pace_script is None:
            self._pace_script = self._bridge.get_connection().register_script(PACE_SCRIPT)
        keys = [self._bridge.prefixed_key(self._pace_key(item, key)) for item in items]
        args = [math.ceil(spacing(item) * 1e6) for item in items]
        args += [math.ceil(min(max_wait_s, 1e9) * 1e6), int(take)]
        try:
            taken, slot, now = await self._pace_script(keys=keys, args=args)
        except RedisError as exc:
            raise StorageError(exc) from exc
        return bool(taken), slot / 1e6, (slot - now) / 1e6

    def _pace_memory(
        self, items: Sequence[RateLimitItem], key: str, *, take: bool, max_wait_s: float
    ) -> tuple[bool, float, float]:
        keys = [self._pace_key(item, key) for item in items]
        with self._lock:
            now = time.monotonic()
            slot = max([now, *(self._next_slot.get(k, now) for k in keys)])
            if not take or slot - now > max_wait_s:
                return False, slot, slot - now
            if len(self._next_slot) > 10_000:  # forget the keys whose pace has run out
                self._next_slot = {k: at for k, at in self._next_slot.items() if at > now}
            for k, item in zip(keys, items, strict=True):
                self._next_slot[k] = slot + spacing(item)
            return True, slot, slot - now

    # ------------------------------------------------------------------ the public interface

    async def delay_for(self, items: Sequence[RateLimitItem], key: str) -> float:
        """Seconds until ``key`` may send again under every window (0 when it may now)."""
        paced = [item for item in items if is_short(item)]
        delay = await self._quota_delay([item for item in items if not is_short(item)], key)
        if paced:
            with store_errors(self.redis_url):
                _, _, wait = await self._pace(paced, key, take=False, max_wait_s=0.0)
            delay = max(delay, wait)
        return delay

    async def _quota_delay(self, items: Sequence[RateLimitItem], key: str) -> float:
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
        """Take the next slot of the pace and one in every quota, waiting as needed; returns the
        seconds waited."""
        items = [planned(limit) for limit in limits]
        paced = [item for item in items if is_short(item)]
        quotas = [item for item in items if not is_short(item)]
        reason = f"rate limit {', '.join(limits)}"
        # a slot woken for this much later than its time is given up (see ``_paced_slot``)
        tolerance = min((spacing(item) for item in paced), default=0.0) * LATE_FRACTION
        waited = 0.0
        announce = on_wait
        while True:
            delay = await self._quota_delay(quotas, key)
            if delay <= 0 and paced:
                loop = asyncio.get_running_loop()
                asked = loop.time()
                with store_errors(self.redis_url):
                    taken, slot, delay = await self._pace(
                        paced, key, take=True, max_wait_s=max_wait_s
                    )
                if taken:
                    if delay > 0:
                        waited += await self._sleep(delay, reason, announce, NOTED_WAIT_S)
                        announce = None  # once per acquire: the pace's waits are short
                    # late since the slot at the earliest (a slow answer counts as lateness)
                    if loop.time() - (asked + delay) > tolerance:
                        continue  # sent now, it would crowd the next slot: take another
                    if self.on_grant is not None:
                        self.on_grant(key, slot)
                    delay = 0.0
            if delay <= 0:
                with store_errors(self.redis_url):
                    hits = [await self._limiter.hit(item, key) for item in quotas]
                if all(hits):
                    return waited
                continue  # another worker took the quota's last slot meanwhile
            if delay > max_wait_s:
                raise RateLimitedError(
                    f"the budget {', '.join(limits)} is used up; the next slot opens in "
                    f"{delay:.0f} s",
                    retry_after=delay,
                )
            waited += await self._sleep(delay, reason, on_wait, 0.0)

    @staticmethod
    async def _sleep(delay: float, reason: str, on_wait: WaitHook | None, noted: float) -> float:
        """Sleep ``delay`` seconds from now, announcing the wait first when it is ``noted``
        long (the announcement's own time counts in it)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + delay
        if on_wait is not None and delay >= noted:
            maybe = on_wait(reason, delay)
            if maybe is not None:
                await maybe
        await asyncio.sleep(max(0.0, until - loop.time()))
        return delay

    async def remaining(self, limit: str, key: str) -> tuple[int, float]:
        """(slots left, epoch seconds when the window resets) for one window (as filled:
        ``planned``). A paced window's slots are those its pace has not yet taken: a full
        window, less one for each spacing until the next free slot."""
        item = planned(limit)
        if is_short(item):
            with store_errors(self.redis_url):
                _, _, wait = await self._pace([item], key, take=False, max_wait_s=0.0)
            taken = min(item.amount, math.ceil(round(wait / spacing(item), 6)))
            return item.amount - taken, time.time() + wait
        with store_errors(self.redis_url):
            stats = await self._limiter.get_window_stats(item, key)
        return stats.remaining, stats.reset_time

    async def reset(self) -> None:
        """Forget every pace and quota (of this namespace, on Redis)."""
        with self._lock:
            self._next_slot.clear()
        if self._memory is not None:
            self._memory.storage.reset()
        elif self.storage is not None:
            with store_errors(self.redis_url):
                await self.storage.reset()

    async def aclose(self) -> None:
        """Close the Redis connections, if any (the memory storage holds none)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

"""Outbound limits: short windows are paced evenly (one grant per spacing, shared through Redis),
longer ones are quotas that wait for a slot or refuse a wait past ``max_wait_s``.

Grants are checked through ``on_grant``: the slot each grant took, on the pace's clock (this
process's monotonic clock, or Redis's), not by timing how long a test took."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from itertools import pairwise

import pytest
from limits import parse

from inflow.errors import RateLimitedError, ServiceUnavailableError
from inflow.http.ratelimit import OutboundLimiter, planned, spacing
from tests.conftest import empty_redis

pytestmark = pytest.mark.anyio

EPS = 2e-6  # the Redis pace counts in whole µs


def key() -> str:
    return f"acme:{uuid.uuid4().hex}"


class Grants(list[float]):
    """The slots granted, as ``on_grant`` reports them."""

    def __call__(self, _key: str, slot: float) -> None:
        self.append(slot)

    def gaps(self) -> list[float]:
        ordered = sorted(self)
        return [b - a for a, b in pairwise(ordered)]


@pytest.fixture
def redis_db() -> Iterator[str]:
    """The Redis test database, flushed before and after."""
    with empty_redis() as url:
        yield url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., OutboundLimiter]]:
    """Limiters in memory or on the test Redis (one namespace per test)."""
    made: list[OutboundLimiter] = []
    namespace = f"inflow-test-{uuid.uuid4().hex[:8]}"
    with empty_redis() if request.param == "redis" else nullcontext(None) as url:

        def build(**kwargs: object) -> OutboundLimiter:
            limiter = OutboundLimiter(url, namespace=namespace, **kwargs)  # type: ignore[arg-type]
            made.append(limiter)
            return limiter

        yield build
        for limiter in made:
            await limiter.aclose()


# ------------------------------------------------------------------ the pace (short windows)


async def test_a_burst_is_spaced_evenly(make: Callable[..., OutboundLimiter]) -> None:
    grants = Grants()
    limiter = make(on_grant=grants)
    k = key()
    waited = await asyncio.gather(*(limiter.acquire(["5/second"], k) for _ in range(6)))
    gap = spacing(planned("5/second"))  # paced at 4 a second (see JITTER_S): 250 ms
    assert gap == 0.25
    assert len(grants) == 6
    assert min(grants.gaps()) >= gap - EPS
    # six grants take five spacings (not five at once, then one a second later)
    assert max(grants) - min(grants) == pytest.approx(5 * gap, abs=1e-3)
    assert sorted(waited)[0] == 0.0  # the first goes at once
    assert sorted(waited)[-1] == pytest.approx(5 * gap, abs=0.05)


async def test_the_pace_is_per_key(make: Callable[..., OutboundLimiter]) -> None:
    grants = Grants()
    limiter = make(on_grant=grants)
    a, b = key(), key()
    assert await limiter.acquire(["1/second"], a) == 0.0
    assert await limiter.acquire(["1/second"], b) == 0.0  # another credential: no wait
    assert 0.0 < await limiter.delay_for([parse("1/second")], a) <= 1.0
    assert await limiter.delay_for([parse("1/second")], key()) == 0.0


async def test_a_wait_is_announced_once_and_counted(make: Callable[..., OutboundLimiter]) -> None:
    limiter = make()
    k = key()
    seen: list[tuple[str, float]] = []

    async def on_wait(reason: str, seconds: float) -> None:
        seen.append((reason, seconds))

    # 3/second is paced at 2 (see JITTER_S): one every 0.5 s
    assert await limiter.acquire(["3/second"], k, on_wait=on_wait) == 0.0
    waited = await limiter.acquire(["3/second"], k, on_wait=on_wait)
    assert waited > 0.4
    assert len(seen) == 1
    assert seen[0][0] == "rate limit 3/second"
    assert 0.4 < seen[0][1] <= min(waited, 0.5)


async def test_a_slot_woken_too_late_is_given_up(make: Callable[..., OutboundLimiter]) -> None:
    """A starved event loop wakes a grant late: sent then, it would land next to the following
    grant's request; it takes the next free slot instead."""
    grants = Grants()
    limiter = make(on_grant=grants)
    k = key()
    gap = spacing(planned("10/second"))
    await limiter.acquire(["10/second"], k)
    second = asyncio.create_task(limiter.acquire(["10/second"], k))
    # until the second has taken its slot (one spacing on; its store's answer may take a while)
    while await limiter.delay_for([planned("10/second")], k) <= gap:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    time.sleep(3 * gap)  # noqa: ASYNC251 - the loop is blocked on purpose: a busy worker
    await second
    assert len(grants) == 2
    assert grants[1] - grants[0] >= 2 * gap  # granted when it woke, not at its lost slot


async def test_a_pace_queue_longer_than_max_wait_is_refused(
    make: Callable[..., OutboundLimiter],
) -> None:
    limiter = make()
    k = key()
    await limiter.acquire(["1/10 seconds"], k)
    with pytest.raises(RateLimitedError, match="the budget 1/10 seconds is used up") as caught:
        await limiter.acquire(["1/10 seconds"], k, max_wait_s=1.0)
    assert caught.value.retry_after is not None
    assert 9.0 < caught.value.retry_after <= 10.0
    left, _ = await limiter.remaining("1/10 seconds", k)
    assert left == 0  # the refused caller took nothing: the next slot is still 10 s on
    assert 9.0 < await limiter.delay_for([parse("1/10 seconds")], k) <= 10.0


async def test_remaining_of_a_paced_window(make: Callable[..., OutboundLimiter]) -> None:
    limiter = make()
    k = key()
    assert await limiter.remaining("10/10 seconds", k) == (9, pytest.approx(time.time(), abs=1))
    await limiter.acquire(["10/10 seconds"], k)
    left, free_at = await limiter.remaining("10/10 seconds", k)
    assert left == 8  # of the 9 it fills (see JITTER_S): one spacing (10/9 s) is taken
    assert time.time() < free_at <= time.time() + 10 / 9


# ------------------------------------------------------------------ quotas (longer windows)


async def test_a_quota_refuses_a_wait_beyond_max_wait(make: Callable[..., OutboundLimiter]) -> None:
    limiter = make()
    k = key()
    for _ in range(3):
        await limiter.acquire(["3/day"], k)
    slept: list[float] = []

    async def on_wait(reason: str, seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(RateLimitedError, match=r"the budget 3/day is used up") as caught:
        await limiter.acquire(["3/day"], k, max_wait_s=60.0, on_wait=on_wait)
    assert slept == []  # refused, not slept through
    assert caught.value.retry_after is not None
    assert 86_000 < caught.value.retry_after <= 86_400
    assert caught.value.fault == "provider"


async def test_pace_and_quota_both_hold(make: Callable[..., OutboundLimiter]) -> None:
    grants = Grants()
    limiter = make(on_grant=grants)
    k = key()
    windows = ["10/second", "2/day"]
    await asyncio.gather(limiter.acquire(windows, k), limiter.acquire(windows, k))
    assert min(grants.gaps()) >= spacing(planned("10/second")) - EPS  # paced
    with pytest.raises(RateLimitedError, match="10/second, 2/day"):
        await limiter.acquire(windows, k, max_wait_s=1.0)  # the quota is spent
    assert len(grants) == 2  # ... and the refused call took no slot of the pace either
    assert (await limiter.remaining("2/day", k))[0] == 0


async def test_a_quota_alone_is_not_paced(make: Callable[..., OutboundLimiter]) -> None:
    grants = Grants()
    limiter = make(on_grant=grants)
    k = key()
    waited = await asyncio.gather(*(limiter.acquire(["118/minute"], k) for _ in range(5)))
    assert waited == [0.0] * 5  # a minute's budget is spent as it comes
    assert grants == []  # no pace to take a slot of
    assert (await limiter.remaining("118/minute", k))[0] == 113


@pytest.mark.parametrize(
    ("limit", "filled"),
    [
        pytest.param("50/second", 40, id="over_a_second_and_a_quarter"),
        pytest.param("10/second", 8, id="ten_paced_at_eight"),
        pytest.param("3/second", 2, id="three_at_two"),
        pytest.param("2/second", 1, id="at_least_one_kept"),
        pytest.param("1/second", 1, id="never_none"),
        pytest.param("20/10 seconds", 19, id="ten_seconds_is_short"),
        pytest.param("100/10 seconds", 97, id="ten_seconds_less_a_fortieth"),
        pytest.param("118/minute", 118, id="a_minute_is_not_short"),
        pytest.param("9/minute", 9, id="a_minute_is_not_short_9"),
    ],
)
def test_planned_allows_for_jitter_in_short_windows_only(limit, filled) -> None:
    assert planned(limit).amount == filled


async def test_keys_are_separate_budgets(make: Callable[..., OutboundLimiter]) -> None:
    limiter = make()
    a, b = key(), key()
    await limiter.acquire(["1/day"], a)
    assert await limiter.delay_for([], a) == 0.0
    assert await limiter.acquire(["1/day"], b) == 0.0
    left, reset_at = await limiter.remaining("1/day", a)
    assert left == 0
    assert reset_at > time.time() + 86_000


async def test_reset_clears_paces_and_quotas(make: Callable[..., OutboundLimiter]) -> None:
    limiter = make()
    k = key()
    await limiter.acquire(["1/day", "1/10 seconds"], k)
    await limiter.reset()
    assert await limiter.acquire(["1/day", "1/10 seconds"], k, max_wait_s=0.0) == 0.0


# ------------------------------------------------------------------ Redis: one budget for all


@pytest.fixture
async def two_processes(redis_db: str) -> AsyncIterator[tuple[OutboundLimiter, OutboundLimiter]]:
    """Two limiters with their own connections, as two worker processes would have."""
    namespace = f"inflow-test-{uuid.uuid4().hex[:8]}"
    first = OutboundLimiter(redis_db, namespace=namespace)
    second = OutboundLimiter("async+" + redis_db, namespace=namespace)  # either form
    yield first, second
    await first.aclose()
    await second.aclose()


@pytest.mark.redis
async def test_redis_shares_one_quota(
    two_processes: tuple[OutboundLimiter, OutboundLimiter],
) -> None:
    first, second = two_processes
    k = key()
    await first.acquire(["3/day"], k)
    await first.acquire(["3/day"], k)
    assert (await second.remaining("3/day", k))[0] == 1
    await second.acquire(["3/day"], k)
    for limiter in (first, second):
        with pytest.raises(RateLimitedError) as caught:
            await limiter.acquire(["3/day"], k, max_wait_s=60.0)
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 86_000


@pytest.mark.redis
def test_redis_paces_limiters_in_separate_event_loops(redis_db: str) -> None:
    """Three limiters, each with its own event loop (a thread) and connection, as worker
    processes have, take turns on one key: no two grants closer than the spacing."""
    namespace = f"inflow-test-{uuid.uuid4().hex[:8]}"
    k = key()
    per_loop = 6

    def worker() -> Grants:
        async def run() -> Grants:
            grants = Grants()
            limiter = OutboundLimiter(redis_db, namespace=namespace, on_grant=grants)
            try:
                for _ in range(per_loop):
                    await limiter.acquire(["20/second"], k)
            finally:
                await limiter.aclose()
            return grants

        return asyncio.run(run())

    with ThreadPoolExecutor(3) as pool:
        loops = list(pool.map(lambda _: worker(), range(3)))
    grants = Grants(slot for loop in loops for slot in loop)
    gap = spacing(planned("20/second"))
    assert [len(loop) for loop in loops] == [per_loop] * 3
    assert min(grants.gaps()) >= gap - EPS
    # the three loops together: one pace, not three (18 grants take 17 spacings at least)
    assert max(grants) - min(grants) >= 17 * gap - EPS


@pytest.mark.redis
async def test_redis_keys_and_namespaces_are_separate(redis_db: str) -> None:
    k = key()
    one = OutboundLimiter(redis_db, namespace=f"ns-{uuid.uuid4().hex[:8]}")
    other = OutboundLimiter(redis_db, namespace=f"ns-{uuid.uuid4().hex[:8]}")
    try:
        await one.acquire(["1/day", "1/10 seconds"], k)
        assert await other.acquire(["1/day", "1/10 seconds"], k, max_wait_s=0.0) == 0.0
        assert await one.acquire(["1/day", "1/10 seconds"], key(), max_wait_s=0.0) == 0.0
    finally:
        await one.aclose()
        await other.aclose()


async def test_redis_unreachable_is_an_inflow_error() -> None:
    limiter = OutboundLimiter("redis://:s3cret@127.0.0.1:1/0")  # nothing listens on port 1
    try:
        calls = {
            "acquire quota": lambda: limiter.acquire(["3/day"], key()),
            "acquire pace": lambda: limiter.acquire(["3/second"], key()),
            "delay_for": lambda: limiter.delay_for([parse("3/second")], key()),
            "remaining": lambda: limiter.remaining("3/day", key()),
            "remaining pace": lambda: limiter.remaining("3/second", key()),
        }
        for name, call in calls.items():
            with pytest.raises(ServiceUnavailableError) as caught:
                await call()
            assert "rate-limit store (Redis) is unreachable" in caught.value.message, name
            assert "s3cret" not in caught.value.message
            assert caught.value.fault == "system"
    finally:
        await limiter.aclose()

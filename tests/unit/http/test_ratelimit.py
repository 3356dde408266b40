"""Outbound limits: wait for a slot, refuse a wait past ``max_wait_s``, share one budget
through Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from limits import parse

from inflow.errors import RateLimitedError, ServiceUnavailableError
from inflow.http.ratelimit import OutboundLimiter, planned
from tests.conftest import empty_redis

pytestmark = pytest.mark.anyio


def key() -> str:
    return f"acme:{uuid.uuid4().hex}"


async def test_outbound_limiter_memory_waits_for_a_slot() -> None:
    limiter = OutboundLimiter()
    k = key()
    seen: list[tuple[str, float]] = []

    async def on_wait(reason: str, seconds: float) -> None:
        seen.append((reason, seconds))

    # 3/second is filled to 2: a short window keeps a tenth (at least one) as headroom
    assert await limiter.acquire(["3/second"], k) == 0.0
    assert await limiter.acquire(["3/second"], k) == 0.0
    waited = await limiter.acquire(["3/second"], k, on_wait=on_wait)
    assert 0.0 < waited <= 1.0
    assert sum(seconds for _, seconds in seen) == pytest.approx(waited)
    assert [reason for reason, _ in seen] == ["rate limit 3/second"]


async def test_outbound_limiter_refuses_a_wait_beyond_max_wait() -> None:
    limiter = OutboundLimiter()
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


async def test_outbound_limiter_every_window_must_have_room() -> None:
    limiter = OutboundLimiter()
    k = key()
    windows = ["10/second", "2/day"]
    await limiter.acquire(windows, k)
    await limiter.acquire(windows, k)
    with pytest.raises(RateLimitedError, match="10/second, 2/day"):
        await limiter.acquire(windows, k, max_wait_s=1.0)
    assert (await limiter.remaining("10/second", k))[0] == 7  # of the 9 it fills (headroom)


@pytest.mark.parametrize(
    ("limit", "filled"),
    [
        pytest.param("50/second", 45, id="a_tenth_kept"),
        pytest.param("10/second", 9, id="one_kept"),
        pytest.param("2/second", 1, id="at_least_one_kept"),
        pytest.param("1/second", 1, id="never_none"),
        pytest.param("20/10 seconds", 18, id="ten_seconds_is_short"),
        pytest.param("118/minute", 118, id="a_minute_is_not_short"),
        pytest.param("9/minute", 9, id="a_minute_is_not_short_9"),
    ],
)
def test_planned_keeps_headroom_in_short_windows_only(limit, filled) -> None:
    assert planned(limit).amount == filled


async def test_outbound_limiter_keys_are_separate_budgets() -> None:
    limiter = OutboundLimiter()
    a, b = key(), key()
    await limiter.acquire(["1/day"], a)
    assert await limiter.delay_for([], a) == 0.0
    assert await limiter.acquire(["1/day"], b) == 0.0
    left, reset_at = await limiter.remaining("1/day", a)
    assert left == 0
    assert reset_at > time.time() + 86_000


async def test_outbound_limiter_reset_clears_the_budgets() -> None:
    limiter = OutboundLimiter()
    k = key()
    await limiter.acquire(["1/day"], k)
    await limiter.reset()
    assert await limiter.acquire(["1/day"], k, max_wait_s=0.0) == 0.0
    await limiter.aclose()  # nothing to close in memory


# ------------------------------------------------------------------ Redis


@pytest.fixture
def redis_db() -> Iterator[str]:
    """The Redis test database (15), flushed before and after."""
    with empty_redis() as url:
        yield url


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
async def test_outbound_limiter_redis_shares_one_budget(
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
async def test_outbound_limiter_redis_keys_and_namespaces_are_separate(redis_db: str) -> None:
    k = key()
    one = OutboundLimiter(redis_db, namespace=f"ns-{uuid.uuid4().hex[:8]}")
    other = OutboundLimiter(redis_db, namespace=f"ns-{uuid.uuid4().hex[:8]}")
    try:
        await one.acquire(["1/day"], k)
        assert await other.acquire(["1/day"], k, max_wait_s=0.0) == 0.0
        assert await one.acquire(["1/day"], key(), max_wait_s=0.0) == 0.0
    finally:
        await one.aclose()
        await other.aclose()


async def test_outbound_limiter_redis_unreachable_is_an_inflow_error() -> None:
    limiter = OutboundLimiter("redis://:s3cret@127.0.0.1:1/0")  # nothing listens on port 1
    try:
        calls = {
            "acquire": lambda: limiter.acquire(["3/day"], key()),
            "delay_for": lambda: limiter.delay_for([parse("3/day")], key()),
            "remaining": lambda: limiter.remaining("3/day", key()),
        }
        for name, call in calls.items():
            with pytest.raises(ServiceUnavailableError) as caught:
                await call()
            assert "rate-limit store (Redis) is unreachable" in caught.value.message, name
            assert "s3cret" not in caught.value.message
            assert caught.value.fault == "system"
    finally:
        await limiter.aclose()

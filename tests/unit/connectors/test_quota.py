"""A connector's call ``Quota``: every try of a quota'd request is counted by the runtime's gate
before it is sent, a spent quota refuses without sending (naming the reset), a 429 marks the
period spent, retries are capped; the database gate is atomic on SQLite and PostgreSQL; a
schedule whose syncs would overspend the quota is refused; a stream's parameter may be a
function of the read's window."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.services.sources import check_schedule
from inflow.connectors.runtime import ConnectorRuntime, MemoryQuotaGate, QuotaGate
from inflow.connectors.spec import (
    Bearer,
    Connector,
    ConnectorConfig,
    Context,
    Quota,
    Stream,
    Window,
)
from inflow.errors import RateLimitedError, ValidationFailedError
from inflow.http import retry
from inflow.http.client import HttpOptions
from inflow.storage.quota import DbQuotaGate, calls_used, exhaust, take_call
from inflow.sync.scheduler import most_runs

BASE = "https://api.test/v1"


class Config(ConnectorConfig):
    account: str = "acme"
    api_key: SecretStr = SecretStr("key")


def days_back(ctx: Context) -> int:
    assert ctx.window is not None
    return (ctx.window.end - ctx.window.start).days


CONNECTOR = Connector(
    slug="budgeted",
    title="Budgeted",
    category="analytics",
    config=Config,
    auth_type="bearer",
    base_url=BASE,
    auth=Bearer(),
    streams=(Stream("export", "/export", params={"days": days_back, "fixed": "x"}),),
    quota=Quota(limit=3, key="{config.account}", paths=("/export",)),
)


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    retry.set_testing(True, cap_s=0.0)
    yield
    retry.set_testing(False)


class Provider:
    """Answers every request with ``status`` and records what it was sent."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.seen: list[httpx.URL] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url)
        return httpx.Response(self.status, json=[])


def runtime(provider: Provider, gate: QuotaGate | None = None) -> ConnectorRuntime:
    return ConnectorRuntime(
        CONNECTOR,
        Config(),
        options=HttpOptions(allow_private_urls=True),  # no DNS for the fake host
        key="source-1",
        transport=httpx.MockTransport(provider),
        quota_gate=gate,
    )


async def read(rt: ConnectorRuntime, days: int = 2) -> None:
    now = datetime.now(UTC)
    async for _ in rt.read(rt.stream("export"), window=Window(now - timedelta(days=days), now)):
        pass


def test_each_call_is_spent_and_a_spent_quota_sends_nothing() -> None:
    provider, gate = Provider(), MemoryQuotaGate()

    async def scenario() -> RateLimitedError:
        async with runtime(provider, gate) as rt:
            await rt.requester.get_json("/free")  # not a quota'd path
            for _ in range(3):
                await read(rt)
            with pytest.raises(RateLimitedError) as refused:
                await read(rt)
        return refused.value

    error = asyncio.run(scenario())

    assert [u.path for u in provider.seen] == ["/v1/free"] + ["/v1/export"] * 3
    assert provider.seen[1].params == httpx.QueryParams({"days": "2", "fixed": "x"})
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert f"resets at {tomorrow}T00:00:00Z" in error.message
    assert "quota of 3 calls per day for acme" in error.message
    assert error.retry_after is not None
    assert 0 < error.retry_after <= 86400
    assert error.status is None  # refused here, not by the provider
    start, _ = CONNECTOR.quota.period(datetime.now(UTC))  # type: ignore[union-attr]
    assert gate.used == {("budgeted:acme", start): 3}


def test_a_429_marks_the_period_spent() -> None:
    provider, gate = Provider(429), MemoryQuotaGate()

    async def scenario() -> None:
        async with runtime(provider, gate) as rt:
            with pytest.raises(RateLimitedError):
                await read(rt)
            provider.status = 200
            with pytest.raises(RateLimitedError, match="no request was sent"):
                await read(rt)

    asyncio.run(scenario())

    assert len(provider.seen) == 1  # a 429 is not retried into more spent calls


def test_retries_of_a_quotad_call_are_capped() -> None:
    provider = Provider(503)

    async def scenario() -> None:
        async with runtime(provider) as rt:
            with pytest.raises(Exception, match="503"):
                await read(rt)

    asyncio.run(scenario())

    assert len(provider.seen) == 2  # Quota.retries=1: one retry, both tries spent


def test_quota_periods_are_utc_days_or_hours() -> None:
    moment = datetime(2026, 3, 4, 22, 30, tzinfo=UTC)
    day = Quota(limit=1).period(moment)
    hour = Quota(limit=1, per="hour").period(moment)
    assert day == (datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))
    assert hour == (datetime(2026, 3, 4, 22, tzinfo=UTC), datetime(2026, 3, 4, 23, tzinfo=UTC))


def test_the_database_gate_counts_and_exhausts(factory: sessionmaker[Session]) -> None:
    gate = DbQuotaGate(factory)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def scenario() -> list[Any]:
        taken = [await gate.take("p:a", start, 2) for _ in range(3)]
        other = await gate.take("p:b", start, 2)
        await gate.exhaust("p:b", start, 2)
        return [*taken, other, await gate.take("p:b", start, 2)]

    assert asyncio.run(scenario()) == [1, 2, None, 1, None]
    with factory() as session:
        assert calls_used(session, key="p:a", window_start=start) == 2
        assert calls_used(session, key="p:b", window_start=start) == 2
        assert calls_used(session, key="p:a", window_start=start + timedelta(days=1)) == 0
        exhaust(session, key="p:c", window_start=start, limit=5)
        session.commit()
        assert calls_used(session, key="p:c", window_start=start) == 5


def test_concurrent_takers_never_overspend(engine: Engine, factory: sessionmaker[Session]) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    took: list[int] = []
    barrier = threading.Barrier(6)

    def taker() -> None:
        barrier.wait()
        for _ in range(5):
            with factory() as session:
                if take_call(session, key="race", window_start=start, limit=10) is not None:
                    took.append(1)
                session.commit()

    threads = [threading.Thread(target=taker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(took) == 10
    with factory() as session:
        assert calls_used(session, key="race", window_start=start) == 10
    assert engine.dialect.name in ("sqlite", "postgresql")


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        pytest.param("@daily", 1, id="daily"),
        pytest.param("every 3h", 8, id="every_3h"),
        pytest.param("every 7h", 4, id="every_7h"),
        pytest.param("30 0 * * *", 1, id="cron_daily"),
        pytest.param("0 */2 * * *", 12, id="cron_every_2h"),
        pytest.param("0 9 * * 1-5", 1, id="cron_weekdays"),
        pytest.param("*/5 * * * *", 101, id="cron_counting_stops_past_the_cap"),
    ],
)
def test_most_runs_a_schedule_starts_in_a_day(schedule: str, runs: int) -> None:
    assert most_runs(schedule, timedelta(days=1), cap=100) == runs


def test_a_schedule_that_overspends_a_quota_is_refused() -> None:
    read = replace(CONNECTOR.streams[0], reduce=lambda _items, _ctx: [])
    budgeted = replace(CONNECTOR, streams=(read, replace(read, name="again")))  # 2 calls a sync
    check_schedule("@daily", budgeted)
    check_schedule("every 3h", CONNECTOR)  # its one stream is read for nothing: no calls
    with pytest.raises(ValidationFailedError) as refused:
        check_schedule("every 12h", budgeted)  # 2 syncs x 2 calls > 3 a day
    assert refused.value.errors[0].field == "schedule"
    assert "allows 3 calls per day and a sync makes 2" in refused.value.errors[0].message

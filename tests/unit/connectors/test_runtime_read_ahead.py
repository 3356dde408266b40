"""Windows read ahead (``RateLimit.concurrent``): the next windows' requests are in flight while
one is processed, never more than the limit; chunks and checkpoints come out in window order,
whatever order the responses arrive in; an error ends the read after every window before it
(a reduced one included), and a read stopped early leaves no request running."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from inflow.connectors.records import DataPoint, Record
from inflow.connectors.runtime import Chunk, ConnectorRuntime
from inflow.connectors.spec import (
    Connector,
    ConnectorConfig,
    Context,
    Incremental,
    RateLimit,
    Stream,
    Window,
)
from inflow.errors import InflowError
from inflow.http.client import HttpOptions
from inflow.http.retry import RetryPolicy

BASE = "https://api.test"
DAYS = 8
START = datetime(2026, 6, 1, tzinfo=UTC)
NOW = START + timedelta(days=DAYS)


class Config(ConnectorConfig):
    pass


def count(items: list[Mapping[str, Any]], ctx: Context) -> Iterable[Record]:
    assert ctx.window is not None
    yield DataPoint("calls", float(len(items)), ctx.window.start, ctx.window.end)


def one(_item: Mapping[str, Any], _ctx: Context) -> Iterable[Record]:
    yield DataPoint("call", 1.0, START, NOW)


def connector(concurrent: int, *, reduce: bool) -> Connector:
    stream = Stream(
        name="calls",
        path="/calls",
        records="calls",
        incremental=Incremental(
            cursor="day", start_param="from", end_param="to", window=timedelta(days=1)
        ),
        reduce=count if reduce else None,
        parse=None if reduce else one,
    )
    return Connector(
        slug="calls",
        title="Calls",
        category="calling",
        config=Config,
        auth_type="none",
        base_url=BASE,
        streams=(stream,),
        rate_limit=RateLimit(concurrent=concurrent),
    )


class Server:
    """Answers a day's calls (day N has N + 1 calls); the early days answer slowest."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.in_flight = 0
        self.peak = 0
        self.started: list[int] = []
        self.fail_on = fail_on

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        day = (datetime.fromisoformat(request.url.params["from"]) - START).days
        self.started.append(day)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.002 * (DAYS - day))
        finally:
            self.in_flight -= 1
        if day == self.fail_on:
            return httpx.Response(404, json={"message": "gone"})
        day_text = (START + timedelta(days=day)).isoformat()
        return httpx.Response(200, json={"calls": [{"day": day_text}] * (day + 1)})


def runtime(conn: Connector, server: Server) -> ConnectorRuntime:
    return ConnectorRuntime(
        conn,
        Config(),
        options=HttpOptions(allow_private_urls=True, retry=RetryPolicy(attempts=1)),
        key="k",
        transport=httpx.MockTransport(server),
    )


async def read_all(conn: Connector, server: Server) -> list[Chunk]:
    async with runtime(conn, server) as rt:
        window = Window(START, NOW)
        return [chunk async for chunk in rt.read(conn.streams[0], window=window, now=NOW)]


def cursors(chunks: list[Chunk]) -> list[str]:
    return [c.state["cursor"] for c in chunks if c.state]


def iso(*days: int) -> list[str]:
    return [(START + timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in days]


@pytest.mark.parametrize("reduce", [True, False], ids=["reduce", "parse"])
def test_the_next_windows_are_in_flight_and_come_out_in_order(reduce: bool) -> None:
    server = Server()

    chunks = asyncio.run(read_all(connector(3, reduce=reduce), server))

    assert server.peak == 3  # three days at once, never more
    assert sorted(server.started) == list(range(DAYS))
    assert cursors(chunks) == iso(*range(1, DAYS + 1))
    if reduce:
        points = [r for c in chunks for r in c.records if isinstance(r, DataPoint)]
        assert [(p.period_start, p.value) for p in points] == [
            (START + timedelta(days=d), d + 1.0) for d in range(DAYS)
        ]
    else:  # each day's records come before its checkpoint
        sizes = [len(c.records) if not c.state else -1 for c in chunks]
        assert sizes == [n for d in range(DAYS) for n in (d + 1, -1)]


def test_one_request_at_a_time_without_a_concurrency_budget() -> None:
    server = Server()

    chunks = asyncio.run(read_all(connector(1, reduce=True), server))

    assert server.peak == 1
    assert server.started == list(range(DAYS))
    assert len(cursors(chunks)) == DAYS


def test_an_error_ends_the_read_after_the_windows_before_it() -> None:
    server = Server(fail_on=4)
    chunks: list[Chunk] = []

    async def go() -> None:
        async with runtime(connector(3, reduce=True), server) as rt:
            reader = rt.read(rt.connector.streams[0], window=Window(START, NOW), now=NOW)
            while True:
                try:
                    chunks.append(await anext(reader))
                except InflowError:
                    break
        assert asyncio.all_tasks() == {asyncio.current_task()}  # no read left running

    asyncio.run(go())

    # days 0-3 come out with their checkpoints (day 3's reduce was waiting for day 4's pages)
    assert cursors(chunks) == iso(1, 2, 3, 4)
    points = [r for c in chunks for r in c.records if isinstance(r, DataPoint)]
    assert [p.value for p in points] == [1.0, 2.0, 3.0, 4.0]


def test_a_read_stopped_early_leaves_no_request_running() -> None:
    server = Server()

    async def go() -> None:
        async with runtime(connector(3, reduce=False), server) as rt:
            reader = rt.read(rt.connector.streams[0], window=Window(START, NOW), now=NOW)
            first = await anext(reader)
            assert first.records
            await reader.aclose()
            assert asyncio.all_tasks() == {asyncio.current_task()}
            started = len(server.started)
            await asyncio.sleep(0.05)
            assert len(server.started) == started  # nothing more was requested

    asyncio.run(go())

    assert len(server.started) < DAYS

"""A reduce stream's days in the source's time zone (``Incremental.zone``): windows start at its
midnights (23 and 25 hour days when the clocks change), an exact bound is sent as that instant
and a date bound as the UTC dates that cover the window; a bad zone is a config error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from inflow.connectors.records import DataPoint, Record
from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import (
    Connector,
    ConnectorConfig,
    Context,
    Incremental,
    Stream,
    Window,
)
from inflow.errors import ConfigError
from inflow.http.client import HttpOptions

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)  # 1 November 2026: New York's clocks go back


class Config(ConnectorConfig):
    timezone: str = "UTC"


def windows(items: list[Mapping[str, Any]], ctx: Context) -> Iterable[Record]:
    assert ctx.window is not None
    yield DataPoint("n", float(len(items)), ctx.window.start, ctx.window.end)


def connector(fmt: str) -> Connector:
    stream = Stream(
        name="calls",
        path="/calls",
        records="calls",
        incremental=Incremental(
            cursor="at",
            start_param="from",
            end_param="to",
            format=fmt,
            window=timedelta(days=1),
            zone="{config.timezone}",
        ),
        reduce=windows,
    )
    return Connector(
        slug="calls",
        title="Calls",
        category="calling",
        config=Config,
        auth_type="none",
        base_url="https://api.test",
        streams=(stream,),
    )


def read(fmt: str, zone: str) -> tuple[list[Window], list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.params["from"], request.url.params["to"]))
        return httpx.Response(200, json={"calls": []})

    async def go() -> list[Window]:
        conn = connector(fmt)
        rt = ConnectorRuntime(
            conn,
            Config(timezone=zone),
            options=HttpOptions(allow_private_urls=True),
            key="k",
            transport=httpx.MockTransport(handler),
        )
        async with rt:
            window = Window(datetime(2026, 10, 31, 12, tzinfo=UTC), NOW)
            chunks = [c async for c in rt.read(conn.streams[0], window=window, now=NOW)]
        return [
            Window(r.period_start, r.period_end)
            for c in chunks
            for r in c.records
            if isinstance(r, DataPoint)
        ]

    return asyncio.run(go()), sent


def test_windows_are_the_days_of_the_zone_and_exact_bounds_are_their_instants() -> None:
    days, sent = read("iso", "America/New_York")

    starts = [datetime(2026, 10, d, tzinfo=NEW_YORK) for d in (31,)] + [
        datetime(2026, 11, d, tzinfo=NEW_YORK) for d in (1, 2, 3)
    ]
    assert [(w.start, w.end) for w in days] == [
        (a, a + timedelta(days=1)) for a in starts
    ]  # wall-clock days
    assert [(w.end.astimezone(UTC) - w.start.astimezone(UTC)) for w in days] == [
        timedelta(hours=24),
        timedelta(hours=25),  # the clocks go back at 02:00 on 1 November
        timedelta(hours=24),
        timedelta(hours=24),
    ]
    assert sent[0] == ("2026-10-31T04:00:00Z", "2026-11-01T04:00:00Z")
    assert sent[1] == ("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z")


def test_date_bounds_are_the_utc_dates_that_cover_a_local_day() -> None:
    days, sent = read("date", "America/New_York")

    assert days[0].start == datetime(2026, 10, 31, 4, tzinfo=UTC)
    # 31 October in New York runs 04:00 UTC on the 31st to 04:00 UTC on 1 November
    assert sent[0] == ("2026-10-31", "2026-11-02")
    assert sent[1] == ("2026-11-01", "2026-11-03")


def test_utc_days_are_read_as_before() -> None:
    days, sent = read("date", "UTC")

    assert days[0].start == datetime(2026, 10, 31, tzinfo=UTC)
    assert sent[0] == ("2026-10-31", "2026-11-01")
    assert len(sent) == 4  # 31 October to 3 November


def test_a_zone_that_does_not_exist_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a time zone"):
        read("iso", "Atlantis/Capital")

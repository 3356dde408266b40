"""Deterministic generators, and the metric endpoint's throughput at benchmark volume."""

from __future__ import annotations

import time
from datetime import date

import httpx
import orjson
import pytest

from inflow.sandbox import create_app
from inflow.sandbox.data import DailySeries, LazyRecords, decode_position, encode_position
from tests.sandbox.conftest import AUTH, BASE


def test_lazy_records_build_only_what_is_read():
    built: list[int] = []
    records = LazyRecords(1_000_000, lambda i: built.append(i) or i * 2)
    assert len(records) == 1_000_000
    assert records[10:13] == [20, 22, 24]
    assert records[-1] == 1_999_998
    assert built == [10, 11, 12, 999_999]
    with pytest.raises(IndexError):
        records[1_000_000]


def test_daily_series_is_a_pure_function_of_seed_day_and_key():
    day = date(2024, 5, 1).toordinal()
    full = DailySeries(7, 50).values(day, 0, 50)
    assert DailySeries(7, 50).values(day, 0, 50) == full
    assert DailySeries(7, 50).values(day, 20, 30) == (full[0][20:30], full[1][20:30])
    assert DailySeries(7, 80).values(day, 0, 50) == full  # more keys leave the first ones alone
    assert DailySeries(8, 50).values(day, 0, 50) != full
    assert all(0 <= s <= p for p, s in zip(*full, strict=True))


def test_spans_cover_positions_exactly():
    series = DailySeries(1, 7)
    spans = list(series.spans(100, days=3, start=5, limit=10))
    assert spans == [(100, 5, 7), (101, 0, 7), (102, 0, 1)]
    assert list(series.spans(100, days=3, start=20, limit=10)) == [(102, 6, 7)]


def test_position_tokens_are_bound_to_their_query():
    token = encode_position(1234, "2024-01-01", "2024-01-31")
    assert decode_position(token, "2024-01-01", "2024-01-31") == 1234
    assert decode_position(token, "2024-01-01", "2024-02-29") is None
    assert decode_position("%%%", "2024-01-01", "2024-01-31") is None


@pytest.mark.anyio
async def test_a_million_metric_rows_take_seconds(anyio_backend, capsys):
    app = create_app()
    # 1,000 pages x 1,000 days = 1,000,000 rows.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        await c.post("/_sandbox/example/config", json={"volume": {"pages": 1000}})
        params: dict[str, object] = {
            "start_date": "2020-01-01",
            "end_date": "2022-09-26",
            "page_size": 10000,
        }
        rows, started = 0, time.perf_counter()
        while True:
            body = orjson.loads(
                (await c.get("/example/v1/metrics", params=params, headers=AUTH)).content
            )
            rows += len(body["rows"])
            if body["next_page_token"] is None:
                break
            params["page_token"] = body["next_page_token"]
        elapsed = time.perf_counter() - started
    assert rows == 1_000_000
    rate = f"{rows:,} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s"
    with capsys.disabled():
        print(f"\n  sandbox metrics: {rate}")  # noqa: T201 (the benchmark figure, on purpose)

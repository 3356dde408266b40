"""The daily call metrics every calling platform shares, computed from `Call`s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from inflow.connectors import calling
from inflow.connectors.calling import Call

DAY = datetime(2026, 3, 2, tzinfo=UTC)
NOW = DAY + timedelta(days=10)


def _call(n: int, hours: float, direction: str | None, answered: bool, talk: float = 0.0) -> Call:
    return Call(
        id=f"c{n}",
        started_at=DAY + timedelta(hours=hours),
        direction=direction,  # type: ignore[arg-type]
        answered=answered,
        missed=not answered and direction == "inbound",
        talk_seconds=talk,
    )


def _table(points):
    return {(p.metric, p.period_start.date().isoformat(), p.dimensions_key): p for p in points}


def test_each_day_in_total_and_by_direction_with_weights():
    calls = [
        _call(1, 1, "inbound", True, 60),
        _call(2, 2, "inbound", False),
        _call(3, 3, "outbound", True, 30),
        _call(4, 4, "outbound", False, 99),  # talk of an unanswered call is not talk
        _call(5, 26, "inbound", True, 10),  # the next day
    ]

    got = _table(calling.aggregate(calls, DAY, DAY + timedelta(days=2), now=NOW))

    day = DAY.date().isoformat()
    assert got[("total_calls", day, "")].value == 4
    assert got[("answered_calls", day, "")].value == 2
    assert got[("missed_calls", day, "")].value == 1
    assert got[("answer_rate", day, "")].value == 0.5
    assert got[("answer_rate", day, "")].weight == 4
    assert got[("talk_duration", day, "")].value == 90
    assert got[("average_talk_duration", day, "")].value == 45
    assert got[("average_talk_duration", day, "")].weight == 2
    assert got[("total_calls", day, "direction=inbound")].value == 2
    assert got[("missed_calls", day, "direction=outbound")].value == 0
    assert got[("talk_duration", day, "direction=outbound")].value == 30
    assert got[("total_calls", "2026-03-03", "")].value == 1
    assert len(got) == 2 * 3 * 6  # two days, three dimension sets, six metrics


def test_days_without_calls_are_zeros_and_today_is_partial():
    start = NOW - timedelta(days=1, hours=NOW.hour)
    points = list(calling.aggregate([], start, start + timedelta(days=2), now=NOW))

    assert {p.value for p in points} == {0.0}
    assert {(p.period_start, p.complete) for p in points} == {
        (start, True),
        (start + timedelta(days=1), False),
    }


def test_a_call_seen_twice_counts_once_with_its_last_version():
    first = _call(1, 5, "inbound", False)
    later = _call(1, 5, "inbound", True, 42)

    got = _table(calling.aggregate([first, later], DAY, DAY + timedelta(days=1), now=NOW))

    day = DAY.date().isoformat()
    assert got[("total_calls", day, "")].value == 1
    assert got[("answered_calls", day, "")].value == 1
    assert got[("missed_calls", day, "")].value == 0


def test_calls_outside_the_window_are_left_to_their_own_window():
    calls = [_call(1, -1, "inbound", True), _call(2, 25, "inbound", True)]

    got = _table(calling.aggregate(calls, DAY, DAY + timedelta(days=1), now=NOW))

    assert got[("total_calls", DAY.date().isoformat(), "")].value == 0


def test_days_follow_the_windows_zone_through_a_clock_change():
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 28, tzinfo=berlin)  # the night of 29 March has 23 hours
    end = datetime(2026, 3, 31, tzinfo=berlin)
    at = [  # (UTC moment, the Berlin day it belongs to)
        (datetime(2026, 3, 27, 23, 30, tzinfo=UTC), "2026-03-28"),  # 00:30 CET
        (datetime(2026, 3, 28, 22, 59, tzinfo=UTC), "2026-03-28"),  # 23:59 CET
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), "2026-03-29"),  # 00:00 CET
        (datetime(2026, 3, 29, 21, 59, tzinfo=UTC), "2026-03-29"),  # 23:59 CEST
        (datetime(2026, 3, 29, 22, 0, tzinfo=UTC), "2026-03-30"),  # 00:00 CEST
        (datetime(2026, 3, 27, 22, 59, tzinfo=UTC), None),  # the day before the window
    ]
    calls = [
        Call(f"c{n}", moment, "inbound", answered=True, missed=False, talk_seconds=10)
        for n, (moment, _) in enumerate(at)
    ]

    points = list(calling.aggregate(calls, start, end, now=NOW + timedelta(days=30)))

    totals = {
        p.period_start: (p.value, p.period_end - p.period_start, p.timezone)
        for p in points
        if p.metric == "total_calls" and not p.dimensions
    }
    assert totals == {
        datetime(2026, 3, 27, 23, tzinfo=UTC): (2.0, timedelta(hours=24), "Europe/Berlin"),
        datetime(2026, 3, 28, 23, tzinfo=UTC): (2.0, timedelta(hours=23), "Europe/Berlin"),
        datetime(2026, 3, 29, 22, tzinfo=UTC): (1.0, timedelta(hours=24), "Europe/Berlin"),
    }
    assert all(p.period_start.tzinfo is UTC for p in points)  # stored as UTC instants


def test_a_time_zone_is_an_iana_name():
    assert calling.time_zone("America/New_York") == "America/New_York"
    for wrong in ("Mars/Olympus", "../../etc/passwd", "", "+02:00"):
        with pytest.raises(ValueError, match="not a time zone"):
            calling.time_zone(wrong)

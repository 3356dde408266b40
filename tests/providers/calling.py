"""What the calling provider tests share: the daily table their oracles build from a raw call
log, the stored points as the same table, and the comparison. Days are the source's time zone's
(UTC unless a test sets one)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import pytest

from tests.sync.helpers import points_of

DIMS = ("", "direction=inbound", "direction=outbound")

Table = dict[tuple[str, str, str], float]
Call = tuple[datetime, bool, bool, bool, float]  # started, inbound, answered, missed, talk s
# ... and, on a platform with inbound outcomes, the outcome its oracle judged
Judged = Call | tuple[datetime, bool, bool, bool, float, str]


def daily(
    calls: Iterable[Judged],
    first: date,
    last: date,
    zone: tzinfo = UTC,
    outcomes: Sequence[str] = (),
) -> Table:
    """The six daily metrics of ``first``..``last`` (days in ``zone``), in total and by
    direction, from calls each platform's oracle has already judged answered or missed; and
    inbound calls by each of ``outcomes`` (the sixth element of an inbound call)."""
    sums: dict[tuple[str, str], list[float]] = {}
    by_outcome: dict[tuple[str, str], int] = {}
    for call in calls:
        started, inbound, answered, missed, talk = call[:5]
        day = started.astimezone(zone).date().isoformat()
        if inbound and outcomes:
            key = (day, str(call[5]))
            by_outcome[key] = by_outcome.get(key, 0) + 1
        for key in ("", "direction=inbound" if inbound else "direction=outbound"):
            acc = sums.setdefault((day, key), [0.0, 0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += answered
            acc[2] += missed
            acc[3] += talk if answered else 0
    out: Table = {}
    day = first
    while day <= last:
        for outcome in outcomes:
            value = float(by_outcome.get((day.isoformat(), outcome), 0))
            out[("inbound_calls", day.isoformat(), f"outcome={outcome}")] = value
        for key in DIMS:
            total, answered, missed, talk = sums.get((day.isoformat(), key), [0.0] * 4)
            values = {
                "total_calls": total,
                "answered_calls": answered,
                "missed_calls": missed,
                "answer_rate": answered / total if total else 0.0,
                "talk_duration": talk,
                "average_talk_duration": talk / answered if answered else 0.0,
            }
            out.update({(m, day.isoformat(), key): v for m, v in values.items()})
        day += timedelta(days=1)
    return out


def stored(
    factory: Any,
    source_id: str,
    zone: tzinfo = UTC,
    first: date | None = None,
    last: date | None = None,
) -> Table:
    """A source's stored points as a daily table (each point's day in ``zone``)."""
    out: Table = {}
    for metric, start, key, value in points_of(factory, source_id):
        day = datetime.fromisoformat(start).astimezone(zone).date()
        if (first is None or first <= day) and (last is None or day <= last):
            out[(metric, day.isoformat(), key)] = value
    return out


def days_of(table: Table) -> list[date]:
    """The days a table holds, in order."""
    return sorted({date.fromisoformat(day) for _, day, _ in table})


def run_day(run: dict[str, Any], at: str, zone: tzinfo = UTC) -> date:
    """The day (in ``zone``) a run started (``at="startedAt"``) or finished (``"finishedAt"``):
    a sync that crosses a midnight may read the new day, and reads the old one in part."""
    return datetime.fromisoformat(run[at]).astimezone(zone).date()


def midnight_after(day: date) -> int:
    """The UTC midnight that ends ``day``, in epoch seconds."""
    return int(datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC).timestamp())


def within(table: Table, first: date, last: date) -> Table:
    """The rows of ``first``..``last``."""
    return {k: v for k, v in table.items() if first <= date.fromisoformat(k[1]) <= last}


def assert_same(got: Table, want: Table) -> None:
    assert got.keys() == want.keys()
    wrong = {k: (got[k], v) for k, v in want.items() if got[k] != pytest.approx(v, rel=1e-9)}
    assert not wrong, dict(list(wrong.items())[:10])

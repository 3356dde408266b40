"""Calling platforms: what Twilio, RingCentral, Aircall and a custom source share.

Each platform's connector reads its call log and turns one call record into a `Call` with its
own definition of *answered* and *missed* (written in its metric catalog); `daily(normalize)`
then computes the same daily metrics for all of them, for every day of a window, split by
direction: total calls, answered, missed, answer rate, total and average talk time.

A window is read whole days at a time (the runtime aligns a reduce stream's windows to midnight
in the source's `timezone`, UTC unless set), so each day's totals are recomputed from every call
of that day: a call whose status
or duration changed after it was first seen is corrected when a later sync's lookback re-reads
its day, and the day's points are restated through the one upsert.

`family(...)` builds the API's `calling` type: one config schema per platform (`platform` tells
them apart), each member stored under its own slug.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

from inflow.connectors.spec import (
    Connector,
    ConnectorConfig,
    Context,
    DataPoint,
    MetricDef,
    SliceReducer,
)

Direction = Literal["inbound", "outbound"]
DIRECTIONS: tuple[Direction, ...] = ("inbound", "outbound")


@dataclass(frozen=True, slots=True)
class Call:
    """One call as every platform's metrics see it.

    ``answered``/``missed`` follow the platform's own definitions (a voicemail, a call abandoned
    in a queue, a busy outbound call…): both false is possible (an outbound call nobody picked
    up is neither answered nor a missed call). ``talk_seconds`` counts only connected talk.
    """

    id: str
    started_at: datetime  # aware, any zone
    direction: Direction | None
    answered: bool
    missed: bool
    talk_seconds: float = 0.0
    # the platform's own category of an inbound call, where it has them (Aircall's analytics:
    # answered, abandoned, out of business hours, voicemail, missed); None elsewhere
    outcome: str | None = None


Normalizer = Callable[[Mapping[str, Any]], Call | None]
"""One raw call-log item → a `Call`, or None for an item that is no call of its own (a child
leg of a call already counted, a fax, a deleted record)."""


def metrics(
    *, answered: str, missed: str, extra: str = "", outcomes: str = ""
) -> tuple[MetricDef, ...]:
    """The calling catalog, with the platform's definitions of answered and missed (and of
    its inbound outcomes, where it has them: ``inbound_calls`` by ``outcome``)."""
    directions = (
        "Per day in the source's time zone (UTC unless set), in total and by direction "
        "(inbound, outbound)."
    )
    note = f" {extra}" if extra else ""
    by_outcome = (
        (
            MetricDef(
                "inbound_calls",
                "Inbound calls by outcome",
                "count",
                f"{outcomes} Per day in the source's time zone, by `outcome`; the outcomes "
                "add up to the inbound calls.",
            ),
        )
        if outcomes
        else ()
    )
    return (
        *by_outcome,
        MetricDef("total_calls", "Total calls", "count", f"Every call. {directions}{note}"),
        MetricDef("answered_calls", "Answered calls", "count", f"{answered} {directions}"),
        MetricDef("missed_calls", "Missed calls", "count", f"{missed} {directions}"),
        MetricDef(
            "answer_rate",
            "Answer rate",
            "ratio",
            "Answered calls / total calls (weighted by calls across days, never averaged).",
            "ratio",
            "total_calls",
        ),
        MetricDef(
            "talk_duration",
            "Talk time",
            "seconds",
            "Seconds of connected talk, summed over the period's calls.",
        ),
        MetricDef(
            "average_talk_duration",
            "Average talk time",
            "seconds",
            "Talk seconds per answered call (weighted by answered calls).",
            "average",
            "answered_calls",
        ),
    )


def _midnight(moment: datetime, zone: tzinfo = UTC) -> datetime:
    return datetime.combine(moment.astimezone(zone).date(), time(), zone)


def days(start: datetime, end: datetime, zone: tzinfo = UTC) -> list[datetime]:
    """The midnights (in ``zone``) of the days that ``[start, end)`` touches."""
    first, out = _midnight(start, zone), []
    while first < end:
        out.append(first)
        first += timedelta(days=1)  # wall-clock days: 23 or 25 hours when the clocks change
    return out


def _zone_name(zone: tzinfo) -> str:
    return zone.key if isinstance(zone, ZoneInfo) else "UTC"


def time_zone(name: str) -> str:
    """A config's ``timezone``: an IANA name the calling days follow (a validator)."""
    if name != "UTC":
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"{name!r} is not a time zone: use an IANA name like Europe/Berlin"
            ) from exc
    return name


TimeZone = Annotated[
    str,
    AfterValidator(time_zone),
    Field(
        title="Time zone",
        description="The IANA time zone whose days the daily metrics follow (default UTC). "
        "It cannot change once the source holds data points.",
        examples=["Europe/Berlin"],
    ),
]


def aggregate(
    calls: Sequence[Call],
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    outcomes: Sequence[str] = (),
) -> Iterator[DataPoint]:
    """Daily points for every day of ``[start, end)`` (days without calls are zeros: that is a
    fact, not a gap), in total and per direction, and inbound calls by each of ``outcomes``
    (the platform's own categories, if it has them); a call seen twice counts once (its last
    version wins). Today's points are marked incomplete."""
    now = now or datetime.now(UTC)
    zone = start.tzinfo or UTC  # the runtime's windows start at midnight in the source's zone
    latest: dict[str, Call] = {}
    for call in calls:
        latest[call.id] = call
    # day -> direction key ("" = all) -> [total, answered, missed, talk seconds]
    totals: dict[datetime, dict[str, list[float]]] = {}
    by_outcome: dict[tuple[datetime, str], int] = {}
    for call in latest.values():
        if not start <= call.started_at < end:
            continue  # read through a neighbour's window (bounds are inclusive on some APIs)
        day = _midnight(call.started_at, zone)
        if call.direction == "inbound" and call.outcome is not None:
            by_outcome[day, call.outcome] = by_outcome.get((day, call.outcome), 0) + 1
        by_dir = totals.setdefault(day, {})
        keys = ("", call.direction) if call.direction else ("",)
        for key in keys:
            row = by_dir.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            row[0] += 1
            row[1] += call.answered
            row[2] += call.missed
            row[3] += call.talk_seconds if call.answered else 0.0
    zone_name = _zone_name(zone)
    for day in days(start, end, zone):
        day_end = day + timedelta(days=1)
        complete = day_end <= now
        first, last = day.astimezone(UTC), day_end.astimezone(UTC)
        by_dir = totals.get(day, {})
        for outcome in outcomes:
            yield DataPoint(
                "inbound_calls",
                float(by_outcome.get((day, outcome), 0)),
                first,
                last,
                dimensions={"outcome": outcome},
                timezone=zone_name,
                complete=complete,
            )
        for key in ("", *DIRECTIONS):
            total, answered, missed, talk = by_dir.get(key, (0.0, 0.0, 0.0, 0.0))
            dims = {"direction": key} if key else {}
            values: tuple[tuple[str, float, float | None], ...] = (
                ("total_calls", total, None),
                ("answered_calls", answered, None),
                ("missed_calls", missed, None),
                ("answer_rate", answered / total if total else 0.0, total),
                ("talk_duration", talk, None),
                ("average_talk_duration", talk / answered if answered else 0.0, answered),
            )
            for metric, value, weight in values:
                yield DataPoint(
                    metric,
                    value,
                    first,
                    last,
                    dimensions=dims,
                    timezone=zone_name,
                    complete=complete,
                    weight=weight,
                )


def daily(normalize: Normalizer, outcomes: Sequence[str] = ()) -> SliceReducer:
    """A stream's ``reduce``: the window's call-log items → the daily calling points (with
    inbound calls by each of ``outcomes``, the ``Call.outcome`` values the platform has)."""

    def reduce(items: list[Mapping[str, Any]], ctx: Context) -> Iterator[DataPoint]:
        window = ctx.window
        calls = [c for item in items if (c := normalize(item)) is not None]
        if window is None:  # no window: the days the calls themselves span
            if not calls:
                return iter(())
            first = min(c.started_at for c in calls)
            last = max(c.started_at for c in calls)
            end = _midnight(last) + timedelta(days=1)
            return aggregate(calls, _midnight(first), end, outcomes=outcomes)
        return aggregate(calls, window.start, window.end, outcomes=outcomes)

    return reduce


class CallingConfig(ConnectorConfig):
    """The ``calling`` type's own config: only the platform (each member has the rest)."""

    platform: str


def family(*members: Connector) -> Connector:
    """The API's ``calling`` type over its platform connectors."""
    return Connector(
        slug="calling",
        title="Calling platforms",
        category="calling",
        config=CallingConfig,
        auth_type="none",
        description=(
            "Daily call metrics from Twilio, RingCentral, Aircall or your own URL or webhook: "
            "choose the platform in the config's `platform`."
        ),
        metrics=_union(members),
        variants={m.config.model_fields["platform"].default: m for m in members},
        docs_url="",
    )


def _union(members: Sequence[Connector]) -> tuple[MetricDef, ...]:
    seen: dict[str, MetricDef] = {}
    for member in members:
        for metric in member.metrics:
            seen.setdefault(metric.key, metric)
    return tuple(seen.values())

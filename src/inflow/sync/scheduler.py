"""Scheduled syncs: which sources are due, and the loop that enqueues them.

A schedule is an interval (``every 15m``, ``every 6h``, ``every 1d``, ``@hourly``, ``@daily``)
or a five-field cron expression in UTC (``0 6 * * *``). An interval's slots are whole multiples
of it since the Unix epoch (``every 6h``: 00:00, 06:00, 12:00, 18:00 UTC), a cron's are its
fire times; each source's slots are offset by its own stable ``jitter`` (a tenth of a slot, at
most ``MAX_JITTER``), so a thousand sources on ``every 1h`` do not all fire at :00.

A due source gets a run unless one is already queued or running; its next slot is then the
first one after now (an interval's: at least a quarter interval after now), so a slow run never stacks up more runs and a missed slot (every worker
down) runs once, late. ``most_runs`` says how many runs a schedule starts per quota period, so
a schedule that would spend more of a provider's daily calls than it allows is refused when
saved; a slot whose run the quota left for the period cannot cover (another client spent it)
is moved to the quota's reset instead of starting a run that would fail (``quota_short_until``).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from croniter import croniter
from pydantic.alias_generators import to_snake
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors import get_connector
from inflow.connectors.runtime import render
from inflow.connectors.spec import Connector
from inflow.errors import ConfigError, ConflictError
from inflow.logging import get_logger
from inflow.storage.db import session_scope
from inflow.storage.housekeeping import purge_expired
from inflow.storage.models import DataSource, utcnow
from inflow.storage.quota import calls_used
from inflow.sync.engine import enqueue_run

log = get_logger(__name__)
_EVERY = re.compile(r"^every\s+(\d+)\s*(m|min|h|d)$")
_ALIASES = {"@hourly": timedelta(hours=1), "@daily": timedelta(days=1)}
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = timedelta(minutes=5)
MAX_JITTER = timedelta(minutes=5)
JITTER_SHARE = 0.1  # of a slot's length
TICK = timedelta(microseconds=1)  # "after" is strict: a slot at the reset itself counts
PURGE_EVERY = timedelta(hours=1)
# A scheduled run created this long after its slot is late: no process ran schedules then
# (every worker down, a deploy). It runs once, however many slots passed, and says so.
LATE_AFTER = timedelta(minutes=2)


def is_late(scheduled_for: datetime | None, created_at: datetime) -> bool:
    """Whether a run started this long after its slot (``LATE_AFTER``)."""
    return scheduled_for is not None and created_at - scheduled_for > LATE_AFTER


def parse_schedule(text: str) -> timedelta:
    """The interval of an interval schedule, or ``ValueError`` saying what is accepted."""
    value = text.strip().lower()
    if value in _ALIASES:
        return _ALIASES[value]
    match = _EVERY.match(value)
    if not match:
        raise ValueError(
            "use 'every <n>m', 'every <n>h', 'every <n>d', '@hourly', '@daily' or a "
            "five-field cron expression (UTC), e.g. '0 6 * * *'"
        )
    interval = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if interval < MIN_INTERVAL:
        raise ValueError("the shortest schedule is every 5m")
    return interval


def next_time(text: str, after: datetime) -> datetime:
    """When a schedule fires next after ``after``; ``ValueError`` for a schedule we can't run."""
    value = text.strip()
    if len(value.split()) == 5:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression")
        fires = croniter(value, after)
        first: datetime = fires.get_next(datetime)
        second: datetime = fires.get_next(datetime)
        if second - first < MIN_INTERVAL:
            raise ValueError("the shortest schedule is every 5m")
        return first
    return after + parse_schedule(value)


def slot_length(text: str, after: datetime) -> timedelta:
    """The length of the schedule's slot after ``after`` (its interval, or a cron's gap)."""
    first = next_time(text, after)
    return next_time(text, first) - first


def jitter(source_id: uuid.UUID, slot: timedelta) -> timedelta:
    """The source's stable offset within a slot: derived from its id (the same in every
    process and across restarts), below ``JITTER_SHARE`` of the slot and ``MAX_JITTER``."""
    cap = min(slot * JITTER_SHARE, MAX_JITTER)
    digest = hashlib.sha256(source_id.bytes).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=int(cap.total_seconds() * share))


def next_slot(text: str, source_id: uuid.UUID, after: datetime) -> datetime:
    """The source's first slot after ``after``: the schedule's next fire time (an interval's
    next multiple since the epoch) plus the source's ``jitter``; ``ValueError`` for a schedule
    we can't run."""
    value = text.strip()
    if len(value.split()) == 5:
        offset = jitter(source_id, slot_length(value, after))
        return next_time(value, after - offset) + offset
    interval = parse_schedule(value)
    offset = jitter(source_id, interval)
    step = interval.total_seconds()
    base = after - offset
    k = math.floor(base.timestamp() / step) + 1
    return datetime.fromtimestamp(k * step, UTC) + offset


def slot_after_run(text: str, source_id: uuid.UUID, ran_at: datetime) -> datetime:
    """The source's next slot after a run started at ``ran_at``: for an interval schedule, not
    sooner than a quarter interval later (a first run, started when the schedule was saved, is
    not followed by another a few minutes later at the next whole hour); a cron's next slot.
    A run on its slot is unaffected: its next slot is an interval later anyway."""
    value = text.strip()
    if len(value.split()) == 5:
        return next_slot(value, source_id, ran_at)
    return next_slot(value, source_id, ran_at + parse_schedule(value) / 4)


def most_runs(text: str, per: timedelta, *, cap: int = 1000, after: datetime | None = None) -> int:
    """The most runs a schedule starts in one UTC period of length ``per`` (a quota's day).

    An interval schedule starts ``ceil(per / interval)``; a cron schedule is counted over the
    periods of the next week (counting stops past ``cap``).
    """
    value = text.strip()
    if len(value.split()) != 5:
        return math.ceil(per / parse_schedule(value))
    step = per.total_seconds()
    start = (after or utcnow()).timestamp() // step * step
    most = 0
    for k in range(max(1, round(timedelta(days=7) / per))):
        begin = datetime.fromtimestamp(start + k * step, UTC)
        fires = croniter(value, begin - timedelta(seconds=1))
        count = 0
        while fires.get_next(datetime) < begin + per and count <= cap:
            count += 1
        most = max(most, count)
        if most > cap:
            break
    return most


def quota_account(connector: Connector, source: DataSource) -> str | None:
    """The account a source's quota is counted for, as the runtime names it, from the public
    config (None when the key needs a secret: the scheduler then leaves it to the run)."""
    quota = connector.quota
    if quota is None:
        return None
    if not quota.key:
        return str(source.id)
    values = {to_snake(k): v for k, v in source.config.items()}
    try:
        return render(quota.key, config=SimpleNamespace(**values))
    except ConfigError:
        return None


def calls_per_sync(connector: Connector) -> int:
    """The quota'd calls one sync makes at least: one per stream read on a quota'd path."""
    quota = connector.quota
    if quota is None:
        return 0
    return sum(
        1
        for s in connector.streams
        if (s.parse or s.reduce) and (not quota.paths or s.path.startswith(quota.paths))
    )


@dataclass(frozen=True)
class QuotaWait:
    """A source whose next sync the provider quota left for this period cannot cover."""

    until: datetime  # the quota's reset
    used: int
    limit: int
    needed: int
    per: str

    @property
    def reason(self) -> str:
        return (
            f"provider quota: {self.used} of {self.limit} calls this {self.per} are used and a "
            f"sync needs {self.needed}; the quota resets at {self.until.isoformat()}"
        )

    def as_waiting(self) -> dict[str, str]:
        """As a run or source shows a wait (``state``, ``reason``, ``until``)."""
        return {"state": "waiting", "reason": self.reason, "until": self.until.isoformat()}


def quota_short_until(session: Session, source: DataSource, now: datetime) -> QuotaWait | None:
    """Whether the source's provider quota left for this period cannot cover one sync (of
    ``calls_per_sync`` calls): then, until when (its reset) and why."""
    connector = get_connector(source.type)
    account = quota_account(connector, source) if connector is not None else None
    if connector is None or connector.quota is None or account is None:
        return None
    quota = connector.quota
    start, reset = quota.period(now)
    used = calls_used(session, key=f"{connector.slug}:{account}", window_start=start)
    needed = max(1, calls_per_sync(connector))
    if used + needed <= quota.limit:
        return None
    return QuotaWait(reset, used, quota.limit, needed, quota.per)


def due_runs(session: Session, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Enqueue a run for every source that is due; returns the new run ids. A source whose
    provider quota left cannot cover a sync (Clarity's ten calls a day) gets no run that would
    fail at once: it is due again when the quota resets (its first slot from then)."""
    now = now or utcnow()
    sources = session.execute(
        select(DataSource).where(
            DataSource.schedule.is_not(None),
            DataSource.paused_at.is_(None),  # paused after failing in a row: a person resumes it
            (DataSource.next_run_at.is_(None)) | (DataSource.next_run_at <= now),
        )
    ).scalars()
    runs: list[uuid.UUID] = []
    for source in list(sources):
        slot = source.next_run_at or now  # a missed slot (workers down) runs once, late
        try:
            source.next_run_at = slot_after_run(source.schedule or "", source.id, now)
        except ValueError:
            continue  # refused when saved; an old row with a bad value is left alone
        wait = quota_short_until(session, source, now)
        if wait is not None:
            # due again at its first slot from the reset (on time then, not late: planned)
            source.next_run_at = next_slot(source.schedule or "", source.id, wait.until - TICK)
            log.info("quota short: sync postponed", source_id=str(source.id), until=str(wait.until))
            continue
        try:
            run = enqueue_run(session, source=source, trigger="schedule", scheduled_for=slot)
            runs.append(run.id)
        except ConflictError:
            continue  # still running from last time: skip this slot
    return runs


async def run_scheduler(
    factory: sessionmaker[Session], submit: Callable[[uuid.UUID], object], *, tick_s: float = 30.0
) -> None:
    """Every ``tick_s``: enqueue due runs and hand them to ``submit`` (the worker); about once
    an hour, purge expired tokens and OAuth states too."""
    last_purge: datetime | None = None
    while True:
        try:
            run_ids, last_purge = await asyncio.to_thread(_tick, factory, last_purge)
            for run_id in run_ids:
                submit(run_id)
        except Exception:  # the loop must outlive one bad tick; the error is logged
            log.exception("scheduler tick failed")
        await asyncio.sleep(tick_s)


def _tick(
    factory: sessionmaker[Session], last_purge: datetime | None, *, now: datetime | None = None
) -> tuple[list[uuid.UUID], datetime | None]:
    """Enqueue due runs, then purge if the last purge is an hour old; (runs, last purge)."""
    now = now or utcnow()
    with factory() as session:
        runs = due_runs(session, now=now)
        session.commit()
    if last_purge is None or now - last_purge >= PURGE_EVERY:
        _purge(factory, now)
        last_purge = now  # a failed purge is retried next hour, not every tick
    return runs, last_purge


def _purge(factory: sessionmaker[Session], now: datetime) -> None:
    try:
        with session_scope(factory) as session:
            counts = purge_expired(session, now)
    except Exception:  # housekeeping never stops scheduling; the error is logged
        log.exception("housekeeping failed: expired rows not purged")
        return
    if any(counts.values()):
        log.info("expired rows purged", **counts)

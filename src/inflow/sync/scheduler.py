"""Scheduled syncs: which sources are due, and the loop that enqueues them.

A schedule is an interval (``every 15m``, ``every 6h``, ``every 1d``, ``@hourly``, ``@daily``)
or a five-field cron expression in UTC (``0 6 * * *``). A due source gets a run unless one is
already queued or running; its next time is then set from now, so a slow run never stacks up
more runs. ``most_runs`` says how many runs a schedule starts per quota period, so a schedule
that would spend more of a provider's daily calls than it allows is refused when saved.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections.abc import Callable
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


def quota_spent_until(session: Session, source: DataSource, now: datetime) -> datetime | None:
    """When the source's provider quota resets, if this period's calls are all spent."""
    connector = get_connector(source.type)
    account = quota_account(connector, source) if connector is not None else None
    if connector is None or connector.quota is None or account is None:
        return None
    start, reset = connector.quota.period(now)
    used = calls_used(session, key=f"{connector.slug}:{account}", window_start=start)
    return reset if used >= connector.quota.limit else None


def due_runs(session: Session, *, now: datetime | None = None) -> list[uuid.UUID]:
    """Enqueue a run for every source that is due; returns the new run ids. A source whose
    provider quota is spent (Clarity's ten calls a day) gets no run that would fail at once:
    it is due again when the quota resets."""
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
            source.next_run_at = next_time(source.schedule or "", now)
        except ValueError:
            continue  # refused when saved; an old row with a bad value is left alone
        reset = quota_spent_until(session, source, now)
        if reset is not None:
            source.next_run_at = reset
            log.info("quota spent: sync postponed", source_id=str(source.id), until=str(reset))
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

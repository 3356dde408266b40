"""Provider call quotas per period (``quota_usage``), shared by every process on the database.

A row counts the calls spent for one account (``"<slug>:<account>"``, e.g.
``microsoft_clarity:<projectId>``) in one period (``window_start``: the UTC day or hour).
``take_call`` spends one call atomically on SQLite and PostgreSQL alike: the row is created if
missing (``INSERT ... ON CONFLICT DO NOTHING``), then one conditional
``UPDATE ... SET used = used + 1 WHERE used < limit``. The database serialises updates of a
row and re-checks the condition after a concurrent one committed, so any number of processes
together never spend more than the limit. ``DbQuotaGate`` is the runtime's gate over it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from inflow.storage.models import QuotaUsage, utcnow


def _ensure_row(session: Session, key: str, window_start: datetime) -> None:
    dialect = session.get_bind().dialect.name
    values = {"key": key, "window_start": window_start, "used": 0, "updated_at": utcnow()}
    if dialect == "postgresql":
        session.execute(postgresql.insert(QuotaUsage).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(QuotaUsage).values(values).on_conflict_do_nothing())
    elif session.get(QuotaUsage, (key, window_start)) is None:  # other databases: best effort
        session.add(QuotaUsage(**values))
        session.flush()


def take_call(session: Session, *, key: str, window_start: datetime, limit: int) -> int | None:
    """Spend one call of ``key``'s period: the calls used with it, or None when none is left.

    The caller commits (the spent call is counted once the transaction commits).
    """
    _ensure_row(session, key, window_start)
    taken = session.execute(
        update(QuotaUsage)
        .where(
            QuotaUsage.key == key,
            QuotaUsage.window_start == window_start,
            QuotaUsage.used < limit,
        )
        .values(used=QuotaUsage.used + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    return calls_used(session, key=key, window_start=window_start)


def exhaust(session: Session, *, key: str, window_start: datetime, limit: int) -> None:
    """Mark the period spent (the provider refused with 429: other clients share the count)."""
    _ensure_row(session, key, window_start)
    session.execute(
        update(QuotaUsage)
        .where(
            QuotaUsage.key == key,
            QuotaUsage.window_start == window_start,
            QuotaUsage.used < limit,
        )
        .values(used=limit, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def calls_used(session: Session, *, key: str, window_start: datetime) -> int:
    """The calls spent so far in the period (0 when none)."""
    used = session.execute(
        select(QuotaUsage.used).where(
            QuotaUsage.key == key, QuotaUsage.window_start == window_start
        )
    ).scalar_one_or_none()
    return int(used or 0)


class DbQuotaGate:
    """The runtime's ``QuotaGate`` over ``quota_usage``: one short transaction per call."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def _take(self, key: str, period_start: datetime, limit: int) -> int | None:
        with self.factory() as session:
            used = take_call(session, key=key, window_start=period_start, limit=limit)
            session.commit()
            return used

    def _exhaust(self, key: str, period_start: datetime, limit: int) -> None:
        with self.factory() as session:
            exhaust(session, key=key, window_start=period_start, limit=limit)
            session.commit()

    async def take(self, key: str, period_start: datetime, limit: int) -> int | None:
        return await asyncio.to_thread(self._take, key, period_start, limit)

    async def exhaust(self, key: str, period_start: datetime, limit: int) -> None:
        await asyncio.to_thread(self._exhaust, key, period_start, limit)

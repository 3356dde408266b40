"""Backfills as the API and the CLI start them: the range checked in the source's own days,
within the provider's history and a maximum span, split into chunks (``sync/backfill.py``)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.routes.runs import FETCH_SLACK, FetchRequest, _span, fetch_window
from inflow.connectors import get_connector
from inflow.connectors.runtime import days_zone
from inflow.errors import FieldError, ValidationFailedError
from inflow.storage.models import Backfill, DataSource
from inflow.sync.backfill import UNFINISHED, chunk_days, create_backfill, plan_chunks, restart

MAX_DAYS = 3 * 365 + 1  # three years, a leap day included
FIELDS = {"startDate": "from", "endDate": "to"}  # fetch_window's names → the backfill's


def start_backfill(
    session: Session,
    *,
    source: DataSource,
    first: date,
    last: date,
    created_by: str | None,
    now: datetime | None = None,
) -> tuple[Backfill, bool]:
    """The backfill of ``first`` … ``last`` (days of the source, both included): one of the same
    range that did not succeed (unfinished, failed or cancelled) is resumed (False), else a new
    one is planned (True). Bad ranges
    are a ``ValidationFailedError`` naming ``from`` or ``to``."""
    now = now or datetime.now(UTC)
    connector = get_connector(source.type)
    zone = days_zone(connector, source.config)
    errors: dict[str, str] = {}
    if first > last:
        errors["to"] = f"the last day ({last}) is before the first ({first})"
    span = (last - first).days + 1
    if span > MAX_DAYS:
        errors.setdefault("to", f"a backfill spans at most {MAX_DAYS} days; this one spans {span}")
    history = connector.history if connector else None
    if history is not None:
        earliest = (now - history - FETCH_SLACK).astimezone(zone).date() + timedelta(days=1)
        if first < earliest:
            errors["from"] = (
                f"{connector.title if connector else 'the provider'} serves only the last "
                f"{_span(history)}: the earliest day is {earliest}"
            )
    if errors:
        raise ValidationFailedError(
            "invalid backfill range", [FieldError(k, m) for k, m in errors.items()]
        )
    wide = dataclasses.replace(connector, max_range=None) if connector else None  # chunks fit it
    try:  # the fetch's own checks: the future, the provider's reach
        fetch_window(FetchRequest(start_date=first, end_date=last), now, wide, zone)
    except ValidationFailedError as exc:
        fields = [FieldError(FIELDS.get(e.field, e.field), e.message) for e in exc.errors]
        raise ValidationFailedError("invalid backfill range", fields) from exc
    same = session.execute(
        select(Backfill)
        .where(
            Backfill.source_id == source.id,
            Backfill.first_day == first,
            Backfill.last_day == last,
            Backfill.state != "succeeded",
        )
        .order_by(Backfill.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if same is not None:  # resumed: its chunks done are not read again
        if same.state not in UNFINISHED:
            restart(same)
        return same, False
    chunks = plan_chunks(first, last, chunk_days(connector), zone)
    backfill = create_backfill(
        session, source=source, first=first, last=last, chunks=chunks, created_by=created_by
    )
    return backfill, True

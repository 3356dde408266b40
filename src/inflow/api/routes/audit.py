"""The audit log, for admins."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query
from sqlalchemy import select

from inflow.api.deps import AdminUser, SessionDep
from inflow.api.schemas import AuditEventPublic
from inflow.storage.models import AuditEvent

router = APIRouter(tags=["audit"])


def _as_utc(value: datetime) -> datetime:
    """A time without an offset (``?from=2024-05-01T00:00``) means UTC, as every stored time."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.get("/api/audit", operation_id="audit-list")
def list_events(
    _admin: AdminUser,
    session: SessionDep,
    actor: str | None = None,
    action: str | None = None,
    from_: datetime | None = Query(default=None, alias="from"),
    to: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, description="page: events with a smaller id"),
) -> list[AuditEventPublic]:
    """Audit events, newest first; filter by actor, action and time."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if from_:
        stmt = stmt.where(AuditEvent.at >= _as_utc(from_))
    if to:
        stmt = stmt.where(AuditEvent.at < _as_utc(to))
    if before:
        stmt = stmt.where(AuditEvent.id < before)
    return [AuditEventPublic.model_validate(e) for e in session.execute(stmt).scalars()]

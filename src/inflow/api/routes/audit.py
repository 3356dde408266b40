"""The audit log, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from inflow import bounds
from inflow.api.deps import AdminUser, SessionDep
from inflow.api.schemas import AuditEventPublic, Moment
from inflow.storage.models import AuditEvent

router = APIRouter(tags=["audit"])


@router.get("/api/audit", operation_id="audit-list")
def list_events(
    _admin: AdminUser,
    session: SessionDep,
    actor: Annotated[str | None, Query(max_length=320)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    from_: Annotated[Moment | None, Query(alias="from")] = None,
    to: Annotated[Moment | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=bounds.MAX_INT, description="page: events with a smaller id")
    ] = None,
) -> list[AuditEventPublic]:
    """Audit events, newest first; filter by actor, action and time."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if from_:
        stmt = stmt.where(AuditEvent.at >= from_)
    if to:
        stmt = stmt.where(AuditEvent.at < to)
    if before:
        stmt = stmt.where(AuditEvent.id < before)
    return [AuditEventPublic.model_validate(e) for e in session.execute(stmt).scalars()]

"""Data sources (the Data Inflow Center's connections)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session, object_session

from inflow.api.authz import require
from inflow.api.deps import AuditDep, Auditor, CurrentUser, SessionDep, VaultDep
from inflow.api.schemas import Health, SourceCreate, SourcePublic, SourceUpdate
from inflow.api.services import sources as svc
from inflow.connectors import get_connector
from inflow.errors import FieldError, NotFoundError, ValidationFailedError
from inflow.storage.models import DataSource, Space, User, utcnow
from inflow.sync import attention
from inflow.sync.attention import freshness
from inflow.sync.scheduler import quota_short_until

router = APIRouter(tags=["data-sources"])


def require_space(session: Session, user: User, space_id: uuid.UUID, audit: Auditor) -> None:
    """The ``spaceId`` in a body must be a space the caller may change. A missing space and a
    stranger's one give the same 422, so the answer never tells whether the space exists."""
    try:
        require(session, user, Space, space_id, audit=audit)
    except NotFoundError:
        raise ValidationFailedError(
            "invalid spaceId", [FieldError("spaceId", "no such space")]
        ) from None


def _origin(request: Request) -> str:
    """Where Inflow is reached: ``INFLOW_PUBLIC_URL`` (behind a proxy) or this request's host."""
    base: str = request.app.state.settings.public_url or str(request.base_url)
    return base.rstrip("/")


Origin = Annotated[str, Depends(_origin)]


def health_of(source: DataSource) -> Health:
    """The source's health: its last check or sync, failures in a row, pause and freshness."""
    fresh = freshness(source)
    return Health(
        status=source.health_status,
        checked_at=source.health_checked_at,
        message=source.health_message,
        consecutive_failures=source.consecutive_failures or 0,
        paused=source.paused_at is not None,
        paused_at=source.paused_at,
        paused_reason=source.paused_reason,
        last_advanced_at=fresh.last_advanced_at,
        stale=fresh.stale,
        stale_reason=fresh.reason,
    )


def schedule_waiting(source: DataSource) -> dict[str, str] | None:
    """What the source's schedule waits for: a provider quota that cannot cover a sync now."""
    session = object_session(source)
    if not source.schedule or source.paused_at is not None or session is None:
        return None
    wait = quota_short_until(session, source, utcnow())
    return wait.as_waiting() if wait is not None else None


def to_public(source: DataSource, origin: str = "") -> SourcePublic:
    connector = get_connector(source.type)
    takes_webhooks = connector is not None and connector.webhook is not None
    return SourcePublic(
        id=source.id,
        name=source.name,
        type=svc.shown_type(source.type),
        config=svc.public_config(source),
        owner_id=source.owner_id,
        space_id=source.space_id,
        schedule=source.schedule,
        health=health_of(source),
        created_at=source.created_at,
        updated_at=source.updated_at,
        webhook_url=f"{origin}/api/webhooks/{source.id}" if takes_webhooks else None,
        next_run_at=source.next_run_at if source.schedule else None,
        schedule_waiting=schedule_waiting(source),
    )


@router.get("/api/data-sources", operation_id="data-sources-list")
def list_sources(user: CurrentUser, session: SessionDep, origin: Origin) -> list[SourcePublic]:
    """Your data sources (every source for an admin)."""
    return [to_public(s, origin) for s in svc.list_sources(session, user=user)]


@router.post("/api/data-sources", status_code=201, operation_id="data-sources-create")
def create_source(
    body: SourceCreate,
    user: CurrentUser,
    session: SessionDep,
    vault: VaultDep,
    audit: AuditDep,
    origin: Origin,
) -> SourcePublic:
    """Create a data source; secret fields are encrypted and never shown again."""
    if body.space_id is not None:
        require_space(session, user, body.space_id, audit)
    source = svc.create_source(
        session,
        owner=user,
        name=body.name,
        type_=body.type,
        config=body.config,
        vault=vault,
        space_id=body.space_id,
        schedule=body.schedule,
    )
    audit("source.create", target=f"data_sources:{source.id}", details={"type": source.type})
    return to_public(source, origin)


@router.get("/api/data-sources/{source_id}", operation_id="data-sources-get")
def get_source(
    source_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep, origin: Origin
) -> SourcePublic:
    """One of your data sources."""
    source = require(session, user, DataSource, source_id, audit=audit, action="read")
    return to_public(source, origin)


@router.patch("/api/data-sources/{source_id}", operation_id="data-sources-update")
def update_source(
    source_id: uuid.UUID,
    body: SourceUpdate,
    user: CurrentUser,
    session: SessionDep,
    vault: VaultDep,
    audit: AuditDep,
    origin: Origin,
) -> SourcePublic:
    """Change a data source; a secret left out keeps its stored value."""
    source = require(session, user, DataSource, source_id, audit=audit)
    if body.space_id is not None:
        require_space(session, user, body.space_id, audit)
    svc.update_source(
        session,
        source=source,
        vault=vault,
        name=body.name,
        config=body.config,
        space_id=body.space_id,
        schedule=body.schedule,
        fields_set=body.model_fields_set,
    )
    changed = sorted(body.config) if body.config else []
    audit("source.update", target=f"data_sources:{source.id}", details={"fields": changed})
    return to_public(source, origin)


@router.post("/api/data-sources/{source_id}/resume", operation_id="data-sources-resume")
def resume_source(
    source_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep, origin: Origin
) -> SourcePublic:
    """Resume a source paused after failing in a row: its failure count starts again and the
    schedule runs it at its next slot. Resuming a source that is not paused changes nothing."""
    source = require(session, user, DataSource, source_id, audit=audit)
    was_paused = source.paused_at is not None
    attention.resume(source)
    session.flush()
    audit("source.resume", target=f"data_sources:{source.id}", details={"wasPaused": was_paused})
    return to_public(source, origin)


@router.delete("/api/data-sources/{source_id}", status_code=204, operation_id="data-sources-delete")
def delete_source(
    source_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Delete a data source with its assets, data points and runs."""
    source = require(session, user, DataSource, source_id, audit=audit)
    session.delete(source)
    audit("source.delete", target=f"data_sources:{source_id}", details={"type": source.type})
    return Response(status_code=204)

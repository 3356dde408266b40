"""The one authorization helper for object routes.

Rules: an admin may do everything; a data source or test belongs to its owner; a space can be
read by its members, changed by its owners and editors and deleted by its owners. Someone else's
object is a 404 with the same message as a missing one (never a 403 that confirms it exists); a
member whose role falls short gets a 403, since they can see the object anyway. Denials are
audited.
"""

from __future__ import annotations

import uuid
from typing import Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.deps import Auditor
from inflow.errors import NotFoundError, PermissionDeniedError
from inflow.storage.models import (
    Backfill,
    DataSource,
    Experiment,
    Role,
    Space,
    SpaceMembership,
    SpaceRole,
    SyncRun,
    User,
)

Action = Literal["read", "write", "delete"]
Owned = TypeVar("Owned", DataSource, Experiment, Space)
OfSource = TypeVar("OfSource", SyncRun, Backfill)

_LABEL = {DataSource: "data source", Experiment: "test", Space: "space"}
_PART_LABEL = {SyncRun: "run", Backfill: "backfill"}


def space_role(session: Session, user: User, space: Space) -> str | None:
    if space.owner_id == user.id:
        return SpaceRole.OWNER
    return session.execute(
        select(SpaceMembership.role).where(
            SpaceMembership.space_id == space.id, SpaceMembership.user_id == user.id
        )
    ).scalar_one_or_none()


def allowed(
    session: Session, user: User, obj: DataSource | Experiment | Space, action: Action
) -> bool:
    if user.role == Role.ADMIN:
        return True
    if isinstance(obj, Space):
        role = space_role(session, user, obj)
        if action == "read":
            return role is not None
        if action == "delete":
            return role == SpaceRole.OWNER
        return role in (SpaceRole.OWNER, SpaceRole.EDITOR)
    return obj.owner_id == user.id


def require(
    session: Session,
    user: User,
    model: type[Owned],
    obj_id: uuid.UUID,
    *,
    audit: Auditor,
    action: Action = "write",
) -> Owned:
    """The object, if ``user`` may ``action`` it; otherwise ``NotFoundError``, or
    ``PermissionDeniedError`` when ``user`` may at least read it (both audited)."""
    label = _LABEL[model]
    obj = session.get(model, obj_id)
    if obj is None:
        raise NotFoundError(f"{label} {obj_id} not found")
    if not allowed(session, user, obj, action):
        audit(
            "permission.denied",
            "denied",
            target=f"{model.__tablename__}:{obj_id}",
            details={"action": action},
            commit=True,
        )
        if action != "read" and allowed(session, user, obj, "read"):
            verb = "change" if action == "write" else action
            raise PermissionDeniedError(f"your role lets you see this {label} but not {verb} it")
        raise NotFoundError(f"{label} {obj_id} not found")
    return obj


def require_of_source(
    session: Session,
    user: User,
    model: type[OfSource],
    obj_id: uuid.UUID,
    *,
    audit: Auditor,
    action: Action = "read",
) -> OfSource:
    """A record of a data source (a run, a backfill), if ``user`` may ``action`` its source
    (``require``); otherwise ``NotFoundError`` naming the record, not its source."""
    label = _PART_LABEL[model]
    obj = session.get(model, obj_id)
    if obj is None:
        raise NotFoundError(f"{label} {obj_id} not found")
    try:
        require(session, user, DataSource, obj.source_id, audit=audit, action=action)
    except NotFoundError as exc:
        raise NotFoundError(f"{label} {obj_id} not found") from exc
    return obj

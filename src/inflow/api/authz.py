"""The one authorization helper for object routes.

Rules: an admin may do everything; a data source or test belongs to its owner; a space can be
read by its members and changed by its owner and editors. Someone else's object is a 404 with
the same message as a missing one (never a 403 that confirms it exists); the denial is audited.
"""

from __future__ import annotations

import uuid
from typing import Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.deps import Auditor
from inflow.errors import NotFoundError
from inflow.storage.models import (
    DataSource,
    Experiment,
    Role,
    Space,
    SpaceMembership,
    SpaceRole,
    User,
)

Action = Literal["read", "write"]
Owned = TypeVar("Owned", DataSource, Experiment, Space)

_LABEL = {DataSource: "data source", Experiment: "test", Space: "space"}


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
    """The object, if ``user`` may ``action`` it; otherwise ``NotFoundError`` (audited)."""
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
        raise NotFoundError(f"{label} {obj_id} not found")
    return obj

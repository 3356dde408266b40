"""Spaces, their members and the reports synced into them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from sqlalchemy import or_, select

from inflow.api.authz import require, space_role
from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.api.schemas import (
    AssetPublic,
    MemberAdd,
    MemberPublic,
    SpaceCreate,
    SpacePublic,
    SpaceUpdate,
)
from inflow.api.services.spaces import list_space_items
from inflow.errors import FieldError, PermissionDeniedError, ValidationFailedError
from inflow.storage.models import (
    Role,
    Space,
    SpaceMembership,
    SpaceRole,
    User,
)

router = APIRouter(tags=["spaces"])


def _public(session: SessionDep, user: User, space: Space) -> SpacePublic:
    out = SpacePublic.model_validate(space)
    out.role = space_role(session, user, space) or ("admin" if user.role == Role.ADMIN else None)
    return out


@router.get("/api/spaces", operation_id="spaces-list")
def list_spaces(user: CurrentUser, session: SessionDep) -> list[SpacePublic]:
    """Spaces you own or belong to (all of them for an admin)."""
    stmt = select(Space).order_by(Space.created_at)
    if user.role != Role.ADMIN:
        member_of = select(SpaceMembership.space_id).where(SpaceMembership.user_id == user.id)
        stmt = stmt.where(or_(Space.owner_id == user.id, Space.id.in_(member_of)))
    return [_public(session, user, s) for s in session.execute(stmt).scalars()]


@router.post("/api/spaces", status_code=201, operation_id="spaces-create")
def create_space(
    body: SpaceCreate, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> SpacePublic:
    """Create a space; you are its owner."""
    space = Space(name=body.name, description=body.description, owner_id=user.id)
    session.add(space)
    session.flush()
    session.add(SpaceMembership(space_id=space.id, user_id=user.id, role=SpaceRole.OWNER))
    audit("space.create", target=f"spaces:{space.id}", details={"name": space.name})
    return _public(session, user, space)


@router.get("/api/spaces/{space_id}", operation_id="spaces-get")
def get_space(
    space_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> SpacePublic:
    """One space you can see."""
    space = require(session, user, Space, space_id, audit=audit, action="read")
    return _public(session, user, space)


@router.patch("/api/spaces/{space_id}", operation_id="spaces-update")
def update_space(
    space_id: uuid.UUID, body: SpaceUpdate, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> SpacePublic:
    """Rename or describe a space (owner or editor)."""
    space = require(session, user, Space, space_id, audit=audit)
    if body.name is not None:
        space.name = body.name
    if "description" in body.model_fields_set:
        space.description = body.description
    session.flush()
    audit("space.update", target=f"spaces:{space.id}")
    return _public(session, user, space)


@router.delete("/api/spaces/{space_id}", status_code=204, operation_id="spaces-delete")
def delete_space(
    space_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Delete a space (an owner or an admin); its sources stay, unassigned."""
    space = require(session, user, Space, space_id, audit=audit, action="delete")
    session.delete(space)
    audit("space.delete", target=f"spaces:{space_id}")
    return Response(status_code=204)


@router.get("/api/spaces/{space_id}/members", operation_id="spaces-members-list")
def list_members(
    space_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> list[MemberPublic]:
    """The space's members and their roles."""
    require(session, user, Space, space_id, audit=audit, action="read")
    rows = session.execute(
        select(SpaceMembership).where(SpaceMembership.space_id == space_id)
    ).scalars()
    return [MemberPublic.model_validate(m) for m in rows]


@router.post("/api/spaces/{space_id}/members", status_code=201, operation_id="spaces-members-add")
def add_member(
    space_id: uuid.UUID, body: MemberAdd, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> MemberPublic:
    """Add a user to the space, or change their role (owner or editor)."""
    space = require(session, user, Space, space_id, audit=audit)
    if session.get(User, body.user_id) is None:
        raise ValidationFailedError("unknown user", [FieldError("userId", "no such user")])
    member = session.get(SpaceMembership, (space_id, body.user_id))
    roles = {body.role, member.role if member else None}
    if (
        SpaceRole.OWNER in roles
        and user.role != Role.ADMIN
        and space_role(session, user, space) != SpaceRole.OWNER
    ):
        # Else an editor could make themselves an owner, and owners may delete the space.
        audit("permission.denied", "denied", target=f"spaces:{space_id}", commit=True)
        raise PermissionDeniedError("only an owner can grant or take away the owner role")
    if member is None:
        member = SpaceMembership(space_id=space_id, user_id=body.user_id, role=body.role)
        session.add(member)
    else:
        member.role = body.role
    session.flush()
    audit(
        "space.member.add",
        target=f"spaces:{space_id}",
        details={"userId": str(body.user_id), "role": body.role},
    )
    return MemberPublic.model_validate(member)


@router.get("/api/spaces/{space_id}/reports", operation_id="spaces-reports")
def list_reports(
    space_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> list[AssetPublic]:
    """The reports, dashboards and folders synced into the space, each once (deleted ones left out)."""
    require(session, user, Space, space_id, audit=audit, action="read")
    return list_space_items(session, space_id=space_id)

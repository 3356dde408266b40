"""The Spaces pages: your spaces (create one), and in each the reports, dashboards and folders
the Marketplace installations synced into it, with open links and an embedded preview where the
installation's access type allows one (an embed URL, a public link).

The pages call the Spaces API's route functions (``inflow.api.routes.spaces``): the same
membership checks (a stranger's space is a 404) and the same audit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from inflow.api.authz import allowed
from inflow.api.deps import AuditDep, SessionDep
from inflow.api.routes import spaces as api
from inflow.api.schemas import AssetPublic, SpaceCreate
from inflow.api.services.validation import field_errors
from inflow.connectors import get_connector
from inflow.errors import NotFoundError
from inflow.storage.models import Asset, DataSource
from inflow.web.forms import FormField, errors_by_field
from inflow.web.marketplace import FormDep, plugin_kinds
from inflow.web.session import PageUser
from inflow.web.templating import render

router = APIRouter(include_in_schema=False)

NAME = FormField(
    "name", "Name", "text", help="E.g. the team or the product it is for.", required=True
)
DESCRIPTION = FormField("description", "Description", "text", help="Optional: what it holds.")
NO_FOLDER = "No folder"
KIND_LABELS = {"report": "Report", "dashboard": "Dashboard"}


@dataclass(frozen=True)
class AssetView:
    """One synced report or dashboard as the space's page shows it."""

    asset: AssetPublic
    source_name: str
    plugin: str
    updated: datetime
    preview: bool

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.asset.kind, self.asset.kind.title())


def preview_url(source: DataSource, asset: AssetPublic) -> str | None:
    """What an iframe may show of one report: its embed URL, for Power BI's ``embed`` access
    type (secure embed: the viewer signs in inside the frame). The API and the JS SDK (an
    embed token) give links only, as do the other plugins."""
    return asset.embed_url if source.config.get("accessType") == "embed" else None


def public_link(source: DataSource) -> str | None:
    """An installation's publish-to-web link (Power BI's ``public`` access type): one report
    anyone may view, shown as a preview of the installation itself."""
    if source.config.get("accessType") != "public":
        return None
    value = source.config.get("publicUrl")
    return str(value) if value else None


def _spaces_page(
    request: Request,
    session: SessionDep,
    user: PageUser,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    spaces = api.list_spaces(user, session)
    ids = [s.id for s in spaces]
    counts = dict(
        session.execute(
            select(Asset.space_id, func.count())
            .where(Asset.space_id.in_(ids), Asset.deleted_at.is_(None))
            .group_by(Asset.space_id)
        ).all()
    )
    return render(
        request,
        "spaces/index.html",
        {
            "section": "spaces",
            "title": "Spaces",
            "spaces": [(s, counts.get(s.id, 0)) for s in spaces],
            "fields": (NAME, DESCRIPTION),
            "values": values or {},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/spaces")
def spaces_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return _spaces_page(request, session, user)


@router.post("/spaces")
def create_space(
    request: Request, user: PageUser, session: SessionDep, audit: AuditDep, form: FormDep
) -> Response:
    values = {"name": form.get("name", "").strip(), "description": form.get("description", "")}
    try:
        body = SpaceCreate.model_validate(
            {"name": values["name"], "description": values["description"].strip() or None}
        )
    except ValidationError as exc:
        errors = errors_by_field(field_errors(exc))
        return _spaces_page(request, session, user, values=values, errors=errors, status_code=422)
    space = api.create_space(body, user, session, audit)
    return RedirectResponse(f"/spaces/{space.id}", status_code=303)


@router.get("/spaces/{space_id}")
def space_page(
    space_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    space = api.get_space(space_id, user, session, audit)
    assets = api.list_reports(space_id, user, session, audit)
    source_ids = {a.source_id for a in assets}
    sources = {
        s.id: s
        for s in session.execute(select(DataSource).where(DataSource.id.in_(source_ids))).scalars()
    }
    installs = list(
        session.execute(
            select(DataSource)
            .where(DataSource.space_id == space_id, DataSource.type.in_(plugin_kinds()))
            .order_by(DataSource.name)
        ).scalars()
    )
    # The provider's own update time where it gives one (Looker Studio), else when Inflow saw
    # the item change.
    remote = dict(
        session.execute(
            select(Asset.id, Asset.remote_updated_at).where(
                Asset.id.in_([a.id for a in assets]), Asset.remote_updated_at.is_not(None)
            )
        ).all()
    )
    views = []
    for a in assets:
        source = sources[a.source_id]
        connector = get_connector(a.service_id)
        views.append(
            AssetView(
                asset=a,
                source_name=source.name,
                plugin=connector.title if connector else a.service_id,
                updated=remote.get(a.id) or a.updated_at,
                preview=preview_url(source, a) is not None,
            )
        )
    views.sort(key=lambda v: (v.asset.folder is None, (v.asset.folder or "").lower()))
    folders = [
        (folder or NO_FOLDER, list(group))
        for folder, group in groupby(views, key=lambda v: v.asset.folder)
    ]
    return render(
        request,
        "spaces/show.html",
        {
            "section": "spaces",
            "title": space.name,
            "space": space,
            "folders": folders,
            "has_folders": any(v.asset.folder for v in views),
            "folder_count": len({v.asset.folder for v in views if v.asset.folder}),
            "total": len(views),
            "installs": installs,
            "public_links": [s for s in installs if public_link(s)],
            # an installation's own page is its owner's (and an admin's): the others get a name
            "linked": {s.id for s in installs if allowed(session, user, s, "read")},
        },
    )


@router.get("/spaces/{space_id}/assets/{asset_id}/preview")
def preview(
    space_id: uuid.UUID,
    asset_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
) -> Response:
    """The embedded preview (an iframe) of one report, where its access type allows it."""
    assets = api.list_reports(space_id, user, session, audit)  # checks the membership
    asset = next((a for a in assets if a.id == asset_id), None)
    source = session.get(DataSource, asset.source_id) if asset is not None else None
    url = preview_url(source, asset) if source is not None and asset is not None else None
    if asset is None or url is None:
        raise NotFoundError(f"no preview of {asset_id} in this space")
    return render(request, "spaces/_preview.html", {"name": asset.name, "url": url})


@router.get("/spaces/{space_id}/installations/{source_id}/preview")
def public_preview(
    space_id: uuid.UUID,
    source_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
) -> Response:
    """The preview of an installation's public link (publish to web)."""
    api.get_space(space_id, user, session, audit)  # checks the membership
    source = session.get(DataSource, source_id)
    url = public_link(source) if source is not None and source.space_id == space_id else None
    if source is None or url is None:
        raise NotFoundError(f"no public link of {source_id} in this space")
    return render(request, "spaces/_preview.html", {"name": source.name, "url": url})

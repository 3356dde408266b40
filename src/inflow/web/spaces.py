"""The Spaces pages: your spaces (create one), and in each the reports, dashboards and folders
the Marketplace installations synced into it, with open links and an embedded preview where the
installation's access type allows one (an embed URL, a public link).

The pages call the Spaces API's route functions (``inflow.api.routes.spaces``): the same
membership checks (a stranger's space is a 404) and the same audit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

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
KIND_LABELS = {"report": "Report", "dashboard": "Dashboard", "folder": "Folder"}


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

    @property
    def installations(self) -> str:
        """Every installation that synced it (two of one account list it once)."""
        return ", ".join(i.name for i in self.asset.installations) or self.source_name


@dataclass
class FolderView:
    """A folder of the space's tree: a folder item (Grafana) or a folder name the items carry
    (a Power BI workspace), with its items and subfolders."""

    title: str
    folder: AssetView | None = None
    items: list[AssetView] = field(default_factory=list)
    children: list[FolderView] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items) + sum(c.count for c in self.children)

    def sort(self) -> None:
        self.items.sort(key=lambda v: v.asset.name.lower())
        self.children.sort(key=lambda f: f.title.lower())
        for child in self.children:
            child.sort()


def folder_tree(views: list[AssetView]) -> list[FolderView]:
    """Folders, subfolders and their items; the items in no folder last."""
    nodes = {v.asset.id: FolderView(v.asset.name, v) for v in views if v.asset.kind == "folder"}
    by_title: dict[str | None, FolderView] = {}
    top: list[FolderView] = []
    for v in views:
        if v.asset.kind == "folder":
            parent = nodes.get(v.asset.parent) if v.asset.parent else None
            (parent.children if parent else top).append(nodes[v.asset.id])
        elif v.asset.folder_id in nodes:
            nodes[v.asset.folder_id].items.append(v)
        else:
            if v.asset.folder not in by_title:
                by_title[v.asset.folder] = FolderView(v.asset.folder or NO_FOLDER)
            by_title[v.asset.folder].items.append(v)
    top.extend(f for title, f in by_title.items() if title is not None)
    root = FolderView("", children=top)
    root.sort()
    if None in by_title:
        root.children.append(by_title[None])
    return root.children


def preview_url(source: DataSource, asset: AssetPublic) -> str | None:
    """What an iframe may show of one report: its embed URL, for Power BI's ``embed`` access
    type (secure embed: the viewer signs in inside the frame). The API and the JS SDK (an
    embed token) give links only, as do the other plugins."""
    return asset.embed_url if source.config.get("accessType") == "embed" else None


def _previewer(sources: Mapping[uuid.UUID, DataSource], asset: AssetPublic) -> DataSource | None:
    """Of the installations that synced an item (one item for several installations of one
    account), the one whose access type lets it be previewed."""
    ids = [asset.source_id, *(i.source_id for i in asset.installations)]
    return next((s for i in ids if (s := sources.get(i)) and preview_url(s, asset)), None)


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
            .where(Asset.space_id.in_(ids), Asset.deleted_at.is_(None), Asset.kind != "folder")
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
    source_ids = {i.source_id for a in assets for i in a.installations} | {
        a.source_id for a in assets
    }
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
                preview=_previewer(sources, a) is not None,
            )
        )
    folders = folder_tree(views)
    named = {v.asset.folder for v in views if v.asset.folder and v.asset.folder_id is None}
    folder_items = sum(1 for v in views if v.asset.kind == "folder")
    return render(
        request,
        "spaces/show.html",
        {
            "section": "spaces",
            "title": space.name,
            "space": space,
            "folders": folders,
            "has_folders": bool(folder_items or named),
            "folder_count": folder_items + len(named),
            "total": sum(1 for v in views if v.asset.kind != "folder"),
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
    ids = [asset.source_id, *(i.source_id for i in asset.installations)] if asset else []
    sources = {i: s for i in ids if (s := session.get(DataSource, i)) is not None}
    source = _previewer(sources, asset) if asset is not None else None
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

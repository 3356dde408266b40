"""The Marketplace: BI plugins (Power BI, Grafana, Looker Studio) installed, tested and synced.

An installation is a data source of the plugin's type; these routes are the original product's
shapes over the same services, engine and audit log as `/api/data-sources`.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from inflow.api.authz import require
from inflow.api.deps import AuditDep, CurrentUser, SessionDep, VaultDep
from inflow.api.routes.sources import require_space, to_public
from inflow.api.schemas import Schema, SourcePublic
from inflow.api.services import sources as svc
from inflow.api.services.marketplace import PluginPublic, list_plugins, require_plugin
from inflow.errors import BadRequestError
from inflow.storage.models import DataSource, User
from inflow.sync.engine import RunResult, enqueue_run, run_sync, test_source

router = APIRouter(tags=["marketplace"])


class InstallRequest(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any]
    space_id: uuid.UUID | None = None


class InstallationAction(Schema):
    installation_id: uuid.UUID
    space_id: uuid.UUID | None = None


class PluginTestResult(Schema):
    success: bool
    message: str
    details: dict[str, Any] | None = None


class SyncedItem(Schema):
    id: uuid.UUID
    action: Literal["created", "updated"]


class PluginSyncResult(Schema):
    success: bool
    count: int
    items: list[SyncedItem]
    message: str


def _installation(
    session: SessionDep, user: User, service_id: str, installation_id: uuid.UUID, audit: AuditDep
) -> DataSource:
    """The caller's installation of ``service_id``: a stranger's is a 404, another type a 400."""
    require_plugin(service_id)
    source = require(session, user, DataSource, installation_id, audit=audit)
    if source.type != service_id:
        raise BadRequestError(
            f"installation {installation_id} is a {source.type} plugin, not {service_id}"
        )
    return source


def _run_and_wait(request: Request, session: SessionDep, source: DataSource) -> RunResult:
    """A sync of ``source`` run now, answered when it ends (409 while another one is active)."""
    run = enqueue_run(session, source=source, trigger="marketplace")
    session.commit()
    result: RunResult = request.app.state.worker.call(
        run_sync(request.app.state.engine_deps, run.id)
    )
    return result


@router.get("/api/marketplace/plugins", operation_id="marketplace-plugins")
def plugins(_user: CurrentUser) -> list[PluginPublic]:
    """The BI plugins that can be installed."""
    return list_plugins()


@router.post(
    "/api/marketplace/plugins/{service_id}/install",
    status_code=201,
    operation_id="marketplace-install",
)
def install(
    service_id: str,
    body: InstallRequest,
    user: CurrentUser,
    session: SessionDep,
    vault: VaultDep,
    audit: AuditDep,
) -> SourcePublic:
    """Install a plugin: its credentials go to the vault and are never shown again."""
    plugin = require_plugin(service_id)
    if body.space_id is not None:
        require_space(session, user, body.space_id, audit)
    source = svc.create_source(
        session,
        owner=user,
        name=body.name or plugin.title,
        type_=service_id,
        config=body.config,
        vault=vault,
        space_id=body.space_id,
    )
    audit("marketplace.install", target=f"data_sources:{source.id}", details={"type": service_id})
    return to_public(source)


@router.get("/api/marketplace/installations", operation_id="marketplace-installations")
def installations(user: CurrentUser, session: SessionDep) -> list[SourcePublic]:
    """Your plugin installations (every one for an admin)."""
    kinds = {p.service_id for p in list_plugins()}
    return [to_public(s) for s in svc.list_sources(session, user=user) if s.type in kinds]


@router.post("/api/marketplace/plugins/{service_id}/test", operation_id="marketplace-test")
def test_plugin(
    service_id: str,
    body: InstallationAction,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
) -> PluginTestResult:
    """Test an installation's connection; updates its health."""
    source = _installation(session, user, service_id, body.installation_id, audit)
    if body.space_id is not None:
        require_space(session, user, body.space_id, audit)
    source_id = source.id
    session.commit()  # release the database before the (slow) provider calls
    steps = request.app.state.worker.call(test_source(request.app.state.engine_deps, source_id))
    failed = next((s for s in steps if not s.ok), None)
    ok = bool(steps) and failed is None
    details: dict[str, Any] = {}
    for step in steps:
        details.update(step.details)
    details["checks"] = [
        {"name": s.name, "ok": s.ok, "message": s.message, "warning": s.warning} for s in steps
    ]
    audit(
        "marketplace.test",
        "success" if ok else "failure",
        target=f"data_sources:{source_id}",
        details={"type": service_id, "failedStep": failed.name if failed else None},
    )
    message = "connection test passed" if ok else (failed.message if failed else "no checks ran")
    return PluginTestResult(success=ok, message=message, details=details)


@router.post("/api/marketplace/plugins/{service_id}/sync", operation_id="marketplace-sync")
def sync_plugin(
    service_id: str,
    body: InstallationAction,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
) -> PluginSyncResult:
    """Sync an installation's reports and dashboards into a space and wait for the result."""
    source = _installation(session, user, service_id, body.installation_id, audit)
    if body.space_id is not None and body.space_id != source.space_id:
        require_space(session, user, body.space_id, audit)
        source.space_id = body.space_id  # the installation now syncs into this space
    result = _run_and_wait(request, session, source)
    items = [
        SyncedItem(id=asset_id, action="created" if action == "created" else "updated")
        for asset_id, action in result.changes
        if action in ("created", "updated")
    ]
    ok = result.status == "succeeded"
    if ok:
        counts = result.counts
        seen = counts.created + counts.updated + counts.unchanged
        message = f"{seen} reports and dashboards: {counts.created} new, {counts.updated} changed"
        if counts.deleted:
            message += f", {counts.deleted} gone upstream"
    else:
        message = str((result.error or {}).get("message") or f"sync {result.status}")
    audit(
        "marketplace.sync",
        "success" if ok else "failure",
        target=f"data_sources:{source.id}",
        details={"type": service_id, "runId": str(result.run_id), **result.counts.as_dict()},
    )
    return PluginSyncResult(success=ok, count=len(items), items=items, message=message)

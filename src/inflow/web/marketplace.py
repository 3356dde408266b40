"""The Marketplace pages: BI plugins (Power BI, Grafana, Looker Studio) to install, and each
installation with its Test, its Sync (live progress while the run goes), its health and the
details of its access type (Power BI's embed configuration for ``sdk``).

An installation is a data source of a plugin's type: the pages call the Marketplace API's route
functions and services (``inflow.api.routes.marketplace``), with the same ownership checks.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inflow.api.authz import Action, require
from inflow.api.deps import AuditDep, SessionDep, VaultDep
from inflow.api.routes import marketplace as api
from inflow.api.routes import spaces as spaces_api
from inflow.api.routes.oauth import authorize
from inflow.api.routes.sources import update_source
from inflow.api.schemas import SourceUpdate, SpaceCreate
from inflow.api.services import sources as svc
from inflow.api.services.marketplace import PluginPublic, list_plugins, require_plugin
from inflow.connectors import get_connector
from inflow.connectors.spec import Connector, OAuth2AuthorizationCode
from inflow.errors import ConflictError, FieldError, NotFoundError, ValidationFailedError
from inflow.storage.models import Asset, DataSource, RunStatus, Space, SyncRun, User
from inflow.sync.engine import enqueue_run
from inflow.web.forms import FormField, config_from_form, errors_by_field, form_fields
from inflow.web.session import PageUser
from inflow.web.templating import is_htmx, render

router = APIRouter(include_in_schema=False)

NEW_SPACE = "new"  # the space select's value for "a new space named after the installation"
NAME_FIELD = FormField(
    name="name",
    label="Installation name",
    kind="text",
    help="How this installation is listed in Inflow.",
    required=True,
)
SPACE_FIELD = FormField(
    name="spaceId",
    label="Space",
    kind="select",
    help="Where its reports and dashboards are synced to (Spaces).",
    required=True,
)
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)

# What each Power BI access type gives (config ``accessType``).
ACCESS_TYPES = {
    "api": (
        "REST API",
        "Inflow lists the workspaces' reports and dashboards and links to them in Power BI; "
        "viewers open them with their own Power BI sign-in.",
    ),
    "sdk": (
        "JS SDK embed",
        "Reports are embedded with the powerbi-client JavaScript SDK and an embed token "
        "(app owns data). Test generates an embed token and shows the embed configuration.",
    ),
    "embed": (
        "Embed URL",
        "Reports are previewed in Spaces through their embed URL (secure embed): viewers sign "
        "in with an account that may see the report.",
    ),
    "public": (
        "Public link",
        "A publish-to-web link: anyone with it can view the report, without signing in. "
        "Spaces show it as a preview.",
    ),
}
AUTH_LABELS = {
    "bearer": "Service account token",
    "basic": "Username and password",
    "oauth2_client_credentials": "Service principal (client credentials)",
    "oauth2_authorization_code": "OAuth (Connect with Google)",
}
# What to do about a failed run, by the error's type (the message says what went wrong).
FIXES = {
    "CredentialsError": "Check the credentials (reconnect an OAuth installation), then Test.",
    "AccessDeniedError": "Grant the missing access in the provider, then Test again.",
    "ConfigError": "Fix the installation's settings, then Test.",
    "RateLimitedError": "The provider is limiting requests: Sync again once the wait is over.",
    "TransientProviderError": "The provider failed for a while: Sync again in a few minutes.",
    "RejectedRequestError": "Run Test: it names the step that fails and what to change.",
    "UnexpectedResponseError": "Run Test; if it passes, report the run to an Inflow admin.",
    "VaultError": "The stored credentials cannot be decrypted: an admin must check the key.",
}
DEFAULT_FIX = "Run Test to see which step fails; the server log has the run's details."


async def form_data(request: Request) -> dict[str, str]:
    """A submitted form's text fields."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


FormDep = Annotated[dict[str, str], Depends(form_data)]


@dataclass(frozen=True)
class Counts:
    """What an installation has synced: live assets by kind, and their folders."""

    reports: int = 0
    dashboards: int = 0
    folders: int = 0

    @property
    def total(self) -> int:
        return self.reports + self.dashboards


def asset_counts(session: Session, source_id: uuid.UUID) -> Counts:
    live = (Asset.source_id == source_id, Asset.deleted_at.is_(None))
    by_kind = dict(
        session.execute(select(Asset.kind, func.count()).where(*live).group_by(Asset.kind)).all()
    )
    # Folder items where the provider has them (Grafana's tree, nested and empty ones too),
    # else the distinct folder names the items carry (Power BI's workspaces).
    folders = (
        by_kind.get("folder")
        or session.execute(
            select(func.count(func.distinct(Asset.folder))).where(*live, Asset.folder.is_not(None))
        ).scalar_one()
    )
    return Counts(by_kind.get("report", 0), by_kind.get("dashboard", 0), folders)


def plugin_kinds() -> set[str]:
    return {p.service_id for p in list_plugins()}


def installations_of(session: Session, user: User) -> list[DataSource]:
    kinds = plugin_kinds()
    return [s for s in svc.list_sources(session, user=user) if s.type in kinds]


def writable_spaces(session: Session, user: User) -> list[tuple[str, str]]:
    """(id, name) of the spaces ``user`` may sync into (owner, editor, or any for an admin)."""
    return [
        (str(s.id), s.name)
        for s in spaces_api.list_spaces(user, session)
        if s.role in ("owner", "editor", "admin")
    ]


def is_oauth(connector: Connector) -> bool:
    return isinstance(connector.auth, OAuth2AuthorizationCode)


def _split_list(value: str) -> list[str]:
    return [v for v in re.split(r"[\s,;]+", value) if v]


def plugin_fields(connector: Connector) -> tuple[list[FormField], set[str]]:
    """The config form's fields, and the names of those that take a list (comma-separated)."""
    schema = connector.config_schema()
    lists = {n for n, p in schema.get("properties", {}).items() if p.get("type") == "array"}
    fields = []
    for f in form_fields(schema):
        if f.name in lists:
            help_text = (f.help + " " if f.help else "") + "Separate several with commas."
            fields.append(replace(f, help=help_text))
        else:
            fields.append(f)
    return fields, lists


def read_config(connector: Connector, form: dict[str, str]) -> dict[str, Any]:
    fields, lists = plugin_fields(connector)
    config = config_from_form(fields, form)
    for name in lists & set(config):
        config[name] = _split_list(str(config[name]))
    return config


# ---------------------------------------------------------------- the catalog


def _plugin_view(plugin: PluginPublic) -> dict[str, Any]:
    return {
        "plugin": plugin,
        "auth": [AUTH_LABELS.get(a, a) for a in plugin.auth_types],
        "access": [ACCESS_TYPES.get(a, (a, ""))[0] for a in plugin.access_types or ()],
    }


@router.get("/marketplace")
def marketplace_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    installed = installations_of(session, user)
    space_ids = {s.space_id for s in installed if s.space_id}
    spaces = dict(
        session.execute(select(Space.id, Space.name).where(Space.id.in_(space_ids))).all()
    )
    return render(
        request,
        "marketplace/index.html",
        {
            "section": "marketplace",
            "title": "Marketplace",
            "plugins": [_plugin_view(p) for p in list_plugins()],
            "installations": [(s, asset_counts(session, s.id)) for s in installed],
            "spaces": spaces,
        },
    )


# ---------------------------------------------------------------- install


def _at_fields(found: list[FieldError], errors: dict[str, str]) -> tuple[dict[str, str], str]:
    """The config's field errors by top-level field, over the form's own ``errors``; and the
    message that belongs to no field."""
    by_field = errors_by_field(found, "config.")
    merged = {k.split(".")[0]: v for k, v in reversed(by_field.items())} | errors
    general = merged.pop("config", "") or merged.pop("", "")
    return merged, general


def _install_page(
    request: Request,
    session: Session,
    user: User,
    connector: Connector,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    status_code: int = 200,
    source: DataSource | None = None,
) -> Response:
    fields, _ = plugin_fields(connector)
    spaces = writable_spaces(session, user)
    space_field = replace(SPACE_FIELD, choices=(*(sid for sid, _ in spaces), NEW_SPACE))
    return render(
        request,
        "marketplace/install.html",
        {
            "section": "marketplace",
            "title": f"Edit {source.name}" if source else f"Install {connector.title}",
            "source": source,
            "secret_names": set(source.secret_names) if source else set(),
            "connector": connector,
            "plugin": _plugin_view(require_plugin_public(connector.slug)),
            "name_field": NAME_FIELD,
            "space_field": space_field,
            "space_names": dict(spaces) | {NEW_SPACE: "A new space named after the installation"},
            "fields": fields,
            "values": values or {},
            "errors": errors or {},
            "message": message,
            "oauth": is_oauth(connector),
            "access_types": [
                (a, *ACCESS_TYPES[a])
                for a in (require_plugin_public(connector.slug).access_types or ())
            ],
        },
        status_code=status_code,
    )


def require_plugin_public(service_id: str) -> PluginPublic:
    require_plugin(service_id)
    return next(p for p in list_plugins() if p.service_id == service_id)


@router.get("/marketplace/{service_id}/install")
def install_form(
    service_id: str, request: Request, user: PageUser, session: SessionDep
) -> Response:
    connector = require_plugin(service_id)
    spaces = writable_spaces(session, user)
    values = {"name": connector.title, "spaceId": spaces[0][0] if spaces else NEW_SPACE}
    return _install_page(request, session, user, connector, values=values)


def _form_errors(form: dict[str, str]) -> tuple[str, uuid.UUID | None, dict[str, str]]:
    """The installation's own fields (name, space) and their errors."""
    name = form.get("name", "").strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "give the installation a name"
    elif len(name) > 200:
        errors["name"] = "at most 200 characters"
    space_id: uuid.UUID | None = None
    if form.get("spaceId", "") != NEW_SPACE:
        try:
            space_id = uuid.UUID(form.get("spaceId", ""))
        except ValueError:
            errors["spaceId"] = "choose a space"
    return name, space_id, errors


@router.post("/marketplace/{service_id}/install")
def install(
    service_id: str,
    request: Request,
    user: PageUser,
    session: SessionDep,
    vault: VaultDep,
    audit: AuditDep,
    form: FormDep,
) -> Response:
    connector = require_plugin(service_id)
    name, space_id, errors = _form_errors(form)
    config = read_config(connector, form)
    found = svc.check_config(connector, config)  # shown with the name's and space's errors
    if not errors and not found:
        try:
            if space_id is None:
                created = spaces_api.create_space(SpaceCreate(name=name), user, session, audit)
                space_id = created.id
            body = api.InstallRequest(name=name, config=config, space_id=space_id)
            source = api.install(service_id, body, user, session, vault, audit)
        except ValidationFailedError as exc:
            session.rollback()
            found = exc.errors
        else:
            target = f"/marketplace/installations/{source.id}?installed=1"
            return RedirectResponse(target, status_code=303)
    errors, general = _at_fields(found, errors)
    return _install_page(
        request,
        session,
        user,
        connector,
        values={k: v for k, v in form.items() if k != "csrf_token"},
        errors=errors,
        message=general or "Some fields need a change: see the messages below.",
        status_code=422,
    )


# ---------------------------------------------------------------- edit


def _current_values(source: DataSource, lists: set[str]) -> dict[str, str]:
    values = {"name": source.name, "spaceId": str(source.space_id or NEW_SPACE)}
    for key, value in source.config.items():
        if value is None or key in source.secret_names:
            continue
        values[key] = ", ".join(map(str, value)) if key in lists else str(value)
    return values


@router.get("/marketplace/installations/{installation_id}/edit")
def edit_form(
    installation_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
) -> Response:
    source = _installation(session, user, installation_id, audit, "write")
    connector = require_plugin(source.type)
    _, lists = plugin_fields(connector)
    values = _current_values(source, lists)
    return _install_page(request, session, user, connector, values=values, source=source)


@router.post("/marketplace/installations/{installation_id}/edit")
def edit(
    installation_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    vault: VaultDep,
    audit: AuditDep,
    form: FormDep,
) -> Response:
    """Change an installation: a secret left empty keeps its stored value."""
    source = _installation(session, user, installation_id, audit, "write")
    connector = require_plugin(source.type)
    name, space_id, errors = _form_errors(form)
    found: list[FieldError] = []
    if not errors:
        try:
            if space_id is None:
                created = spaces_api.create_space(SpaceCreate(name=name), user, session, audit)
                space_id = created.id
            body = SourceUpdate(name=name, config=read_config(connector, form), space_id=space_id)
            update_source(source.id, body, user, session, vault, audit, origin="")
        except ValidationFailedError as exc:
            session.rollback()
            found = exc.errors
        else:
            target = f"/marketplace/installations/{source.id}?saved=1"
            return RedirectResponse(target, status_code=303)
    errors, general = _at_fields(found, errors)
    source = _installation(session, user, installation_id, audit, "write")
    return _install_page(
        request,
        session,
        user,
        connector,
        values={k: v for k, v in form.items() if k != "csrf_token"},
        errors=errors,
        message=general or "Some fields need a change: see the messages below.",
        status_code=422,
        source=source,
    )


# ---------------------------------------------------------------- one installation


def _installation(
    session: Session, user: User, installation_id: uuid.UUID, audit: AuditDep, action: Action
) -> DataSource:
    source = require(session, user, DataSource, installation_id, audit=audit, action=action)
    if source.type not in plugin_kinds():
        raise NotFoundError(f"installation {installation_id} not found")
    return source


def last_run(session: Session, source_id: uuid.UUID) -> SyncRun | None:
    return session.execute(
        select(SyncRun)
        .where(SyncRun.source_id == source_id)
        .order_by(SyncRun.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def access_view(source: DataSource) -> dict[str, Any] | None:
    """The access type's label, what it gives, and its link (embed URL, public link)."""
    access = source.config.get("accessType")
    if access is None:
        return None
    label, text = ACCESS_TYPES.get(access, (access, ""))
    link = source.config.get("embedUrl") if access in ("embed", "sdk") else None
    if access == "public":
        link = source.config.get("publicUrl")
    return {"key": access, "label": label, "text": text, "link": link}


def run_view(session: Session, source: DataSource, run: SyncRun | None) -> dict[str, Any]:
    error = run.error if run is not None else None
    fix = FIXES.get(str(error.get("type")), DEFAULT_FIX) if error else ""
    return {
        "source": source,
        "run": run,
        "active": run is not None and run.status in ACTIVE,
        "counts": asset_counts(session, source.id),
        "fix": fix,
    }


def config_rows(connector: Connector, source: DataSource) -> list[tuple[str, str]]:
    """The stored settings as (label, shown value); a secret only says whether it is set."""
    fields, _ = plugin_fields(connector)
    labels = {f.name: f.label for f in fields}
    shown = svc.public_config(source)
    rows = []
    for name, value in shown.items():
        if value is None or value == [] or name in ("accessType", "embedUrl", "publicUrl"):
            continue
        if isinstance(value, dict) and set(value) == {"set"}:
            if not value["set"]:
                continue
            text = "stored, never shown"
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append((labels.get(name, name), text))
    return rows


def _connected(source: DataSource) -> bool:
    return source.tokens is not None


@router.get("/marketplace/installations/{installation_id}")
def installation_page(
    installation_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    installed: str = "",
    saved: str = "",
    oauth: str = "",
    error: str = "",
) -> Response:
    source = _installation(session, user, installation_id, audit, "read")
    connector = get_connector(source.type)
    assert connector is not None  # noqa: S101 - a plugin kind is a registered connector
    space = session.get(Space, source.space_id) if source.space_id else None
    auth = "basic" if source.config.get("username") else connector.auth_type
    return render(
        request,
        "marketplace/installation.html",
        {
            "section": "marketplace",
            "title": source.name,
            "source": source,
            "connector": connector,
            "space": space,
            "auth_label": AUTH_LABELS.get(auth, auth),
            "access": access_view(source),
            "oauth": is_oauth(connector),
            "connected": _connected(source),
            "installed": bool(installed),
            "saved": bool(saved),
            "oauth_result": oauth,
            "oauth_error": error,
            "config_rows": config_rows(connector, source),
            **run_view(session, source, last_run(session, source.id)),
        },
    )


def embed_configuration(details: dict[str, Any] | None) -> str | None:
    """powerbi-client's embed configuration, from the ``sdk`` test's embed-token step."""
    if not details or "accessToken" not in details:
        return None
    keys = ("type", "id", "embedUrl", "accessToken", "tokenType", "expiration")
    config = {k: details[k] for k in keys if k in details}
    return json.dumps(config, indent=2)


@router.post("/marketplace/installations/{installation_id}/test")
def test(
    installation_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
) -> Response:
    source = _installation(session, user, installation_id, audit, "write")
    body = api.InstallationAction(installation_id=source.id)
    result = api.test_plugin(source.type, body, request, user, session, audit)
    session.refresh(source)
    details = result.details or {}
    return render(
        request,
        "marketplace/_test.html",
        {
            "source": source,
            "ok": result.success,
            "message": result.message,
            "checks": details.get("checks", []),
            "embed_config": embed_configuration(details),
            "oob": True,
        },
    )


@router.post("/marketplace/installations/{installation_id}/sync")
def sync(
    installation_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
) -> Response:
    """Start a sync in the background; the answer polls the run until it ends."""
    source = _installation(session, user, installation_id, audit, "write")
    run: SyncRun | None
    try:
        run = enqueue_run(session, source=source, trigger="marketplace")
    except ConflictError:  # one is queued or running already: show that one
        session.rollback()
        run = last_run(session, source.id)
    else:
        audit(
            "marketplace.sync",
            target=f"data_sources:{source.id}",
            details={"type": source.type, "runId": str(run.id)},
        )
        session.commit()
        request.app.state.worker.submit(run.id)
    return render(request, "marketplace/_run.html", run_view(session, source, run))


@router.get("/marketplace/installations/{installation_id}/runs/{run_id}")
def run_status(
    installation_id: uuid.UUID,
    run_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
) -> Response:
    """The run's progress (polled while it goes); its counts, or its error and fix."""
    source = _installation(session, user, installation_id, audit, "read")
    run = session.get(SyncRun, run_id)
    if run is None or run.source_id != source.id:
        raise NotFoundError(f"run {run_id} not found")
    view = run_view(session, source, run)
    view["oob"] = not view["active"]  # the health badge changes when the run ends
    return render(request, "marketplace/_run.html", view)


@router.post("/marketplace/installations/{installation_id}/connect")
def connect(
    installation_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
) -> Response:
    """Start the OAuth consent (Looker Studio) from the browser: the provider's page next."""
    source = _installation(session, user, installation_id, audit, "write")
    answer = authorize(source.type, request, user, session, audit, source_id=source.id)
    url = answer.headers["location"]
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)

"""Data Inflow: the sources (sidebar with health), "Add Data Source" (a form generated from
the connector's config schema), "Test" (each check step), "Fetch" (a date range, then a
dialog reviewing the points) and "Create All Data Points"; "Connect" starts OAuth.

Each action calls what the API's route calls (``inflow.api.services``, the sync engine's
``test_source``/``fetch_points`` on the worker, ``fetch_window``) and audits the same events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from inflow.api.authz import require
from inflow.api.deps import AuditDep, Auditor, SessionDep
from inflow.api.routes.runs import FetchRequest, fetch_window
from inflow.api.routes.sources import Origin, to_public
from inflow.api.schemas import SourceCreate
from inflow.api.services import data_points as points_svc
from inflow.api.services import experiments as tests_svc
from inflow.api.services import sources as svc
from inflow.api.services.validation import field_errors
from inflow.connectors import get_connector, listed
from inflow.connectors.runtime import auth_of, days_zone
from inflow.connectors.spec import Connector, OAuth2AuthorizationCode
from inflow.errors import FieldError, InflowError, NotFoundError, ValidationFailedError
from inflow.storage.models import DataSource, User
from inflow.sync import attention, oauth
from inflow.sync.engine import fetch_points, test_source
from inflow.sync.worker import InProcessWorker
from inflow.web import backfills
from inflow.web.forms import FormField, config_from_form, errors_by_field, form_fields
from inflow.web.points import Batches, group_points, period_label
from inflow.web.session import PageUser
from inflow.web.templating import is_htmx, render, templates

router = APIRouter(include_in_schema=False)


def type_title(slug: str) -> str:
    connector = get_connector(slug)
    return connector.title if connector is not None else slug


templates.env.globals["type_title"] = type_title

CATEGORY_LABELS = {
    "calling": "Calling",
    "analytics": "Web analytics",
    "social": "Social",
    "bi": "BI tools",
}
RECENT_DAYS = 7  # a source's page shows the points of its last days stored
RECENT_LIMIT = 2000


@dataclass(frozen=True)
class TypeChoice:
    """A type "Add Data Source" offers: a connector, or a calling platform of ``calling``."""

    key: str  # in URLs and the form (``twilio``)
    api_type: str  # what the source is created as (``calling``)
    title: str
    description: str
    group: str
    connector: Connector

    @property
    def is_oauth(self) -> bool:
        return self.connector.auth_type == "oauth2_authorization_code"


def type_choices() -> list[TypeChoice]:
    found = [
        TypeChoice(
            key=m.slug,
            api_type=c.slug,
            title=m.title,
            description=m.description or c.description,
            group=CATEGORY_LABELS.get(c.category, c.category.title()),
            connector=m,
        )
        for c in listed()
        for m in (c.variants.values() if c.variants else (c,))
    ]
    order = list(CATEGORY_LABELS.values())
    return sorted(found, key=lambda t: (order.index(t.group) if t.group in order else 99, t.title))


def grouped_choices() -> list[tuple[str, list[TypeChoice]]]:
    groups: dict[str, list[TypeChoice]] = {}
    for choice in type_choices():
        groups.setdefault(choice.group, []).append(choice)
    return list(groups.items())


def choice_for(key: str) -> TypeChoice | None:
    return next((t for t in type_choices() if t.key == key), None)


def config_fields(choice: TypeChoice) -> list[FormField]:
    return form_fields(choice.connector.config_schema())


def _worker(request: Request) -> InProcessWorker:
    worker: InProcessWorker = request.app.state.worker
    return worker


def _batches(request: Request) -> Batches:
    batches: Batches | None = getattr(request.app.state, "fetch_batches", None)
    if batches is None:
        batches = request.app.state.fetch_batches = Batches()
    return batches


def _sidebar(session: Session, user: User) -> list[DataSource]:
    return svc.list_sources(session, user=user)


def _stored_points(session: Session, source: DataSource) -> dict[str, Any]:
    """What the source holds: per metric its count and periods, and the points of its last
    ``RECENT_DAYS`` days (by the newest period stored) grouped with their totals."""
    connector = get_connector(source.type)
    summary = points_svc.stored_summary(session, source.id)
    labels = {m.key: m.label for m in connector.metrics} if connector else {}
    order = {key: i for i, key in enumerate(labels)}
    summary.sort(key=lambda m: (order.get(m.metric, len(order)), m.metric))
    newest = max((m.last for m in summary), default=None)
    rows: list[Any] = []
    since = None
    if newest is not None:
        since = newest - timedelta(days=RECENT_DAYS - 1)
        rows, _ = points_svc.list_points(
            session,
            source_ids=[source.id],
            metric=None,
            start=since,
            end=None,
            limit=RECENT_LIMIT,
            offset=0,
        )
    return {
        "stored_summary": [
            {
                "label": labels.get(m.metric, m.metric),
                "points": m.points,
                "first": period_label(m.first, "day", _zone_of(source)),
                "last": period_label(m.last, "day", _zone_of(source)),
            }
            for m in summary
        ],
        "stored_total": sum(m.points for m in summary),
        "stored_groups": group_points(rows, connector, source.config),
        "stored_since": period_label(since, "day", _zone_of(source)) if since else "",
        "recent_days": RECENT_DAYS,
    }


def _zone_of(source: DataSource) -> str:
    zone = source.config.get("timezone")
    return zone if isinstance(zone, str) else "UTC"


def _default_range(source: DataSource) -> tuple[str, str]:
    """The fetch form's days, by the source's clock (its time zone): the API's default window
    (a week up to now, cut to the provider's reach) as whole days."""
    connector = get_connector(source.type)
    zone = days_zone(connector, source.config)
    now = datetime.now(UTC)
    window = fetch_window(FetchRequest(), now, connector, zone)
    start = window.start.astimezone(zone)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    history = connector.history if connector else None
    if midnight != start and history is not None and midnight < now - history:
        start = start + timedelta(days=1)  # the whole first day would reach too far back
    return start.date().isoformat(), now.astimezone(zone).date().isoformat()


def _is_oauth(source: DataSource, request: Request) -> bool:
    connector = get_connector(source.type)
    if connector is None:
        return False
    try:
        config = svc.load_config(source, request.app.state.vault)
    except InflowError:
        return False
    return isinstance(auth_of(connector, config), OAuth2AuthorizationCode)


# ---------------------------------------------------------------- pages


@router.get("/sources")
def sources_page(
    request: Request, user: PageUser, session: SessionDep, deleted: str = ""
) -> Response:
    return render(
        request,
        "sources/index.html",
        {
            "section": "sources",
            "sources": _sidebar(session, user),
            "current": None,
            "deleted": deleted[:200],
        },
    )


def _new_form(
    request: Request,
    session: Session,
    user: User,
    choice: TypeChoice | None,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "section": "sources",
        "sources": _sidebar(session, user),
        "current": None,
        "groups": grouped_choices(),
        "choice": choice,
        "fields": config_fields(choice) if choice else [],
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
    }
    template = "sources/new.html"
    if is_htmx(request) and choice is not None:
        template = "sources/_form.html"
    return render(request, template, context, status_code=status_code)


@router.get("/sources/new")
def new_source_page(
    request: Request,
    user: PageUser,
    session: SessionDep,
    type: str = "",  # noqa: A002
) -> Response:
    choice = choice_for(type) if type else None
    return _new_form(request, session, user, choice)


async def form_data(request: Request) -> dict[str, str]:
    """A generated form's fields (their names come from the connector's schema)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _name_and_schedule_errors(name: str, schedule: str | None) -> dict[str, str]:
    """The API's own limits on a source's name and schedule (``SourceCreate``), at their fields:
    a name longer than its column is a message here, not a database error."""
    try:
        SourceCreate.model_validate({"name": name or "-", "type": "-", "schedule": schedule})
    except ValidationError as exc:
        return errors_by_field(field_errors(exc))
    return {}


@router.post("/sources/new")
def create_source(
    request: Request,
    user: PageUser,
    session: SessionDep,
    data: Annotated[dict[str, str], Depends(form_data)],
) -> Response:
    return _create_in(request, session, user, data)


def _create_in(request: Request, session: Session, user: User, data: dict[str, str]) -> Response:
    choice = choice_for(data.get("type", ""))
    if choice is None:
        return _new_form(
            request, session, user, None, problem="Choose a type first.", status_code=422
        )
    fields = config_fields(choice)
    name = data.get("name", "").strip()
    schedule = data.get("schedule", "").strip() or None
    values: dict[str, Any] = {
        f.name: (f.name in data) if f.kind == "checkbox" else data.get(f.name)
        for f in fields
        if not f.secret
    }
    values |= {"name": name, "schedule": schedule or ""}
    audit = Auditor(session, request)
    errors = _name_and_schedule_errors(name, schedule)
    if not name:
        errors["name"] = "a name is required"
    try:
        config = config_from_form(fields, data)
        if choice.connector.family:
            config[choice.connector.variant_field] = choice.key
        if errors:  # show the config's errors with the name's
            svc.validate_config(choice.connector, config)
            source = None
        else:
            source = svc.create_source(
                session,
                owner=user,
                name=name,
                type_=choice.api_type,
                config=config,
                vault=request.app.state.vault,
                schedule=schedule,
            )
    except ValidationFailedError as exc:
        errors |= errors_by_field(exc.errors, prefix="config.")
        source = None
    if source is None:
        return _new_form(
            request,
            session,
            user,
            choice,
            values=values,
            errors=errors,
            problem="Some fields need a change: see the messages at the fields.",
            status_code=422,
        )
    audit("source.create", target=f"data_sources:{source.id}", details={"type": source.type})
    target = f"/sources/{source.id}?created=1"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _edit_form(
    request: Request,
    session: Session,
    user: User,
    source: DataSource,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    choice = choice_for(source.type)
    if choice is None:
        raise NotFoundError(f"unknown integration type {source.type!r}")
    context = {
        "section": "sources",
        "sources": _sidebar(session, user),
        "current": source,
        "source": source,
        "choice": choice,
        "fields": config_fields(choice),
        "values": values,
        "errors": errors or {},
        "problem": "Some fields need a change: see the messages at the fields." if errors else None,
        "editing": True,
        "form_action": f"/sources/{source.id}/edit",
        "cancel_url": f"/sources/{source.id}",
        "secret_names": list(source.secret_names),
    }
    template = "sources/_form.html" if is_htmx(request) else "sources/edit.html"
    return render(request, template, context, status_code=status_code)


@router.get("/sources/{source_id}/edit")
def edit_source_page(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    source = require(session, user, DataSource, source_id, audit=audit)
    values = dict(source.config) | {"name": source.name, "schedule": source.schedule or ""}
    return _edit_form(request, session, user, source, values=values)


@router.post("/sources/{source_id}/edit")
def update_source(
    source_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    data: Annotated[dict[str, str], Depends(form_data)],
) -> Response:
    """Change a source: a secret left empty keeps its stored value (as a PATCH without it)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    choice = choice_for(source.type)
    if choice is None:
        raise NotFoundError(f"unknown integration type {source.type!r}")
    fields = config_fields(choice)
    name = data.get("name", "").strip()
    schedule = data.get("schedule", "").strip() or None
    values: dict[str, Any] = {
        f.name: (f.name in data) if f.kind == "checkbox" else data.get(f.name)
        for f in fields
        if not f.secret
    }
    values |= {"name": name, "schedule": schedule or ""}
    try:
        config = config_from_form(fields, data)
        if choice.connector.family:
            config[choice.connector.variant_field] = choice.key
        if not name:
            raise ValidationFailedError("invalid name", [FieldError("name", "a name is required")])  # noqa: TRY301 - one answer for every invalid field
        if too_long := _name_and_schedule_errors(name, schedule):
            found = [FieldError(k, v) for k, v in too_long.items()]
            raise ValidationFailedError("invalid source", found)  # noqa: TRY301 - as above
        svc.update_source(
            session,
            source=source,
            vault=request.app.state.vault,
            name=name,
            config=config,
            schedule=schedule,
            fields_set={"schedule"},
        )
    except ValidationFailedError as exc:
        session.rollback()  # update_source may have changed some fields before it refused
        errors = errors_by_field(exc.errors, prefix="config.")
        return _edit_form(
            request, session, user, source, values=values, errors=errors, status_code=422
        )
    audit("source.update", target=f"data_sources:{source.id}", details={"fields": sorted(config)})
    target = f"/sources/{source.id}?updated=1"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _source_context(
    request: Request, session: Session, user: User, source: DataSource, origin: str
) -> dict[str, Any]:
    connector = get_connector(source.type)
    public = to_public(source, origin)
    choice = choice_for(source.type)
    fields = config_fields(choice) if choice else []
    start, end = _default_range(source)
    return {
        "section": "sources",
        "sources": _sidebar(session, user),
        "current": source,
        "source": source,
        "public": public,
        "connector": connector,
        "fields": [f for f in fields if f.kind != "hidden"],
        "oauth": _is_oauth(source, request),
        "range": {"start": start, "end": end},
        "zone": _zone_of(source),
        **_stored_points(session, source),
    }


def page_context(
    request: Request,
    session: Session,
    user: User,
    source: DataSource,
    audit: Auditor,
    origin: str,
) -> dict[str, Any]:
    """All a source's page shows: its parts, its backfills and what its schedule does next."""
    context = _source_context(request, session, user, source, origin)
    context |= backfills.backfills_context(session, user, source, audit)
    context["schedule"] = backfills.schedule_view(source)
    return context


@router.get("/sources/{source_id}")
def source_page(
    source_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    origin: Origin,
    oauth: str = "",
    error: str = "",
    created: str = "",
    updated: str = "",
    resumed: str = "",
) -> Response:
    source = require(session, user, DataSource, source_id, audit=audit, action="read")
    context = page_context(request, session, user, source, audit, origin)
    context |= {
        "oauth_result": oauth,
        "oauth_error": error,
        "created": bool(created),
        "updated": bool(updated),
        "resumed": bool(resumed),
    }
    return render(request, "sources/show.html", context)


@router.post("/sources/{source_id}/resume")
def resume_source(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Resume a source paused after failing in a row (as the API's resume)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    was_paused = source.paused_at is not None
    attention.resume(source)
    audit("source.resume", target=f"data_sources:{source_id}", details={"wasPaused": was_paused})
    target = f"/sources/{source_id}?resumed=1"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/sources/{source_id}/points")
def stored_points(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    source = require(session, user, DataSource, source_id, audit=audit, action="read")
    return render(
        request, "sources/_stored.html", {"source": source, **_stored_points(session, source)}
    )


@router.post("/sources/{source_id}/delete")
def delete_source(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Delete a source with its assets, data points and runs (as the API's DELETE)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    name = source.name
    session.delete(source)
    audit("source.delete", target=f"data_sources:{source_id}", details={"type": source.type})
    target = "/sources?" + urlencode({"deleted": name})
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


# ---------------------------------------------------------------- Test


@router.post("/sources/{source_id}/test")
def test(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    source = require(session, user, DataSource, source_id, audit=audit)
    session.commit()  # release the database before the (slow) provider calls
    steps = _worker(request).call(test_source(request.app.state.engine_deps, source_id))
    ok = bool(steps) and all(s.ok for s in steps)
    failed = next((s for s in steps if not s.ok), None)
    message = "Connection test passed." if ok else (failed.message if failed else "No checks ran.")
    audit(
        "source.test",
        "success" if ok else "failure",
        target=f"data_sources:{source_id}",
        details={"failedStep": failed.name if failed else None},
    )
    session.refresh(source)
    return render(
        request,
        "sources/_test.html",
        {"source": source, "ok": ok, "message": message, "checks": steps},
    )


# ---------------------------------------------------------------- Fetch → review → Create All


def _range_form(
    request: Request,
    source: DataSource,
    *,
    start: str,
    end: str,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "sources/_fetch_form.html",
        {
            "source": source,
            "range": {"start": start, "end": end},
            "zone": _zone_of(source),
            "errors": errors or {},
            "problem": problem,
        },
        status_code=status_code,
    )


@router.get("/sources/{source_id}/fetch")
def fetch_form(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """The fetch dialog's date range, with defaults that work for the provider."""
    source = require(session, user, DataSource, source_id, audit=audit, action="read")
    start, end = _default_range(source)
    return _range_form(request, source, start=start, end=end)


@router.post("/sources/{source_id}/fetch")
def fetch(
    source_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    start_date: Annotated[str, Form(max_length=40)] = "",
    end_date: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    source = require(session, user, DataSource, source_id, audit=audit)
    connector = get_connector(source.type)
    try:
        body = FetchRequest.model_validate(
            {"startDate": start_date or None, "endDate": end_date or None}
        )  # days: the source's own (``days_zone``), as the API reads them
        window = fetch_window(
            body, datetime.now(UTC), connector, days_zone(connector, source.config)
        )
    except ValidationError as exc:
        errors = errors_by_field(field_errors(exc))
        return _range_form(
            request, source, start=start_date, end=end_date, errors=errors, status_code=422
        )
    except ValidationFailedError as exc:
        return _range_form(
            request,
            source,
            start=start_date,
            end=end_date,
            errors=errors_by_field(exc.errors),
            status_code=422,
        )
    session.commit()
    try:
        points = _worker(request).call(
            fetch_points(request.app.state.engine_deps, source_id, window)
        )
    except InflowError as exc:
        audit(
            "source.fetch",
            "failure",
            target=f"data_sources:{source_id}",
            details={"error": exc.message},
        )
        return _range_form(
            request, source, start=start_date, end=end_date, problem=exc.message, status_code=200
        )
    audit(
        "source.fetch",
        target=f"data_sources:{source_id}",
        details={"points": len(points), "created": 0, "autoCreate": False},
    )
    batch = _batches(request).put(
        user_id=user.id, source_id=source.id, points=points, start=window.start, end=window.end
    )
    return render(
        request,
        "sources/_review.html",
        {
            "source": source,
            "batch": batch,
            "groups": group_points(points, connector, source.config),
            "tests": tests_svc.list_tests(session, user=user),
            "range": {"start": start_date, "end": end_date},
        },
    )


def _test_ids(values: list[str]) -> list[uuid.UUID]:
    ids = []
    for index, value in enumerate(values):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            raise ValidationFailedError(
                "invalid test", [FieldError(f"linkToTests.{index}", "not a test id")]
            ) from None
    return ids


@router.post("/sources/{source_id}/fetches/{batch_id}/create")
def create_all(
    source_id: uuid.UUID,
    batch_id: str,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    link_to_tests: Annotated[list[str] | None, Form(max_length=100)] = None,
) -> Response:
    """Store the reviewed batch (kept on the server: the request carries only its id)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    batch = _batches(request).get(batch_id, user_id=user.id, source_id=source.id)
    if batch is None:
        return render(
            request,
            "sources/_created.html",
            {"source": source, "expired": True},
            status_code=410,
        )
    test_ids = _test_ids(link_to_tests or [])
    counts = points_svc.create_points(
        session,
        user=user,
        points=[points_svc.NewPoint.of(source.id, p) for p in batch.points],
        test_ids=test_ids,
        audit=audit,
    )
    audit(
        "data_points.create",
        details={**counts.as_dict(), "sources": 1, "tests": [str(t) for t in test_ids]},
    )
    _batches(request).discard(batch.id)
    return render(
        request,
        "sources/_created.html",
        {"source": source, "expired": False, "counts": counts, "tests": len(test_ids)},
        headers={"HX-Trigger": "points-stored"},
    )


# ---------------------------------------------------------------- OAuth


@router.post("/sources/{source_id}/connect")
def connect(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Start the OAuth consent flow from the browser (the cookie session, not a bearer)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    redirect_uri = str(request.url_for("oauth_callback", service_id=source.type))
    url = oauth.begin(
        request.app.state.engine_deps,
        session,
        source=source,
        user_id=user.id,
        redirect_uri=redirect_uri,
    )
    audit("oauth.authorize", target=f"data_sources:{source_id}")
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)

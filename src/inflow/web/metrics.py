"""Metrics: a panel per metric (current value, change against the previous period, a chart by
day, week or month with partial periods drawn as partial), a metric's breakdown by one of its
dimensions, and the custom metrics (formulas) beside the provider ones, with a form to add one.

Every number comes from the API's own route functions (``/api/data-points`` and
``/api/data-points/trends``: the same ``SeriesQuery``/``SeriesCache``, the same checks), called
in-process; the page embeds each series exactly as the API answers it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from inflow.api.deps import AuditDep, SessionDep
from inflow.api.routes import data_points as points_api
from inflow.api.routes import metrics as metrics_api
from inflow.api.services import data_points as points_svc
from inflow.api.services import metrics as metrics_svc
from inflow.api.services import sources as sources_svc
from inflow.api.services.series import Range, SeriesQuery, bucket_of, shift
from inflow.errors import (
    ConflictError,
    FieldError,
    InflowError,
    NotFoundError,
    ValidationFailedError,
)
from inflow.storage.models import CustomMetric, DataPoint, User
from inflow.web.charts import error_page  # also registers the chart macro's filters
from inflow.web.forms import form_day
from inflow.web.session import PageUser
from inflow.web.templating import render

router = APIRouter(include_in_schema=False)

Granularity = Literal["day", "week", "month"]
GRANULARITIES: tuple[Granularity, ...] = ("day", "week", "month")
# How many periods a chart shows when the URL names no range.
DEFAULT_SPAN = {"day": 30, "week": 12, "month": 12}
MAX_BREAKDOWN = 8  # series in a breakdown; the rest are named as left out


@dataclass
class Filters:
    """The page's query: what the URL keeps (granularity, source, range, breakdown)."""

    granularity: Granularity = "day"
    source: uuid.UUID | None = None
    start: date | None = None  # as given (None: the default window)
    end: date | None = None
    by: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def window(self, today: date) -> tuple[date, date]:
        """The range charted: the one given, or the last ``DEFAULT_SPAN`` periods to today."""
        end = self.end or today
        if self.start is not None:
            return self.start, end
        first = bucket_of(end, self.granularity)[0]
        if self.granularity == "day":
            return shift(first, 1 - DEFAULT_SPAN["day"]), end
        if self.granularity == "week":
            return shift(first, -7 * (DEFAULT_SPAN["week"] - 1)), end
        start = first
        for _ in range(DEFAULT_SPAN["month"] - 1):
            start = bucket_of(shift(start, -1), "month")[0]
        return start, end

    def query(self, **changes: str) -> str:
        """The URL query of these filters (with ``changes``), defaults left out."""
        values = {
            "granularity": self.granularity if self.granularity != "day" else "",
            "source": str(self.source) if self.source else "",
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "by": self.by,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})


def read_filters(request: Request, sources: dict[uuid.UUID, str]) -> Filters:
    """The filters from the query string; a bad value is named at its field, never a 500."""
    q = request.query_params
    errors: dict[str, str] = {}
    granularity = q.get("granularity", "day") or "day"
    if granularity not in GRANULARITIES:
        errors["granularity"] = "day, week or month"
        granularity = "day"
    source: uuid.UUID | None = None
    if q.get("source"):
        try:
            source = uuid.UUID(q["source"])
        except ValueError:
            source = None
        if source not in sources:
            errors["source"] = "not one of your sources"
            source = None
    start = form_day(q.get("from", ""), "from", errors)
    end = form_day(q.get("to", ""), "to", errors)
    if start and end and end < start:
        errors["to"] = "the end is before the start"
        end = None
    return Filters(granularity, source, start, end, q.get("by", "")[:64], errors)  # type: ignore[arg-type]


# ---------------------------------------------------------------- what the page shows


@dataclass
class Panel:
    key: str
    label: str
    unit: str | None
    aggregation: str
    custom: bool
    formula: str | None
    description: str
    series: list[dict[str, Any]]  # [{label, data: the API's series answer}]
    trend: dict[str, Any] | None  # the API's trends answer
    dimension_keys: list[str]
    breakdown_left_out: int = 0
    error: str | None = None

    @property
    def chart(self) -> dict[str, Any]:
        return {"kind": "series", "unit": self.unit, "series": self.series}

    @property
    def empty(self) -> bool:
        """No series has a period with a value in the range."""
        return not any(p["value"] is not None for s in self.series for p in s["data"]["points"])

    @property
    def direction(self) -> str:
        change = (self.trend or {}).get("change") or {}
        absolute = change.get("absolute")
        if absolute is None:
            return "none"
        return "up" if absolute > 0 else ("down" if absolute < 0 else "flat")


def stored_metrics(session: SessionDep, source_ids: list[uuid.UUID]) -> list[str]:
    """The metrics the sources have stored points of."""
    if not source_ids:
        return []
    rows = session.execute(
        select(DataPoint.metric).where(DataPoint.source_id.in_(source_ids)).distinct()
    )
    return sorted(r[0] for r in rows)


def dimension_values(
    session: SessionDep, source_ids: list[uuid.UUID], metrics: set[str]
) -> dict[str, set[str]]:
    """Dimension name → the values stored for the metrics (from the canonical keys)."""
    found: dict[str, set[str]] = {}
    if not source_ids or not metrics:
        return found
    rows = session.execute(
        select(DataPoint.dimensions_key)
        .where(DataPoint.source_id.in_(source_ids), DataPoint.metric.in_(sorted(metrics)))
        .distinct()
    )
    for (key,) in rows:
        for name, value in parse_qsl(key or "", keep_blank_values=True):
            found.setdefault(name, set()).add(value)
    return found


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return dumped


def build_panel(
    request: Request,
    session: SessionDep,
    user: User,
    audit: AuditDep,
    *,
    key: str,
    filters: Filters,
    window: tuple[date, date],
    custom: CustomMetric | None,
    sources: dict[uuid.UUID, str],
    breakdown: bool = False,
) -> Panel:
    """A metric's panel from the API's series and trends routes (one series per dimension
    value when ``breakdown`` and the filters name a dimension)."""
    start, end = window
    query = SeriesQuery(session, sources=sources, window=Range(start, end))
    definition = query.definition(key)
    formula = metrics_svc.formulas(session, owner_id=user.id).get(key) if custom else None
    leaves = set(formula.operands) if formula is not None else {key}
    dims = dimension_values(session, list(sources), leaves)
    panel = Panel(
        key=key,
        label=custom.label if custom else (definition.label if definition else key),
        unit=custom.unit if custom else (definition.unit if definition else None),
        aggregation="formula" if custom else (definition.aggregation if definition else "sum"),
        custom=custom is not None,
        formula=custom.formula if custom else None,
        description=definition.description if definition and not custom else "",
        series=[],
        trend=None,
        dimension_keys=sorted(dims),
    )

    def series(dimensions: str | None) -> dict[str, Any]:
        # the route renders its JSON itself (its hot path): the page embeds that same JSON
        body: dict[str, Any] = orjson.loads(
            points_api.series(
                request,
                key,
                user,
                session,
                audit,
                source_id=filters.source,
                start=start,
                end=end,
                granularity=filters.granularity,
                dimensions=dimensions,
            ).body
        )
        return body

    try:
        panel.series.append({"label": "Total", "dimensions": {}, "data": series(None)})
        panel.trend = _dump(
            points_api.trends(
                key, user, session, audit, source_id=filters.source, start=start, end=end
            )
        )
        if breakdown and filters.by in dims:
            parts = []
            for value in sorted(dims[filters.by]):
                dimensions = json.dumps({filters.by: value})
                data = series(dimensions)
                total = sum(p["value"] or 0 for p in data["points"])
                parts.append((total, value, data))
            parts.sort(key=lambda p: (-abs(p[0]), p[1]))
            panel.series = [
                {"label": f"{filters.by}: {value}", "dimensions": {filters.by: value}, "data": d}
                for _, value, d in parts[:MAX_BREAKDOWN]
            ]
            panel.breakdown_left_out = max(0, len(parts) - MAX_BREAKDOWN)
    except InflowError as exc:
        panel.error = exc.message
    return panel


def _today() -> date:
    return datetime.now(UTC).date()


def _context(request: Request, session: SessionDep, user: User, audit: AuditDep) -> dict[str, Any]:
    sources = {s.id: s for s in sources_svc.list_sources(session, user=user)}
    visible = points_svc.visible_sources(session, user)
    filters = read_filters(request, visible)
    chosen = {filters.source: visible[filters.source]} if filters.source else visible
    window = filters.window(_today())
    custom = {m.key: m for m in metrics_svc.list_custom(session, owner_id=user.id)}
    keys = [k for k in stored_metrics(session, list(chosen)) if k not in custom]
    # the providers' metrics first, then the custom ones beside them
    shown: list[tuple[str, CustomMetric | None]] = [(k, None) for k in keys]
    shown += list(custom.items())
    panels = [
        build_panel(
            request,
            session,
            user,
            audit,
            key=k,
            filters=filters,
            window=window,
            custom=m,
            sources=chosen,
        )
        for k, m in shown
    ]
    return {
        "section": "metrics",
        "title": "Metrics",
        "filters": filters,
        "window": window,
        "sources": sources,
        "panels": panels,
        "custom": list(custom.values()),
        "known_keys": sorted(set(keys) | set(metrics_svc.catalog())),
        "stored_keys": keys,
        "granularities": GRANULARITIES,
    }


def _custom_form_context(user: User, session: SessionDep) -> dict[str, Any]:
    stored = stored_metrics(session, list(points_svc.visible_sources(session, user)))
    return {"stored_keys": stored, "values": {}, "errors": {}}


@router.get("/metrics", name="page_metrics")
def metrics_page(
    request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    context = _context(request, session, user, audit)
    context |= {"values": {}, "errors": {}}
    template = "metrics/index.html"
    if request.headers.get("hx-target") == "metric-panels":
        template = "metrics/_panels.html"
    return render(
        request,
        template,
        context,
        status_code=422 if context["filters"].errors else 200,
        headers=_pushed("/metrics", context["filters"], request),
    )


def _pushed(path: str, filters: Filters, request: Request) -> dict[str, str] | None:
    """For an htmx swap, the URL to show: the filters' own query (no empty fields)."""
    if request.headers.get("hx-request") != "true":
        return None
    query = filters.query()
    return {"HX-Push-Url": f"{path}?{query}" if query else path}


@router.get("/metrics/m/{key}", name="page_metric")
def metric_page(
    request: Request, key: str, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    visible = points_svc.visible_sources(session, user)
    filters = read_filters(request, visible)
    chosen = {filters.source: visible[filters.source]} if filters.source else visible
    window = filters.window(_today())
    custom = {m.key: m for m in metrics_svc.list_custom(session, owner_id=user.id)}
    if key not in custom and key not in stored_metrics(session, list(visible)):
        return error_page(
            request, NotFoundError(f"no metric {key!r} among your data"), 404, "Not Found"
        )
    panel = build_panel(
        request,
        session,
        user,
        audit,
        key=key,
        filters=filters,
        window=window,
        custom=custom.get(key),
        sources=chosen,
        breakdown=True,
    )
    if filters.by and filters.by not in panel.dimension_keys:
        filters.errors["by"] = f"{panel.label} has no dimension {filters.by!r}"
    context = {
        "section": "metrics",
        "title": panel.label,
        "filters": filters,
        "window": window,
        "sources": {s.id: s for s in sources_svc.list_sources(session, user=user)},
        "panel": panel,
        "granularities": GRANULARITIES,
    }
    template = "metrics/metric.html"
    if request.headers.get("hx-target") == "metric-detail":
        template = "metrics/_detail.html"
    return render(
        request,
        template,
        context,
        status_code=422 if filters.errors else 200,
        headers=_pushed(f"/metrics/m/{key}", filters, request),
    )


# ---------------------------------------------------------------- custom metrics


@router.post("/metrics/custom", name="page_metrics_custom")
def create_custom(
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    key: Annotated[str, Form(max_length=200)] = "",
    label: Annotated[str, Form(max_length=400)] = "",
    unit: Annotated[str, Form(max_length=100)] = "",
    formula: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Create a custom metric through the API's own route function; errors at the fields."""
    values = {"key": key.strip(), "label": label.strip(), "unit": unit.strip(), "formula": formula}
    errors: dict[str, str] = {}
    try:
        body = metrics_api.CustomMetricCreate.model_validate(
            {k: v for k, v in values.items() if v or k != "unit"}
        )
        metrics_api.create_metric(body, user, session, audit)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err.get("loc") else "key"
            errors.setdefault(name, str(err.get("msg", "invalid")))
    except ValidationFailedError as exc:
        errors = _field_errors(exc.errors)
    except ConflictError as exc:
        errors = {"key": exc.message}
    if errors:
        context = _custom_form_context(user, session) | {"values": values, "errors": errors}
        return render(request, "metrics/_custom_form.html", context, status_code=422)
    target = f"/metrics/m/{values['key']}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _field_errors(errors: list[FieldError]) -> dict[str, str]:
    found: dict[str, str] = {}
    for e in errors:
        found.setdefault(e.field.split(".")[0], e.message)
    return found


@router.post("/metrics/custom/{key}/delete", name="page_metrics_custom_delete")
def delete_custom(
    request: Request, key: str, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Delete a custom metric through the API's route function (a 409 while another uses it)."""
    try:
        metrics_api.delete_metric(key, user, session, audit)
    except (NotFoundError, ConflictError) as exc:
        context = _context(request, session, user, audit) | {
            "values": {},
            "errors": {},
            "custom_error": exc.message[:1].upper() + exc.message[1:] + ".",
        }
        status = 404 if isinstance(exc, NotFoundError) else 409
        return render(request, "metrics/index.html", context, status_code=status)
    return RedirectResponse("/metrics#new-custom", status_code=303)

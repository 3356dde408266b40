"""Tests (experiments): the list, a form to create one, linking data points (a source, a metric
and a range: its stored points), and the results drawn: the metric per day with the baseline
and the test window shaded, each window's value, the change and whether it is significant.

Creating, linking and the results go through the API's own route functions
(``inflow.api.routes.experiments``), called in-process: the same checks, audit events and
numbers as ``/api/tests``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from inflow.api.authz import allowed, require
from inflow.api.deps import AuditDep, SessionDep
from inflow.api.routes import experiments as tests_api
from inflow.api.services import data_points as points_svc
from inflow.api.services import experiments as svc
from inflow.api.services import metrics as metrics_svc
from inflow.api.services import sources as sources_svc
from inflow.errors import FieldError, InflowError, NotFoundError, ValidationFailedError
from inflow.storage.models import DataSource, Experiment, User
from inflow.web.charts import error_page  # also registers the chart macro's filters
from inflow.web.forms import form_day
from inflow.web.metrics import stored_metrics
from inflow.web.session import PageUser
from inflow.web.templating import render

router = APIRouter(include_in_schema=False)

STATUSES = ("draft", "running", "completed", "cancelled")
# The fields of a metric's result this page knows; any other the API adds (a method, an
# interval, a p-value) is shown as it is.
LINK_LIMIT = 5000  # points linked by one submit (the API takes up to 10,000 ids)


def _today() -> date:
    return datetime.now(UTC).date()


def _field_errors(errors: list[FieldError]) -> dict[str, str]:
    found: dict[str, str] = {}
    for e in errors:
        found.setdefault(e.field.split(".")[0], e.message)
    return found


def _pydantic_errors(exc: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for err in exc.errors():
        name = str(err["loc"][0]) if err.get("loc") else "name"
        found.setdefault(name, str(err.get("msg", "invalid")))
    return found


def _metric_choices(session: SessionDep, user: User) -> list[str]:
    stored = stored_metrics(session, list(points_svc.visible_sources(session, user)))
    custom = [m.key for m in metrics_svc.list_custom(session, owner_id=user.id)]
    return sorted(set(stored) | set(custom))


def _list_context(session: SessionDep, user: User) -> dict[str, Any]:
    tests = svc.list_tests(session, user=user)
    counts = svc.point_counts(session, [t.id for t in tests])
    return {
        "section": "tests",
        "title": "Tests",
        "tests": [tests_api.to_public(t, counts.get(t.id, 0)) for t in reversed(tests)],
        "metric_choices": _metric_choices(session, user),
        "statuses": STATUSES,
        "values": {"startDate": _today().isoformat(), "status": "running"},
        "errors": {},
    }


@router.get("/tests", name="page_tests")
def tests_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "tests/index.html", _list_context(session, user))


@router.post("/tests", name="page_tests_create")
def create_test(
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    name: Annotated[str, Form(max_length=400)] = "",
    hypothesis: Annotated[str, Form(max_length=10_000)] = "",
    metric: Annotated[str, Form(max_length=256)] = "",
    start_date: Annotated[str, Form(alias="startDate", max_length=40)] = "",
    end_date: Annotated[str, Form(alias="endDate", max_length=40)] = "",
    status: Annotated[str, Form(max_length=40)] = "running",
) -> Response:
    """Create a test through the API's route function; errors at the fields."""
    values = {
        "name": name.strip(),
        "hypothesis": hypothesis.strip(),
        "metric": metric.strip(),
        "startDate": start_date.strip(),
        "endDate": end_date.strip(),
        "status": status,
    }
    given: dict[str, Any] = {k: v for k, v in values.items() if v or k in ("name", "startDate")}
    errors: dict[str, str] = {}
    try:
        body = tests_api.ExperimentCreate.model_validate(given)
        created = tests_api.create_test(body, user, session, audit)
    except ValidationError as exc:
        errors = _pydantic_errors(exc)
        errors = _checked_fields(session, user, values) | errors  # every bad field at once
    except ValidationFailedError as exc:
        errors = _field_errors(exc.errors)
    if errors:
        context = _list_context(session, user) | {"values": values, "errors": errors}
        template = "tests/_form.html" if request.headers.get("hx-request") else "tests/index.html"
        return render(request, template, context, status_code=422)
    target = f"/tests/{created.id}"
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _checked_fields(session: SessionDep, user: User, values: dict[str, str]) -> dict[str, str]:
    """The service's checks (a known metric, the end after the start) of the values that parse,
    so a form with a missing name still names an unknown metric."""
    try:
        start = date.fromisoformat(values["startDate"])
    except ValueError:
        start = date.min
    try:
        end = date.fromisoformat(values["endDate"]) if values["endDate"] else None
    except ValueError:
        end = None
    try:
        svc.check_fields(
            session, owner_id=user.id, metric=values["metric"] or None, start=start, end=end
        )
    except ValidationFailedError as exc:
        return _field_errors(exc.errors)
    return {}


# ---------------------------------------------------------------- one test


def _reading(result: dict[str, Any]) -> str:
    """What the numbers support, in words: the API's own ``summary`` (the method, the interval
    and the p-value), or why there is nothing to compare yet."""
    baseline, during = result.get("baseline"), result.get("during")
    if during is None or during.get("value") is None:
        return "No data in the test window yet: link data points from the test's days."
    if baseline is None or baseline.get("value") is None:
        return "No baseline to compare with: link data points from the baseline's days " + (
            f"({baseline['from']} to {baseline['to']})." if baseline else "before the test."
        )
    text = str(result.get("summary") or result.get("reason") or "")
    if not during.get("complete", True):
        text += " The test window is still being counted (its last period is partial)."
    return text.strip()


def _interval(found: dict[str, Any] | None) -> str:
    """``+4.1 % to +11.7 %`` (relative), else the absolute bounds; '' without one."""
    interval = (found or {}).get("interval") or {}
    relative, absolute = interval.get("relative"), interval.get("absolute")
    if relative:
        return f"{relative[0] * 100:+.1f} % to {relative[1] * 100:+.1f} %"
    if absolute:
        return f"{absolute[0]:+,.2f} to {absolute[1]:+,.2f}"
    return ""


def _p(value: float | None) -> str:
    """``p = 0.004`` / ``p < 0.001``; '' without a p-value."""
    if value is None:
        return ""
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _n(value: float | None) -> str:
    if value is None:
        return "\u2013"  # an en dash: no value
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _chart(session: SessionDep, test: Experiment, result: dict[str, Any]) -> dict[str, Any] | None:
    """The metric per day over both windows, the windows shaded, each window's value a line."""
    baseline, during = result.get("baseline"), result.get("during")
    if during is None:
        return None
    first = date.fromisoformat((baseline or during)["from"])
    last = date.fromisoformat(during["to"])
    periods = svc.daily_series(session, test, result["metric"], first, last)
    points = [
        {
            "periodStart": p.start.isoformat(),
            "periodEnd": p.end.isoformat(),
            "value": p.value,
            "complete": p.complete,
        }
        for p in periods
    ]
    per_day = " per day" if result.get("aggregation") == "sum" else ""
    bands = []
    levels = []
    for kind, window, label in (("baseline", baseline, "Baseline"), ("test", during, "Test")):
        if window is None:
            continue
        bands.append(
            {"from": window["from"], "to": window["to"], "kind": kind, "label": f"{label} window"}
        )
        if window.get("value") is not None:
            levels.append(
                {
                    "from": window["from"],
                    "to": window["to"],
                    "value": window["value"],
                    "kind": kind,
                    "label": f"{label}: {_n(window['value'])}{per_day}",
                }
            )
    return {
        "kind": "series",
        "unit": result.get("unit"),
        "series": [{"label": f"{result['metric']} per day", "data": {"points": points}}],
        "bands": bands,
        "levels": levels,
    }


def _link_defaults(test: Experiment) -> dict[str, str]:
    """The link form's range: the baseline's first day to the test's last (or today)."""
    today = _today()
    spans = svc.windows(test, max(today, test.start_date))
    if spans is None:
        return {"from": test.start_date.isoformat(), "to": (test.end_date or today).isoformat()}
    baseline, during = spans
    return {
        "from": (baseline or during).first.isoformat(),
        "to": during.last.isoformat(),
    }


def _detail_context(
    session: SessionDep,
    user: User,
    audit: AuditDep,
    test: Experiment,
    *,
    link_values: dict[str, str] | None = None,
    link_errors: dict[str, str] | None = None,
    linked: dict[str, int] | None = None,
) -> dict[str, Any]:
    public = tests_api.get_test(test.id, user, session, audit)
    results = tests_api.results(test.id, user, session, audit).model_dump(
        mode="json", by_alias=True
    )
    shown = [
        {
            "result": result,
            "reading": _reading(result),
            "chart": _chart(session, test, result),
            "interval": _interval(result),
            "p": _p(result.get("pValue")),
            "control": result.get("control"),
            "control_interval": _interval(result.get("control")),
            "control_p": _p((result.get("control") or {}).get("pValue")),
        }
        for result in results["metrics"]
    ]
    sources = [
        s
        for s in sources_svc.list_sources(session, user=user)
        if allowed(session, user, s, "write")
    ]
    values = _link_defaults(test) | {"metric": test.metric or ""} | (link_values or {})
    spans = svc.windows(test, max(_today(), test.start_date))
    return {
        "section": "tests",
        "title": test.name,
        "test": public,
        "spans": spans,
        "results": results,
        "shown": shown,
        "guardrails": [
            {**g, "interval_text": _interval(g), "p": _p(g.get("pValue"))}
            for g in results.get("guardrails", [])
        ],
        "sources": sources,
        # only metrics with stored points can be linked (a custom metric has none of its own)
        "link_metrics": stored_metrics(session, [s.id for s in sources]),
        "link_values": values,
        "link_errors": link_errors or {},
        "linked": linked,
    }


@router.get("/tests/{test_id}", name="page_test")
def test_page(
    request: Request, test_id: uuid.UUID, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    try:
        test = require(session, user, Experiment, test_id, audit=audit, action="read")
    except NotFoundError as exc:
        return error_page(request, exc, 404, "Not Found")
    return render(request, "tests/test.html", _detail_context(session, user, audit, test))


@router.post("/tests/{test_id}/link", name="page_test_link")
def link_points(
    request: Request,
    test_id: uuid.UUID,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    source: Annotated[str, Form(max_length=64)] = "",
    metric: Annotated[str, Form(max_length=256)] = "",
    start: Annotated[str, Form(alias="from", max_length=40)] = "",
    end: Annotated[str, Form(alias="to", max_length=40)] = "",
) -> Response:
    """Link a source's stored points of a metric in a range, as ``POST /api/tests/{id}/data-points``."""
    try:
        test = require(session, user, Experiment, test_id, audit=audit)
    except NotFoundError as exc:
        return error_page(request, exc, 404, "Not Found")
    values = {"source": source, "metric": metric.strip(), "from": start, "to": end}
    errors: dict[str, str] = {}
    chosen: DataSource | None = None
    try:
        chosen = session.get(DataSource, uuid.UUID(source)) if source else None
    except ValueError:
        chosen = None
    if chosen is None or not allowed(session, user, chosen, "write"):
        errors["source"] = "choose one of your sources"
    if not values["metric"]:
        errors["metric"] = "choose a metric"
    first = form_day(start, "from", errors)
    last = form_day(end, "to", errors)
    if first and last and last < first:
        errors["to"] = "the end is before the start"
    linked: dict[str, int] | None = None
    if not errors and chosen is not None:
        rows, total = points_svc.list_points(
            session,
            source_ids=[chosen.id],
            metric=values["metric"],
            start=datetime.combine(first, datetime.min.time(), UTC) if first else None,
            end=datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
            if last
            else None,
            limit=LINK_LIMIT,
            offset=0,
        )
        if not rows:
            errors["metric"] = f"{chosen.name} has no {values['metric']} points in that range"
        else:
            try:
                answer = tests_api.link_points(
                    test.id, tests_api.PointIds(ids=[r.id for r in rows]), user, session, audit
                )
                linked = {
                    "linked": answer.linked,
                    "already": answer.already_linked,
                    "left": total - len(rows),
                }
            except InflowError as exc:
                errors["metric"] = exc.message
    context = _detail_context(
        session,
        user,
        audit,
        test,
        link_values=values,
        link_errors=errors,
        linked=linked,
    )
    template = "tests/_body.html" if request.headers.get("hx-request") else "tests/test.html"
    return render(request, template, context, status_code=422 if errors else 200)


@router.post("/tests/{test_id}/status", name="page_test_status")
def change_status(
    request: Request,
    test_id: uuid.UUID,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    status: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Change a test's status through the API's update route."""
    try:
        test = require(session, user, Experiment, test_id, audit=audit)
    except NotFoundError as exc:
        return error_page(request, exc, 404, "Not Found")
    try:
        body = tests_api.ExperimentUpdate.model_validate({"status": status})
    except ValidationError:
        context = _detail_context(session, user, audit, test) | {
            "status_error": "choose draft, running, completed or cancelled"
        }
        return render(request, "tests/test.html", context, status_code=422)
    tests_api.update_test(test.id, body, user, session, audit)
    return RedirectResponse(f"/tests/{test.id}", status_code=303)

"""Runs: the sync history of the user's sources, a run's live status, and the audit log.

| page | what it shows |
|---|---|
| ``GET /runs`` | the newest runs (filter by source and status); polls while one is active |
| ``POST /runs/sync`` | start a sync of a source (``POST /api/data-sources/{id}/sync``) |
| ``GET /runs/{id}`` | one run: status, counts, streams' checkpoints, what it waits for, its
  requests, the error and its fix; ``/live`` is the part that polls until the run ends |
| ``POST /runs/{id}/cancel`` | ask a queued or running run to stop |
| ``GET /runs/audit`` | the audit log, for admins (a member is told it is for admins) |

Each handler calls the API route's own function (``inflow.api.routes.runs``/``audit``), so the
ownership checks and audit events are the API's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from inflow.api.deps import AuditDep, SessionDep, admin_user
from inflow.api.routes import audit as audit_routes
from inflow.api.routes import runs as run_routes
from inflow.api.services import runs as run_service
from inflow.api.services.sources import list_sources
from inflow.errors import ConflictError, NotFoundError, PermissionDeniedError
from inflow.storage.models import DataSource, SyncRun
from inflow.web.session import PageUser
from inflow.web.templating import is_htmx, render

router = APIRouter(include_in_schema=False)

AUDIT_PAGE = 50
POLL = "every 2s"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def _duration(run: run_routes.RunPublic, now: datetime) -> str:
    """How long the run took (or has taken so far): ``4 s``, ``2 min 5 s``, ``1 h 3 min``."""
    if run.started_at is None:
        return "\u2013"
    seconds = int(((run.finished_at or now) - run.started_at).total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass(frozen=True)
class RunRow:
    """A run as the list and the detail page show it."""

    run: run_routes.RunPublic
    source_name: str
    duration: str
    trigger: str

    @property
    def active(self) -> bool:
        return self.run.status in run_service.ACTIVE


def _row(run: run_routes.RunPublic, names: dict[uuid.UUID, str], now: datetime) -> RunRow:
    return RunRow(
        run=run,
        source_name=names.get(run.source_id, str(run.source_id)),
        duration=_duration(run, now),
        trigger=run_service.TRIGGERS.get(run.trigger, run.trigger.capitalize()),
    )


# ---------------------------------------------------------------- the list


@router.get("/runs", name="page_runs")
def runs_page(
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    source: str = "",
    status: str = "",
) -> Response:
    """The newest runs of the user's sources; ``source``/``status`` filter them."""
    sources = list_sources(session, user=user)
    names = {s.id: s.name for s in sources}
    errors: dict[str, str] = {}
    source_id = _uuid(source) if source else None
    if source and source_id is None:
        errors["source"] = "choose a source from the list"
    if status and status not in run_service.RUN_STATUSES:
        errors["status"] = "choose a status from the list"
    runs: list[run_routes.RunPublic] = []
    code = 200
    if errors:
        code = 422
    elif source_id is not None:
        try:  # the API's list: its ownership check, its order
            runs = run_routes.list_runs(source_id, user, session, audit)
        except NotFoundError:
            errors["source"] = "no such source, or not yours to see"
            code = 404
        runs = [r for r in runs if not status or r.status == status]
    else:
        rows = run_service.visible_runs(session, user, status=status or None)
        runs = [run_routes.run_public(r) for r in rows]
    now = datetime.now(UTC)
    context: dict[str, Any] = {
        "section": "runs",
        "title": "Runs",
        "tab": "runs",
        "rows": [_row(r, names, now) for r in runs],
        "sources": sources,
        "statuses": run_service.RUN_STATUSES,
        "chosen": {"source": source, "status": status},
        "chosen_source": names.get(source_id) if source_id else None,
        "source_id": source_id if source_id in names else None,
        "errors": errors,
        "filtered": bool(source or status),
        "limit": run_service.LIST_LIMIT,
        "poll": POLL,
    }
    if is_htmx(request) and request.headers.get("hx-target") == "run-table":
        return render(request, "runs/_table.html", context, status_code=code)
    return render(request, "runs/list.html", context, status_code=code)


@router.post("/runs/sync")
def start_sync(
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    source_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Start a sync (the API's ``POST /api/data-sources/{id}/sync``), then show its run; a
    sync already queued or running is shown instead of a second one."""
    parsed = _uuid(source_id)
    if parsed is None:
        raise NotFoundError("choose a source to sync")
    try:
        queued = run_routes.sync(parsed, request, user, session, audit)
    except ConflictError:
        session.rollback()
        active = run_service.visible_runs(session, user, source_id=parsed, limit=5)
        running = next((r for r in active if r.status in run_service.ACTIVE), None)
        if running is None:
            raise
        return _redirect(request, f"/runs/{running.id}?already=1")
    return _redirect(request, f"/runs/{queued.run_id}")


def _redirect(request: Request, url: str) -> Response:
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------- the audit log


def _audit_filters(
    action: str, actor: str, before: str
) -> tuple[dict[str, str], int | None, dict[str, str]]:
    errors: dict[str, str] = {}
    action, actor = action.strip(), actor.strip()
    if len(action) > 200:
        errors["action"] = "at most 200 characters"
    if len(actor) > 320:
        errors["actor"] = "at most 320 characters"
    page_before: int | None = None
    if before:
        if before.isdigit() and 0 < int(before) <= 2**63 - 1:
            page_before = int(before)
        else:
            errors["before"] = "not a page of the log"
    return {"action": action, "actor": actor}, page_before, errors


@router.get("/runs/audit")
def audit_page(
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    action: str = "",
    actor: str = "",
    before: str = "",
) -> Response:
    """The audit log, newest first, ``AUDIT_PAGE`` events a page; for admins only."""
    context: dict[str, Any] = {"section": "runs", "title": "Audit log", "tab": "audit"}
    try:
        admin_user(user, audit, request)  # the API's check (and its audited denial)
    except PermissionDeniedError:
        return render(request, "runs/audit_denied.html", context, status_code=403)
    chosen, page_before, errors = _audit_filters(action, actor, before)
    events: list[Any] = []
    if not errors:
        events = audit_routes.list_events(
            user,
            session,
            actor=chosen["actor"] or None,
            action=chosen["action"] or None,
            limit=AUDIT_PAGE + 1,
            before=page_before,
        )
    more = len(events) > AUDIT_PAGE
    events = events[:AUDIT_PAGE]
    context |= {
        "events": events,
        "chosen": chosen,
        "errors": errors,
        "paged": page_before is not None,
        "older": events[-1].id if more and events else None,
        "filtered": bool(chosen["action"] or chosen["actor"]),
        "actions": run_service.audit_actions(session),
    }
    return render(request, "runs/audit.html", context, status_code=422 if errors else 200)


# ---------------------------------------------------------------- one run


def _run_context(
    request: Request, user: PageUser, session: SessionDep, audit: AuditDep, run_id: str
) -> dict[str, Any]:
    parsed = _uuid(run_id)
    if parsed is None:
        raise NotFoundError(f"run {run_id} not found")
    public = run_routes.get_run(parsed, user, session, audit)  # the API's check
    row = session.get(SyncRun, parsed)
    source = session.get(DataSource, public.source_id)
    if row is None or source is None:
        raise NotFoundError(f"run {run_id} not found")
    now = datetime.now(UTC)
    waiting = public.waiting or {}
    until = moment_of(waiting.get("until"))
    timeline = public.timeline or {}
    return {
        "section": "runs",
        "title": f"Run of {source.name}",
        "row": _row(public, {source.id: source.name}, now),
        "run": public,
        "source": source,
        "streams": run_service.stream_progress(session, row, source.type, public.timeline),
        "waiting": waiting,
        "waiting_until": until,
        "waiting_left": max(0, int((until - now).total_seconds())) if until else None,
        "timeline": timeline,
        "recent": list(reversed(timeline.get("recent", [])))[:10],
        "fix": run_service.fix_for(public.error) if public.status == "failed" else None,
        "cancel_asked": row.cancel_requested,
        "poll": POLL,
        "already": request.query_params.get("already") == "1",
    }


def moment_of(value: Any) -> datetime | None:
    """An ISO timestamp of a run's or backfill's JSON (a wait's ``until``), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/runs/{run_id}")
def run_page(
    request: Request, run_id: str, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    return render(request, "runs/detail.html", _run_context(request, user, session, audit, run_id))


@router.get("/runs/{run_id}/live")
def run_live(
    request: Request, run_id: str, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """The part of a run's page that changes; it polls itself until the run has ended."""
    context = _run_context(request, user, session, audit, run_id)
    return render(request, "runs/_live.html", context)


@router.post("/runs/{run_id}/cancel")
def cancel(
    request: Request, run_id: str, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Ask the run to stop (the API's ``POST /api/runs/{id}/cancel``), then show it."""
    parsed = _uuid(run_id)
    if parsed is None:
        raise NotFoundError(f"run {run_id} not found")
    run_routes.cancel_run(parsed, user, session, audit)
    session.flush()
    if is_htmx(request):  # the actions come out of band; focus goes to "Cancel requested"
        context = _run_context(request, user, session, audit, run_id)
        context["just_cancelled"] = True
        return render(request, "runs/_live.html", context)
    return RedirectResponse(f"/runs/{parsed}", status_code=303)

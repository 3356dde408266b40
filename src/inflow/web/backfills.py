"""A source's backfills on its page: the "Backfill" form (a past range of days), the
backfills with their progress (polled while one is unfinished, as a run's page polls), and
Cancel; and what the source's schedule does next (``schedule_view``).

| page | what it does |
|---|---|
| ``GET /sources/{id}/backfills`` | the list (the part that polls) |
| ``POST /sources/{id}/backfills`` | start one (``POST /api/data-sources/{id}/backfill``) |
| ``POST /backfills/{id}/cancel`` | ask one to stop (``POST /api/backfills/{id}/cancel``) |

Each handler calls the API route's own function (``inflow.api.routes.backfills``), so the
range checks (``services.backfills.start_backfill``), the ownership checks and the audit
events (``source.backfill``, ``backfill.cancel``) are the API's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.authz import require, require_of_source
from inflow.api.deps import AuditDep, SessionDep
from inflow.api.routes import backfills as backfill_routes
from inflow.api.routes.runs import _span
from inflow.api.routes.sources import Origin, schedule_waiting
from inflow.connectors import get_connector
from inflow.connectors.runtime import days_zone
from inflow.errors import ValidationFailedError
from inflow.storage.models import Backfill, DataSource
from inflow.sync.backfill import UNFINISHED, chunk_days
from inflow.web.forms import errors_by_field, form_day
from inflow.web.runs import moment_of
from inflow.web.session import PageUser
from inflow.web.templating import is_htmx, render

router = APIRouter(include_in_schema=False)

POLL = "every 2s"  # as a run's page
DEFAULT_DAYS = 28  # the form's range: four weeks up to yesterday (cut to the provider's reach)
STATE_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "waiting": "Waiting",
    "succeeded": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
STATE_BADGES = {
    "running": "info",
    "waiting": "warn",
    "succeeded": "ok",
    "failed": "bad",
}


@dataclass(frozen=True)
class BackfillRow:
    """A backfill as the source's page shows it."""

    public: backfill_routes.BackfillPublic
    cancel_requested: bool
    current_days: tuple[date, date] | None  # the current chunk's first and last day
    waiting_until: datetime | None

    @property
    def active(self) -> bool:
        return self.public.state in UNFINISHED

    @property
    def label(self) -> str:
        return STATE_LABELS.get(self.public.state, self.public.state.capitalize())

    @property
    def badge(self) -> str:
        return STATE_BADGES.get(self.public.state, "unknown")


def _zone(source: DataSource) -> tzinfo:
    return days_zone(get_connector(source.type), source.config)


def _row(public: backfill_routes.BackfillPublic, row: Backfill | None, zone: tzinfo) -> BackfillRow:
    chunk = public.current_chunk
    days = None
    if chunk is not None:  # a chunk is [start, end): its last day is the one before ``end``
        last = (chunk.end.astimezone(zone) - timedelta(microseconds=1)).date()
        days = (chunk.start.astimezone(zone).date(), last)
    waiting = public.waiting or {}
    return BackfillRow(
        public=public,
        cancel_requested=bool(row is not None and row.cancel_requested),
        current_days=days,
        waiting_until=moment_of(waiting.get("until")) if public.state == "waiting" else None,
    )


def backfill_rows(
    session: Session, user: PageUser, source: DataSource, audit: AuditDep
) -> list[BackfillRow]:
    """The source's backfills, newest first (the API's list: its check, its order)."""
    listed = backfill_routes.list_backfills(source.id, user, session, audit)
    zone = _zone(source)
    return [_row(b, session.get(Backfill, b.id), zone) for b in listed]


def default_range(source: DataSource, now: datetime | None = None) -> dict[str, str]:
    """The form's days: ``DEFAULT_DAYS`` up to yesterday, the first no older than the
    provider serves (a day of slack)."""
    connector = get_connector(source.type)
    now = now or datetime.now(UTC)
    last = now.astimezone(_zone(source)).date() - timedelta(days=1)
    first = last - timedelta(days=DEFAULT_DAYS - 1)
    history = connector.history if connector else None
    if history is not None:
        first = max(first, (now - history).astimezone(_zone(source)).date() + timedelta(days=2))
    first = min(first, last)
    return {"from": first.isoformat(), "to": last.isoformat()}


def form_context(source: DataSource) -> dict[str, Any]:
    """What the form says of the range: the source's days, chunk size, provider's reach."""
    connector = get_connector(source.type)
    history = connector.history if connector else None
    return {
        "zone": str(_zone(source)),
        "chunk_days": chunk_days(connector),
        "history": _span(history) if history is not None else None,
        "provider": connector.title if connector else source.type,
    }


def backfills_context(
    session: Session, user: PageUser, source: DataSource, audit: AuditDep
) -> dict[str, Any]:
    """The source page's backfill card: the form (its defaults) and the list."""
    return {
        "backfills": backfill_rows(session, user, source, audit),
        "backfill_range": default_range(source),
        "backfill_errors": {},
        "backfill_form": form_context(source),
        "poll": POLL,
    }


# ---------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class ScheduleView:
    """What the schedule does next: its next run, and what it waits for (a spent quota)."""

    schedule: str | None
    next_run_at: datetime | None
    paused: bool
    waiting_reason: str | None
    waiting_until: datetime | None


def schedule_view(source: DataSource) -> ScheduleView:
    waiting = schedule_waiting(source) or {}
    reason = waiting.get("reason")
    if reason:  # "provider quota: 10 of 10 calls … needs 1; the quota resets at <iso>"
        reason = reason.split("; the quota resets at")[0]
    return ScheduleView(
        schedule=source.schedule,
        next_run_at=source.next_run_at if source.schedule else None,
        paused=source.paused_at is not None,
        waiting_reason=reason or None,
        waiting_until=moment_of(waiting.get("until")),
    )


# ---------------------------------------------------------------- routes


def _card(
    request: Request,
    session: Session,
    user: PageUser,
    source: DataSource,
    audit: AuditDep,
    origin: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    started: BackfillRow | None = None,
    resumed: bool = False,
    status_code: int = 200,
) -> Response:
    if is_htmx(request):
        context = backfills_context(session, user, source, audit)
        template = "sources/_backfills.html"
    else:  # a plain form's answer: the whole page, the card with its messages
        from inflow.web.sources import page_context  # (that module shows this one's card)

        context = page_context(request, session, user, source, audit, origin)
        template = "sources/show.html"
    if values is not None:
        context["backfill_range"] = values
    context |= {
        "source": source,
        "backfill_errors": errors or {},
        "backfill_started": started,
        "backfill_resumed": resumed,
    }
    headers = None
    if started is not None and not any(r.active for r in context["backfills"]):
        headers = {"HX-Trigger": "points-stored"}  # ended already: no poll will say so
    return render(request, template, context, status_code=status_code, headers=headers)


@router.get("/sources/{source_id}/backfills")
def backfill_list(
    source_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """The source's backfills; the part of its page that polls while one is unfinished. The
    poll that sees the last one end tells the page to show the stored points again."""
    source = require(session, user, DataSource, source_id, audit=audit, action="read")
    rows = backfill_rows(session, user, source, audit)
    headers = None
    if is_htmx(request) and not any(r.active for r in rows):
        headers = {"HX-Trigger": "points-stored"}
    return render(
        request,
        "sources/_backfill_list.html",
        {"source": source, "backfills": rows, "poll": POLL},
        headers=headers,
    )


@router.post("/sources/{source_id}/backfills")
def start_backfill(
    source_id: uuid.UUID,
    request: Request,
    user: PageUser,
    session: SessionDep,
    audit: AuditDep,
    origin: Origin,
    from_date: Annotated[str, Form(max_length=40)] = "",
    to_date: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Start a backfill of the form's range (or resume the same range's unfinished one)."""
    source = require(session, user, DataSource, source_id, audit=audit)
    values = {"from": from_date, "to": to_date}
    errors: dict[str, str] = {}
    first = form_day(from_date, "from", errors)
    last = form_day(to_date, "to", errors)
    for name, day in (("from", first), ("to", last)):
        if day is None and name not in errors:
            errors[name] = "required"
    if first is not None and last is not None and not errors:
        body = backfill_routes.BackfillRequest.model_validate({"from": first, "to": last})
        known = set(session.scalars(select(Backfill.id).where(Backfill.source_id == source_id)))
        try:
            public = backfill_routes.start(source_id, body, request, user, session, audit)
        except ValidationFailedError as exc:
            errors = errors_by_field(exc.errors)
        else:
            if not is_htmx(request):
                return RedirectResponse(f"/sources/{source_id}#backfills", status_code=303)
            row = _row(public, session.get(Backfill, public.id), _zone(source))
            resumed = public.id in known  # the same range's unfinished one, going on
            return _card(
                request, session, user, source, audit, origin, started=row, resumed=resumed
            )
    return _card(
        request, session, user, source, audit, origin, values=values, errors=errors, status_code=422
    )


@router.post("/backfills/{backfill_id}/cancel")
def cancel_backfill(
    backfill_id: uuid.UUID, request: Request, user: PageUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Ask the backfill to stop: at once when no chunk is being read, else after it."""
    found = require_of_source(session, user, Backfill, backfill_id, audit=audit, action="write")
    source_id = found.source_id
    backfill_routes.cancel_backfill(backfill_id, user, session, audit)
    session.flush()
    if not is_htmx(request):
        return RedirectResponse(f"/sources/{source_id}#backfills", status_code=303)
    source = session.get_one(DataSource, source_id)
    rows = backfill_rows(session, user, source, audit)
    return render(
        request,
        "sources/_backfill_list.html",
        {"source": source, "backfills": rows, "poll": POLL},
    )

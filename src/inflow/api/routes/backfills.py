"""Backfills: a past range of a source read again in chunks, with progress and cancel."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field
from sqlalchemy import select

from inflow.api.authz import require, require_of_source
from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.api.routes.runs import _worker
from inflow.api.schemas import Day, Schema
from inflow.api.services.backfills import start_backfill
from inflow.storage.models import Backfill, DataSource
from inflow.sync import backfill as service

router = APIRouter(tags=["backfills"])


class BackfillRequest(Schema):
    first: Day = Field(alias="from", description="The first day (the source's own days).")
    last: Day = Field(alias="to", description="The last day, included.")


class ChunkPublic(Schema):
    seq: int
    start: datetime
    end: datetime
    state: str  # pending | running | done | failed | cancelled
    points: int  # data points created or updated


class BackfillPublic(Schema):
    id: uuid.UUID
    source_id: uuid.UUID
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    state: str  # queued | running | waiting | succeeded | failed | cancelled
    chunks_done: int
    chunks_total: int
    current_chunk: ChunkPublic | None  # the chunk being read, else the next to read
    chunks: list[ChunkPublic]
    waiting: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: datetime
    finished_at: datetime | None


def backfill_public(backfill: Backfill) -> BackfillPublic:
    chunks = [
        ChunkPublic(seq=c.seq, start=c.start, end=c.end, state=c.state, points=c.points)
        for c in backfill.chunks
    ]
    current = next((c for c in chunks if c.state == "running"), None)
    if current is None and backfill.state not in service.FINAL:
        current = next((c for c in chunks if c.state == "pending"), None)
    return BackfillPublic.model_validate(
        {
            "id": backfill.id,
            "source_id": backfill.source_id,
            "from": backfill.first_day,
            "to": backfill.last_day,
            "state": backfill.state,
            "chunks_done": sum(c.state == "done" for c in chunks),
            "chunks_total": len(chunks),
            "current_chunk": current,
            "chunks": chunks,
            "waiting": backfill.waiting,
            "error": backfill.error,
            "created_at": backfill.created_at,
            "finished_at": backfill.finished_at,
        }
    )


@router.post(
    "/api/data-sources/{source_id}/backfill",
    status_code=202,
    operation_id="data-sources-backfill",
)
def start(
    source_id: uuid.UUID,
    body: BackfillRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
) -> BackfillPublic:
    """Read a past range of days again, in chunks that run one after another in the background."""
    source = require(session, user, DataSource, source_id, audit=audit)
    backfill, new = start_backfill(
        session, source=source, first=body.first, last=body.last, created_by=user.email
    )
    audit(
        "source.backfill",
        target=f"data_sources:{source_id}",
        details={
            "backfillId": str(backfill.id),
            "from": body.first.isoformat(),
            "to": body.last.isoformat(),
            "chunks": len(backfill.chunks),
            "resumed": not new,
        },
    )
    session.commit()
    _worker(request).backfill(backfill.id, source.id)
    return backfill_public(backfill)


@router.get("/api/data-sources/{source_id}/backfills", operation_id="data-sources-backfills")
def list_backfills(
    source_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> list[BackfillPublic]:
    """The source's backfills, newest first, with their progress."""
    require(session, user, DataSource, source_id, audit=audit, action="read")
    rows = session.execute(
        select(Backfill)
        .where(Backfill.source_id == source_id)
        .order_by(Backfill.created_at.desc())
        .limit(100)
    ).scalars()
    return [backfill_public(b) for b in rows]


@router.get("/api/backfills/{backfill_id}", operation_id="backfills-get")
def get_backfill(
    backfill_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> BackfillPublic:
    """A backfill's progress: chunks done of the total, the current chunk, its state."""
    return backfill_public(require_of_source(session, user, Backfill, backfill_id, audit=audit))


@router.post(
    "/api/backfills/{backfill_id}/cancel", status_code=202, operation_id="backfills-cancel"
)
def cancel_backfill(
    backfill_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> BackfillPublic:
    """Stop a backfill: at once when no chunk is being read, else after the current chunk."""
    backfill = require_of_source(session, user, Backfill, backfill_id, audit=audit, action="write")
    service.cancel(backfill)
    audit("backfill.cancel", target=f"backfills:{backfill_id}")
    return backfill_public(backfill)

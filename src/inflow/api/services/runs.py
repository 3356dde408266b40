"""Sync runs as people read them: the runs of the sources a user may see, how far each stream
of a run got (its checkpoint), and what to do about a run that failed.

The API's run routes (``inflow.api.routes.runs``) check ownership of one run or one source;
``visible_runs`` is their list across every source the user may read (the same rule as
``authz.allowed``: an admin sees all, a member their own sources). ``fix_for`` reads the error
a run stored (``type``, ``fault``, ``message``, from ``inflow.errors``) and says what to do.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.connectors import get_connector
from inflow.storage.models import (
    AuditEvent,
    DataSource,
    Role,
    RunStatus,
    StreamState,
    SyncRun,
    User,
)

RUN_STATUSES = tuple(s.value for s in RunStatus)
ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
TRIGGERS = {
    "manual": "Manual",
    "schedule": "Schedule",
    "webhook": "Webhook",
    "marketplace": "Marketplace",
    "demo": "Demo",
    "backfill": "Backfill",  # a chunk of a backfill (sync/backfill.py) holding the source
}
LIST_LIMIT = 100  # the API's list of a source's runs stops at 100 too


def visible_runs(
    session: Session,
    user: User,
    *,
    source_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = LIST_LIMIT,
) -> list[SyncRun]:
    """The newest runs of the sources ``user`` may read, optionally of one source or status."""
    stmt = (
        select(SyncRun)
        .join(DataSource, DataSource.id == SyncRun.source_id)
        .order_by(SyncRun.created_at.desc(), SyncRun.id)
        .limit(limit)
    )
    if user.role != Role.ADMIN:
        stmt = stmt.where(DataSource.owner_id == user.id)
    if source_id is not None:
        stmt = stmt.where(SyncRun.source_id == source_id)
    if status:
        stmt = stmt.where(SyncRun.status == status)
    return list(session.execute(stmt).scalars())


StreamStep = Literal["done", "reading", "stopped", "pending", "not read"]


def audit_actions(session: Session, limit: int = 200) -> list[str]:
    """The actions the audit log holds (for the filter's suggestions), alphabetically."""
    stmt = select(AuditEvent.action).distinct().order_by(AuditEvent.action).limit(limit)
    return list(session.execute(stmt).scalars())


@dataclass(frozen=True)
class StreamProgress:
    """One stream of a run's source: where the run is with it, the requests of it in the run's
    timeline (its latest requests), and its last checkpoint (incremental streams only)."""

    name: str
    step: StreamStep
    requests: int
    checkpoint_at: datetime | None
    in_this_run: bool
    incremental: bool


def _path_pattern(path: str) -> re.Pattern[str]:
    """A stream's path (``/v1/accounts/{parent.id}/calls``) as a pattern of request paths."""
    plain = urlsplit(path).path if "://" in path else path
    parts = re.split(r"\{[^}]*\}", plain.rstrip("/"))
    return re.compile("[^/]+".join(re.escape(p) for p in parts) + "/?$")


def run_state(run: SyncRun) -> str:
    """A run's state as a reader needs it: its status (queued, running, succeeded, failed,
    cancelled, interrupted), or ``waiting`` while a queued or running run waits (for a rate
    limit, or for its retry after a transient failure; its ``waiting`` says what for and
    until when).

    Honest by construction: a run whose process died is never left ``running`` (it ends
    ``interrupted``: at once when that process was on the same host, when its worker's
    heartbeat stops in the distributed mode, or when its lease lapses), and a run that stopped
    early is never ``succeeded`` (cancelled, failed or interrupted, with what it committed)."""
    if run.status in ACTIVE and run.waiting:
        return "waiting"
    return str(run.status)


def stream_progress(
    session: Session, run: SyncRun, source_type: str, timeline: dict[str, Any] | None
) -> list[StreamProgress]:
    """The source's streams in the order the engine reads them: which are done, which one is
    being read (the one of the latest request), which are still to come; and checkpoints."""
    connector = get_connector(source_type)
    streams = [
        s
        for s in (connector.streams if connector else ())
        if s.parse is not None or s.reduce is not None
    ]
    saved = {
        row.stream: row.updated_at
        for row in session.execute(
            select(StreamState).where(StreamState.source_id == run.source_id)
        ).scalars()
    }
    patterns = [_path_pattern(s.path) for s in streams]
    counts = [0] * len(streams)
    last = -1  # the stream of the latest request
    for entry in (timeline or {}).get("recent", []):
        path = urlsplit(str(entry.get("path", ""))).path
        hit = next((i for i, p in enumerate(patterns) if p.search(path)), None)
        if hit is not None:
            counts[hit] += 1
            last = hit
    active = run.status in ACTIVE
    if last < 0 and run.status == RunStatus.RUNNING and streams:
        last = 0  # nothing stored yet: the timeline is stored with each batch; reads are in order
    started, finished = run.started_at, run.finished_at

    def step(i: int) -> StreamStep:
        if run.status == RunStatus.SUCCEEDED:
            return "done"
        if i < last:
            return "done"
        if i == last:
            return "reading" if active else "stopped"
        return "pending" if active else "not read"

    def reached(at: datetime | None) -> bool:
        return (
            started is not None
            and at is not None
            and at >= started
            and (finished is None or at <= finished)
        )

    return [
        StreamProgress(
            name=s.name,
            step=step(i),
            requests=counts[i],
            checkpoint_at=saved.get(s.name),
            in_this_run=reached(saved.get(s.name)),
            incremental=s.incremental is not None,
        )
        for i, s in enumerate(streams)
    ]


FixAction = Literal["reconnect", "settings", "sync", "none"]


@dataclass(frozen=True)
class Fix:
    """What to do about a failed run: a short action (a button's label) and why."""

    label: str
    detail: str
    action: FixAction


def fix_for(error: dict[str, Any] | None) -> Fix | None:
    """The fix for a run's stored error (``{type, fault, message, …}``), by its type, else by
    its fault (the user's, the provider's or the system's)."""
    if not error:
        return None
    kind = str(error.get("type", ""))
    fault = str(error.get("fault", "system"))
    retry_at = error.get("retryAt")
    match kind:
        case "CredentialsError":
            return Fix(
                "Reconnect",
                "The provider refused the stored credentials (wrong, expired or revoked). "
                "Enter them again, or connect again through OAuth, then sync.",
                "reconnect",
            )
        case "AccessDeniedError":
            return Fix(
                "Grant scope",
                "The credentials work but lack a permission or scope (named in the message). "
                "Grant it at the provider, reconnect, then sync.",
                "reconnect",
            )
        case "RateLimitedError":
            when = f" after {retry_at}" if retry_at else " later"
            return Fix(
                "Sync again",
                f"The provider's quota is used up. Sync again{when}; the next run resumes "
                "from the last checkpoint.",
                "sync",
            )
        case "TransientProviderError":
            return Fix(
                "Sync again",
                "The provider failed for a while (errors or timeouts, retried with back-off). "
                "Sync again later; the next run resumes from the last checkpoint.",
                "sync",
            )
        case "UnexpectedResponseError":
            return Fix(
                "Sync again",
                "The provider answered in a shape Inflow cannot read. Sync again later; if it "
                "stays, report it with the request and the problem shown here.",
                "sync",
            )
        case "RejectedRequestError":
            return Fix(
                "Check the settings",
                "The provider refused a request. Check the source's settings named in the "
                "message; if they are right, report it with this run's id.",
                "settings",
            )
        case "StateError":
            return Fix(
                "Check the settings",
                "A stored stream checkpoint cannot be used. Ask an operator to reset the "
                "stream's state, then sync.",
                "settings",
            )
        case "WorkerLost" | "ShutDown":
            return Fix(
                "Sync again",
                "Nothing failed upstream: the process running the sync stopped. Sync again; "
                "it resumes from the last checkpoint.",
                "sync",
            )
        case "VaultError":
            return Fix(
                "Ask an operator",
                "The stored credentials cannot be decrypted with the server's keys: an "
                "operator must restore the key the server had (INFLOW_SECRET_KEY or secret.key).",
                "none",
            )
    if fault == "user":
        return Fix(
            "Check the settings",
            "The source's settings need a change (see the message), then sync again.",
            "settings",
        )
    if fault == "provider":
        return Fix(
            "Sync again",
            "The provider failed. Sync again later; the next run resumes from the last checkpoint.",
            "sync",
        )
    return Fix(
        "Ask an operator",
        "Something failed inside Inflow; the server's log has the details (search for this "
        "run's id).",
        "none",
    )

"""Sync runs as people read them: the runs of the sources a user may see, how far each stream
of a run got (its checkpoint), and what to do about a run that failed.

The API's run routes (``inflow.api.routes.runs``) check ownership of one run or one source;
``visible_runs`` is their list across every source the user may read (the same rule as
``authz.allowed``: an admin sees all, a member their own sources). ``fix_for`` reads the error
a run stored (``type``, ``fault``, ``message``, from ``inflow.errors``) and says what to do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.connectors import get_connector
from inflow.storage.models import DataSource, Role, RunStatus, StreamState, SyncRun, User

RUN_STATUSES = tuple(s.value for s in RunStatus)
ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
TRIGGERS = {
    "manual": "Manual",
    "schedule": "Schedule",
    "webhook": "Webhook",
    "marketplace": "Marketplace",
    "demo": "Demo",
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


@dataclass(frozen=True)
class StreamProgress:
    """One stream of a run's source: its last checkpoint, and whether this run reached it."""

    name: str
    checkpoint_at: datetime | None
    in_this_run: bool


def stream_progress(session: Session, run: SyncRun, source_type: str) -> list[StreamProgress]:
    """The source's streams in the order the engine reads them, with their checkpoints."""
    connector = get_connector(source_type)
    names = [
        s.name
        for s in (connector.streams if connector else ())
        if s.parse is not None or s.reduce is not None
    ]
    saved = {
        row.stream: row.updated_at
        for row in session.execute(
            select(StreamState).where(StreamState.source_id == run.source_id)
        ).scalars()
    }
    names += [n for n in saved if n not in names]
    started = run.started_at
    return [
        StreamProgress(
            name=n,
            checkpoint_at=saved.get(n),
            in_this_run=started is not None
            and saved.get(n) is not None
            and saved[n] >= started
            and (run.finished_at is None or saved[n] <= run.finished_at),
        )
        for n in names
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

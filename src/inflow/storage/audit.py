"""The append-only audit log and its hash chain.

Every event stores the hash of the previous one (``prev_hash``) and its own ``hash`` over its
content and ``prev_hash``; the first event's ``prev_hash`` is 64 zeros. Appends take the
``audit_head`` row first (a row lock on PostgreSQL, the write lock on SQLite), so concurrent
writers in any number of processes extend one chain and never fork it. Triggers in the database
refuse UPDATE and DELETE on ``audit_events``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import String, select, update
from sqlalchemy.orm import Session

from inflow.storage.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64
SENSITIVE = ("password", "secret", "token", "key", "authorization", "jwt", "cookie")


def _scrub(details: dict[str, Any]) -> dict[str, Any]:
    """Drop any detail whose name suggests a secret: the audit log never holds one."""
    return {
        key: _scrub_value(value)
        for key, value in details.items()
        if not any(word in key.lower() for word in SENSITIVE)
    }


def _scrub_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _scrub(value)
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    return value


def _fit(value: str | None, column: str) -> str | None:
    """Clip to the column's length: recording must not fail (PostgreSQL refuses longer text)
    on a caller-chosen value such as a login email or a forwarded IP."""
    type_ = AuditEvent.__table__.c[column].type
    if value is None or not isinstance(type_, String) or type_.length is None:
        return value
    return value[: type_.length]


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    payload = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "ip": event.ip,
        "requestId": event.request_id,
        "details": event.details,
    }


def append_event(
    session: Session,
    *,
    action: str,
    outcome: str,
    actor: str | None = None,
    target: str | None = None,
    ip: str | None = None,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event in ``session``'s transaction (committed with the action it records)."""
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = session.execute(select(AuditHead.hash).where(AuditHead.id == 1)).scalar_one()
    at = at or utcnow()
    event = AuditEvent(
        # it is read back in UTC, so it is hashed in UTC (a naive time is refused by the column)
        at=at.astimezone(UTC) if at.tzinfo is not None else at,
        actor=_fit(actor, "actor"),
        action=action,
        target=_fit(target, "target"),
        outcome=outcome,
        ip=_fit(ip, "ip"),
        request_id=_fit(request_id, "request_id"),
        details=_scrub(details or {}),
        prev_hash=head,
    )
    event.hash = event_hash(head, _fields(event))
    session.add(event)
    session.flush()
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=event.hash))
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    problem: str | None = None
    event_id: int | None = None


def verify_chain(session: Session) -> ChainReport:
    """Walk the chain from the first event: every hash must match and every event be on it."""
    prev = GENESIS
    count = 0
    stmt = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)
    # "with": an early return must close the cursor (a server-side one on PostgreSQL)
    with session.execute(stmt).scalars() as events:
        for event in events:
            count += 1
            if event.prev_hash != prev:
                return ChainReport(False, count, "broken link: prev_hash does not match", event.id)
            if event_hash(event.prev_hash, _fields(event)) != event.hash:
                return ChainReport(False, count, "content altered: hash does not match", event.id)
            prev = event.hash
    head = session.execute(select(AuditHead.hash).where(AuditHead.id == 1)).scalar_one()
    if head != prev:
        return ChainReport(False, count, "the chain's tip does not match the recorded head")
    return ChainReport(True, count)

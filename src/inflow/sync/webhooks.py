"""Pushed events: verify, refuse replays, store through the sync's own upsert.

`receive` runs in the request: the connector's `Webhook.verify` checks the provider's signature
(or token) against the source's decrypted config; each event is then checked for staleness and
recorded by id in one transaction with its records, so a replayed event (same id) or a stale one
is refused and nothing changes. An event that asks for its period to be read again (a call
changed: the day's totals come from the provider's call log) is handed back to the caller, who
runs `resync` in the background; the worker coalesces a burst of events for one day into one
read.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from inflow.bounds import DATE_RANGE, END_MOMENT, MIN_MOMENT
from inflow.connectors import get_connector
from inflow.connectors.answers import SHAPE_ERRORS
from inflow.connectors.records import DataPoint
from inflow.connectors.spec import WebhookEvent as Event
from inflow.connectors.spec import WebhookReply, WebhookRequest, Window
from inflow.errors import BadRequestError, NotFoundError, WebhookSignatureError
from inflow.logging import get_logger
from inflow.storage import repo
from inflow.storage.crypto import Vault
from inflow.storage.models import DataSource, WebhookEvent
from inflow.sync.engine import EngineDeps, decrypted_config, fetch_points

log = get_logger(__name__)
KEEP = timedelta(days=7)  # event ids are remembered this long (far past any provider's retries)


@dataclass
class Received:
    """What one accepted delivery did: events recorded, points stored, periods to read again."""

    events: int = 0
    stored: int = 0
    resync: list[Window] = field(default_factory=list)
    reply: WebhookReply | None = None


def receive(
    session: Session,
    vault: Vault,
    source_id: uuid.UUID,
    request: WebhookRequest,
    *,
    now: datetime | None = None,
) -> Received:
    """Verify and store one delivery (the caller commits); ``WebhookSignatureError`` when the
    signature is wrong or an event is replayed or stale, ``NotFoundError`` when the source does
    not exist or takes no webhooks."""
    now = now or datetime.now(UTC)
    source = session.get(DataSource, source_id)
    connector = get_connector(source.type) if source is not None else None
    if source is None or connector is None:
        raise NotFoundError(f"no data source {source_id}")
    webhook = connector.webhook
    if webhook is None:
        raise NotFoundError(f"{connector.title} sources take no webhooks")
    try:
        verified = webhook.verify(request, decrypted_config(source, connector, vault))
    except SHAPE_ERRORS as exc:  # signed or not, a payload the connector cannot read
        raise BadRequestError(
            f"the {connector.title} webhook payload is not of the expected shape "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(verified, WebhookReply):
        return Received(reply=verified)
    out = Received()
    points: list[DataPoint] = []
    for event in verified:
        _within_bounds(event, connector.title)
        if event.at is not None and abs(now - event.at) > webhook.max_age:
            raise WebhookSignatureError(
                f"event {event.id!r} was sent at {event.at.isoformat()}: older than "
                f"{int(webhook.max_age.total_seconds())} s, refused as a possible replay"
            )
        session.add(WebhookEvent(source_id=source.id, event_id=event.id[:255], received_at=now))
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            raise WebhookSignatureError(
                f"event {event.id!r} was received before: refused as a replay"
            ) from None
        points.extend(r for r in event.records if isinstance(r, DataPoint))
        if event.resync is not None and event.resync not in out.resync:
            out.resync.append(event.resync)
        out.events += 1
    if points:
        counts = repo.upsert_data_points(session, source_id=source.id, points=points)
        out.stored = counts.created + counts.updated
    session.execute(
        delete(WebhookEvent).where(
            WebhookEvent.source_id == source.id, WebhookEvent.received_at < now - KEEP
        )
    )
    return out


def _within_bounds(event: Event, provider: str) -> None:
    """An event's time and the period it asks to read again lie within Inflow's calendar."""
    moments = [event.at] if event.at is not None else []
    if event.resync is not None:
        moments += [event.resync.start, event.resync.end]
    for moment in moments:
        if not MIN_MOMENT <= moment <= END_MOMENT:
            raise BadRequestError(
                f"the {provider} webhook event {event.id!r} names {moment.isoformat()}: "
                f"dates must lie {DATE_RANGE}"
            )


async def resync(deps: EngineDeps, source_id: uuid.UUID, window: Window) -> int:
    """Read ``window`` again through the source's streams and upsert what it holds (the same
    path as a fetch with autoCreate); the number of points created or updated."""
    points = await fetch_points(deps, source_id, window)
    return await asyncio.to_thread(_store, deps.factory, source_id, points)


def _store(factory: sessionmaker[Session], source_id: uuid.UUID, points: list[DataPoint]) -> int:
    with factory() as session:
        counts = repo.upsert_data_points(session, source_id=source_id, points=points)
        session.commit()
    return counts.created + counts.updated

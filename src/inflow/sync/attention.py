"""Failures that get attention (docs/alerts.md).

When a run ends, ``record_outcome`` counts the source's consecutive failures (a success resets the
count; a run stopped by a rate limit or a spent provider quota is a wait, not a failure of the
source: it neither counts nor resets, and alerts nothing), pauses the source after ``pause_after`` failures in a row, and again after each further
``pause_after`` once resumed (the scheduler skips a paused source until a person resumes it),
notes when a run last stored new or changed data, and tells the alert webhook about the
transitions only (``alert``): the first failure, the pause and the recovery, never every
failure.

An alert is a JSON POST signed with HMAC-SHA256 over ``"<timestamp>.<body>"``
(``X-Inflow-Signature: sha256=<hex>``, ``X-Inflow-Timestamp: <unix seconds>``), retried with
backoff by stamina on a connection failure, a 429 or a 5xx. A webhook that stays down costs the
run nothing but a log line.

``freshness`` says when a source's data last advanced, and flags a scheduled source whose data
stopped advancing for more than ``STALE_AFTER_SLOTS`` of its schedule's slots.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import stamina

from inflow.errors import InflowError
from inflow.http.client import HttpOptions, build_client, check_url
from inflow.logging import get_logger
from inflow.storage.models import DataSource, utcnow

log = get_logger(__name__)

STALE_AFTER_SLOTS = 2  # a scheduled source is stale once this many slots passed without new data
SIGNATURE_HEADER = "X-Inflow-Signature"
TIMESTAMP_HEADER = "X-Inflow-Timestamp"
EVENT_HEADER = "X-Inflow-Event"
DELIVERY_HEADER = "X-Inflow-Delivery"


@dataclass(frozen=True)
class AlertOptions:
    """The account's alert settings (``INFLOW_ALERT_WEBHOOK_URL`` and friends)."""

    webhook_url: str | None = None
    secret: str | None = None
    pause_after: int = 5
    allow_private_urls: bool = False
    attempts: int = 5  # tries of one delivery, the first included
    # No new try after this long; with the tries' own timeouts a delivery stays well within a
    # run's lease (90 s), which it holds while the run ends.
    budget_s: float = 30.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0


# ---------------------------------------------------------------- counting, pausing


@dataclass(frozen=True)
class Outcome:
    """What a run's end changed on its source."""

    events: tuple[str, ...]  # source.failing, source.paused, source.recovered
    failures: int
    paused_reason: str | None


def record_outcome(
    source: DataSource | None,
    *,
    ok: bool,
    message: str,
    stored: bool,
    pause_after: int,
    counted: bool = True,
) -> tuple[Outcome, dict[str, Any]]:
    """Count the run's end on its source (one run per source at a time: no race on the count),
    a source of the caller's session, in its transaction; returns the outcome and the source as an alert shows it. A
    failure not ``counted`` (a rate limit or quota wait) changes nothing but when data last
    advanced. ``source`` None: deleted meanwhile, nothing to count."""
    if source is None:
        return Outcome((), 0, None), {}
    now = utcnow()
    events: list[str] = []
    before = source.consecutive_failures or 0
    if stored:
        source.data_advanced_at = now
    if ok:
        source.consecutive_failures = 0
        if before > 0 or source.paused_at is not None:
            events.append("source.recovered")
        source.paused_at = None
        source.paused_reason = None
    elif counted:
        source.consecutive_failures = before + 1
        if before == 0:
            events.append("source.failing")
        if source.paused_at is None and source.consecutive_failures % pause_after == 0:
            source.paused_at = now
            source.paused_reason = (
                f"paused after {source.consecutive_failures} failed syncs in a row; "
                f"last error: {message}"
            )[:2000]
            events.append("source.paused")
    shown = {
        "id": str(source.id),
        "name": source.name,
        "type": source.type,
        "consecutiveFailures": source.consecutive_failures,
        "paused": source.paused_at is not None,
        "pausedReason": source.paused_reason,
    }
    return Outcome(tuple(events), source.consecutive_failures, source.paused_reason), shown


def resume(source: DataSource) -> None:
    """A person resumes a paused source: the schedule runs it again at its next slot (at once
    when that passed meanwhile). The failures in a row still count until a sync succeeds (that
    success is the recovery alerted); another ``pause_after`` of them pause it again."""
    source.paused_at = None
    source.paused_reason = None


# ---------------------------------------------------------------- alerts


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"<timestamp>.<body>"`` with the shared secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class _ReceiverBusy(Exception):  # noqa: N818 - a signal to stamina's loop, never surfaced
    """The receiver answered 429 or 5xx: worth another try."""


async def _post(
    client: httpx.AsyncClient, url: str, secret: str, event: str, delivery: str, body: bytes
) -> httpx.Response:
    """One try, signed at its own time; a 429 or 5xx is ``_ReceiverBusy`` (worth another)."""
    timestamp = int(utcnow().timestamp())
    response = await client.post(
        url,
        content=body,
        headers={
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            TIMESTAMP_HEADER: str(timestamp),
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery,
        },
    )
    if response.status_code == 429 or response.status_code >= 500:
        raise _ReceiverBusy(f"the alert webhook answered {response.status_code}")
    return response


async def deliver(options: AlertOptions, event: str, payload: dict[str, Any]) -> bool:
    """POST one alert, signed, retried with backoff; True when the receiver took it (2xx)."""
    url, secret = options.webhook_url, options.secret
    if not url or not secret:
        return False
    delivery = str(uuid.uuid4())  # the same across retries: a receiver may drop duplicates
    body = orjson.dumps({"event": event, "delivery": delivery, **payload})
    http = HttpOptions(
        connect_timeout_s=options.connect_timeout_s,
        read_timeout_s=options.read_timeout_s,
        allow_private_urls=options.allow_private_urls,
    )
    source = payload["source"]["id"]
    response: httpx.Response | None = None
    try:
        await check_url(url, allow_private=options.allow_private_urls)
        async with build_client(http, headers={"Content-Type": "application/json"}) as client:
            async for attempt in stamina.retry_context(
                on=(httpx.TransportError, _ReceiverBusy),
                attempts=options.attempts,
                timeout=options.budget_s,
                wait_initial=1.0,
                wait_max=30.0,
            ):
                with attempt:
                    response = await _post(client, url, secret, event, delivery, body)
    except (httpx.HTTPError, _ReceiverBusy, InflowError) as exc:
        log.warning("alert not delivered", alert=event, source=source, error=str(exc))
        return False
    if response is not None and response.is_success:
        log.info("alert delivered", alert=event, source=source)
        return True
    status = response.status_code if response is not None else None
    log.warning("alert refused", alert=event, source=source, status=status)
    return False


async def alert(
    options: AlertOptions,
    outcome: Outcome,
    shown: dict[str, Any],
    *,
    run_id: uuid.UUID,
    ok: bool,
    message: str,
) -> None:
    """Send the alerts a run's end called for (its outcome's transitions). Never raises:
    attention must not change how the run ends."""
    for event in outcome.events:
        payload = {
            "at": utcnow().isoformat(),
            "source": shown,
            "run": {"id": str(run_id), "status": "succeeded" if ok else "failed"},
            "message": message,
        }
        await deliver(options, event, payload)


# ---------------------------------------------------------------- freshness


@dataclass(frozen=True)
class Freshness:
    last_advanced_at: datetime | None
    stale: bool
    reason: str | None


def slot_of(schedule: str, now: datetime) -> timedelta | None:
    """The length of one slot of ``schedule`` around ``now`` (None for a schedule we can't run)."""
    from inflow.sync.scheduler import next_time  # the scheduler imports the engine, which us

    try:
        first = next_time(schedule, now)
        return next_time(schedule, first) - first
    except ValueError:
        return None


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


def freshness(source: DataSource, now: datetime | None = None) -> Freshness:
    """When the source's data last advanced (the last run that stored new or changed data), and
    whether a scheduled, unpaused source went ``STALE_AFTER_SLOTS`` slots without that."""
    now = now or utcnow()
    last = source.data_advanced_at
    if not source.schedule or source.paused_at is not None:
        return Freshness(last, False, None)  # no promise to keep (a pause says why itself)
    slot = slot_of(source.schedule, now)
    if slot is None:
        return Freshness(last, False, None)
    since = last or source.created_at
    if now - since <= slot * STALE_AFTER_SLOTS:
        return Freshness(last, False, None)
    if last is None:
        reason = (
            f"no data stored in the {_ago(now - since)} since the source was created "
            f"(schedule {source.schedule})"
        )
    else:
        reason = (
            f"no new data for {_ago(now - last)}, since {last.replace(microsecond=0).isoformat()} "
            f"(schedule {source.schedule})"
        )
    return Freshness(last, True, reason)

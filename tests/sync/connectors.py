"""Test-only connectors built from the example connector (the way a third party adds one).

``WINDOWED`` is the example provider read in five-day slices from 60 days back: each slice
checkpoints on its own, so a long sync has many checkpoints to crash, cancel and resume between.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from inflow.connectors import example
from inflow.connectors.spec import (
    Connector,
    DataPoint,
    Stream,
    Webhook,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
    Window,
)
from inflow.errors import WebhookSignatureError

WINDOW = timedelta(days=5)
INITIAL = timedelta(days=60)


def _windowed(stream: Stream) -> Stream:
    inc = stream.incremental
    if inc is None:
        return stream
    return replace(stream, incremental=replace(inc, window=WINDOW, initial=INITIAL))


WINDOWED: Connector = replace(
    example.CONNECTOR,
    slug="example_windowed",
    title="Example, read in five-day windows (tests)",
    streams=tuple(_windowed(s) for s in example.CONNECTOR.streams),
)


# ---------------------------------------------------------------- a provider that pushes events

SIGNATURE = "x-example-signature"


def _verify(request: WebhookRequest, config: Any) -> list[WebhookEvent] | WebhookReply:
    """HMAC-SHA256 of the body with the API key; a ``hello`` header is a handshake."""
    if "x-example-hello" in request.headers:
        return WebhookReply(headers={"X-Example-Hello": request.headers["x-example-hello"]})
    key = config.api_key.get_secret_value().encode()
    expected = hmac.new(key, request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get(SIGNATURE, "")):
        raise WebhookSignatureError("the X-Example-Signature header does not match the body")
    events: list[WebhookEvent] = []
    for item in orjson.loads(request.body):
        day = datetime.fromisoformat(item["day"]).replace(tzinfo=UTC)
        end = day + timedelta(days=1)
        point = DataPoint("pushed", float(item["value"]), day, end) if "value" in item else None
        events.append(
            WebhookEvent(
                id=item["id"],
                at=datetime.fromtimestamp(item["at"], UTC) if "at" in item else None,
                records=(point,) if point else (),
                resync=Window(day, end) if item.get("resync") else None,
            )
        )
    return events


HOOKED: Connector = replace(
    example.CONNECTOR,
    slug="example_hooked",
    title="Example, pushing signed events (tests)",
    webhook=Webhook(verify=_verify),
)

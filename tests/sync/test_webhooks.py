"""``POST /api/webhooks/{sourceId}`` with a test connector that signs its events (HMAC of the
body with its API key): good events are stored through the upsert, a changed day is read again
in the background, and forged, replayed or stale events are 401s that change nothing."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from inflow.connectors import registry
from inflow.storage.models import AuditEvent, WebhookEvent
from tests.sync.connectors import HOOKED, SIGNATURE
from tests.sync.helpers import (
    API_KEY,
    create_source,
    days_back,
    person,
    points_of,
    sandbox_points,
)


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(registry(), HOOKED.slug, HOOKED)
    return HOOKED.slug


def _sign(body: bytes, key: str = API_KEY) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _post(client: Any, source_id: str, items: list[dict[str, Any]], *, key: str = API_KEY) -> Any:
    body = orjson.dumps(items)
    headers = {SIGNATURE: _sign(body, key), "Content-Type": "application/json"}
    return client.post(f"/api/webhooks/{source_id}", content=body, headers=headers)


def _day(days_ago: int) -> str:
    return days_back(days_ago).isoformat()


def _events(factory: Any) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookEvent)) or 0)


def test_signed_events_are_stored_and_shown_on_the_source(client, factory, hooked):
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)
    assert source["webhookUrl"] == f"http://testserver/api/webhooks/{source['id']}"

    response = _post(
        client,
        source["id"],
        [
            {"id": "evt-1", "day": _day(1), "value": 7, "at": time.time()},
            {"id": "evt-2", "day": _day(2), "value": 3},
        ],
    )

    assert response.status_code == 204, response.text
    stored = {(m, start[:10], v) for m, start, _k, v in points_of(factory, source["id"])}
    assert stored == {("pushed", _day(1), 7.0), ("pushed", _day(2), 3.0)}
    # a later event restates the day through the same upsert (one point, new value)
    assert _post(client, source["id"], [{"id": "evt-3", "day": _day(1), "value": 9}]).status_code
    stored = {(m, start[:10], v) for m, start, _k, v in points_of(factory, source["id"])}
    assert stored == {("pushed", _day(1), 9.0), ("pushed", _day(2), 3.0)}
    with factory() as session:
        actions = session.execute(
            select(AuditEvent.outcome).where(AuditEvent.action == "webhook.receive")
        ).scalars()
        assert list(actions) == ["success", "success"]


@pytest.mark.parametrize("forgery", ["wrong key", "tampered", "unsigned"])
def test_forged_events_are_refused_and_change_nothing(client, factory, hooked, forgery):
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)
    body = orjson.dumps([{"id": "evt-1", "day": _day(1), "value": 7}])
    signature = _sign(body, "sk_test_someone_else_0001")
    if forgery == "tampered":
        signature = _sign(body)
        body = body.replace(b"7", b"8")
    sent = {SIGNATURE: signature} if forgery != "unsigned" else {}

    response = client.post(f"/api/webhooks/{source['id']}", content=body, headers=sent)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert points_of(factory, source["id"]) == set()
    assert _events(factory) == 0
    with factory() as session:
        outcome = session.scalar(
            select(AuditEvent.outcome).where(AuditEvent.action == "webhook.receive")
        )
        assert outcome == "failure"


def test_a_replayed_or_stale_event_is_refused(client, factory, hooked):
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)
    event = {"id": "evt-1", "day": _day(1), "value": 7}
    assert _post(client, source["id"], [event]).status_code == 204

    replay = _post(client, source["id"], [{**event, "value": 1000}])
    stale = _post(
        client, source["id"], [{"id": "evt-2", "day": _day(1), "value": 5, "at": time.time() - 600}]
    )
    # one replayed event in a delivery refuses all of it: nothing of it is stored
    mixed = _post(client, source["id"], [{"id": "evt-3", "day": _day(3), "value": 1}, event])

    assert (replay.status_code, stale.status_code, mixed.status_code) == (401, 401, 401)
    assert "replay" in replay.json()["detail"]
    assert "older than" in stale.json()["detail"]
    assert {(start[:10], v) for _m, start, _k, v in points_of(factory, source["id"])} == {
        (_day(1), 7.0)
    }
    assert _events(factory) == 1


def test_an_event_for_a_changed_day_reads_that_day_again(client, app, factory, sb, hooked):
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)
    sb.configure(volume={"pages": 3})

    response = _post(client, source["id"], [{"id": "call-1", "day": _day(4), "resync": True}])

    assert response.status_code == 204
    app.state.worker.drain()
    # that day only, exactly what the provider serves for it
    day = days_back(4)
    assert points_of(factory, source["id"]) == sandbox_points(1, 3, day, day)


def test_a_burst_of_events_for_one_day_is_one_read(client, app, factory, sb, hooked):
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)

    for n in range(5):
        item = {"id": f"call-{n}", "day": _day(2), "resync": True}
        assert _post(client, source["id"], [item]).status_code == 204
    app.state.worker.drain()

    # one page of that day's metrics read, not five
    assert sb.stats()["byEndpoint"] == {"GET /v1/metrics": 1}


def test_a_handshake_is_answered_and_stores_nothing(client, factory, hooked):
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)

    response = client.post(
        f"/api/webhooks/{source['id']}", content=b"", headers={"X-Example-Hello": "abc123"}
    )

    assert response.status_code == 200
    assert response.headers["x-example-hello"] == "abc123"
    assert _events(factory) == 0


def test_sources_without_webhooks_and_unknown_sources_are_404(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)  # the example connector takes no webhooks
    assert "webhookUrl" not in source or source["webhookUrl"] is None

    plain = client.post(f"/api/webhooks/{source['id']}", content=b"[]")
    unknown = client.post(f"/api/webhooks/{uuid.uuid4()}", content=b"[]")

    assert (plain.status_code, unknown.status_code) == (404, 404)


def test_the_public_url_is_what_is_checked_and_shown(client, app, factory, hooked):
    app.state.settings = app.state.settings.model_copy(
        update={"public_url": "https://inflow.example.com/"}
    )
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)

    assert source["webhookUrl"] == f"https://inflow.example.com/api/webhooks/{source['id']}"


def test_old_event_ids_are_forgotten_after_a_week(client, factory, hooked):
    _, headers = person(factory)
    source = create_source(client, headers, type_=hooked)
    with factory() as session:
        session.add(
            WebhookEvent(
                source_id=uuid.UUID(source["id"]),
                event_id="ancient",
                received_at=datetime.now(UTC) - timedelta(days=8),
            )
        )
        session.commit()

    assert _post(client, source["id"], [{"id": "new", "day": _day(1), "value": 1}]).status_code

    with factory() as session:
        ids = set(session.execute(select(WebhookEvent.event_id)).scalars())
    assert ids == {"new"}

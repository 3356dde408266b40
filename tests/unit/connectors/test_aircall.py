"""Aircall's rules without a database: which calls are answered and missed, the webhook token
(constant-time, in the body), the reset header, and a day over the 10,000-call cap read in
halves by the runtime against the emulator."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from inflow.connectors.aircall import CONNECTOR, AircallConfig, normalize, until_reset, verify
from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import RateLimit, WebhookRequest, Window
from inflow.errors import BadRequestError, WebhookSignatureError
from inflow.http.client import HttpOptions
from inflow.sandbox import create_app
from inflow.sandbox.aircall import WEBHOOK_TOKEN, credentials

HOST = "http://sandbox.test"
T0 = int(datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp())


def call(**fields: Any) -> dict[str, Any]:
    base = {
        "id": 1,
        "direction": "inbound",
        "status": "done",
        "started_at": T0,
        "answered_at": T0 + 9,
        "ended_at": T0 + 160,
        "duration": 160,
        "missed_call_reason": None,
        "voicemail": None,
    }
    return {**base, **fields}


# ---------------------------------------------------------------- definitions


def test_answered_means_an_answered_at_and_talk_runs_from_it():
    got = normalize(call())

    assert got is not None
    assert (got.answered, got.missed, got.talk_seconds) == (True, False, 151.0)
    assert got.started_at == datetime.fromtimestamp(T0, UTC)


@pytest.mark.parametrize(
    ("reason", "voicemail", "outcome"),
    [
        ("out_of_opening_hours", None, "out_of_business_hours"),
        ("out_of_opening_hours", "https://x/vm.mp3", "out_of_business_hours"),
        ("short_abandoned", None, "abandoned"),
        ("abandoned_in_ivr", None, "abandoned"),
        ("abandoned_in_classic", None, "abandoned"),
        ("agents_did_not_answer", "https://x/vm.mp3", "voicemail"),
        ("no_available_agent", "https://x/vm.mp3", "voicemail"),
        ("agents_did_not_answer", None, "missed"),
        ("no_available_agent", None, "missed"),
        (None, None, "missed"),
    ],
)
def test_an_unanswered_inbound_call_takes_aircalls_analytics_outcome(reason, voicemail, outcome):
    got = normalize(call(answered_at=None, missed_call_reason=reason, voicemail=voicemail))

    assert got is not None
    assert (got.answered, got.talk_seconds, got.outcome) == (False, 0.0, outcome)
    assert got.missed is (outcome == "missed")  # "missed" as Aircall's dashboard counts it


def test_an_unanswered_outbound_call_is_neither_and_live_calls_wait():
    outbound = normalize(call(direction="outbound", answered_at=None))
    ringing = normalize(call(status="initial", answered_at=None, ended_at=None))
    talking = normalize(call(status="answered", ended_at=None))

    assert outbound is not None
    assert (outbound.answered, outbound.missed) == (False, False)
    assert ringing is None
    assert talking is None


def test_the_catalog_states_aircalls_definitions():
    text = {m.key: m.description for m in CONNECTOR.metrics}
    assert "answered_at" in text["answered_calls"]
    assert "no agent was available" in text["missed_calls"]
    assert "voicemail" in text["missed_calls"]
    assert "out_of_business_hours" in text["inbound_calls"]
    assert "ended_at - answered_at" in text["total_calls"]
    assert CONNECTOR.family == "calling"
    assert AircallConfig.model_json_schema(by_alias=True)["properties"]["platform"]["default"] == (
        "aircall"
    )


def test_the_reset_header_in_seconds_or_milliseconds():
    reset = time.time() + 30
    seconds = httpx.Response(429, headers={"X-AircallApi-Reset": str(int(reset))})
    millis = httpx.Response(429, headers={"X-AircallApi-Reset": str(int(reset * 1000))})

    assert until_reset(seconds) == pytest.approx(31, abs=1.5)
    assert until_reset(millis) == pytest.approx(31, abs=1.5)
    assert until_reset(httpx.Response(429)) is None


# ---------------------------------------------------------------- webhooks

CONFIG = AircallConfig.model_validate(credentials("https://api.aircall.io"))


def delivery(token: Any = WEBHOOK_TOKEN, **fields: Any) -> WebhookRequest:
    payload = {
        "resource": "call",
        "event": "call.ended",
        "timestamp": T0 + 200,
        "token": token,
        "data": {"id": 1849213742, "started_at": T0, "status": "done"},
        **fields,
    }
    if token is None:
        del payload["token"]
    return WebhookRequest(url="https://hub/api/webhooks/x", headers={}, body=orjson.dumps(payload))


def test_a_call_event_with_the_token_resyncs_its_day():
    (event,) = verify(delivery(), CONFIG)

    day = datetime(2026, 3, 2, tzinfo=UTC)
    assert event.resync == Window(day, day + timedelta(days=1))
    assert event.at == datetime.fromtimestamp(T0 + 200, UTC)
    assert event.id == f"call.ended:1849213742:{T0 + 200}"


@pytest.mark.parametrize(
    "token",
    [None, "", WEBHOOK_TOKEN[:-1] + "x", WEBHOOK_TOKEN + "0", 12345],
    ids=["missing", "empty", "one_char_off", "longer", "not_a_string"],
)
def test_a_wrong_or_missing_token_is_refused(token):
    with pytest.raises(WebhookSignatureError):
        verify(delivery(token), CONFIG)


def test_a_token_only_in_a_header_is_refused():
    request = delivery(None)
    in_header = WebhookRequest(request.url, {"x-aircall-token": WEBHOOK_TOKEN}, request.body)
    with pytest.raises(WebhookSignatureError):
        verify(in_header, CONFIG)


def test_a_source_without_a_webhook_token_takes_none():
    config = CONFIG.model_copy(update={"webhook_token": None})
    with pytest.raises(WebhookSignatureError):
        verify(delivery(), config)


def test_other_events_are_ignored_and_a_non_json_body_is_a_bad_request():
    assert verify(delivery(event="user.created", resource="user"), CONFIG) == []
    with pytest.raises(BadRequestError):
        verify(WebhookRequest("https://hub/x", {}, b"token=abc"), CONFIG)


# ---------------------------------------------------------------- the 10,000 cap


def test_a_day_over_the_cap_is_read_in_halves_and_reduced_whole():
    sandbox = create_app()
    with TestClient(sandbox, base_url=HOST) as http:
        volume = {"calls": 300, "days": 3, "peakCalls": 21_000, "peakDay": 1, "rateLimit": 10**6}
        assert http.post("/_sandbox/aircall/config", json={"volume": volume}).status_code == 200
    config = AircallConfig.model_validate(credentials(f"{HOST}/aircall"))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = Window(today - timedelta(days=1), today)
    connector = replace(CONNECTOR, rate_limit=RateLimit())  # the sandbox's budget is raised
    stream = connector.streams[0]
    sent: list[httpx.Request] = []
    hook_off: list[int] = []

    async def go() -> tuple[list[Any], list[Any]]:
        transport = httpx.ASGITransport(app=sandbox)

        async def hook(request: httpx.Request) -> None:
            sent.append(request)

        runtime = ConnectorRuntime(
            connector,
            config,
            options=HttpOptions(allow_private_urls=True),
            key="unit",
            transport=transport,
        )
        async with runtime:
            runtime.client.event_hooks["request"].append(hook)
            items = [i async for page in runtime.items(stream, window=day) for i in page]
            hook_off.append(len(sent))
            chunks = [c async for c in runtime.read(stream, window=day)]
        return items, chunks

    items, chunks = asyncio.run(go())

    assert len({i["id"] for i in items}) == 21_000  # not the 10,000 one query serves
    totals = {
        (p.metric, p.dimensions_key): p.value
        for c in chunks
        for p in c.records
        if p.period_start == day.start
    }
    assert totals[("total_calls", "")] == 21_000
    answered = sum(1 for i in {i["id"]: i for i in items}.values() if i["answered_at"])
    assert totals[("answered_calls", "")] == answered
    firsts = [r for r in sent[: hook_off[0]] if "page" not in r.url.params]
    spans = sorted(int(r.url.params["to"]) - int(r.url.params["from"]) for r in firsts)
    assert spans == [21_600] * 4 + [43_200] * 2 + [86_400]  # 21,000: four of ~5,250
    assert all(r.url.params["per_page"] == "50" for r in firsts)

"""The Twilio connector's own rules: X-Twilio-Signature (twilio-python's test vectors), what a
status callback becomes, the answered/missed definitions, the credential pairs, the error codes."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import Action, Kind, WebhookRequest, Window
from inflow.connectors.twilio import (
    CONNECTOR,
    TwilioConfig,
    classify,
    normalize,
    rfc2822,
    signature,
    valid_signature,
    verify,
)
from inflow.errors import WebhookSignatureError
from inflow.http.client import HttpOptions

# twilio-python tests/unit/test_request_validator.py
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
SID = "AC" + "a" * 32
CALL = "CA" + "b" * 32


def test_signature_matches_twilio_pythons_vector():
    assert signature(TOKEN, URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        pytest.param(URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", id="as_signed"),
        pytest.param(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            id="port_added_signed_without",
        ),
        pytest.param(URL, "kvajT1Ptam85bY51eRf/AJRuM3w=", id="signed_with_port_443"),
        pytest.param(
            "http://mycompany.com:80/myapp.php?foo=1&bar=2",
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            id="http_port_80",
        ),
    ],
)
def test_signature_is_valid_with_or_without_the_default_port(url, sent):
    assert valid_signature(TOKEN, url, PARAMS, b"", sent)


def test_a_json_body_is_checked_through_its_sha256():
    body = b'{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body).hexdigest()
    url = f"{URL}&bodySHA256={digest}"

    assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert valid_signature(TOKEN, url, {}, body, "a9nBmqA0ju/hNViExpshrM61xv4=")
    assert not valid_signature(TOKEN, url, {}, body + b" ", "a9nBmqA0ju/hNViExpshrM61xv4=")


@pytest.mark.parametrize(
    ("token", "params", "sent"),
    [
        pytest.param("54321", PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", id="other_token"),
        pytest.param(
            TOKEN, {**PARAMS, "Digits": "1235"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", id="param"
        ),
        pytest.param(TOKEN, PARAMS, "", id="missing"),
    ],
)
def test_a_wrong_signature_is_invalid(token, params, sent):
    assert not valid_signature(token, URL, params, b"", sent)


# The dossier's status-callback vector (same algorithm, self-computed).
HOOK_TOKEN = "0123456789abcdef0123456789abcdef"
HOOK_URL = "https://hub.example.com/webhooks/twilio/status?tenant=42"
HOOK_FORM = {
    "AccountSid": SID,
    "ApiVersion": "2010-04-01",
    "CallDuration": "42",
    "CallSid": CALL,
    "CallStatus": "completed",
    "CallbackSource": "call-progress-events",
    "Direction": "inbound",
    "From": "+15005550006",
    "SequenceNumber": "3",
    "Timestamp": "Mon, 06 Jan 2025 10:00:42 +0000",
    "To": "+15005550001",
}
HOOK_SIGNATURE = "IYNRq7u+yWGoVSxhAweuv0cpKAE="


def config(**extra: Any) -> TwilioConfig:
    return TwilioConfig.model_validate({"accountSid": SID, "authToken": HOOK_TOKEN, **extra})


def callback(form: dict[str, str] = HOOK_FORM, **headers: str) -> WebhookRequest:
    sent = {"x-twilio-signature": HOOK_SIGNATURE, **{k.lower(): v for k, v in headers.items()}}
    return WebhookRequest(url=HOOK_URL, headers=sent, body=b"", form=form)


def test_a_status_callback_reads_the_calls_day_again():
    token = "5e3a8f1c-1111-2222-3333-444455556666"
    events = verify(callback(**{"I-Twilio-Idempotency-Token": token}), config())

    assert len(events) == 1
    event = events[0]
    assert event.id == token
    assert event.at == datetime(2025, 1, 6, 10, 0, 42, tzinfo=UTC)
    assert event.resync == Window(
        datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 1, 7, tzinfo=UTC)
    )


def test_without_an_idempotency_token_the_id_is_the_call_and_its_sequence_number():
    assert verify(callback(), config())[0].id == f"{CALL}:3"


def test_a_call_that_began_before_midnight_reads_both_days():
    form = {**HOOK_FORM, "Timestamp": "Mon, 06 Jan 2025 00:10:00 +0000", "CallDuration": "900"}
    request = WebhookRequest(
        url=HOOK_URL,
        headers={"x-twilio-signature": signature(HOOK_TOKEN, HOOK_URL, form)},
        body=b"",
        form=form,
    )

    (event,) = verify(request, config())

    assert event.resync == Window(
        datetime(2025, 1, 5, tzinfo=UTC), datetime(2025, 1, 7, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(callback(**{"X-Twilio-Signature": ""}), id="unsigned"),
        pytest.param(callback({**HOOK_FORM, "CallDuration": "4200"}), id="tampered"),
        pytest.param(
            WebhookRequest(
                url=HOOK_URL.replace("42", "43"),
                headers={"x-twilio-signature": HOOK_SIGNATURE},
                body=b"",
                form=HOOK_FORM,
            ),
            id="other_url",
        ),
    ],
)
def test_forged_callbacks_raise(request_):
    with pytest.raises(WebhookSignatureError):
        verify(request_, config())


def test_an_api_key_source_cannot_verify_callbacks():
    keyed = TwilioConfig.model_validate(
        {"accountSid": SID, "apiKeySid": "SK" + "1" * 32, "apiKeySecret": "s"}
    )

    with pytest.raises(WebhookSignatureError, match="Auth Token"):
        verify(callback(), keyed)


def test_a_callback_of_another_account_is_refused():
    form = {**HOOK_FORM, "AccountSid": "AC" + "c" * 32}
    request = WebhookRequest(
        url=HOOK_URL,
        headers={"x-twilio-signature": signature(HOOK_TOKEN, HOOK_URL, form)},
        body=b"",
        form=form,
    )

    with pytest.raises(WebhookSignatureError, match="account"):
        verify(request, config())


# ---------------------------------------------------------------- answered and missed


def call(**fields: Any) -> dict[str, Any]:
    base = {
        "sid": CALL,
        "parent_call_sid": None,
        "status": "completed",
        "direction": "inbound",
        "start_time": "Fri, 18 Oct 2019 17:02:00 +0000",
        "date_created": "Fri, 18 Oct 2019 17:01:59 +0000",
        "duration": "42",
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        pytest.param({}, ("inbound", True, False, 42.0), id="inbound_completed"),
        pytest.param(
            {"status": "no-answer", "duration": None},
            ("inbound", False, True, 0.0),
            id="inbound_no_answer",
        ),
        pytest.param(
            {"status": "canceled", "duration": None},
            ("inbound", False, True, 0.0),
            id="inbound_canceled",
        ),
        pytest.param(
            {"status": "busy", "direction": "outbound-api", "duration": None},
            ("outbound", False, False, 0.0),
            id="outbound_busy_is_not_missed",
        ),
        pytest.param(
            {"direction": "outbound-api"}, ("outbound", True, False, 42.0), id="outbound_completed"
        ),
        pytest.param(
            {"direction": "trunking-originating"}, ("inbound", True, False, 42.0), id="trunk_in"
        ),
    ],
)
def test_answered_and_missed_as_twilio_defines_them(fields, want):
    got = normalize(call(**fields))

    assert got is not None
    assert (got.direction, got.answered, got.missed, got.talk_seconds) == want
    assert got.started_at == datetime(2019, 10, 18, 17, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            {"parent_call_sid": "CA" + "c" * 32, "direction": "outbound-dial"}, id="child_leg"
        ),
        pytest.param({"status": "in-progress", "duration": None}, id="in_progress"),
        pytest.param({"status": "ringing", "duration": None}, id="ringing"),
        pytest.param({"status": "queued", "start_time": None}, id="queued"),
    ],
)
def test_child_legs_and_calls_not_over_are_not_counted(fields):
    assert normalize(call(**fields)) is None


def test_a_call_that_never_started_counts_on_its_creation_day():
    got = normalize(call(status="failed", start_time=None, duration=None))

    assert got is not None
    assert got.started_at == datetime(2019, 10, 18, 17, 1, 59, tzinfo=UTC)


def test_rfc2822_reads_other_offsets_the_slow_way():
    assert rfc2822("Fri, 18 Oct 2019 19:02:00 +0200") == datetime(2019, 10, 18, 17, 2, tzinfo=UTC)
    assert rfc2822("Fri, 18 Oct 2019 17:02:00 +0000") + timedelta(0) == datetime(
        2019, 10, 18, 17, 2, tzinfo=UTC
    )


# ---------------------------------------------------------------- config and errors


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param(
            {"authToken": "t", "apiKeySid": "SK" + "1" * 32, "apiKeySecret": "s"},
            "authToken",
            id="both",
        ),
        pytest.param({}, "authToken", id="neither"),
        pytest.param({"apiKeySid": "SK" + "1" * 32}, "apiKeySecret", id="key_without_secret"),
        pytest.param({"apiKeySecret": "s"}, "apiKeySid", id="secret_without_key"),
    ],
)
def test_exactly_one_credential_pair(fields, field):
    with pytest.raises(ValidationError) as caught:
        TwilioConfig.model_validate({"accountSid": SID, **fields})

    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_the_account_sid_is_checked():
    with pytest.raises(ValidationError):
        TwilioConfig.model_validate({"accountSid": "AC123", "authToken": "t"})


def _twilio(status: int, code: int, message: str) -> httpx.Response:
    body = {"code": code, "message": message, "more_info": "", "status": status}
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "code", "action", "kind"),
    [
        pytest.param(401, 20003, Action.REFRESH_AUTH, Kind.AUTH, id="authenticate"),
        pytest.param(403, 20003, Action.REFRESH_AUTH, Kind.AUTH, id="authenticate_403"),
        pytest.param(429, 20429, Action.RATE_LIMITED, Kind.RATE_LIMITED, id="too_many"),
        pytest.param(404, 20404, Action.FAIL, Kind.NOT_FOUND, id="not_found"),
        pytest.param(400, 20001, Action.FAIL, Kind.REJECTED, id="bad_parameter"),
    ],
)
def test_twilio_error_codes(status, code, action, kind):
    found = classify(_twilio(status, code, "Authenticate"))

    assert found is not None
    assert (found.action, found.kind) == (action, kind)


def test_server_errors_fall_through_to_the_default_table():
    assert classify(_twilio(503, 20503, "Service Unavailable")) is None
    assert classify(httpx.Response(200, json={})) is None


@pytest.mark.parametrize(
    ("account_status", "ok"),
    [
        pytest.param("active", True, id="active"),
        pytest.param("suspended", False, id="suspended"),
        pytest.param("closed", False, id="closed"),
    ],
)
def test_only_an_active_account_passes_the_connection_test(account_status, ok):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/2010-04-01/Accounts/{SID}.json"
        body = {"sid": SID, "friendly_name": "Shop", "status": account_status, "type": "Full"}
        return httpx.Response(200, json=body)

    async def run() -> list[Any]:
        runtime = ConnectorRuntime(
            CONNECTOR,
            config(),
            options=HttpOptions(allow_private_urls=True),  # no DNS for api.twilio.com
            key="source",
            transport=httpx.MockTransport(handler),
        )
        async with runtime:
            return await runtime.check()

    (step,) = asyncio.run(run())

    assert (step.name, step.ok, step.reauth) == ("account", ok, False)
    assert "Shop" in step.message

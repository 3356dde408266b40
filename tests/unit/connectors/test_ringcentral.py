"""RingCentral's pieces on their own: which records are answered or missed calls, how its
errors are classified, which grant a config signs in with, and the webhook checks (handshake,
Verification-Token, the day read again)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from inflow.connectors.ringcentral import (
    RingCentralConfig,
    classify,
    normalize,
    penalty,
    sign_in,
    spent,
    verify,
)
from inflow.connectors.spec import (
    Action,
    Kind,
    OAuth2AuthorizationCode,
    OAuth2JwtBearer,
    WebhookReply,
    WebhookRequest,
    Window,
)
from inflow.errors import BadRequestError, WebhookSignatureError

TOKEN = "verify-me-0001"


def config(**extra: Any) -> RingCentralConfig:
    return RingCentralConfig(clientId="app", clientSecret="s3cret", **extra)


def record(**fields: Any) -> dict[str, Any]:
    row = {
        "id": "VgLcd1KWffJVzUA",
        "startTime": "2025-01-06T09:58:12.594Z",
        "type": "Voice",
        "direction": "Inbound",
        "result": "Accepted",
        "duration": 151,
    }
    return {**row, **fields}


# ---------------------------------------------------------------- calls


@pytest.mark.parametrize(
    ("fields", "answered", "missed", "talk"),
    [
        pytest.param({}, True, False, 151.0, id="inbound_accepted"),
        pytest.param(
            {"direction": "Outbound", "result": "Call connected"}, True, False, 151.0, id="out_ok"
        ),
        pytest.param({"result": "Missed", "duration": 24}, False, True, 0.0, id="missed_rings"),
        pytest.param({"result": "Voicemail"}, False, True, 0.0, id="voicemail"),
        pytest.param({"result": "Hang Up"}, False, True, 0.0, id="caller_hung_up"),
        pytest.param({"result": "Callback requested"}, False, True, 0.0, id="callback"),
        pytest.param(
            {"direction": "Outbound", "result": "No Answer"}, False, False, 0.0, id="out_no_answer"
        ),
        pytest.param({"result": "Call Failed"}, False, False, 0.0, id="failed"),
        pytest.param({"result": "Some New Result"}, False, False, 0.0, id="unknown_is_other"),
        pytest.param({"result": "ACCEPTED"}, True, False, 151.0, id="case_insensitive"),
    ],
)
def test_normalize_uses_ringcentrals_results(fields, answered, missed, talk):
    call = normalize(record(**fields))

    assert call is not None
    assert (call.answered, call.missed, call.talk_seconds) == (answered, missed, talk)
    assert call.started_at == datetime(2025, 1, 6, 9, 58, 12, 594000, tzinfo=UTC)
    assert call.id == "VgLcd1KWffJVzUA"


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"type": "Fax", "result": "Received"}, id="fax"),
        pytest.param({"deleted": True}, id="deleted"),
        pytest.param({"result": "In Progress"}, id="in_progress"),
        pytest.param({"finished": False}, id="not_finished"),
        pytest.param({"result": None}, id="no_result_yet"),
    ],
)
def test_normalize_skips_what_is_no_finished_call(fields):
    assert normalize(record(**fields)) is None


# ---------------------------------------------------------------- errors


def response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)


def failure(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "errorCode": code,
        "message": message,
        "errors": [{"errorCode": code, "message": message, **extra}],
    }


def test_classify_tells_a_missing_full_company_call_log_to_ask_an_admin():
    body = failure(
        "CMN-408", "user needs [FullCompanyCallLog]", permissionName="FullCompanyCallLog"
    )

    found = classify(response(403, body))

    assert found is not None
    assert (found.action, found.kind) == (Action.FAIL, Kind.PERMISSION)
    assert "administrator" in found.message
    assert "CMN-408" in found.message


def test_classify_names_a_missing_app_permission():
    body = failure("CMN-401", "needs [ReadCallLog]", permissionName="ReadCallLog")

    found = classify(response(403, body))

    assert found is not None
    assert found.kind is Kind.PERMISSION
    assert "add the app permission ReadCallLog" in found.message


@pytest.mark.parametrize(
    ("status", "body", "action", "kind"),
    [
        pytest.param(
            429,
            failure("CMN-301", "Request rate exceeded"),
            Action.RATE_LIMITED,
            Kind.RATE_LIMITED,
            id="429",
        ),
        pytest.param(
            401,
            failure("OAU-128", "Access token expired"),
            Action.REFRESH_AUTH,
            Kind.AUTH,
            id="401",
        ),
        pytest.param(
            400,
            failure("CMN-101", "Parameter [perPage] value is invalid"),
            Action.FAIL,
            Kind.REJECTED,
            id="400",
        ),
        pytest.param(
            404, failure("CMN-102", "Resource is not found"), Action.FAIL, Kind.NOT_FOUND, id="404"
        ),
    ],
)
def test_classify_by_status_and_error_code(status, body, action, kind):
    found = classify(response(status, body))

    assert found is not None
    assert (found.action, found.kind) == (action, kind)
    assert body["errorCode"] in found.message


def test_server_errors_and_successes_keep_the_default_table():
    assert classify(response(503, failure("CMN-211", "Service unavailable"))) is None
    assert classify(response(200, {"records": []})) is None


def test_a_429_without_retry_after_waits_the_groups_window():
    assert penalty(response(429, {}, **{"X-Rate-Limit-Window": "60"})) == 60.0
    assert penalty(response(429, {})) == 60.0


def test_remaining_zero_holds_the_next_request_for_the_window():
    used_up = {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Window": "60"}

    assert spent(response(200, {}, **used_up)) == 60.0
    assert spent(response(200, {}, **{**used_up, "X-Rate-Limit-Remaining": "3"})) is None
    assert spent(response(429, {}, **used_up)) is None  # Retry-After governs a 429
    assert spent(response(200, {})) is None  # no budget headers (another rate limit)


# ---------------------------------------------------------------- auth


def test_a_jwt_signs_in_with_the_jwt_bearer_grant_else_consent():
    with_jwt = sign_in(config(jwt="eyJ.jwt.sig"))
    without = sign_in(config())

    assert isinstance(with_jwt, OAuth2JwtBearer)
    assert with_jwt.auth_method == "basic"
    assert with_jwt.token_url == "{auth_url}/restapi/oauth/token"
    assert isinstance(without, OAuth2AuthorizationCode)
    assert without.authorize_url == "{auth_url}/restapi/oauth/authorize"
    assert without.revoke_url == "{auth_url}/restapi/oauth/revoke"


# ---------------------------------------------------------------- webhooks


def notification(**extra: Any) -> bytes:
    body = {
        "uuid": "5f0e2c1e-1111-4b3a-9d0e-000000000001",
        "event": "/restapi/v1.0/account/~/telephony/sessions",
        "timestamp": "2025-01-06T01:10:00.000Z",
        "subscriptionId": "sub-1",
        "ownerId": "1",
        "body": {"telephonySessionId": "s-1", "eventTime": "2025-01-06T01:09:59.000Z"},
    }
    return orjson.dumps({**body, **extra})


def request(body: bytes = b"", **headers: str) -> WebhookRequest:
    return WebhookRequest(url="https://hub.test/api/webhooks/x", headers=headers, body=body)


def test_the_validation_handshake_is_echoed():
    reply = verify(request(**{"validation-token": "abc"}), config())

    assert reply == WebhookReply(
        200, {"Validation-Token": "abc", "Content-Type": "application/json"}
    )


def test_a_telephony_event_reads_the_days_its_call_may_have_started_on():
    events = verify(
        request(notification(), **{"verification-token": TOKEN}),
        config(webhookVerificationToken=TOKEN),
    )

    assert isinstance(events, list)
    (event,) = events
    assert event.id == "5f0e2c1e-1111-4b3a-9d0e-000000000001"
    assert event.at == datetime(2025, 1, 6, 1, 10, tzinfo=UTC)
    # 01:09 on the 6th: the call may have started on the 5th (calls last up to 4 hours here)
    assert event.resync == Window(
        datetime(2025, 1, 5, tzinfo=UTC), datetime(2025, 1, 7, tzinfo=UTC)
    )


def test_other_events_are_recorded_but_read_nothing_again():
    body = notification(event="/restapi/v1.0/account/~/extension/~/message-store")

    (event,) = verify(
        request(body, **{"verification-token": TOKEN}), config(webhookVerificationToken=TOKEN)
    )

    assert event.resync is None


@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        pytest.param({"verification-token": "wrong"}, TOKEN, id="wrong_token"),
        pytest.param({}, TOKEN, id="no_token"),
        pytest.param({"verification-token": TOKEN}, None, id="source_has_none"),
    ],
)
def test_a_wrong_or_missing_verification_token_is_refused(headers, secret):
    with pytest.raises(WebhookSignatureError):
        verify(request(notification(), **headers), config(webhookVerificationToken=secret))


def test_a_body_that_is_no_notification_is_a_bad_request():
    with pytest.raises(BadRequestError):
        verify(
            request(b"not json", **{"verification-token": TOKEN}),
            config(webhookVerificationToken=SecretStr(TOKEN)),
        )

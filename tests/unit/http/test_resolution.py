"""The resolution table: every response and transport failure classified once."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from inflow import errors
from inflow.http.resolution import (
    Action,
    Kind,
    Resolution,
    classify,
    classify_exception,
    provider_message,
    to_error,
    with_retry_after,
)

REQUEST = httpx.Request("GET", "https://api.example.com/v1/items")


def response(status: int, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
    if content is not None:
        return httpx.Response(status, content=content, request=REQUEST)
    return httpx.Response(status, json=body, request=REQUEST)


def malformed_json() -> orjson.JSONDecodeError:
    try:
        orjson.loads(b'{"data": [1, 2')
    except orjson.JSONDecodeError as exc:
        return exc
    raise AssertionError("orjson accepted a truncated document")  # pragma: no cover


# ------------------------------------------------------------------ the default table


@pytest.mark.parametrize(
    ("status", "action", "kind"),
    [
        pytest.param(200, Action.OK, None, id="200"),
        pytest.param(201, Action.OK, None, id="201"),
        pytest.param(204, Action.OK, None, id="204"),
        pytest.param(301, Action.OK, None, id="301"),
        pytest.param(304, Action.OK, None, id="304"),
        pytest.param(400, Action.FAIL, Kind.REJECTED, id="400"),
        pytest.param(401, Action.REFRESH_AUTH, Kind.AUTH, id="401"),
        pytest.param(403, Action.FAIL, Kind.PERMISSION, id="403"),
        pytest.param(404, Action.FAIL, Kind.NOT_FOUND, id="404"),
        pytest.param(405, Action.FAIL, Kind.REJECTED, id="405"),
        pytest.param(408, Action.RETRY, Kind.TRANSIENT, id="408"),
        pytest.param(409, Action.FAIL, Kind.REJECTED, id="409"),
        pytest.param(410, Action.FAIL, Kind.NOT_FOUND, id="410"),
        pytest.param(422, Action.FAIL, Kind.REJECTED, id="422"),
        pytest.param(425, Action.RETRY, Kind.TRANSIENT, id="425"),
        pytest.param(426, Action.FAIL, Kind.REJECTED, id="426"),
        pytest.param(429, Action.RATE_LIMITED, Kind.RATE_LIMITED, id="429"),
        pytest.param(500, Action.RETRY, Kind.TRANSIENT, id="500"),
        pytest.param(501, Action.RETRY, Kind.TRANSIENT, id="501-other-5xx"),
        pytest.param(502, Action.RETRY, Kind.TRANSIENT, id="502"),
        pytest.param(503, Action.RETRY, Kind.TRANSIENT, id="503"),
        pytest.param(504, Action.RETRY, Kind.TRANSIENT, id="504"),
        pytest.param(599, Action.RETRY, Kind.TRANSIENT, id="599-other-5xx"),
    ],
)
def test_classify_default_table(status: int, action: Action, kind: Kind | None) -> None:
    resolution = classify(response(status, {}))
    assert (resolution.action, resolution.kind) == (action, kind)
    assert resolution.retry_after is None
    if action is Action.OK:
        assert resolution.message == ""
    else:
        assert f"({status})" in resolution.message


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        pytest.param(
            401,
            {"message": "Invalid API key"},
            "the provider refused the credentials (401): Invalid API key",
            id="401",
        ),
        pytest.param(
            403,
            {"title": "Access denied"},
            "permission denied (403): Access denied",
            id="403",
        ),
        pytest.param(
            404,
            {"message": "Dashboard not found"},
            "not found (404): Dashboard not found",
            id="404",
        ),
        pytest.param(
            429,
            {"message": "Exceeded daily limit"},
            "rate limited (429): Exceeded daily limit",
            id="429",
        ),
        pytest.param(503, None, "provider error (503)", id="503-no-detail"),
        pytest.param(400, {"detail": "bad date"}, "request rejected (400): bad date", id="400"),
    ],
)
def test_classify_messages_carry_status_and_provider_detail(
    status: int, body: Any, message: str
) -> None:
    assert classify(response(status, body)).message == message


# ------------------------------------------------------------------ overrides and classifiers


@pytest.mark.parametrize(
    ("status", "overrides", "action", "kind"),
    [
        pytest.param(404, {404: Action.IGNORE}, Action.IGNORE, None, id="ignore-404"),
        pytest.param(409, {409: Action.OK}, Action.OK, None, id="accept-409"),
        pytest.param(400, {400: Action.RETRY}, Action.RETRY, Kind.TRANSIENT, id="retry-400"),
        pytest.param(
            403, {403: Action.RATE_LIMITED}, Action.RATE_LIMITED, Kind.RATE_LIMITED, id="403-quota"
        ),
        pytest.param(
            400, {400: Action.REFRESH_AUTH}, Action.REFRESH_AUTH, Kind.AUTH, id="400-expired-token"
        ),
        pytest.param(500, {500: Action.FAIL}, Action.FAIL, Kind.PROVIDER, id="fail-500"),
        pytest.param(503, {404: Action.IGNORE}, Action.RETRY, Kind.TRANSIENT, id="other-status"),
        pytest.param(503, {}, Action.RETRY, Kind.TRANSIENT, id="empty-overrides"),
    ],
)
def test_classify_overrides(
    status: int, overrides: dict[int, Action], action: Action, kind: Kind | None
) -> None:
    resolution = classify(response(status, {"message": "why"}), overrides=overrides)
    assert (resolution.action, resolution.kind) == (action, kind)


def test_classify_override_message_keeps_status_and_detail() -> None:
    resolution = classify(response(400, {"message": "try later"}), overrides={400: Action.RETRY})
    assert resolution.message == "provider error (400): try later"
    error = to_error(resolution, slug="acme", method="GET", url="https://h/x", status=400)
    assert type(error) is errors.TransientProviderError


def ok_false(resp: httpx.Response) -> Resolution | None:
    """Slack-style: a 200 whose body says it failed."""
    body = resp.json()
    if resp.status_code == 200 and isinstance(body, dict) and body.get("ok") is False:
        return Resolution(Action.FAIL, Kind.PROVIDER, str(body.get("error")))
    return None


def graph_errors(resp: httpx.Response) -> Resolution | None:
    """Meta Graph: branch on error.code, not on the status; 190 is an invalid token."""
    error = resp.json().get("error") if resp.status_code == 400 else None
    if isinstance(error, dict) and error.get("code") == 190:
        return Resolution(Action.FAIL, Kind.AUTH, f"reconnect: {error.get('message')}")
    return None


@pytest.mark.parametrize(
    ("classifier", "resp", "action", "kind"),
    [
        pytest.param(
            ok_false,
            response(200, {"ok": False, "error": "not_authed"}),
            Action.FAIL,
            Kind.PROVIDER,
            id="200-with-error-body",
        ),
        pytest.param(ok_false, response(200, {"ok": True}), Action.OK, None, id="200-ok-body"),
        pytest.param(
            graph_errors,
            response(
                400,
                {
                    "error": {
                        "message": "Session has expired",
                        "type": "OAuthException",
                        "code": 190,
                    }
                },
            ),
            Action.FAIL,
            Kind.AUTH,
            id="graph-400-code-190",
        ),
        pytest.param(
            graph_errors,
            response(400, {"error": {"message": "Invalid parameter", "code": 100}}),
            Action.FAIL,
            Kind.REJECTED,
            id="graph-400-other-code-falls-to-table",
        ),
    ],
)
def test_classify_custom_classifier(
    classifier: Any, resp: httpx.Response, action: Action, kind: Kind | None
) -> None:
    resolution = classify(resp, classifier=classifier)
    assert (resolution.action, resolution.kind) == (action, kind)


def test_classify_custom_classifier_comes_before_overrides() -> None:
    resp = response(400, {"error": {"message": "expired", "code": 190}})
    resolution = classify(resp, overrides={400: Action.RETRY}, classifier=graph_errors)
    assert resolution.kind is Kind.AUTH
    error = to_error(resolution, slug="instagram", method="GET", url="https://h/me", status=400)
    assert type(error) is errors.CredentialsError
    assert error.message == "instagram: reconnect: expired"


# ------------------------------------------------------------------ exceptions


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        pytest.param(
            httpx.ConnectTimeout("slow", request=REQUEST),
            "timed out (ConnectTimeout)",
            id="connect-timeout",
        ),
        pytest.param(
            httpx.ReadTimeout("slow", request=REQUEST), "timed out (ReadTimeout)", id="read-timeout"
        ),
        pytest.param(httpx.PoolTimeout("busy"), "timed out (PoolTimeout)", id="pool-timeout"),
        pytest.param(
            httpx.ConnectError("refused"), "connection failed (ConnectError)", id="connect-error"
        ),
        pytest.param(httpx.ReadError("reset"), "connection failed (ReadError)", id="read-error"),
        pytest.param(
            httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ),
            "connection failed (RemoteProtocolError)",
            id="remote-protocol-error",
        ),
        pytest.param(
            httpx.DecodingError("incorrect header check"),
            "the provider sent a body that cannot be decoded",
            id="decoding-error",
        ),
        pytest.param(
            malformed_json(), "the provider sent a malformed (truncated?) body", id="json-decode"
        ),
    ],
)
def test_classify_exception_transport_failures_are_transient(exc: Exception, message: str) -> None:
    assert classify_exception(exc) == Resolution(Action.RETRY, Kind.TRANSIENT, message)


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(ValueError("ours"), id="value-error"),
        pytest.param(KeyError("ours"), id="key-error"),
        pytest.param(errors.ConfigError("ours"), id="inflow-error"),
    ],
)
def test_classify_exception_reraises_what_is_not_a_transport_failure(exc: Exception) -> None:
    with pytest.raises(type(exc)) as caught:
        classify_exception(exc)
    assert caught.value is exc


# ------------------------------------------------------------------ provider_message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"error": {"code": "X", "message": "Token expired"}},
            "Token expired",
            id="error-object-message",
        ),
        pytest.param(
            {"error": {"error_description": "bad scope"}},
            "bad scope",
            id="error-object-description",
        ),
        pytest.param(
            {"error": {"code": "PowerBINotAuthorizedException"}},
            "PowerBINotAuthorizedException",
            id="error-object-code",
        ),
        pytest.param({"error": {"code": 190, "message": ""}}, "", id="error-object-nothing-usable"),
        pytest.param(
            {"error": "invalid_grant", "error_description": "Refresh token revoked"},
            "Refresh token revoked",
            id="oauth-error-description",
        ),
        pytest.param(
            {"error": "Forbidden", "troubleshoot": "Verify your API ID"},
            "Forbidden",
            id="error-string",
        ),
        pytest.param(
            {"code": 20003, "message": "Authenticate", "status": 401}, "Authenticate", id="message"
        ),
        pytest.param({"detail": "Not enough privileges"}, "Not enough privileges", id="detail"),
        pytest.param({"title": "Access denied"}, "Access denied", id="title"),
        pytest.param({"message": "  padded  "}, "padded", id="stripped"),
        pytest.param({"message": "   ", "detail": "the detail"}, "the detail", id="blank-skipped"),
        pytest.param({"message": 42}, "", id="non-string"),
        pytest.param({"message": "x" * 400}, "x" * 300, id="shortened"),
        pytest.param([{"message": "in a list"}], "", id="list-body"),
        pytest.param("just a string", "", id="json-string-body"),
        pytest.param({}, "", id="empty-object"),
    ],
)
def test_provider_message_from_json_bodies(body: Any, expected: str) -> None:
    assert provider_message(response(400, body)) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"Service Unavailable\n", "Service Unavailable", id="plain-text"),
        pytest.param(b"y" * 500, "y" * 300, id="long-text-shortened"),
        pytest.param(b"<html><body><h1>502 Bad Gateway</h1></body></html>", "", id="html"),
        pytest.param(b"  \n<!DOCTYPE html><html></html>", "", id="html-with-doctype"),
        pytest.param(b"", "", id="empty"),
        pytest.param(b'{"message": "trunc', '{"message": "trunc', id="truncated-json-as-text"),
    ],
)
def test_provider_message_from_other_bodies(content: bytes, expected: str) -> None:
    assert provider_message(response(502, content=content)) == expected


def test_provider_message_limit() -> None:
    assert provider_message(response(400, {"message": "abcdef"}), limit=3) == "abc"


# ------------------------------------------------------------------ to_error


@pytest.mark.parametrize(
    ("kind", "cls", "fault"),
    [
        pytest.param(Kind.AUTH, errors.CredentialsError, "user", id="auth"),
        pytest.param(Kind.PERMISSION, errors.AccessDeniedError, "user", id="permission"),
        pytest.param(Kind.NOT_FOUND, errors.RejectedRequestError, "provider", id="not-found"),
        pytest.param(Kind.REJECTED, errors.RejectedRequestError, "provider", id="rejected"),
        pytest.param(Kind.RATE_LIMITED, errors.RateLimitedError, "provider", id="rate-limited"),
        pytest.param(Kind.TRANSIENT, errors.TransientProviderError, "provider", id="transient"),
        pytest.param(Kind.PROVIDER, errors.ProviderError, "provider", id="provider"),
        pytest.param(None, errors.ProviderError, "provider", id="no-kind"),
    ],
)
def test_to_error_picks_the_exception_class(
    kind: Kind | None, cls: type[errors.InflowError], fault: str
) -> None:
    resolution = Resolution(Action.FAIL, kind, "what happened")
    error = to_error(resolution, slug="acme", method="GET", url="https://h/x", status=418)
    assert type(error) is cls
    assert error.fault == fault
    assert error.message == "acme: what happened"
    assert str(error) == "acme: what happened"
    if isinstance(error, errors.ProviderError):
        assert (error.slug, error.method, error.url, error.status) == (
            "acme",
            "GET",
            "https://h/x",
            418,
        )


def test_to_error_rate_limited_carries_retry_after() -> None:
    resolution = with_retry_after(classify(response(429, {})), 12.5)
    error = to_error(resolution, slug="acme", method="POST", url="https://h/x", status=429)
    assert isinstance(error, errors.RateLimitedError)
    assert error.retry_after == 12.5
    assert error.status == 429


def test_to_error_without_a_message() -> None:
    error = to_error(Resolution(Action.FAIL), slug="acme", method="GET", url="u", status=None)
    assert error.message == "acme: request failed"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [pytest.param(None, None, id="none-keeps"), pytest.param(3.0, 3.0, id="sets")],
)
def test_with_retry_after(seconds: float | None, expected: float | None) -> None:
    base = Resolution(Action.RATE_LIMITED, Kind.RATE_LIMITED, "slow down")
    resolution = with_retry_after(base, seconds)
    assert resolution.retry_after == expected
    assert (resolution.action, resolution.message) == (base.action, base.message)

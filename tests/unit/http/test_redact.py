"""Redaction: no secret reaches an exception message, a log line or a run's timeline."""

from __future__ import annotations

import pytest

from inflow.http.redact import MASK, Redactor, redact_headers, redact_path, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://api.example.com/v1/items?api_key=SECRET&page=2",
            "https://api.example.com/v1/items?api_key=***&page=2",
            id="api-key",
        ),
        pytest.param(
            "https://graph.example.com/me?fields=id,name&access_token=EAAB123",
            "https://graph.example.com/me?fields=id%2Cname&access_token=***",
            id="access-token",
        ),
        pytest.param(
            "https://h/cb?code=AUTHCODE&state=xyz",
            "https://h/cb?code=***&state=xyz",
            id="oauth-code",
        ),
        pytest.param(
            "https://h/x?client_secret=s&refresh_token=r&Signature=sig&apiKey=k",
            "https://h/x?client_secret=***&refresh_token=***&Signature=***&apiKey=***",
            id="several-and-case",
        ),
        pytest.param(
            "https://h/x?page_token=t&x-amz-security-token=t2&db_password=p&Subscription-Key=k",
            "https://h/x?page_token=***&x-amz-security-token=***&db_password=***&Subscription-Key=***",
            id="suffixes",
        ),
        pytest.param(
            "https://user:pa55@h.example.com:8443/x?q=1",
            "https://***@h.example.com:8443/x?q=1",
            id="userinfo",
        ),
        pytest.param(
            "https://h/x?empty=&api_key=",
            "https://h/x?empty=&api_key=***",
            id="blank-values",
        ),
        pytest.param("https://h/x", "https://h/x", id="no-query"),
        pytest.param(
            "https://h/x?date=2025-01-01&metric=visits",
            "https://h/x?date=2025-01-01&metric=visits",
            id="nothing-secret",
        ),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_path_keeps_path_and_redacted_query() -> None:
    assert redact_path("https://u:p@h/v1/x?token=abc&n=1") == "/v1/x?token=***&n=1"
    assert redact_path("https://h/v1/x") == "/v1/x"


def test_redact_headers() -> None:
    headers = {
        "Authorization": "Bearer abc",
        "X-Api-Key": "k",
        "Ocp-Apim-Subscription-Key": "k2",
        "Cookie": "sid=1",
        "X-Auth-Token": "t",
        "Accept": "application/json",
        "User-Agent": "inflow",
    }
    assert redact_headers(headers) == {
        "Authorization": MASK,
        "X-Api-Key": MASK,
        "Ocp-Apim-Subscription-Key": MASK,
        "Cookie": MASK,
        "X-Auth-Token": MASK,
        "Accept": "application/json",
        "User-Agent": "inflow",
    }


def test_redact_headers_from_pairs() -> None:
    pairs = [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("content-type", "text/plain")]
    assert redact_headers(pairs) == {"set-cookie": MASK, "content-type": "text/plain"}


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        pytest.param(
            ["SECRET-123"],
            'invalid key "SECRET-123" for account 9',
            'invalid key "***" for account 9',
            id="echoed",
        ),
        pytest.param(["SECRET-123"], "SECRET-123 SECRET-123", "*** ***", id="every-occurrence"),
        pytest.param(
            ["abcd", "abcdefgh"], "token abcdefgh and abcd", "token *** and ***", id="longest-first"
        ),
        pytest.param(["a.b*c"], "value a.b*c and aXbbc", "value *** and aXbbc", id="literal"),
        pytest.param(
            ["k+y/Z=="], "GET /x?hapikey=k%2By%2FZ%3D%3D", "GET /x?hapikey=***", id="url-encoded"
        ),
        pytest.param(["two words"], "q=two+words", "q=***", id="form-encoded"),
        pytest.param(["abc", "", "xy"], "abc xy", "abc xy", id="too-short-to-mask"),
        pytest.param([], "nothing to hide", "nothing to hide", id="no-secrets"),
    ],
)
def test_redactor_masks_known_secret_values(secrets: list[str], text: str, expected: str) -> None:
    assert Redactor(secrets)(text) == expected

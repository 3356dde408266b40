"""OAuth client side: token-endpoint client auth, RFC 6749 error classification, the
authorization URL with state and PKCE, the code exchange."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from inflow import errors
from inflow.http.oauth import (
    OAuthClient,
    exchange_code,
    oauth_error_classifier,
    start_authorization,
)
from inflow.http.resolution import Action, Kind

from .mocks import Recorder, Reply, make_requester

TOKEN_URL = "https://auth.example.com/oauth/token"
TOKENS = Reply(200, {"access_token": "a1", "refresh_token": "r1", "expires_in": 3600})


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    ("client", "authorization", "fields"),
    [
        pytest.param(
            OAuthClient(TOKEN_URL, "cid", "csecret"),
            basic("cid", "csecret"),
            {},
            id="basic",
        ),
        pytest.param(
            OAuthClient(TOKEN_URL, "cid", "csecret", auth_method="post"),
            None,
            {"client_id": "cid", "client_secret": "csecret"},
            id="post",
        ),
        pytest.param(
            OAuthClient(TOKEN_URL, "cid", None, auth_method="basic"),
            None,
            {"client_id": "cid"},
            id="public-client",
        ),
        pytest.param(
            OAuthClient(
                TOKEN_URL, "cid", "csecret", extra={"resource": "https://analysis.windows.net"}
            ),
            basic("cid", "csecret"),
            {"resource": "https://analysis.windows.net"},
            id="extra-fields",
        ),
    ],
)
@pytest.mark.anyio
async def test_oauth_client_token_request_client_auth(
    client: OAuthClient, authorization: str | None, fields: dict[str, str]
) -> None:
    endpoint = Recorder(TOKENS)
    request_token = client.token_request(make_requester(endpoint))
    tokens = await request_token({"grant_type": "client_credentials"})
    assert (tokens.access_token, tokens.refresh_token) == ("a1", "r1")
    [request] = endpoint.requests
    assert request.method == "POST"
    assert str(request.url) == TOKEN_URL
    assert request.headers["Accept"] == "application/json"
    assert request.headers.get("Authorization") == authorization
    assert form(request) == {"grant_type": "client_credentials", **fields}


@pytest.mark.anyio
async def test_oauth_client_token_request_needs_a_json_object() -> None:
    request_token = OAuthClient(TOKEN_URL, "cid", "s").token_request(
        make_requester(Recorder(Reply(200, ["a1"])))
    )
    with pytest.raises(errors.UnexpectedResponseError, match="not a token"):
        await request_token({"grant_type": "client_credentials"})


@pytest.mark.anyio
async def test_exchange_code_posts_the_authorization_code_grant() -> None:
    endpoint = Recorder(TOKENS)
    request_token = OAuthClient(TOKEN_URL, "cid", "csecret", auth_method="post").token_request(
        make_requester(endpoint)
    )
    tokens = await exchange_code(
        request_token, code="c0de", code_verifier="v" * 64, redirect_uri="https://inflow.local/cb"
    )
    assert tokens.access_token == "a1"
    assert tokens.expires_at is not None
    assert form(endpoint.requests[0]) == {
        "grant_type": "authorization_code",
        "code": "c0de",
        "code_verifier": "v" * 64,
        "redirect_uri": "https://inflow.local/cb",
        "client_id": "cid",
        "client_secret": "csecret",
    }


# ------------------------------------------------------------------ error classification


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(
            400,
            {"error": "invalid_grant", "error_description": "expired"},
            (Action.FAIL, Kind.AUTH, "reconnect the source"),
            id="invalid-grant",
        ),
        pytest.param(
            401,
            {"error": "invalid_client"},
            (Action.FAIL, Kind.AUTH, "check the client id and secret"),
            id="invalid-client",
        ),
        pytest.param(
            400,
            {"error": "unauthorized_client"},
            (Action.FAIL, Kind.AUTH, "check the client id and secret"),
            id="unauthorized-client",
        ),
        pytest.param(
            400,
            {"error": "invalid_scope", "error_description": None},
            (Action.FAIL, Kind.AUTH, "invalid_scope (the OAuth client"),
            id="invalid-scope",
        ),
        pytest.param(400, {"error": "invalid_request"}, None, id="invalid-request-to-the-table"),
        pytest.param(400, ["invalid_grant"], None, id="not-an-object"),
        pytest.param(400, b"<html>Bad Request</html>", None, id="not-json"),
        pytest.param(500, {"error": "invalid_grant"}, None, id="other-status"),
        pytest.param(200, {"access_token": "a"}, None, id="success"),
    ],
)
def test_oauth_error_classifier(
    status: int, body: Any, expected: tuple[Action, Kind, str] | None
) -> None:
    content = body if isinstance(body, bytes) else None
    response = httpx.Response(status, json=None if content else body, content=content)
    resolution = oauth_error_classifier(response)
    if expected is None:
        assert resolution is None
    else:
        assert resolution is not None
        assert (resolution.action, resolution.kind) == expected[:2]
        assert expected[2] in resolution.message


# ------------------------------------------------------------------ the authorization URL


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def test_start_authorization_builds_the_url_with_state_and_pkce() -> None:
    start = start_authorization(
        "https://www.linkedin.com/oauth/v2/authorization",
        client_id="cid",
        redirect_uri="https://inflow.local/oauth/callback",
        scopes=["r_organization_social", "rw_organization_admin"],
        extra_params={"prompt": "consent"},
    )
    parts = urlsplit(start.url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "www.linkedin.com",
        "/oauth/v2/authorization",
    )
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert params == {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": "https://inflow.local/oauth/callback",
        "state": start.state,
        "code_challenge": s256(start.code_verifier),
        "code_challenge_method": "S256",
        "scope": "r_organization_social rw_organization_admin",
        "prompt": "consent",
    }
    assert len(start.state) >= 32
    assert 43 <= len(start.code_verifier) <= 128  # RFC 7636 §4.1
    assert re.fullmatch(r"[A-Za-z0-9\-._~]+", start.code_verifier)


def test_start_authorization_without_scopes_and_with_a_query() -> None:
    start = start_authorization(
        "https://login.example.com/authorize?tenant=t1",
        client_id="cid",
        redirect_uri="https://i/cb",
    )
    params = parse_qs(urlsplit(start.url).query)
    assert params["tenant"] == ["t1"]
    assert "scope" not in params
    assert params["code_challenge"] == [s256(start.code_verifier)]


def test_start_authorization_is_fresh_every_time() -> None:
    one, two = (
        start_authorization("https://h/a", client_id="c", redirect_uri="https://i/cb")
        for _ in range(2)
    )
    assert one.state != two.state
    assert one.code_verifier != two.code_verifier

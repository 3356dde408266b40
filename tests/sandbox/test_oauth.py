"""The emulated OAuth authorization server, through the example emulator's endpoints."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.anyio
CLIENT, SECRET = "example-client", "example-secret"
REDIRECT = "http://127.0.0.1:8000/api/oauth/callback"
TOKEN = "/example/oauth/token"
ME = "/example/v1/me"
BASIC = httpx.BasicAuth(CLIENT, SECRET)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def authorize(client: httpx.AsyncClient, **overrides: str) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "state": "xyz",
        "scope": "read",
        **overrides,
    }
    return await client.get(
        "/example/oauth/authorize", params={k: v for k, v in params.items() if v}
    )


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def get_code(client: httpx.AsyncClient) -> tuple[str, str]:
    verifier, challenge = pkce()
    r = await authorize(client, code_challenge=challenge, code_challenge_method="S256")
    params = redirect_params(r)
    assert params["state"] == "xyz"
    return params["code"], verifier


async def exchange(client: httpx.AsyncClient, code: str, verifier: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    return await client.post(TOKEN, data=form, auth=BASIC)


async def login(client: httpx.AsyncClient) -> dict:
    code, verifier = await get_code(client)
    r = await exchange(client, code, verifier)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_authorization_code_with_pkce_gives_working_tokens(client):
    tokens = await login(client)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == "read"
    assert tokens["refresh_token"]
    r = await client.get(ME, headers=bearer(tokens["access_token"]))
    assert r.status_code == 200


async def test_bad_verifier_is_invalid_grant(client):
    code, _ = await get_code(client)
    r = await exchange(client, code, "not-the-verifier-" + "x" * 30)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    assert set(r.json()) == {"error", "error_description"}
    assert r.headers["Cache-Control"] == "no-store"


async def test_code_reuse_is_invalid_grant_and_revokes_its_tokens(client):
    code, verifier = await get_code(client)
    first = await exchange(client, code, verifier)
    assert first.status_code == 200
    again = await exchange(client, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    r = await client.get(ME, headers=bearer(first.json()["access_token"]))
    assert r.status_code == 401


async def test_expired_code_is_invalid_grant(client, clock):
    code, verifier = await get_code(client)
    clock.advance(61)
    r = await exchange(client, code, verifier)
    assert r.json()["error"] == "invalid_grant"


async def test_form_client_auth_and_wrong_secret(client):
    code, verifier = await get_code(client)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    wrong = await client.post(TOKEN, data={**form, "client_id": CLIENT, "client_secret": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    basic_wrong = await client.post(TOKEN, data=form, auth=httpx.BasicAuth(CLIENT, "nope"))
    assert basic_wrong.status_code == 401
    assert "Basic" in basic_wrong.headers["WWW-Authenticate"]
    ok = await client.post(TOKEN, data={**form, "client_id": CLIENT, "client_secret": SECRET})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param({}, "invalid_request", id="pkce_missing"),
        pytest.param(
            {"code_challenge": "c" * 43, "code_challenge_method": "plain"},
            "invalid_request",
            id="pkce_plain",
        ),
        pytest.param(
            {"code_challenge": "c" * 43, "code_challenge_method": "S256", "response_type": "token"},
            "unsupported_response_type",
            id="implicit",
        ),
    ],
)
async def test_authorize_errors_redirect_back(client, overrides, error):
    params = redirect_params(await authorize(client, **overrides))
    assert params["error"] == error
    assert params["state"] == "xyz"
    assert "code" not in params


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"client_id": "stranger"}, id="unknown_client"),
        pytest.param({"redirect_uri": "javascript:alert(1)"}, id="bad_redirect"),
        pytest.param({"redirect_uri": ""}, id="no_redirect"),
    ],
)
async def test_authorize_with_bad_client_or_redirect_shows_a_page(client, overrides):
    r = await authorize(client, code_challenge="c" * 43, code_challenge_method="S256", **overrides)
    assert r.status_code == 400
    assert "location" not in r.headers
    assert "Authorization error" in r.text


async def test_refresh_rotates_and_old_refresh_token_is_rejected(client):
    tokens = await login(client)
    refreshed = await client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=BASIC,
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    reuse = await client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=BASIC,
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    again = await client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"]},
        auth=BASIC,
    )
    assert again.status_code == 200
    assert (await client.get(ME, headers=bearer(again.json()["access_token"]))).status_code == 200


async def test_client_credentials_grant(client):
    r = await client.post(TOKEN, data={"grant_type": "client_credentials"}, auth=BASIC)
    assert r.status_code == 200
    body = r.json()
    assert "refresh_token" not in body
    assert (await client.get(ME, headers=bearer(body["access_token"]))).status_code == 200


async def test_jwt_bearer_grant_accepts_only_the_issued_credential(client):
    jwt = (await client.get("/_sandbox/credentials")).json()["example"]["oauth"]["jwt"]
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ok = await client.post(TOKEN, data={"grant_type": grant, "assertion": jwt}, auth=BASIC)
    assert ok.status_code == 200
    assert (await client.get(ME, headers=bearer(ok.json()["access_token"]))).status_code == 200
    forged = jwt[:-4] + ("AAAA" if not jwt.endswith("AAAA") else "BBBB")
    bad = await client.post(TOKEN, data={"grant_type": grant, "assertion": forged}, auth=BASIC)
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"


async def test_unsupported_grant_and_repeated_parameter(client):
    r = await client.post(TOKEN, data={"grant_type": "password"}, auth=BASIC)
    assert r.json()["error"] == "unsupported_grant_type"
    repeated = await client.post(
        TOKEN, content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=BASIC,
    )  # fmt: skip
    assert repeated.json()["error"] == "invalid_request"


async def test_revoking_a_refresh_token_ends_its_access_tokens(client):
    tokens = await login(client)
    r = await client.post(
        "/example/oauth/revoke", data={"token": tokens["refresh_token"]}, auth=BASIC
    )
    assert r.status_code == 200
    denied = await client.get(ME, headers=bearer(tokens["access_token"]))
    assert denied.status_code == 401
    assert denied.json() == {"error": {"code": "unauthorized", "message": "Invalid API key"}}
    refresh = await client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=BASIC,
    )
    assert refresh.json()["error"] == "invalid_grant"
    unknown = await client.post("/example/oauth/revoke", data={"token": "nope"}, auth=BASIC)
    assert unknown.status_code == 200


async def test_token_ttl_fault_expires_access_tokens(client, clock):
    r = await client.post("/_sandbox/example/config", json={"faults": {"tokenTtlS": 5}})
    assert r.status_code == 200
    tokens = await login(client)
    assert tokens["expires_in"] == 5
    assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 200
    clock.advance(5)
    expired = await client.get(ME, headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_expired"
    assert expired.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    refreshed = await client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=BASIC,
    )
    assert (
        await client.get(ME, headers=bearer(refreshed.json()["access_token"]))
    ).status_code == 200


async def test_token_ttl_shortens_tokens_already_issued(client, clock):
    tokens = await login(client)
    await client.post("/_sandbox/example/config", json={"faults": {"tokenTtlS": 10}})
    clock.advance(11)
    r = await client.get(ME, headers=bearer(tokens["access_token"]))
    assert r.json()["error"]["code"] == "token_expired"


async def test_revoke_all_and_reset_forget_every_token(client):
    first, second = await login(client), await login(client)
    assert (await client.post("/_sandbox/example/oauth/revoke-all")).status_code == 200
    for tokens in (first, second):
        assert (await client.get(ME, headers=bearer(tokens["access_token"]))).status_code == 401
        r = await client.post(
            TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=BASIC,
        )
        assert r.json()["error"] == "invalid_grant"
    third = await login(client)
    await client.post("/_sandbox/reset")
    assert (await client.get(ME, headers=bearer(third["access_token"]))).status_code == 401

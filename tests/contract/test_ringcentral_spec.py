"""The RingCentral emulator against RingCentral's OpenAPI 3.0.3 spec (ringcentral-openapi.yaml):
the account, call-log pages (Simple and Detailed, an empty one, showDeleted), token responses
of the JWT, authorization-code and refresh grants, and the error bodies the spec documents
(OAuth 400, call-log 400 and 403). The spec documents no body for the call log's 429; its shape
is checked in tests/providers/test_ringcentral.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from inflow.sandbox import create_app
from inflow.sandbox.ringcentral import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAUTH,
    USER_CLIENT_ID,
    USER_CLIENT_SECRET,
)
from tests.contract.spec import load, validate_response

pytestmark = pytest.mark.anyio
SPEC = "ringcentral-openapi.yaml"
ROOT = "/ringcentral"
ACCOUNT = "/restapi/v1.0/account/{accountId}"
CALL_LOG = "/restapi/v1.0/account/{accountId}/call-log"
TOKEN = "/restapi/oauth/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REDIRECT = "http://127.0.0.1:8000/api/oauth/ringcentral/callback"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        volume = {"calls": 3_000, "days": 5, "revision": 3, "rateWindowS": 0}
        await client.post("/_sandbox/ringcentral/config", json={"volume": volume})
        yield client


async def token(
    http: httpx.AsyncClient, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET, **form: str
) -> httpx.Response:
    data = form or {"grant_type": JWT_GRANT, "assertion": OAUTH.jwt_credential(client_id)}
    return await http.post(ROOT + TOKEN, data=data, auth=(client_id, secret))


async def bearer(http: httpx.AsyncClient, client_id: str = CLIENT_ID) -> dict[str, str]:
    secret = CLIENT_SECRET if client_id == CLIENT_ID else USER_CLIENT_SECRET
    body = (await token(http, client_id, secret)).json()
    return {"Authorization": f"Bearer {body['access_token']}"}


def check(path: str, response: httpx.Response, method: str = "GET") -> Any:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    validate_response(SPEC, method, path, response.status_code, body)
    return body


def test_the_emulated_endpoints_are_in_the_spec_with_their_groups():
    paths = load(SPEC)["paths"]
    assert paths[ACCOUNT]["get"]["x-throttling-group"] == "Light"
    assert paths[CALL_LOG]["get"]["x-throttling-group"] == "Heavy"
    assert paths[TOKEN]["post"]["x-throttling-group"] == "Auth"


async def test_token_responses_are_token_info(http):
    jwt = await token(http)
    body = check(TOKEN, jwt, "POST")
    assert body["token_type"] == "bearer"
    assert {"owner_id", "endpoint_id", "session_id", "refresh_token_expires_in"} <= body.keys()

    refreshed = await token(http, grant_type="refresh_token", refresh_token=body["refresh_token"])
    fresh = check(TOKEN, refreshed, "POST")
    assert fresh["refresh_token"] != body["refresh_token"]  # refresh tokens rotate
    old = await http.get(
        f"{ROOT}/restapi/v1.0/account/~",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert old.status_code == 401  # a refresh ends the old access token at once

    query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT}
    consent = await http.get(f"{ROOT}/restapi/oauth/authorize", params=query)
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    exchanged = await token(http, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    check(TOKEN, exchanged, "POST")


@pytest.mark.parametrize(
    ("form", "error", "code"),
    [
        pytest.param(
            {"grant_type": JWT_GRANT, "assertion": "x.y.z"},
            "invalid_grant",
            "OAU-140",
            id="bad_jwt",
        ),
        pytest.param(
            {"grant_type": "refresh_token", "refresh_token": "nope"},
            "invalid_grant",
            "OAU-140",
            id="bad_refresh",
        ),
        pytest.param({"grant_type": "password"}, "unsupported_grant_type", "OAU-102", id="grant"),
    ],
)
async def test_oauth_errors_are_the_specs_bad_request(http, form, error, code):
    refused = await token(http, **form)

    assert refused.status_code == 400
    body = check(TOKEN, refused, "POST")
    assert body["error"] == error
    assert body["errors"][0]["errorCode"] == code


async def test_a_bad_client_is_refused_with_oau_123(http):
    refused = await token(http, CLIENT_ID, "wrong-secret")

    assert refused.status_code == 401
    assert refused.json()["errors"] == [
        {"errorCode": "OAU-123", "message": "client authentication failed"}
    ]


async def test_revoking_an_access_token_ends_its_session(http):
    body = (await token(http)).json()
    revoked = await http.post(
        f"{ROOT}/restapi/oauth/revoke",
        data={"token": body["access_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert revoked.status_code == 200
    again = await token(http, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_the_account_is_account_info(http):
    body = check(
        ACCOUNT, await http.get(f"{ROOT}/restapi/v1.0/account/~", headers=await bearer(http))
    )

    assert body["status"] == "Confirmed"
    assert body["uri"].endswith(f"/restapi/v1.0/account/{body['id']}")


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"view": "Simple", "type": "Voice", "perPage": 1000}, id="simple"),
        pytest.param({"view": "Detailed", "perPage": 50}, id="detailed_faxes_too"),
        pytest.param({"showDeleted": "true", "perPage": "max"}, id="deleted"),
        pytest.param(
            {"dateFrom": "2001-01-01T00:00:00Z", "dateTo": "2001-01-02T00:00:00Z"}, id="empty"
        ),
    ],
)
async def test_call_log_pages_are_call_log_responses(http, params):
    headers = await bearer(http)
    query = {"dateFrom": "2000-01-01T00:00:00.000Z", **params}

    response = await http.get(
        f"{ROOT}/restapi/v1.0/account/~/call-log", params=query, headers=headers
    )
    body = check(CALL_LOG, response)

    assert response.headers["X-Rate-Limit-Group"] == "Heavy"
    starts = [r["startTime"] for r in body["records"]]
    assert starts == sorted(starts, reverse=True)  # newest first
    if params.get("view") == "Detailed":
        assert all("legs" in r and "lastModifiedTime" in r for r in body["records"])
    if params.get("showDeleted"):
        assert any(r.get("deleted") for r in body["records"])
    if body["records"]:
        assert body["paging"]["pageStart"] == 0
        assert "nextPage" in body["navigation"]
    else:
        assert body["paging"] == {"page": 1, "perPage": 100}
        assert "nextPage" not in body["navigation"]


async def test_paging_follows_navigation_to_the_last_page(http):
    headers = await bearer(http)
    query = {"dateFrom": "2000-01-01T00:00:00Z", "perPage": 700}
    url = f"{ROOT}/restapi/v1.0/account/~/call-log"
    body = check(CALL_LOG, await http.get(url, params=query, headers=headers))
    ids = [r["id"] for r in body["records"]]
    while "nextPage" in body["navigation"]:
        body = check(
            CALL_LOG, await http.get(body["navigation"]["nextPage"]["uri"], headers=headers)
        )
        ids += [r["id"] for r in body["records"]]

    assert len(ids) == len(set(ids)) > 2_000
    assert body["paging"]["pageEnd"] == len(ids) - 1


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"perPage": "0"}, "perPage", id="per_page"),
        pytest.param({"view": "Full"}, "view", id="view"),
        pytest.param({"dateFrom": "yesterday"}, "dateFrom", id="date"),
        pytest.param({"type": "Sms"}, "type", id="type"),
    ],
)
async def test_a_bad_parameter_is_the_specs_400_cmn_101(http, params, name):
    headers = await bearer(http)
    response = await http.get(
        f"{ROOT}/restapi/v1.0/account/~/call-log", params=params, headers=headers
    )

    assert response.status_code == 400
    body = check(CALL_LOG, response)
    assert body["errors"][0]["errorCode"] == "CMN-101"
    assert body["errors"][0]["parameterName"] == name


async def test_a_user_without_full_company_call_log_is_the_specs_403(http):
    headers = await bearer(http, USER_CLIENT_ID)
    response = await http.get(f"{ROOT}/restapi/v1.0/account/~/call-log", headers=headers)

    assert response.status_code == 403
    body = check(CALL_LOG, response)
    assert body["errors"][0]["errorCode"] == "CMN-408"
    assert body["permissionName"] == "FullCompanyCallLog"
    account = await http.get(f"{ROOT}/restapi/v1.0/account/~", headers=headers)
    assert account.status_code == 200  # the account itself is readable


async def test_missing_or_unknown_tokens_are_401_with_errors(http):
    missing = await http.get(f"{ROOT}/restapi/v1.0/account/~/call-log")
    unknown = await http.get(
        f"{ROOT}/restapi/v1.0/account/~/call-log", headers={"Authorization": "Bearer nope"}
    )

    assert missing.status_code == unknown.status_code == 401
    assert missing.json()["errors"][0]["errorCode"] == "CMN-405"
    assert unknown.json()["errors"][0]["errorCode"] == "OAU-149"

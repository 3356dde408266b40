"""`OAuthServer` configured the way real-provider emulators will: Entra-style paths with a
tenant, error bodies and scopes; RingCentral-style JWT grant that ends the old access token."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends

from inflow.sandbox import Emulator, create_app
from inflow.sandbox.emulator import JSONObject, json_response
from inflow.sandbox.oauth import (
    CLIENT_CREDENTIALS,
    JWT_BEARER,
    REFRESH_TOKEN,
    OAuthServer,
    TokenInfo,
)
from tests.sandbox.conftest import BASE

pytestmark = pytest.mark.anyio
SCOPE = "https://analysis.windows.net/powerbi/api/.default"


def entra_error(error: str, description: str) -> JSONObject:
    return {
        "error": error,
        "error_description": f"AADSTS7000215: {description}",
        "error_codes": [7000215],
    }


def powerbi_refusal(reason: str):
    if reason == "expired":  # Power BI answers an expired Entra token with 403
        return json_response(
            {"error": {"code": "TokenExpired", "message": "Access token has expired"}}, 403
        )
    return json_response({"error": {"code": "PowerBINotAuthorizedException"}}, 401)


ENTRA = OAuthServer(
    slug="fakebi",
    clients={"app-id": "app-secret"},
    scopes=(SCOPE,),
    require_pkce=False,
    grant_types=frozenset({CLIENT_CREDENTIALS}),
    error_body=entra_error,
    token_extra={"ext_expires_in": 3600},
)
bi = APIRouter()
bi.include_router(
    ENTRA.router(
        authorize_path="/{tenant}/oauth2/v2.0/authorize", token_path="/{tenant}/oauth2/v2.0/token"
    )
)


@bi.get("/v1.0/myorg/groups")
async def groups(info: TokenInfo = Depends(ENTRA.dependency(powerbi_refusal))):
    return json_response({"value": [], "client": info.client_id})


RC = OAuthServer(
    slug="fakerc",
    clients={"rc-id": "rc-secret"},
    grant_types=frozenset({JWT_BEARER, REFRESH_TOKEN}),
    revoke_access_on_refresh=True,
)
rc = APIRouter()
rc.include_router(
    RC.router(authorize_path="/restapi/oauth/authorize", token_path="/restapi/oauth/token")
)


@rc.get("/restapi/v1.0/account/~")
async def account(
    info: TokenInfo = Depends(
        RC.dependency(lambda reason: json_response({"errorCode": reason}, 401))
    ),
):
    return json_response({"id": "~"})


def credentials(url: str) -> JSONObject:
    return {"baseUrl": url}


@pytest.fixture
async def client(clock):
    emulators = {
        "fakebi": Emulator(slug="fakebi", router=bi, credentials=credentials, oauth=ENTRA),
        "fakerc": Emulator(slug="fakerc", router=rc, credentials=credentials, oauth=RC),
    }
    transport = httpx.ASGITransport(app=create_app(emulators=emulators, clock=clock))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


async def test_entra_style_client_credentials_with_a_tenant_path(client, clock):
    url = "/fakebi/contoso.onmicrosoft.com/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": "app-id",
        "client_secret": "app-secret",
        "scope": SCOPE,
    }
    r = await client.post(url, data=form)
    assert r.status_code == 200
    assert r.json()["ext_expires_in"] == 3600
    token = r.json()["access_token"]
    ok = await client.get("/fakebi/v1.0/myorg/groups", headers={"Authorization": f"Bearer {token}"})
    assert ok.json() == {"value": [], "client": "app-id"}
    clock.advance(3600)
    expired = await client.get(
        "/fakebi/v1.0/myorg/groups", headers={"Authorization": f"Bearer {token}"}
    )
    assert expired.status_code == 403
    assert expired.json()["error"]["code"] == "TokenExpired"
    stats = (await client.get("/_sandbox/fakebi/stats")).json()
    assert stats["byEndpoint"]["POST /{tenant}/oauth2/v2.0/token"] == 1


async def test_entra_style_errors_use_the_providers_body(client):
    url = "/fakebi/common/oauth2/v2.0/token"
    bad_secret = await client.post(
        url, data={"grant_type": "client_credentials", "client_id": "app-id", "client_secret": "x"}
    )
    assert bad_secret.status_code == 401
    assert bad_secret.json()["error_codes"] == [7000215]
    bad_scope = await client.post(
        url,
        data={"grant_type": "client_credentials", "scope": "mail.read"},
        auth=("app-id", "app-secret"),
    )
    assert bad_scope.json()["error"] == "invalid_scope"
    not_enabled = await client.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=("app-id", "app-secret"),
    )
    assert not_enabled.json()["error"] == "unauthorized_client"


async def test_ringcentral_style_jwt_grant_and_refresh_ends_old_access_token(client):
    jwt = (await client.get("/_sandbox/credentials")).json()["fakerc"]["oauth"]["jwt"]
    auth = ("rc-id", "rc-secret")
    first = (
        await client.post(
            "/fakerc/restapi/oauth/token",
            data={"grant_type": JWT_BEARER, "assertion": jwt},
            auth=auth,
        )
    ).json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    assert (await client.get("/fakerc/restapi/v1.0/account/~", headers=headers)).status_code == 200
    refreshed = await client.post(
        "/fakerc/restapi/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 200
    old = await client.get("/fakerc/restapi/v1.0/account/~", headers=headers)
    assert old.status_code == 401
    assert old.json() == {"errorCode": "revoked"}

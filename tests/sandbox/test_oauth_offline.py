"""`OAuthServer` options for Google-style refresh tokens: only for authorizations that asked for
offline access (again only with forced re-consent once one is held), not repeated on refresh,
and rotation switched by the emulator's state."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import APIRouter

from inflow.sandbox import Emulator, create_app
from inflow.sandbox.emulator import JSONObject
from inflow.sandbox.oauth import OAuthServer, OfflineAccess
from inflow.sandbox.state import EmulatorState
from tests.sandbox.conftest import BASE

pytestmark = pytest.mark.anyio
REDIRECT = "http://127.0.0.1:8000/api/oauth/callback"
BASIC = httpx.BasicAuth("g-client", "g-secret")


def rotates(state: EmulatorState) -> bool:
    return state.volume_of("rotate") == 1


GOOGLEISH = OAuthServer(
    slug="fakegoogle",
    clients={"g-client": "g-secret"},
    require_pkce=False,
    offline_access=OfflineAccess(("access_type", "offline"), ("prompt", "consent")),
    rotate_refresh_tokens=rotates,
    repeat_refresh_token=False,
)
router = APIRouter()
router.include_router(GOOGLEISH.router(authorize_path="/auth", token_path="/token"))


def credentials(url: str) -> JSONObject:
    return {"baseUrl": url}


@pytest.fixture
async def client(clock):
    emulator = Emulator(
        slug="fakegoogle",
        router=router,
        credentials=credentials,
        oauth=GOOGLEISH,
        default_volume={"rotate": 0},
    )
    app = create_app(emulators={"fakegoogle": emulator}, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def tokens(client: httpx.AsyncClient, **params: str) -> dict:
    query = {"response_type": "code", "client_id": "g-client", "redirect_uri": REDIRECT}
    r = await client.get("/fakegoogle/auth", params={**query, "scope": "s", **params})
    assert r.status_code == 302, r.text
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    exchanged = await client.post("/fakegoogle/token", data=form, auth=BASIC)
    assert exchanged.status_code == 200, exchanged.text
    return exchanged.json()


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await client.post("/fakegoogle/token", data=form, auth=BASIC)


async def test_refresh_token_only_for_offline_access(client):
    assert "refresh_token" not in await tokens(client)
    assert "refresh_token" not in await tokens(client, access_type="online")
    assert "refresh_token" in await tokens(client, access_type="offline")


async def test_a_second_offline_consent_needs_prompt_consent(client):
    first = await tokens(client, access_type="offline")

    again = await tokens(client, access_type="offline")
    forced = await tokens(client, access_type="offline", prompt="select_account consent")

    assert "refresh_token" not in again
    assert forced["refresh_token"] != first["refresh_token"]


async def test_refresh_without_rotation_leaves_the_refresh_token_out(client):
    first = await tokens(client, access_type="offline")

    r = await refresh(client, first["refresh_token"])

    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    assert (await refresh(client, first["refresh_token"])).status_code == 200  # still valid


async def test_rotation_follows_the_emulator_state(client):
    first = await tokens(client, access_type="offline")
    r = await client.post("/_sandbox/fakegoogle/config", json={"volume": {"rotate": 1}})
    assert r.status_code == 200, r.text

    rotated = await refresh(client, first["refresh_token"])

    assert rotated.json()["refresh_token"] != first["refresh_token"]
    stale = await refresh(client, first["refresh_token"])
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"

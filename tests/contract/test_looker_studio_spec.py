"""The Looker Studio emulator against Google's discovery document (datastudio-v1-discovery.json):
`assets.search` answers match `SearchAssetsResponse` / `Asset` (enums, types, `google-datetime`
timestamps) for reports, data sources, the trash and an empty search, and the emulator takes
exactly the query parameters the document declares. The document has no error schema; Google's
envelope is checked in tests/providers/test_looker_studio.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from inflow.sandbox import create_app
from inflow.sandbox.looker_studio import CLIENT_ID, CLIENT_SECRET, PARAMS, STANDARD
from tests.contract.spec import load, validate_schema

pytestmark = pytest.mark.anyio
SPEC = "datastudio-v1-discovery.json"
ROOT = "/looker_studio/"
REDIRECT = "http://127.0.0.1:8000/api/oauth/looker_studio/callback"
GOOGLE_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A client holding an access token from the emulator's consent flow."""
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        await client.post(
            "/_sandbox/looker_studio/config",
            json={"volume": {"reports": 30, "dataSources": 5, "deletions": 4, "revision": 1}},
        )
        query = {
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "https://www.googleapis.com/auth/datastudio.readonly",
        }
        consent = await client.get("/looker_studio/o/oauth2/v2/auth", params=query)
        code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        token = (await client.post("/looker_studio/o/oauth2/token", data=form)).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield client


def method() -> dict[str, Any]:
    searched: dict[str, Any] = load(SPEC)["resources"]["assets"]["methods"]["search"]
    return searched


async def search(http: httpx.AsyncClient, **params: Any) -> Any:
    spec = method()
    assert spec["httpMethod"] == "GET"
    response = await http.get(ROOT + spec["path"], params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    validate_schema(SPEC, spec["response"]["$ref"].removeprefix("#/schemas/"), body)
    return body


def check_assets(body: Any, asset_type: str) -> list[dict[str, Any]]:
    schema = load(SPEC)["schemas"]["Asset"]["properties"]
    stamps = [name for name, prop in schema.items() if prop.get("format") == "google-datetime"]
    assets: list[dict[str, Any]] = body["assets"]
    for asset in assets:
        validate_schema(SPEC, "Asset", asset)
        assert asset["assetType"] == asset_type
        for name in stamps:
            if name in asset:
                assert GOOGLE_DATETIME.match(asset[name]), (name, asset[name])
    return assets


async def test_a_page_of_reports_matches_search_assets_response(http):
    body = await search(http, assetTypes="REPORT", pageSize=10)

    assets = check_assets(body, "REPORT")
    assert len(assets) == 10
    assert isinstance(body["nextPageToken"], str)
    assert all("trashed" not in a for a in assets)  # false is a default value: left out
    assert {"name", "title", "owner", "createTime", "updateTime"} <= set(assets[0])


async def test_the_last_page_has_no_next_page_token(http):
    first = await search(http, assetTypes="REPORT", pageSize=20)
    last = await search(http, assetTypes="REPORT", pageSize=20, pageToken=first["nextPageToken"])

    assert len(check_assets(last, "REPORT")) == 26 - 20
    assert "nextPageToken" not in last


async def test_data_sources_and_the_trash_match_the_schema(http):
    sources = check_assets(await search(http, assetTypes="DATA_SOURCE"), "DATA_SOURCE")
    trash = check_assets(await search(http, assetTypes="REPORT", includeTrashed=True), "REPORT")

    assert len(sources) == 5
    assert [a["trashed"] for a in trash] == [True, True]


async def test_an_empty_search_is_an_empty_object(http):
    body = await search(http, assetTypes="REPORT", title="no report is called this")

    assert body == {}


async def test_every_declared_parameter_is_accepted(http):
    spec = method()
    declared = set(spec["parameters"])
    assert declared == set(PARAMS)
    assert set(load(SPEC)["parameters"]) == STANDARD
    values = {"assetTypes": "REPORT", "pageSize": 5, "includeTrashed": "false", "orderBy": "title"}
    values |= {"title": "revenue", "owner": "ana@example.com", "quotaUser": "inflow"}

    body = await search(http, **values)

    assets = check_assets(body, "REPORT")
    assert assets
    assert all(a["owner"] == "ana@example.com" and "revenue" in a["title"] for a in assets)
    titles = [a["title"] for a in assets]
    assert titles == sorted(titles)
    enum = spec["parameters"]["assetTypes"]["enum"]
    assert {"REPORT", "DATA_SOURCE"} <= set(enum)

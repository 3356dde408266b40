"""The Grafana emulator's responses against Grafana's own OpenAPI 3 spec (grafana-openapi.json,
Grafana 9.5-era, `servers: [{url: /api}]`): every endpoint the connector uses and the error
bodies the spec documents. `/api/health` was never in the spec: its shape is checked against
Grafana's documentation (docs/sources/developers/http_api/other.md) instead."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from inflow.sandbox import create_app
from inflow.sandbox.grafana import NO_ROLE_TOKEN, PASSWORD, TOKEN, USERNAME
from tests.contract.spec import validate_response, validate_schema

pytestmark = pytest.mark.anyio
SPEC = "grafana-openapi.json"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        yield client


async def get(
    http: httpx.AsyncClient,
    path: str,
    *,
    status: int = 200,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    response = await http.get(f"/grafana/api{path}", params=params, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def test_health_is_public_and_shaped_as_documented(http):
    body = await get(http, "/health")  # no credentials at all

    assert body == {"commit": body["commit"], "database": "ok", "version": "10.4.2"}
    assert body == await get(http, "/health", headers={"Authorization": "Bearer nonsense"})


async def test_dashboard_search_matches_the_spec(http):
    params = {"type": "dash-db", "limit": 50, "page": 1}
    body = await get(http, "/search", params=params, headers=BEARER)

    validate_response(SPEC, "GET", "/search", 200, body)
    assert len(body) == 50
    assert {hit["type"] for hit in body} == {"dash-db"}
    in_folder = [hit for hit in body if "folderUid" in hit]
    assert in_folder
    assert len(in_folder) < len(body)  # root-level dashboards carry no folder fields
    assert all(hit["url"].startswith("/grafana/d/") for hit in body)  # the sub-path included


async def test_folder_search_and_folder_listing_match_the_spec(http):
    hits = await get(http, "/search", params={"type": "dash-folder"}, headers=BEARER)
    folders = await get(http, "/folders", params={"limit": 5, "page": 2}, headers=BEARER)

    validate_response(SPEC, "GET", "/search", 200, hits)
    validate_response(SPEC, "GET", "/folders", 200, folders)
    for folder in folders:
        validate_schema(SPEC, "FolderSearchHit", folder)
    assert {hit["type"] for hit in hits} == {"dash-folder"}
    # nested folders on: the top level only (search lists every folder, a nested one with
    # its parent as folderUid), by title
    top = [h["uid"] for h in hits if "folderUid" not in h]
    assert [f["uid"] for f in folders] == top[5:10]
    assert all("parentUid" not in f for f in folders)


async def test_nested_folders_list_by_parent_and_name_their_parents(http):
    hits = await get(http, "/search", params={"type": "dash-folder"}, headers=BEARER)
    nested = next(h for h in hits if "folderUid" in h)

    children = await get(
        http, "/folders", params={"parentUid": nested["folderUid"]}, headers=BEARER
    )
    one = await get(http, f"/folders/{nested['uid']}", headers=BEARER)
    missing = await get(http, "/folders", params={"parentUid": "nope"}, status=404, headers=BEARER)

    validate_response(SPEC, "GET", "/folders", 200, children)
    for child in children:
        validate_schema(SPEC, "FolderSearchHit", child)
    assert nested["uid"] in [c["uid"] for c in children]
    assert {c["parentUid"] for c in children} == {nested["folderUid"]}
    validate_response(SPEC, "GET", "/folders/{folder_uid}", 200, one)
    assert one["parentUid"] == nested["folderUid"]
    assert [p["uid"] for p in one["parents"]] == [nested["folderUid"]]
    assert one["parents"][0]["title"] == nested["folderTitle"]
    assert missing == {"message": "Folder not found"}


async def test_current_org_matches_the_spec(http):
    basic = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "X-Grafana-Org-Id": "2"}

    body = await get(http, "/org", headers=headers)

    validate_response(SPEC, "GET", "/org", 200, body)
    validate_schema(SPEC, "OrgDetailsDTO", body)
    assert (body["id"], body["name"]) == (2, "Ops")


@pytest.mark.parametrize(
    ("headers", "message_id"),
    [
        pytest.param({}, "auth.unauthorized", id="no_credentials"),
        pytest.param({"Authorization": "Bearer glc_cloud"}, "api-key.invalid", id="cloud_token"),
        pytest.param(
            {**BEARER, "X-Grafana-Org-Id": "2"},
            "api-key.organization-mismatch",
            id="token_of_another_org",
        ),
    ],
)
async def test_refusals_match_the_spec_error_body(http, headers, message_id):
    body = await get(http, "/search", status=401, headers=headers)

    validate_response(SPEC, "GET", "/search", 401, body)
    validate_schema(SPEC, "ErrorResponseBody", body)
    assert body["messageId"] == message_id
    assert body["statusCode"] == 401


async def test_a_limit_over_5000_is_the_documented_422(http):
    body = await get(http, "/search", status=422, params={"limit": 5001}, headers=BEARER)

    validate_response(SPEC, "GET", "/search", 422, body)
    assert "maximum allowed (5000)" in body["message"]


async def test_access_denied_matches_the_spec(http):
    body = await get(http, "/org", status=403, headers={"Authorization": f"Bearer {NO_ROLE_TOKEN}"})

    validate_response(SPEC, "GET", "/org", 403, body)
    assert body["title"] == "Access denied"
    assert body["message"].endswith("Permissions needed: orgs:read")


async def test_one_dashboard_and_one_folder_match_the_spec(http):
    hits = await get(http, "/search", params={"type": "dash-db"}, headers=BEARER)
    hit = next(h for h in hits if "folderUid" in h)

    one = await get(http, f"/dashboards/uid/{hit['uid']}", headers=BEARER)
    folder = await get(http, f"/folders/{hit['folderUid']}", headers=BEARER)

    validate_response(SPEC, "GET", "/dashboards/uid/{uid}", 200, one)
    validate_response(SPEC, "GET", "/folders/{folder_uid}", 200, folder)
    assert one["meta"]["version"] == one["dashboard"]["version"]
    assert (one["dashboard"]["title"], one["meta"]["url"]) == (hit["title"], hit["url"])
    assert (one["meta"]["folderUid"], one["meta"]["folderTitle"]) == (
        hit["folderUid"],
        hit["folderTitle"],
    )
    assert (folder["uid"], folder["title"], folder["url"]) == (
        hit["folderUid"],
        hit["folderTitle"],
        hit["folderUrl"],
    )
    missing = await get(http, "/dashboards/uid/nope", status=404, headers=BEARER)
    assert missing == {"message": "Dashboard not found"}
    gone = await get(http, "/folders/nope", status=404, headers=BEARER)
    assert gone == {"message": "Folder not found"}


async def test_frontend_settings_carry_the_build_info(http):
    settings = await get(http, "/frontend/settings", headers=BEARER)

    assert settings["buildInfo"]["version"] == "10.4.2"
    assert settings["buildInfo"]["commit"] == (await get(http, "/health"))["commit"]
    refused = await get(http, "/frontend/settings", status=401)
    assert refused["messageId"] == "auth.unauthorized"

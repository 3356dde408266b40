"""The Power BI emulator's responses against Microsoft's swagger (powerbi-swagger.json): every
endpoint the connector uses, the error envelope, and the Entra ID token endpoint's wire format
(the swagger leaves auth out, so that is checked against the documented shape)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from inflow.sandbox import create_app
from inflow.sandbox.powerbi import CLIENT_ID, CLIENT_SECRET, SCOPE, TENANT_ID
from tests.contract.spec import validate_response, validate_schema

pytestmark = pytest.mark.anyio
SPEC = "powerbi-swagger.json"
API = "/powerbi/v1.0/myorg"
TOKEN_URL = f"/powerbi/{TENANT_ID}/oauth2/v2.0/token"
GRANT = {
    "grant_type": "client_credentials",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "scope": SCOPE,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        token = (await client.post(TOKEN_URL, data=GRANT)).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


async def get(
    http: httpx.AsyncClient, path: str, *, status: int = 200, params: dict[str, Any] | None = None
) -> Any:
    response = await http.get(API + path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def test_groups_match_the_spec(http):
    body = await get(http, "/groups")

    validate_response(SPEC, "GET", "/v1.0/myorg/groups", 200, body)
    assert len(body["value"]) == 3
    assert body["@odata.context"].endswith("/v1.0/myorg/$metadata#groups")
    dedicated = [g for g in body["value"] if g["isOnDedicatedCapacity"]]
    assert dedicated
    assert all(g["defaultDatasetStorageFormat"] == "Small" for g in dedicated)


async def test_groups_page_with_top_and_skip_and_filter_by_id(http):
    everything = (await get(http, "/groups"))["value"]

    pages = [
        (await get(http, "/groups", params={"$top": 2, "$skip": s}))["value"] for s in (0, 2, 4)
    ]
    one = await get(http, "/groups", params={"$filter": f"id eq '{everything[1]['id']}'"})
    two = await get(
        http,
        "/groups",
        params={"$filter": f"id eq '{everything[0]['id']}' or id eq '{everything[2]['id']}'"},
    )

    assert [len(p) for p in pages] == [2, 1, 0]
    assert [g for p in pages for g in p] == everything
    assert one["value"] == [everything[1]]
    assert two["value"] == [everything[0], everything[2]]
    validate_response(SPEC, "GET", "/v1.0/myorg/groups", 200, one)
    bad = await get(http, "/groups", status=400, params={"$filter": "startswith(name,'x')"})
    validate_schema(SPEC, "PowerBIApiErrorResponseDetail", bad["error"])
    assert bad["error"]["code"] == "InvalidRequest"


async def test_reports_and_one_report_match_the_spec(http):
    group = (await get(http, "/groups"))["value"][0]["id"]

    body = await get(http, f"/groups/{group}/reports")

    validate_response(SPEC, "GET", "/v1.0/myorg/groups/{groupId}/reports", 200, body)
    kinds = [r["reportType"] for r in body["value"]]
    assert kinds == ["PowerBIReport"] * 4 + ["PaginatedReport"]
    paginated = body["value"][4]
    assert "datasetId" not in paginated  # RDL reports have no dataset
    assert "/rdlEmbed?reportId=" in paginated["embedUrl"]
    for report in body["value"][:4]:
        assert report["embedUrl"] == (
            f"https://app.powerbi.com/reportEmbed?reportId={report['id']}&groupId={group}"
        )
    single = await get(http, f"/groups/{group}/reports/{body['value'][0]['id']}")
    validate_response(SPEC, "GET", "/v1.0/myorg/groups/{groupId}/reports/{reportId}", 200, single)
    assert {k: v for k, v in single.items() if k != "@odata.context"} == body["value"][0]


async def test_dashboards_match_the_spec(http):
    group = (await get(http, "/groups"))["value"][1]["id"]

    body = await get(http, f"/groups/{group}/dashboards")

    validate_response(SPEC, "GET", "/v1.0/myorg/groups/{groupId}/dashboards", 200, body)
    assert len(body["value"]) == 2
    assert all("displayName" in d and "name" not in d for d in body["value"])


async def test_available_features_match_the_spec(http):
    body = await get(http, "/availableFeatures")

    validate_response(SPEC, "GET", "/v1.0/myorg/availableFeatures", 200, body)


async def test_generate_token_matches_the_spec(http):
    group = (await get(http, "/groups"))["value"][0]["id"]
    report = (await get(http, f"/groups/{group}/reports"))["value"][0]
    request = {"reports": [{"id": report["id"]}], "datasets": [{"id": report["datasetId"]}]}
    validate_schema(SPEC, "GenerateTokenRequestV2", request)

    response = await http.post(f"{API}/GenerateToken", json=request)

    assert response.status_code == 200, response.text
    validate_response(SPEC, "POST", "/v1.0/myorg/GenerateToken", 200, response.json())
    without_dataset = await http.post(f"{API}/GenerateToken", json={"reports": request["reports"]})
    assert without_dataset.status_code == 400
    validate_schema(SPEC, "PowerBIApiErrorResponseDetail", without_dataset.json()["error"])


@pytest.mark.parametrize(
    ("volume", "path", "status", "code"),
    [
        pytest.param({}, "/groups/00000000-0000-4000-8000-000000000000/reports", 404,
                     "PowerBIEntityNotFound", id="unknown-workspace"),
        pytest.param({"spDisabled": 1}, "/groups", 401, "PowerBINotAuthorizedException",
                     id="service-principals-disabled"),
    ],
)  # fmt: skip
async def test_error_bodies_match_the_spec(http, volume, path, status, code):
    await http.post("/_sandbox/powerbi/config", json={"volume": volume})

    body = await get(http, path, status=status)

    assert body["error"]["code"] == code
    assert body["error"]["pbi.error"]["code"] == code
    validate_schema(SPEC, "PowerBIApiErrorResponseDetail", body["error"])


async def test_an_expired_token_is_403_token_expired(http):
    response = await http.get(f"{API}/groups", headers={"X-Sandbox-Fault": "expired_token"})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "TokenExpired"
    validate_schema(SPEC, "PowerBIApiErrorResponseDetail", response.json()["error"])


async def test_a_429_says_when_to_retry(http):
    response = await http.get(f"{API}/groups", headers={"X-Sandbox-Fault": "rate_limit=7"})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert "exceeded the amount of requests" in response.json()["message"]


async def test_the_token_endpoint_speaks_entra(http):
    ok = await http.post(TOKEN_URL, data=GRANT)
    wrong = await http.post(TOKEN_URL, data={**GRANT, "client_secret": "not-it"})

    assert ok.status_code == 200
    assert set(ok.json()) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert ok.json()["expires_in"] == 3599
    assert wrong.status_code == 401
    body = wrong.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert "\r\nTrace ID: " in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)

"""A route an emulator does not have answers as the provider does, never FastAPI's
`{"detail": "Not Found"}`; the sandbox's own routes and unknown prefixes keep FastAPI's."""

from __future__ import annotations

import httpx
import pytest

from inflow.sandbox.registry import EMULATORS

pytestmark = pytest.mark.anyio

PROVIDERS = {
    "grafana": (404, {"message": "Not found"}),
    "twilio": (
        404,
        {
            "code": 20404,
            "message": "The requested resource /2010-04-01/No/Such.json was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        },
    ),
    "ringcentral": (
        404,
        {
            "errorCode": "AGW-404",
            "message": "Resource not found",
            "errors": [{"errorCode": "AGW-404", "message": "Resource not found"}],
        },
    ),
    "powerbi": (
        404,
        {
            "error": {
                "code": "PowerBIEntityNotFound",
                "pbi.error": {
                    "code": "PowerBIEntityNotFound",
                    "parameters": {},
                    "details": [],
                    "exceptionCulprit": 1,
                },
            }
        },
    ),
    "looker_studio": (
        404,
        {
            "error": {
                "code": 404,
                "message": "Method not found: /No/Such.json",
                "status": "NOT_FOUND",
            }
        },
    ),
}
PROVIDERS["linkedin"] = (
    404,
    {
        "status": 404,
        "serviceErrorCode": 0,
        "code": "RESOURCE_NOT_FOUND",
        "message": "No virtual resource found",
    },
)
PROVIDERS["aircall"] = (
    404,
    {
        "error": "Not Found",
        "troubleshoot": "No route matches /no/such/route; see developer.aircall.io",
    },
)
PATHS = {"twilio": "/2010-04-01/No/Such.json", "looker_studio": "/No/Such.json"}


@pytest.mark.parametrize("slug", sorted(EMULATORS))
async def test_an_unknown_route_is_the_providers_not_found(
    client: httpx.AsyncClient, slug: str
) -> None:
    response = await client.get(f"/{slug}{PATHS.get(slug, '/no/such/route')}")
    assert response.status_code in (400, 404), response.text
    assert "detail" not in response.json()
    if slug in PROVIDERS:
        assert (response.status_code, response.json()) == PROVIDERS[slug]
    # counted like any other request of the emulator
    stats = (await client.get(f"/_sandbox/{slug}/stats")).json()
    assert sum(stats["byStatus"].values()) == 1, stats


async def test_graph_names_the_unknown_path_component(client: httpx.AsyncClient) -> None:
    response = await client.get("/instagram/v21.0/me/no_such_edge")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (2500, "OAuthException")
    assert error["message"] == "Unknown path components: /no_such_edge"


async def test_a_handlers_own_404_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/grafana/api/dashboards/uid/nope",
        headers={"Authorization": "Bearer glsa_InflowSandboxMainOrgViewer0001_5f3c2a1e"},
    )
    assert (response.status_code, response.json()) == (404, {"message": "Dashboard not found"})


async def test_the_sandbox_and_unknown_prefixes_keep_fastapis_404(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/no_such_provider/x", "/_sandbox/grafana/no/such"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})

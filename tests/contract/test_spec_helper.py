"""The spec validator itself: it must accept what a spec allows and name what it does not."""

from __future__ import annotations

import pytest

from tests.contract.spec import load, validate_response, validate_schema

GROUP = {"id": "f089354e-8366-4e18-aea3-4cb4a3a50b48", "name": "Sales", "isReadOnly": False}


def test_swagger_response_accepts_a_valid_body():
    validate_response(
        "powerbi-swagger.json",
        "GET",
        "/v1.0/myorg/groups",
        200,
        {"@odata.context": "x", "value": [GROUP]},
    )


def test_swagger_response_names_a_wrong_type():
    with pytest.raises(AssertionError, match=r"value/0/isReadOnly"):
        validate_response(
            "powerbi-swagger.json",
            "GET",
            "/v1.0/myorg/groups",
            200,
            {"value": [{**GROUP, "isReadOnly": "no"}]},
        )


def test_an_undocumented_status_fails():
    with pytest.raises(AssertionError, match="documents no 418 response"):
        validate_response("powerbi-swagger.json", "GET", "/v1.0/myorg/groups", 418, {})


def test_an_unknown_path_fails():
    with pytest.raises(AssertionError, match="no path"):
        validate_response("powerbi-swagger.json", "GET", "/v1.0/myorg/nothing", 200, {})


def test_openapi3_shared_responses_and_nullable_are_followed():
    hit = {"id": 1, "uid": "abc", "title": "Home", "type": "dash-db", "tags": [], "url": "/d/abc"}
    validate_response("grafana-openapi.json", "GET", "/search", 200, [hit])
    with pytest.raises(AssertionError, match=r"0/id"):
        validate_response("grafana-openapi.json", "GET", "/search", 200, [{**hit, "id": "one"}])


def test_discovery_schemas_resolve_bare_refs():
    asset = {"name": "assets/abc", "title": "Report", "assetType": "REPORT", "trashed": False}
    validate_schema("datastudio-v1-discovery.json", "SearchAssetsResponse", {"assets": [asset]})
    with pytest.raises(AssertionError, match=r"assets/0/trashed"):
        validate_schema(
            "datastudio-v1-discovery.json",
            "SearchAssetsResponse",
            {"assets": [{**asset, "trashed": "no"}]},
        )


def test_every_stored_spec_loads():
    for name in (
        "powerbi-swagger.json",
        "grafana-openapi.json",
        "datastudio-v1-discovery.json",
        "twilio_api_v2010.json",
        "ringcentral-openapi.yaml",
    ):
        assert load(name)

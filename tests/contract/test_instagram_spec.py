"""The Instagram emulator's responses, and the connector's requests, against Meta's codegen node
specs (tests/contract/specs/meta/, Graph API v25.0): every field served is a field of its node,
with the node's type; every parameter sent is a parameter of the edge, every enum value one the
edge accepts. The specs say nothing of envelopes and errors, so those are checked against the
dossier's shapes."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from inflow.connectors.instagram import CONNECTOR, RETIRED
from inflow.connectors.spec import Check
from inflow.sandbox import create_app
from inflow.sandbox.instagram import ACCOUNT_ID, MEDIA_FIELDS, TOKEN, USER_FIELDS

pytestmark = pytest.mark.anyio
SPECS = Path(__file__).resolve().parent / "specs" / "meta"
GRAPH_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000")
BASE = "http://sandbox.test/instagram/v25.0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@cache
def node(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((SPECS / f"{name}.json").read_text())
    return spec


@cache
def enum(name: str) -> frozenset[str]:
    for entry in json.loads((SPECS / "enum_types.json").read_text()):
        if entry["name"] == name:
            return frozenset(entry["values"])
    raise AssertionError(f"enum_types.json has no enum {name!r}")


def check_value(kind: str, value: Any, where: str) -> None:
    """A value against a codegen type: scalars, `datetime`, `list<T>`, `Object`, a node."""
    if kind.startswith("list<"):
        assert isinstance(value, list), f"{where}: {kind} expected, got {value!r}"
        for i, item in enumerate(value):
            check_value(kind[5:-1], item, f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: string expected, got {value!r}"
    elif kind in ("int", "unsigned int"):
        assert isinstance(value, int), f"{where}: int expected, got {value!r}"
        assert not isinstance(value, bool), f"{where}: int expected, got {value!r}"
    elif kind == "bool":
        assert isinstance(value, bool), f"{where}: bool expected, got {value!r}"
    elif kind == "datetime":
        assert isinstance(value, str), f"{where}: datetime expected, got {value!r}"
        assert GRAPH_TIME.fullmatch(value), f"{where}: {value!r} is not Graph's +0000 time"
    elif kind == "Object":
        assert value is not None, f"{where}: a value expected"
    else:
        check_node(kind, value, where)


def check_node(name: str, body: Any, where: str = "") -> None:
    """Every key of `body` is a field of node `name`, with the field's type."""
    fields = {f["name"]: f["type"] for f in node(name)["fields"]}
    assert isinstance(body, dict), f"{where or name}: an object expected, got {body!r}"
    for key, value in body.items():
        assert key in fields, f"{where or name}: {key!r} is not a field of {name}"
        check_value(fields[key], value, f"{where or name}.{key}")


def edge(name: str, endpoint: str) -> dict[str, str]:
    """The GET parameters of an edge: name -> type."""
    for api in node(name)["apis"]:
        if api.get("endpoint") == endpoint and api["method"] == "GET":
            return {p["name"]: p["type"] for p in api["params"]}
    raise AssertionError(f"{name} has no GET {endpoint}")


def check_params(name: str, endpoint: str, params: dict[str, Any]) -> None:
    """Parameters sent to an edge: known to it, and enum values among those it accepts; a
    metric v25.0 no longer lists must be one the connector knows as retired."""
    known = edge(name, endpoint)
    for key, value in params.items():
        assert key in known, f"{name}/{endpoint} takes no parameter {key!r}"
        kind = known[key].removeprefix("list<").removesuffix(">")
        if kind.endswith("_enum_param"):
            for item in str(value).split(","):
                if item in RETIRED:
                    continue
                assert item in enum(kind), f"{name}/{endpoint}: {key}={item!r} not in {kind}"


@pytest.fixture
async def graph():
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=AUTH) as client:
        yield client


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- the connector's requests


def test_every_connector_request_uses_the_edges_parameters_and_enums():
    edges = {"/insights": ("IGUser", "insights"), "/media": ("IGUser", "media")}
    checked = 0
    for stream in CONNECTOR.streams:
        params = dict(stream.params)
        if stream.parent == "media":
            check_params("IGMedia", "insights", params)
        elif stream.path.endswith(tuple(edges)):
            name, endpoint = edges["/" + stream.path.rsplit("/", 1)[1]]
            check_params(name, endpoint, {k: v for k, v in params.items() if k not in ("fields", "limit")})  # fmt: skip
            if stream.incremental is not None:
                assert {stream.incremental.start_param, stream.incremental.end_param} <= set(edge(name, endpoint))  # fmt: skip
        for field in str(params.get("fields", "")).split(",") if "fields" in params else ():
            owner = "IGMedia" if stream.name == "media" else "IGUser"
            assert field in {f["name"] for f in node(owner)["fields"]}, (stream.name, field)
        checked += 1
    insights = [c for c in CONNECTOR.checks if isinstance(c, Check) and c.path.endswith("/insights")]  # fmt: skip
    for check in insights:
        check_params("IGUser", "insights", dict(check.params))
    assert checked == len(CONNECTOR.streams)


def test_retired_metrics_are_gone_from_v25_and_views_is_there():
    metrics = enum("shadowiguserinsights_metric_enum_param")
    assert "impressions" not in metrics  # the connector reads it for versions up to v21.0
    assert "views" in metrics


def test_the_emulator_serves_only_fields_the_nodes_have():
    assert {f["name"] for f in node("IGUser")["fields"]} >= USER_FIELDS
    assert {f["name"] for f in node("IGMedia")["fields"]} >= MEDIA_FIELDS


# ---------------------------------------------------------------- the emulator's responses


async def test_the_account_node_matches_iguser(graph):
    body = await get(graph, f"/{ACCOUNT_ID}", fields=",".join(sorted(USER_FIELDS)))

    check_node("IGUser", body)
    assert set(body) == USER_FIELDS


async def test_account_insights_match_the_insights_result(graph):
    series = await get(graph, f"/{ACCOUNT_ID}/insights", metric="reach,follower_count", period="day", metric_type="time_series", since="-10 days", until="-3 days")  # fmt: skip
    totals = await get(graph, f"/{ACCOUNT_ID}/insights", metric="views,accounts_engaged,profile_views", period="day", metric_type="total_value", since="-3 days", until="-2 days")  # fmt: skip

    for body in (series, totals):
        assert set(body) <= {"data", "paging"}
        assert body["data"]
        for i, row in enumerate(body["data"]):
            check_node("InstagramInsightsResult", row, f"data[{i}]")
            assert row["name"] in enum("shadowiguserinsights_metric_enum_param")
            assert row["period"] in enum("shadowiguserinsights_period_enum_param")
    assert all(row["values"] for row in series["data"])
    assert all(isinstance(row["total_value"]["value"], int) for row in totals["data"])
    assert set(series["paging"]) == {"previous", "next"}


async def test_media_and_their_insights_match_igmedia(graph):
    first = await get(graph, f"/{ACCOUNT_ID}/media", fields=",".join(sorted(MEDIA_FIELDS)), limit=25)  # fmt: skip
    nxt = await graph.get(first["paging"]["next"])

    assert nxt.status_code == 200, nxt.text
    posts = first["data"] + nxt.json()["data"]
    assert len(posts) == 40
    for i, post in enumerate(posts):
        check_node("IGMedia", post, f"media[{i}]")
    assert set(first["paging"]["cursors"]) == {"before", "after"}
    assert "next" not in nxt.json()["paging"]
    for post in posts[:5]:
        body = await get(graph, f"/{post['id']}/insights", metric="reach,views,likes,comments,shares,saved,total_interactions")  # fmt: skip
        for i, row in enumerate(body["data"]):
            check_node("InstagramInsightsResult", row, f"{post['id']}[{i}]")
            assert row["name"] in enum("shadowigmediainsights_metric_enum_param")
            assert row["period"] in enum("shadowigmediainsights_period_enum_param")


async def test_errors_use_graphs_envelope(graph):
    refused = await graph.get(f"/{ACCOUNT_ID}", headers={"Authorization": "Bearer nope"})
    retired = await graph.get(f"/{ACCOUNT_ID}/insights", params={"metric": "impressions", "period": "day"})  # fmt: skip

    for response in (refused, retired):
        assert response.status_code == 400
        error = response.json()["error"]
        assert set(error) <= {"message", "type", "code", "error_subcode", "fbtrace_id", "is_transient"}  # fmt: skip
        assert isinstance(error["message"], str)
        assert isinstance(error["type"], str)
        assert isinstance(error["code"], int)
        assert isinstance(error["fbtrace_id"], str)
    assert refused.json()["error"]["code"] == 190
    assert retired.json()["error"]["message"].startswith("(#100) Starting from version 22")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"metric": "reach", "period": "day", "since": "2026-01-01", "until": "2026-01-31"},
            "(#100) There cannot be more than 30 days (2592000 s) between since and until",
            id="thirty-days-with-until-expanded",
        ),
        pytest.param(
            {"metric": "follower_count", "period": "day", "since": "-40 days", "until": "-35 days"},
            "(#100) (follower_count) metric only supports querying data for the last 30 days",
            id="follower-count-window",
        ),
        pytest.param(
            {"metric": "views", "period": "day"},
            "(#100) The following metrics (views) should be specified with parameter "
            "metric_type=total_value",
            id="views-needs-total-value",
        ),
        pytest.param(
            {"metric": "follower_count", "period": "day", "metric_type": "total_value"},
            "(#100) The following metric (follower_count) is incompatible with the metric type "
            "(total_value)",
            id="follower-count-no-total",
        ),
    ],
)
async def test_refusals_are_the_dossiers(graph, params, message):
    response = await graph.get(f"/{ACCOUNT_ID}/insights", params=params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert error["message"].startswith(message)


async def test_a_time_series_pages_by_moving_its_window(graph):
    body = await get(graph, f"/{ACCOUNT_ID}/insights", metric="reach", period="day", metric_type="time_series", since="1767250800", until="1767855600")  # fmt: skip

    ends = [v["end_time"] for v in body["data"][0]["values"]]
    assert ends[0] == "2026-01-02T07:00:00+0000"  # the day 2026-01-01 (UTC-7) ends then
    assert len(ends) == 7
    nxt = httpx.URL(body["paging"]["next"]).params
    assert (nxt["since"], nxt["until"]) == ("1767855600", "1768460400")


async def test_no_token_and_an_unknown_node_are_refused_as_graph_does(graph):
    anonymous = await graph.get(f"/{ACCOUNT_ID}", headers={"Authorization": ""})
    unknown = await graph.get("/17841400000000000", params={"fields": "username"})

    assert anonymous.json()["error"]["code"] == 104
    assert (unknown.json()["error"]["code"], unknown.json()["error"]["error_subcode"]) == (100, 33)
    assert unknown.json()["error"]["type"] == "GraphMethodException"

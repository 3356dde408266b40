"""The custom source (type ``calling``, platform ``custom``) through the real API and database
against its emulator: the config refused field by field when saved, the connection test mapping
the first items (or naming why nothing matches, or the SSRF guard), a pull sync across pages
equal to what the emulator served (computed here from its raw JSON), bad items skipped and
counted, the user's own aggregation rules in the series API, and signed pushes through
``POST /api/webhooks/{sourceId}``: stored when good, refused (401) forged, tampered, replayed or
stale, and 422 for an item the mapping cannot read."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from inflow.api.app import create_app
from inflow.settings import Settings
from inflow.sync import engine as sync_engine
from inflow.sync.engine import EngineDeps
from tests.conftest import TestClient
from tests.sync.helpers import SANDBOX_HOST, person, points_of, sync_and_wait

SLUG = "custom"
URL = f"{SANDBOX_HOST}/{SLUG}"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def emu(sandbox: FastAPI):
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield http


def configure(emu: TestClient, **volume: int) -> None:
    response = emu.post(f"/_sandbox/{SLUG}/config", json={"volume": volume})
    assert response.status_code == 200, response.text


def credentials(emu: TestClient) -> dict[str, Any]:
    response = emu.get("/_sandbox/credentials")
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()[SLUG]["config"]
    assert config["apiUrl"] == f"{URL}/metrics"
    return config


def create(client: TestClient, headers: dict[str, str], config: dict[str, Any]) -> Any:
    body = {"name": "my metrics", "type": "calling", "config": config}
    return client.post("/api/data-sources", headers=headers, json=body)


def raw_items(emu: TestClient) -> list[dict[str, Any]]:
    """Every item the emulator serves, paged here by its next links."""
    items: list[dict[str, Any]] = []
    url: str | None = f"{URL}/metrics"
    while url:
        response = emu.get(url, headers={"X-Api-Key": credentials(emu)["headerValue"]})
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["data"])
        url = body["links"]["next"]
    return items


def number(item: dict[str, Any]) -> float | None:
    raw = (item.get("stats") or {}).get("value")
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def expected(items: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """(metric, day start, dimensions key) → value: sums, and wait_seconds averaged."""
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for item in items:
        value = number(item)
        if value is None:
            continue
        day = datetime.fromisoformat(item["recordedAt"]).astimezone(UTC).date()
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()
        key = f"channel={item['channel']['name']}&region={item['region']}"
        groups[(item["event"]["name"], start, key)].append(value)
    return {k: (sum(v) / len(v) if k[0] == "wait_seconds" else sum(v)) for k, v in groups.items()}


def stored(factory: Any, source_id: str) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for metric, start, key, value in points_of(factory, source_id):
        out[(metric, datetime.fromisoformat(start).astimezone(UTC).isoformat(), key)] = value
    return out


def assert_same(got: dict[Any, float], want: dict[Any, float]) -> None:
    assert got.keys() == want.keys()
    wrong = {k: (got[k], want[k]) for k in want if abs(got[k] - want[k]) > 1e-9}
    assert not wrong


# ---------------------------------------------------------------- config


MAPPING = {"metric": "calls", "timestamp": "$.at", "value": "$.n"}


@pytest.mark.parametrize(
    ("config", "field", "says"),
    [
        ({"mapping": MAPPING}, "config.secret", "give apiUrl"),
        ({"apiUrl": "https://h.example/m"}, "config.mapping", "required"),
        (
            {"apiUrl": "https://h.example/m", "mapping": {"metric": "m", "timestamp": "$.t"}},
            "config.mapping.value",
            "required",
        ),
        (
            {"apiUrl": "https://h.example/m", "mapping": {**MAPPING, "value": "$.stats["}},
            "config.mapping.value",
            "is not a JSONPath",
        ),
        (
            {
                "apiUrl": "https://h.example/m",
                "mapping": {**MAPPING, "records": "$.data[?(@.x==)]"},
            },
            "config.mapping.records",
            "is not a JSONPath",
        ),
        (
            {"apiUrl": "https://h.example/m", "mapping": {**MAPPING, "metric": "$.a b"}},
            "config.mapping.metric",
            "is not a JSONPath",
        ),
        (
            {"apiUrl": "https://h.example/m", "mapping": {**MAPPING, "dimensions": {"r": "a..["}}},
            "config.mapping.dimensions.r",
            "is not a JSONPath",
        ),
        (
            {"apiUrl": "https://h.example/m", "mapping": {**MAPPING, "aggregations": {"m": "p50"}}},
            "config.mapping.aggregations.m",
            "'sum', 'average', 'last', 'max' or 'min'",
        ),
        ({"secret": "short", "mapping": MAPPING}, "config.secret", "16 characters"),
        (
            {"apiUrl": "https://h.example/m", "headerName": "X-Key", "mapping": MAPPING},
            "config.headerValue",
            "required with headerName",
        ),
        ({"apiUrl": "not a url", "mapping": MAPPING}, "config.apiUrl", "URL"),
        (
            {"apiUrl": "https://h.example/m", "timezone": "Mars/Olympus", "mapping": MAPPING},
            "config.timezone",
            "IANA",
        ),
    ],
    ids=[
        "neither_url_nor_secret",
        "no_mapping",
        "no_value_path",
        "malformed_value_path",
        "malformed_filter",
        "malformed_metric_path",
        "malformed_dimension_path",
        "unknown_aggregation",
        "short_secret",
        "header_without_value",
        "bad_url",
        "unknown_time_zone",
    ],
)
def test_a_bad_config_is_refused_naming_the_field(client, factory, config, field, says):
    _, headers = person(factory)

    response = create(client, headers, {"platform": SLUG, **config})

    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == [field], errors
    assert says in errors[0]["message"]
    validated = client.post(
        "/api/integrations/calling/validate",
        headers=headers,
        json={"config": {"platform": SLUG, **config}},
    ).json()
    assert validated["valid"] is False
    assert [e["field"] for e in validated["errors"]] == [field]


def test_a_push_only_source_shows_its_webhook_url_and_never_its_secret(client, factory):
    _, headers = person(factory)
    config = {"platform": SLUG, "secret": "s" * 24, "mapping": MAPPING}

    response = create(client, headers, config)

    assert response.status_code == 201, response.text
    source = response.json()
    assert source["type"] == "calling"
    assert source["config"]["secret"] == {"set": True}
    assert source["webhookUrl"] == f"http://testserver/api/webhooks/{source['id']}"
    tested = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()
    assert tested["success"] is True
    assert "push mode" in tested["checks"][0]["message"]
    run = sync_and_wait(client, headers, source["id"])
    assert run["status"] == "succeeded"  # nothing to read: nothing stored, nothing failed
    assert points_of(factory, source["id"]) == set()


# ---------------------------------------------------------------- connection test


def test_the_connection_test_maps_the_first_items(client, factory, emu, deps: EngineDeps):
    _, headers = person(factory)
    source = create(client, headers, credentials(emu)).json()

    tested = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert tested["success"] is True, tested
    assert [c["name"] for c in tested["checks"]] == ["URL", "mapping"]
    assert "the first 20 of 50 items give" in tested["checks"][1]["message"]
    steps = asyncio.run(sync_engine.test_source(deps, uuid.UUID(source["id"])))
    details = steps[1].details
    assert (details["items"], details["sampled"], details["skipped"]) == (50, 20, 0)
    assert details["points"] > 0
    assert set(details["metrics"]) <= {"signups", "calls", "revenue", "wait_seconds"}


def test_the_connection_test_says_why_the_mapping_matches_nothing(
    client, factory, emu, deps: EngineDeps
):
    _, headers = person(factory)
    config = credentials(emu)
    config["mapping"] = {**config["mapping"], "value": "$.stats.count"}
    source = create(client, headers, config).json()

    tested = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert tested["success"] is False
    assert tested["checks"][1]["message"] == (
        "none of the first 20 items matches the mapping: item 0: no value at $.stats.count"
    )
    steps = asyncio.run(sync_engine.test_source(deps, uuid.UUID(source["id"])))
    assert steps[1].details["firstError"] == "item 0: no value at $.stats.count"
    health = client.get(f"/api/data-sources/{source['id']}", headers=headers).json()["health"]
    assert health["status"] == "failing"


def test_the_connection_test_says_when_records_finds_nothing(client, factory, emu):
    _, headers = person(factory)
    config = credentials(emu)
    config["mapping"] = {**config["mapping"], "records": "$.items[*]"}
    source = create(client, headers, config).json()

    tested = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert tested["success"] is False
    assert tested["checks"][1]["message"] == "records '$.items[*]' finds no items in the response"


def test_a_refused_header_asks_to_fix_the_credentials(client, factory, emu):
    _, headers = person(factory)
    config = {**credentials(emu), "headerValue": "ck_wrong"}
    source = create(client, headers, config).json()

    tested = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert tested["success"] is False
    assert "check headerName and headerValue" in tested["checks"][0]["message"]
    assert "ck_wrong" not in str(tested)
    health = client.get(f"/api/data-sources/{source['id']}", headers=headers).json()["health"]
    assert health["status"] == "needs_reauth"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8900/custom/metrics", "only https:// URLs are allowed"),
        ("https://10.1.2.3/metrics", "resolves to a private or reserved address"),
        ("https://169.254.169.254/latest/meta-data", "resolves to a private or reserved address"),
    ],
    ids=["plain_http_loopback", "private_network", "cloud_metadata"],
)
def test_a_private_url_is_refused_when_private_urls_are_not_allowed(
    engine, sandbox, tmp_path, factory, emu, url, says
):
    settings = Settings(data_dir=tmp_path / "strict", allow_private_urls=False)
    app = create_app(
        settings, engine=engine, migrate=False, transport=httpx.ASGITransport(app=sandbox)
    )
    _, headers = person(factory)
    with TestClient(app) as client:
        source = create(client, headers, {**credentials(emu), "apiUrl": url}).json()

        tested = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()
        run = sync_and_wait(client, headers, source["id"])

    assert tested["success"] is False
    check = tested["checks"][0]
    assert check["name"] == "URL allowed"
    assert check["message"].startswith("Inflow does not call ")
    assert says in check["message"]
    assert run["status"] == "failed"
    assert says in run["error"]["message"]
    assert emu.get(f"/_sandbox/{SLUG}/stats").json()["total"] == 0  # nothing was sent


# ---------------------------------------------------------------- pull


def test_a_pull_sync_stores_what_the_emulator_served(client, factory, emu):
    configure(emu, days=21, perDay=40, pageSize=64, badItems=9)
    items = raw_items(emu)
    assert len(items) == 21 * 40
    want = expected(items)
    _, headers = person(factory)
    source = create(client, headers, credentials(emu)).json()

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] == len(want)
    assert_same(stored(factory, source["id"]), want)
    # the bad items are skipped, counted and explained in the run
    timeline = client.get(f"/api/runs/{run['id']}", headers=headers).json()["timeline"]
    assert timeline["skipped"]["items"] == 9
    # ... naming the provider and the request (the first page's), then the item
    first = "Custom source answered GET /custom/metrics with an unexpected item: item 0: "
    assert timeline["skipped"]["reasons"][0].startswith(first)
    assert timeline["requests"] == -(-len(items) // 64)  # every page, by the next links
    # a second sync restates the same values: nothing changes
    again = sync_and_wait(client, headers, source["id"])
    assert again["counts"] == {**run["counts"], "created": 0, "unchanged": len(want)}


def test_the_users_aggregations_rule_the_series(client, factory, emu):
    configure(emu, days=7, perDay=60, badItems=0)
    items = raw_items(emu)
    _, headers = person(factory)
    source = create(client, headers, credentials(emu)).json()
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"
    by_day: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        day = item["recordedAt"][:10]
        by_day[item["event"]["name"]][day].append(float(item["stats"]["value"]))
    first, last = min(by_day["calls"]), max(by_day["calls"])

    def series(metric: str) -> dict[str, Any]:
        params = {"metric": metric, "sourceId": source["id"], "from": first, "to": last}
        response = client.get("/api/data-points", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    waits = series("wait_seconds")  # declared "average": weighted by readings, never summed
    assert waits["unit"] == "seconds"
    for point in waits["points"]:
        values = by_day["wait_seconds"][point["periodStart"][:10]]
        assert point["value"] == pytest.approx(sum(values) / len(values))
    revenue = series("revenue")  # undeclared: summed
    assert revenue["unit"] == "EUR"
    for point in revenue["points"]:
        assert point["value"] == pytest.approx(sum(by_day["revenue"][point["periodStart"][:10]]))
    unknown = client.get("/api/data-points", headers=headers, params={"metric": "no_such_metric_x"})
    assert unknown.status_code == 200  # a path-named metric of a custom source may be any key


def test_a_formula_may_use_the_metrics_the_users_custom_source_gives(client, factory, emu):
    configure(emu, days=3, perDay=30, badItems=0)
    items = raw_items(emu)
    _, headers = person(factory)
    _, stranger = person(factory)
    source = create(client, headers, credentials(emu)).json()
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"
    body = {"key": "revenue_k", "label": "Revenue (k)", "unit": "kEUR", "formula": "revenue / 1000"}

    mine = client.post("/api/metrics", headers=headers, json=body)
    theirs = client.post("/api/metrics", headers=stranger, json=body)
    params = {"metric": "revenue_k", "sourceId": source["id"]}
    got = client.get("/api/data-points", headers=headers, params=params).json()

    assert mine.status_code == 201, mine.text
    assert theirs.status_code == 422  # no source of theirs gives "revenue"
    assert "revenue" in theirs.text
    revenue: dict[str, float] = defaultdict(float)
    for item in items:
        if item["event"]["name"] == "revenue":
            revenue[item["recordedAt"][:10]] += float(item["stats"]["value"])
    assert {p["periodStart"][:10]: p["value"] for p in got["points"]} == pytest.approx(
        {day: total / 1000 for day, total in revenue.items()}
    )


def test_a_constant_metric_key_and_a_week_granularity(client, factory, emu):
    configure(emu, days=28, perDay=12, badItems=0)
    items = raw_items(emu)
    _, headers = person(factory)
    config = credentials(emu)
    config["mapping"] = {
        **config["mapping"],
        "metric": "events",
        "value": "$.stats.value",
        "dimensions": {},
        "granularity": "week",
        "aggregations": {"events": "max"},
    }
    source = create(client, headers, config).json()

    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"

    weeks: dict[str, float] = {}
    for item in items:
        day = datetime.fromisoformat(item["recordedAt"]).date()
        monday = day - timedelta(days=day.weekday())
        start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC).isoformat()
        weeks[start] = max(weeks.get(start, float("-inf")), float(item["stats"]["value"]))
    got = {k[1]: v for k, v in stored(factory, source["id"]).items()}
    assert {k[0] for k in stored(factory, source["id"])} == {"events"}
    assert got == pytest.approx(weeks)


# ---------------------------------------------------------------- push


def push(emu: TestClient, source_id: str, **body: Any) -> dict[str, Any]:
    """The signed request the emulator says a user's system would send."""
    url = f"http://testserver/api/webhooks/{source_id}"
    response = emu.post(f"/{SLUG}/_sandbox/webhook", json={"url": url, **body})
    assert response.status_code == 200, response.text
    described: dict[str, Any] = response.json()
    assert described["headers"]["x-inflow-signature"].startswith("sha256=")
    return described


def deliver(client: TestClient, described: dict[str, Any], **changes: Any) -> httpx.Response:
    body = changes.pop("body", base64.b64decode(described["bodyBase64"]))
    headers = {**described["headers"], **changes}
    path = described["url"].removeprefix("http://testserver")
    response: httpx.Response = client.post(path, content=body, headers=headers)
    return response


def test_a_signed_push_is_stored_and_a_replay_refused(client, factory, emu):
    _, headers = person(factory)
    source = create(client, headers, credentials(emu)).json()
    described = push(emu, source["id"])
    sent = json.loads(described["body"])
    today = datetime.now(UTC).date().isoformat()
    assert sent == [i for i in raw_items(emu) if i["recordedAt"].startswith(today)]

    response = deliver(client, described)

    assert response.status_code == 204, response.text
    assert_same(stored(factory, source["id"]), expected(sent))
    replay = deliver(client, described)
    assert replay.status_code == 401
    assert "replay" in replay.json()["detail"]


@pytest.mark.parametrize(
    "forgery", ["wrong_secret", "tampered_body", "new_event_id", "stale", "unsigned"]
)
def test_a_forged_push_is_refused_and_stores_nothing(client, factory, emu, forgery):
    _, headers = person(factory)
    source = create(client, headers, credentials(emu)).json()
    if forgery == "wrong_secret":
        response = deliver(client, push(emu, source["id"], secret="whsec_someone_else_000001"))
    elif forgery == "tampered_body":
        described = push(emu, source["id"], items=[{"id": "x", "recordedAt": "2026-01-01",
                                                    "event": {"name": "calls"}, "stats": {"value": 1},
                                                    "region": "eu", "channel": {"name": "ads"}}])  # fmt: skip
        response = deliver(client, described, body=described["body"].replace("1}", "9}").encode())
    elif forgery == "new_event_id":  # the event id is signed: a captured push under a new id
        response = deliver(client, push(emu, source["id"]), **{"x-inflow-event-id": "evt_new"})
    elif forgery == "stale":
        old = int(datetime.now(UTC).timestamp()) - 600
        response = deliver(client, push(emu, source["id"], timestamp=old))
    else:
        described = push(emu, source["id"])
        described["headers"].pop("x-inflow-signature")
        response = deliver(client, described)

    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    says = {"stale": "older than 300 s", "unsigned": "missing header(s): x-inflow-signature"}
    assert says.get(forgery, "x-inflow-signature does not match") in response.json()["detail"]
    assert points_of(factory, source["id"]) == set()


def test_a_push_with_an_item_the_mapping_cannot_read_is_refused_whole(client, factory, emu):
    _, headers = person(factory)
    source = create(client, headers, credentials(emu)).json()
    good = {"id": "a", "recordedAt": "2026-01-05T10:00:00Z", "event": {"name": "calls"},
            "stats": {"value": 3}, "region": "eu", "channel": {"name": "ads"}}  # fmt: skip
    bad = {**good, "id": "b", "stats": {"value": "n/a"}}
    described = push(emu, source["id"], items=[good, bad], eventId="evt_bad_1")

    response = deliver(client, described)

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "body.1", "message": "the value at $.stats.value is 'n/a', not a number"}
    ]
    assert points_of(factory, source["id"]) == set()
    fixed = deliver(client, push(emu, source["id"], items=[good], eventId="evt_bad_1"))
    assert fixed.status_code == 204  # the refused delivery did not use up its event id


def test_a_test_may_follow_a_metric_the_users_custom_source_declares(client, factory, emu):
    _, headers = person(factory)
    _, stranger = person(factory)
    assert create(client, headers, credentials(emu)).status_code == 201
    body = {"name": "Shorter queue", "startDate": "2025-05-08", "metric": "wait_seconds"}

    mine = client.post("/api/tests", headers=headers, json=body)
    theirs = client.post("/api/tests", headers=stranger, json=body)

    assert mine.status_code == 201, mine.text
    assert mine.json()["metric"] == "wait_seconds"
    assert theirs.status_code == 422  # no source of theirs names that metric

"""Microsoft Clarity through the API against its emulator, on SQLite and PostgreSQL: the
connection test, a fetch (every metric block, popular pages by URL), sync and re-sync, the
ten-calls-a-day quota (refused before sending, shared between processes and with other
clients of the project), ranges the API cannot serve, refused tokens, schedules that would
overspend the quota, and the parsing of dimensions and the field names' drift."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.services.demo import DEMO_SCHEDULE, seed_sources
from inflow.connectors import get_connector
from inflow.connectors.microsoft_clarity import CONNECTOR, PATH, insights
from inflow.connectors.spec import Window
from inflow.sandbox.microsoft_clarity import OTHER_TOKEN, REVOKED_TOKEN, TOKEN
from inflow.storage.models import QuotaUsage
from tests.sync.helpers import (
    EXAMPLE,
    ROOT,
    SandboxControl,
    child_env,
    create_source,
    health,
    person,
    points_of,
    sync_and_wait,
)

if TYPE_CHECKING:
    from starlette.testclient import TestClient

SLUG = "microsoft_clarity"
LIMIT = 10
# Clarity's blocks and row fields → our metric keys: written out here, independently of the
# connector's own tables, as the oracle for the emulator's bodies.
TRAFFIC = {
    "totalSessionCount": "sessions",
    "totalBotSessionCount": "bot_sessions",
    "distinctUserCount": "distinct_users",
    "distantUserCount": "distinct_users",
    "pagesPerSessionPercentage": "pages_per_session",
    "PagesPerSessionPercentage": "pages_per_session",
}
ROWS = {
    "Traffic": TRAFFIC,
    "EngagementTime": {"totalTime": "engagement_time", "activeTime": "active_time"},
    "ScrollDepth": {"averageScrollDepth": "scroll_depth"},
    **{
        block: {
            "subTotal": key,
            "sessionsWithMetricPercentage": f"{key}_sessions_pct",
            "pagesViews": f"{key}_page_views",
        }
        for block, key in {
            "DeadClickCount": "dead_clicks",
            "RageClickCount": "rage_clicks",
            "QuickbackClick": "quickbacks",
            "ExcessiveScroll": "excessive_scrolls",
            "ScriptErrorCount": "script_errors",
            "ErrorClickCount": "error_clicks",
        }.items()
    },
}
LISTS = {
    "PopularPages": ("page_visits", "url", "url", "visitsCount"),
    "Browser": ("browser_sessions", "browser", "name", "sessionsCount"),
    "Device": ("device_sessions", "device", "name", "sessionsCount"),
    "OS": ("os_sessions", "os", "name", "sessionsCount"),
    "Country": ("country_sessions", "country", "name", "sessionsCount"),
    "PageTitle": ("page_title_sessions", "page_title", "name", "sessionsCount"),
    "ReferrerUrl": ("referrer_sessions", "referrer", "name", "sessionsCount"),
}
DIMS = {"OS": "os", "URL": "url", "Url": "url", "Device": "device", "Country/Region": "country"}

Point = tuple[str, tuple[tuple[str, str], ...], float]
Factory = sessionmaker[Session]


def oracle(body: list[dict[str, Any]]) -> set[Point]:
    """(metric, dimensions, value) of every number in a Clarity response body: a block or a
    field the body lacks is no point (never a zero)."""
    out: set[Point] = set()
    for block in body:
        name, rows = block["metricName"], block["information"]
        if name in LISTS:
            metric, dim, label, field = LISTS[name]
            out |= {
                (metric, ((dim, row[label] or "(none)"),), float(row[field]))
                for row in rows
                if field in row
            }
            continue
        for row in rows:
            dims = tuple(sorted((DIMS[k], v) for k, v in row.items() if k in DIMS))
            out |= {(ROWS[name][k], dims, float(v)) for k, v in row.items() if k in ROWS[name]}
    return out


def as_points(points: list[dict[str, Any]]) -> set[Point]:
    return {(p["metric"], tuple(sorted(p["dimensions"].items())), p["value"]) for p in points}


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def same_hour() -> None:
    """A call's numbers are the whole hours before it: keep a test inside one hour."""
    left = 3600 - time.time() % 3600
    if left < 20:
        time.sleep(left + 0.5)


def configure(sb: SandboxControl, **body: Any) -> dict[str, Any]:
    response = sb.http.post(f"/_sandbox/{SLUG}/config", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def export(sb: SandboxControl, token: str = TOKEN, **params: Any) -> list[dict[str, Any]]:
    """The raw export as a client calls it (one of its project's daily calls). The numbers of
    the calls of one hour agree: a test reads them after Inflow, in the same hour."""
    auth = {"Authorization": f"Bearer {token}"}
    response = sb.http.get(f"/{SLUG}{PATH}", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def spent(sb: SandboxControl, token: str = TOKEN) -> bool:
    """Whether the token's project has no export call left today (Clarity's 429)."""
    auth = {"Authorization": f"Bearer {token}"}
    response = sb.http.get(f"/{SLUG}{PATH}", params={"numOfDays": 1}, headers=auth)
    assert response.status_code in (200, 429), response.text
    return response.status_code == 429 and response.text == "Exceeded daily limit"


def calls(sb: SandboxControl) -> dict[str, Any]:
    """The emulator's counters for its one endpoint: calls made and their statuses."""
    body = sb.http.get(f"/_sandbox/{SLUG}/stats").json()
    return {"calls": body["byEndpoint"].get(f"GET {PATH}", 0), "statuses": body["byStatus"]}


def config(sb: SandboxControl, **override: Any) -> dict[str, Any]:
    return {**sb.credentials()[SLUG]["config"], **override}


def clarity_source(
    client: TestClient, headers: dict[str, str], sb: SandboxControl, **override: Any
) -> dict[str, Any]:
    return create_source(client, headers, SLUG, config(sb, **override))


NOW = "now"  # a fetch of the last 24 hours (numOfDays=1): startDate is now


def fetch(client: TestClient, headers: dict[str, str], source_id: str, **body: Any) -> Any:
    if body.get("startDate") == NOW:
        body["startDate"] = datetime.now(UTC).isoformat()
    return client.post(f"/api/data-sources/{source_id}/fetch", headers=headers, json=body)


def used_today(factory: Factory, project: str = "inflowdemo") -> int:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with factory() as session:
        used = session.execute(
            select(QuotaUsage.used).where(
                QuotaUsage.key == f"{SLUG}:{project}", QuotaUsage.window_start == start
            )
        ).scalar_one_or_none()
    return int(used or 0)


def next_midnight() -> str:
    today = datetime.now(UTC).date()
    return f"{today + timedelta(days=1)}T00:00:00Z"


# ---------------------------------------------------------------- catalog and declarations


def test_catalog_is_what_clarity_serves_with_the_right_aggregation(
    client: TestClient, factory: Factory
) -> None:
    _, headers = person(factory)
    listed = client.get(f"/api/integrations/{SLUG}/metrics", headers=headers).json()
    keys = {m["key"] for m in listed}
    assert keys == {m for rows in ROWS.values() for m in rows.values()} | {
        v[0] for v in LISTS.values()
    }
    text = {m["key"]: m["description"] for m in listed}
    assert "no bounce rate" in text["sessions"]
    assert '"Top pages"' in text["page_visits"]
    connector = get_connector(SLUG)
    assert connector is CONNECTOR
    assert connector.category == "analytics"
    rules = {m.key: (m.aggregation, m.weight_metric) for m in connector.metrics}
    for key in ("sessions", "bot_sessions", "dead_clicks", "quickbacks_page_views", "page_visits"):
        assert rules[key] == ("sum", None)
    for key in ("pages_per_session", "engagement_time", "active_time", "scroll_depth"):
        assert rules[key] == ("average", "sessions")
    assert rules["rage_clicks_sessions_pct"] == ("ratio", "sessions")
    assert rules["distinct_users"] == ("max", None)  # not additive across days
    assert connector.history == connector.max_range == timedelta(days=3)
    assert connector.quota is not None
    assert (connector.quota.limit, connector.quota.per) == (LIMIT, "day")
    schema = client.get("/api/integrations/types", headers=headers).json()
    clarity = next(t for t in schema if t["type"] == SLUG)
    props = clarity["configSchema"]["properties"]
    assert set(props) == {"projectId", "apiKey", "baseUrl"}
    assert props["apiKey"]["writeOnly"] is True
    assert props["baseUrl"]["default"] == "https://www.clarity.ms/"


# ---------------------------------------------------------------- test, fetch, sync


def test_connection_test_spends_one_call(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)

    result = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert result["success"] is True, result
    assert "one of the project's ten export calls" in result["checks"][0]["message"]
    assert health(client, headers, source["id"])["status"] == "ok"
    assert calls(sb)["calls"] == 1
    assert used_today(factory) == 1


def test_fetch_gives_every_metric_block_and_popular_pages_by_url(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)
    now = datetime.now(UTC)
    start = now - timedelta(hours=30)  # 30 hours back: numOfDays=2 (48 hours)

    response = fetch(client, headers, source["id"], startDate=start.isoformat())

    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True, body
    assert calls(sb) == {"calls": 1, "statuses": {"200": 1}}
    got = as_points(body["dataPoints"])
    assert got == oracle(export(sb, numOfDays=2))
    assert {p[0] for p in got} == {m.key for m in CONNECTOR.metrics}  # every block, every metric
    pages = {p[1][0][1]: p[2] for p in got if p[0] == "page_visits"}
    assert len(pages) == 12
    assert "https://www.example.com/" in pages
    assert sum(pages.values()) > 0
    end = hour_floor(now)
    for point in body["dataPoints"]:
        assert point["periodEnd"] == end.isoformat().replace("+00:00", "Z")
        assert point["periodStart"] == (end - timedelta(days=2)).isoformat().replace("+00:00", "Z")
        assert point["complete"] is True
        assert point["granularity"] == "48h"  # the rolling window it is, not a "day"
        assert point["sourceId"] == source["id"]


def test_create_all_takes_the_fetched_points_back_unchanged_then_a_sync_adds_its_24h(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)
    start = datetime.now(UTC) - timedelta(hours=60)  # numOfDays=3: the last 72 hours

    fetched = fetch(client, headers, source["id"], startDate=start.isoformat()).json()
    stored = client.post(
        "/api/data-points", headers=headers, json={"dataPoints": fetched["dataPoints"]}
    )
    run = sync_and_wait(client, headers, source["id"])

    assert stored.status_code == 200, stored.text
    assert stored.json()["created"] == len(fetched["dataPoints"])
    assert run["status"] == "succeeded", run
    raw = client.get(
        "/api/data-points/raw", headers=headers, params={"sourceId": source["id"], "limit": 1000}
    ).json()["items"]
    kinds = {p["granularity"] for p in raw}
    assert kinds == {"72h", "24h"}  # both windows kept, each as what it is
    # a series reads the shorter window where they overlap: the sync's 24 hours, not both
    series = client.get(
        "/api/data-points",
        headers=headers,
        params={"metric": "sessions", "sourceId": source["id"]},
    ).json()
    want = sum(v for m, dims, v in oracle(export(sb, numOfDays=1)) if m == "sessions" and not dims)
    assert [p["value"] for p in series["points"]] == [want]


def test_sync_stores_the_last_24_hours_and_a_resync_creates_nothing(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)

    first = sync_and_wait(client, headers, source["id"])
    second = sync_and_wait(client, headers, source["id"])

    assert calls(sb)["calls"] == 2 == used_today(factory)
    want = oracle(export(sb, numOfDays=1))
    assert first["status"] == "succeeded", first
    end = hour_floor(datetime.now(UTC))
    start = (end - timedelta(days=1)).isoformat()
    stored = points_of(factory, source["id"])
    assert {(m, s, v) for m, s, _, v in stored} == {(m, start, v) for m, _, v in want}
    assert len(stored) == len(want) == first["counts"]["created"]
    assert second["status"] == "succeeded", second
    assert second["counts"] == {
        "created": 0,
        "updated": 0,
        "unchanged": len(want),
        "deleted": 0,
    }


def test_the_official_samples_field_names_give_the_same_metrics(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    configure(sb, volume={"docSpelling": 1})
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)

    body = fetch(client, headers, source["id"], startDate=datetime.now(UTC).isoformat()).json()

    assert body["success"] is True, body
    assert as_points(body["dataPoints"]) == oracle(export(sb, numOfDays=1))
    assert {"distinct_users", "pages_per_session", "active_time"} <= {
        p["metric"] for p in body["dataPoints"]
    }


def test_a_block_or_field_clarity_leaves_out_is_no_point(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    # every 4th metric block is absent from the answer, and every 7th number of the rest
    configure(sb, volume={"missingBlocks": 4, "missingFields": 7})
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)

    fetched = fetch(client, headers, source["id"], startDate=NOW).json()
    run = sync_and_wait(client, headers, source["id"])

    raw = export(sb, numOfDays=1)  # the same hour: the numbers Inflow read
    want = oracle(raw)
    assert fetched["success"] is True, fetched
    assert as_points(fetched["dataPoints"]) == want
    assert len(fetched["dataPoints"]) == len(want)
    assert run["status"] == "succeeded", run
    end = hour_floor(datetime.now(UTC))
    start = (end - timedelta(days=1)).isoformat()
    stored = points_of(factory, source["id"])
    assert {(m, s, v) for m, s, _, v in stored} == {(m, start, v) for m, _, v in want}
    assert len(stored) == len(want) == run["counts"]["created"]
    # what the answer lacked is missing from the points, never a zero in its place
    present = {block["metricName"] for block in raw}
    gone = (set(ROWS) | set(LISTS)) - present
    assert len(gone) == 4  # sixteen blocks, every 4th left out
    lacking = {m for name in gone for m in (ROWS[name].values() if name in ROWS else [LISTS[name][0]])}  # fmt: skip
    got = {p["metric"] for p in fetched["dataPoints"]}
    assert not lacking & got
    fields = {m for name in present & set(ROWS) for m in ROWS[name].values()}
    assert fields - got  # a field absent from every row of its block: no metric at all
    unlabelled = [
        (LISTS[b["metricName"]][0], row[LISTS[b["metricName"]][2]] or "(none)")
        for b in raw
        if b["metricName"] in LISTS
        for row in b["information"]
        if LISTS[b["metricName"]][3] not in row
    ]
    assert unlabelled  # a top-list item without its count
    listed = {(p["metric"], next(iter(p["dimensions"].values()))) for p in fetched["dataPoints"] if p["metric"] in {v[0] for v in LISTS.values()}}  # fmt: skip
    assert not set(unlabelled) & listed


# ---------------------------------------------------------------- the daily quota


def test_a_spent_quota_refuses_before_calling_and_names_the_reset(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)
    assert client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()["success"]
    for _ in range(LIMIT - 2):
        assert fetch(client, headers, source["id"], startDate=NOW).json()["success"] is True
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"
    assert calls(sb)["calls"] == LIMIT == used_today(factory)

    refused = fetch(client, headers, source["id"], startDate=NOW).json()
    run = sync_and_wait(client, headers, source["id"])
    test = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert refused["success"] is False
    assert f"resets at {next_midnight()}" in refused["message"]
    assert "no request was sent" in refused["message"]
    assert run["status"] == "failed"
    assert run["error"]["type"] == "RateLimitedError"
    assert run["error"]["retryAt"][:19] == next_midnight()[:19]  # until the quota resets
    assert f"resets at {next_midnight()}" in run["error"]["message"]
    assert test["success"] is False
    assert test["checks"][0]["name"] == "daily quota"
    assert calls(sb) == {"calls": LIMIT, "statuses": {"200": LIMIT}}  # not one call more
    assert spent(sb)  # Clarity agrees: the project's ten calls are gone
    assert not spent(sb, OTHER_TOKEN)


def test_quota_is_per_project_and_shared_by_its_sources(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    one = clarity_source(client, headers, sb)
    two = clarity_source(client, headers, sb)  # the same project: the same ten calls
    other = clarity_source(client, headers, sb, projectId="inflowtwo", apiKey=OTHER_TOKEN)
    for i in range(LIMIT):
        assert fetch(client, headers, (one, two)[i % 2]["id"], startDate=NOW).json()["success"]

    assert fetch(client, headers, two["id"], startDate=NOW).json()["success"] is False
    assert fetch(client, headers, other["id"], startDate=NOW).json()["success"] is True
    assert calls(sb)["calls"] == LIMIT + 1
    assert spent(sb)
    assert [spent(sb, OTHER_TOKEN) for _ in range(LIMIT)] == [False] * (LIMIT - 1) + [True]


def test_calls_by_other_clients_end_in_a_429_that_marks_the_day_spent(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(LIMIT):  # a user's own script spends the project's calls
        sb.http.get(f"/{SLUG}{PATH}", params={"numOfDays": 1}, headers=auth)

    refused = fetch(client, headers, source["id"], startDate=NOW).json()
    test = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert refused["success"] is False
    assert "used up (429)" in refused["message"]
    assert used_today(factory) == LIMIT  # the 429 told us: nothing more is sent today
    assert test["success"] is False
    assert test["checks"][0]["name"] == "daily quota"
    assert calls(sb) == {"calls": LIMIT + 1, "statuses": {"200": LIMIT, "429": 1}}


def test_a_429_in_the_connection_test_still_proves_the_token(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(LIMIT):
        sb.http.get(f"/{SLUG}{PATH}", params={"numOfDays": 1}, headers=auth)

    result = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()

    assert result["success"] is True, result
    assert "used up (429)" in result["checks"][0]["message"]


def test_server_errors_are_retried_once_since_every_try_costs_a_call(
    client: TestClient, factory: Factory, sb: SandboxControl, fast_retries: None
) -> None:
    configure(sb, faults={"errorRate": 1.0})
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)

    result = fetch(client, headers, source["id"], startDate=NOW).json()

    assert result["success"] is False
    assert calls(sb)["calls"] == 2 == used_today(factory)


TAKER = """
import sys
from datetime import datetime, UTC
from inflow.storage.db import create_db_engine, make_session_factory
from inflow.storage.quota import take_call
factory = make_session_factory(create_db_engine(sys.argv[1]))
start = datetime(2026, 1, 1, tzinfo=UTC)
took = 0
for _ in range(12):
    with factory() as session:
        took += take_call(session, key="microsoft_clarity:race", window_start=start, limit=10) is not None
        session.commit()
print(took)
"""


def test_two_processes_cannot_spend_more_than_the_quota(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, url],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]

    assert all(p.returncode == 0 for p in procs), outputs
    assert sum(int(out) for out, _ in outputs) == LIMIT
    with engine.connect() as conn:
        assert conn.execute(select(QuotaUsage.used)).scalar_one() == LIMIT


# ---------------------------------------------------------------- refusals


def test_a_range_clarity_cannot_serve_is_refused_without_a_call(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb)
    start = (datetime.now(UTC) - timedelta(days=5)).isoformat()

    response = fetch(client, headers, source["id"], startDate=start)

    if response.status_code == 422:  # the fetch route checks the connector's history
        assert "3 days" in response.text or "72 hours" in response.text, response.text
    else:
        body = response.json()
        assert response.status_code == 200
        assert body["success"] is False, body
        assert "only the last 72 hours" in body["message"]
    assert calls(sb)["calls"] == 0 == used_today(factory)


@pytest.mark.parametrize(
    ("token", "status"),
    [
        pytest.param("not-a-clarity-token", "401", id="malformed"),
        pytest.param(REVOKED_TOKEN, "403", id="creator_removed"),
    ],
)
def test_a_refused_token_needs_reauth(
    client: TestClient, factory: Factory, sb: SandboxControl, token: str, status: str
) -> None:
    _, headers = person(factory)
    source = clarity_source(client, headers, sb, apiKey=token)

    result = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()
    run = sync_and_wait(client, headers, source["id"])

    assert result["success"] is False
    assert f"({status}" in result["message"]
    assert run["status"] == "failed"
    assert run["error"]["type"] == "CredentialsError"
    assert health(client, headers, source["id"])["status"] == "needs_reauth"
    assert calls(sb)["statuses"] == {status: 2}


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [
        pytest.param("@daily", True, id="daily"),
        pytest.param("30 0 * * *", True, id="cron_daily"),
        pytest.param("every 3h", True, id="eight_a_day"),
        pytest.param("@hourly", False, id="hourly"),
        pytest.param("0 */2 * * *", False, id="cron_twelve_a_day"),
        pytest.param("every 2h", False, id="twelve_a_day"),
    ],
)
def test_a_schedule_that_would_overspend_the_quota_is_refused(
    client: TestClient, factory: Factory, sb: SandboxControl, schedule: str, ok: bool
) -> None:
    _, headers = person(factory)
    body = {"name": "clarity", "type": SLUG, "config": config(sb), "schedule": schedule}

    created = client.post("/api/data-sources", headers=headers, json=body)

    if ok:
        assert created.status_code == 201, created.text
        return
    assert created.status_code == 422, created.text
    error = created.json()["errors"][0]
    assert error["field"] == "schedule"
    assert "allows 10 calls per day" in error["message"]
    source = clarity_source(client, headers, sb)
    patched = client.patch(
        f"/api/data-sources/{source['id']}", headers=headers, json={"schedule": schedule}
    )
    assert patched.status_code == 422, patched.text


def test_the_demo_seeds_clarity_on_a_schedule_within_its_quota(
    client: TestClient, factory: Factory, sb: SandboxControl
) -> None:
    admin, headers = person(factory, role="admin")
    vault = client.app.state.vault  # type: ignore[attr-defined]
    credentials = {SLUG: {"config": config(sb)}, "example": {"config": EXAMPLE}}

    ids = seed_sources(factory, vault, admin_id=admin.id, credentials=credentials)

    schedules = {
        s["type"]: s["schedule"]
        for s in (client.get(f"/api/data-sources/{i}", headers=headers).json() for i in ids)
    }
    assert schedules == {SLUG: "@daily", "example": DEMO_SCHEDULE}


# ---------------------------------------------------------------- parsing


def _ctx(days: float | None) -> Any:
    window = None
    if days is not None:
        window = Window(datetime.now(UTC) - timedelta(days=days), datetime.now(UTC))
    return SimpleNamespace(window=window, config=None, parent=None)


def test_dimension_rows_and_spaced_names_from_the_docs_parse() -> None:
    blocks: list[Mapping[str, Any]] = [
        {
            "metricName": "Traffic",
            "information": [
                {
                    "totalSessionCount": "9554",
                    "totalBotSessionCount": "8369",
                    "distantUserCount": "189733",
                    "PagesPerSessionPercentage": 1.0931,
                    "OS": "Other",
                },
                {
                    "totalSessionCount": "291942",
                    "totalBotSessionCount": "31076",
                    "distantUserCount": "212836",
                    "PagesPerSessionPercentage": 2.2609,
                    "OS": "Android",
                },
            ],
        },
        {
            "metricName": "Scroll Depth",
            "information": [{"averageScrollDepth": 45.2, "OS": "Android"}],
        },
        {
            "metricName": "Dead Click Count",
            "information": [
                {
                    "sessionsCount": "100",
                    "sessionsWithMetricPercentage": 15.5,
                    "sessionsWithoutMetricPercentage": 84.5,
                    "pagesViews": "42",
                    "subTotal": "95",
                    "Url": "https://www.example.com/a?utm_source=x",
                }
            ],
        },
        {"metricName": "ReferrerUrl", "information": [{"name": None, "sessionsCount": "43"}]},
        {"metricName": "Smart Events", "information": [{"whatever": "1"}]},  # not in the catalog
    ]

    points = list(insights(blocks, _ctx(None)))

    got = {(p.metric, tuple(sorted(p.dimensions.items())), p.value, p.weight) for p in points}
    android, other = (("os", "Android"),), (("os", "Other"),)
    url = (("url", "https://www.example.com/a?utm_source=x"),)
    assert got == {
        ("sessions", other, 9554.0, None),
        ("bot_sessions", other, 8369.0, None),
        ("distinct_users", other, 189733.0, None),
        ("pages_per_session", other, 1.0931, 9554.0),
        ("sessions", android, 291942.0, None),
        ("bot_sessions", android, 31076.0, None),
        ("distinct_users", android, 212836.0, None),
        ("pages_per_session", android, 2.2609, 291942.0),
        ("scroll_depth", android, 45.2, 291942.0),  # weighted by the same row's sessions
        ("dead_clicks", url, 95.0, None),
        ("dead_clicks_sessions_pct", url, 15.5, 100.0),
        ("dead_clicks_page_views", url, 42.0, None),
        ("referrer_sessions", (("referrer", "(none)"),), 43.0, None),
    }
    end = hour_floor(datetime.now(UTC))
    assert {(p.period_start, p.period_end, p.timezone) for p in points} == {
        (end - timedelta(days=1), end, "UTC")
    }


def test_the_emulators_three_dimensions_parse_and_add_up(sb: SandboxControl) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    params: dict[str, Any] = {
        "numOfDays": 3,
        "dimension1": "OS",
        "dimension2": "URL",
        "dimension3": "Device",
    }
    response = sb.http.get(f"/{SLUG}{PATH}", params=params, headers=auth)
    assert response.status_code == 200, response.text

    points = list(insights(response.json(), _ctx(2.5)))

    sessions = [p for p in points if p.metric == "sessions"]
    assert len(sessions) == 5 * 12 * 3
    assert all(set(p.dimensions) == {"os", "url", "device"} for p in sessions)
    traffic = next(b for b in export(sb, numOfDays=3) if b["metricName"] == "Traffic")
    assert sum(p.value for p in sessions) == int(traffic["information"][0]["totalSessionCount"])
    end = hour_floor(datetime.now(UTC))
    assert {p.period_start for p in points} == {end - timedelta(days=3)}
    by_dims = {tuple(sorted(p.dimensions.items())): p.value for p in sessions}
    depth = [p for p in points if p.metric == "scroll_depth"]
    assert len(depth) == len(sessions)
    assert all(p.weight == by_dims[tuple(sorted(p.dimensions.items()))] for p in depth)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param({"numOfDays": 4}, 400, id="four_days"),
        pytest.param({}, 400, id="no_days"),
        pytest.param({"numOfDays": 1, "dimension1": "Popular Pages"}, 400, id="metric_as_dim"),
        pytest.param({"numOfDays": 1, "dimension4": "OS"}, 400, id="fourth_dimension"),
        pytest.param({"numOfDays": 1, "dimension1": "Country/Region"}, 200, id="country"),
    ],
)
def test_the_emulator_refuses_what_clarity_refuses(
    sb: SandboxControl, params: dict[str, Any], status: int
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = sb.http.get(f"/{SLUG}{PATH}", params=params, headers=auth)
    assert response.status_code == status
    if status == 400:
        assert response.content == b""

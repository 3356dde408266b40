"""Instagram through the API against its Graph emulator, on both databases: the connection test
(working, refused or expired token, missing insights permission, retired metrics named), the
fetch preview (values equal what the test reads itself from Graph's insights, Graph's UTC-7
days, no zeros where Graph has no entry: a day, a metric's day or a post's metric Graph has no
data for is no point), syncs (account insights, profile snapshot and per-post
insights stored as the API shows them at the sync's start or end, a re-sync creates nothing), throttling with Graph's codes and usage headers waited out, a version that no longer
serves a metric reported and skipped."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors.records import dimensions_key
from inflow.sandbox import create_app as create_sandbox
from inflow.sandbox.instagram import ACCOUNT_ID, EXPIRED_TOKEN, TOKEN
from inflow.storage.models import DataPoint
from tests.providers.moments import HeldClock, assert_between
from tests.sync.helpers import (
    SandboxControl,
    create_source,
    health,
    person,
    poll_run,
    start_sync,
    sync_and_wait,
)

# The sync tests' fixtures: the API on a real database, calling the in-process sandbox.
# The dossier's account metrics (§3.2, §6, §8), written out here: time series (the value at
# `end_time` is the day before's; `follower_count` is stored as new_followers) and day totals
# (`total_value` with since = until = the day).
SERIES_KEYS = {"reach": "reach", "follower_count": "new_followers", "impressions": "impressions"}
TOTAL_METRICS = [
    "views",
    "accounts_engaged",
    "total_interactions",
    "likes",
    "comments",
    "shares",
    "saves",
    "replies",
    "profile_links_taps",
    "profile_views",
    "website_clicks",
]
# What every media product type serves (dossier §3.4), stored as post_<metric> per post.
POST_KEYS = ("reach", "views", "likes", "comments", "shares", "saved", "total_interactions")
SMALL = {"media": 6, "mediaEveryHours": 48, "preConversion": 1}  # six posts, all of this month
CHECKS = ["access token", "business account", "insights permission", "metrics"]
Row = tuple[str, date, str, float, bool]


# ---------------------------------------------------------------- helpers


def configure(sb: SandboxControl, **volume: int) -> None:
    response = sb.http.post("/_sandbox/instagram/config", json={"volume": volume})
    assert response.status_code == 200, response.text


def source(client: Any, headers: dict[str, str], sb: SandboxControl, **override: Any) -> str:
    config = {**sb.credentials()["instagram"]["config"], **override}
    created: dict[str, Any] = create_source(client, headers, "instagram", config)
    return str(created["id"])


def connection_test(client: Any, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def graph_today() -> date:
    """The Graph day under way: its days run from 07:00 UTC (midnight at UTC-7)."""
    return (datetime.now(UTC) - timedelta(hours=7)).date()


def graph_day(moment: float) -> date:
    return (datetime.fromtimestamp(moment, UTC) - timedelta(hours=7)).date()


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 7, tzinfo=UTC)


def stored(factory: sessionmaker[Session], source_id: str) -> list[Row]:
    """(metric, Graph day, dimensions key, value, complete) of every stored point."""
    with factory() as session:
        rows = session.execute(
            select(
                DataPoint.metric,
                DataPoint.period_start,
                DataPoint.dimensions_key,
                DataPoint.value,
                DataPoint.complete,
            ).where(DataPoint.source_id == uuid.UUID(source_id))
        ).all()
    for _, start, *_ in rows:
        assert (start.hour, start.minute) == (7, 0), f"{start} is not a Graph day's start"
    return [(m, start.date(), key, value, complete) for m, start, key, value, complete in rows]


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def sandbox(clock: HeldClock) -> FastAPI:
    return create_sandbox(clock=clock)


def graph(sb: SandboxControl, path: str, version: str, **params: Any) -> dict[str, Any] | None:
    """A Graph call as a client makes it; None when Graph refuses the metric (#100)."""
    response = sb.http.get(
        f"/instagram/{version}/{path}",
        params=params,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    if response.status_code == 400 and response.json()["error"]["code"] == 100:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def account(
    sb: SandboxControl, first: date, last: date, version: str = "v25.0"
) -> dict[tuple[str, date], float]:
    """Account insights of the Graph days ``first``..``last`` as Graph serves them: each time
    series read in windows under 30 days (a value belongs to the day ending at its
    `end_time`), each total one day at a time; a metric the version refuses is absent, as is
    a day Graph gives no entry for."""
    out: dict[tuple[str, date], float] = {}
    insights = f"{ACCOUNT_ID}/insights"
    for metric, key in SERIES_KEYS.items():
        start = first
        while start <= last:
            end = min(last, start + timedelta(days=14))
            window = {"since": str(start), "until": str(end)}
            params = {"metric": metric, "period": "day", "metric_type": "time_series"}
            body = graph(sb, insights, version, **params, **window)
            for row in body["data"] if body else ():
                for entry in row["values"]:
                    ended = datetime.strptime(entry["end_time"], "%Y-%m-%dT%H:%M:%S%z")
                    assert (ended.hour, ended.minute) == (7, 0), entry
                    out[(key, (ended - timedelta(days=1)).date())] = float(entry["value"])
            start = end + timedelta(days=1)
    day = first
    while day <= last:
        for metric in TOTAL_METRICS:
            params = {"metric": metric, "period": "day", "metric_type": "total_value"}
            body = graph(sb, insights, version, **params, since=str(day), until=str(day))
            for row in body["data"] if body else ():
                out[(row["name"], day)] = float(row["total_value"]["value"])
        day += timedelta(days=1)
    return out


def profile(sb: SandboxControl) -> dict[str, float]:
    """The profile's counts now, stored as followers, follows and media_count."""
    fields = {"followers_count": "followers", "follows_count": "follows", "media_count": "media_count"}  # fmt: skip
    body = graph(sb, ACCOUNT_ID, "v25.0", fields=",".join(fields))
    assert body is not None
    return {key: float(body[field]) for field, key in fields.items()}


def posts(sb: SandboxControl) -> dict[tuple[str, str], float]:
    """Each post of the last 30 days (paged as Graph pages them) with its lifetime insights;
    a post from before the business conversion has none (error subcode 2108006)."""
    out: dict[tuple[str, str], float] = {}
    params: dict[str, Any] = {"fields": "id,media_product_type", "since": "-30 days"}
    body = graph(sb, f"{ACCOUNT_ID}/media", "v25.0", **params)
    listed: list[dict[str, Any]] = []
    while body is not None:
        listed += body["data"]
        after = body.get("paging", {}).get("cursors", {}).get("after")
        more = "next" in body.get("paging", {})
        body = graph(sb, f"{ACCOUNT_ID}/media", "v25.0", **params, after=after) if more else None
    for post in listed:
        response = sb.http.get(
            f"/instagram/v25.0/{post['id']}/insights",
            params={"metric": ",".join(POST_KEYS)},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        if response.status_code == 400:
            assert response.json()["error"]["error_subcode"] == 2108006, response.text
            continue
        assert response.status_code == 200, response.text
        dims = dimensions_key({"media": post["id"], "media_product_type": post["media_product_type"]})  # fmt: skip
        for row in response.json()["data"]:
            values = row.get("values")
            value = values[0]["value"] if values else row["total_value"]["value"]
            out[(f"post_{row['name']}", dims)] = float(value)
    return out


def assert_synced(
    sb: SandboxControl,
    clock: HeldClock,
    factory: sessionmaker[Session],
    source_id: str,
    began: float,
    version: str = "v25.0",
) -> None:
    """What a sync stored is what Graph showed when it began or when it ended (read again
    here at both moments): the whole days of the last 30 (29 for follower_count, Graph's
    last 30 days excluding today) equal, today's values partial (at most the day's value at
    the end), the profile and each post's lifetime insights today's snapshot."""
    ended = time.time()
    rows = stored(factory, source_id)
    whole = {(m, d): v for m, d, key, v, done in rows if key == "" and done}
    views, snapshots, post_views = [], [], []
    for moment in (began, ended):
        utc_today = datetime.fromtimestamp(moment, UTC).date()
        today = graph_day(moment)
        first = utc_today - timedelta(days=30)
        reach_from = {"new_followers": utc_today - timedelta(days=29)}
        with clock.at(moment):
            values = account(sb, first, today, version)
            snapshots.append((today, values, profile(sb)))
            post_views.append(posts(sb))
        views.append({(m, d): v for (m, d), v in values.items() if reach_from.get(m, first) <= d < today})  # fmt: skip
    assert_between(whole, *views)
    days = {today for today, _, _ in snapshots}
    partial = [(m, d, v) for m, d, key, v, done in rows if key == "" and not done]
    last_day, last_values, _ = snapshots[-1]
    shown_today = {m for m, d in last_values if d == last_day and m in ("reach", "views")}
    assert {m for m, _, _ in partial} >= {"followers", "follows", "media_count", *shown_today}
    for metric, day, value in partial:
        assert day in days, (metric, day)
        shown = [snapshot[metric] for today, _, snapshot in snapshots if today == day and metric in snapshot]  # fmt: skip
        if shown:
            assert value in shown, (metric, value, shown)
        else:  # a day's value grows until the day ends
            assert 0 <= value <= last_values[(metric, day)], (metric, day, value)
    got = {(m, key): v for m, d, key, v, done in rows if key and not done}
    assert all(d in days for m, d, key, v, done in rows if key), "a post's snapshot is not today's"
    assert post_views[0], "Graph lists no post"
    assert_between(got, *post_views)


# ---------------------------------------------------------------- the connection test


def test_connection_test_passes_and_names_the_retired_metric(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb)

    result = connection_test(client, headers, source_id)

    assert result["success"] is True, result
    assert [c["name"] for c in result["checks"]] == CHECKS
    assert all(c["ok"] for c in result["checks"])
    metrics = result["checks"][-1]["message"]
    assert metrics.startswith("v25.0 serves 13 of 14 account metrics")
    assert "impressions: deprecated from v22.0" in metrics
    assert health(client, headers, source_id)["status"] == "ok"


def test_an_old_version_is_told_which_metrics_it_lacks(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb, apiVersion="v21.0")

    result = connection_test(client, headers, source_id)

    assert result["success"] is True, result
    message = result["checks"][-1]["message"]
    assert message.startswith("v21.0 serves 12 of 14 account metrics")
    assert "impressions: deprecated" in message  # in every version since 2025-04-21
    assert "views: served from v22.0 on" in message


def test_a_refused_token_needs_reauth(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb, accessToken="EAAGnotatokenthesandboxissued")

    result = connection_test(client, headers, source_id)

    assert result["success"] is False
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [("access token", False)]
    assert "Cannot parse access token" in result["message"]
    assert health(client, headers, source_id)["status"] == "needs_reauth"


def test_an_expired_token_needs_reauth_in_test_and_sync(client, factory, sb):
    _, headers = person(factory)
    expired = source(client, headers, sb, accessToken=EXPIRED_TOKEN)
    working = source(client, headers, sb)

    result = connection_test(client, headers, expired)

    assert result["success"] is False
    assert "the access token was refused (it has expired)" in result["message"]
    assert "Session has expired" in result["message"]
    assert health(client, headers, expired)["status"] == "needs_reauth"

    configure(sb, tokenExpired=1)  # sixty days later: the long-lived token is dead
    run = sync_and_wait(client, headers, working)

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert "it has expired" in run["error"]["message"]
    assert health(client, headers, working)["status"] == "needs_reauth"
    assert stored(factory, working) == []


def test_missing_insights_permission_names_the_fix(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb)
    configure(sb, insightsPermission=0)

    result = connection_test(client, headers, source_id)

    assert result["success"] is False
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [
        ("access token", True),
        ("business account", True),
        ("insights permission", False),
    ]
    assert "(#10) Application does not have permission" in result["message"]
    assert "grant instagram_basic, instagram_manage_insights" in result["message"]
    assert health(client, headers, source_id)["status"] == "failing"


def test_an_unknown_account_id_is_named(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb, businessAccountId="17841400000000000")

    result = connection_test(client, headers, source_id)

    assert [(c["name"], c["ok"]) for c in result["checks"]][-1] == ("business account", False)
    assert "does not exist" in result["message"]
    assert "the IG user id, not the Page id" in result["message"]


def test_the_api_version_must_look_like_a_graph_version(client, factory):
    _, headers = person(factory)
    body = {"config": {"businessAccountId": "17841405822304914", "accessToken": "x" * 24}}

    for version, valid in (("v23.0", True), ("23", False), ("v23.1", False), ("v123.0", False)):
        response = client.post(
            "/api/integrations/instagram/validate",
            headers=headers,
            json={"config": {**body["config"], "apiVersion": version}},
        )
        assert response.status_code == 200, response.text
        assert response.json()["valid"] is valid, version
        if not valid:
            assert [e["field"] for e in response.json()["errors"]] == ["config.apiVersion"]


# ---------------------------------------------------------------- fetch


def test_fetch_returns_graph_days_equal_to_graphs_insights(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb)
    first, last = graph_today() - timedelta(days=10), graph_today() - timedelta(days=4)

    response = client.post(
        f"/api/data-sources/{source_id}/fetch",
        headers=headers,
        json={"startDate": str(first), "endDate": str(last)},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True, body
    points = body["dataPoints"]
    got = {}
    for p in points:
        start = datetime.fromisoformat(p["periodStart"])
        assert start == day_start(start.date()), p  # Graph days begin at 07:00 UTC
        assert datetime.fromisoformat(p["periodEnd"]) - start == timedelta(days=1)
        assert p["complete"] is True
        assert p["dimensions"] == {}
        got[(p["metric"], start.date())] = p["value"]
    assert got == account(sb, first, last)
    assert len(points) == 7 * 13  # thirteen metrics served by v25.0, seven days
    assert "impressions" not in {p["metric"] for p in points}  # retired: skipped, never zero
    assert body["created"] == 0
    assert stored(factory, source_id) == []


def test_fetch_leaves_out_what_graph_does_not_give(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb)
    configure(sb, followers=60)  # under 100 followers: Graph has no follower_count entry
    day = graph_today() - timedelta(days=3)

    response = client.post(
        f"/api/data-sources/{source_id}/fetch",
        headers=headers,
        json={"startDate": str(day), "endDate": str(day)},
    )

    assert response.status_code == 200, response.text
    metrics = {p["metric"] for p in response.json()["dataPoints"]}
    assert "new_followers" not in metrics
    assert {"reach", "views", "likes"} <= metrics
    assert len(metrics) == 12


def test_a_day_or_metric_graph_has_no_data_for_is_no_point(client, factory, sb):
    _, headers = person(factory)
    source_id = source(client, headers, sb)
    # every 4th day has no data at all; each metric lacks one day in 5 besides
    configure(sb, missingDays=4, missingMetrics=5)
    first, last = graph_today() - timedelta(days=24), graph_today() - timedelta(days=4)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]

    response = client.post(
        f"/api/data-sources/{source_id}/fetch",
        headers=headers,
        json={"startDate": str(first), "endDate": str(last)},
    )

    assert response.status_code == 200, response.text
    points = response.json()["dataPoints"]
    got = {(p["metric"], datetime.fromisoformat(p["periodStart"]).date()): p["value"] for p in points}  # fmt: skip
    shown = account(sb, first, last)
    assert got == shown
    assert len(got) == len(points)  # one point a metric and day
    # Graph left things out, and each is no point rather than a zero:
    metrics = {m for m, _ in shown}
    empty = [d for d in days if not any((m, d) in shown for m in metrics)]
    assert len(empty) >= 5  # every 4th of 21 days
    assert len(shown) < len(metrics) * (len(days) - len(empty))  # metrics missing on other days
    for day in empty:  # Graph's own answer for such a day: no row, no entry (dossier §9.7)
        totals = graph(sb, f"{ACCOUNT_ID}/insights", "v25.0", metric="views", period="day", metric_type="total_value", since=str(day), until=str(day))  # fmt: skip
        assert totals == {"data": []}
    assert 0.0 not in {v for (m, d), v in got.items() if d in empty}
    assert not any(d in empty for _, d in got)


# ---------------------------------------------------------------- sync


def test_sync_stores_insights_profile_and_posts_and_a_resync_creates_nothing(
    client, factory, sb, clock
):
    _, headers = person(factory)
    source_id = source(client, headers, sb)
    configure(sb, **SMALL)
    began = time.time()

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    rows = stored(factory, source_id)
    assert run["counts"]["created"] == len(rows)
    assert_synced(sb, clock, factory, source_id, began)
    profile = {m: v for m, d, key, v, _ in rows if m in ("followers", "follows", "media_count")}
    assert profile == {"followers": 15_234.0, "follows": 312.0, "media_count": 6.0}
    skipped = [e for e in run["timeline"]["recent"] if "before the business conversion" in e.get("note", "")]  # fmt: skip
    assert len(skipped) == 1  # the post from before the conversion has no insights
    assert health(client, headers, source_id)["status"] == "ok"

    again = sync_and_wait(client, headers, source_id)

    assert again["status"] == "succeeded", again
    if graph_day(began) == graph_day(time.time()):  # (a new Graph day has new points)
        assert again["counts"]["created"] == 0
        assert len(stored(factory, source_id)) == len(rows)


def test_a_sync_stores_no_point_for_what_graph_left_out(client, factory, sb, clock):
    _, headers = person(factory)
    source_id = source(client, headers, sb)
    # a day in 3 without data, each metric without one day in 4, each post metric in 2 posts
    configure(sb, **SMALL, missingDays=3, missingMetrics=4, postGaps=3)
    began = time.time()

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    assert_synced(sb, clock, factory, source_id, began)  # what Graph showed, and nothing else
    rows = stored(factory, source_id)
    by_post: dict[str, set[str]] = {}
    for metric, _, key, _, _ in rows:
        if key:
            by_post.setdefault(key, set()).add(metric)
    assert len(by_post) == 5  # six posts, one from before the conversion
    assert any(len(metrics) < len(POST_KEYS) for metrics in by_post.values())
    whole_days = {d for m, d, key, _, done in rows if not key and done}
    today = graph_day(began)
    month = {today - timedelta(days=i) for i in range(1, 30)}
    assert len(month - whole_days) >= 9  # every third day of the last 29 stored nothing


def test_throttling_is_waited_out_as_the_usage_headers_say(
    client, factory, sb, clock, fast_retries
):
    _, headers = person(factory)
    source_id = source(client, headers, sb)
    configure(sb, **SMALL)
    # Four requests into the sync, Graph refuses the next four calls (one request and its
    # retries) with codes 4, 17, 32 and 613, usage at 100 % and access back in a minute.
    configure(sb, throttleAfter=4, throttleCalls=4, regainMinutes=1)
    began = time.time()

    run_id = start_sync(client, headers, source_id)
    run, _ = poll_run(client, headers, run_id, timeout=120)

    assert run["status"] == "succeeded", run
    assert run["waiting"] is None
    timeline = run["timeline"]
    assert timeline["retries"] == 4
    assert timeline["waitedS"] == 4 * 60.0  # estimated_time_to_regain_access is in minutes
    assert_synced(sb, clock, factory, source_id, began)
    hits = sb.http.get("/_sandbox/instagram/stats").json()
    assert hits["byStatus"]["400"] >= 4


def test_a_version_without_a_metric_skips_it_and_says_so(client, factory, sb, clock):
    _, headers = person(factory)
    source_id = source(client, headers, sb, apiVersion="v24.0")
    configure(sb, **SMALL)
    began = time.time()

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    metrics = {m for m, *_ in stored(factory, source_id)}
    assert "impressions" not in metrics  # neither a crash nor a zero
    assert {"reach", "views", "new_followers", "post_reach"} <= metrics
    notes = [e["note"] for e in run["timeline"]["recent"] if "impressions" in e.get("note", "")]
    assert notes, "the run does not say why impressions has no data"
    assert all(n.startswith("metric not served by v24.0, skipped") for n in notes)
    assert "impressions metric is no longer supported" in notes[0]
    assert_synced(sb, clock, factory, source_id, began, version="v24.0")


# ---------------------------------------------------------------- the emulator's own switches


def ask(sb: SandboxControl, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    response = sb.http.get(f"/instagram/v25.0/{path}", params={"access_token": TOKEN, **params})
    body: dict[str, Any] = response.json()
    return response.status_code, body


def test_the_throttle_switch_counts_from_its_first_call(sb):
    for _ in range(3):  # requests before the switch is set do not count
        assert ask(sb, "me")[0] == 200
    configure(sb, throttleAfter=0, throttleCalls=2, throttleCode=17)

    first, second, third = (ask(sb, "me") for _ in range(3))

    assert first[0] == second[0] == 400
    assert first[1]["error"]["code"] == second[1]["error"]["code"] == 17
    assert third[0] == 200
    configure(sb, throttleAfter=1, throttleCalls=1, throttleCode=4)  # set again: counts anew
    assert [ask(sb, "me")[0] for _ in range(3)] == [200, 400, 200]


@pytest.mark.parametrize(
    ("fields", "metric"),
    [
        pytest.param("id,username", "reach,views", id="comma-lists"),
        pytest.param('["id","username"]', '["reach","views"]', id="json-arrays"),
    ],
)
def test_list_parameters_are_comma_lists_or_json_arrays(sb, fields, metric):
    status, profile = ask(sb, ACCOUNT_ID, fields=fields)
    assert status == 200, profile
    assert set(profile) == {"id", "username"}

    status, insights = ask(
        sb, f"{ACCOUNT_ID}/insights", metric=metric, period="day", metric_type="total_value"
    )
    assert status == 200, insights
    assert [m["name"] for m in insights["data"]] == ["reach", "views"]


def test_a_malformed_json_list_is_graphs_100(sb):
    status, body = ask(sb, ACCOUNT_ID, fields='["id",')
    assert status == 400
    assert body["error"]["code"] == 100


def test_a_value_graph_leaves_out_in_any_shape_is_no_point():
    # the connector's readers on rows as Graph may send them without data (dossier §3.2, §9.7)
    from types import SimpleNamespace

    from inflow.connectors.instagram import day_total, post, series
    from inflow.connectors.spec import Window

    day = day_start(graph_today() - timedelta(days=3))
    ctx = SimpleNamespace(
        window=Window(day - timedelta(hours=7), day + timedelta(hours=17)),
        parent={"id": "17900000000000001", "media_product_type": "FEED"},
    )
    ended = (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    shapes = [
        *series({"name": "reach", "values": []}, ctx),
        *series({"name": "reach", "values": [{"end_time": ended}]}, ctx),
        *series({"name": "reach", "values": [{"value": None, "end_time": ended}]}, ctx),
        *day_total({"name": "likes"}, ctx),
        *day_total({"name": "likes", "total_value": {}}, ctx),
        *day_total({"name": "likes", "total_value": {"breakdowns": []}}, ctx),
        *post({"name": "reach", "values": []}, ctx),
        *post({"name": "reach", "values": [{}]}, ctx),
        *post({"name": "views", "total_value": {"value": None}}, ctx),
    ]
    given = [
        *series({"name": "reach", "values": [{"value": 0, "end_time": ended}]}, ctx),
        *day_total({"name": "likes", "total_value": {"value": 7}}, ctx),
        *post({"name": "saved", "values": [{"value": 3}]}, ctx),
    ]

    assert shapes == []
    assert [(p.metric, p.value, p.period_start) for p in given[:2]] == [
        ("reach", 0.0, day),  # a zero Graph gave is kept
        ("likes", 7.0, day),
    ]
    assert [(p.metric, p.value, p.dimensions["media"]) for p in given[2:]] == [
        ("post_saved", 3.0, "17900000000000001")
    ]

"""The `example` emulator's contract: auth, the four paginations, expected totals, determinism."""

from __future__ import annotations

from collections import defaultdict

import httpx
import pytest

from inflow.sandbox import create_app
from tests.sandbox.conftest import API_KEY, AUTH, BASE

pytestmark = pytest.mark.anyio
RANGE = {"start_date": "2024-01-01", "end_date": "2024-03-31"}


async def configure(client: httpx.AsyncClient, **body: object) -> dict:
    r = await client.post("/_sandbox/example/config", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def walk_reports(client: httpx.AsyncClient, per_page: int = 50) -> list[dict]:
    out, page = [], 1
    while True:
        r = await client.get(
            "/example/v1/reports", params={"page": page, "per_page": per_page}, headers=AUTH
        )
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["data"]
        if page * per_page >= body["meta"]["total"]:
            return out
        page += 1


async def walk_metrics(client: httpx.AsyncClient, page_size: int, **dates: str) -> list[dict]:
    rows: list[dict] = []
    params: dict[str, object] = {**(dates or RANGE), "page_size": page_size}
    while True:
        r = await client.get("/example/v1/metrics", params=params, headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["rows"]
        if body["next_page_token"] is None:
            return rows
        params["page_token"] = body["next_page_token"]


async def test_credentials_give_a_working_config(client):
    body = (await client.get("/_sandbox/credentials")).json()
    config = body["example"]["config"]
    assert config == {"baseUrl": f"{BASE}/example", "apiKey": API_KEY, "workspace": "demo"}
    oauth = body["example"]["oauth"]
    assert oauth["clientId"] == "example-client"
    assert oauth["tokenUrl"] == f"{BASE}/example/oauth/token"
    r = await client.get(
        config["baseUrl"] + "/v1/me", headers={"Authorization": f"Bearer {config['apiKey']}"}
    )
    assert r.json() == {
        "workspace": {"id": "ws_demo", "name": "Demo workspace"},
        "user": {"id": "u_1", "email": "owner@example.test"},
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer sk_test_wrong"}, id="wrong_key"),
        pytest.param({"Authorization": f"Basic {API_KEY}"}, id="wrong_scheme"),
    ],
)
async def test_bad_credentials_get_the_exact_401(client, headers):
    r = await client.get("/example/v1/reports", headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "unauthorized", "message": "Invalid API key"}}


async def test_each_workspace_has_its_own_key_and_only_those_are_valid(client):
    """`keys` workspaces: keys 0001..NNNN open the API, the next one and look-alikes do not."""

    async def status(key: str) -> int:
        r = await client.get("/example/v1/me", headers={"Authorization": f"Bearer {key}"})
        return r.status_code

    assert await status("sk_test_inflow_example_0002") == 401  # one workspace by default
    await configure(client, volume={"keys": 1000})
    assert await status("sk_test_inflow_example_0001") == 200
    assert await status("sk_test_inflow_example_1000") == 200
    assert await status("sk_test_inflow_example_1001") == 401
    assert await status("sk_test_inflow_example_0000") == 401
    assert await status("sk_test_inflow_example_01000") == 401  # the same number, another key
    assert await status("sk_test_inflow_example_ 002") == 401


async def test_expired_token_fault_gives_token_expired(client):
    r = await client.get("/example/v1/me", headers={**AUTH, "X-Sandbox-Fault": "expired_token"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "token_expired"
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_reports_walk_to_the_end_sorted_and_match_expected(client):
    reports = await walk_reports(client, per_page=7)
    expected = (await client.get("/_sandbox/example/expected")).json()
    assert len(reports) == expected["reports"] == 120
    ids = [r["id"] for r in reports]
    assert ids == sorted(ids)
    assert len(set(ids)) == 120
    assert ids[0] == "rep_0001"
    first = reports[0]
    assert set(first) == {
        "id",
        "title",
        "kind",
        "url",
        "embed_url",
        "folder",
        "updated_at",
        "version",
    }
    assert first["url"] == "https://example.test/r/rep_0001"
    assert first["embed_url"] == "https://example.test/embed/rep_0001"
    assert {r["kind"] for r in reports} == {"report", "dashboard"}
    assert None in {r["folder"] for r in reports}
    assert all(r["updated_at"].endswith("Z") for r in reports)


async def test_reports_page_past_the_end_is_empty(client):
    r = await client.get("/example/v1/reports", params={"page": 99}, headers=AUTH)
    assert r.json() == {"data": [], "meta": {"page": 99, "per_page": 50, "total": 120}}


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        pytest.param("/example/v1/reports", {"per_page": 101}, "per_page", id="per_page_over_max"),
        pytest.param("/example/v1/reports", {"page": 0}, "page", id="page_zero"),
        pytest.param("/example/v1/dashboards", {"limit": "x"}, "limit", id="limit_not_int"),
        pytest.param(
            "/example/v1/metrics", {"end_date": "2024-01-01"}, "start_date", id="no_start"
        ),
        pytest.param("/example/v1/metrics", {"start_date": "2024-01-01"}, "end_date", id="no_end"),
        pytest.param(
            "/example/v1/metrics", {**RANGE, "page_size": 10001}, "page_size", id="page_size"
        ),
        pytest.param(
            "/example/v1/metrics", {**RANGE, "page_token": "bm9wZQ"}, "page_token", id="bad_token"
        ),
        pytest.param(
            "/example/v1/metrics",
            {"start_date": "2024-1-1", "end_date": "2024-01-02"},
            "start_date",
            id="bad_date",
        ),
        pytest.param(
            "/example/v1/metrics",
            {"start_date": "2024-02-01", "end_date": "2024-01-01"},
            "start_date",
            id="start_after_end",
        ),
        pytest.param(
            "/example/v1/metrics",
            {"start_date": "2024-01-01", "end_date": "2026-09-22"},
            "future",
            id="future",
        ),
    ],
)
async def test_invalid_parameters_get_400_naming_them(client, path, params, name):
    r = await client.get(path, params=params, headers=AUTH)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert name in error["message"]


async def test_today_is_allowed_but_not_tomorrow(client):
    ok = await client.get(
        "/example/v1/metrics",
        params={"start_date": "2026-09-21", "end_date": "2026-09-21"},
        headers=AUTH,
    )
    assert ok.status_code == 200
    assert len(ok.json()["rows"]) == 20


async def test_dashboards_walk_by_offset(client):
    items, offset = [], 0
    while True:
        r = await client.get(
            "/example/v1/dashboards", params={"offset": offset, "limit": 15}, headers=AUTH
        )
        body = r.json()
        assert (body["offset"], body["limit"], body["total"]) == (offset, 15, 40)
        items += body["items"]
        offset += 15
        if offset >= body["total"]:
            break
    assert len({d["id"] for d in items}) == 40
    assert {d["kind"] for d in items} == {"dashboard"}
    assert items[0]["url"] == "https://example.test/d/dash_0001"


async def test_folders_follow_absolute_next_urls(client):
    folders, url, pages = [], f"{BASE}/example/v1/folders", 0
    while url:
        body = (await client.get(url, headers=AUTH)).json()
        folders += body["folders"]
        url, pages = body["next"], pages + 1
        assert url is None or url.startswith(f"{BASE}/example/v1/folders?")
    assert pages == 3
    assert [f["id"] for f in folders] == [f"fld_{i:02d}" for i in range(1, 26)]
    assert folders[0] == {"id": "fld_01", "name": "Sales"}


@pytest.mark.parametrize("page_size", [1000, 333, 10000])
async def test_metrics_walk_and_totals_match_expected(client, page_size):
    rows = await walk_metrics(client, page_size)
    expected = (await client.get("/_sandbox/example/expected", params=RANGE)).json()
    assert len(rows) == expected["rows"] == 91 * 20
    assert [(r["date"], r["page"]) for r in rows] == sorted((r["date"], r["page"]) for r in rows)
    assert len({(r["date"], r["page"]) for r in rows}) == len(rows)
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"visits": 0, "signups": 0})
    for row in rows:
        assert 0 <= row["signups"] <= row["visits"]
        totals[row["date"]]["visits"] += row["visits"]
        totals[row["date"]]["signups"] += row["signups"]
    assert totals == expected["days"]
    assert rows[0]["date"] == "2024-01-01"
    assert rows[-1] == {
        **rows[-1],
        "date": "2024-03-31",
        "page": "/p/0020",
    }


async def test_page_token_is_bound_to_its_date_range(client):
    first = (
        await client.get("/example/v1/metrics", params={**RANGE, "page_size": 5}, headers=AUTH)
    ).json()
    other = {
        "start_date": "2024-01-01",
        "end_date": "2024-01-31",
        "page_token": first["next_page_token"],
    }
    r = await client.get("/example/v1/metrics", params=other, headers=AUTH)
    assert r.status_code == 400


async def test_same_seed_same_data_other_seed_other_data(client, clock):
    reports, rows = await walk_reports(client), await walk_metrics(client, 5000)
    await configure(client, seed=2)
    other_reports, other_rows = await walk_reports(client), await walk_metrics(client, 5000)
    assert [r["title"] for r in other_reports] != [r["title"] for r in reports]
    assert other_rows != rows
    await configure(client, seed=1)
    assert await walk_reports(client) == reports
    assert await walk_metrics(client, 777) == rows
    # A brand-new app with the same seed serves the same data.
    fresh = httpx.ASGITransport(app=create_app(clock=clock))
    async with httpx.AsyncClient(transport=fresh, base_url=BASE) as again:
        assert await walk_metrics(again, 1000) == rows


async def test_volume_shrinks_and_revision_bumps(client):
    before = {r["id"]: r for r in await walk_reports(client)}
    await configure(client, volume={"reports": 100, "revision": 3})
    after = {r["id"]: r for r in await walk_reports(client)}
    assert set(before) - set(after) == {f"rep_{i:04d}" for i in range(101, 121)}
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {f"rep_{i:04d}" for i in range(10, 101, 10)}
    bumped = after["rep_0010"]
    assert bumped["version"] == 4
    assert bumped["updated_at"] > before["rep_0010"]["updated_at"]
    assert bumped["title"] != before["rep_0010"]["title"]


async def test_pages_volume_scales_metric_rows(client):
    await configure(client, volume={"pages": 3})
    rows = await walk_metrics(client, 50, start_date="2024-01-01", end_date="2024-01-10")
    assert len(rows) == 30
    assert rows[2]["page"] == "/p/0003"


async def test_rate_limit_headers_on_every_response(client, clock):
    r1 = await client.get("/example/v1/me", headers=AUTH)
    r2 = await client.get("/example/v1/me")
    for r, remaining in ((r1, "99"), (r2, "98")):
        assert r.headers["X-RateLimit-Limit"] == "100"
        assert r.headers["X-RateLimit-Remaining"] == remaining
        assert r.headers["X-RateLimit-Reset"] == str(int(clock.now) + 1)


async def test_rate_per_second_is_enforced(client, clock):
    await configure(client, volume={"ratePerSecond": 3})
    statuses = [(await client.get("/example/v1/me", headers=AUTH)) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    limited = statuses[3]
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert statuses[2].headers["X-RateLimit-Remaining"] == "0"
    clock.advance(1)
    assert (await client.get("/example/v1/me", headers=AUTH)).status_code == 200

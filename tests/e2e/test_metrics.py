"""Metrics and Tests in a real browser: charts drawn from the API's own series, the week switch,
a breakdown by a dimension, a custom metric created and charted; a test created, points
linked and its results drawn. Data points are seeded through the API with a bearer token; the
server runs on the test clock, so "today" is ``TEST_CLOCK``'s date."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from inflow.storage.db import create_db_engine, make_session_factory, upgrade
from tests.conftest import TEST_CLOCK, clock_env
from tests.e2e.conftest import HOST, LiveServer
from tests.e2e.ui import check_page, log_in, screenshot
from tests.factories import EXAMPLE_CONFIG, PASSWORD, make_user
from tests.servers import InflowServer, inflow_env

pytestmark = pytest.mark.e2e

TODAY = TEST_CLOCK.date()
DAYS = 56  # eight weeks of data, today's day partial
TEST_DAYS = 14  # the test: the last 14 days; its baseline the 14 before


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The package's server, but on the test clock (its "today" is TEST_CLOCK's date)."""
    workdir = tmp_path_factory.mktemp("e2e-metrics")
    url = f"sqlite:///{workdir / 'inflow.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    admin = make_user(make_session_factory(engine), "metrics-admin@example.com", role="admin")
    engine.dispose()
    env = inflow_env(workdir / "data", url, **clock_env())
    server = InflowServer("serve", env=env, workdir=workdir)
    server.start()
    try:
        yield LiveServer(f"http://{HOST}:{server.port}", admin.email, PASSWORD)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def seeded(live_server: LiveServer) -> dict[str, Any]:
    """An Example source with visits (by page) and signups per day, stored through the API
    with a bearer token. Signups rise in the last 14 days (the test window)."""
    port = urlsplit(live_server.base_url).port
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        token = api.post(
            "/api/auth/login", json={"email": live_server.email, "password": live_server.password}
        ).json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        source = api.post(
            "/api/data-sources",
            json={"name": "Shop website", "type": "example", "config": EXAMPLE_CONFIG},
        )
        assert source.status_code == 201, source.text
        source_id = source.json()["id"]
        points = []
        for i in range(DAYS):
            day = TODAY - timedelta(days=DAYS - 1 - i)
            period = {
                "sourceId": source_id,
                "periodStart": f"{day}T00:00:00Z",
                "periodEnd": f"{day + timedelta(days=1)}T00:00:00Z",
                "complete": day < TODAY,
            }
            for page, visits in (("/home", 300 + 3 * i + (i % 7) * 11), ("/pricing", 80 + i % 5)):
                points.append(
                    period | {"metric": "visits", "value": visits, "dimensions": {"page": page}}
                )
            signups = (12 + i % 3) if i >= DAYS - TEST_DAYS else (5 + i % 3)
            points.append(period | {"metric": "signups", "value": signups})
        created = api.post("/api/data-points", json={"dataPoints": points})
        assert created.status_code == 200, created.text
    return {"source_id": source_id, "points": len(points)}


def embedded(page: Any, chart_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(page.locator(f"#{chart_id}-data").text_content())
    return data


def api_get(page: Any, path: str) -> Any:
    """The API's answer to the page's own session (cookie auth, as the browser has it)."""
    return page.evaluate(
        "async p => { const r = await fetch(p); return {status: r.status, body: await r.json()}; }",
        path,
    )


def expect_chart(page: Any, chart_id: str) -> None:
    expect(page.locator(f"#{chart_id} canvas").first).to_be_attached()
    expect(page.locator(f"#{chart_id}")).to_have_attribute("data-drawn", "true")


def test_metrics_charts_week_switch_breakdown_and_custom_metric(page, live_server, seeded):
    log_in(page, live_server.email, live_server.password, next_path="/metrics")
    expect(page.get_by_role("heading", name="Visits")).to_be_visible()
    expect_chart(page, "chart-visits")
    expect_chart(page, "chart-signups")

    # the default: the last 30 days by day; the page embeds the API's series for that query
    start = TODAY - timedelta(days=29)
    api = api_get(page, f"/api/data-points?metric=visits&from={start}&to={TODAY}")
    assert api["status"] == 200
    assert embedded(page, "chart-visits")["series"][0]["data"] == api["body"]
    assert api["body"]["points"][-1]["complete"] is False  # today: drawn as partial
    trend = api_get(page, f"/api/data-points/trends?metric=visits&from={start}&to={TODAY}")["body"]
    visits_panel = page.locator("article[data-metric=visits]")
    expect(visits_panel.locator(".legend-partial")).to_contain_text("partial period")
    expect(visits_panel.locator(".delta")).to_contain_text(
        f"{trend['change']['relative'] * 100:+.1f}%"
    )
    check_page(page, "metrics")

    # week: htmx swaps the panels; the URL keeps the choice
    page.get_by_text("Week", exact=True).click()
    expect(page).to_have_url(re.compile(r"/metrics\?granularity=week$"))
    expect(page.locator("#chart-visits")).to_have_attribute("data-granularity", "week")
    expect_chart(page, "chart-visits")
    monday = TODAY - timedelta(days=TODAY.weekday())
    week_start = monday - timedelta(weeks=11)
    weekly = api_get(
        page, f"/api/data-points?metric=visits&granularity=week&from={week_start}&to={TODAY}"
    )["body"]
    assert embedded(page, "chart-visits")["series"][0]["data"] == weekly
    assert weekly["granularity"] == "week"
    check_page(page, "metrics-week")
    page.reload()  # the URL alone brings the week view back
    expect(page.get_by_role("radio", name="Week")).to_be_checked()
    # by keyboard: an arrow key moves to Month; focus stays on the switch after the swap
    page.get_by_role("radio", name="Week").focus()
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(r"/metrics\?granularity=month$"))
    expect(page.locator("#chart-visits")).to_have_attribute("data-granularity", "month")
    expect(page.get_by_role("radio", name="Month")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(page).to_have_url(re.compile(r"/metrics\?granularity=week$"))
    expect(page.locator("#chart-visits")).to_have_attribute("data-granularity", "week")

    # a metric's page, broken down by page: one series per value, each the API's
    visits_panel.get_by_role("link", name="Visits").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Visits")
    page.get_by_label("Break down by").select_option("page")
    expect(page).to_have_url(re.compile(r"by=page"))
    expect(page.locator(".legend")).to_contain_text("page: /home")
    expect(page.locator(".legend")).to_contain_text("page: /pricing")
    expect_chart(page, "chart-visits")
    data = embedded(page, "chart-visits")
    pricing = next(s for s in data["series"] if s["label"] == "page: /pricing")
    dims = json.dumps({"page": "/pricing"})
    by_page = api_get(
        page,
        f"/api/data-points?metric=visits&granularity=week&from={week_start}&to={TODAY}"
        f"&dimensions={dims}",
    )["body"]
    assert pricing["data"] == by_page
    check_page(page, "metric-breakdown")

    # a custom metric: an error at the field first, then created and charted
    page.goto("/metrics")
    page.get_by_label("Key").fill("signup_rate")
    page.get_by_label("Label").fill("Signup rate")
    page.get_by_label("Unit").fill("percent")
    page.get_by_label("Formula").fill("signups / visitors * 100")
    page.get_by_role("button", name="Create custom metric").click()
    expect(page.locator("#c-formula-error")).to_contain_text("unknown metrics: visitors")
    expect(page.get_by_label("Formula")).to_have_attribute("aria-invalid", "true")
    check_page(page, "metrics-custom-error")
    page.get_by_label("Formula").fill("signups / visits * 100")
    page.get_by_role("button", name="Create custom metric").click()
    expect(page).to_have_url(re.compile(r"/metrics/m/signup_rate$"))
    expect_chart(page, "chart-signup_rate")
    rate = api_get(page, f"/api/data-points?metric=signup_rate&from={start}&to={TODAY}")["body"]
    assert embedded(page, "chart-signup_rate")["series"][0]["data"] == rate
    assert any(p["value"] for p in rate["points"])
    check_page(page, "metric-custom")
    over = page.locator("#chart-signup_rate .u-over")
    box = over.bounding_box()
    over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})  # the last day: today
    tip = page.locator("#chart-signup_rate .chart-tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(f"{TODAY.day} {TODAY:%b} {TODAY.year}")
    expect(tip).to_contain_text(f"{rate['points'][-1]['value']:.2f} (partial)")
    screenshot(page, "metric-custom-tooltip")
    page.goto("/metrics")
    expect(page.locator("article[data-metric=signup_rate]")).to_contain_text("Custom")
    expect_chart(page, "chart-signup_rate")
    expect(page.get_by_role("button", name="Delete signup_rate")).to_be_visible()
    check_page(page, "metrics-with-custom")


def test_a_test_created_points_linked_results_drawn(page, live_server, seeded):
    log_in(page, live_server.email, live_server.password, next_path="/tests")
    expect(page.get_by_role("heading", name="No tests yet")).to_be_visible()
    check_page(page, "tests-empty")

    first = TODAY - timedelta(days=TEST_DAYS - 1)
    page.get_by_label("Name").fill("Shorter signup form")
    page.get_by_label("Hypothesis").fill("A form with three fields raises signups")
    page.get_by_label("Metric").fill("signups")
    page.get_by_label("Start date").fill(str(first))
    page.get_by_label("End date").fill(str(TODAY))
    page.get_by_role("button", name="Create test").click()
    expect(page).to_have_url(re.compile(r"/tests/[0-9a-f-]{36}$"))
    test_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_have_text("Shorter signup form")

    page.locator("#l-metric").select_option("signups")
    expect(page.get_by_label("From")).to_have_value(str(first - timedelta(days=TEST_DAYS)))
    page.get_by_role("button", name="Link data points").click()
    expect(page.get_by_role("status").filter(has_text="Linked")).to_contain_text(
        f"Linked {2 * TEST_DAYS} data points"
    )
    expect(page.locator("#linked-count")).to_have_text(str(2 * TEST_DAYS))
    results = api_get(page, f"/api/tests/{test_id}/results")["body"]
    signups = results["metrics"][0]
    assert signups["metric"] == "signups"
    assert signups["significant"] is True
    result = page.locator("article.result").first
    expect(result.get_by_text("Significant", exact=True)).to_be_visible()
    expect(result).to_contain_text(f"{signups['change']['relative'] * 100:+.1f}%")
    # the API's verdict in words, and its interval and p-value, as the page shows them
    expect(result.locator(".reading")).to_contain_text(signups["summary"])
    low, high = signups["interval"]["relative"]
    expect(result).to_contain_text(f"{low * 100:+.1f} % to {high * 100:+.1f} %")
    expect(result).to_contain_text("p < 0.001" if signups["pValue"] < 0.001 else "p = ")
    expect_chart(page, "result-chart-1")
    chart = embedded(page, "result-chart-1")
    assert [b["from"] for b in chart["bands"]] == [signups["baseline"]["from"], str(first)]
    assert [lv["value"] for lv in chart["levels"]] == [
        signups["baseline"]["value"],
        signups["during"]["value"],
    ]
    check_page(page, "test-results")

    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Save status").click()
    expect(page.get_by_label("Status")).to_have_value("completed")

    page.goto("/tests")
    expect(page.get_by_role("link", name="Shorter signup form")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Shorter signup form"))).to_contain_text(
        "completed"
    )
    check_page(page, "tests")

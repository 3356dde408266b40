"""The Metrics and Tests pages through real routes (no browser): what they embed equals the
API's answers, bad filters and bad forms are named at their fields, never a 500."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from tests.factories import EXAMPLE_CONFIG, person

HTML = {"Accept": "text/html"}
START = date(2026, 10, 1)


@pytest.fixture
def member(client, factory):
    _, headers = person(factory)
    token = headers["Authorization"].removeprefix("Bearer ")
    client.cookies.set("inflow_session", token)
    source = client.post(
        "/api/data-sources",
        json={"name": "Shop site", "type": "example", "config": EXAMPLE_CONFIG},
        headers=headers,
    )
    assert source.status_code == 201, source.text
    source_id = source.json()["id"]
    points = []
    for i in range(28):
        day = START + timedelta(days=i)
        for page, visits in (("/home", 100 + i), ("/pricing", 20 + i % 5)):
            points.append(
                {
                    "sourceId": source_id,
                    "metric": "visits",
                    "value": visits,
                    "periodStart": f"{day}T00:00:00Z",
                    "periodEnd": f"{day + timedelta(days=1)}T00:00:00Z",
                    "dimensions": {"page": page},
                    "complete": i < 27,
                }
            )
        points.append(
            {
                "sourceId": source_id,
                "metric": "signups",
                "value": 5 + i % 3,
                "periodStart": f"{day}T00:00:00Z",
                "periodEnd": f"{day + timedelta(days=1)}T00:00:00Z",
            }
        )
    created = client.post("/api/data-points", json={"dataPoints": points}, headers=headers)
    assert created.status_code == 200, created.text
    return headers, source_id


def embedded(html: str, chart_id: str) -> dict:
    found = re.search(
        rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', html, re.S
    )
    assert found is not None, f"no chart {chart_id}"
    return json.loads(found.group(1))


def test_metrics_page_embeds_the_api_series_and_trends(client, member):
    headers, source_id = member
    query = "granularity=week&from=2026-10-15&to=2026-10-28"
    page = client.get(f"/metrics?{query}&source={source_id}", headers=HTML)
    assert page.status_code == 200, page.text
    api = client.get(
        f"/api/data-points?metric=visits&{query}&sourceId={source_id}", headers=headers
    ).json()
    assert embedded(page.text, "chart-visits")["series"][0]["data"] == api
    assert any(not p["complete"] for p in api["points"])  # the last week holds a partial day
    assert "partial period" in page.text
    trend = client.get(
        f"/api/data-points/trends?metric=visits&from=2026-10-15&to=2026-10-28&sourceId={source_id}",
        headers=headers,
    ).json()
    assert trend["previous"]["value"] is not None
    shown = f"{trend['change']['relative'] * 100:+.1f}%"
    assert shown in page.text


def test_month_view_and_htmx_swap_push_a_clean_url(client, member):
    headers, _ = member
    swap = client.get(
        "/metrics?granularity=month&source=&from=2026-10-01&to=",
        headers=HTML | {"HX-Request": "true", "HX-Target": "metric-panels"},
    )
    assert swap.status_code == 200
    assert swap.headers["HX-Push-Url"] == "/metrics?granularity=month&from=2026-10-01"
    assert "<html" not in swap.text  # the fragment only
    api = client.get(
        "/api/data-points?metric=signups&granularity=month&from=2026-10-01&to=2026-11-18",
        headers=headers,
    ).json()
    assert embedded(swap.text, "chart-signups")["series"][0]["data"] == api
    far = client.get("/metrics?from=0001-01-01", headers=HTML)
    assert far.status_code == 422
    assert "between 1970-01-01 and 2999-12-31" in far.text


def test_breakdown_draws_one_series_per_dimension_value(client, member):
    headers, _ = member
    page = client.get("/metrics/m/visits?from=2026-10-01&to=2026-10-28&by=page", headers=HTML)
    assert page.status_code == 200, page.text
    data = embedded(page.text, "chart-visits")
    assert [s["label"] for s in data["series"]] == ["page: /home", "page: /pricing"]
    api = client.get(
        "/api/data-points",
        params={
            "metric": "visits",
            "from": "2026-10-01",
            "to": "2026-10-28",
            "dimensions": "page:/pricing",
        },
        headers=headers,
    ).json()
    assert data["series"][1]["data"] == api


def test_bad_filters_are_named_at_their_fields(client, member):
    page = client.get("/metrics?granularity=year&from=yesterday&source=nope", headers=HTML)
    assert page.status_code == 422
    assert "day, week or month" in page.text
    assert "a date as YYYY-MM-DD" in page.text
    assert "not one of your sources" in page.text
    detail = client.get("/metrics/m/visits?by=country", headers=HTML)
    assert detail.status_code == 422
    assert "has no dimension" in detail.text
    assert client.get("/metrics/m/nothing", headers=HTML).status_code == 404


def test_custom_metric_form_errors_then_created_and_charted(client, member):
    csrf = re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/metrics", headers=HTML).text
    )
    assert csrf is not None
    form = {
        "csrf_token": csrf.group(1),
        "key": "Bad Key",
        "label": "Rate",
        "formula": "signups / nope",
    }
    bad = client.post("/metrics/custom", data=form, headers=HTML)
    assert bad.status_code == 422
    assert "lowercase letters" in bad.text
    assert "unknown metrics: nope" in bad.text
    form |= {"key": "signup_rate", "formula": "signups / visits * 100", "unit": "percent"}
    good = client.post("/metrics/custom", data=form, headers=HTML, follow_redirects=False)
    assert good.status_code == 303
    assert good.headers["location"] == "/metrics/m/signup_rate"
    page = client.get("/metrics/m/signup_rate?from=2026-10-01&to=2026-10-28", headers=HTML)
    assert page.status_code == 200
    api = client.get(
        "/api/data-points?metric=signup_rate&from=2026-10-01&to=2026-10-28", headers=member[0]
    ).json()
    assert embedded(page.text, "chart-signup_rate")["series"][0]["data"] == api


def _csrf(client) -> str:
    found = re.search(
        r'name="csrf-token" content="([^"]+)"', client.get("/tests", headers=HTML).text
    )
    assert found is not None
    return found.group(1)


def test_test_form_errors_at_fields_then_created(client, member):
    csrf = _csrf(client)
    bad = client.post(
        "/tests",
        data={
            "csrf_token": csrf,
            "name": "",
            "metric": "nope",
            "startDate": "2026-10-15",
            "endDate": "2026-10-01",
        },
        headers=HTML,
    )
    assert bad.status_code == 422
    assert 'id="t-name-error"' in bad.text
    assert "neither a connector metric nor a custom one" in bad.text
    assert "the end date is before the start date" in bad.text
    good = client.post(
        "/tests",
        data={
            "csrf_token": csrf,
            "name": "Shorter form",
            "metric": "visits",
            "startDate": "2026-10-15",
            "endDate": "2026-10-28",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert good.status_code == 303
    listed = client.get("/api/tests", headers=member[0]).json()
    assert [t["name"] for t in listed] == ["Shorter form"]
    assert good.headers["location"] == f"/tests/{listed[0]['id']}"


def test_linking_points_then_the_results_are_the_api_results(client, member):
    headers, source_id = member
    test = client.post(
        "/api/tests",
        json={
            "name": "Pricing copy",
            "metric": "signups",
            "startDate": "2026-10-15",
            "endDate": "2026-10-28",
        },
        headers=headers,
    ).json()
    csrf = _csrf(client)
    empty = client.post(
        f"/tests/{test['id']}/link",
        data={
            "csrf_token": csrf,
            "source": source_id,
            "metric": "signups",
            "from": "2025-01-01",
            "to": "2025-01-31",
        },
        headers=HTML,
    )
    assert empty.status_code == 422
    assert "has no signups points in that range" in empty.text
    linked = client.post(
        f"/tests/{test['id']}/link",
        data={
            "csrf_token": csrf,
            "source": source_id,
            "metric": "signups",
            "from": "2026-10-01",
            "to": "2026-10-28",
        },
        headers=HTML,
    )
    assert linked.status_code == 200, linked.text
    assert "Linked 28 data points" in linked.text
    results = client.get(f"/api/tests/{test['id']}/results", headers=headers).json()
    signups = results["metrics"][0]
    assert signups["baseline"]["days"] == 14
    chart = embedded(linked.text, "result-chart-1")
    assert [b["kind"] for b in chart["bands"]] == ["baseline", "test"]
    assert [lv["value"] for lv in chart["levels"]] == [
        signups["baseline"]["value"],
        signups["during"]["value"],
    ]
    assert len(chart["series"][0]["data"]["points"]) == 28
    verdict = {True: "Significant", False: "Not significant", None: "Significance unknown"}
    assert verdict[signups["significant"]] in linked.text
    # the change shown is the one the interval and the words are about: the paired days'
    effect = signups["effect"]
    assert effect["relative"] is not None
    assert "Change (paired days)" in linked.text
    assert f"<strong>{effect['relative'] * 100:+.1f}%</strong>" in linked.text
    assert client.get(f"/tests/{test['id']}", headers=HTML).status_code == 200
    assert (
        client.get("/tests/00000000-0000-0000-0000-000000000000", headers=HTML).status_code == 404
    )


def test_custom_metric_deleted_unless_another_uses_it(client, member):
    headers, _ = member
    for key, formula in (("rate", "signups / visits"), ("rate_pct", "rate * 100")):
        created = client.post(
            "/api/metrics", json={"key": key, "label": key, "formula": formula}, headers=headers
        )
        assert created.status_code == 201, created.text
    csrf = _csrf(client)
    used = client.post("/metrics/custom/rate/delete", data={"csrf_token": csrf}, headers=HTML)
    assert used.status_code == 409
    assert "is used by rate_pct" in used.text
    gone = client.post(
        "/metrics/custom/rate_pct/delete",
        data={"csrf_token": csrf},
        headers=HTML,
        follow_redirects=False,
    )
    assert gone.status_code == 303
    assert [m["key"] for m in client.get("/api/metrics", headers=headers).json()] == ["rate"]


def test_status_change_and_a_bad_one(client, member):
    headers, _ = member
    test = client.post(
        "/api/tests", json={"name": "T", "startDate": "2026-11-01"}, headers=headers
    ).json()
    csrf = _csrf(client)
    bad = client.post(
        f"/tests/{test['id']}/status", data={"csrf_token": csrf, "status": "won"}, headers=HTML
    )
    assert bad.status_code == 422
    assert "choose draft, running, completed or cancelled" in bad.text
    done = client.post(
        f"/tests/{test['id']}/status",
        data={"csrf_token": csrf, "status": "completed"},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert client.get(f"/api/tests/{test['id']}", headers=headers).json()["status"] == "completed"
    missing = client.post(
        "/tests/00000000-0000-0000-0000-000000000000/status",
        data={"csrf_token": csrf, "status": "won"},
        headers=HTML,
    )
    assert missing.status_code == 404


def test_a_range_without_values_says_so_instead_of_an_empty_chart(client, member):
    page = client.get("/metrics?from=2025-01-01&to=2025-01-31", headers=HTML)
    assert page.status_code == 200
    assert page.text.count("No values in this range") == 2  # visits and signups
    assert 'id="chart-visits"' not in page.text


def test_a_test_without_data_says_what_to_do_first(client, factory):
    _, headers = person(factory)
    client.cookies.set("inflow_session", headers["Authorization"].removeprefix("Bearer "))
    test = client.post(
        "/api/tests", json={"name": "Early", "startDate": "2026-11-01"}, headers=headers
    ).json()
    page = client.get(f"/tests/{test['id']}", headers=HTML)
    assert page.status_code == 200
    assert "You have no data source yet." in page.text
    assert "No metric to show yet" in page.text
    empty = client.get("/metrics", headers=HTML)
    assert "No data points yet" in empty.text

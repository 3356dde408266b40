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

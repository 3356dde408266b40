"""Tests (experiments) through the real API: CRUD with its checks, links to data points,
results with a significant and a non-significant change, ownership and the audit trail."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from scipy import stats as scipy_stats
from sqlalchemy import select

from inflow.storage.models import AuditEvent, ExperimentDataPoint
from tests.api.objects import assert_problem, create_source, field_errors, person
from tests.api.test_data_points import count, point, store

TEST_KEYS = {
    "id",
    "name",
    "hypothesis",
    "metric",
    "startDate",
    "endDate",
    "status",
    "control",
    "guardrails",
    "ownerId",
    "dataPointCount",
    "createdAt",
    "updatedAt",
}


def create_test(client, headers, **fields: Any) -> dict[str, Any]:
    body = {"name": "New pricing page", "startDate": "2025-05-08", **fields}
    response = client.post("/api/tests", headers=headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def results(client, headers, test_id: str) -> dict[str, Any]:
    response = client.get(f"/api/tests/{test_id}/results", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def days(first: date, values: Sequence[float]) -> list[tuple[date, float]]:
    return [(first + timedelta(days=i), v) for i, v in enumerate(values)]


# ---------------------------------------------------------------- CRUD


def test_tests_crud(client, factory):
    user, headers = person(factory)
    source = create_source(client, headers)

    created = create_test(
        client,
        headers,
        hypothesis="A shorter form converts better",
        metric="signups",
        endDate="2025-05-14",
        status="running",
    )
    test_id = created["id"]
    changed = client.patch(
        f"/api/tests/{test_id}",
        headers=headers,
        json={"status": "completed", "endDate": None, "name": "Pricing v2"},
    )

    store(client, headers, [point(source, "signups", 3, "2025-05-08")], linkToTests=[test_id])
    assert set(created) == TEST_KEYS
    assert created["ownerId"] == str(user.id)
    assert (created["startDate"], created["endDate"]) == ("2025-05-08", "2025-05-14")
    assert created["dataPointCount"] == 0
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["status"], body["endDate"], body["name"]) == ("completed", None, "Pricing v2")
    assert body["metric"] == "signups"  # left out: kept
    assert client.get(f"/api/tests/{test_id}", headers=headers).json()["name"] == "Pricing v2"
    assert [t["id"] for t in client.get("/api/tests", headers=headers).json()] == [test_id]
    assert client.delete(f"/api/tests/{test_id}", headers=headers).status_code == 204
    assert count(factory, ExperimentDataPoint) == 0  # its links went with it
    assert client.get("/api/data-points/raw", headers=headers).json()["count"] == 1  # not the point
    assert_problem(client.get(f"/api/tests/{test_id}", headers=headers), 404)
    with factory() as session:
        actions = list(session.execute(select(AuditEvent.action)).scalars())
    assert {"test.create", "test.update", "test.delete"} <= set(actions)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        pytest.param({"startDate": "2025-05-08", "endDate": "2025-05-07"}, "endDate", id="end_first"),
        pytest.param({"metric": "bounce_rate"}, "metric", id="unknown_metric"),
        pytest.param({"status": "paused"}, "status", id="unknown_status"),
        pytest.param({"startDate": "tomorrow"}, "startDate", id="not_a_date"),
        pytest.param({"name": ""}, "name", id="empty_name"),
    ],
)  # fmt: skip
def test_tests_refuse_invalid_fields(client, factory, fields, bad):
    _, headers = person(factory)

    response = client.post(
        "/api/tests", headers=headers, json={"name": "T", "startDate": "2025-05-08", **fields}
    )

    assert set(field_errors(response)) == {bad}
    assert client.get("/api/tests", headers=headers).json() == []


def test_a_patch_is_checked_against_the_stored_fields(client, factory):
    _, headers = person(factory)
    test = create_test(client, headers, endDate="2025-05-14")

    moved = client.patch(
        f"/api/tests/{test['id']}", headers=headers, json={"startDate": "2025-06-01"}
    )

    assert set(field_errors(moved)) == {"endDate"}
    assert (
        client.get(f"/api/tests/{test['id']}", headers=headers).json()["startDate"] == "2025-05-08"
    )


def test_a_test_may_name_a_custom_metric(client, factory):
    _, headers = person(factory)
    client.post(
        "/api/metrics",
        headers=headers,
        json={"key": "conversion", "label": "Conversion", "formula": "signups / visits"},
    )

    assert create_test(client, headers, metric="conversion")["metric"] == "conversion"


def test_a_strangers_test_is_a_404_everywhere(client, factory):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    source = create_source(client, headers)
    store(client, headers, [point(source, "visits", 1, "2025-05-08")])
    point_id = client.get("/api/data-points/raw", headers=headers).json()["items"][0]["id"]
    theirs = create_test(client, stranger_headers)
    url = f"/api/tests/{theirs['id']}"

    responses = [
        client.get(url, headers=headers),
        client.patch(url, headers=headers, json={"name": "Mine now"}),
        client.delete(url, headers=headers),
        client.get(f"{url}/results", headers=headers),
        client.post(f"{url}/data-points", headers=headers, json={"ids": [point_id]}),
    ]

    for response in responses:
        assert_problem(response, 404)
    assert client.get("/api/tests", headers=headers).json() == []
    assert client.get(url, headers=stranger_headers).json()["name"] == "New pricing page"
    with factory() as session:
        denied = session.execute(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).scalars()
        assert {e.target for e in denied} == {f"tests:{theirs['id']}"}


def test_an_admin_sees_every_test(client, factory):
    _, headers = person(factory)
    _, admin_headers = person(factory, role="admin")
    test = create_test(client, headers)

    assert [t["id"] for t in client.get("/api/tests", headers=admin_headers).json()] == [test["id"]]
    assert client.get(f"/api/tests/{test['id']}/results", headers=admin_headers).status_code == 200


# ---------------------------------------------------------------- links


def test_linking_points_counts_each_once_and_refuses_strangers_points(client, factory):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    mine = create_source(client, headers)
    theirs = create_source(client, stranger_headers)
    store(client, headers, [point(mine, "visits", v, f"2025-05-0{v}") for v in (1, 2, 3)])
    store(client, stranger_headers, [point(theirs, "visits", 9, "2025-05-01")])
    ids = [p["id"] for p in client.get("/api/data-points/raw", headers=headers).json()["items"]]
    their_id = client.get("/api/data-points/raw", headers=stranger_headers).json()["items"][0]["id"]
    test = create_test(client, headers)
    url = f"/api/tests/{test['id']}/data-points"

    refused = client.post(url, headers=headers, json={"ids": [ids[0], their_id, str(uuid.uuid4())]})
    first = client.post(url, headers=headers, json={"ids": ids[:2]})
    second = client.post(url, headers=headers, json={"ids": ids})

    assert set(field_errors(refused)) == {"ids.1", "ids.2"}
    assert first.json() == {"linked": 2, "alreadyLinked": 0}
    assert second.json() == {"linked": 1, "alreadyLinked": 2}
    assert count(factory, ExperimentDataPoint) == 3
    assert client.get(f"/api/tests/{test['id']}", headers=headers).json()["dataPointCount"] == 3


# ---------------------------------------------------------------- results

START = date(2025, 5, 8)  # a Thursday; the test runs seven days, 8-14 May
BASELINE = START - timedelta(days=7)


def _store_days(client, headers, source, metric: str, values: list[tuple[date, float]], **kw):
    return store(client, headers, [point(source, metric, v, d) for d, v in values], **kw)


def paired(during: Sequence[float], baseline: Sequence[float]) -> Any:
    """scipy's own paired t-test (not the code under test), with its 95 % interval."""
    found = scipy_stats.ttest_rel(during, baseline)
    return found, found.confidence_interval(0.95)


def test_results_flag_a_change_larger_than_the_daily_noise(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    test = create_test(client, headers, endDate="2025-05-14", status="completed")
    baseline = [100, 102, 98, 101, 99, 100, 100]
    during = [130, 128, 132, 131, 129, 130, 130]
    # per page: the test is about all pages, so both pages' points are linked
    for page, share in (("/a", 0.75), ("/b", 0.25)):
        dims = {"page": page}
        store(
            client,
            headers,
            [
                point(source, "visits", v * share, d, dimensions=dims)
                for d, v in days(BASELINE, baseline)
            ],
        )
        store(
            client,
            headers,
            [
                point(source, "visits", v * share, d, dimensions=dims)
                for d, v in days(START, during)
            ],
            linkToTests=[test["id"]],
        )
    expected, interval = paired(during, baseline)

    body = results(client, headers, test["id"])

    assert body["started"] is True
    assert "same weekday" in body["rule"]
    assert (body["method"], body["confidence"]) == ("weekday-paired-t", 0.95)
    assert body["guardrails"] == []
    (visits,) = body["metrics"]
    assert visits["metric"] == "visits"
    assert visits["aggregation"] == "sum"
    assert visits["baseline"] == {
        "from": "2025-05-01",
        "to": "2025-05-07",
        "days": 7,
        "value": pytest.approx(100),  # compared per day: 700 over seven days
        "complete": True,
    }
    assert visits["during"]["value"] == pytest.approx(130)
    assert (visits["during"]["from"], visits["during"]["to"]) == ("2025-05-08", "2025-05-14")
    assert visits["change"]["absolute"] == pytest.approx(30)
    assert visits["change"]["relative"] == pytest.approx(0.3)
    assert visits["baselineDailyStdDev"] == pytest.approx(statistics.stdev(baseline))
    assert visits["effect"]["absolute"] == pytest.approx(30)
    assert visits["effect"]["relative"] == pytest.approx(0.3)
    assert visits["interval"]["absolute"] == pytest.approx([interval.low, interval.high])
    assert visits["interval"]["relative"] == pytest.approx(
        [interval.low / 100, interval.high / 100]
    )
    assert visits["interval"]["absolute"][0] > 0
    assert visits["pValue"] == pytest.approx(expected.pvalue)
    assert visits["degreesOfFreedom"] == 6
    assert visits["days"] == {"baseline": 7, "during": 7, "paired": 7, "required": 7, "lag": 7}
    assert visits["significant"] is True
    assert visits["reason"] is None
    assert visits["summary"].startswith("visits rose 30.0 % (95 % CI ")
    assert visits["summary"].endswith("the change is significant.")
    assert visits["control"] is None
    assert body["summary"] == visits["summary"]


def test_results_do_not_flag_a_change_within_the_daily_noise(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    test = create_test(client, headers, endDate="2025-05-14", metric="visits")
    baseline = [60, 140, 80, 120, 70, 130, 100]  # mean 100, stdev ~30
    during = [150, 70, 120, 90, 130, 80, 126]  # mean 109.43
    _store_days(client, headers, source, "visits", days(BASELINE, baseline))
    _store_days(client, headers, source, "visits", days(START, during))  # nothing linked
    expected, interval = paired(during, baseline)

    (visits,) = results(client, headers, test["id"])["metrics"]

    assert visits["metric"] == "visits"  # the test's own metric, over the owner's sources
    assert visits["baseline"]["value"] == pytest.approx(100)
    assert visits["during"]["value"] == pytest.approx(sum(during) / 7)
    assert visits["change"]["absolute"] == pytest.approx(sum(during) / 7 - 100)
    assert visits["pValue"] == pytest.approx(expected.pvalue)
    assert visits["interval"]["absolute"] == pytest.approx([interval.low, interval.high])
    assert visits["interval"]["absolute"][0] < 0 < visits["interval"]["absolute"][1]
    assert visits["significant"] is False
    assert visits["summary"].endswith("not significant, the interval includes no change.")


def test_too_few_days_are_not_called_significant(client, factory):
    """Points linked for one page: the results are that page's, baseline included; three
    days of a clear change are still too few to call."""
    _, headers = person(factory)
    source = create_source(client, headers)
    test = create_test(client, headers, endDate="2025-05-10")
    _store_days(client, headers, source, "visits", days(BASELINE, [10, 10, 10]))
    store(
        client,
        headers,
        [point(source, "visits", 5, d, dimensions={"page": "/pricing"}) for d, _ in days(BASELINE, [0] * 3)],
    )  # fmt: skip
    store(
        client,
        headers,
        [point(source, "visits", 8, d, dimensions={"page": "/pricing"}) for d, _ in days(START, [0] * 3)],
        linkToTests=[test["id"]],
    )  # fmt: skip

    (visits,) = results(client, headers, test["id"])["metrics"]

    assert (visits["baseline"]["from"], visits["baseline"]["to"]) == ("2025-05-01", "2025-05-03")
    assert visits["baseline"]["value"] == pytest.approx(5)  # not 10 (the site) nor 15
    assert visits["during"]["value"] == pytest.approx(8)
    assert visits["change"]["absolute"] == pytest.approx(3)
    assert visits["significant"] is None
    assert visits["interval"] is None
    assert visits["pValue"] is None
    assert visits["days"]["during"] == 3
    assert visits["reason"] == "Not enough days yet: 3 of 7 in the test window."
    assert visits["summary"] == visits["reason"]


def test_results_of_a_custom_metric_and_a_short_baseline(client, factory):
    """A ratio of sums per window; a baseline with fewer days of data still compares."""
    _, headers = person(factory)
    source = create_source(client, headers)
    client.post(
        "/api/metrics",
        headers=headers,
        json={"key": "conversion", "label": "Conversion", "formula": "signups / visits"},
    )
    test = create_test(client, headers, endDate="2025-05-11", metric="conversion")  # 4 days
    # baseline (a week back, 1-4 May): only 2 of its 4 days have data
    base_days = [BASELINE, BASELINE + timedelta(days=1)]
    during_days = [START + timedelta(days=i) for i in range(4)]
    _store_days(client, headers, source, "visits", [(base_days[0], 100), (base_days[1], 300)])
    _store_days(client, headers, source, "signups", [(base_days[0], 10), (base_days[1], 10)])
    _store_days(client, headers, source, "visits", [(d, 100) for d in during_days])
    _store_days(client, headers, source, "signups", [(d, 10) for d in during_days])

    metrics = results(client, headers, test["id"])["metrics"]

    conversion = metrics[0]
    assert conversion["metric"] == "conversion"
    assert conversion["aggregation"] == "formula"
    assert conversion["baseline"]["days"] == 2
    assert conversion["baseline"]["value"] == pytest.approx(20 / 400)  # not (0.1 + 0.033) / 2
    assert conversion["during"]["value"] == pytest.approx(0.1)
    assert conversion["change"]["relative"] == pytest.approx(1.0)
    assert conversion["baselineDailyStdDev"] == pytest.approx(statistics.stdev([0.1, 10 / 300]))
    assert conversion["days"] == {
        "baseline": 2,
        "during": 4,
        "paired": 2,
        "required": 7,
        "lag": 7,
    }
    assert conversion["significant"] is None
    assert conversion["reason"] == "Not enough days yet: 4 of 7 in the test window."


def test_results_before_the_test_starts_are_empty(client, factory):
    _, headers = person(factory)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    test = create_test(client, headers, startDate=tomorrow.isoformat(), metric="visits")

    body = results(client, headers, test["id"])

    assert body["started"] is False
    assert body["summary"] == "The test has not started."
    (visits,) = body["metrics"]
    assert visits["baseline"] is None
    assert visits["during"] is None
    assert visits["significant"] is None
    assert visits["reason"] == "The test has not started."

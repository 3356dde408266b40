"""Data points through the real API: "Create All" (idempotent, all or nothing), series
aggregated by each metric's rule (hand-computed numbers), custom metrics, trends, history
after a restatement, ownership, and the fetch's reach checks."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from inflow.api.routes.data_points import SeriesPublic
from inflow.storage.models import AuditEvent, DataPoint, DataPointRevision, ExperimentDataPoint
from tests.api.objects import assert_problem, create_source, field_errors, person

CLARITY = {"projectId": "abc123", "apiKey": "clarity-token"}
INSTAGRAM = {"businessAccountId": "17841400000000001", "accessToken": "x" * 32}


def point(
    source: dict[str, Any] | str,
    metric: str,
    value: float,
    day: date | str,
    *,
    tz: str | None = None,
    start: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A point as the fetch preview shows it, plus its ``sourceId``: a whole UTC day unless
    ``start`` (an ISO instant) says otherwise."""
    first = date.fromisoformat(day) if isinstance(day, str) else day
    begin = (
        datetime.fromisoformat(start)
        if start
        else datetime(first.year, first.month, first.day, tzinfo=UTC)
    )
    body: dict[str, Any] = {
        "sourceId": source if isinstance(source, str) else source["id"],
        "metric": metric,
        "value": value,
        "periodStart": begin.isoformat(),
        "periodEnd": (begin + timedelta(days=1)).isoformat(),
        "dimensions": {},
        **fields,
    }
    if tz is not None:
        body["timezone"] = tz
    return body


def post_points(client, headers, points: list[dict[str, Any]], **body: Any):
    return client.post("/api/data-points", headers=headers, json={"dataPoints": points, **body})


def store(client, headers, points: list[dict[str, Any]], **body: Any) -> dict[str, int]:
    response = post_points(client, headers, points, **body)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


def series(client, headers, metric: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/data-points", headers=headers, params={"metric": metric, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def values(body: dict[str, Any]) -> dict[str, float | None]:
    """``{periodStart: value}`` of a series."""
    return {p["periodStart"]: p["value"] for p in body["points"]}


def count(factory, model) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def create_metric(client, headers, **body: Any) -> dict[str, Any]:
    response = client.post("/api/metrics", headers=headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# ---------------------------------------------------------------- create all


def test_create_all_stores_points_once(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    points = [
        point(source, "visits", 120, "2025-03-03", dimensions={"page": "/a"}),
        point(source, "visits", 80, "2025-03-03", dimensions={"page": "/b"}),
        point(source, "signups", 4, "2025-03-03", dimensions={"page": "/a"}),
    ]

    first = store(client, headers, points)
    again = store(client, headers, points)

    assert first == {"created": 3, "updated": 0, "unchanged": 0}
    assert again == {"created": 0, "updated": 0, "unchanged": 3}
    assert count(factory, DataPoint) == 3
    with factory() as session:
        row = session.execute(select(DataPoint).where(DataPoint.value == 120)).scalar_one()
        assert row.unit == "count"  # from the connector's catalog when the item has none
        assert row.dimensions == {"page": "/a"}
        actions = list(session.execute(select(AuditEvent.action)).scalars())
    assert actions.count("data_points.create") == 2


def test_create_all_takes_the_fetch_preview_as_is(client, factory):
    """Every field the fetch preview returns is accepted back (plus sourceId)."""
    _, headers = person(factory)
    source = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    preview = {
        "metric": "pages_per_session",
        "value": 61.5,
        "unit": "percent",
        "periodStart": "2025-03-03T13:00:00Z",
        "periodEnd": "2025-03-04T13:00:00Z",
        "dimensions": {"device": "Mobile"},
        "complete": True,
        "granularity": "day",
        "timezone": "UTC",
        "weight": 420.0,
    }

    counts = store(client, headers, [{**preview, "sourceId": source["id"]}])

    assert counts["created"] == 1
    with factory() as session:
        row = session.execute(select(DataPoint)).scalar_one()
    assert (row.value, row.weight, row.unit) == (61.5, 420.0, "percent")


def test_restated_value_updates_the_point_and_keeps_its_history(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    day = "2025-03-03"

    store(client, headers, [point(source, "visits", 10, day, complete=False)])
    raw = client.get("/api/data-points/raw", headers=headers).json()
    point_id = raw["items"][0]["id"]
    first_written = raw["items"][0]["updatedAt"]
    assert store(client, headers, [point(source, "visits", 12, day)])["updated"] == 1
    assert store(client, headers, [point(source, "visits", 15, day)])["updated"] == 1

    response = client.get(f"/api/data-points/{point_id}/history", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["point"]["value"] == 15
    assert body["point"]["complete"] is True
    revisions = body["revisions"]
    assert [r["value"] for r in revisions] == [12, 10]  # newest first
    assert [r["complete"] for r in revisions] == [True, False]
    oldest = revisions[-1]
    # when the replaced value was written, and when it was replaced
    assert datetime.fromisoformat(oldest["recordedAt"]) == datetime.fromisoformat(first_written)
    assert oldest["replacedAt"] >= oldest["recordedAt"]
    assert revisions[0]["recordedAt"] == oldest["replacedAt"]
    assert count(factory, DataPoint) == 1
    assert count(factory, DataPointRevision) == 2


def test_restating_only_the_weight_or_the_period_end_reaches_every_read(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    day = "2025-03-03"
    # pages per session, weighted by sessions: 0.5 over 10 and 0.1 over 30 sessions
    first = [
        point(source, "pages_per_session", 0.5, day, weight=10, dimensions={"device": "PC"}),
        point(source, "pages_per_session", 0.1, day, weight=30, dimensions={"device": "Mobile"}),
    ]
    store(client, headers, first)
    before = values(series(client, headers, "pages_per_session"))
    # the provider corrects only the sessions behind the PC value: 10 → 90
    again = [{**first[0], "weight": 90}, first[1]]
    counts = store(client, headers, again)
    after = values(series(client, headers, "pages_per_session"))
    longer = {**again[1], "periodEnd": "2025-03-03T12:00:00+00:00"}
    ended = store(client, headers, [again[0], longer])
    raw = client.get("/api/data-points/raw", headers=headers).json()["items"]
    mobile = next(p for p in raw if p["dimensions"] == {"device": "Mobile"})
    history = client.get(f"/api/data-points/{mobile['id']}/history", headers=headers).json()

    # weighted means computed here: (0.5*10 + 0.1*30) / 40 and (0.5*90 + 0.1*30) / 120
    assert before == {"2025-03-03T00:00:00Z": pytest.approx(0.2)}
    assert counts == {"created": 0, "updated": 1, "unchanged": 1}
    assert after == {"2025-03-03T00:00:00Z": pytest.approx(0.4)}
    assert ended == {"created": 0, "updated": 1, "unchanged": 1}
    assert mobile["periodEnd"] == "2025-03-03T12:00:00Z"
    assert [(r["value"], r["weight"]) for r in history["revisions"]] == [(0.1, 30)]
    assert history["revisions"][0]["periodEnd"] == "2025-03-04T00:00:00Z"


def test_create_all_refuses_bad_items_naming_each_and_stores_nothing(client, factory):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    mine = create_source(client, headers)
    theirs = create_source(client, stranger_headers)
    backwards = point(mine, "visits", 1, "2025-03-03")
    backwards["periodEnd"] = "2025-03-02T00:00:00Z"
    missing = str(uuid.uuid4())

    response = post_points(
        client,
        headers,
        [
            point(mine, "visits", 1, "2025-03-03"),
            point(theirs, "visits", 1, "2025-03-03"),
            point(mine, "bounce_rate", 1, "2025-03-03"),
            backwards,
            point(missing, "visits", 1, "2025-03-03"),
        ],
    )

    errors = field_errors(response)
    assert set(errors) == {
        "dataPoints.1.sourceId",
        "dataPoints.2.metric",
        "dataPoints.3.periodEnd",
        "dataPoints.4.sourceId",
    }
    # a stranger's source reads exactly like a missing one
    assert errors["dataPoints.1.sourceId"] == f"data source {theirs['id']} not found"
    assert errors["dataPoints.4.sourceId"] == f"data source {missing} not found"
    assert "'bounce_rate'" in errors["dataPoints.2.metric"]
    assert "visits" in errors["dataPoints.2.metric"]  # the known ones are listed
    assert count(factory, DataPoint) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("value", "NaN", id="not_a_number"),
        pytest.param("timezone", "Mars/Olympus", id="unknown_time_zone"),
        pytest.param("granularity", "year", id="unknown_granularity"),
        pytest.param("weight", -1, id="negative_weight"),
    ],
)
def test_create_all_refuses_invalid_fields(client, factory, field, value):
    _, headers = person(factory)
    source = create_source(client, headers)

    item = {**point(source, "visits", 1, "2025-03-03"), field: value}
    response = post_points(client, headers, [item])

    assert set(field_errors(response)) == {f"dataPoints.0.{field}"}
    assert count(factory, DataPoint) == 0


def test_create_all_links_to_tests_and_refuses_unknown_ones(client, factory):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    source = create_source(client, headers)
    test = client.post(
        "/api/tests", headers=headers, json={"name": "Pricing", "startDate": "2025-03-01"}
    ).json()
    theirs = client.post(
        "/api/tests", headers=stranger_headers, json={"name": "X", "startDate": "2025-03-01"}
    ).json()
    points = [point(source, "visits", v, f"2025-03-0{d}") for d, v in ((3, 5), (4, 6))]

    for bad in (str(uuid.uuid4()), theirs["id"]):
        refused = post_points(client, headers, points, linkToTests=[test["id"], bad])
        assert set(field_errors(refused)) == {"linkToTests.1"}
        assert bad in refused.json()["errors"][0]["message"]
    assert count(factory, DataPoint) == 0
    assert count(factory, ExperimentDataPoint) == 0

    assert store(client, headers, points, linkToTests=[test["id"]])["created"] == 2
    assert store(client, headers, points, linkToTests=[test["id"]])["unchanged"] == 2

    assert count(factory, ExperimentDataPoint) == 2  # linked once
    shown = client.get(f"/api/tests/{test['id']}", headers=headers).json()
    assert shown["dataPointCount"] == 2


# ---------------------------------------------------------------- series: the rules


def test_counts_add_per_day_iso_week_and_month(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    # Sun 30 Mar, Mon 31 Mar, Tue 1 Apr 2025: one ISO week ends, the next begins; so does a month
    store(
        client,
        headers,
        [
            point(source, "visits", 10, "2025-03-30", dimensions={"page": "/a"}),
            point(source, "visits", 5, "2025-03-30", dimensions={"page": "/b"}),
            point(source, "visits", 20, "2025-03-31", dimensions={"page": "/a"}),
            point(source, "visits", 7, "2025-04-01", dimensions={"page": "/a"}),
            point(source, "visits", 3, "2025-04-01", dimensions={"page": "/b"}),
            point(source, "signups", 99, "2025-03-31", dimensions={"page": "/a"}),
        ],
    )

    daily = series(client, headers, "visits", sourceId=source["id"])
    weekly = series(client, headers, "visits", granularity="week")
    monthly = series(client, headers, "visits", granularity="month")

    assert daily["unit"] == "count"
    assert daily["aggregation"] == "sum"
    assert values(daily) == {
        "2025-03-30T00:00:00Z": 15,
        "2025-03-31T00:00:00Z": 20,
        "2025-04-01T00:00:00Z": 10,
    }
    assert daily["points"][0]["periodEnd"] == "2025-03-31T00:00:00Z"
    assert values(weekly) == {"2025-03-24T00:00:00Z": 15, "2025-03-31T00:00:00Z": 30}
    assert weekly["points"][0]["periodEnd"] == "2025-03-31T00:00:00Z"
    assert values(monthly) == {"2025-03-01T00:00:00Z": 35, "2025-04-01T00:00:00Z": 10}
    assert monthly["points"][1]["periodEnd"] == "2025-05-01T00:00:00Z"
    ranged = series(client, headers, "visits", **{"from": "2025-03-31", "to": "2025-03-31"})
    assert values(ranged) == {"2025-03-31T00:00:00Z": 20}


def test_a_stored_total_is_not_added_to_its_breakdown(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    store(
        client,
        headers,
        [
            # day 1: the provider's total and its breakdown by page
            point(source, "visits", 100, "2025-03-03"),
            point(source, "visits", 70, "2025-03-03", dimensions={"page": "/a"}),
            point(source, "visits", 30, "2025-03-03", dimensions={"page": "/b"}),
            # day 2: two breakdowns of the same total (by page, by device), no total
            point(source, "visits", 8, "2025-03-04", dimensions={"page": "/a"}),
            point(source, "visits", 2, "2025-03-04", dimensions={"page": "/b"}),
            point(source, "visits", 6, "2025-03-04", dimensions={"device": "mobile"}),
            point(source, "visits", 4, "2025-03-04", dimensions={"device": "desktop"}),
            # day 3: a breakdown by page and a finer one by page and device
            point(source, "visits", 9, "2025-03-05", dimensions={"page": "/a"}),
            point(source, "visits", 5, "2025-03-05", dimensions={"page": "/a", "device": "m"}),
            point(source, "visits", 4, "2025-03-05", dimensions={"page": "/a", "device": "d"}),
        ],
    )

    total = series(client, headers, "visits")
    page_a = series(client, headers, "visits", dimensions="page:/a")
    mobile = series(client, headers, "visits", dimensions='{"device": "mobile"}')

    assert values(total) == {
        "2025-03-03T00:00:00Z": 100,
        "2025-03-04T00:00:00Z": 10,
        "2025-03-05T00:00:00Z": 9,
    }
    assert values(page_a) == {
        "2025-03-03T00:00:00Z": 70,
        "2025-03-04T00:00:00Z": 8,
        "2025-03-05T00:00:00Z": 9,
    }
    assert values(mobile) == {"2025-03-04T00:00:00Z": 6}


def test_overlapping_rolling_windows_are_never_counted_twice(client, factory):
    """Clarity's periods are rolling 24/48/72-hour windows: a 3-day fetch, then daily syncs
    (one at 00:00, one by hand at 14:00 the same day) all cover some of the same hours."""
    _, headers = person(factory)
    source = create_source(client, headers)

    def window(value: float, start: str, hours: int) -> dict[str, Any]:
        begin = datetime.fromisoformat(start)
        return point(
            source,
            "visits",
            value,
            begin.date(),
            start=start,
            periodEnd=(begin + timedelta(hours=hours)).isoformat(),
        )

    store(
        client,
        headers,
        [
            window(300, "2025-03-01T00:00:00+00:00", 72),  # the 3-day fetch: Mar 1-3
            window(110, "2025-03-03T00:00:00+00:00", 24),  # Mar 3's daily sync
            window(120, "2025-03-03T14:00:00+00:00", 24),  # a sync by hand: Mar 3 14h-Mar 4 14h
            window(95, "2025-03-05T00:00:00+00:00", 24),  # Mar 5: no overlap
        ],
    )

    got = values(series(client, headers, "visits"))

    # the shorter windows win over the 3-day one; of the two overlapping days the later one
    assert got == {"2025-03-03T00:00:00Z": 120, "2025-03-05T00:00:00Z": 95}


def test_a_rate_is_weighted_never_summed(client, factory):
    """pages_per_session (Clarity: an average weighted by sessions)."""
    _, headers = person(factory)
    source = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    store(
        client,
        headers,
        [
            # Monday: weights on the points themselves
            point(source, "pages_per_session", 2.0, "2025-03-03", weight=100, dimensions={"device": "mobile"}),
            point(source, "pages_per_session", 5.0, "2025-03-03", weight=300, dimensions={"device": "desktop"}),
            # Tuesday: no weights on the points; the weight metric (sessions) says them
            point(source, "pages_per_session", 3.0, "2025-03-04", dimensions={"device": "mobile"}),
            point(source, "pages_per_session", 1.0, "2025-03-04", dimensions={"device": "desktop"}),
            point(source, "sessions", 50, "2025-03-04", dimensions={"device": "mobile"}),
            point(source, "sessions", 150, "2025-03-04", dimensions={"device": "desktop"}),
        ],
    )  # fmt: skip

    daily = series(client, headers, "pages_per_session")
    weekly = series(client, headers, "pages_per_session", granularity="week")

    assert daily["aggregation"] == "average"
    assert daily["unit"] == "pages"
    by_day = values(daily)
    # (2*100 + 5*300) / 400 = 4.25, not 7 (a sum) nor 3.5 (a plain mean)
    assert by_day["2025-03-03T00:00:00Z"] == pytest.approx(4.25)
    # (3*50 + 1*150) / 200 = 1.5
    assert by_day["2025-03-04T00:00:00Z"] == pytest.approx(1.5)
    # the week: (200 + 1500 + 150 + 150) / (400 + 200) = 3.3333
    assert values(weekly) == {"2025-03-03T00:00:00Z": pytest.approx(2000 / 600)}


def test_snapshots_take_the_last_value_and_unique_counts_the_largest(client, factory):
    _, headers = person(factory)
    insta = create_source(client, headers, type="instagram", config=INSTAGRAM)
    other = create_source(client, headers, type="instagram", config=INSTAGRAM)
    clarity = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    store(
        client,
        headers,
        [
            point(insta, "followers", 1000, "2025-03-03"),
            point(insta, "followers", 1010, "2025-03-05"),
            point(insta, "followers", 1004, "2025-03-04"),
            point(other, "followers", 50, "2025-03-04"),
            point(clarity, "distinct_users", 40, "2025-03-03"),
            point(clarity, "distinct_users", 65, "2025-03-04"),
            point(clarity, "distinct_users", 52, "2025-03-05"),
        ],
    )

    followers = series(client, headers, "followers", granularity="week")
    users = series(client, headers, "distinct_users", granularity="week")

    assert followers["aggregation"] == "last"
    assert values(followers) == {"2025-03-03T00:00:00Z": 1010 + 50}  # each account's last
    assert users["aggregation"] == "max"
    assert values(users) == {"2025-03-03T00:00:00Z": 65}


def test_last_and_max_compare_a_periods_total_never_a_part_with_a_total(client, factory):
    _, headers = person(factory)
    insta = create_source(client, headers, type="instagram", config=INSTAGRAM)
    clarity = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    eu, us = {"region": "eu"}, {"region": "us"}
    store(
        client,
        headers,
        [
            # followers: Monday a total only, Tuesday by region only (no total)
            point(insta, "followers", 102, "2025-03-03"),
            point(insta, "followers", 33, "2025-03-04", dimensions=eu),
            point(insta, "followers", 73, "2025-03-04", dimensions=us),
            # distinct users: Monday a total, Tuesday and Wednesday by region
            point(clarity, "distinct_users", 100, "2025-03-03"),
            point(clarity, "distinct_users", 30, "2025-03-04", dimensions=eu),
            point(clarity, "distinct_users", 50, "2025-03-04", dimensions=us),
            point(clarity, "distinct_users", 70, "2025-03-05", dimensions=eu),
            point(clarity, "distinct_users", 45, "2025-03-05", dimensions=us),
        ],
    )  # fmt: skip

    followers = series(client, headers, "followers", granularity="week")
    users = series(client, headers, "distinct_users", granularity="week")
    eu_users = series(client, headers, "distinct_users", granularity="week", dimensions="region:eu")

    # the week's last day is Tuesday: 33 + 73 (not 102 + 33 + 73)
    assert values(followers) == {"2025-03-03T00:00:00Z": 106}
    # the largest day: Wednesday's 70 + 45 = 115 (not Monday's total against one region)
    assert values(users) == {"2025-03-03T00:00:00Z": 115}
    assert values(eu_users) == {"2025-03-03T00:00:00Z": 70}


def test_a_point_without_a_weight_is_left_out_of_a_weighted_mean(client, factory):
    _, headers = person(factory)
    clarity = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    pc, mobile, tablet = ({"device": d} for d in ("PC", "Mobile", "Tablet"))
    store(
        client,
        headers,
        [
            point(clarity, "pages_per_session", 2.0, "2025-03-03", weight=100, dimensions=pc),
            point(clarity, "pages_per_session", 4.0, "2025-03-03", weight=300, dimensions=mobile),
            # no weight and no sessions point beside it: its weight is unknown
            point(clarity, "pages_per_session", 9.0, "2025-03-03", dimensions=tablet),
            point(clarity, "pages_per_session", 1.0, "2025-03-04", dimensions=pc),
            point(clarity, "pages_per_session", 3.0, "2025-03-04", dimensions=mobile),
        ],
    )

    daily = values(series(client, headers, "pages_per_session"))

    # (2*100 + 4*300) / 400, not the plain mean of 2, 4 and 9; a day with no weight at all: a mean
    assert daily == {
        "2025-03-03T00:00:00Z": pytest.approx(3.5),
        "2025-03-04T00:00:00Z": pytest.approx(2.0),
    }


def test_trends_of_a_source_in_berlin_are_its_own_days(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    berlin = "Europe/Berlin"
    points = [
        point(source, "visits", d, f"2025-03-{d:02d}", tz=berlin, start=f"2025-03-{d - 1:02d}T23:00:00+00:00")
        for d in range(2, 16)
    ]  # fmt: skip
    store(client, headers, points)

    params = {"metric": "visits", "from": "2025-03-09", "to": "2025-03-15"}
    body = client.get("/api/data-points/trends", headers=headers, params=params).json()

    assert body["current"]["periodStart"] == "2025-03-09T00:00:00+01:00"
    assert body["current"]["periodEnd"] == "2025-03-16T00:00:00+01:00"
    assert body["previous"]["periodStart"] == "2025-03-02T00:00:00+01:00"
    assert body["current"]["value"] == sum(range(9, 16))
    assert body["previous"]["value"] == sum(range(2, 9))


def test_periods_follow_each_points_own_time_zone(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    tokyo = "Asia/Tokyo"  # UTC+9: its 1 April starts on 31 March in UTC
    store(
        client,
        headers,
        [
            point(source, "visits", 4, "2025-03-31", tz=tokyo, start="2025-03-30T15:00:00+00:00"),
            point(source, "visits", 6, "2025-04-01", tz=tokyo, start="2025-03-31T15:00:00+00:00"),
        ],
    )

    daily = series(client, headers, "visits")
    monthly = series(client, headers, "visits", granularity="month")
    weekly = series(client, headers, "visits", granularity="week")

    assert values(daily) == {"2025-03-31T00:00:00+09:00": 4, "2025-04-01T00:00:00+09:00": 6}
    assert values(monthly) == {"2025-03-01T00:00:00+09:00": 4, "2025-04-01T00:00:00+09:00": 6}
    assert monthly["points"][0]["periodEnd"] == "2025-04-01T00:00:00+09:00"
    assert values(weekly) == {"2025-03-31T00:00:00+09:00": 10}  # Monday 31 March, local
    in_april = series(client, headers, "visits", **{"from": "2025-04-01", "to": "2025-04-30"})
    assert values(in_april) == {"2025-04-01T00:00:00+09:00": 6}


def test_the_series_json_is_what_its_documented_model_writes(client, factory):
    # The series route renders its points without a model per period (its hot path): its
    # body must be byte for byte what pydantic writes for the SeriesPublic it documents.
    _, headers = person(factory)
    source = create_source(client, headers)
    store(
        client,
        headers,
        [
            point(source, "visits", 0.1, "2025-03-31", start="2025-03-30T15:00:00.000120+00:00"),
            point(source, "visits", 1e300, "2025-04-02", tz="Asia/Tokyo"),
            point(source, "visits", 7, "2025-04-05", tz="America/St_Johns"),  # UTC-02:30
            point(source, "signups", 1, "2025-04-05"),
        ],
    )
    response = client.get(
        "/api/data-points",
        headers=headers,
        params={"metric": "visits", "from": "2025-03-25", "to": "2025-04-10"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    rendered = SeriesPublic.model_validate_json(response.content)
    assert response.content == rendered.model_dump_json(by_alias=True).encode()
    assert {p.value for p in rendered.points} == {0.1, 1e300, 7}
    documented = client.get("/openapi.json").json()["paths"]["/api/data-points"]["get"]
    schema = documented["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SeriesPublic"}


def test_a_period_is_complete_only_when_all_its_points_are(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    today = datetime.now(UTC).date()
    store(
        client,
        headers,
        [
            point(source, "visits", 1, "2025-03-03"),
            point(source, "visits", 1, "2025-03-04", complete=False),
            point(source, "visits", 1, "2025-03-10"),
            point(source, "visits", 1, today),  # complete, but the day is not over
        ],
    )

    daily = series(client, headers, "visits")
    weekly = series(client, headers, "visits", granularity="week")

    completeness = {p["periodStart"][:10]: p["complete"] for p in daily["points"]}
    assert completeness == {
        "2025-03-03": True,
        "2025-03-04": False,
        "2025-03-10": True,
        today.isoformat(): False,
    }
    assert [p["complete"] for p in weekly["points"][:2]] == [False, True]


def test_a_period_the_range_cuts_is_partial(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    # Monday 3 March .. Sunday 16 March 2025: two whole ISO weeks, a point a day
    store(client, headers, [point(source, "visits", 1, date(2025, 3, d)) for d in range(3, 17)])

    def weeks(**params):
        body = series(client, headers, "visits", granularity="week", **params)
        return [(p["periodStart"][:10], p["value"], p["complete"]) for p in body["points"]]

    # from Wednesday 5 March: the first week is read from its third day on
    assert weeks(**{"from": "2025-03-05", "to": "2025-03-16"}) == [
        ("2025-03-03", 5, False),
        ("2025-03-10", 7, True),
    ]
    # to Thursday 13 March: the last week is read to its fourth day
    assert weeks(**{"from": "2025-03-03", "to": "2025-03-13"}) == [
        ("2025-03-03", 7, True),
        ("2025-03-10", 4, False),
    ]
    # instants: from Monday 12:00 UTC cuts the first week, to Monday 00:00 UTC cuts nothing
    assert weeks(**{"from": "2025-03-03T12:00:00Z", "to": "2025-03-17T00:00:00Z"}) == [
        ("2025-03-03", 6, False),
        ("2025-03-10", 7, True),
    ]
    assert weeks(**{"from": "2025-03-03", "to": "2025-03-16"}) == [
        ("2025-03-03", 7, True),
        ("2025-03-10", 7, True),
    ]
    days = series(client, headers, "visits", **{"from": "2025-03-05", "to": "2025-03-13"})
    assert all(p["complete"] for p in days["points"])  # a day is never cut by a date range


# ---------------------------------------------------------------- trends


def test_trends_compare_with_the_period_just_before(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    create_metric(client, headers, key="conversion", label="C", formula="signups / visits")
    # previous: 1-7 March (visits 70, signups 7); current: 8-14 March (visits 140, signups 7)
    points = [point(source, "visits", 10, date(2025, 3, d)) for d in range(1, 8)]
    points += [point(source, "visits", 20, date(2025, 3, d)) for d in range(8, 15)]
    points += [point(source, "signups", 1, date(2025, 3, d)) for d in range(1, 15)]
    store(client, headers, points)
    window = {"from": "2025-03-08", "to": "2025-03-14"}

    visits = client.get(
        "/api/data-points/trends", headers=headers, params={"metric": "visits", **window}
    )
    conversion = client.get(
        "/api/data-points/trends", headers=headers, params={"metric": "conversion", **window}
    )

    assert visits.status_code == 200, visits.text
    body = visits.json()
    assert body["current"] == {
        "periodStart": "2025-03-08T00:00:00Z",
        "periodEnd": "2025-03-15T00:00:00Z",
        "value": 140,
        "complete": True,
    }
    assert body["previous"]["periodStart"] == "2025-03-01T00:00:00Z"
    assert body["previous"]["periodEnd"] == "2025-03-08T00:00:00Z"
    assert body["previous"]["value"] == 70
    assert body["change"] == {"absolute": 70, "relative": 1.0}
    ratio = conversion.json()
    assert ratio["current"]["value"] == pytest.approx(7 / 140)
    assert ratio["previous"]["value"] == pytest.approx(7 / 70)
    assert ratio["change"]["relative"] == pytest.approx(-0.5)


def test_trends_without_data_have_no_values(client, factory):
    _, headers = person(factory)

    response = client.get("/api/data-points/trends", headers=headers, params={"metric": "visits"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["current"]["value"] is None
    assert body["previous"]["value"] is None
    assert body["change"] == {"absolute": None, "relative": None}
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert body["current"]["periodEnd"].startswith((yesterday + timedelta(days=1)).isoformat())


# ---------------------------------------------------------------- ownership and bad queries


def test_a_strangers_points_are_a_404_and_never_counted(client, factory):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    mine = create_source(client, headers)
    theirs = create_source(client, stranger_headers)
    store(client, headers, [point(mine, "visits", 1, "2025-03-03")])
    store(client, stranger_headers, [point(theirs, "visits", 1000, "2025-03-03")])
    their_point = client.get("/api/data-points/raw", headers=stranger_headers).json()["items"][0]

    by_source = client.get(
        "/api/data-points", headers=headers, params={"metric": "visits", "sourceId": theirs["id"]}
    )
    history = client.get(f"/api/data-points/{their_point['id']}/history", headers=headers)
    raw = client.get("/api/data-points/raw", headers=headers, params={"sourceId": theirs["id"]})
    missing = client.get(f"/api/data-points/{uuid.uuid4()}/history", headers=headers)

    assert_problem(by_source, 404)
    assert_problem(history, 404)
    assert_problem(raw, 404)
    assert assert_problem(missing, 404)["detail"].split()[:2] == ["data", "point"]
    assert values(series(client, headers, "visits")) == {"2025-03-03T00:00:00Z": 1}
    assert client.get("/api/data-points/raw", headers=headers).json()["count"] == 1


def test_an_admin_sees_every_source(client, factory):
    _, headers = person(factory)
    _, admin_headers = person(factory, role="admin")
    source = create_source(client, headers)
    store(client, headers, [point(source, "visits", 3, "2025-03-03")])

    body = series(client, admin_headers, "visits", sourceId=source["id"])

    assert values(body) == {"2025-03-03T00:00:00Z": 3}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"metric": "no_such_metric"}, "metric", id="unknown_metric"),
        pytest.param({"metric": "visits", "granularity": "year"}, "granularity", id="granularity"),
        pytest.param({"metric": "visits", "from": "2025-03-05", "to": "2025-03-01"}, "to", id="backwards"),
        pytest.param({"metric": "visits", "dimensions": "page"}, "dimensions", id="dimensions"),
        pytest.param({"metric": "visits", "from": "2025-13-01"}, "from", id="bad_date"),
    ],
)  # fmt: skip
def test_series_refuses_bad_queries_naming_the_parameter(client, factory, params, field):
    _, headers = person(factory)

    response = client.get("/api/data-points", headers=headers, params=params)

    assert set(field_errors(response)) == {field}


def test_raw_points_page_and_filter(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    store(
        client,
        headers,
        [point(source, "visits", d, date(2025, 3, d)) for d in range(1, 6)]
        + [point(source, "signups", 1, "2025-03-01")],
    )

    page = client.get(
        "/api/data-points/raw",
        headers=headers,
        params={"metric": "visits", "from": "2025-03-02", "to": "2025-03-05", "limit": 2, "offset": 1},
    )  # fmt: skip

    assert page.status_code == 200, page.text
    body = page.json()
    assert body["count"] == 4
    assert [p["value"] for p in body["items"]] == [3, 4]
    assert body["items"][0]["sourceId"] == source["id"]
    assert body["items"][0]["dimensions"] == {}


def test_instants_without_an_offset_are_utc(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    store(client, headers, [point(source, "visits", d, date(2025, 3, d)) for d in range(1, 4)])

    body = series(
        client, headers, "visits", **{"from": "2025-03-02T00:00:00", "to": "2025-03-03T00:00:00"}
    )

    assert values(body) == {"2025-03-02T00:00:00Z": 2}


# ---------------------------------------------------------------- the fetch's reach


def _fetch(client, headers, source_id: str, **body: Any):
    return client.post(f"/api/data-sources/{source_id}/fetch", headers=headers, json=body)


def test_fetch_beyond_the_providers_history_is_refused_with_the_reason(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    now = datetime.now(UTC)

    too_old = _fetch(client, headers, source["id"], startDate=(now - timedelta(days=5)).isoformat())
    ended_before = _fetch(
        client,
        headers,
        source["id"],
        endDate=(now - timedelta(days=4)).date().isoformat(),
    )

    errors = field_errors(too_old)
    assert set(errors) == {"startDate"}
    assert errors["startDate"].startswith("Microsoft Clarity serves only the last 3 days")
    ended = field_errors(ended_before)
    assert set(ended) == {"endDate"}
    assert "serves only the last 3 days" in ended["endDate"]
    assert count(factory, DataPoint) == 0


def test_fetch_wider_than_one_read_is_refused_with_the_reason(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers, type="instagram", config=INSTAGRAM)
    today = datetime.now(UTC).date()

    wide = _fetch(
        client,
        headers,
        source["id"],
        startDate=(today - timedelta(days=45)).isoformat(),
        endDate=(today - timedelta(days=1)).isoformat(),
    )

    errors = field_errors(wide)
    assert set(errors) == {"endDate"}
    assert errors["endDate"].startswith("Instagram reads at most 30 days at once")
    assert "45 days" in errors["endDate"]


def test_fetch_window_keeps_a_range_within_reach():
    """The checks themselves, at a fixed moment (no provider call needed)."""
    from inflow.api.routes.runs import FetchRequest, fetch_window
    from inflow.connectors import get_connector
    from inflow.errors import ValidationFailedError

    clarity = get_connector("microsoft_clarity")
    instagram = get_connector("instagram")
    now = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)

    default = fetch_window(FetchRequest(), now, clarity)
    two_days = fetch_window(FetchRequest.model_validate({"startDate": "2026-11-21"}), now, clarity)
    month = fetch_window(
        FetchRequest.model_validate({"startDate": "2026-10-24", "endDate": "2026-11-22"}),
        now,
        instagram,
    )

    assert default.start == now - timedelta(days=3)  # a week, cut to what Clarity serves
    assert default.end == now
    assert two_days.start == datetime(2026, 11, 21, tzinfo=UTC)
    assert month.end - month.start == timedelta(days=30)
    with pytest.raises(ValidationFailedError) as refused:
        fetch_window(FetchRequest.model_validate({"startDate": "2026-11-20"}), now, clarity)
    assert [e.field for e in refused.value.errors] == ["startDate"]

"""Calendar and integer edges: out-of-range input is a 422 naming the field (never a 500),
numbers are not dates, and nothing already stored (a point or a test at the calendar's ends,
written before the bounds existed) makes a read fail. The bounds: ``inflow/bounds.py``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from inflow import bounds
from inflow.connectors.custom import EVENT_ID, SIGNATURE, TIMESTAMP, signature
from inflow.connectors.records import DataPoint as Record
from inflow.storage import repo
from inflow.storage.db import session_scope
from inflow.storage.models import Experiment
from tests.api.objects import assert_problem, create_source, field_errors, person

FAR = "9999-12-31"
FIRST = "0001-01-01"
BIG = str(2**63)  # one past the largest 64-bit signed integer


def post_point(client: Any, headers: dict[str, str], source_id: str, **fields: Any) -> Any:
    body = {
        "sourceId": source_id,
        "metric": "visits",
        "value": 1,
        "periodStart": "2026-01-01T00:00:00Z",
        "periodEnd": "2026-01-02T00:00:00Z",
        **fields,
    }
    return client.post("/api/data-points", headers=headers, json={"dataPoints": [body]})


# ---------------------------------------------------------------- input is bounded


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"periodStart": FAR}, "dataPoints.0.periodStart"),
        ({"periodStart": f"{FAR}T00:00:00Z", "periodEnd": f"{FAR}T23:00:00Z"}, "dataPoints.0.periodStart"),
        ({"periodStart": f"{FIRST}T00:00:00Z"}, "dataPoints.0.periodStart"),
        ({"periodEnd": f"{FAR}T23:59:59Z"}, "dataPoints.0.periodEnd"),
        ({"periodStart": -1.17e-38}, "dataPoints.0.periodStart"),
        ({"periodStart": 1767225600}, "dataPoints.0.periodStart"),
        ({"periodStart": "1767225600"}, "dataPoints.0.periodStart"),
    ],
    ids=["far_date", "far_moment", "first_moment", "far_end", "tiny_float", "epoch", "epoch_text"],
)  # fmt: skip
def test_a_point_out_of_the_calendar_is_a_422_naming_the_field(client, factory, fields, field):
    _, headers = person(factory)
    source = create_source(client, headers)

    response = post_point(client, headers, source["id"], **fields)

    assert field in field_errors(response), response.text


@pytest.mark.parametrize("route", ["", "/trends", "/raw"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": FIRST, "to": FAR}, "from"),
        ({"from": "2026-01-01", "to": FAR}, "to"),
        ({"from": FIRST, "to": "2026-01-01"}, "from"),
        ({"from": f"{FAR}T23:59:59Z"}, "from"),
        ({"to": "1700000000"}, "to"),
        ({"to": "-1.17e-38"}, "to"),
    ],
    ids=["both", "far_end", "first_start", "far_moment", "epoch", "tiny_float"],
)
def test_a_range_out_of_the_calendar_is_a_422_naming_the_field(
    client, factory, route, params, field
):
    _, headers = person(factory)

    for granularity in ("day", "week", "month") if route == "" else ("day",):
        response = client.get(
            f"/api/data-points{route}",
            headers=headers,
            params={"metric": "visits", "granularity": granularity, **params},
        )
        assert field in field_errors(response), response.text


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/data-points/raw", {"offset": BIG}, "offset"),
        ("/api/data-points/raw", {"offset": str(bounds.MAX_OFFSET + 1)}, "offset"),
        ("/api/data-points/raw", {"limit": BIG}, "limit"),
        ("/api/audit", {"before": BIG}, "before"),
        ("/api/audit", {"before": "-1"}, "before"),
        ("/api/audit", {"from": FIRST + "T00:00:00"}, "from"),
        ("/api/audit", {"to": "1700000000"}, "to"),
    ],
)
def test_integers_and_cursors_are_bounded(client, factory, path, params, field):
    _, headers = person(factory, role="admin")

    response = client.get(path, headers=headers, params=params)

    assert field in field_errors(response), response.text


def test_the_largest_offset_and_cursor_still_answer(client, factory):
    _, headers = person(factory, role="admin")
    raw = client.get("/api/data-points/raw", headers=headers, params={"offset": bounds.MAX_OFFSET})
    audit = client.get("/api/audit", headers=headers, params={"before": bounds.MAX_INT})
    assert raw.status_code == 200, raw.text
    assert raw.json()["items"] == []
    assert audit.status_code == 200, audit.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"endDate": FAR}, "endDate"),
        ({"startDate": FIRST}, "startDate"),
        ({"startDate": -1.17e-38}, "startDate"),
        ({"endDate": f"{FAR}T23:59:59+00:00"}, "endDate"),
    ],
)
def test_a_fetch_range_out_of_the_calendar_is_a_422(client, factory, body, field):
    _, headers = person(factory)
    source = create_source(client, headers)

    response = client.post(f"/api/data-sources/{source['id']}/fetch", headers=headers, json=body)

    assert field in field_errors(response), response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"startDate": FIRST}, "startDate"),
        ({"startDate": "2026-01-01", "endDate": FAR}, "endDate"),
        ({"startDate": -1.17e-38}, "startDate"),
        ({"startDate": 20260101}, "startDate"),
        ({"startDate": "2026-01-01T00:00:00Z"}, "startDate"),
    ],
)
def test_a_test_window_out_of_the_calendar_is_a_422(client, factory, body, field):
    _, headers = person(factory)
    created = client.post("/api/tests", headers=headers, json={"name": "t", **body})
    assert field in field_errors(created), created.text

    ok = client.post("/api/tests", headers=headers, json={"name": "t", "startDate": "2026-01-01"})
    assert ok.status_code == 201, ok.text
    changed = client.patch(f"/api/tests/{ok.json()['id']}", headers=headers, json=body)
    assert field in field_errors(changed), changed.text


SECRET = "s" * 24


def push_source(client: Any, headers: dict[str, str]) -> str:
    config = {
        "platform": "custom",
        "secret": SECRET,
        "mapping": {"metric": "calls", "timestamp": "$.recordedAt", "value": "$.n"},
    }
    made = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "push", "type": "calling", "config": config},
    )
    assert made.status_code == 201, made.text
    source_id: str = made.json()["id"]
    return source_id


def push(client: Any, source_id: str, items: Any, stamp: str, event_id: str) -> Any:
    body = json.dumps(items).encode()
    signed = {
        SIGNATURE: signature(SECRET, stamp, event_id, body),
        TIMESTAMP: stamp,
        EVENT_ID: event_id,
        "content-type": "application/json",
    }
    return client.post(f"/api/webhooks/{source_id}", content=body, headers=signed)


def test_a_signed_push_out_of_the_calendar_is_a_422_and_stores_nothing(client, factory):
    _, headers = person(factory)
    source_id = push_source(client, headers)
    now = datetime.now(UTC)
    items = [
        {"recordedAt": now.isoformat(), "n": 1},
        {"recordedAt": FAR, "n": 2},
        {"recordedAt": f"{FIRST}T00:00:00Z", "n": 3},
        {"recordedAt": 253402300799000, "n": 4},  # epoch ms of 9999-12-31T23:59:59Z
    ]

    response = push(client, source_id, items, str(int(now.timestamp())), "evt_far")

    errors = field_errors(response)
    assert sorted(errors) == ["body.1", "body.2", "body.3"], errors
    assert "between" in errors["body.1"]
    points = client.get("/api/data-points/raw", headers=headers, params={"sourceId": source_id})
    assert points.json()["count"] == 0


def test_a_signed_push_stamped_past_the_calendar_is_refused(client, factory):
    _, headers = person(factory)
    source_id = push_source(client, headers)
    items = [{"recordedAt": datetime.now(UTC).isoformat(), "n": 1}]

    response = push(client, source_id, items, "999999999999", "evt_stamp")  # the year 33658

    body = assert_problem(response, 401)
    assert "unix seconds" in body["detail"]


# ---------------------------------------------------------------- nothing stored breaks a read


def _store_at_the_edges(factory: Any, source_id: str) -> None:
    """Points written before the bounds existed, at both ends of Python's calendar."""
    far = datetime.combine(date.max, time.min, UTC)
    first = datetime.combine(date.min, time.min, UTC)
    records = [
        Record("visits", 5, far, far + timedelta(hours=1)),
        Record("visits", 6, far + timedelta(hours=20), far + timedelta(hours=21),
               timezone="Pacific/Kiritimati"),  # local: the year 10000
        Record("visits", 7, first, first + timedelta(days=1), timezone="America/Los_Angeles"),
        Record("visits", 8, first + timedelta(days=3), first + timedelta(days=4)),
        Record("visits", 9, datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)),
    ]  # fmt: skip
    with session_scope(factory) as session:
        repo.upsert_data_points(session, source_id=uuid.UUID(source_id), points=records)


def test_points_stored_at_the_calendars_ends_do_not_break_any_read(client, factory):
    _, headers = person(factory)
    _, admin = person(factory, role="admin")
    source = create_source(client, headers)
    _store_at_the_edges(factory, source["id"])

    for who in (headers, admin):
        for granularity in ("day", "week", "month"):
            response = client.get(
                "/api/data-points",
                headers=who,
                params={"metric": "visits", "granularity": granularity},
            )
            assert response.status_code == 200, response.text
            points = response.json()["points"]
            assert sum(p["value"] for p in points) == 5 + 6 + 7 + 8 + 9
            assert all(p["periodStart"] <= p["periodEnd"] for p in points)
        raw = client.get("/api/data-points/raw", headers=who, params={"metric": "visits"})
        assert raw.status_code == 200, raw.text
        assert raw.json()["count"] == 5
        trend = client.get(
            "/api/data-points/trends",
            headers=who,
            params={"metric": "visits", "from": "2026-01-05", "to": "2026-01-05"},
        )
        assert trend.status_code == 200, trend.text
        assert trend.json()["current"]["value"] == 9
        whole = client.get(
            "/api/data-points/trends",
            headers=who,
            params={"metric": "visits", "from": bounds.MIN_DATE.isoformat(),
                    "to": bounds.MAX_DATE.isoformat()},
        )  # fmt: skip
        assert whole.status_code == 200, whole.text
        assert whole.json()["current"]["value"] == 9  # the edge points are outside the bounds


def test_a_test_stored_at_the_calendars_ends_still_has_results(client, factory):
    user, headers = person(factory)
    source = create_source(client, headers)
    _store_at_the_edges(factory, source["id"])
    ids = []
    with session_scope(factory) as session:
        for start, end in ((date.min, None), (date.min, date.max), (date(2026, 1, 1), date.max)):
            test = Experiment(
                owner_id=user.id, name="edge", metric="visits", start_date=start, end_date=end
            )
            session.add(test)
            session.flush()
            ids.append(test.id)

    for test_id in ids:
        response = client.get(f"/api/tests/{test_id}/results", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["started"] is True
        listed = client.get(f"/api/tests/{test_id}", headers=headers)
        assert listed.status_code == 200, listed.text


def test_the_bounds_fit_every_backend(client, factory):
    """A point on the first and on the last allowed day is stored and read back as sent."""
    _, headers = person(factory)
    source = create_source(client, headers)
    first = datetime.combine(bounds.MIN_DATE, time.min, UTC)
    last = datetime.combine(bounds.MAX_DATE, time.min, UTC)
    for start in (first, last):
        response = post_point(
            client,
            headers,
            source["id"],
            periodStart=start.isoformat(),
            periodEnd=(start + timedelta(days=1)).isoformat(),
        )
        assert response.status_code == 200, response.text
    for granularity in ("day", "week", "month"):
        series = client.get(
            "/api/data-points",
            headers=headers,
            params={"metric": "visits", "granularity": granularity,
                    "from": bounds.MIN_DATE.isoformat(), "to": bounds.MAX_DATE.isoformat()},
        )  # fmt: skip
        assert series.status_code == 200, series.text
        assert [p["value"] for p in series.json()["points"]] == [1, 1]
    trend = client.get(
        "/api/data-points/trends",
        headers=headers,
        params={"metric": "visits", "from": bounds.MIN_DATE.isoformat(),
                "to": bounds.MAX_DATE.isoformat()},
    )  # fmt: skip
    assert trend.status_code == 200, trend.text
    assert trend.json()["current"]["value"] == 2
    raw = client.get(
        "/api/data-points/raw", headers=headers, params={"to": bounds.MAX_DATE.isoformat()}
    )
    assert [p["periodStart"][:10] for p in raw.json()["items"]] == [
        bounds.MIN_DATE.isoformat(),
        bounds.MAX_DATE.isoformat(),
    ]
    assert_problem(client.get("/api/data-points/raw", headers=headers, params={"limit": "0"}), 422)


def test_values_at_the_edge_of_a_double_never_break_a_read(client, factory):
    """Each value is finite (a 422 otherwise), but sums of them may overflow: such a period
    reads as null, and a test's results still answer."""
    _, headers = person(factory)
    sources = [create_source(client, headers)["id"] for _ in range(2)]
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for n, value in ((3, 1.7e308), (2, -1.7e308), (1, 1.7e308), (0, 1.7e308)):
        start = day - timedelta(days=n)
        for source_id in sources:
            response = post_point(
                client,
                headers,
                source_id,
                value=value,
                periodStart=start.isoformat(),
                periodEnd=(start + timedelta(days=1)).isoformat(),
            )
            assert response.status_code == 200, response.text
    test = client.post(
        "/api/tests",
        headers=headers,
        json={
            "name": "t",
            "metric": "visits",
            "startDate": (day - timedelta(days=1)).date().isoformat(),
        },
    ).json()

    series = client.get("/api/data-points", headers=headers, params={"metric": "visits"})
    results = client.get(f"/api/tests/{test['id']}/results", headers=headers)

    assert series.status_code == 200, series.text
    assert [p["value"] for p in series.json()["points"]] == [None, None, None, None]
    assert results.status_code == 200, results.text
    assert results.json()["metrics"][0]["baselineDailyStdDev"] is None


# ---------------------------------------------------------------- text PostgreSQL cannot hold


def test_a_nul_character_is_a_422_naming_where_it_is(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    space = client.post("/api/spaces", headers=headers, json={"name": "s"}).json()

    renamed = client.patch(f"/api/spaces/{space['id']}", headers=headers, json={"name": "a\x00b"})
    nested = client.patch(
        f"/api/data-sources/{source['id']}",
        headers=headers,
        json={"config": {"workspace": "team\x00a"}},
    )
    point = post_point(client, headers, source["id"], dimensions={"page": "/\x00"})
    query = client.get("/api/data-points", headers=headers, params={"metric": "vis\x00its"})
    path = client.delete("/api/metrics/a%00b", headers=headers)

    assert "name" in assert_problem(renamed, 422)["errors"][0]["message"]
    assert "config.workspace" in assert_problem(nested, 422)["errors"][0]["message"]
    assert "page" in assert_problem(point, 422)["errors"][0]["message"]
    assert field_errors(query) == {"metric": "holds a NUL character (\\u0000)"}
    assert field_errors(path) == {"key": "holds a NUL character (\\u0000)"}
    assert client.get(f"/api/spaces/{space['id']}", headers=headers).json()["name"] == "s"


def test_a_signed_push_with_a_nul_character_is_a_422(client, factory):
    _, headers = person(factory)
    source_id = push_source(client, headers)
    now = datetime.now(UTC)
    config = {"mapping": {"metric": "$.m", "timestamp": "$.recordedAt", "value": "$.n"}}
    changed = client.patch(
        f"/api/data-sources/{source_id}", headers=headers, json={"config": config}
    )
    assert changed.status_code == 200, changed.text
    items = [{"recordedAt": now.isoformat(), "n": 1, "m": "calls\x00"}]

    response = push(client, source_id, items, str(int(now.timestamp())), "evt_nul")

    assert "NUL" in field_errors(response)["body.0"]

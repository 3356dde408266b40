"""The fetch preview: a date range read live, nothing stored unless autoCreate (idempotently),
bad ranges and unknown tests refused with the field named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from inflow.storage.models import DataPoint, Experiment, ExperimentDataPoint
from tests.sync.helpers import create_source, daily_totals, days_back, person

PAGES = 5


def _midnight(days_ago: int) -> str:
    day = days_back(days_ago)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _count(factory, model) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _fetch(client, headers, source_id: str, **body):
    return client.post(f"/api/data-sources/{source_id}/fetch", headers=headers, json=body)


def _totals(points: list[dict]) -> dict[str, dict[str, float]]:
    return daily_totals([(p["metric"], p["periodStart"], p["value"]) for p in points])


def _expected(sb, first_days_ago: int, last_days_ago: int) -> dict[str, dict[str, float]]:
    days = sb.expected(days_back(first_days_ago), days_back(last_days_ago))["days"]
    return {
        d: {"visits": float(v["visits"]), "signups": float(v["signups"])} for d, v in days.items()
    }


def test_fetch_returns_the_range_and_stores_nothing(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(volume={"pages": PAGES})

    # [10 days ago 00:00, 3 days ago 00:00): seven whole days
    response = _fetch(client, headers, source["id"], startDate=_midnight(10), endDate=_midnight(3))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["created"] == 0
    points = body["dataPoints"]
    assert len(points) == 7 * PAGES * 2
    assert _totals(points) == _expected(sb, 10, 4)
    first = min(points, key=lambda p: (p["periodStart"], p["metric"], p["dimensions"]["page"]))
    assert first["periodStart"].startswith(days_back(10).isoformat())
    assert first["dimensions"] == {"page": "/p/0001"}
    assert all(p["complete"] for p in points)
    assert _count(factory, DataPoint) == 0  # a preview writes nothing


def test_fetch_of_whole_days_includes_the_end_day(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(volume={"pages": PAGES})

    response = _fetch(
        client,
        headers,
        source["id"],
        startDate=days_back(6).isoformat(),
        endDate=days_back(4).isoformat(),
    )

    assert response.status_code == 200, response.text
    assert _totals(response.json()["dataPoints"]) == _expected(sb, 6, 4)  # through the end date


def test_fetch_with_auto_create_stores_once(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(volume={"pages": PAGES})
    window = {"startDate": _midnight(5), "endDate": _midnight(2)}

    first = _fetch(client, headers, source["id"], autoCreate=True, **window)

    assert first.status_code == 200, first.text
    assert first.json()["created"] == 3 * PAGES * 2
    assert _count(factory, DataPoint) == 3 * PAGES * 2
    with factory() as session:
        stored = session.execute(
            select(DataPoint.metric, DataPoint.period_start, DataPoint.value)
        ).all()
    assert daily_totals([(m, s.isoformat(), v) for m, s, v in stored]) == _expected(sb, 5, 3)

    second = _fetch(client, headers, source["id"], autoCreate=True, **window)

    assert second.status_code == 200, second.text
    assert second.json()["created"] == 0
    assert len(second.json()["dataPoints"]) == 3 * PAGES * 2
    assert _count(factory, DataPoint) == 3 * PAGES * 2


def test_fetch_refuses_bad_ranges_naming_the_field(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    tomorrow = datetime.now(UTC) + timedelta(days=3)

    backwards = _fetch(client, headers, source["id"], startDate=_midnight(2), endDate=_midnight(5))
    future = _fetch(
        client,
        headers,
        source["id"],
        startDate=tomorrow.isoformat(),
        endDate=(tomorrow + timedelta(days=1)).isoformat(),
    )
    future_end = _fetch(
        client, headers, source["id"], startDate=_midnight(2), endDate=tomorrow.isoformat()
    )

    assert backwards.status_code == 422, backwards.text
    assert [e["field"] for e in backwards.json()["errors"]] == ["endDate"]
    assert future.status_code == 422, future.text
    assert {e["field"] for e in future.json()["errors"]} == {"startDate", "endDate"}
    assert future_end.status_code == 422, future_end.text
    assert [e["field"] for e in future_end.json()["errors"]] == ["endDate"]
    not_a_date = _fetch(client, headers, source["id"], startDate=_midnight(2), endDate="2026-13-01")
    assert not_a_date.status_code == 422, not_a_date.text
    assert [e["field"] for e in not_a_date.json()["errors"]] == ["endDate"]
    assert _count(factory, DataPoint) == 0


def test_fetch_links_to_tests_and_refuses_unknown_ones(client, factory, sb):
    user, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(volume={"pages": PAGES})
    with factory() as session:
        experiment = Experiment(owner_id=user.id, name="New pricing page", start_date=days_back(20))
        session.add(experiment)
        session.commit()
        test_id = str(experiment.id)
    window = {"startDate": _midnight(4), "endDate": _midnight(2)}
    unknown = str(uuid.uuid4())

    refused = _fetch(
        client, headers, source["id"], autoCreate=True, linkToTests=[test_id, unknown], **window
    )

    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert [e["field"] for e in errors] == ["linkToTests.1"]
    assert unknown in errors[0]["message"]
    assert _count(factory, DataPoint) == 0
    assert _count(factory, ExperimentDataPoint) == 0

    linked = _fetch(client, headers, source["id"], autoCreate=True, linkToTests=[test_id], **window)

    assert linked.status_code == 200, linked.text
    assert linked.json()["created"] == 2 * PAGES * 2
    with factory() as session:
        links = session.execute(
            select(ExperimentDataPoint.test_id, ExperimentDataPoint.data_point_id)
        ).all()
        point_ids = set(session.execute(select(DataPoint.id)).scalars())
    assert {str(t) for t, _ in links} == {test_id}
    assert {p for _, p in links} == point_ids
    assert len(links) == 2 * PAGES * 2

    again = _fetch(client, headers, source["id"], autoCreate=True, linkToTests=[test_id], **window)
    assert again.status_code == 200, again.text
    assert _count(factory, ExperimentDataPoint) == 2 * PAGES * 2  # linked once


def test_a_strangers_test_cannot_be_linked(client, factory):
    _, headers = person(factory)
    stranger, _ = person(factory)
    source = create_source(client, headers)
    with factory() as session:
        theirs = Experiment(owner_id=stranger.id, name="Theirs", start_date=days_back(20))
        session.add(theirs)
        session.commit()

    response = _fetch(
        client,
        headers,
        source["id"],
        startDate=_midnight(4),
        endDate=_midnight(2),
        autoCreate=True,
        linkToTests=[str(theirs.id)],
    )

    assert response.status_code == 422, response.text
    assert _count(factory, DataPoint) == 0

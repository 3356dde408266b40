"""The series cache (``SeriesCache``): an answer is reused only while the points it read are
unchanged, whoever changed them (the API, a sync, or a plain UPDATE in the database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from inflow.storage.db import session_scope
from inflow.storage.models import DataPoint
from tests.api.objects import create_source, person
from tests.api.test_data_points import point, series, store, values


def test_a_cached_series_follows_every_change_of_its_points(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    day = (datetime.now(UTC) - timedelta(days=3)).date()
    key = f"{day.isoformat()}T00:00:00Z"
    params = {"sourceId": source["id"], "from": day.isoformat(), "to": day.isoformat()}
    store(client, headers, [point(source, "visits", 10, day.isoformat(), dimensions={"p": "a"})])
    assert values(series(client, headers, "visits", **params)) == {key: 10}
    assert values(series(client, headers, "visits", **params)) == {key: 10}  # reused

    # through the API: a new dimension value, then a restated one
    store(client, headers, [point(source, "visits", 5, day.isoformat(), dimensions={"p": "b"})])
    assert values(series(client, headers, "visits", **params)) == {key: 15}
    store(client, headers, [point(source, "visits", 7, day.isoformat(), dimensions={"p": "b"})])
    assert values(series(client, headers, "visits", **params)) == {key: 17}

    # behind the API's back, keeping updated_at as it was: the values' sum still tells
    with session_scope(factory) as session:
        session.execute(
            update(DataPoint)
            .where(DataPoint.source_id == uuid.UUID(source["id"]), DataPoint.value == 7)
            .values(value=1)
        )
    assert values(series(client, headers, "visits", **params)) == {key: 11}

    # a point removed
    with session_scope(factory) as session:
        session.query(DataPoint).filter(DataPoint.value == 1).delete()
    assert values(series(client, headers, "visits", **params)) == {key: 10}


def test_a_cached_series_is_per_caller(client, factory):
    _, mine = person(factory)
    _, theirs = person(factory)
    source = create_source(client, mine)
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    store(client, mine, [point(source, "visits", 4, day)])
    assert values(series(client, mine, "visits", **{"from": day, "to": day})) != {}
    # the same query from another user reads their (no) sources, not the cached answer
    assert values(series(client, theirs, "visits", **{"from": day, "to": day})) == {}

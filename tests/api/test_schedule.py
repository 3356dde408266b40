"""Scheduled syncs: the schedule is validated when saved, and due sources get one run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from inflow.storage.models import DataSource, SyncRun, utcnow
from inflow.storage.quota import take_call
from inflow.sync.scheduler import due_runs, next_time, parse_schedule
from tests.factories import EXAMPLE_CONFIG, user_headers


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        pytest.param("every 15m", timedelta(minutes=15), id="minutes"),
        pytest.param("every 6h", timedelta(hours=6), id="hours"),
        pytest.param("Every 2d", timedelta(days=2), id="days_any_case"),
        pytest.param("@hourly", timedelta(hours=1), id="hourly"),
        pytest.param("@daily", timedelta(days=1), id="daily"),
    ],
)
def test_parse_schedule_reads_intervals(text, interval):
    assert parse_schedule(text) == interval


@pytest.mark.parametrize(
    "text", ["every 1m", "* * * * *", "*/2 * * * *", "61 * * * *", "sometimes", "every h"]
)
def test_next_time_refuses_what_it_cannot_run(text):
    with pytest.raises(ValueError, match=r"every|shortest|cron"):
        next_time(text, utcnow())


def test_next_time_reads_cron_in_utc():
    after = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    assert next_time("0 6 * * *", after) == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert next_time("*/15 * * * *", after) == datetime(2026, 3, 1, 7, 45, tzinfo=UTC)
    assert next_time("every 2h", after) == after + timedelta(hours=2)


def test_source_schedule_is_validated_on_create_and_patch(client, factory):
    _, headers = user_headers(client, factory)
    body = {"name": "s", "type": "example", "config": EXAMPLE_CONFIG, "schedule": "whenever"}
    bad = client.post("/api/data-sources", headers=headers, json=body)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "schedule"
    good = client.post("/api/data-sources", headers=headers, json={**body, "schedule": "every 1h"})
    assert good.status_code == 201
    assert good.json()["schedule"] == "every 1h"
    patched = client.patch(
        f"/api/data-sources/{good.json()['id']}", headers=headers, json={"schedule": "every 1s"}
    )
    assert patched.status_code == 422


def test_due_runs_enqueue_once_per_interval(client, factory):
    _, headers = user_headers(client, factory)
    body = {"name": "s", "type": "example", "config": EXAMPLE_CONFIG, "schedule": "every 1h"}
    source_id = client.post("/api/data-sources", headers=headers, json=body).json()["id"]
    unscheduled = {"name": "u", "type": "example", "config": EXAMPLE_CONFIG}
    client.post("/api/data-sources", headers=headers, json=unscheduled)

    with factory() as session:
        first = due_runs(session)
        session.commit()
    assert len(first) == 1
    with factory() as session:
        assert due_runs(session) == []  # not due again within the hour
        source = session.get(DataSource, uuid.UUID(source_id))
        assert source.next_run_at > utcnow() + timedelta(minutes=59)
        source.next_run_at = utcnow() - timedelta(seconds=1)
        session.commit()
    with factory() as session:
        assert due_runs(session) == []  # due, but the first run is still queued: skipped
        session.commit()
    with factory() as session:
        runs = session.query(SyncRun).all()
    assert [r.trigger for r in runs] == ["schedule"]


def test_a_source_whose_quota_is_spent_is_due_again_when_it_resets(client, factory):
    """Clarity allows ten export calls per project per UTC day: with all ten spent (by this
    source or another client of the project) the scheduler starts no run that would fail at
    once, and the source is due again at the next UTC midnight."""
    _, headers = user_headers(client, factory)
    config = {"projectId": "proj-1", "apiKey": "clarity-token-0001"}
    body = {"name": "c", "type": "microsoft_clarity", "config": config, "schedule": "@daily"}
    source_id = client.post("/api/data-sources", headers=headers, json=body).json()["id"]
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with factory() as session:
        for _ in range(10):
            assert take_call(
                session, key="microsoft_clarity:proj-1", window_start=midnight, limit=10
            )
        session.commit()

    with factory() as session:
        assert due_runs(session, now=now) == []
        session.commit()
    with factory() as session:
        source = session.get(DataSource, uuid.UUID(source_id))
        assert source.next_run_at == midnight + timedelta(days=1)
        assert session.query(SyncRun).count() == 0
    with factory() as session:  # the next day the quota is fresh: the run starts
        assert len(due_runs(session, now=midnight + timedelta(days=1, minutes=1))) == 1
        session.commit()

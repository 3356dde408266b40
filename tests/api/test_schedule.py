"""Scheduled syncs: the schedule is validated when saved, and due sources get one run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from inflow.storage.models import DataSource, SyncRun, utcnow
from inflow.storage.quota import take_call
from inflow.sync.scheduler import (
    MAX_JITTER,
    due_runs,
    is_late,
    jitter,
    next_slot,
    next_time,
    parse_schedule,
)
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
    reset = midnight + timedelta(days=1)
    with factory() as session:  # due again at its first slot from the reset (its jitter)
        source = session.get(DataSource, uuid.UUID(source_id))
        assert source.next_run_at == reset + jitter(source.id, timedelta(days=1))
        assert reset <= source.next_run_at < reset + MAX_JITTER
        assert session.query(SyncRun).count() == 0
        due = source.next_run_at
    with factory() as session:  # the next day the quota is fresh: the run starts
        assert len(due_runs(session, now=due + timedelta(seconds=20))) == 1
        session.commit()


# ---------------------------------------------------------------- jitter

IDS = [uuid.UUID(int=i * 7919 + 1) for i in range(1000)]


@pytest.mark.parametrize(
    ("slot", "cap"),
    [
        pytest.param(timedelta(minutes=5), timedelta(seconds=30), id="every_5m_a_tenth"),
        pytest.param(timedelta(hours=1), timedelta(minutes=5), id="hourly_capped"),
        pytest.param(timedelta(days=1), timedelta(minutes=5), id="daily_capped"),
    ],
)
def test_jitter_is_stable_and_within_a_tenth_of_the_slot_at_most_5_minutes(slot, cap):
    offsets = [jitter(i, slot) for i in IDS]
    assert offsets == [jitter(i, slot) for i in IDS]  # derived from the id: stable
    assert all(timedelta(0) <= o < cap for o in offsets)
    assert len(set(offsets)) > min(cap.total_seconds(), 1000) * 0.5  # spread, not clumped


def test_a_thousand_hourly_sources_do_not_all_fire_on_the_hour():
    after = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    slots = [next_slot("every 1h", i, after) for i in IDS]
    hour = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert all(hour <= s < hour + MAX_JITTER for s in slots)
    per_second: dict[datetime, int] = {}
    for s in slots:
        per_second[s] = per_second.get(s, 0) + 1
    assert max(per_second.values()) <= 10  # about 1000 / 300 s each second
    assert len(per_second) > 200


def test_next_slot_is_the_schedules_next_time_plus_the_sources_jitter():
    source = IDS[3]
    after = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    hourly = jitter(source, timedelta(hours=1))
    assert hourly > timedelta(0)
    assert next_slot("every 1h", source, after) == datetime(2026, 3, 1, 8, tzinfo=UTC) + hourly
    assert next_slot("@hourly", source, after) == datetime(2026, 3, 1, 8, tzinfo=UTC) + hourly
    # every 6h: slots at 00, 06, 12, 18 UTC; a slot is "after" only when strictly later
    six = jitter(source, timedelta(hours=6))
    assert next_slot("every 6h", source, after) == datetime(2026, 3, 1, 12, tzinfo=UTC) + six
    at_slot = datetime(2026, 3, 1, 12, tzinfo=UTC) + six
    assert next_slot("every 6h", source, at_slot) == at_slot + timedelta(hours=6)
    # within its jitter after the schedule's time, the slot of this period is still ahead
    early = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert next_slot("every 6h", source, early) == at_slot
    daily = jitter(source, timedelta(days=1))
    assert next_slot("0 6 * * *", source, after) == datetime(2026, 3, 2, 6, tzinfo=UTC) + daily
    assert (
        next_slot("0 6 * * *", source, datetime(2026, 3, 1, 6, tzinfo=UTC))
        == datetime(2026, 3, 1, 6, tzinfo=UTC) + daily
    )


def _scheduled(client, factory, count: int, schedule: str = "every 1h") -> list[str]:
    _, headers = user_headers(client, factory)
    body = {"name": "s", "type": "example", "config": EXAMPLE_CONFIG, "schedule": schedule}
    return [
        client.post("/api/data-sources", headers=headers, json=body).json()["id"]
        for _ in range(count)
    ], headers


def test_a_sources_next_run_is_its_jittered_slot_and_shown(client, factory):
    frozen = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    with time_machine.travel(frozen, tick=False):
        ids, headers = _scheduled(client, factory, 3)
        shown = client.get(f"/api/data-sources/{ids[0]}", headers=headers).json()
        assert shown["nextRunAt"] is None  # a new schedule: due at the next tick
        with factory() as session:
            assert len(due_runs(session)) == 3  # first runs at once
            session.commit()
        for source_id in ids:
            shown = client.get(f"/api/data-sources/{source_id}", headers=headers).json()
            # not sooner than a quarter hour after the first run: 08:00 + its jitter
            expected = next_slot("every 1h", uuid.UUID(source_id), frozen + timedelta(minutes=15))
            assert datetime.fromisoformat(shown["nextRunAt"]) == expected
            assert (
                datetime(2026, 3, 1, 8, tzinfo=UTC)
                <= expected
                < datetime(2026, 3, 1, 8, 5, tzinfo=UTC)
            )
            assert shown["scheduleWaiting"] is None
        listed = client.get("/api/data-sources", headers=headers).json()
        assert len({s["nextRunAt"] for s in listed}) == 3  # each its own second past 08:00


def test_a_missed_jittered_slot_runs_once_late_and_never_stacks(client, factory):
    frozen = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    with time_machine.travel(frozen, tick=False) as clock:
        [source_id], _ = _scheduled(client, factory, 1)
        sid = uuid.UUID(source_id)
        missed = next_slot("every 1h", sid, frozen - timedelta(hours=4))
        with factory() as session:
            session.get(DataSource, sid).next_run_at = missed
            session.commit()
        with factory() as session:
            [run_id] = due_runs(session)  # four slots passed: one run
            session.commit()
        with factory() as session:
            run = session.get(SyncRun, run_id)
            assert run.scheduled_for == missed
            assert is_late(run.scheduled_for, run.created_at)
            source = session.get(DataSource, sid)
            assert source.next_run_at == next_slot("every 1h", sid, frozen + timedelta(minutes=15))
            source.next_run_at = frozen - timedelta(seconds=1)  # due again while it is queued
            session.commit()
        with factory() as session:
            assert due_runs(session) == []  # the queued run is not stacked upon
            session.commit()
        with factory() as session:
            session.get(SyncRun, run_id).status = "succeeded"
            session.commit()
        on_time = next_slot("every 1h", sid, frozen + timedelta(minutes=15))
        clock.move_to(on_time + timedelta(seconds=5))
        with factory() as session:
            session.get(DataSource, sid).next_run_at = on_time
            session.commit()
        with factory() as session:
            [second] = due_runs(session)
            session.commit()
        with factory() as session:
            run = session.get(SyncRun, second)
            assert run.scheduled_for == on_time
            assert not is_late(run.scheduled_for, run.created_at)


@pytest.mark.parametrize(
    ("used", "deferred"),
    [
        pytest.param(0, False, id="fresh"),
        pytest.param(9, False, id="one_call_left_covers_a_sync"),
        pytest.param(10, True, id="spent"),
    ],
)
def test_a_scheduled_clarity_sync_waits_for_the_reset_when_its_quota_cannot_cover_it(
    client, factory, used, deferred
):
    """A Clarity sync costs one call of the project's ten a day: with fewer left than a sync
    needs, the slot is moved to the reset and the source shows what it waits for."""
    frozen = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    with time_machine.travel(frozen, tick=False):
        _, headers = user_headers(client, factory)
        config = {"projectId": "proj-2", "apiKey": "clarity-token-0001"}
        body = {"name": "c", "type": "microsoft_clarity", "config": config, "schedule": "@daily"}
        source_id = client.post("/api/data-sources", headers=headers, json=body).json()["id"]
        midnight = datetime(2026, 3, 1, tzinfo=UTC)
        with factory() as session:
            for _ in range(used):
                take_call(session, key="microsoft_clarity:proj-2", window_start=midnight, limit=10)
            session.commit()
        with factory() as session:
            runs = due_runs(session)
            session.commit()
        shown = client.get(f"/api/data-sources/{source_id}", headers=headers).json()
    reset = midnight + timedelta(days=1)
    next_run = datetime.fromisoformat(shown["nextRunAt"])
    assert reset <= next_run < reset + MAX_JITTER  # @daily: the next slot is after the reset too
    if not deferred:
        assert len(runs) == 1
        assert shown["scheduleWaiting"] is None
        return
    assert runs == []
    waiting = shown["scheduleWaiting"]
    assert waiting["state"] == "waiting"
    assert datetime.fromisoformat(waiting["until"]) == reset
    assert "10 of 10 calls" in waiting["reason"]
    assert "needs 1" in waiting["reason"]

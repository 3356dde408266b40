"""The scheduler's tick purges expired rows once an hour per process, and a failing purge never
stops scheduling. Time is driven through ``_tick``'s ``now``, never slept."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import func, select, text, update

from inflow.logging import is_sensitive_key
from inflow.storage.db import session_scope
from inflow.storage.models import ApiToken, SyncRun, utcnow
from inflow.sync.scheduler import _tick
from tests.factories import EXAMPLE_CONFIG, login, user_headers

PURGED = "expired rows purged"


def scheduled_source(client, headers) -> None:
    body = {"name": "s", "type": "example", "config": EXAMPLE_CONFIG, "schedule": "every 1h"}
    assert client.post("/api/data-sources", headers=headers, json=body).status_code == 201


def expire_sessions(factory) -> None:
    with session_scope(factory) as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))


def tokens(factory) -> int:
    with factory() as session:
        return session.execute(select(func.count()).select_from(ApiToken)).scalar_one()


def events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


def test_the_tick_purges_at_once_then_not_again_within_the_hour(client, factory):
    user, headers = user_headers(client, factory)
    scheduled_source(client, headers)
    expire_sessions(factory)
    now = utcnow()

    with structlog.testing.capture_logs() as logs:
        runs, last = _tick(factory, None, now=now)  # the process's first tick purges

    assert len(runs) == 1  # and schedules as before
    assert last == now
    assert tokens(factory) == 0
    (logged,) = events(logs, PURGED)
    counts = {k: v for k, v in logged.items() if k not in ("event", "log_level")}
    assert counts == {"session": 1, "oauth_state": 0}
    assert not any(map(is_sensitive_key, counts))  # else the redactor would print ``***``

    login(client, user.email)
    expire_sessions(factory)
    with structlog.testing.capture_logs() as logs:
        assert _tick(factory, last, now=now + timedelta(minutes=59))[1] == now
        assert tokens(factory) == 1  # within the hour: left for the next purge
        assert _tick(factory, last, now=now + timedelta(hours=1))[1] == now + timedelta(hours=1)
        assert tokens(factory) == 0
        assert len(events(logs, PURGED)) == 1
        _tick(factory, now + timedelta(hours=1), now=now + timedelta(hours=2))
    assert len(events(logs, PURGED)) == 1  # the third purge deleted nothing: nothing logged


def test_a_failing_purge_is_logged_and_scheduling_goes_on(client, factory, engine):
    _, headers = user_headers(client, factory)
    scheduled_source(client, headers)
    expire_sessions(factory)
    now = utcnow()
    with engine.begin() as conn:  # the purge's last statement fails: its transaction rolls back
        conn.execute(text("ALTER TABLE oauth_states RENAME TO oauth_states_away"))
    try:
        with structlog.testing.capture_logs() as logs:
            runs, last = _tick(factory, None, now=now)
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE oauth_states_away RENAME TO oauth_states"))

    assert len(runs) == 1
    with factory() as session:
        assert session.execute(select(SyncRun.trigger)).scalars().all() == ["schedule"]
    assert last == now  # tried again in an hour, not every tick
    assert tokens(factory) == 1  # nothing half-done
    (failed,) = events(logs, "housekeeping failed: expired rows not purged")
    assert failed["log_level"] == "error"
    assert failed["exc_info"] is True

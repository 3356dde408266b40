"""Calling syncs resume from the last finished day: a 100,000-call Twilio sync, run in a process
of its own over loopback HTTP, is SIGKILLed after about a quarter, a half and three quarters of
its days (seen from the days it committed), and run again each time. Every day's points commit
with the stream's cursor, so each new run starts from the last finished day (minus Twilio's
two-day lookback) and asks the provider for less than a fresh start does; the data in the end
equal a clean run's into a fresh database and the daily table this test computes itself from
the emulator's raw call log.

The emulator's clock stands still two days back (``pinned_sandbox_url``) and the runners keep
their real clocks: whatever the hour, the calls are the same and lie in every run's past."""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from inflow.sandbox.twilio import ACCOUNT_SID, AUTH_TOKEN
from inflow.storage.db import make_session_factory
from inflow.storage.models import DataPoint, DataSource, StreamState
from inflow.sync.engine import enqueue_run
from tests.providers.calling import Table, assert_same, stored
from tests.providers.test_twilio import expected
from tests.sync.conftest import (  # noqa: F401 (fixtures, found by name)
    fresh_engine,
    pg_ref_url,
    pinned_sandbox_url,
)
from tests.sync.helpers import committed_days, get_run, make_source, start_runner

CALLS = f"/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
ENDPOINT = "GET /2010-04-01/Accounts/{account_sid}/Calls.json"
ENDED = ("completed", "busy", "no-answer", "canceled", "failed")
PLANNED = 91  # a first sync reads 90 days back and today
DATA_DAYS = 80  # the emulator's calls: 80 days up to its (pinned) today, inside every plan
KILLS = (PLANNED // 4, PLANNED // 2, 3 * PLANNED // 4)  # days committed when each run dies


@pytest.fixture
def twilio(request: pytest.FixtureRequest):
    url = request.getfixturevalue("pinned_sandbox_url")
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/_sandbox/reset").status_code == 200
        body = {"volume": {"calls": 100_000, "days": DATA_DAYS}}
        assert http.post("/_sandbox/twilio/config", json=body).status_code == 200
        yield http


def raw_log(http: httpx.Client) -> list[dict[str, Any]]:
    """Every call in the emulator's log, paged as a Twilio client pages it."""
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    body = http.get(CALLS, params={"PageSize": 1000}, auth=auth).json()
    rows: list[dict[str, Any]] = body["calls"]
    while body["next_page_uri"]:
        body = http.get(f"/twilio{body['next_page_uri']}", auth=auth).json()
        rows += body["calls"]
    return rows


def calls_requests(http: httpx.Client) -> int:
    return int(http.get("/_sandbox/twilio/stats").json()["byEndpoint"].get(ENDPOINT, 0))


def stored_points(factory, source_id: uuid.UUID) -> int:
    with factory() as session:
        count = session.scalar(select(func.count()).where(DataPoint.source_id == source_id))
    return int(count or 0)


def cursor_day(factory, source_id: uuid.UUID) -> date | None:
    with factory() as session:
        row = session.get(StreamState, (source_id, "calls"))
    return date.fromisoformat(row.state["cursor"][:10]) if row is not None else None


def first_day_asked(factory, run_id: uuid.UUID) -> date:
    """The earliest ``StartTime>`` of a run's call-log requests (from its stored timeline)."""
    days = [
        date.fromisoformat(parse_qs(urlsplit(entry["path"]).query)["StartTime>"][0])
        for entry in get_run(factory, run_id).timeline["recent"]
        if "StartTime%3E" in entry["path"] or "StartTime>" in entry["path"]
    ]
    assert days, "no call-log request in the run's timeline"
    return min(days)


@dataclass
class Attempt:
    run_id: uuid.UUID
    start_cursor: date | None  # the checkpoint it started from
    requests: int = 0  # call-log requests it made (the emulator's count)


class Runs:
    """Runs of one source, each in a runner process of its own."""

    def __init__(self, factory, source_id: uuid.UUID, url: str, data_dir: Path, log: Path):
        self.factory, self.source_id, self.url, self.data_dir, self.log = (
            factory,
            source_id,
            url,
            data_dir,
            log,
        )

    def queue(self) -> uuid.UUID:
        with self.factory() as session:
            source = session.get(DataSource, self.source_id)
            run_id = enqueue_run(session, source=source, trigger="manual").id
            session.commit()
        return run_id

    def run(self, *, kill_at_days: int | None = None) -> uuid.UUID:
        """Queue a run and execute it in a runner; with ``kill_at_days``, SIGKILL the runner
        as soon as that many days are committed (mid-day, whatever it is doing then)."""
        run_id = self.queue()
        proc = start_runner(self.url, self.data_dir, run_id, self.log)
        try:
            if kill_at_days is None:
                assert proc.wait(timeout=240) == 0, self.log.read_text()[-3000:]
                return run_id
            deadline = time.monotonic() + 240
            while committed_days(self.factory, self.source_id) < kill_at_days:
                assert proc.poll() is None, "the run ended before the kill"
                assert time.monotonic() < deadline, self.log.read_text()[-3000:]
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        return run_id


def days_table(factory, source_id: uuid.UUID, first: date, last: date) -> Table:
    """The stored daily table of ``first``..``last``; every stored point outside is a zero
    (days the emulator has no calls for: which of them a run planned depends on its clock)."""
    everything = stored(factory, str(source_id))
    outside = {k: v for k, v in everything.items() if not first <= date.fromisoformat(k[1]) <= last}
    assert set(outside.values()) <= {0.0}, dict(list(outside.items())[:5])
    return stored(factory, str(source_id), first=first, last=last)


def test_a_killed_100k_call_sync_resumes_from_its_last_finished_day(
    request, engine, factory, vault, settings, twilio, tmp_path
):
    clean_engine = request.getfixturevalue("fresh_engine")  # another database, same backend
    clean_factory = make_session_factory(clean_engine)
    config = {**twilio.get("/_sandbox/credentials").json()["twilio"]["config"]}
    source_id = make_source(factory, vault, type_="calling", config=config)
    clean_id = make_source(clean_factory, vault, type_="calling", config=config)
    log = tmp_path / "runner.log"
    url = engine.url.render_as_string(hide_password=False)
    clean_url = clean_engine.url.render_as_string(hide_password=False)

    # A clean run into a fresh database: the data to equal, and what a fresh start asks for.
    before = calls_requests(twilio)
    Runs(clean_factory, clean_id, clean_url, settings.data_dir, log).run()
    fresh = calls_requests(twilio) - before

    runs = Runs(factory, source_id, url, settings.data_dir, log)
    attempts: list[Attempt] = []
    for kill_at in (*KILLS, None):
        before = calls_requests(twilio)
        stored_before = stored_points(factory, source_id)
        attempt = Attempt(uuid.uuid4(), cursor_day(factory, source_id))
        attempt.run_id = runs.run(kill_at_days=kill_at)
        attempts.append(attempt)
        run = get_run(factory, attempt.run_id)
        if kill_at is not None:
            assert run.status == "running"  # nobody is left to say otherwise
            # Counts commit with the days they count: what the dead run reported is stored.
            assert run.created == stored_points(factory, source_id) - stored_before
            assert committed_days(factory, source_id) < PLANNED, "the kill came too late"
        if attempt.start_cursor is not None:  # resumed: from the checkpoint, minus lookback
            assert first_day_asked(factory, attempt.run_id) == attempt.start_cursor - timedelta(
                days=2
            )
        # The next enqueue found the dead run's process gone: interrupted at once, no lease
        # to wait out (Runs.queue would have raised ConflictError).
        attempt.requests = calls_requests(twilio) - before

    for dead in attempts[:-1]:
        run = get_run(factory, dead.run_id)
        assert run.status == "interrupted", run.status
        assert run.error["type"] == "WorkerLost"
    final = get_run(factory, attempts[-1].run_id)
    assert final.status == "succeeded", final.error
    assert cursor_day(factory, source_id) == cursor_day(clean_factory, clean_id)

    rows = raw_log(twilio)
    assert 95_000 < len(rows) <= 100_000
    days = sorted({parsedate_to_datetime(r["start_time"]).date() for r in rows})
    first, last = days[0], days[-1]
    want = expected(rows, first, last)
    assert_same(days_table(clean_factory, clean_id, first, last), want)
    assert_same(days_table(factory, source_id, first, last), want)

    # Each resumed run asks for the days from its checkpoint on (plus the lookback and the
    # day in flight when its predecessor died), not for all of them again.
    resumed = [a.requests for a in attempts[1:]]
    every = {"fresh start": fresh, "runs": [a.requests for a in attempts]}
    assert all(r < fresh for r in resumed), every
    assert resumed[-1] < fresh / 2, every
    stats = twilio.get("/_sandbox/twilio/stats").json()
    assert stats["throttled"] == 0
    assert twilio.get("/twilio/_sandbox/concurrency").json()["peak"] <= 2

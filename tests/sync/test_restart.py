"""A server or worker that dies or stops mid-sync leaves nothing behind: real `inflow serve` and
`inflow worker` processes syncing a Twilio source from the sandbox over loopback HTTP.

- SIGKILLed, the server's run is recovered when the next server starts (it owned its runs):
  `POST …/sync` is accepted at once, and the new run resumes from the last committed day.
- SIGTERMed, the server hands its run back before it exits (interrupted, with what it
  committed): after a restart a sync is accepted at once too. The data in the end equal a
  clean run's.
- A live worker's run is never taken by a server starting beside it; a worker stopped with
  SIGTERM hands its run back.

The emulator's clock stands still two days back (``pinned_sandbox_url``), the servers keep
their real clocks: the calls are the same for every run, at any hour."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from inflow.storage.models import DataSource, StreamState
from inflow.sync.engine import enqueue_run
from tests.servers import INFLOW, InflowServer, inflow_env
from tests.sync.helpers import committed_days, get_run, person, points_of

VOLUME = {"calls": 30_000, "days": 60, "serverMs": 120}  # a sync of a few seconds


@pytest.fixture
def twilio(pinned_sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pinned_sandbox_url, timeout=30) as http:
        assert http.post("/_sandbox/reset").status_code == 200
        assert http.post("/_sandbox/twilio/config", json={"volume": VOLUME}).status_code == 200
        yield http


@pytest.fixture
def env(engine, settings, vault) -> dict[str, str]:
    """The processes' environment: the test's database and data dir (so its key file)."""
    return inflow_env(
        settings.data_dir,
        engine.url.render_as_string(hide_password=False),
        INFLOW_ALLOW_PRIVATE_URLS="true",
        INFLOW_RATE_LIMIT_DEFAULT="10000/minute",
        INFLOW_LOG_FORMAT="console",
    )


@pytest.fixture
def servers(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], InflowServer]]:
    """Start `inflow serve` processes; any still running is stopped when the test ends."""
    started: list[InflowServer] = []

    def start() -> InflowServer:
        server = InflowServer("serve", env=env, workdir=tmp_path / "servers")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def api(server: InflowServer, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30)


def new_source(http: httpx.Client, config: dict[str, Any], name: str = "Twilio") -> uuid.UUID:
    body = {"name": name, "type": "calling", "config": config}
    response = http.post("/api/data-sources", json=body)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def sync(http: httpx.Client, source_id: uuid.UUID) -> uuid.UUID:
    """``POST …/sync``, accepted at the first asking."""
    response = http.post(f"/api/data-sources/{source_id}/sync")
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["runId"])


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def cursor_day(factory, source_id: uuid.UUID) -> date:
    with factory() as session:
        row = session.get(StreamState, (source_id, "calls"))
        assert row is not None
        return date.fromisoformat(row.state["cursor"][:10])


def first_day_asked(http: httpx.Client, run_id: uuid.UUID) -> date:
    """The earliest ``StartTime>`` of a run's call-log requests (its timeline, by the API)."""
    timeline = http.get(f"/api/runs/{run_id}").json()["timeline"]["recent"]
    days = [
        date.fromisoformat(parse_qs(urlsplit(e["path"]).query)["StartTime>"][0])
        for e in timeline
        if "StartTime" in e["path"]
    ]
    assert days, timeline
    return min(days)


def finished(http: httpx.Client, run_id: uuid.UUID) -> dict[str, Any]:
    run: dict[str, Any] = {}

    def done() -> bool:
        nonlocal run
        run = http.get(f"/api/runs/{run_id}").json()
        return run["status"] not in ("queued", "running")

    wait_for(done, f"run {run_id} to end")
    return run


def non_zero(factory, source_id: uuid.UUID) -> set[tuple[str, str, str, float]]:
    """A source's stored points but the zeros (which empty days around the emulator's calls
    a run planned depends on its own clock)."""
    return {p for p in points_of(factory, source_id) if p[3] != 0}


def kill(server: InflowServer, sig: signal.Signals) -> int:
    assert server.proc is not None
    os.killpg(server.proc.pid, sig)
    return server.proc.wait(timeout=30)


def test_a_killed_or_stopped_server_leaves_its_sync_resumable_at_once(factory, servers, twilio):
    _, headers = person(factory)
    config = twilio.get("/_sandbox/credentials").json()["twilio"]["config"]

    first = servers()
    with api(first, headers) as http:
        source_id = new_source(http, config)
        killed = sync(http, source_id)
    wait_for(lambda: committed_days(factory, source_id) >= 15, "15 days committed")
    assert kill(first, signal.SIGKILL) == -signal.SIGKILL
    assert get_run(factory, killed).status == "running"  # nobody was left to say otherwise
    checkpoint = cursor_day(factory, source_id)

    second = servers()
    run = get_run(factory, killed)  # the server recovered its dead predecessor's run on start
    assert (run.status, run.error["type"]) == ("interrupted", "WorkerLost")
    with api(second, headers) as http:
        resumed = sync(http, source_id)
        wait_for(lambda: cursor_day(factory, source_id) > checkpoint, "a day committed")
        assert first_day_asked(http, resumed) == checkpoint - timedelta(days=2)  # lookback
    wait_for(lambda: committed_days(factory, source_id) >= 35, "35 days committed")
    # A clean exit (uvicorn re-raises the signal once it has shut down), not a timeout's kill.
    assert kill(second, signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in second.stderr
    stopped = get_run(factory, resumed)
    assert (stopped.status, stopped.error["type"]) == ("interrupted", "ShutDown")
    assert stopped.finished_at is not None
    assert stopped.lease_until is None
    checkpoint = cursor_day(factory, source_id)

    third = servers()
    with api(third, headers) as http:
        last = sync(http, source_id)
        assert finished(http, last)["status"] == "succeeded"
        assert first_day_asked(http, last) == checkpoint - timedelta(days=2)
        clean_id = new_source(http, config, name="Twilio, synced once")
        assert finished(http, sync(http, clean_id))["status"] == "succeeded"

    got, want = non_zero(factory, source_id), non_zero(factory, clean_id)
    assert len({p[1] for p in want}) >= VOLUME["days"], "the clean run stored too few days"
    assert got == want


def test_a_live_workers_run_is_left_alone_and_a_stopped_worker_hands_it_back(
    factory, env, servers, twilio, tmp_path
):
    _, headers = person(factory)
    config = twilio.get("/_sandbox/credentials").json()["twilio"]["config"]
    server = servers()
    with api(server, headers) as http:
        source_id = new_source(http, config)
    # Distributed mode: the API queues, an `inflow worker` process runs the run.
    external = {**env, "INFLOW_WORKER": "external"}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(INFLOW), "worker"],
            env=external,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with api(server, headers) as http:
            # Queued in the database, as an external-mode API queues it: the worker takes it.
            with factory() as session:
                run_id = enqueue_run(
                    session, source=session.get(DataSource, source_id), trigger="manual"
                ).id
                session.commit()
            wait_for(lambda: committed_days(factory, source_id) >= 10, "10 days committed")
            # The provider slows down (each answer 20 s, within the client's 60 s read
            # timeout), so the run is surely still running while another server starts,
            # however loaded the machine.
            slow = twilio.post("/_sandbox/twilio/config", json={"faults": {"latencyMs": 20_000}})
            assert slow.status_code == 200, slow.text
            assert get_run(factory, run_id).status == "running"

            # Another server starting beside the live worker takes nothing from it.
            beside = servers()
            assert get_run(factory, run_id).status == "running"
            with api(beside, headers) as other:
                refused = other.post(f"/api/data-sources/{source_id}/sync")
            assert refused.status_code == 409, refused.text
            assert str(run_id) in refused.json()["detail"]

            os.killpg(worker.pid, signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, log.read_text()[-3000:]
            stopped = get_run(factory, run_id)
            assert (stopped.status, stopped.error["type"]) == ("interrupted", "ShutDown")
            assert "worker stopped" in log.read_text()

            fast = twilio.post("/_sandbox/twilio/config", json={"faults": {"latencyMs": 0}})
            assert fast.status_code == 200, fast.text
            after = sync(http, source_id)  # accepted at once; this server runs it
            assert finished(http, after)["status"] == "succeeded"
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()

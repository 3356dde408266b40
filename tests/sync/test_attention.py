"""Failures that get attention, through the API with real syncs against the sandbox (its fault
injection makes the provider fail) on SQLite and PostgreSQL: failures counted in the source's
health, a signed alert on the first failure, the pause and the recovery (received by a real HTTP
server in a thread), the pause the scheduler respects and a person lifts (API, page, CLI), and
freshness with the staleness flag."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from inflow.api.security import csrf_token
from inflow.settings import Settings
from inflow.storage.models import DataSource, utcnow
from inflow.sync.scheduler import due_runs
from tests.factories import login, make_user
from tests.sync.helpers import create_source, health, person, sync_and_wait

SECRET = "alert-signing-secret-for-tests"
PAUSE_AFTER = 3
HTML = {"Accept": "text/html"}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A real HTTP server on loopback that records every POST and answers from ``answers``
    (then 200)."""

    url: str = ""
    got: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    def events(self) -> list[str]:
        return [r.json["event"] for r in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                state.got.append(Received(dict(self.headers.items()), body))
                status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/inflow"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path: Path, receiver: Receiver) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rate_limit_default="10000/minute",
        log_format="console",
        allow_private_urls=True,
        alert_webhook_url=receiver.url,
        alert_webhook_secret=SECRET,
        pause_after_failures=PAUSE_AFTER,
    )


def verified(alert: Received) -> dict[str, Any]:
    """The alert's body, after checking its signature as a receiver would."""
    timestamp = alert.headers["X-Inflow-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + alert.body, hashlib.sha256
    ).hexdigest()
    assert alert.headers["X-Inflow-Signature"] == f"sha256={expected}"
    assert alert.headers["Content-Type"] == "application/json"
    assert alert.headers["X-Inflow-Event"] == alert.json["event"]
    return alert.json


def fail(client, headers, source_id: str) -> dict[str, Any]:
    run = sync_and_wait(client, headers, source_id)
    assert run["status"] == "failed", run
    return run


@pytest.mark.usefixtures("fast_retries")
def test_failures_are_counted_alerted_once_paused_and_resumed(client, factory, sb, receiver):
    _, headers = person(factory)
    source = create_source(client, headers)
    sid = source["id"]
    assert health(client, headers, sid)["consecutiveFailures"] == 0
    sb.configure(faults={"errorRate": 1.0})

    first = fail(client, headers, sid)
    state = health(client, headers, sid)
    assert state["consecutiveFailures"] == 1
    assert state["paused"] is False
    assert receiver.events() == ["source.failing"]
    alert = verified(receiver.got[0])
    assert alert["source"]["id"] == sid
    assert alert["source"]["consecutiveFailures"] == 1
    assert alert["run"] == {"id": first["id"], "status": "failed"}
    assert alert["message"] == first["error"]["message"]

    fail(client, headers, sid)
    assert health(client, headers, sid)["consecutiveFailures"] == 2
    assert receiver.events() == ["source.failing"]  # not on every failure

    fail(client, headers, sid)
    state = health(client, headers, sid)
    assert state["consecutiveFailures"] == PAUSE_AFTER
    assert state["paused"] is True
    assert state["pausedAt"] is not None
    assert state["pausedReason"].startswith(f"paused after {PAUSE_AFTER} failed syncs in a row")
    assert "provider error (50" in state["pausedReason"]
    assert receiver.events() == ["source.failing", "source.paused"]
    assert verified(receiver.got[1])["source"]["paused"] is True

    # The scheduler skips the paused source, however due it is.
    client.patch(f"/api/data-sources/{sid}", headers=headers, json={"schedule": "every 1h"})
    with factory() as session:
        assert due_runs(session, now=utcnow() + timedelta(days=1)) == []
        session.rollback()

    resumed = client.post(f"/api/data-sources/{sid}/resume", headers=headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["health"]["paused"] is False
    assert resumed.json()["health"]["pausedReason"] is None
    assert resumed.json()["health"]["consecutiveFailures"] == PAUSE_AFTER  # until a success
    with factory() as session:
        assert len(due_runs(session, now=utcnow() + timedelta(days=1))) == 1
        session.rollback()

    sb.configure(faults={"errorRate": 0.0}, volume={"pages": 1})
    good = sync_and_wait(client, headers, sid)
    assert good["status"] == "succeeded", good
    state = health(client, headers, sid)
    assert state["consecutiveFailures"] == 0
    assert state["status"] == "ok"
    assert state["lastAdvancedAt"] is not None
    assert receiver.events() == ["source.failing", "source.paused", "source.recovered"]
    recovered = verified(receiver.got[2])
    assert recovered["run"] == {"id": good["id"], "status": "succeeded"}
    assert recovered["source"]["consecutiveFailures"] == 0
    assert len({r.json["delivery"] for r in receiver.got}) == 3

    # Another success is no transition: nothing more is sent.
    assert sync_and_wait(client, headers, sid)["status"] == "succeeded"
    assert len(receiver.got) == 3


@pytest.mark.usefixtures("fast_retries")
def test_an_alert_is_retried_until_the_receiver_takes_it(client, factory, sb, receiver):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(faults={"errorRate": 1.0})
    receiver.answers = [503, 429]

    fail(client, headers, source["id"])

    assert [r.json["event"] for r in receiver.got] == ["source.failing"] * 3
    assert len({r.json["delivery"] for r in receiver.got}) == 1  # one delivery, tried thrice
    for alert in receiver.got:
        verified(alert)


@pytest.mark.usefixtures("fast_retries")
def test_a_receiver_that_stays_down_does_not_change_the_run(client, factory, sb, receiver):
    _, headers = person(factory)
    source = create_source(client, headers)
    receiver.answers = [500] * 20
    sb.configure(volume={"pages": 1})
    sb.configure(faults={"errorRate": 1.0})

    run = fail(client, headers, source["id"])

    assert run["error"]["type"] == "TransientProviderError"
    assert len(receiver.got) == 5  # the delivery's attempts, then given up
    assert health(client, headers, source["id"])["consecutiveFailures"] == 1


def test_freshness_flags_a_source_whose_data_stopped_advancing(client, factory, sb, test_clock):
    _, headers = person(factory)
    sb.configure(volume={"pages": 1})
    source = create_source(client, headers)
    sid = source["id"]
    client.patch(f"/api/data-sources/{sid}", headers=headers, json={"schedule": "every 1h"})
    state = health(client, headers, sid)
    assert state["lastAdvancedAt"] is None
    assert state["stale"] is False  # just created: within its first slots

    assert sync_and_wait(client, headers, sid)["status"] == "succeeded"
    state = health(client, headers, sid)
    advanced = state["lastAdvancedAt"]
    assert advanced is not None
    assert state["stale"] is False
    assert state["staleReason"] is None

    # The same data again: the run succeeds but stores nothing new, so nothing advanced.
    assert sync_and_wait(client, headers, sid)["status"] == "succeeded"
    assert health(client, headers, sid)["lastAdvancedAt"] == advanced

    test_clock.shift(timedelta(hours=3))
    state = health(client, headers, sid)
    assert state["stale"] is True
    assert state["staleReason"].startswith("no new data for 3 h, since ")
    assert "(schedule every 1h)" in state["staleReason"]

    # Without a schedule there is no promise to keep.
    client.patch(f"/api/data-sources/{sid}", headers=headers, json={"schedule": None})
    assert health(client, headers, sid)["stale"] is False


@pytest.mark.usefixtures("fast_retries")
def test_the_source_page_shows_the_pause_and_a_person_resumes_it(client, factory, sb, receiver):
    user = make_user(factory)
    token = login(client, user.email)["Authorization"].removeprefix("Bearer ")
    headers = {"Authorization": f"Bearer {token}"}
    source = create_source(client, headers)
    sid = source["id"]
    sb.configure(faults={"errorRate": 1.0})
    for _ in range(PAUSE_AFTER):
        fail(client, headers, sid)

    client.cookies.set("inflow_session", token)
    page = client.get(f"/sources/{sid}", headers=HTML)
    assert page.status_code == 200
    assert "Paused" in page.text
    assert f'action="/sources/{sid}/resume"' in page.text
    assert f'<dd data-testid="consecutive-failures">{PAUSE_AFTER}</dd>' in page.text
    assert "failed syncs in a row" in page.text

    form = {"csrf_token": csrf_token(token, client.app.state.csrf_key)}
    answer = client.post(f"/sources/{sid}/resume", data=form, headers=HTML, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/sources/{sid}?resumed=1"
    page = client.get(answer.headers["location"], headers=HTML)
    assert "The source is resumed" in page.text
    assert f'action="/sources/{sid}/resume"' not in page.text
    assert health(client, headers, sid)["paused"] is False

    refused = client.post(f"/sources/{sid}/resume", headers=HTML, follow_redirects=False)
    assert refused.status_code == 401  # no CSRF token: refused as unauthenticated


def test_resume_is_refused_for_someone_elses_source(client, factory):
    _, owner = person(factory)
    _, stranger = person(factory)
    source = create_source(client, owner)
    answer = client.post(f"/api/data-sources/{source['id']}/resume", headers=stranger)
    assert answer.status_code == 404
    missing = client.post(f"/api/data-sources/{uuid.uuid4()}/resume", headers=owner)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_an_alert_url_without_a_secret_is_refused(tmp_path: Path):
    with pytest.raises(ValidationError, match="INFLOW_ALERT_WEBHOOK_SECRET"):
        Settings(data_dir=tmp_path, alert_webhook_url="https://hooks.example.com/x")


def test_a_sync_stopped_by_a_spent_quota_is_a_wait_not_a_failure_of_the_source(
    client, factory, sb, receiver
):
    """Decided: a rate limit or a spent provider quota neither counts toward the pause nor
    resets the count, and alerts nothing; the source is not failing, it waits."""
    from inflow.sandbox import microsoft_clarity as clarity_sandbox
    from inflow.storage.quota import take_call
    from tests.sync.helpers import SANDBOX_HOST

    _, headers = person(factory)
    config = clarity_sandbox.credentials(f"{SANDBOX_HOST}/microsoft_clarity")
    source = create_source(client, headers, "microsoft_clarity", config)
    sid = source["id"]
    with factory() as session:  # a failure counted before: the wait must not reset it
        session.get(DataSource, uuid.UUID(sid)).consecutive_failures = 1
        session.commit()
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    with factory() as session:  # another client of the project spent today's ten calls
        key = f"microsoft_clarity:{config['projectId']}"
        for _ in range(10):
            take_call(session, key=key, window_start=midnight, limit=10)
        session.commit()

    for _ in range(PAUSE_AFTER + 1):
        run = fail(client, headers, sid)
        assert run["error"]["type"] == "RateLimitedError", run
    state = health(client, headers, sid)
    assert state["consecutiveFailures"] == 1  # neither counted nor reset
    assert state["paused"] is False
    assert receiver.events() == []

"""Many concurrent clients against a real server (uvicorn on a loopback port, both backends).

A token used for the first time, 50 threads on the list, series and run routes, some of them
writing data points, and a sync from the sandbox (served on its own loopback port) running
meanwhile: every request is answered without an error, the sync succeeds, every acknowledged
write is stored and no other one is. Nothing here is timed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.app import create_app
from inflow.api.services import accounts
from inflow.sandbox import create_app as create_sandbox
from inflow.settings import Settings
from inflow.storage.db import session_scope
from inflow.storage.models import ApiToken, DataPoint, SyncRun, User
from tests.factories import make_user
from tests.servers import free_port

CLIENTS = 50
TURNS = 6  # requests per client
WRITERS = 10  # of the clients, these POST a new point per turn


class Served:
    """An ASGI app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            self.thread.join(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    with Served(create_sandbox()) as served:
        yield served.url


@pytest.fixture
def server(engine: Engine, tmp_path: Path) -> Iterator[tuple[Served, FastAPI]]:
    settings = Settings(
        data_dir=tmp_path / "data",
        log_format="console",
        allow_private_urls=True,  # the sandbox is on this machine
        rate_limit_default="100000/minute",  # one user's 300+ requests: not what is tested
    )
    app = create_app(settings, engine=engine, migrate=False)
    with Served(app) as served:
        yield served, app


@dataclass
class Outcomes:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: dict[str, int] = field(default_factory=dict)  # "GET /path 200" -> count
    acknowledged: set[datetime] = field(default_factory=set)
    not_acknowledged: set[datetime] = field(default_factory=set)

    def count(self, what: str) -> None:
        with self.lock:
            self.answers[what] = self.answers.get(what, 0) + 1


def _client(
    url: str, token: str, n: int, source_id: str, run_id: str, base: datetime, out: Outcomes
) -> None:
    today = datetime.now(UTC).date()
    series = {
        "metric": "visits",
        "sourceId": source_id,
        "from": (today - timedelta(days=89)).isoformat(),
        "to": today.isoformat(),
    }
    reads = [
        ("/api/data-sources", {}),
        ("/api/data-points", series),
        ("/api/data-points", {**series, "granularity": "week"}),
        (f"/api/runs/{run_id}", {}),
        (f"/api/data-sources/{source_id}/runs", {}),
    ]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for turn in range(TURNS):
            if n < WRITERS:
                start = base + timedelta(hours=n * TURNS + turn)
                point = {
                    "sourceId": source_id,
                    "metric": "visits",
                    "value": float(turn),
                    "periodStart": start.isoformat(),
                    "periodEnd": (start + timedelta(hours=1)).isoformat(),
                    "granularity": "hour",
                }
                try:
                    response = http.post("/api/data-points", json={"dataPoints": [point]})
                except httpx.TransportError:
                    with out.lock:
                        out.not_acknowledged.add(start)
                    out.count("POST /api/data-points no answer")
                    continue
                with out.lock:
                    ok = response.status_code == 200
                    (out.acknowledged if ok else out.not_acknowledged).add(start)
                out.count(f"POST /api/data-points {response.status_code}")
                continue
            path, params = reads[(n + turn) % len(reads)]
            try:
                answer = str(http.get(path, params=params).status_code)
            except httpx.TransportError as exc:
                answer = type(exc).__name__
            out.count(f"GET {path.split('/')[2]} {answer}")


def _new_token(factory: sessionmaker[Session], user_id: uuid.UUID) -> str:
    with session_scope(factory) as session:
        user = session.get(User, user_id)
        assert user is not None
        _row, token = accounts.issue_token(session, user=user, name="load")
    return token


def _wait_for_run(url: str, token: str, run_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for _ in range(1200):
            run: dict[str, Any] = http.get(f"/api/runs/{run_id}").json()
            if run["status"] not in ("queued", "running"):
                return run
            threading.Event().wait(0.1)
    raise AssertionError(f"the run did not finish: {run}")


def test_fifty_clients_with_a_fresh_token_while_a_sync_runs(
    server: tuple[Served, FastAPI], sandbox_url: str, factory: sessionmaker[Session]
) -> None:
    served, app = server
    user = make_user(factory)
    setup = _new_token(factory, user.id)
    fresh = _new_token(factory, user.id)  # its first use is the load below
    headers = {"Authorization": f"Bearer {setup}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=60) as http:
        httpx.post(
            f"{sandbox_url}/_sandbox/example/config",
            json={"volume": {"pages": 40, "reports": 3, "dashboards": 3}},
        ).raise_for_status()
        config = httpx.get(f"{sandbox_url}/_sandbox/credentials").json()["example"]["config"]
        made = http.post(
            "/api/data-sources", json={"name": "load", "type": "example", "config": config}
        )
        assert made.status_code == 201, made.text
        source_id = made.json()["id"]
        started = http.post(f"/api/data-sources/{source_id}/sync")
        assert started.status_code == 202, started.text
        run_id = started.json()["runId"]

    base = datetime(2001, 1, 1, tzinfo=UTC)  # far from the synced points
    out = Outcomes()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [
            pool.submit(_client, served.url, fresh, n, source_id, run_id, base, out)
            for n in range(CLIENTS)
        ]
        for future in futures:
            future.result()

    errors = {what: n for what, n in out.answers.items() if not what.endswith((" 200",))}
    assert errors == {}, out.answers
    assert sum(out.answers.values()) == CLIENTS * TURNS
    assert len(out.acknowledged) == WRITERS * TURNS

    run = _wait_for_run(served.url, setup, run_id)
    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] > 0

    with factory() as session:
        stored = {
            s if s.tzinfo else s.replace(tzinfo=UTC)
            for s in session.execute(
                select(DataPoint.period_start).where(
                    DataPoint.source_id == uuid.UUID(source_id), DataPoint.granularity == "hour"
                )
            ).scalars()
        }
        assert session.get(SyncRun, uuid.UUID(run_id)) is not None
    assert stored == out.acknowledged  # every acknowledged write is there, and nothing else

    # The token's use was recorded off the request path, and is written by the flush.
    app.state.token_usage.flush()
    with factory() as session:
        used = session.execute(
            select(ApiToken.last_used_at).where(ApiToken.user_id == user.id)
        ).scalars()
        assert all(at is not None for at in used)


def test_a_write_is_acknowledged_only_once_it_is_committed(
    engine: Engine, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    """The request's session commits before the response starts: a client that got its 200
    finds the point stored, and a commit that failed could still turn the answer into an
    error. Checked by the order of events (the write's commit, the response's start)."""
    settings = Settings(data_dir=tmp_path / "data", log_format="console")
    app = create_app(settings, engine=engine, migrate=False)
    events: list[str] = []

    def wrote(session: Session, _ctx: object) -> None:
        session.info["wrote"] = True

    def committed(session: Session) -> None:
        if session.info.pop("wrote", False):
            events.append("commit")

    event.listen(app.state.session_factory, "after_flush_postexec", wrote)
    event.listen(app.state.session_factory, "after_commit", committed)

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start" and scope["method"] == "POST":
                events.append(f"response {message['status']}")
            await send(message)

        await app(scope, receive, sending)

    user = make_user(factory)
    token = _new_token(factory, user.id)
    with (
        Served(observed) as served,
        httpx.Client(
            base_url=served.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http,
    ):
        made = http.post(
            "/api/data-sources",
            json={
                "name": "push",
                "type": "example",
                "config": {"apiKey": "sk_test_inflow_example_0001", "baseUrl": served.url},
            },
        )
        assert made.status_code == 201, made.text
        source_id = made.json()["id"]
        for n in range(5):
            start = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(hours=n)
            point = {
                "sourceId": source_id,
                "metric": "visits",
                "value": 1.0,
                "periodStart": start.isoformat(),
                "periodEnd": (start + timedelta(hours=1)).isoformat(),
                "granularity": "hour",
            }
            response = http.post("/api/data-points", json={"dataPoints": [point]})
            assert response.status_code == 200, response.text
            with engine.connect() as conn:  # not the server's session: what is stored
                found = conn.execute(
                    select(DataPoint.id).where(
                        DataPoint.source_id == uuid.UUID(source_id),
                        DataPoint.period_start == start,
                    )
                ).first()
            assert found is not None, n
    # the source's creation, then each point: each write committed before its answer started
    assert events == ["commit", "response 201"] + ["commit", "response 200"] * 5

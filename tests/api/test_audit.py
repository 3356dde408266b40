"""The audit log: what the API records, the admin route's filters, and the tamper-evident chain."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.app import create_app
from inflow.settings import Settings
from inflow.storage.audit import GENESIS, append_event, verify_chain
from inflow.storage.db import make_session_factory, session_scope
from inflow.storage.models import AuditEvent, AuditHead
from tests.conftest import TestClient
from tests.factories import PASSWORD, make_user, user_headers

SECRET = "sk-live-SECRET123"
NEW_SECRET = "sk-live-SECRET456"


def events(factory: sessionmaker[Session], action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    with factory() as session:
        return list(session.execute(stmt).scalars())


def raw_audit_rows(factory: sessionmaker[Session]) -> str:
    """Every stored audit row as text, exactly as the database holds it."""
    with factory() as session:
        return repr(session.execute(text("SELECT * FROM audit_events")).all())


def assert_recorded(event: AuditEvent, response, **expected: object) -> None:
    """``event`` is the one ``response``'s request recorded, with the ``expected`` fields."""
    assert event.request_id == response.headers["x-request-id"]
    assert event.ip == "testclient"
    for name, value in expected.items():
        assert getattr(event, name) == value, name


def append_many(factory: sessionmaker[Session], count: int) -> list[int]:
    """Append ``count`` events in one transaction; their ids."""
    with session_scope(factory) as session:
        return [
            append_event(
                session,
                action="test.event",
                outcome="success",
                actor=f"actor{i % 3}@example.com",
                target=f"things:{i}",
                details={"i": i, "note": "ünïcode ✓", "ratio": i / 7, "nested": {"n": [i]}},
            ).id
            for i in range(count)
        ]


def tamper(engine: Engine, statement: str, **params: object) -> None:
    """Run ``statement`` with the append-only triggers lifted (what an attacker with DB access
    could do); on PostgreSQL they are back before the transaction commits."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
            conn.execute(text(statement), params)
        else:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            conn.execute(text(statement), params)
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


# ---------------------------------------------------------------- what the API records


def test_audit_records_login_success_and_failure(client, factory):
    user = make_user(factory)

    ok = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    bad = client.post(
        "/api/auth/login",
        json={"email": user.email, "password": "hunter2-wrong"},
        headers={"X-Request-ID": "req-login-2"},
    )

    assert (ok.status_code, bad.status_code) == (200, 401)
    success, failure = events(factory, "auth.login")
    assert_recorded(
        success, ok, actor=user.email, target=f"users:{user.id}", outcome="success", details={}
    )
    assert_recorded(failure, bad, actor=user.email, outcome="failure", request_id="req-login-2")
    dump = raw_audit_rows(factory)
    assert "hunter2-wrong" not in dump
    assert ok.json()["token"] not in dump


def test_audit_records_login_failure_with_overlong_email_and_ip(engine, tmp_path):
    # The email grows when lowercased ("İ" -> "i̇") and a trusted X-Forwarded-For can be anything:
    # neither may turn a refused login into a 500 (PostgreSQL refuses text over the column size).
    settings = Settings(data_dir=tmp_path / "data", log_format="console", trust_forwarded_for=True)
    app = create_app(settings, engine=engine, migrate=False)
    with TestClient(app) as client:
        r = client.post(
            "/api/auth/login",
            json={"email": "İ" * 320, "password": "nope"},
            headers={"X-Forwarded-For": "1" * 100},
        )

    assert r.status_code == 401, r.text
    (event,) = events(make_session_factory(engine), "auth.login")
    assert event.outcome == "failure"
    assert event.actor is not None
    assert event.actor.startswith("i̇i̇")
    assert event.ip == "1" * 64


def test_audit_records_token_creation_and_revocation(client, factory):
    user, headers = user_headers(client, factory)

    created = client.post("/api/tokens", headers=headers, json={"name": "ci"})
    token_id = created.json()["id"]
    deleted = client.delete(f"/api/tokens/{token_id}", headers=headers)

    assert (created.status_code, deleted.status_code) == (201, 204)
    (create_event,) = events(factory, "token.create")
    (delete_event,) = events(factory, "token.delete")
    target = f"api_tokens:{token_id}"
    assert_recorded(
        create_event,
        created,
        actor=user.email,
        target=target,
        outcome="success",
        details={"name": "ci"},
    )
    assert_recorded(delete_event, deleted, actor=user.email, target=target, outcome="success")
    assert created.json()["token"] not in raw_audit_rows(factory)


def test_audit_records_source_lifecycle_without_secrets(client, factory):
    user, headers = user_headers(client, factory)
    config = {"apiKey": SECRET, "workspace": "team-a"}

    created = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "s", "type": "example", "config": config},
    )
    source_id = created.json()["id"]
    updated = client.patch(
        f"/api/data-sources/{source_id}",
        headers=headers,
        json={"name": "renamed", "config": {"apiKey": NEW_SECRET}},
    )
    deleted = client.delete(f"/api/data-sources/{source_id}", headers=headers)

    assert (created.status_code, updated.status_code, deleted.status_code) == (201, 200, 204)
    target = f"data_sources:{source_id}"
    (create_event,) = events(factory, "source.create")
    (update_event,) = events(factory, "source.update")
    (delete_event,) = events(factory, "source.delete")
    for event, response in (
        (create_event, created),
        (update_event, updated),
        (delete_event, deleted),
    ):
        assert_recorded(event, response, actor=user.email, target=target, outcome="success")
    assert create_event.details == {"type": "example"}
    assert update_event.details == {"fields": ["apiKey"]}
    dump = raw_audit_rows(factory)
    assert SECRET not in dump
    assert NEW_SECRET not in dump
    assert "SECRET" not in dump


def test_audit_records_denied_access_to_another_users_source(client, factory):
    _, owner = user_headers(client, factory)
    intruder, intruder_headers = user_headers(client, factory)
    created = client.post(
        "/api/data-sources",
        headers=owner,
        json={"name": "mine", "type": "example", "config": {"apiKey": SECRET}},
    )
    source_id = created.json()["id"]
    url = f"/api/data-sources/{source_id}"

    answers = [
        client.get(url, headers=intruder_headers),
        client.patch(url, headers=intruder_headers, json={"name": "stolen"}),
        client.delete(url, headers=intruder_headers),
    ]

    assert [r.status_code for r in answers] == [404, 404, 404]
    missing_id = str(uuid.uuid4())
    missing = client.get(f"/api/data-sources/{missing_id}", headers=intruder_headers)
    assert missing.status_code == 404  # a stranger's source looks exactly like a missing one
    assert answers[0].json()["detail"] == missing.json()["detail"].replace(missing_id, source_id)
    denied = events(factory, "permission.denied")
    assert len(denied) == 3
    for event, response in zip(denied, answers, strict=True):
        assert_recorded(
            event,
            response,
            actor=intruder.email,
            target=f"data_sources:{source_id}",
            outcome="denied",
        )
    assert denied[0].details == {"action": "read"}
    assert client.get(url, headers=owner).json()["name"] == "mine"


def test_audit_details_drop_secret_fields_at_any_depth(factory):
    details = {
        "name": "ci",
        "apiKey": "k-top",
        "config": {"clientSecret": "k-nested", "workspace": "team-a"},
        "steps": [{"accessToken": "k-in-list", "ok": True}, "plain"],
        "Authorization": "Bearer k-header",
    }
    with session_scope(factory) as session:
        append_event(session, action="test.details", outcome="success", details=details)

    (event,) = events(factory, "test.details")
    assert event.details == {
        "name": "ci",
        "config": {"workspace": "team-a"},
        "steps": [{"ok": True}, "plain"],
    }
    assert "k-" not in raw_audit_rows(factory)
    with factory() as session:
        assert verify_chain(session).ok


# ---------------------------------------------------------------- GET /api/audit


@pytest.fixture
def dated_events(factory) -> list[int]:
    """Three events in 2030 (after anything the test itself records)."""
    base = datetime(2030, 1, 1, 10, tzinfo=UTC)
    rows = [("alice@x.test", "x.one", 0), ("bob@x.test", "x.two", 1), ("alice@x.test", "x.two", 2)]
    with session_scope(factory) as session:
        return [
            append_event(
                session,
                action=action,
                outcome="success",
                actor=actor,
                at=base + timedelta(hours=hours),
            ).id
            for actor, action, hours in rows
        ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"actor": "alice@x.test"}, [2, 0], id="actor"),
        pytest.param({"action": "x.two"}, [2, 1], id="action"),
        pytest.param({"actor": "alice@x.test", "action": "x.two"}, [2], id="actor_and_action"),
        pytest.param({"from": "2030-01-01T10:30:00Z"}, [2, 1], id="from_utc"),
        pytest.param({"from": "2030-01-01T12:30:00+02:00"}, [2, 1], id="from_offset"),
        pytest.param({"from": "2030-01-01T10:30:00"}, [2, 1], id="from_naive_is_utc"),
        pytest.param(
            {"from": "2030-01-01T10:00:00", "to": "2030-01-01T12:00:00"}, [1, 0], id="to_naive"
        ),
        pytest.param(
            {"from": "2030-01-01T00:00:00Z", "to": "2030-01-01T11:00:00.000001+00:00"},
            [1, 0],
            id="from_to_range",
        ),
    ],
)
def test_audit_list_filters(client, factory, dated_events, query, expected):
    _, admin = user_headers(client, factory, role="admin")

    r = client.get("/api/audit", headers=admin, params=query)

    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == [dated_events[i] for i in expected]


def test_audit_list_shows_public_fields_newest_first(client, factory):
    admin, headers = user_headers(client, factory, role="admin")

    r = client.get("/api/audit", headers=headers)

    assert r.status_code == 200, r.text
    (login_event,) = r.json()
    assert {
        "id",
        "at",
        "actor",
        "action",
        "target",
        "outcome",
        "ip",
        "requestId",
        "details",
    } <= set(login_event)
    assert login_event["actor"] == admin.email
    assert login_event["action"] == "auth.login"
    assert datetime.fromisoformat(login_event["at"]).utcoffset() == timedelta(0)


def test_audit_list_rejects_bad_datetime(client, factory):
    _, admin = user_headers(client, factory, role="admin")

    r = client.get("/api/audit", headers=admin, params={"from": "yesterday"})

    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "from"


# ---------------------------------------------------------------- the chain


def test_audit_chain_verifies_after_many_events(client, factory):
    user, headers = user_headers(client, factory)
    client.post("/api/tokens", headers=headers, json={"name": "ci"})
    append_many(factory, 150)
    with session_scope(factory) as session:
        append_event(  # a non-UTC timestamp is stored as UTC and must still verify
            session,
            action="test.offset",
            outcome="success",
            at=datetime(2030, 6, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        )
    client.get("/api/audit", headers=headers)  # a member: one more (denied) event

    with factory() as session:
        report = verify_chain(session)
        total = session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()

    assert total == 154
    assert report.ok, report
    assert report.events == total
    rows = events(factory)
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in pairwise(rows))
    assert user.email in {e.actor for e in rows}


def test_audit_events_are_append_only(engine, factory):
    (event_id,) = append_many(factory, 1)

    for statement in (
        "UPDATE audit_events SET actor = 'mallory' WHERE id = :id",
        "DELETE FROM audit_events WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement), {"id": event_id})

    with factory() as session:
        assert verify_chain(session).ok


@pytest.mark.parametrize(
    ("statement", "reported"),
    [
        pytest.param("UPDATE audit_events SET actor = 'mallory' WHERE id = :id", 0, id="altered"),
        pytest.param(
            "UPDATE audit_events SET details = :details WHERE id = :id", 0, id="altered_details"
        ),
        pytest.param("DELETE FROM audit_events WHERE id = :id", 1, id="deleted"),
    ],
)
def test_audit_chain_detects_tampering(engine, factory, statement, reported):
    ids = append_many(factory, 20)
    victim = ids[9]

    tamper(engine, statement, id=victim, details='{"i": 0}')

    with factory() as session:
        report = verify_chain(session)
    assert not report.ok
    assert report.event_id == ids[9 + reported]
    assert report.problem


def test_audit_chain_detects_a_missing_tail(engine, factory):
    ids = append_many(factory, 5)

    tamper(engine, "DELETE FROM audit_events WHERE id = :id", id=ids[-1])

    with factory() as session:
        report = verify_chain(session)
    assert not report.ok
    assert report.events == 4
    assert "head" in (report.problem or "")


def _inflow_audit_verify(engine: Engine, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INFLOW_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "INFLOW_DATA_DIR": str(data_dir),
        "COLUMNS": "200",
    }
    inflow = Path(sys.executable).with_name("inflow")
    return subprocess.run(
        [str(inflow), "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_audit_verify_cli_exit_codes(engine, factory, tmp_path):
    ids = append_many(factory, 12)

    intact = _inflow_audit_verify(engine, tmp_path / "cli")
    tamper(engine, "UPDATE audit_events SET target = 'things:999' WHERE id = :id", id=ids[4])
    broken = _inflow_audit_verify(engine, tmp_path / "cli")

    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "intact: 12 events" in intact.stdout + intact.stderr
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"at event {ids[4]}" in broken.stdout + broken.stderr


def test_audit_concurrent_appends_form_one_chain(factory):
    writers, per_writer = 6, 8

    def write(n: int) -> None:
        for i in range(per_writer):
            with session_scope(factory) as session:
                append_event(
                    session,
                    action="test.concurrent",
                    outcome="success",
                    actor=f"w{n}",
                    details={"i": i},
                )

    with ThreadPoolExecutor(max_workers=writers) as pool:
        for future in [pool.submit(write, n) for n in range(writers)]:
            future.result()

    with factory() as session:
        report = verify_chain(session)
        seq = session.execute(select(AuditHead.seq)).scalar_one()
    assert report.ok, report
    assert report.events == writers * per_writer
    assert seq == writers * per_writer

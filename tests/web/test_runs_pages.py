"""The Runs pages through real routes (no browser): ownership, bad input, the live fragment,
cancel, the audit log's pages and its refusal for members, and the fixes for run errors."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from inflow.api.security import csrf_token
from inflow.api.services.runs import fix_for
from inflow.storage.audit import append_event
from inflow.storage.models import AuditEvent, DataSource, SyncRun, utcnow
from tests.factories import login, make_user

HTML = {"Accept": "text/html"}


def browser(client, factory, *, role: str = "member"):
    """A user whose session cookie is on ``client``; the CSRF header of that session."""
    user = make_user(factory, role=role)
    token = login(client, user.email)["Authorization"].removeprefix("Bearer ")
    client.cookies.set("inflow_session", token)
    return user, {"X-CSRF-Token": csrf_token(token, client.app.state.csrf_key)}


def source_with_run(factory, owner_id: uuid.UUID, **run: object) -> tuple[uuid.UUID, uuid.UUID]:
    with factory() as session:
        source = DataSource(name="Example A", type="example", owner_id=owner_id, config={})
        session.add(source)
        session.flush()
        row = SyncRun(source_id=source.id, trigger="schedule", **run)
        session.add(row)
        session.commit()
        return source.id, row.id


def test_a_run_of_someone_elses_source_is_not_found(client, factory):
    other = make_user(factory)
    _, run_id = source_with_run(factory, other.id, status="succeeded")
    browser(client, factory)

    for path in (f"/runs/{run_id}", f"/runs/{run_id}/live", "/runs/nope", f"/runs/{uuid.uuid4()}"):
        answer = client.get(path, headers=HTML)
        assert answer.status_code == 404, path
        assert "text/html" in answer.headers["content-type"]
    listing = client.get("/runs", headers=HTML)
    assert listing.status_code == 200
    assert str(run_id) not in listing.text
    assert "No data sources yet" in listing.text


def test_the_list_filters_and_says_what_is_wrong_with_a_filter(client, factory):
    user, _ = browser(client, factory)
    source_id, run_id = source_with_run(factory, user.id, status="failed")

    shown = client.get(f"/runs?source={source_id}&status=failed", headers=HTML)
    other_status = client.get(f"/runs?source={source_id}&status=succeeded", headers=HTML)
    bad = client.get("/runs?source=x&status=sideways", headers=HTML)
    unknown = client.get(f"/runs?source={uuid.uuid4()}", headers=HTML)

    assert shown.status_code == 200
    assert f'href="/runs/{run_id}"' in shown.text
    assert "Schedule" in shown.text  # the trigger
    assert str(run_id) not in other_status.text
    assert "No runs match" in other_status.text
    assert bad.status_code == 422
    assert "choose a source from the list" in bad.text
    assert "choose a status from the list" in bad.text
    assert unknown.status_code == 404
    assert "no such source, or not yours to see" in unknown.text


def test_the_live_fragment_polls_while_the_run_is_active_and_stops_after(client, factory):
    user, _ = browser(client, factory)
    until = (utcnow() + timedelta(seconds=30)).isoformat()
    _, run_id = source_with_run(
        factory,
        user.id,
        status="running",
        started_at=utcnow(),
        waiting={"state": "waiting", "reason": "rate limited by the provider", "until": until},
    )

    listing = client.get("/runs", headers=HTML)
    table = client.get("/runs", headers={**HTML, "HX-Request": "true", "HX-Target": "run-table"})
    assert 'id="run-table" hx-get="/runs?source=&amp;status=" hx-trigger="every 2s"' in listing.text
    assert table.text.lstrip().startswith('<div id="run-table"')
    assert "<html" not in table.text
    running = client.get(f"/runs/{run_id}/live", headers={**HTML, "HX-Request": "true"})
    assert running.status_code == 200
    assert 'hx-trigger="every 2s"' in running.text
    assert "Waiting: rate limited by the provider" in running.text
    assert "hx-swap-oob" not in running.text  # the Cancel button is left alone

    with factory() as session:
        row = session.get(SyncRun, run_id)
        assert row is not None
        row.status, row.finished_at, row.waiting = "succeeded", utcnow(), None
        session.commit()
    ended = client.get(f"/runs/{run_id}/live", headers={**HTML, "HX-Request": "true"})
    assert "hx-trigger" not in client.get("/runs", headers=HTML).text
    assert "hx-trigger" not in ended.text
    assert 'id="run-actions" class="actions" hx-swap-oob="true"' in ended.text
    assert "Sync again" in ended.text


def test_cancel_needs_the_csrf_token_and_asks_the_run_to_stop(client, factory):
    user, csrf = browser(client, factory)
    _, run_id = source_with_run(factory, user.id, status="running", started_at=utcnow())

    refused = client.post(f"/runs/{run_id}/cancel", headers=HTML, follow_redirects=False)
    answer = client.post(f"/runs/{run_id}/cancel", headers={**HTML, **csrf}, follow_redirects=False)

    assert refused.status_code == 401
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/runs/{run_id}"
    with factory() as session:
        row = session.get(SyncRun, run_id)
        assert row is not None
        assert row.cancel_requested is True
        actions = session.execute(select(AuditEvent.action)).scalars().all()
    assert "run.cancel" in actions
    page = client.get(f"/runs/{run_id}", headers=HTML)
    assert "Cancel requested" in page.text


def test_a_sync_started_twice_shows_the_run_already_going(client, factory):
    user, csrf = browser(client, factory)
    source_id, run_id = source_with_run(factory, user.id, status="queued")

    answer = client.post(
        "/runs/sync",
        data={"source_id": str(source_id)},
        headers={**HTML, **csrf},
        follow_redirects=False,
    )
    bad = client.post(
        "/runs/sync", data={"source_id": "x"}, headers={**HTML, **csrf}, follow_redirects=False
    )

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/runs/{run_id}?already=1"
    assert bad.status_code == 404
    assert "text/html" in bad.headers["content-type"]


def test_the_audit_log_pages_newest_first_for_admins(client, factory):
    browser(client, factory, role="admin")
    with factory() as session:
        for i in range(60):
            append_event(session, action="test.event", outcome="success", actor=f"a{i}@x.io")
        session.commit()

    first = client.get("/runs/audit?action=test.event", headers=HTML)
    ids = [int(x) for x in re.findall(r'data-event="(\d+)"', first.text)]
    older = re.search(r'href="(/runs/audit\?[^"]*before=\d+)"', first.text)

    assert first.status_code == 200
    assert len(ids) == 50
    assert ids == sorted(ids, reverse=True)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&"), headers=HTML)
    rest = [int(x) for x in re.findall(r'data-event="(\d+)"', second.text)]
    assert len(rest) == 10
    assert max(rest) < min(ids)
    assert "Newest events" in second.text
    bad = client.get("/runs/audit?before=-3", headers=HTML)
    assert bad.status_code == 422
    assert "This page of the log does not exist" in bad.text


def test_a_member_is_told_the_audit_log_is_for_admins(client, factory):
    browser(client, factory)

    answer = client.get("/runs/audit", headers=HTML)

    assert answer.status_code == 403
    assert "For admins only" in answer.text
    assert "audit-table" not in answer.text
    with factory() as session:
        denied = session.execute(
            select(AuditEvent.target).where(AuditEvent.action == "permission.denied")
        ).scalars()
        assert "/runs/audit" in list(denied)


@pytest.mark.parametrize(
    ("error", "label", "action"),
    [
        ({"type": "CredentialsError", "fault": "user", "message": "401"}, "Reconnect", "reconnect"),
        (
            {"type": "AccessDeniedError", "fault": "user", "message": "403"},
            "Grant scope",
            "reconnect",
        ),
        (
            {"type": "RateLimitedError", "fault": "provider", "message": "quota"},
            "Sync again",
            "sync",
        ),
        ({"type": "WorkerLost", "fault": "system", "message": "gone"}, "Sync again", "sync"),
        (
            {"type": "ConfigError", "fault": "user", "message": "x"},
            "Check the settings",
            "settings",
        ),
        ({"type": "InternalError", "fault": "system", "message": "x"}, "Ask an operator", "none"),
    ],
)
def test_each_kind_of_failure_has_its_fix(error, label, action):
    fix = fix_for(error)
    assert fix is not None
    assert (fix.label, fix.action) == (label, action)
    assert fix_for(None) is None

"""A source's backfills and schedule on its page, through real routes (no browser), on SQLite
and PostgreSQL, the chunks read from the sandbox in-process: a backfill started from the form
runs to its end and the list polls until then; a bad range is named at its field and starts
nothing; cancel needs the session's CSRF token; another user's backfill is a 404; the next
scheduled run and a schedule waiting for a spent quota are shown."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import time_machine
from sqlalchemy import select

from inflow.api.security import csrf_token
from inflow.api.services.backfills import start_backfill
from inflow.connectors import registry
from inflow.sandbox import create_app as create_sandbox
from inflow.settings import Settings
from inflow.storage.db import session_scope
from inflow.storage.models import AuditEvent, Backfill, DataSource, SyncRun, utcnow
from inflow.storage.quota import take_call
from inflow.sync.backfill import FINAL
from tests.factories import login, make_user
from tests.sync.helpers import EXAMPLE, days_back

HTML = {"Accept": "text/html"}
HTMX = HTML | {"HX-Request": "true"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rate_limit_default="10000/minute",
        log_format="console",
        allow_private_urls=True,
    )


@pytest.fixture
def app(settings, engine):  # type: ignore[no-untyped-def]
    """The real app, its provider calls routed in-process to a fresh sandbox."""
    from inflow.api.app import create_app

    transport = httpx.ASGITransport(app=create_sandbox())
    return create_app(settings, engine=engine, migrate=False, transport=transport)


def browser(client, factory):
    """A member whose session cookie is on ``client``; the CSRF header of that session."""
    user = make_user(factory)
    token = login(client, user.email)["Authorization"].removeprefix("Bearer ")
    client.cookies.set("inflow_session", token)
    return user, {"X-CSRF-Token": csrf_token(token, client.app.state.csrf_key)}


def a_source(factory, owner_id: uuid.UUID, **fields: object) -> uuid.UUID:
    values: dict[str, object] = {"name": "Example A", "type": "example", "config": EXAMPLE}
    with session_scope(factory) as session:
        source = DataSource(owner_id=owner_id, **(values | fields))
        session.add(source)
        session.flush()
        return source.id


def a_backfill(factory, source_id: uuid.UUID, first: int = 20, last: int = 2) -> uuid.UUID:
    """A queued backfill, planned by the service and not handed to a worker."""
    with session_scope(factory) as session:
        source = session.get_one(DataSource, source_id)
        backfill, _ = start_backfill(
            session,
            source=source,
            first=days_back(first),
            last=days_back(last),
            created_by="test",
        )
        return backfill.id


def backfills(factory) -> list[Backfill]:
    with factory() as session:
        return list(session.scalars(select(Backfill)))


def actions(factory) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(AuditEvent.action)))


def polled_to_the_end(client, source_id: uuid.UUID) -> httpx.Response:
    """The source's backfill list, polled as the page does while a backfill is unfinished
    (with its Cancel button), until it has ended."""
    deadline = time.monotonic() + 60
    while True:
        listed = client.get(f"/sources/{source_id}/backfills", headers=HTMX)
        assert listed.status_code == 200
        state = re.search(r'data-state="(\w+)"', listed.text)
        assert state is not None, listed.text
        if state.group(1) in FINAL:
            return listed
        assert 'hx-trigger="every 2s"' in listed.text
        assert "Cancel" in listed.text
        assert time.monotonic() < deadline, listed.text
        time.sleep(0.05)


def test_a_backfill_started_from_the_form_runs_to_its_end_and_the_list_polls_till_then(
    client, factory
):
    user, csrf = browser(client, factory)
    source_id = a_source(factory, user.id)
    page = client.get(f"/sources/{source_id}", headers=HTML)
    assert page.status_code == 200
    assert "No backfills yet" in page.text
    assert f'id="f-backfill-from" name="from_date" type="date" value="{days_back(28)}"' in page.text
    assert f'id="f-backfill-to" name="to_date" type="date" value="{days_back(1)}"' in page.text
    form = {"from_date": days_back(20).isoformat(), "to_date": days_back(2).isoformat()}

    answer = client.post(f"/sources/{source_id}/backfills", data=form, headers=HTMX | csrf)

    assert answer.status_code == 200, answer.text[:500]
    assert "Backfill started" in answer.text
    assert "3 chunks" in answer.text  # 19 days in weeks
    (row,) = backfills(factory)
    assert (row.first_day, row.last_day) == (days_back(20), days_back(2))
    assert row.created_by == user.email
    listed = polled_to_the_end(client, source_id)

    assert 'data-state="succeeded"' in listed.text, listed.text
    assert "hx-trigger" not in listed.text  # ended: the poll stops
    assert listed.headers["HX-Trigger"] == "points-stored"  # the stored points reload
    assert "3 of 3 chunks" in listed.text
    assert ">Done<" in listed.text
    assert "Cancel" not in listed.text
    assert "source.backfill" in actions(factory)
    with factory() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "source.backfill")
        ).one()
    assert event.details["resumed"] is False
    assert event.details["chunks"] == 3
    # its chunks' runs on the Runs pages lead to the source's backfills
    link = f'<a href="/sources/{source_id}#backfills"'
    runs_page = client.get("/runs", headers=HTML)
    assert runs_page.text.count(link) == 3
    with factory() as session:
        run_id = session.scalars(select(SyncRun.id).where(SyncRun.trigger == "backfill")).first()
    assert link in client.get(f"/runs/{run_id}", headers=HTML).text


def test_the_same_range_asked_again_resumes_the_backfill(client, factory):
    user, csrf = browser(client, factory)
    source_id = a_source(factory, user.id)
    backfill_id = a_backfill(factory, source_id)
    with session_scope(factory) as session:
        session.get_one(Backfill, backfill_id).state = "failed"
    form = {"from_date": days_back(20).isoformat(), "to_date": days_back(2).isoformat()}

    answer = client.post(f"/sources/{source_id}/backfills", data=form, headers=HTMX | csrf)

    assert answer.status_code == 200, answer.text[:500]
    assert "Resumed" in answer.text
    assert [b.id for b in backfills(factory)] == [backfill_id]
    assert 'data-state="succeeded"' in polled_to_the_end(client, source_id).text


@pytest.mark.parametrize(
    ("first", "last", "field", "words"),
    [
        pytest.param(5, 9, "to", "before the first", id="to_before_from"),
        pytest.param(3, -2, "to", "future", id="to_in_the_future"),
        pytest.param(1200, 2, "to", "at most 1096 days", id="over_three_years"),
        pytest.param(200, 2, "from", "the earliest day is", id="before_history"),
        pytest.param("", 2, "from", "required", id="from_empty"),
        pytest.param("2026-13-01", 2, "from", "YYYY-MM-DD", id="from_not_a_date"),
    ],
)
def test_a_bad_range_is_named_at_its_field_and_starts_nothing(
    client, factory, monkeypatch, first, last, field, words
):
    if words == "the earliest day is":  # a provider that serves only its last 90 days
        example = dataclasses.replace(registry()["example"], history=timedelta(days=90))
        monkeypatch.setitem(registry(), "example", example)
    user, csrf = browser(client, factory)
    source_id = a_source(factory, user.id)
    typed = days_back(first).isoformat() if isinstance(first, int) else first
    form = {"from_date": typed, "to_date": days_back(last).isoformat()}

    answer = client.post(f"/sources/{source_id}/backfills", data=form, headers=HTMX | csrf)

    assert answer.status_code == 422, answer.text[:500]
    dom_id = {"from": "f-backfill-from", "to": "f-backfill-to"}[field]
    message = re.search(rf'<p class="field-error" id="{dom_id}-error">(.*?)</p>', answer.text)
    assert message is not None, answer.text
    assert words in message.group(1)
    assert f'id="{dom_id}"' in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert f'value="{typed}"' in answer.text  # what was typed stays
    assert backfills(factory) == []
    assert "source.backfill" not in actions(factory)


def test_a_plain_form_is_answered_with_the_whole_page(client, factory):
    """Without htmx: a bad range is the source's page with the message at its field; a good
    one goes back to the page's backfills."""
    user, csrf = browser(client, factory)
    source_id = a_source(factory, user.id)
    bad = {"from_date": days_back(5).isoformat(), "to_date": days_back(9).isoformat()}
    good = {"from_date": days_back(9).isoformat(), "to_date": days_back(5).isoformat()}

    refused = client.post(f"/sources/{source_id}/backfills", data=bad, headers=HTML | csrf)

    assert refused.status_code == 422
    assert "<h1>Example A</h1>" in refused.text
    assert 'id="f-backfill-to-error"' in refused.text
    assert "before the first" in refused.text
    assert backfills(factory) == []
    started = client.post(
        f"/sources/{source_id}/backfills",
        data=good,
        headers=HTML | csrf,
        follow_redirects=False,
    )
    assert started.status_code == 303
    assert started.headers["location"] == f"/sources/{source_id}#backfills"
    assert 'data-state="succeeded"' in polled_to_the_end(client, source_id).text


def test_cancel_needs_the_csrf_token_and_stops_the_backfill(client, factory):
    user, csrf = browser(client, factory)
    source_id = a_source(factory, user.id)
    backfill_id = a_backfill(factory, source_id)
    page = client.get(f"/sources/{source_id}", headers=HTML)
    assert f'action="/backfills/{backfill_id}/cancel"' in page.text
    assert ">Queued<" in page.text
    assert "0 of 3 chunks" in page.text
    first_chunk = f"{days_back(20)} \u2013 {days_back(14)}"  # the first chunk's days
    assert f'Next: <span class="nowrap">{first_chunk}</span>' in page.text

    refused = client.post(f"/backfills/{backfill_id}/cancel", headers=HTML)
    assert refused.status_code == 401
    assert backfills(factory)[0].state == "queued"
    answer = client.post(f"/backfills/{backfill_id}/cancel", headers=HTMX | csrf)

    assert answer.status_code == 200, answer.text[:500]
    assert ">Cancelled<" in answer.text
    assert "hx-trigger" not in answer.text
    assert f"/backfills/{backfill_id}/cancel" not in answer.text
    (row,) = backfills(factory)
    assert row.state == "cancelled"
    assert [c.state for c in row.chunks] == ["cancelled"] * 3
    assert "backfill.cancel" in actions(factory)
    plain = client.post(
        f"/backfills/{backfill_id}/cancel", headers=HTML | csrf, follow_redirects=False
    )
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/sources/{source_id}#backfills"


def test_a_cancel_asked_while_a_chunk_is_read_is_shown_until_the_chunk_ends(client, factory):
    user, csrf = browser(client, factory)
    source_id = a_source(factory, user.id)
    backfill_id = a_backfill(factory, source_id)
    with session_scope(factory) as session:
        row = session.get_one(Backfill, backfill_id)
        row.state, row.chunks[0].state = "running", "running"

    answer = client.post(f"/backfills/{backfill_id}/cancel", headers=HTMX | csrf)

    assert answer.status_code == 200
    assert "Cancel requested: it stops after the current chunk." in answer.text
    assert 'hx-trigger="every 2s"' in answer.text  # still running: it keeps polling
    assert f'Reading: <span class="nowrap">{days_back(20)} \u2013 {days_back(14)}' in answer.text


def test_a_waiting_backfill_says_why_and_until_when(client, factory):
    user, _ = browser(client, factory)
    source_id = a_source(factory, user.id)
    backfill_id = a_backfill(factory, source_id)
    until = datetime(2026, 11, 19, 0, 0, tzinfo=UTC)
    reason = "Clarity allows 10 calls a day; the chunk is read again then"
    with session_scope(factory) as session:
        row = session.get_one(Backfill, backfill_id)
        row.state = "waiting"
        row.waiting = {"state": "waiting", "reason": reason, "until": until.isoformat()}

    listed = client.get(f"/sources/{source_id}/backfills", headers=HTMX)

    assert 'data-state="waiting"' in listed.text
    assert ">Waiting<" in listed.text
    assert f"Waiting: {reason}; until " in listed.text
    assert f'<time datetime="{until.isoformat()}">2026-11-19 00:00:00 UTC</time>' in listed.text
    assert 'hx-trigger="every 2s"' in listed.text
    assert "HX-Trigger" not in listed.headers


def test_another_users_backfill_is_not_found(client, factory):
    other = make_user(factory)
    theirs = a_source(factory, other.id)
    backfill_id = a_backfill(factory, theirs)
    _, csrf = browser(client, factory)
    form = {"from_date": days_back(9).isoformat(), "to_date": days_back(3).isoformat()}

    answers = [
        client.post(f"/backfills/{backfill_id}/cancel", headers=HTML | csrf),
        client.post(f"/backfills/{backfill_id}/cancel", headers=HTMX | csrf),
        client.post(f"/backfills/{uuid.uuid4()}/cancel", headers=HTML | csrf),
        client.get(f"/sources/{theirs}/backfills", headers=HTML),
        client.post(f"/sources/{theirs}/backfills", data=form, headers=HTML | csrf),
    ]

    assert [a.status_code for a in answers] == [404] * len(answers)
    assert "text/html" in answers[0].headers["content-type"]
    assert str(backfill_id) not in answers[3].text
    (row,) = backfills(factory)
    assert (row.state, row.cancel_requested) == ("queued", False)
    assert "backfill.cancel" not in actions(factory)


def test_the_next_scheduled_run_is_shown_on_the_page_and_in_the_list(client, factory):
    user, _ = browser(client, factory)
    at = (utcnow() + timedelta(hours=3)).replace(second=0, microsecond=0)
    scheduled = a_source(factory, user.id, schedule="every 6h", next_run_at=at)
    manual = a_source(factory, user.id, name="Example B")
    shown = at.strftime("%Y-%m-%d %H:%M UTC")

    page = client.get(f"/sources/{scheduled}", headers=HTML)
    other = client.get(f"/sources/{manual}", headers=HTML)

    next_run = re.search(r'data-testid="next-run">(.*?)</dd>', page.text)
    assert next_run is not None
    assert shown in next_run.group(1)
    assert f'<time datetime="{at.isoformat()}">' in next_run.group(1)
    assert f'Next run <time datetime="{at.isoformat()}">{shown}</time>' in page.text  # sidebar
    assert "schedule-waiting" not in page.text
    manual_next = re.search(r'data-testid="next-run">(.*?)</dd>', other.text)
    assert manual_next is not None
    assert "manual only" in manual_next.group(1)


def test_a_schedule_waiting_for_a_spent_quota_says_until_when(client, factory):
    """Clarity allows ten export calls a project a UTC day: spent, the page says the
    schedule waits for the reset (the API's ``scheduleWaiting``)."""
    with time_machine.travel(datetime(2026, 3, 1, 15, 0, tzinfo=UTC), tick=False):
        user, _ = browser(client, factory)
        config = {"projectId": "proj-2", "apiKey": "clarity-token-0001"}
        source_id = a_source(
            factory, user.id, type="microsoft_clarity", config=config, schedule="@daily"
        )
        midnight = datetime(2026, 3, 1, tzinfo=UTC)
        with session_scope(factory) as session:
            for _ in range(10):
                take_call(session, key="microsoft_clarity:proj-2", window_start=midnight, limit=10)

        page = client.get(f"/sources/{source_id}", headers=HTML)

    assert page.status_code == 200
    notice = re.search(
        r'<div class="message message-warn" role="status" id="schedule-waiting">(.*?)</div>',
        page.text,
        re.S,
    )
    assert notice is not None, page.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", notice.group(1)))
    assert "Waiting for quota" in text
    assert "calls are used up until 2026-03-02 00:00 UTC" in text
    assert "10 of 10 calls this day are used" in text
    next_run = re.search(r'data-testid="next-run">(.*?)</dd>', page.text)
    assert next_run is not None
    assert "After the quota resets, at" in next_run.group(1)
    assert "2026-03-02 00:00 UTC" in next_run.group(1)

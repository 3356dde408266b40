"""Housekeeping on SQLite and PostgreSQL: expired login sessions and finished OAuth flows are
deleted, live sessions and every API token stay, and authentication answers exactly as before."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select, update

from inflow.api.services import accounts
from inflow.storage.db import session_scope
from inflow.storage.housekeeping import purge_expired
from inflow.storage.models import ApiToken, OAuthState, User, utcnow
from tests.factories import login, user_headers
from tests.sync.helpers import EXAMPLE_OAUTH, create_source

NOTHING = {"session": 0, "oauth_state": 0}


def issue(factory, user: User, *, kind: str, ttl_s: int | None) -> uuid.UUID:
    """A token through the real service; its row id."""
    with session_scope(factory) as session:
        owner = session.get(User, user.id)
        row, _ = accounts.issue_token(session, user=owner, name=kind, kind=kind, ttl_s=ttl_s)
        return row.id


def purge(factory, now) -> dict[str, int]:
    with session_scope(factory) as session:
        return purge_expired(session, now)


def token_ids(factory) -> set[uuid.UUID]:
    with factory() as session:
        return set(session.execute(select(ApiToken.id)).scalars())


def start_flow(client, headers, source_id: str) -> str:
    """``/api/oauth/.../authorize`` (no provider call: it only builds the URL); the state."""
    response = client.get(
        "/api/oauth/example_oauth/authorize",
        params={"sourceId": source_id},
        headers=headers,
        follow_redirects=False,
    )
    assert response.status_code == 302, response.text
    (state,) = parse_qs(urlsplit(response.headers["location"]).query)["state"]
    return state


def test_purge_deletes_expired_sessions_and_keeps_live_ones_and_api_tokens(client, factory):
    user, _ = user_headers(client, factory)  # a login: a session token for 12 hours
    (login_session,) = token_ids(factory)
    short_session = issue(factory, user, kind="session", ttl_s=60)
    short_api = issue(factory, user, kind="api", ttl_s=60)
    long_api = issue(factory, user, kind="api", ttl_s=86400)
    forever_api = issue(factory, user, kind="api", ttl_s=None)
    ten_minutes_on = utcnow() + timedelta(minutes=10)

    assert purge(factory, ten_minutes_on) == {"session": 1, "oauth_state": 0}

    assert token_ids(factory) == {login_session, short_api, long_api, forever_api}
    assert short_session not in token_ids(factory)  # an expired API token stays: its user's
    assert purge(factory, ten_minutes_on) == NOTHING  # nothing left to do
    years_on = utcnow() + timedelta(days=3650)
    assert purge(factory, years_on) == {"session": 1, "oauth_state": 0}
    assert token_ids(factory) == {short_api, long_api, forever_api}  # API tokens: never purged


def test_a_token_goes_at_the_instant_authentication_refuses_it(client, factory):
    user_headers(client, factory)
    with factory() as session:
        (expires_at,) = session.execute(select(ApiToken.expires_at)).scalars()

    # deps refuses ``expires_at <= now``; the purge takes exactly those rows
    assert purge(factory, expires_at - timedelta(microseconds=1)) == NOTHING
    assert purge(factory, expires_at) == {"session": 1, "oauth_state": 0}


def test_an_expired_token_is_the_same_401_after_the_purge_and_login_still_works(client, factory):
    user, headers = user_headers(client, factory)
    cookie = headers["Authorization"].removeprefix("Bearer ")
    with session_scope(factory) as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    bearer_before = client.get("/api/me", headers=headers)
    client.cookies.set("inflow_session", cookie)  # the web UI's way: one answer of its own
    cookie_before = client.get("/api/me")

    assert purge(factory, utcnow()) == {"session": 1, "oauth_state": 0}

    bearer_after = client.get("/api/me", headers=headers)
    cookie_after = client.get("/api/me")
    client.cookies.clear()
    for before, after in ((bearer_before, bearer_after), (cookie_before, cookie_after)):
        assert before.status_code == after.status_code == 401
        assert before.json()["detail"] == after.json()["detail"]  # no grace period needed
    again = login(client, user.email)
    assert client.get("/api/me", headers=again).json()["email"] == user.email
    assert purge(factory, utcnow()) == NOTHING  # the new session is live


def test_oauth_states_go_an_hour_after_they_expire_or_are_used(client, factory):
    _, headers = user_headers(client, factory)
    source = create_source(client, headers, "example_oauth", EXAMPLE_OAUTH)
    pending = start_flow(client, headers, source["id"])
    denied = start_flow(client, headers, source["id"])
    back = client.get(
        "/api/oauth/example_oauth/callback",
        params={"state": denied, "error": "access_denied"},
        follow_redirects=False,
    )
    assert back.status_code == 302, back.text  # the state is spent
    with factory() as session:
        rows = {row.used_at is None: row for row in session.execute(select(OAuthState)).scalars()}
    expires_at, used_at = rows[True].expires_at, rows[False].used_at
    assert used_at is not None
    hour = timedelta(hours=1)

    assert purge(factory, used_at + hour - timedelta(microseconds=1)) == NOTHING
    assert purge(factory, used_at + hour) == {"session": 0, "oauth_state": 1}
    assert purge(factory, expires_at + hour - timedelta(microseconds=1)) == NOTHING
    assert purge(factory, expires_at + hour) == {"session": 0, "oauth_state": 1}

    late = client.get(
        "/api/oauth/example_oauth/callback", params={"state": pending}, follow_redirects=False
    )
    assert late.status_code == 400  # a purged state is refused like an expired one
    assert "unknown, already used or expired" in late.json()["detail"]

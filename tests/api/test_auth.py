"""Accounts through the real API: login, the current user, API tokens, sessions and CSRF."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from inflow.api.security import csrf_token
from inflow.storage.db import session_scope
from inflow.storage.models import ApiToken, AuditEvent, User, utcnow
from tests.factories import PASSWORD, login, make_user, user_headers

PROBLEM = "application/problem+json"


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _assert_401(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == 401


# ---------------------------------------------------------------- login


def test_login_returns_token_and_user(client, factory):
    user = make_user(factory, "Ada@Example.com", role="admin")

    r = client.post("/api/auth/login", json={"email": " ada@example.COM ", "password": PASSWORD})

    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    assert body["token"].startswith("ifl_")
    assert body["user"] == {"id": str(user.id), "email": "ada@example.com", "role": "admin"}


def test_login_unknown_email_and_wrong_password_give_one_answer(client, factory):
    user = make_user(factory)

    wrong_password = client.post(
        "/api/auth/login", json={"email": user.email, "password": "not the password"}
    )
    unknown_email = client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )

    for r in (wrong_password, unknown_email):
        _assert_401(r)
        assert "token" not in r.json()
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"]


def test_login_refuses_inactive_user(client, factory):
    user = make_user(factory)
    with session_scope(factory) as session:
        session.execute(update(User).where(User.id == user.id).values(is_active=False))

    r = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})

    _assert_401(r)
    assert r.json()["detail"] == "invalid email or password"


def test_login_token_of_deactivated_user_stops_working(client, factory):
    user, headers = user_headers(client, factory)
    assert client.get("/api/me", headers=headers).status_code == 200
    with session_scope(factory) as session:
        session.execute(update(User).where(User.id == user.id).values(is_active=False))

    _assert_401(client.get("/api/me", headers=headers))


def test_passwords_are_stored_as_argon2id(client, factory):
    user = make_user(factory)
    with factory() as session:
        stored = session.execute(
            text("SELECT password_hash FROM users WHERE email = :e"), {"e": user.email}
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_me_returns_current_user(client, factory):
    user, headers = user_headers(client, factory)

    r = client.get("/api/me", headers=headers)

    assert r.status_code == 200, r.text
    assert r.json() == {"id": str(user.id), "email": user.email, "role": "member"}


# ---------------------------------------------------------------- bearer tokens


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="scheme_only"),
        pytest.param("Bearer    ", id="blank_token"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong_scheme"),
        pytest.param("Bearer ifl_not-a-real-token", id="unknown_token"),
        pytest.param("ifl_not-a-real-token", id="no_scheme"),
    ],
)
def test_auth_refuses_missing_or_garbled_authorization(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    _assert_401(client.get("/api/me", headers=headers))


def test_auth_refuses_expired_session_token(client, factory):
    user, headers = user_headers(client, factory)
    assert client.get("/api/me", headers=headers).status_code == 200
    with session_scope(factory) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.kind == "session")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    _assert_401(client.get("/api/me", headers=headers))


def test_login_session_token_expires_after_session_ttl(client, factory, settings):
    user, _ = user_headers(client, factory)
    with factory() as session:
        row = session.execute(select(ApiToken).where(ApiToken.user_id == user.id)).scalar_one()
    assert row.kind == "session"
    assert row.expires_at is not None
    remaining = (row.expires_at - utcnow()).total_seconds()
    assert settings.session_ttl_s - 60 < remaining <= settings.session_ttl_s


def test_tokens_create_shows_token_once(client, factory):
    _, headers = user_headers(client, factory)

    created = client.post("/api/tokens", headers=headers, json={"name": "ci"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "name", "token"}
    assert body["name"] == "ci"
    assert body["token"].startswith("ifl_")
    listed = client.get("/api/tokens", headers=headers)
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [body["id"]]  # the login session is not listed
    assert "token" not in listed.json()[0]
    assert body["token"] not in listed.text
    assert body["token"][10:] not in listed.text  # not even the part after the shown prefix


def test_tokens_are_stored_only_as_a_hash(client, factory):
    _, headers = user_headers(client, factory)
    body = client.post("/api/tokens", headers=headers, json={"name": "ci"}).json()

    with factory() as session:
        rows = session.execute(text("SELECT * FROM api_tokens")).mappings().all()

    assert len(rows) == 2  # the login session and the new token
    dumped = repr([dict(r) for r in rows])
    assert body["token"] not in dumped
    assert body["token"][10:20] not in dumped
    mine = next(r for r in rows if str(r["id"]).replace("-", "") == body["id"].replace("-", ""))
    assert mine["token_hash"] == hashlib.sha256(body["token"].encode()).hexdigest()


def test_tokens_created_token_authenticates(client, factory):
    user, headers = user_headers(client, factory)
    token = client.post("/api/tokens", headers=headers, json={"name": "ci"}).json()["token"]

    r = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert r.status_code == 200, r.text
    assert r.json()["id"] == str(user.id)


def test_tokens_delete_revokes_token(client, factory):
    _, headers = user_headers(client, factory)
    body = client.post("/api/tokens", headers=headers, json={"name": "ci"}).json()
    api_headers = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/me", headers=api_headers).status_code == 200

    r = client.delete(f"/api/tokens/{body['id']}", headers=headers)

    assert r.status_code == 204, r.text
    _assert_401(client.get("/api/me", headers=api_headers))
    assert client.get("/api/tokens", headers=headers).json() == []
    assert client.delete(f"/api/tokens/{body['id']}", headers=headers).status_code == 404


def test_tokens_delete_someone_elses_token_is_404(client, factory):
    _, alice = user_headers(client, factory)
    _, mallory = user_headers(client, factory)
    body = client.post("/api/tokens", headers=alice, json={"name": "ci"}).json()

    r = client.delete(f"/api/tokens/{body['id']}", headers=mallory)

    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == PROBLEM
    assert client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"}).is_success


# ---------------------------------------------------------------- web UI session cookie


@pytest.fixture
def cookie_session(client, factory):
    """A logged-in browser: the session token sits in the ``inflow_session`` cookie."""
    user = make_user(factory)
    token = _token(login(client, user.email))
    client.cookies.set("inflow_session", token)
    return user, token


def test_session_cookie_authenticates_get(client, cookie_session):
    user, _ = cookie_session

    r = client.get("/api/me")

    assert r.status_code == 200, r.text
    assert r.json()["email"] == user.email


def test_session_cookie_refuses_unknown_session(client):
    client.cookies.set("inflow_session", "ifl_not-a-session")

    _assert_401(client.get("/api/me"))


@pytest.mark.parametrize(
    "csrf",
    [
        pytest.param(None, id="missing"),
        pytest.param("0" * 64, id="wrong"),
        pytest.param("", id="empty"),
        pytest.param(b"\xe9t\xe9", id="not_ascii"),
    ],
)
def test_session_cookie_post_refuses_bad_csrf_token(client, cookie_session, csrf):
    headers = {} if csrf is None else {"X-CSRF-Token": csrf}

    r = client.post("/api/tokens", json={"name": "from-ui"}, headers=headers)

    _assert_401(r)
    with_bearer = {"Authorization": f"Bearer {cookie_session[1]}"}
    assert client.get("/api/tokens", headers=with_bearer).json() == []


def test_session_cookie_post_accepts_right_csrf_token(client, app, cookie_session):
    _, token = cookie_session

    r = client.post(
        "/api/tokens",
        json={"name": "from-ui"},
        headers={"X-CSRF-Token": csrf_token(token, app.state.csrf_key)},
    )

    assert r.status_code == 201, r.text


def test_session_cookie_csrf_token_of_another_session_is_refused(client, app, factory):
    other = make_user(factory)
    other_token = _token(login(client, other.email))
    user = make_user(factory)
    client.cookies.set("inflow_session", _token(login(client, user.email)))

    r = client.post(
        "/api/tokens",
        json={"name": "from-ui"},
        headers={"X-CSRF-Token": csrf_token(other_token, app.state.csrf_key)},
    )

    _assert_401(r)


# ---------------------------------------------------------------- roles


def test_audit_route_refuses_member_and_records_denial(client, factory):
    member, member_headers = user_headers(client, factory)
    _, admin_headers = user_headers(client, factory, role="admin")

    r = client.get("/api/audit", headers=member_headers)

    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 403
    with factory() as session:
        denied = session.execute(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).scalar_one()
    assert denied.actor == member.email
    assert denied.outcome == "denied"
    assert denied.target == "/api/audit"
    assert denied.request_id == r.headers["x-request-id"]
    assert client.get("/api/audit", headers=admin_headers).status_code == 200

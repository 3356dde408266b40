"""The web UI's login, logout, redirects and CSRF through real routes (no browser)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from inflow.api.security import csrf_token
from inflow.storage.models import AuditEvent
from inflow.web.session import local_path
from tests.factories import PASSWORD, login, make_user

HTML = {"Accept": "text/html"}


def _form_token(client) -> str:
    page = client.get("/login", headers=HTML)
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def _log_in(client, email: str, password: str = PASSWORD, next_path: str = "/sources"):
    return client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": _form_token(client),
            "next": next_path,
        },
        headers=HTML,
        follow_redirects=False,
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/metrics?x=1", "/metrics?x=1"),
        ("//evil.example/x", "/sources"),
        ("/\\evil.example", "/sources"),
        ("https://evil.example/", "/sources"),
        ("metrics", "/sources"),
        ("/a\r\nSet-Cookie: x", "/sources"),
        ("", "/sources"),
    ],
    ids=["local", "scheme-relative", "backslash", "absolute", "relative", "crlf", "empty"],
)
def test_next_is_a_local_path_only(given, expected):
    assert local_path(given) == expected


def test_login_sets_the_session_cookie_and_audits(client, factory):
    user = make_user(factory)

    r = _log_in(client, user.email, next_path="/metrics")

    assert r.status_code == 303
    assert r.headers["location"] == "/metrics"
    cookie = r.headers["set-cookie"]
    assert "inflow_session=ifl_" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here
    with factory() as session:
        events = session.execute(select(AuditEvent.action, AuditEvent.outcome)).all()
    assert ("auth.login", "success") in events


def test_login_with_wrong_password_answers_the_form_with_the_message(client, factory):
    user = make_user(factory)

    r = _log_in(client, user.email, password="wrong")

    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/html")
    assert "Invalid email or password." in r.text
    assert "inflow_session" not in r.headers.get("set-cookie", "")


def test_login_form_without_its_csrf_pair_is_refused(client, factory):
    user = make_user(factory)
    _form_token(client)  # the nonce cookie is set, but the field is forged

    r = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": "forged"},
        headers=HTML,
        follow_redirects=False,
    )

    assert r.status_code == 400
    assert "inflow_session" not in r.headers.get("set-cookie", "")


def test_a_page_without_session_redirects_to_login_and_htmx_gets_hx_redirect(client):
    plain = client.get("/metrics?g=week", headers=HTML, follow_redirects=False)
    htmx = client.get(
        "/metrics",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/spaces?x=1"},
        follow_redirects=False,
    )

    assert plain.status_code == 303
    assert plain.headers["location"] == "/login?next=/metrics%3Fg%3Dweek"
    assert htmx.status_code == 204
    assert htmx.headers["hx-redirect"] == "/login?next=/spaces%3Fx%3D1"


def test_logout_form_needs_the_csrf_field_and_deletes_the_session(client, app, factory):
    user = make_user(factory)
    token = login(client, user.email)["Authorization"].removeprefix("Bearer ")
    client.cookies.set("inflow_session", token)

    refused = client.post("/logout", data={"csrf_token": "wrong"}, headers=HTML)
    done = client.post(
        "/logout",
        data={"csrf_token": csrf_token(token, app.state.csrf_key)},
        headers=HTML,
        follow_redirects=False,
    )

    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("text/html")
    assert done.status_code == 303
    assert done.headers["location"] == "/login"
    client.cookies.clear()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_unknown_route_is_html_for_browsers_and_problem_json_for_the_api(client):
    page = client.get("/nowhere", headers=HTML)
    api = client.get("/api/nowhere", headers=HTML)
    script = client.get("/nowhere")

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at /nowhere." in page.text
    assert api.headers["content-type"] == "application/problem+json"
    assert script.headers["content-type"] == "application/problem+json"


def test_root_goes_to_the_login_or_the_app(client, factory):
    user = make_user(factory)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    client.cookies.set(
        "inflow_session", login(client, user.email)["Authorization"].removeprefix("Bearer ")
    )
    assert client.get("/", follow_redirects=False).headers["location"] == "/sources"

"""The Marketplace and Spaces pages through real routes (no browser): forms, errors, checks."""

from __future__ import annotations

import re

import pytest

from inflow.api.security import csrf_token
from inflow.api.services import accounts
from inflow.storage.db import session_scope
from inflow.storage.models import User
from tests.factories import person

HTML = {"Accept": "text/html"}


@pytest.fixture
def browser_client(client, app, factory):
    """The client with a member's session cookie; unsafe requests carry its CSRF header."""
    user, headers = person(factory)
    token = headers["Authorization"].removeprefix("Bearer ")
    client.cookies.set("inflow_session", token)
    client.headers.update(HTML | {"X-CSRF-Token": csrf_token(token, app.state.csrf_key)})
    client.user = user
    return client


def _field_error(html: str, name: str) -> str | None:
    """The message shown at a form field, if any."""
    field = re.search(rf'data-field="{name}">(.*?)</div>', html, re.S)
    assert field is not None, f"no field {name}"
    error = re.search(r'class="field-error"[^>]*>(.*?)</p>', field.group(1), re.S)
    return error.group(1) if error else None


def _install(client, service_id: str, **fields: str):
    return client.post(f"/marketplace/{service_id}/install", data=fields, follow_redirects=False)


def test_catalog_shows_every_plugin_with_an_empty_installation_list(browser_client):
    r = browser_client.get("/marketplace")

    assert r.status_code == 200
    for title in ("Power BI", "Grafana", "Looker Studio"):
        assert f"Install {title}" in r.text
    assert "Nothing installed yet" in r.text


def test_install_form_is_generated_from_the_schema_with_secrets_as_passwords(browser_client):
    r = browser_client.get("/marketplace/grafana/install")

    assert r.status_code == 200
    assert re.search(r'<input id="f-apiKey" name="apiKey" type="password"', r.text)
    assert 'id="f-baseUrl"' in r.text
    assert "A new space named after the installation" in r.text


def test_install_errors_are_shown_at_their_fields_and_secrets_are_not_echoed(browser_client):
    r = _install(
        browser_client,
        "grafana",
        name="",
        spaceId="new",
        baseUrl="not a url",
        apiKey="glsa_secret_value",
    )

    assert r.status_code == 422
    assert "glsa_secret_value" not in r.text
    assert "name" in (_field_error(r.text, "name") or "")
    assert "URL" in (_field_error(r.text, "baseUrl") or "")
    assert _field_error(r.text, "apiKey") is None
    assert 'value="not a url"' in r.text


def test_install_creates_the_installation_and_its_space(browser_client):
    r = _install(
        browser_client,
        "grafana",
        name="Ops Grafana",
        spaceId="new",
        baseUrl="https://grafana.example.com",
        apiKey="glsa_secret_value",
    )

    assert r.status_code == 303
    page = browser_client.get(r.headers["location"])
    assert page.status_code == 200
    assert "Ops Grafana" in page.text
    assert "glsa_secret_value" not in page.text
    assert "stored, never shown" in page.text
    spaces = browser_client.get("/spaces")
    assert "Ops Grafana" in spaces.text


def test_a_stranger_s_installation_and_space_are_404(browser_client, factory, client):
    r = _install(
        browser_client,
        "grafana",
        name="Mine",
        spaceId="new",
        baseUrl="https://grafana.example.com",
        apiKey="glsa_secret_value",
    )
    installation = r.headers["location"].split("?")[0]
    space = re.search(r'href="(/spaces/[0-9a-f-]+)"', browser_client.get(installation).text)
    assert space is not None
    _, other = person(factory)
    token = other["Authorization"].removeprefix("Bearer ")
    client.cookies.set("inflow_session", token)

    assert client.get(installation).status_code == 404
    assert client.get(space.group(1)).status_code == 404


def test_space_form_error_is_at_the_field(browser_client):
    r = browser_client.post("/spaces", data={"name": "  "}, follow_redirects=False)

    assert r.status_code == 422
    assert _field_error(r.text, "name") is not None


def test_created_space_has_a_useful_empty_state(browser_client):
    r = browser_client.post("/spaces", data={"name": "Growth"}, follow_redirects=True)

    assert r.status_code == 200
    assert "Nothing synced into this space yet" in r.text
    assert 'href="/marketplace"' in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/marketplace/nope/install",
        "/marketplace/twilio/install",
        "/marketplace/installations/not-a-uuid",
        "/spaces/00000000-0000-0000-0000-000000000000",
    ],
    ids=["unknown", "not-a-plugin", "bad-id", "missing-space"],
)
def test_bad_addresses_are_4xx_pages_never_500(browser_client, path):
    r = browser_client.get(path)

    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith("text/html")


def test_edit_keeps_a_secret_left_empty_and_shows_field_errors(browser_client, factory):
    r = _install(
        browser_client,
        "grafana",
        name="Ops",
        spaceId="new",
        baseUrl="https://grafana.example.com",
        apiKey="glsa_secret_value",
    )
    installation = r.headers["location"].split("?")[0]
    space_id = re.search(r'href="/spaces/([0-9a-f-]+)"', browser_client.get(installation).text)
    assert space_id is not None
    form = browser_client.get(installation + "/edit")
    assert form.status_code == 200
    assert "glsa_secret_value" not in form.text
    assert 'placeholder="Stored; leave empty to keep it"' in form.text

    bad = browser_client.post(
        installation + "/edit",
        data={"name": "Ops", "spaceId": space_id.group(1), "baseUrl": "nope", "apiKey": ""},
    )
    good = browser_client.post(
        installation + "/edit",
        data={"name": "Ops 2", "spaceId": space_id.group(1), "baseUrl": "https://g.example.com"},
        follow_redirects=False,
    )

    assert bad.status_code == 422
    assert _field_error(bad.text, "baseUrl") is not None
    assert good.status_code == 303
    page = browser_client.get(installation).text
    assert "Ops 2" in page
    assert "https://g.example.com" in page
    assert "stored, never shown" in page  # the token is still there


def test_a_report_without_an_embed_access_type_has_no_preview(browser_client):
    space = browser_client.post("/spaces", data={"name": "S"}, follow_redirects=False)
    space_path = space.headers["location"]
    missing = "00000000-0000-0000-0000-000000000000"

    r = browser_client.get(f"{space_path}/assets/{missing}/preview")
    s = browser_client.get(f"{space_path}/installations/{missing}/preview")

    assert r.status_code == 404
    assert s.status_code == 404


def test_a_space_member_sees_the_space_but_not_a_link_to_another_s_installation(
    browser_client, factory
):
    r = _install(
        browser_client,
        "grafana",
        name="Owner's Grafana",
        spaceId="new",
        baseUrl="https://grafana.example.com",
        apiKey="glsa_secret_value",
    )
    installation = r.headers["location"].split("?")[0]
    space = re.search(r'href="(/spaces/[0-9a-f-]+)"', browser_client.get(installation).text)
    assert space is not None
    member, _ = person(factory)
    added = browser_client.post(
        f"/api{space.group(1)}/members", json={"userId": str(member.id), "role": "viewer"}
    )
    assert added.status_code == 201, added.text
    with session_scope(factory) as session:
        _, token = accounts.issue_token(session, user=session.get(User, member.id), name="t")
    browser_client.cookies.set("inflow_session", token)

    page = browser_client.get(space.group(1))

    assert page.status_code == 200
    assert "Owner&#39;s Grafana" in page.text
    assert f'href="{installation}"' not in page.text
    assert "their owners can press Sync" in page.text
    assert browser_client.get(installation).status_code == 404


def test_installing_into_a_space_one_cannot_change_is_an_error_at_the_space_field(
    browser_client,
):
    r = _install(
        browser_client,
        "grafana",
        name="Ops",
        spaceId="00000000-0000-0000-0000-000000000000",
        baseUrl="https://grafana.example.com",
        apiKey="glsa_secret_value",
    )

    assert r.status_code == 422
    assert _field_error(r.text, "spaceId") == '<span aria-hidden="true">⚠</span> no such space'


def test_connect_of_an_installation_without_oauth_is_a_400_page(browser_client):
    r = _install(
        browser_client,
        "grafana",
        name="Ops",
        spaceId="new",
        baseUrl="https://grafana.example.com",
        apiKey="glsa_secret_value",
    )
    installation = r.headers["location"].split("?")[0]

    answer = browser_client.post(installation + "/connect", follow_redirects=False)

    assert answer.status_code == 400
    assert "does not connect through an OAuth consent flow" in answer.text

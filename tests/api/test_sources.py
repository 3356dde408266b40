"""Data sources through the real API: CRUD, secrets that never come back, validation errors,
spaces and strangers."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from inflow.api.services.sources import load_config
from inflow.storage.models import AuditEvent, DataSource
from tests.api.objects import (
    SECRET,
    add_member,
    assert_problem,
    create_source,
    create_space,
    field_errors,
    person,
)
from tests.factories import EXAMPLE_CONFIG

SOURCE_KEYS = {
    "id",
    "name",
    "type",
    "config",
    "webhookUrl",
    "ownerId",
    "spaceId",
    "schedule",
    "health",
    "createdAt",
    "updatedAt",
    "nextRunAt",  # scheduled sources (docs/api-additions.md, "Schedules")
    "scheduleWaiting",
}


def stored_config(app, factory, source_id: str):
    """The decrypted config, as a connector would get it."""
    with factory() as session:
        source = session.get(DataSource, uuid.UUID(source_id))
        assert source is not None
        return load_config(source, app.state.vault)


# ---------------------------------------------------------------- create and read


def test_sources_create_returns_201_with_secret_masked(client, factory):
    user, headers = person(factory)

    r = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "Site", "type": "example", "config": EXAMPLE_CONFIG, "schedule": "@daily"},
    )

    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == SOURCE_KEYS
    assert body["name"] == "Site"
    assert body["type"] == "example"
    assert body["ownerId"] == str(user.id)
    assert body["spaceId"] is None
    assert body["schedule"] == "@daily"
    assert body["config"] == {
        "apiKey": {"set": True},
        "workspace": "team-a",
        "baseUrl": "http://127.0.0.1:8900/example",
    }
    assert body["health"] == {
        "status": "unknown",
        "checkedAt": None,
        "message": None,
        "consecutiveFailures": 0,
        "paused": False,
        "pausedAt": None,
        "pausedReason": None,
        "lastAdvancedAt": None,
        "stale": False,
        "staleReason": None,
    }
    assert SECRET not in r.text


def test_sources_secret_is_stored_encrypted(client, factory, app):
    _, headers = person(factory)
    source = create_source(client, headers)

    with factory() as session:
        row = session.get(DataSource, uuid.UUID(source["id"]))
        assert row is not None
        assert SECRET not in (row.secrets or "")
        assert SECRET not in str(row.config)
        assert row.secret_names == ["apiKey"]
    assert stored_config(app, factory, source["id"]).api_key.get_secret_value() == SECRET


def test_sources_list_shows_only_your_sources(client, factory):
    _, ada_h = person(factory)
    _, bob_h = person(factory)
    _, eve_h = person(factory)
    a1 = create_source(client, ada_h, name="a1")
    a2 = create_source(client, ada_h, name="a2")
    create_source(client, bob_h, name="b1")

    assert [s["id"] for s in client.get("/api/data-sources", headers=ada_h).json()] == [
        a1["id"],
        a2["id"],
    ]
    assert client.get("/api/data-sources", headers=eve_h).json() == []


def test_sources_admin_sees_and_changes_every_source(client, factory):
    _, ada_h = person(factory)
    _, admin_h = person(factory, role="admin")
    theirs = create_source(client, ada_h, name="ada's")
    mine = create_source(client, admin_h, name="admin's")

    listed = client.get("/api/data-sources", headers=admin_h).json()

    assert {s["id"] for s in listed} == {theirs["id"], mine["id"]}
    url = f"/api/data-sources/{theirs['id']}"
    assert client.get(url, headers=admin_h).json() == theirs
    assert client.patch(url, headers=admin_h, json={"name": "renamed"}).json()["name"] == "renamed"
    assert client.delete(url, headers=admin_h).status_code == 204
    assert client.get("/api/data-sources", headers=ada_h).json() == []


def test_sources_get_patch_delete_roundtrip(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers, name="Site")
    url = f"/api/data-sources/{source['id']}"

    assert client.get(url, headers=headers).json() == source

    r = client.patch(url, headers=headers, json={"name": "Site 2", "schedule": "0 6 * * *"})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["schedule"]) == ("Site 2", "0 6 * * *")
    assert r.json()["config"] == source["config"]

    r = client.patch(url, headers=headers, json={"schedule": None})
    assert (r.json()["name"], r.json()["schedule"]) == ("Site 2", None)

    assert client.delete(url, headers=headers).status_code == 204
    assert_problem(client.get(url, headers=headers), 404)
    assert client.get("/api/data-sources", headers=headers).json() == []


# ---------------------------------------------------------------- secrets on PATCH


def test_sources_patch_keeps_omitted_secret(client, factory, app):
    _, headers = person(factory)
    source = create_source(client, headers)

    r = client.patch(
        f"/api/data-sources/{source['id']}",
        headers=headers,
        json={"config": {"workspace": "team-b"}},
    )

    assert r.status_code == 200, r.text
    assert r.json()["config"]["apiKey"] == {"set": True}
    config = stored_config(app, factory, source["id"])
    assert config.workspace == "team-b"
    assert config.api_key.get_secret_value() == SECRET


def test_sources_patch_with_echoed_set_marker_keeps_secret(client, factory, app):
    _, headers = person(factory)
    source = create_source(client, headers)
    url = f"/api/data-sources/{source['id']}"
    config = client.get(url, headers=headers).json()["config"]  # as a form would echo it

    r = client.patch(url, headers=headers, json={"config": {**config, "workspace": "team-c"}})

    assert r.status_code == 200, r.text
    stored = stored_config(app, factory, source["id"])
    assert stored.workspace == "team-c"
    assert stored.api_key.get_secret_value() == SECRET


def test_sources_patch_new_secret_replaces_it(client, factory, app):
    _, headers = person(factory)
    source = create_source(client, headers)

    r = client.patch(
        f"/api/data-sources/{source['id']}",
        headers=headers,
        json={"config": {"apiKey": "sk-rotated-987654"}},
    )

    assert r.status_code == 200, r.text
    assert r.json()["config"]["apiKey"] == {"set": True}
    assert "sk-rotated" not in r.text
    stored = stored_config(app, factory, source["id"])
    assert stored.api_key.get_secret_value() == "sk-rotated-987654"
    assert stored.workspace == "team-a"


def test_sources_patch_set_marker_on_plain_field_is_422(client, factory, app):
    _, headers = person(factory)
    source = create_source(client, headers)

    r = client.patch(
        f"/api/data-sources/{source['id']}",
        headers=headers,
        json={"config": {"workspace": {"set": True}}},
    )

    assert "config.workspace" in field_errors(r)
    assert stored_config(app, factory, source["id"]).workspace == "team-a"


def test_sources_patch_invalid_config_changes_nothing(client, factory, app):
    _, headers = person(factory)
    source = create_source(client, headers)
    url = f"/api/data-sources/{source['id']}"

    r = client.patch(
        url,
        headers=headers,
        json={"name": "renamed", "config": {"apiKey": "short", "workspace": "team-z"}},
    )

    assert list(field_errors(r)) == ["config.apiKey"]
    assert "short" not in r.text
    assert client.get(url, headers=headers).json() == source
    stored = stored_config(app, factory, source["id"])
    assert (stored.api_key.get_secret_value(), stored.workspace) == (SECRET, "team-a")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param({"workspace": "team-a"}, {"config.apiKey"}, id="missing_secret"),
        pytest.param({**EXAMPLE_CONFIG, "apiKey": "short"}, {"config.apiKey"}, id="short_secret"),
        pytest.param(
            {**EXAMPLE_CONFIG, "workspace": "Not Valid!"}, {"config.workspace"}, id="bad_pattern"
        ),
        pytest.param({**EXAMPLE_CONFIG, "foo": 1}, {"config.foo"}, id="unknown_field"),
        pytest.param({**EXAMPLE_CONFIG, "baseUrl": "not a url"}, {"config.baseUrl"}, id="bad_url"),
        pytest.param(
            {"workspace": "Not Valid!", "foo": 1},
            {"config.apiKey", "config.workspace", "config.foo"},
            id="one_entry_per_bad_field",
        ),
    ],
)
def test_sources_create_invalid_config_is_422_naming_fields(client, factory, config, expected):
    _, headers = person(factory)

    r = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "x", "type": "example", "config": config},
    )

    errors = field_errors(r)
    assert set(errors) == expected
    if "config.foo" in errors:
        assert errors["config.foo"] == "unknown field"
    assert "short" not in r.text
    assert client.get("/api/data-sources", headers=headers).json() == []


def test_an_empty_field_with_a_pattern_is_required_not_a_pattern(client, factory):
    _, headers = person(factory)
    config = {"platform": "twilio", "accountSid": "", "authToken": "x" * 32}

    r = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "x", "type": "calling", "config": config},
    )

    assert field_errors(r)["config.accountSid"] == "required"
    wrong = {**config, "accountSid": "AC1"}
    r = client.post(
        "/api/data-sources", headers=headers, json={"name": "x", "type": "calling", "config": wrong}
    )
    assert "pattern" in field_errors(r)["config.accountSid"]  # a wrong value says what fits


def test_sources_create_unknown_type_is_422_listing_known_types(client, factory):
    _, headers = person(factory)

    r = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "x", "type": "myspace", "config": {}},
    )

    errors = field_errors(r)
    assert list(errors) == ["type"]
    assert "'myspace'" in errors["type"]
    assert "example" in errors["type"]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"type": "example", "config": EXAMPLE_CONFIG}, id="missing_name"),
        pytest.param({"name": "", "type": "example", "config": EXAMPLE_CONFIG}, id="empty_name"),
        pytest.param({"name": "x", "type": "example", "config": "k=v"}, id="config_not_object"),
        pytest.param(
            {"name": "x", "type": "example", "config": EXAMPLE_CONFIG, "owner": "me"},
            id="unknown_field",
        ),
    ],
)
def test_sources_create_invalid_body_is_422(client, factory, payload):
    _, headers = person(factory)

    r = client.post("/api/data-sources", headers=headers, json=payload)

    assert len(field_errors(r)) == 1
    assert SECRET not in r.text


# ---------------------------------------------------------------- spaces


def test_sources_create_in_missing_space_is_422_naming_space_id(client, factory):
    _, headers = person(factory)

    r = client.post(
        "/api/data-sources",
        headers=headers,
        json={
            "name": "x",
            "type": "example",
            "config": EXAMPLE_CONFIG,
            "spaceId": str(uuid.uuid4()),
        },
    )

    assert list(field_errors(r)) == ["spaceId"]
    assert client.get("/api/data-sources", headers=headers).json() == []


def test_sources_create_in_stranger_space_answers_as_for_a_missing_one(client, factory):
    # Deliberately the same 422 as a missing space: a different answer (e.g. a 404) would
    # confirm that a stranger's space exists.
    _, owner_h = person(factory)
    stranger, stranger_h = person(factory)
    space = create_space(client, owner_h)

    def attempt(space_id: str):
        return client.post(
            "/api/data-sources",
            headers=stranger_h,
            json={"name": "x", "type": "example", "config": EXAMPLE_CONFIG, "spaceId": space_id},
        )

    theirs, missing = attempt(space["id"]), attempt(str(uuid.uuid4()))

    assert list(field_errors(theirs)) == ["spaceId"]
    assert theirs.json() == missing.json()
    assert client.get("/api/data-sources", headers=stranger_h).json() == []
    with factory() as session:
        denied = session.execute(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).scalar_one()
    assert (denied.actor, denied.target) == (stranger.email, f"spaces:{space['id']}")


def test_sources_space_needs_editor_role(client, factory):
    viewer, viewer_h = person(factory)
    editor, editor_h = person(factory)
    _, owner_h = person(factory)
    space = create_space(client, owner_h)
    add_member(client, owner_h, space["id"], viewer, "viewer")
    add_member(client, owner_h, space["id"], editor, "editor")
    payload = {"name": "x", "type": "example", "config": EXAMPLE_CONFIG, "spaceId": space["id"]}

    assert_problem(client.post("/api/data-sources", headers=viewer_h, json=payload), 403)
    r = client.post("/api/data-sources", headers=editor_h, json=payload)
    assert r.status_code == 201, r.text
    assert r.json()["spaceId"] == space["id"]


def test_sources_patch_moves_and_detaches_space(client, factory):
    _, headers = person(factory)
    a, b = create_space(client, headers, "A"), create_space(client, headers, "B")
    source = create_source(client, headers, spaceId=a["id"])
    url = f"/api/data-sources/{source['id']}"
    assert source["spaceId"] == a["id"]

    assert (
        client.patch(url, headers=headers, json={"spaceId": b["id"]}).json()["spaceId"] == b["id"]
    )
    assert client.patch(url, headers=headers, json={"name": "n"}).json()["spaceId"] == b["id"]
    assert client.patch(url, headers=headers, json={"spaceId": None}).json()["spaceId"] is None


def test_sources_patch_into_stranger_or_missing_space_is_422(client, factory):
    _, owner_h = person(factory)
    _, headers = person(factory)
    theirs = create_space(client, owner_h)
    source = create_source(client, headers)
    url = f"/api/data-sources/{source['id']}"

    for space_id in (theirs["id"], str(uuid.uuid4())):
        r = client.patch(url, headers=headers, json={"name": "moved", "spaceId": space_id})
        assert list(field_errors(r)) == ["spaceId"]
    assert client.get(url, headers=headers).json() == source


# ---------------------------------------------------------------- strangers


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        pytest.param("GET", None, id="get"),
        pytest.param(
            "PATCH", {"name": "mine now", "config": {"apiKey": "sk-hijack-0000"}}, id="patch"
        ),
        pytest.param("DELETE", None, id="delete"),
    ],
)
def test_sources_stranger_gets_404_and_nothing_changes(client, factory, app, method, payload):
    _, owner_h = person(factory)
    stranger, stranger_h = person(factory)
    source = create_source(client, owner_h, name="Owner's")
    missing = str(uuid.uuid4())

    theirs = client.request(
        method, f"/api/data-sources/{source['id']}", headers=stranger_h, json=payload
    )
    nothing = client.request(
        method, f"/api/data-sources/{missing}", headers=stranger_h, json=payload
    )

    body = assert_problem(theirs, 404)
    assert body["detail"].replace(source["id"], "ID") == nothing.json()["detail"].replace(
        missing, "ID"
    )
    assert "Owner's" not in theirs.text
    assert client.get(f"/api/data-sources/{source['id']}", headers=owner_h).json() == source
    assert stored_config(app, factory, source["id"]).api_key.get_secret_value() == SECRET
    with factory() as session:
        denied = session.execute(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).scalar_one()
    assert (denied.actor, denied.target) == (stranger.email, f"data_sources:{source['id']}")


# ---------------------------------------------------------------- secrets never leave


def test_sources_no_secret_in_any_response(client, factory):
    _, headers = person(factory)
    _, admin_h = person(factory, role="admin")
    rotated = "sk-rotated-secret-42"
    responses = []

    created = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "x", "type": "example", "config": EXAMPLE_CONFIG},
    )
    url = f"/api/data-sources/{created.json()['id']}"
    responses += [created, client.get(url, headers=headers)]
    responses.append(client.get("/api/data-sources", headers=headers))
    responses.append(client.patch(url, headers=headers, json={"config": {"apiKey": rotated}}))
    responses.append(client.patch(url, headers=headers, json={"config": {"apiKey": 12345678}}))
    responses.append(
        client.post(
            "/api/integrations/example/validate",
            headers=headers,
            json={"config": {"apiKey": rotated, "foo": SECRET}},
        )
    )
    responses.append(client.get("/api/data-sources", headers=admin_h))
    responses.append(client.get("/api/audit", headers=admin_h))

    assert [r.status_code for r in responses] == [201, 200, 200, 200, 422, 200, 200, 200]
    for r in responses:
        assert SECRET not in r.text
        assert rotated not in r.text
        assert "12345678" not in r.text

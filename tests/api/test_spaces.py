"""Spaces through the real API: CRUD, member roles, strangers, admins and the reports list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from inflow.storage.models import AuditEvent
from tests.api.objects import (
    add_member,
    assert_problem,
    create_source,
    create_space,
    field_errors,
    insert_asset,
    person,
)

SPACE_KEYS = {"id", "name", "description", "ownerId", "role", "createdAt", "updatedAt"}


# ---------------------------------------------------------------- CRUD


def test_spaces_create_makes_caller_owner(client, factory):
    user, headers = person(factory)

    r = client.post(
        "/api/spaces", headers=headers, json={"name": "Growth", "description": "Experiments"}
    )

    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == SPACE_KEYS
    assert body["name"] == "Growth"
    assert body["description"] == "Experiments"
    assert body["ownerId"] == str(user.id)
    assert body["role"] == "owner"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({}, "name", id="missing_name"),
        pytest.param({"name": ""}, "name", id="empty_name"),
        pytest.param({"name": "x" * 201}, "name", id="long_name"),
        pytest.param({"name": "ok", "colour": "red"}, "colour", id="unknown_field"),
    ],
)
def test_spaces_create_invalid_body_is_422_naming_field(client, factory, payload, field):
    _, headers = person(factory)

    errors = field_errors(client.post("/api/spaces", headers=headers, json=payload))

    assert field in errors
    assert client.get("/api/spaces", headers=headers).json() == []


def test_spaces_get_patch_delete_roundtrip(client, factory):
    _, headers = person(factory)
    space = create_space(client, headers)
    url = f"/api/spaces/{space['id']}"

    assert client.get(url, headers=headers).json() == space

    r = client.patch(url, headers=headers, json={"name": "Sales", "description": "Q3"})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["description"]) == ("Sales", "Q3")

    r = client.patch(url, headers=headers, json={"description": None})
    assert (r.json()["name"], r.json()["description"]) == ("Sales", None)
    assert client.get(url, headers=headers).json()["name"] == "Sales"

    r = client.delete(url, headers=headers)
    assert r.status_code == 204
    assert r.content == b""
    assert_problem(client.get(url, headers=headers), 404)
    assert client.get("/api/spaces", headers=headers).json() == []


def test_spaces_delete_leaves_its_sources_unassigned(client, factory):
    _, headers = person(factory)
    space = create_space(client, headers)
    source = create_source(client, headers, spaceId=space["id"])

    assert client.delete(f"/api/spaces/{space['id']}", headers=headers).status_code == 204

    r = client.get(f"/api/data-sources/{source['id']}", headers=headers)
    assert r.status_code == 200
    assert r.json()["spaceId"] is None


# ---------------------------------------------------------------- listing


def test_spaces_list_shows_only_spaces_you_belong_to(client, factory):
    ada, ada_h = person(factory)
    _, bob_h = person(factory)
    _, eve_h = person(factory)
    own = create_space(client, ada_h, "Ada's")
    shared = create_space(client, bob_h, "Bob's shared")
    create_space(client, bob_h, "Bob's private")
    add_member(client, bob_h, shared["id"], ada, "viewer")

    listed = client.get("/api/spaces", headers=ada_h).json()

    assert [(s["id"], s["role"]) for s in listed] == [
        (own["id"], "owner"),
        (shared["id"], "viewer"),
    ]
    assert client.get("/api/spaces", headers=eve_h).json() == []


def test_spaces_admin_sees_and_changes_every_space(client, factory):
    _, ada_h = person(factory)
    _, bob_h = person(factory)
    _, admin_h = person(factory, role="admin")
    a = create_space(client, ada_h, "A")
    b = create_space(client, bob_h, "B")

    listed = client.get("/api/spaces", headers=admin_h).json()

    assert {s["id"]: s["role"] for s in listed} == {a["id"]: "admin", b["id"]: "admin"}
    assert client.get(f"/api/spaces/{a['id']}", headers=admin_h).status_code == 200
    r = client.patch(f"/api/spaces/{a['id']}", headers=admin_h, json={"name": "A2"})
    assert r.json()["name"] == "A2"
    assert client.get(f"/api/spaces/{a['id']}/reports", headers=admin_h).json() == []
    assert client.delete(f"/api/spaces/{b['id']}", headers=admin_h).status_code == 204
    assert client.get("/api/spaces", headers=bob_h).json() == []


# ---------------------------------------------------------------- roles


def test_spaces_viewer_reads_but_cannot_change(client, factory):
    viewer, viewer_h = person(factory)
    _, owner_h = person(factory)
    space = create_space(client, owner_h, "Board")
    add_member(client, owner_h, space["id"], viewer, "viewer")
    url = f"/api/spaces/{space['id']}"

    r = client.get(url, headers=viewer_h)
    assert r.status_code == 200
    assert r.json()["role"] == "viewer"
    assert client.get(f"{url}/members", headers=viewer_h).status_code == 200
    assert client.get(f"{url}/reports", headers=viewer_h).status_code == 200

    # The viewer can see the space, so a 403 tells them nothing new (not a 404).
    assert_problem(client.patch(url, headers=viewer_h, json={"name": "Mine"}), 403)
    assert_problem(client.delete(url, headers=viewer_h), 403)
    stranger, _ = person(factory)
    assert_problem(
        client.post(
            f"{url}/members", headers=viewer_h, json={"userId": str(stranger.id), "role": "viewer"}
        ),
        403,
    )

    assert client.get(url, headers=owner_h).json()["name"] == "Board"
    members = client.get(f"{url}/members", headers=owner_h).json()
    assert str(stranger.id) not in {m["userId"] for m in members}


def test_spaces_editor_patches_but_cannot_delete(client, factory):
    editor, editor_h = person(factory)
    _, owner_h = person(factory)
    space = create_space(client, owner_h, "Board")
    add_member(client, owner_h, space["id"], editor, "editor")
    url = f"/api/spaces/{space['id']}"

    r = client.patch(url, headers=editor_h, json={"name": "Board 2"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "editor"

    body = assert_problem(client.delete(url, headers=editor_h), 403)
    assert "delete" in body["detail"]
    assert client.get(url, headers=owner_h).json()["name"] == "Board 2"


def test_spaces_editor_cannot_grant_owner_role(client, factory):
    editor, editor_h = person(factory)
    _, owner_h = person(factory)
    space = create_space(client, owner_h)
    add_member(client, owner_h, space["id"], editor, "editor")
    url = f"/api/spaces/{space['id']}"

    r = client.post(
        f"{url}/members", headers=editor_h, json={"userId": str(editor.id), "role": "owner"}
    )

    assert_problem(r, 403)
    assert client.get(url, headers=editor_h).json()["role"] == "editor"
    assert_problem(client.delete(url, headers=editor_h), 403)


def test_spaces_owner_can_add_a_co_owner_who_can_delete(client, factory):
    co, co_h = person(factory)
    _, owner_h = person(factory)
    space = create_space(client, owner_h)
    add_member(client, owner_h, space["id"], co, "owner")

    assert client.get(f"/api/spaces/{space['id']}", headers=co_h).json()["role"] == "owner"
    assert client.delete(f"/api/spaces/{space['id']}", headers=co_h).status_code == 204


# ---------------------------------------------------------------- members


def test_spaces_members_add_and_list(client, factory):
    owner, owner_h = person(factory)
    bob, _ = person(factory)
    space = create_space(client, owner_h)
    url = f"/api/spaces/{space['id']}/members"

    r = client.post(url, headers=owner_h, json={"userId": str(bob.id), "role": "editor"})
    assert r.status_code == 201, r.text
    assert r.json() == {"userId": str(bob.id), "role": "editor"}

    # Adding again changes the role; it does not add a second membership.
    r = client.post(url, headers=owner_h, json={"userId": str(bob.id)})
    assert r.json() == {"userId": str(bob.id), "role": "viewer"}

    members = client.get(url, headers=owner_h).json()
    assert sorted((m["userId"], m["role"]) for m in members) == sorted(
        [(str(owner.id), "owner"), (str(bob.id), "viewer")]
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"userId": "unknown"}, "userId", id="unknown_user"),
        pytest.param({"userId": "not-a-uuid"}, "userId", id="malformed_user_id"),
        pytest.param({}, "userId", id="missing_user_id"),
        pytest.param({"userId": "me", "role": "boss"}, "role", id="unknown_role"),
    ],
)
def test_spaces_members_invalid_body_is_422_naming_field(client, factory, payload, field):
    me, headers = person(factory)
    space = create_space(client, headers)
    substitute = {"unknown": str(uuid.uuid4()), "me": str(me.id)}
    if "userId" in payload:
        payload = {**payload, "userId": substitute.get(payload["userId"], payload["userId"])}

    errors = field_errors(
        client.post(f"/api/spaces/{space['id']}/members", headers=headers, json=payload)
    )

    assert list(errors) == [field]
    assert len(client.get(f"/api/spaces/{space['id']}/members", headers=headers).json()) == 1


# ---------------------------------------------------------------- strangers


STRANGER_CALLS = [
    pytest.param("GET", "", None, id="get"),
    pytest.param("PATCH", "", {"name": "Taken"}, id="patch"),
    pytest.param("DELETE", "", None, id="delete"),
    pytest.param("GET", "/members", None, id="members_list"),
    pytest.param("POST", "/members", {"role": "owner"}, id="members_add"),
    pytest.param("GET", "/reports", None, id="reports"),
]


@pytest.mark.parametrize(("method", "suffix", "payload"), STRANGER_CALLS)
def test_spaces_stranger_gets_404_like_a_missing_space(client, factory, method, suffix, payload):
    owner, owner_h = person(factory)
    stranger, stranger_h = person(factory)
    space = create_space(client, owner_h, "Secret plans")
    if payload is not None and suffix == "/members":
        payload = {**payload, "userId": str(stranger.id)}
    missing = str(uuid.uuid4())

    theirs = client.request(
        method, f"/api/spaces/{space['id']}{suffix}", headers=stranger_h, json=payload
    )
    nothing = client.request(
        method, f"/api/spaces/{missing}{suffix}", headers=stranger_h, json=payload
    )

    body = assert_problem(theirs, 404)
    assert body == {**assert_problem(nothing, 404), "detail": body["detail"]}
    assert body["detail"].replace(space["id"], "ID") == nothing.json()["detail"].replace(
        missing, "ID"
    )
    assert "Secret plans" not in theirs.text
    # Nothing changed, and the denial is in the audit log.
    assert client.get(f"/api/spaces/{space['id']}", headers=owner_h).json() == space
    members = client.get(f"/api/spaces/{space['id']}/members", headers=owner_h).json()
    assert [m["userId"] for m in members] == [str(owner.id)]
    with factory() as session:
        denied = session.execute(
            select(AuditEvent).where(AuditEvent.action == "permission.denied")
        ).scalar_one()
    assert denied.actor == stranger.email
    assert denied.target == f"spaces:{space['id']}"


# ---------------------------------------------------------------- reports


def test_spaces_reports_lists_live_assets_in_api_shape(client, factory):
    _, headers = person(factory)
    space = create_space(client, headers)
    other_space = create_space(client, headers, "Other")
    source = create_source(client, headers, spaceId=space["id"])
    updated = datetime(2025, 6, 7, 8, 9, 10, 123456, tzinfo=UTC)
    dashboard = insert_asset(
        factory,
        source_id=source["id"],
        space_id=space["id"],
        external_id="dash-1",
        kind="dashboard",
        name="A dashboard",
        url="https://bi.example.com/d/1",
        embed_url="https://bi.example.com/embed/d/1",
        folder="Sales/EMEA",
        updated_at=updated,
    )
    report = insert_asset(
        factory, source_id=source["id"], space_id=space["id"], name="B report", url=None
    )
    insert_asset(
        factory,
        source_id=source["id"],
        space_id=space["id"],
        name="C deleted",
        deleted_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    insert_asset(factory, source_id=source["id"], space_id=other_space["id"], name="D elsewhere")

    r = client.get(f"/api/spaces/{space['id']}/reports", headers=headers)

    assert r.status_code == 200, r.text
    items = r.json()
    for item in items:
        item["updatedAt"] = datetime.fromisoformat(item["updatedAt"])
    assert items == [
        {
            "id": str(dashboard.id),
            "sourceId": source["id"],
            "serviceId": "example",
            "externalId": "dash-1",
            "name": "A dashboard",
            "kind": "dashboard",
            "url": "https://bi.example.com/d/1",
            "embedUrl": "https://bi.example.com/embed/d/1",
            "folder": "Sales/EMEA",
            "updatedAt": updated,
            "folderId": None,
            "parent": None,
            "version": None,
            "remoteUpdatedAt": None,
            "installations": [{"sourceId": source["id"], "name": source["name"]}],
        },
        {
            "id": str(report.id),
            "sourceId": source["id"],
            "serviceId": "example",
            "externalId": report.external_id,
            "name": "B report",
            "kind": "report",
            "url": None,
            "embedUrl": None,
            "folder": None,
            "updatedAt": report.updated_at,
            "folderId": None,
            "parent": None,
            "version": None,
            "remoteUpdatedAt": None,
            "installations": [{"sourceId": source["id"], "name": source["name"]}],
        },
    ]

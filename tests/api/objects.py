"""Helpers for the spaces, data-source, integration and error tests: fast users, objects made
through the API, and assertions on problem responses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from inflow.storage.db import session_scope
from inflow.storage.models import Asset, User
from tests.factories import EXAMPLE_CONFIG
from tests.factories import person as person  # re-exported: the API tests import it here

PROBLEM = "application/problem+json"
SECRET = EXAMPLE_CONFIG["apiKey"]


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The RFC 9457 body of ``response``, after checking it is a problem with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["title"] == HTTPStatus(status).phrase
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def field_errors(response: Any) -> dict[str, str]:
    """``{field: message}`` of a 422 problem."""
    body = assert_problem(response, 422)
    return {e["field"]: e["message"] for e in body["errors"]}


def create_space(client: Any, headers: dict[str, str], name: str = "Marketing") -> dict[str, Any]:
    r = client.post("/api/spaces", headers=headers, json={"name": name})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def add_member(client: Any, headers: dict[str, str], space_id: str, user: User, role: str) -> None:
    r = client.post(
        f"/api/spaces/{space_id}/members",
        headers=headers,
        json={"userId": str(user.id), "role": role},
    )
    assert r.status_code == 201, r.text


def create_source(client: Any, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    payload = {"name": "Example", "type": "example", "config": dict(EXAMPLE_CONFIG), **fields}
    r = client.post("/api/data-sources", headers=headers, json=payload)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def insert_asset(
    factory: sessionmaker[Session], *, source_id: str, space_id: str | None, **fields: Any
) -> Asset:
    """An asset row as the sync engine will write it (the engine does not exist yet)."""
    values: dict[str, Any] = {
        "external_id": uuid.uuid4().hex,
        "kind": "report",
        "name": "Report",
        "url": "https://app.example.com/reports/1",
        "updated_at": datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
        **fields,
    }
    with session_scope(factory) as session:
        asset = Asset(
            source_id=uuid.UUID(source_id),
            space_id=uuid.UUID(space_id) if space_id else None,
            **values,
        )
        session.add(asset)
    return asset

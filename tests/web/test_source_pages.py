"""The Data Inflow pages' forms through real routes (no browser), on SQLite and PostgreSQL:
the limits the API puts on a source's name and schedule hold for the forms too."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from inflow.api.security import csrf_token
from inflow.storage.models import DataSource
from tests.factories import login, make_user

HTML = {"Accept": "text/html"}
EXAMPLE = {
    "type": "example",
    "baseUrl": "https://example.com",
    "apiKey": "sk_test_0001",
    "workspace": "demo",
}


def browser(client, factory) -> dict[str, str]:
    """A member whose session cookie is on ``client``; the CSRF header of that session."""
    user = make_user(factory)
    token = login(client, user.email)["Authorization"].removeprefix("Bearer ")
    client.cookies.set("inflow_session", token)
    return HTML | {"X-CSRF-Token": csrf_token(token, client.app.state.csrf_key)}


def names(factory) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(DataSource.name)))


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "n" * 201), ("schedule", "0" + " " * 100 + "0 * * *")],
    ids=["name", "schedule"],
)
def test_a_too_long_name_or_schedule_is_named_at_its_field_not_stored(
    client, factory, field, value
):
    headers = browser(client, factory)
    form = EXAMPLE | {"name": "QA source"} | {field: value}

    answer = client.post("/sources/new", data=form, headers=headers, follow_redirects=False)

    assert answer.status_code == 422, answer.text[:300]
    assert "at most" in answer.text
    assert names(factory) == []


def test_editing_a_source_to_a_too_long_name_keeps_the_old_one(client, factory):
    headers = browser(client, factory)
    created = client.post(
        "/sources/new",
        data=EXAMPLE | {"name": "QA source"},
        headers=headers,
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text[:300]
    source_id = created.headers["location"].split("/")[2].split("?")[0]

    answer = client.post(
        f"/sources/{source_id}/edit",
        data=EXAMPLE | {"name": "n" * 201},
        headers=headers,
        follow_redirects=False,
    )

    assert answer.status_code == 422, answer.text[:300]
    assert "at most 200 characters" in answer.text
    assert names(factory) == ["QA source"]

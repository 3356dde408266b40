"""Test data through the real services (no hand-built rows)."""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from inflow.api.security import hash_password
from inflow.api.services import accounts
from inflow.storage.db import session_scope
from inflow.storage.models import User

PASSWORD = "correct horse battery"


def make_user(
    factory: sessionmaker[Session],
    email: str | None = None,
    *,
    role: str = "member",
    password: str = PASSWORD,
) -> User:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    with session_scope(factory) as session:
        return accounts.create_user(session, email=email, password=password, role=role)


@lru_cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


def person(factory: sessionmaker[Session], *, role: str = "member") -> tuple[User, dict[str, str]]:
    """A user and the headers of an API token of theirs.

    One argon2 hash per test session instead of a hash and a login per user (each costs a few
    hundred ms); the token comes from the real service and authenticates like a login token.
    """
    with session_scope(factory) as session:
        user = User(
            email=f"user-{uuid.uuid4().hex[:8]}@example.com",
            password_hash=_password_hash(),
            role=role,
        )
        session.add(user)
        session.flush()
        _, token = accounts.issue_token(session, user=user, name="tests")
    return user, {"Authorization": f"Bearer {token}"}


def login(client: Any, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in through the API and return the Authorization header."""
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def user_headers(
    client: Any, factory: sessionmaker[Session], *, role: str = "member"
) -> tuple[User, dict[str, str]]:
    user = make_user(factory, role=role)
    return user, login(client, user.email)


EXAMPLE_CONFIG: dict[str, Any] = {"apiKey": "sk-example-123456", "workspace": "team-a"}

"""Accounts: users, login, API and session tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inflow.api.security import hash_password, hash_token, new_token, verify_password
from inflow.errors import AuthenticationError, ConflictError, NotFoundError
from inflow.storage.models import ApiToken, Role, User, utcnow


def normalise_email(email: str) -> str:
    return email.strip().lower()


def get_user_by_email(session: Session, *, email: str) -> User | None:
    return session.execute(
        select(User).where(func.lower(User.email) == normalise_email(email))
    ).scalar_one_or_none()


def create_user(session: Session, *, email: str, password: str, role: str = Role.MEMBER) -> User:
    if get_user_by_email(session, email=email) is not None:
        raise ConflictError(f"a user with email {normalise_email(email)} already exists")
    user = User(email=normalise_email(email), password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    session.flush()


def check_login(session: Session, *, email: str, password: str) -> User:
    """The user, or ``AuthenticationError`` with one message for unknown email and bad password."""
    user = get_user_by_email(session, email=email)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise AuthenticationError("invalid email or password")
    return user


def issue_token(
    session: Session, *, user: User, name: str, kind: str = "api", ttl_s: int | None = None
) -> tuple[ApiToken, str]:
    """A new token row and the token itself (shown once; only its hash is stored)."""
    token = new_token()
    row = ApiToken(
        user_id=user.id,
        name=name,
        kind=kind,
        token_hash=hash_token(token),
        prefix=token[:10],
        expires_at=utcnow() + timedelta(seconds=ttl_s) if ttl_s else None,
    )
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session, *, user: User) -> list[ApiToken]:
    return list(
        session.execute(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.kind == "api")
            .order_by(ApiToken.created_at)
        ).scalars()
    )


def revoke_token(session: Session, *, user: User, token_id: uuid.UUID) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFoundError(f"token {token_id} not found")
    session.delete(row)
    session.flush()
    return row

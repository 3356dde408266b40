"""Dependencies: the request's session, settings, vault, caller, audit recorder and limits.

The caller is found by a chain of authenticators: a ``Bearer`` token (API or login token) or the
web UI's session cookie; a cookie-authenticated request that changes state must also carry the
``X-CSRF-Token`` that belongs to that session (double-submit, HMAC-bound to the session token).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.middleware import client_ip
from inflow.api.ratelimit import Limiter
from inflow.api.security import csrf_token, hash_token
from inflow.errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError
from inflow.settings import Settings
from inflow.storage.audit import append_event
from inflow.storage.crypto import Vault
from inflow.storage.db import session_scope
from inflow.storage.models import ApiToken, Role, User, utcnow

SESSION_COOKIE = "inflow_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_session(request: Request) -> Iterator[Session]:
    """The request's session: committed when the route succeeds, rolled back when it raises."""
    with session_scope(request.app.state.session_factory) as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


def get_limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
VaultDep = Annotated[Vault, Depends(get_vault)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]


def request_ip(request: Request) -> str:
    return client_ip(request.scope, request.app.state.settings.trust_forwarded_for)


def _user_for_token(session: Session, token: str) -> User | None:
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    now = utcnow()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if not row.user.is_active:
        return None
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now  # throttled so reads don't become writes on every call
    return row.user


def _bearer_token(request: Request) -> str:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: Request, session: Session) -> User:
    """Bearer token first; then the session cookie, with CSRF checked on unsafe methods."""
    bearer = _bearer_token(request)
    if bearer:
        user = _user_for_token(session, bearer)
        if user is None:
            raise AuthenticationError("the bearer token is invalid or expired")
        return user
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        user = _user_for_token(session, cookie)
        if user is None:
            raise AuthenticationError("the session has expired; log in again")
        if request.method not in SAFE_METHODS:
            expected = csrf_token(cookie, request.app.state.csrf_key)
            given = request.headers.get(CSRF_HEADER, "")
            # bytes: compare_digest raises TypeError on non-ASCII str (a header can hold any)
            if not hmac.compare_digest(expected.encode(), given.encode()):
                raise AuthenticationError("missing or wrong CSRF token")
        return user
    raise AuthenticationError("authentication required: send 'Authorization: Bearer <token>'")


# Declares the scheme in OpenAPI (Swagger UI's "Authorize"); ``authenticate`` does the checking.
BEARER = HTTPBearer(auto_error=False, description="An API token or the token from /api/auth/login")


def current_user(
    request: Request,
    session: SessionDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
) -> User:
    user = authenticate(request, session)
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@dataclass
class Auditor:
    """Records audit events in the request's transaction, with actor, IP and request id."""

    session: Session
    request: Request

    def __call__(
        self,
        action: str,
        outcome: str = "success",
        *,
        target: str | None = None,
        actor: str | None = None,
        details: dict[str, Any] | None = None,
        commit: bool = False,
    ) -> None:
        user = getattr(self.request.state, "user", None)
        append_event(
            self.session,
            action=action,
            outcome=outcome,
            actor=actor or (user.email if user is not None else None),
            target=target,
            ip=request_ip(self.request),
            request_id=getattr(self.request.state, "request_id", None),
            details=details,
        )
        if commit:  # for failures: the event must outlive the request's rollback
            self.session.commit()


def get_auditor(request: Request, session: SessionDep) -> Auditor:
    return Auditor(session, request)


AuditDep = Annotated[Auditor, Depends(get_auditor)]


def admin_user(user: CurrentUser, audit: AuditDep, request: Request) -> User:
    if user.role != Role.ADMIN:
        audit("permission.denied", "denied", target=request.url.path, commit=True)
        raise PermissionDeniedError("this route is for admins")
    return user


AdminUser = Annotated[User, Depends(admin_user)]


def rate_limit(request: Request, session: SessionDep) -> None:
    """Every route: one moving window per (route, method, caller). The caller is the user of a
    valid token or session cookie, else the client IP: neither a made-up token nor a user's
    many tokens buy a fresh window."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    token = _bearer_token(request) or request.cookies.get(SESSION_COOKIE, "")
    user = _user_for_token(session, token) if token else None
    caller = f"u:{user.id}" if user is not None else "ip:" + request_ip(request)
    limiter: Limiter = request.app.state.limiter
    try:
        limiter.hit(
            request.app.state.settings.rate_limit_default, "route", request.method, path, caller
        )
    except ServiceUnavailableError:
        if path != "/api/health":  # health answers `redis: "unreachable"` (a SELECT 1, a ping)
            raise

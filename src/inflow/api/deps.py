"""Dependencies: the request's session, settings, vault, caller, audit recorder and limits.

The caller is found by a chain of authenticators: a ``Bearer`` token (API or login token) or the
web UI's session cookie; a cookie-authenticated request that changes state must also carry the
``X-CSRF-Token`` that belongs to that session (double-submit, HMAC-bound to the session token),
as a header or, for a plain HTML form of the web UI, as its ``csrf_token`` field.

Under load (see BENCHMARKS.md, "API under load"):
- at most ``Settings.db_concurrency`` requests hold a session at once (the others wait for a
  turn in the event loop, holding nothing), and the pool has a connection for each of them;
- the request's transaction commits before the response is sent: an acknowledged write is
  stored, and a write whose commit failed is answered with an error;
- reading a token never writes: when it was last used is kept in memory (``TokenUsage``) and
  written by a background thread in short transactions of its own;
- authentication ends its (read) transaction: nothing of it is held while the route runs.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio
from anyio.to_thread import run_sync
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from inflow.api.middleware import client_ip
from inflow.api.ratelimit import Limiter
from inflow.api.security import csrf_token, hash_token
from inflow.errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError
from inflow.logging import get_logger
from inflow.settings import Settings
from inflow.storage.audit import append_event
from inflow.storage.crypto import Vault
from inflow.storage.db import session_scope
from inflow.storage.models import ApiToken, Role, User, utcnow

log = get_logger("inflow.api")

SESSION_COOKIE = "inflow_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session: committed when the route succeeds (before the response is sent:
    the dependency's scope is "function"), rolled back when it raises or when the client has
    already hung up. A request waits for one of ``db_concurrency`` turns first, so the pool
    always has its connection."""
    async with request.app.state.db_turns:
        session: Session = request.app.state.session_factory()
        try:
            yield session
            with anyio.CancelScope(shield=True):
                if await request.is_disconnected():
                    # The client gave up (a timeout): nobody would learn that this succeeded.
                    log.info("request_abandoned", path=request.url.path)
                    await run_sync(session.rollback)
                else:
                    await run_sync(session.commit)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run_sync(session.rollback)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await run_sync(session.close)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_vault(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


def get_limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
VaultDep = Annotated[Vault, Depends(get_vault)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]


def request_ip(request: Request) -> str:
    return client_ip(request.scope, request.app.state.settings.trust_forwarded_for)


class TokenUsage:
    """When each token was last used, recorded off the request path.

    A request only notes the time in memory (once a minute per token at most); a background
    thread writes the noted times every ``every_s`` seconds in one short transaction of its own
    (and stops when nothing is left to write). A write that fails (a locked database) is
    retried at the next flushes; it never fails or slows a request."""

    RESOLUTION = timedelta(minutes=1)
    ATTEMPTS = 3  # flushes a noted time survives when the database refuses it

    def __init__(self, factory: sessionmaker[Session], every_s: float = 5.0) -> None:
        self.factory = factory
        self.every_s = every_s
        self._lock = threading.Lock()
        self._pending: dict[uuid.UUID, datetime] = {}
        self._noted: dict[uuid.UUID, datetime] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failures = 0

    def note(self, row: ApiToken, now: datetime) -> None:
        with self._lock:
            known = max(
                (t for t in (row.last_used_at, self._noted.get(row.id)) if t is not None),
                default=None,
            )
            if known is not None and now - known <= self.RESOLUTION:
                return
            self._noted[row.id] = self._pending[row.id] = now
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="inflow-token-usage", daemon=True
                )
                self._thread.start()

    def flush(self) -> int:
        """Write the noted times now; returns how many tokens were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with session_scope(self.factory) as session:
                for token_id, at in pending.items():
                    session.execute(
                        update(ApiToken)
                        .where(
                            ApiToken.id == token_id,
                            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < at),
                        )
                        .values(last_used_at=at)
                    )
        except SQLAlchemyError as exc:
            self._failures += 1
            log.warning("token_usage_not_written", error=type(exc).__name__, tokens=len(pending))
            if self._failures < self.ATTEMPTS:  # else dropped: a last use is only a hint
                with self._lock:
                    for token_id, at in pending.items():
                        self._pending.setdefault(token_id, at)
            return 0
        self._failures = 0
        return len(pending)

    def close(self) -> None:
        """Stop the thread and write what is left (at shutdown)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.flush()
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
        with self._lock:
            self._thread = None


def _user_for_token(request: Request, session: Session, token: str) -> User | None:
    """The token's user (``None`` if unknown, expired or inactive): read once per request, and
    never written (``TokenUsage`` records the use)."""
    memo: dict[str, User | None] | None = getattr(request.state, "token_users", None)
    if memo is None:
        memo = request.state.token_users = {}
    if token in memo:
        return memo[token]
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    now = utcnow()
    user: User | None = None
    live = row is not None and (row.expires_at is None or row.expires_at > now)
    if row is not None and live and row.user.is_active:
        user = row.user
        request.app.state.token_usage.note(row, now)
    # End the read (nothing was written; loaded objects stay usable: expire_on_commit=False).
    session.commit()
    memo[token] = user
    return user


def cookie_user(request: Request, session: Session) -> User | None:
    """The user of the request's session cookie (``None`` without a live one); no CSRF check:
    for the web UI's pages, which read it to choose between the app and the login page."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return _user_for_token(request, session, cookie) if cookie else None


def _bearer_token(request: Request) -> str:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: Request, session: Session) -> User:
    """Bearer token first; then the session cookie, with CSRF checked on unsafe methods."""
    bearer = _bearer_token(request)
    if bearer:
        user = _user_for_token(request, session, bearer)
        if user is None:
            raise AuthenticationError("the bearer token is invalid or expired")
        return user
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        user = _user_for_token(request, session, cookie)
        if user is None:
            raise AuthenticationError("the session has expired; log in again")
        if request.method not in SAFE_METHODS:
            expected = csrf_token(cookie, request.app.state.csrf_key)
            # The header (htmx and fetch send it), else the hidden field of a plain HTML form:
            # the web UI's page dependency parses the form and leaves its token here.
            given = request.headers.get(CSRF_HEADER) or str(getattr(request.state, "form_csrf", ""))
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
    user = _user_for_token(request, session, token) if token else None
    caller = f"u:{user.id}" if user is not None else "ip:" + request_ip(request)
    limiter: Limiter = request.app.state.limiter
    try:
        limiter.hit(
            request.app.state.settings.rate_limit_default, "route", request.method, path, caller
        )
    except ServiceUnavailableError:
        if path != "/api/health":  # health answers `redis: "unreachable"` (a SELECT 1, a ping)
            raise

"""Login, the current user and API tokens."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from inflow.api.deps import (
    AuditDep,
    Auditor,
    CurrentUser,
    LimiterDep,
    SessionDep,
    SettingsDep,
    request_ip,
)
from inflow.api.ratelimit import Limiter, LoginGuard, LoginPolicy
from inflow.api.schemas import (
    LoginRequest,
    LoginResponse,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserPublic,
)
from inflow.api.services import accounts
from inflow.errors import AuthenticationError
from inflow.settings import Settings
from inflow.storage.models import User

router = APIRouter(tags=["auth"])


def login_guard(limiter: Limiter, settings: Settings) -> LoginGuard:
    return LoginGuard(
        limiter,
        LoginPolicy(
            per_address=settings.rate_limit_login_ip,
            per_account=settings.rate_limit_login_account,
            free_failures=settings.login_free_failures,
            backoff_s=settings.login_backoff_s,
            backoff_max_s=settings.login_backoff_max_s,
            known_days=settings.login_known_days,
        ),
    )


def log_in(
    request: Request,
    session: Session,
    settings: Settings,
    limiter: Limiter,
    audit: Auditor,
    *,
    email: str,
    password: str,
) -> tuple[User, str]:
    """Check a login through the ``LoginGuard`` (rate limits, back-off) and audit it; the user
    and a new session token. The API's login and the web UI's login form both call this."""
    email = accounts.normalise_email(email)
    address = request_ip(request)
    guard = login_guard(limiter, settings)
    guard.check(email, address)
    try:
        user = accounts.check_login(session, email=email, password=password)
    except AuthenticationError:
        guard.failed(email, address)
        audit("auth.login", "failure", actor=email, commit=True)
        raise
    guard.succeeded(email, address)
    _, token = accounts.issue_token(
        session, user=user, name="login", kind="session", ttl_s=settings.session_ttl_s
    )
    audit("auth.login", "success", actor=user.email, target=f"users:{user.id}")
    return user, token


@router.post("/api/auth/login", operation_id="auth-login")
def login(
    body: LoginRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    audit: AuditDep,
) -> LoginResponse:
    """Exchange email and password for a bearer token."""
    user, token = log_in(
        request, session, settings, limiter, audit, email=body.email, password=body.password
    )
    return LoginResponse(token=token, user=UserPublic.model_validate(user))


@router.get("/api/me", operation_id="auth-me")
def me(user: CurrentUser) -> UserPublic:
    """The current user."""
    return UserPublic.model_validate(user)


@router.get("/api/tokens", operation_id="tokens-list")
def list_tokens(user: CurrentUser, session: SessionDep) -> list[TokenPublic]:
    """Your API tokens (never the token values)."""
    return [TokenPublic.model_validate(t) for t in accounts.list_tokens(session, user=user)]


@router.post("/api/tokens", status_code=201, operation_id="tokens-create")
def create_token(
    body: TokenCreate, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> TokenCreated:
    """Create an API token; the token is shown this once."""
    row, token = accounts.issue_token(session, user=user, name=body.name)
    audit("token.create", target=f"api_tokens:{row.id}", details={"name": body.name})
    return TokenCreated(id=row.id, name=row.name, token=token)


@router.delete("/api/tokens/{token_id}", status_code=204, operation_id="tokens-delete")
def delete_token(
    token_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Revoke one of your API tokens."""
    accounts.revoke_token(session, user=user, token_id=token_id)
    audit("token.delete", target=f"api_tokens:{token_id}")
    return Response(status_code=204)

"""The pages: ``/`` (to the app or the login), ``/login``, ``/logout`` and the top bar's
sections. A section lives in a module of its own with its ``router``, included here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete

from inflow.api.deps import (
    SESSION_COOKIE,
    AuditDep,
    LimiterDep,
    SessionDep,
    SettingsDep,
)
from inflow.api.routes.auth import log_in
from inflow.api.security import hash_token
from inflow.errors import AuthenticationError, RateLimitExceededError
from inflow.storage.models import ApiToken
from inflow.web import backfills, experiments, marketplace, metrics, runs, sources, spaces
from inflow.web import session as web_session
from inflow.web.session import PageUser, local_path, optional_user
from inflow.web.templating import render

router = APIRouter(include_in_schema=False)
router.include_router(runs.router)
router.include_router(marketplace.router)
router.include_router(spaces.router)
router.include_router(metrics.router)
router.include_router(experiments.router)
router.include_router(sources.router)
router.include_router(backfills.router)
HOME = "/sources"


@router.get("/")
def index(request: Request, session: SessionDep) -> RedirectResponse:
    user = optional_user(request, session)
    return RedirectResponse(HOME if user is not None else "/login", status_code=303)


def _login_page(
    request: Request,
    *,
    next_path: str,
    email: str = "",
    error: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    nonce, field = web_session.login_nonce(request)
    response = render(
        request,
        "login.html",
        {"next": next_path, "email": email, "error": error, "login_csrf": field},
        status_code=status_code,
        headers=headers,
    )
    web_session.set_login_nonce(response, request, nonce)
    return response


@router.get("/login")
def login_form(request: Request, session: SessionDep, next: str = HOME) -> Response:  # noqa: A002
    if optional_user(request, session) is not None:
        return RedirectResponse(local_path(next, HOME), status_code=303)
    return _login_page(request, next_path=local_path(next, HOME))


@router.post("/login")
def login_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    audit: AuditDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,  # noqa: A002 - the query's name
) -> Response:
    next_path = local_path(next, HOME)
    request.state.user = None
    if not web_session.login_csrf_ok(request, csrf_token):
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error="The form had expired. Please log in again.",
            status_code=400,
        )
    try:
        _, token = log_in(
            request, session, settings, limiter, audit, email=email, password=password
        )
    except RateLimitExceededError as exc:
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error=f"Too many attempts. Try again in {exc.retry_after} seconds.",
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except AuthenticationError as exc:
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error=exc.message.capitalize() + ".",
            status_code=401,
        )
    response = RedirectResponse(next_path, status_code=303)
    web_session.set_session_cookie(response, request, token, settings.session_ttl_s)
    response.delete_cookie(web_session.LOGIN_NONCE_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: PageUser, session: SessionDep, audit: AuditDep) -> Response:
    """End this browser's session: its token is deleted, not only the cookie."""
    token = request.cookies.get(SESSION_COOKIE, "")
    session.execute(delete(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    audit("auth.logout", target=f"users:{user.id}")
    response = RedirectResponse("/login", status_code=303)
    web_session.clear_session_cookie(response, request)
    return response

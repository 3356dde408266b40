"""Who is calling a page: the session cookie, its CSRF token, and the login form's own CSRF.

A page request without a valid session is sent to ``/login?next=<path>`` (an htmx request gets
an ``HX-Redirect`` to it instead, so the whole page changes, not a fragment). A request that
changes state must carry the session's CSRF token: htmx sends it as the ``X-CSRF-Token`` header
(``hx-headers`` on ``<body>``), a plain form as its hidden ``csrf_token`` field; ``authenticate``
in ``inflow.api.deps`` checks either.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response

from inflow.api.deps import SAFE_METHODS, SESSION_COOKIE, SessionDep, authenticate, cookie_user
from inflow.api.security import csrf_token
from inflow.storage.models import User

CSRF_FIELD = "csrf_token"
# The login form has no session yet. Its CSRF protection is a signed double-submit cookie: GET
# /login sets a random nonce in this cookie (HttpOnly, SameSite=Strict) and puts the nonce's
# HMAC (the server's CSRF key) in the form; POST /login accepts only a pair that matches. A
# cross-site page can neither read the cookie nor forge the HMAC for a nonce it planted.
LOGIN_NONCE_COOKIE = "inflow_login_nonce"


class LoginRequired(Exception):  # noqa: N818 - a control-flow signal, handled as a redirect
    """No valid session: the handler sends the browser to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def local_path(value: str | None, default: str = "/sources") -> str:
    """``value`` if it is a path on this site (``/x?y``), else ``default``: a login's ``next``
    never sends anyone to another host (``//evil.example``, ``https://…``, ``/\\evil``)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(c in value for c in "\r\n\t"):
        return default
    return value


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(local_path(next_path), safe="/")


async def _form_csrf(request: Request) -> None:
    """A plain form's ``csrf_token`` field, left where ``authenticate`` looks for it."""
    if request.method in SAFE_METHODS:
        return
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        token = form.get(CSRF_FIELD)
        request.state.form_csrf = token if isinstance(token, str) else ""


def page_user(
    request: Request, session: SessionDep, _form: Annotated[None, Depends(_form_csrf)]
) -> User:
    """The page's user; ``LoginRequired`` without a live session, ``AuthenticationError`` (a 401)
    for a state change without the session's CSRF token."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request") == "true":  # come back to the page, not its fragment
        current = urlsplit(request.headers.get("hx-current-url", ""))
        here = local_path(current.path + (f"?{current.query}" if current.query else ""), here)
    if cookie_user(request, session) is None:
        raise LoginRequired(here)
    user = authenticate(request, session)  # checks the CSRF token on unsafe methods
    # Detached, so a rollback (a page that fails) does not expire it: the error page that
    # follows still shows the layout with the user's email.
    session.expunge(user)
    request.state.user = user
    return user


PageUser = Annotated[User, Depends(page_user)]


def optional_user(request: Request, session: SessionDep) -> User | None:
    """The session's user, or ``None`` (the login page and ``/``)."""
    user = cookie_user(request, session)
    request.state.user = user
    return user


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str, ttl_s: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request)
    )


def login_nonce(request: Request) -> tuple[str, str]:
    """A fresh nonce for the login form's cookie, and the form's field value (its HMAC)."""
    nonce = secrets.token_urlsafe(24)
    return nonce, csrf_token(nonce, request.app.state.csrf_key)


def set_login_nonce(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_NONCE_COOKIE,
        nonce,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def login_csrf_ok(request: Request, given: str) -> bool:
    nonce = request.cookies.get(LOGIN_NONCE_COOKIE, "")
    if not nonce:
        return False
    expected = csrf_token(nonce, request.app.state.csrf_key)
    return hmac.compare_digest(expected.encode(), given.encode())

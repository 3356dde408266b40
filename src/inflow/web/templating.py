"""The Jinja2 environment of the pages and ``render()``, which gives every template the
layout's context: the user, the CSRF token, the navigation and the current section."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from inflow import __version__
from inflow.api.security import csrf_token
from inflow.storage.models import User
from inflow.sync.attention import freshness
from inflow.web.forms import shown_value

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")


@dataclass(frozen=True)
class Section:
    """A section of the top bar."""

    key: str
    label: str
    path: str


NAV = (
    Section("sources", "Data Inflow", "/sources"),
    Section("marketplace", "Marketplace", "/marketplace"),
    Section("spaces", "Spaces", "/spaces"),
    Section("metrics", "Metrics", "/metrics"),
    Section("tests", "Tests", "/tests"),
    Section("runs", "Runs", "/runs"),
)


def _when(value: datetime | None) -> str:
    """A moment as people read it (UTC, minutes)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


def _number(value: float | None) -> str:
    if value is None:
        return "\u2013"  # an en dash: no value
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


templates.env.filters["when"] = _when
templates.env.filters["number"] = _number
templates.env.globals["version"] = __version__
templates.env.globals["shown_value"] = shown_value
templates.env.globals["nav"] = NAV
templates.env.globals["freshness"] = freshness  # a source's data: when it last advanced, stale


def page_csrf(request: Request) -> str:
    """The CSRF token of the request's session (empty without one)."""
    cookie = request.cookies.get("inflow_session", "")
    return csrf_token(cookie, request.app.state.csrf_key) if cookie else ""


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A template with the layout's context (``user``, ``csrf``, ``section``) added."""
    full: dict[str, Any] = {
        "user": getattr(request.state, "user", None),
        "csrf": page_csrf(request),
        "section": None,
        "htmx": is_htmx(request),
    }
    full.update(context or {})
    return templates.TemplateResponse(
        request, template, full, status_code=status_code, headers=headers
    )


__all__ = ["NAV", "STATIC_DIR", "Section", "User", "is_htmx", "render", "templates"]

"""HTML answers for browsers: an error page (or, for htmx, a message in the page's flash area)
where the API answers problem+json. ``/api`` and clients that do not ask for HTML keep the
API's answers unchanged: each of its handlers is wrapped, not replaced."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from inflow.web.session import LoginRequired, login_url
from inflow.web.templating import is_htmx, render

Handler = Callable[[Request, Exception], Awaitable[Response]]
AnyHandler = Callable[[Request, Any], Response | Awaitable[Response]]


def wants_html(request: Request) -> bool:
    """A browser's page or htmx request (never ``/api``: its clients read problem+json)."""
    if request.url.path.startswith("/api/") or request.url.path == "/api":
        return False
    return is_htmx(request) or "text/html" in request.headers.get("accept", "")


def _as_html(original: AnyHandler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        answer = original(request, exc)
        if inspect.isawaitable(answer):
            answer = await answer
        if not wants_html(request):
            return answer
        try:
            problem = json.loads(bytes(answer.body))
        except ValueError:
            problem = {}
        status = answer.status_code
        title = problem.get("title") or HTTPStatus(status).phrase
        detail = problem.get("detail") or title
        if status == 404 and not is_htmx(request):
            detail = f"There is no page at {request.url.path}."
        headers = {k: v for k, v in answer.headers.items() if k.lower() in ("retry-after",)}
        if is_htmx(request):  # shown in the layout's flash area, whatever the target was
            headers |= {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
            return render(
                request,
                "partials/problem.html",
                {"title": title, "detail": detail, "status": status},
                status_code=status,
                headers=headers,
            )
        return render(
            request,
            "error.html",
            {"title": title, "detail": detail, "status": status},
            status_code=status,
            headers=headers,
        )

    return handler


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)  # noqa: S101 - registered for LoginRequired only
    target = login_url(exc.next_path)
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def install(app: FastAPI) -> None:
    """Wrap each handler ``inflow.api.errors.install`` registered; add the login redirect."""
    for key, original in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _as_html(original)
    app.add_exception_handler(LoginRequired, _login_required)

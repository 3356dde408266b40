"""`create_app()`: every emulator under `/{slug}`, the `/_sandbox` control routes, the faults."""

from __future__ import annotations

import time
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.responses import Response

from inflow.sandbox import control
from inflow.sandbox.emulator import Emulator, Reject, unknown_route
from inflow.sandbox.middleware import SandboxMiddleware
from inflow.sandbox.registry import EMULATORS
from inflow.sandbox.state import Clock, Sandbox


async def _answer_reject(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Reject)  # noqa: S101 (registered for Reject only)
    return exc.response


async def _answer_http_error(request: Request, exc: Exception) -> Response:
    """A path under an emulator's prefix that matches no route gets the provider's own
    not-found answer; everything else (the control routes, unknown prefixes) FastAPI's."""
    assert isinstance(exc, HTTPException)  # noqa: S101 (registered for HTTPException only)
    if exc.status_code == 404 and request.scope.get("endpoint") is None:
        path: str = request.scope["path"]
        root: str = request.scope.get("root_path", "")
        path = path[len(root) :] if root and path.startswith(root) else path
        slug, _, rest = path[1:].partition("/")
        emulators: Mapping[str, Emulator] = request.app.state.emulators
        if slug in emulators:
            return unknown_route(emulators[slug], f"/{rest}")
    return await http_exception_handler(request, exc)


def create_app(
    *, emulators: Mapping[str, Emulator] | None = None, clock: Clock = time.time
) -> FastAPI:
    """The sandbox app: `http://host:P/example` is the example API's root.

    Each app has its own state (config, stats, tokens). `clock` (epoch seconds) drives token
    and code expiry, Retry-After bookkeeping, stats and "today"; tests may pass a fake one.
    """
    emulators = EMULATORS if emulators is None else emulators
    app = FastAPI(title="Inflow sandbox", description="Provider emulators for Inflow.")
    sandbox = Sandbox(emulators, clock)
    app.state.sandbox = sandbox
    app.state.emulators = emulators
    app.include_router(control.router)
    for slug, emulator in emulators.items():
        app.include_router(emulator.router, prefix=f"/{slug}")
    app.add_exception_handler(Reject, _answer_reject)
    app.add_exception_handler(HTTPException, _answer_http_error)
    app.add_middleware(SandboxMiddleware, sandbox=sandbox, schema=app.openapi)
    return app

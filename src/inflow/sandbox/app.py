"""`create_app()`: every emulator under `/{slug}`, the `/_sandbox` control routes, the faults."""

from __future__ import annotations

import time
from collections.abc import Mapping

from fastapi import FastAPI, Request
from starlette.responses import Response

from inflow.sandbox import control
from inflow.sandbox.emulator import Emulator, Reject
from inflow.sandbox.middleware import SandboxMiddleware
from inflow.sandbox.registry import EMULATORS
from inflow.sandbox.state import Clock, Sandbox


async def _answer_reject(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Reject)  # noqa: S101 (registered for Reject only)
    return exc.response


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
    app.include_router(control.router)
    for slug, emulator in emulators.items():
        app.include_router(emulator.router, prefix=f"/{slug}")
    app.add_exception_handler(Reject, _answer_reject)
    app.add_middleware(SandboxMiddleware, sandbox=sandbox, schema=app.openapi)
    return app

"""ASGI middleware: a request id on every request and log line; the request body size cap."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inflow.api.errors import problem
from inflow.logging import get_logger

log = get_logger("inflow.access")
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: "$" would let "id\n" in


class RequestContextMiddleware:
    """Binds ``request_id`` (from ``X-Request-ID`` when sane, else new) and logs each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()


class BodyTooLarge(HTTPException):  # an HTTPException, so FastAPI passes it through
    """Raised from ``receive()`` when a streamed body passes the cap; rendered as a 413 problem."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {max_bytes} bytes")


class BodySizeLimitMiddleware:
    """Refuses a body over ``max_bytes`` with 413, by Content-Length or while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, f"the request body is larger than the limit of {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


def client_ip(scope: Scope, trust_forwarded_for: bool) -> str:
    """The caller's address. Behind a trusted proxy, the last ``X-Forwarded-For`` entry: the one
    the proxy appended (entries before it are whatever the client chose to send)."""
    if trust_forwarded_for:
        forwarded = dict(scope["headers"]).get(b"x-forwarded-for")
        if forwarded:
            last = str(forwarded.decode("latin-1")).split(",")[-1].strip()
            if last:
                return last[:64]
    client = scope.get("client")
    return str(client[0]) if client else "unknown"

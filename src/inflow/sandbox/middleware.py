"""The ASGI middleware in front of every emulator: stats, faults, rate-limit headers.

For a request under `/{slug}/...` it counts the arrival, decides the fault (`faults.decide`),
sleeps, answers an injected 429/500/503 itself, or runs the handler and then adds the
emulator's rate-limit headers, records the status, and truncates, drops or mutates the body
when asked (a mutation only touches a 2xx JSON body).
`/_sandbox/*` and unknown prefixes pass straight through.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inflow.sandbox.emulator import OrjsonResponse, RateLimitHeaders, json_response
from inflow.sandbox.faults import (
    FAULT_HEADER,
    NO_FAULTS_KEY,
    Decision,
    UnknownFaultError,
    count_in_window,
    decide,
    mutate,
    mutation_seed,
)
from inflow.sandbox.state import EmulatorState, Sandbox

FAULT_MESSAGES = {
    429: "Too many requests; retry later.",
    500: "Internal server error.",
    503: "The service is temporarily unavailable.",
}
DEFAULT_RATE_HEADERS = RateLimitHeaders()


class DroppedConnectionError(Exception):
    """Raised mid-response to kill the connection (the `drop` fault)."""


@dataclass(frozen=True)
class _Endpoint:
    method: str
    regex: re.Pattern[str]
    template: str  # the path template below the emulator's prefix, for stats
    faults: bool


class SandboxMiddleware:
    """Stats and fault injection for every emulator of one sandbox app.

    Endpoints are read from the app's OpenAPI schema (paths with prefixes, and each
    operation's `x-sandbox-faults` flag), which stays stable however the framework nests
    included routers.
    """

    def __init__(
        self, app: ASGIApp, sandbox: Sandbox, schema: Callable[[], Mapping[str, Any]]
    ) -> None:
        self.app, self.sandbox, self.schema = app, sandbox, schema
        self._endpoints: dict[str, list[_Endpoint]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        slug = path.split("/", 2)[1] if path.startswith("/") and len(path) > 1 else ""
        state = self.sandbox.states.get(slug)
        if state is None:
            await self.app(scope, receive, send)
            return
        endpoint = self._match(slug, scope["method"], path)
        template = endpoint.template if endpoint else path[len(slug) + 1 :]
        client = _client_key(scope)
        now = self.sandbox.clock()
        state.stats.record_arrival(client, f"{scope['method']} {template}", now)
        reply = _Reply(state, self.sandbox, client, send)
        try:
            header = Headers(scope=scope).get(FAULT_HEADER)
            faults = endpoint.faults if endpoint else True
            decision = decide(state, header, now) if faults else Decision()
        except UnknownFaultError as exc:
            await json_response({"sandboxError": str(exc)}, 400)(scope, receive, reply.send)
            return
        if decision.header_fault is not None:
            scope.setdefault("state", {})["sandbox_fault"] = decision.header_fault
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        if decision.status is not None:
            response = _fault_response(state, decision, now)
            await response(scope, receive, reply.send)
            return
        reply.mangle = decision.mangle
        if decision.mangle is None and faults:
            query = scope.get("query_string", b"").decode("latin-1")
            target = unquote(f"{scope['method']} {path}?{query}")
            seed = mutation_seed(state, scope["method"], target)
            if seed is not None:
                reply.mangle, decision = "mutate", Decision(mutate_seed=seed)
        reply.mutate_seed = decision.mutate_seed
        reply.label = f"{scope['method']} {template}"
        await self.app(scope, receive, reply.send)

    def _match(self, slug: str, method: str, path: str) -> _Endpoint | None:
        if self._endpoints is None:
            self._endpoints = _read_endpoints(self.schema())
        for endpoint in self._endpoints.get(slug, ()):
            if endpoint.method == method and endpoint.regex.match(path):
                return endpoint
        return None


def _read_endpoints(schema: Mapping[str, Any]) -> dict[str, list[_Endpoint]]:
    """Every operation of the schema, grouped by the first path segment (the slug)."""
    out: dict[str, list[_Endpoint]] = {}
    for path, operations in schema.get("paths", {}).items():
        slug, _, rest = path[1:].partition("/")
        regex, _, _ = compile_path(path)
        for method, op in operations.items():
            faults = not (isinstance(op, dict) and op.get(NO_FAULTS_KEY) is False)
            endpoint = _Endpoint(method.upper(), regex, f"/{rest}", faults)
            out.setdefault(slug, []).append(endpoint)
    return out


class _Reply:
    """Wraps `send`: adds headers, records the status, mangles the body when asked."""

    def __init__(self, state: EmulatorState, sandbox: Sandbox, client: str, send: Send) -> None:
        self.state, self.sandbox, self.client, self._send = state, sandbox, client, send
        self.mangle: str | None = None
        self.mutate_seed: int | None = None
        self.label = ""
        self.start: Message | None = None
        self.body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body" and self.mangle is not None:
            self.body += message.get("body", b"")
            if not message.get("more_body", False):
                await self._send_mangled()
        else:
            await self._send(message)

    async def _start(self, message: Message) -> None:
        now = self.sandbox.clock()
        headers = MutableHeaders(scope=message)
        names = self.state.emulator.rate_limit_headers
        if names is not None:
            limit = self.state.volume_of("ratePerSecond") or names.limit
            remaining = max(0, limit - count_in_window(self.state, now))
            headers.setdefault(names.limit_header, str(limit))
            headers.setdefault(names.remaining_header, str(remaining))
            headers.setdefault(names.reset_header, str(int(now) + 1))
        status: int = message["status"]
        retry_after = headers.get("retry-after")
        retry_s = float(retry_after) if retry_after and retry_after.isdigit() else None
        self.state.stats.record_response(self.client, status, retry_s, now)
        if self.mangle is not None and status >= 300:
            self.mangle = None  # only successful bodies are cut
        if self.mangle == "mutate" and "json" not in headers.get("content-type", ""):
            self.mangle = None  # only JSON is mutated
        if self.mangle is None:
            await self._send(message)
        else:
            self.start = message

    async def _send_mangled(self) -> None:
        assert self.start is not None  # noqa: S101 (the start message always comes first)
        headers = MutableHeaders(scope=self.start)
        if self.mangle == "mutate":
            await self._send_mutated(headers)
            return
        if self.mangle == "truncate":
            cut = self.body[: len(self.body) // 2]
            headers["content-length"] = str(len(cut))
            await self._send(self.start)
            await self._send({"type": "http.response.body", "body": cut})
            return
        headers["content-length"] = str(len(self.body))
        await self._send(self.start)
        half = self.body[: len(self.body) // 2]
        await self._send({"type": "http.response.body", "body": half, "more_body": True})
        raise DroppedConnectionError("sandbox fault: connection dropped mid-response")

    async def _send_mutated(self, headers: MutableHeaders) -> None:
        assert self.start is not None  # noqa: S101 (the start message always comes first)
        body = self.body
        try:
            data = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            data = None
        if data is not None:
            changed, what = mutate(data, self.mutate_seed or 0, self.state.faults.mutate_kinds)
            body = orjson.dumps(changed)
            self.state.stats.record_mutation(f"{self.label}: {what}")
        headers["content-length"] = str(len(body))
        await self._send(self.start)
        await self._send({"type": "http.response.body", "body": body})


def _fault_response(state: EmulatorState, decision: Decision, now: float) -> OrjsonResponse:
    status = decision.status or 500
    body = state.emulator.error_body(status, FAULT_MESSAGES.get(status, "Error."))
    headers: dict[str, str] = {}
    if status == 429:
        retry = decision.retry_after_s or 0
        names = state.emulator.rate_limit_headers or DEFAULT_RATE_HEADERS
        headers = {
            "Retry-After": str(retry),
            names.limit_header: str(state.volume_of("ratePerSecond") or names.limit),
            names.remaining_header: "0",
            names.reset_header: str(int(now + retry)),
        }
    return json_response(body, status, headers)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (as Starlette's router sees it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _client_key(scope: Scope) -> str:
    auth = Headers(scope=scope).get("authorization")
    if auth:
        return auth
    client = scope.get("client")
    return str(client[0]) if client else "unknown"

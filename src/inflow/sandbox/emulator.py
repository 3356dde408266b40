"""What an emulator declares, and the few response helpers every emulator shares.

An emulator is data plus a router: `Emulator(slug, router, credentials, ...)`. Its handlers read
their live configuration (seed, volume, faults, issued tokens) with `get_state(request, slug)`
and refuse a request by raising `Reject(response)`, so each provider keeps its own error body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias, get_args

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from inflow.sandbox.oauth import OAuthServer
    from inflow.sandbox.state import EmulatorState

# Read-only (covariant) containers, so a `dict[str, int]` is a JSONObject without a copy.
JSONValue: TypeAlias = (
    None | bool | int | float | str | Sequence["JSONValue"] | Mapping[str, "JSONValue"]
)
JSONObject: TypeAlias = Mapping[str, JSONValue]

FaultKind = Literal[
    "rate_limit",
    "server_error",
    "unavailable",
    "truncate",
    "drop",
    "expired_token",
    "slow",
    "mutate",
]
ALL_FAULTS: frozenset[FaultKind] = frozenset(get_args(FaultKind))

Credentials = Callable[[str], JSONObject]
"""base URL of the emulator's prefix → a complete working config for an Inflow data source."""
Expected = Callable[["EmulatorState", Mapping[str, str]], JSONObject]
"""(live state, query parameters) → the exact values the emulator's data implies."""
ErrorBody = Callable[[int, str], JSONObject]
"""(HTTP status, message) → the provider's error body, for injected 429/500/503 faults."""
NotFound = Callable[[str], tuple[int, JSONObject]]
"""(path below the emulator's prefix) → the status and body the provider answers for a route
it does not have; without one an emulator answers `error_body(404, "Not Found")`."""


def generic_error_body(status: int, message: str) -> JSONObject:
    """A plain `{"error": {"code", "message"}}` body, for emulators without their own shape."""
    return {"error": {"code": str(status), "message": message}}


@dataclass(frozen=True)
class RateLimitHeaders:
    """The `X-RateLimit-*` headers an emulator adds to every response.

    `limit` is the nominal requests-per-second a client is told about while the real limit
    (`volume.ratePerSecond`) is off; when that is set, the headers report it instead.
    """

    limit: int = 100
    limit_header: str = "X-RateLimit-Limit"
    remaining_header: str = "X-RateLimit-Remaining"
    reset_header: str = "X-RateLimit-Reset"


@dataclass(frozen=True)
class Emulator:
    """One provider's emulator, mounted under `/{slug}` by `create_app()`.

    `default_volume` names every volume key the emulator understands (others are refused);
    `ratePerSecond` there turns on the framework's real per-second limit. `faults` lists the
    fault kinds that make sense for this provider (`expired_token` only with OAuth, say).
    `not_found` is the provider's answer to a route it does not have (never FastAPI's
    `{"detail": "Not Found"}`).
    """

    slug: str
    router: APIRouter
    credentials: Credentials
    expected: Expected | None = None
    default_seed: int = 1
    default_volume: Mapping[str, int] = field(default_factory=dict)
    faults: frozenset[FaultKind] = ALL_FAULTS
    error_body: ErrorBody = generic_error_body
    not_found: NotFound | None = None
    rate_limit_headers: RateLimitHeaders | None = None
    oauth: OAuthServer | None = None


def unknown_route(emulator: Emulator, path: str) -> Response:
    """The provider's own answer to a path under its prefix that matches no route."""
    if emulator.not_found is None:
        return json_response(emulator.error_body(404, "Not Found"), 404)
    status, body = emulator.not_found(path)
    return json_response(body, status)


class Reject(Exception):  # noqa: N818 (a control-flow signal carrying a response, not an error)
    """Raised by a handler or dependency to answer with `response` right away."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class OrjsonResponse(JSONResponse):
    """A JSON response rendered by orjson (fast enough for 10,000-row pages)."""

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def json_response(
    body: JSONValue, status: int = 200, headers: Mapping[str, str] | None = None
) -> OrjsonResponse:
    """`body` as an orjson-rendered JSON response."""
    return OrjsonResponse(body, status_code=status, headers=dict(headers or {}))


def base_url(request: Request, slug: str) -> str:
    """The absolute URL of `/{slug}` as the client reached this sandbox (mounts included).

    Built from this app's own `root_path`: Starlette's `request.base_url` is the outermost
    app's root, which is wrong when the sandbox is mounted inside another app (`inflow demo`).
    """
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{root}/{slug}"

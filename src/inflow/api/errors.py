"""The one mapping from errors to HTTP: RFC 9457 ``application/problem+json`` everywhere."""

from __future__ import annotations

import re
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inflow import errors as e
from inflow.logging import get_logger

log = get_logger(__name__)

PROBLEM = "application/problem+json"

STATUS: list[tuple[type[e.InflowError], int]] = [
    (e.ValidationFailedError, 422),
    (e.AuthenticationError, 401),
    (e.PermissionDeniedError, 403),
    (e.NotFoundError, 404),
    (e.ConflictError, 409),
    (e.BadRequestError, 400),
    (e.PayloadTooLargeError, 413),
    (e.RateLimitExceededError, 429),
    (e.ServiceUnavailableError, 503),
    (e.CredentialsError, 400),
    (e.AccessDeniedError, 400),
    (e.ConfigError, 400),
    (e.RateLimitedError, 503),
    (e.ProviderError, 502),
    (e.VaultError, 500),
]


def status_for(exc: e.InflowError) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    type_: str = "about:blank",
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


async def _inflow_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.InflowError)  # noqa: S101 - registered for InflowError only
    status = status_for(exc)
    headers: dict[str, str] = {}
    errors = None
    if isinstance(exc, e.ValidationFailedError):
        errors = [{"field": f.field, "message": f.message} for f in exc.errors]
    if isinstance(exc, (e.RateLimitExceededError, e.ServiceUnavailableError)):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, e.AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if status >= 500:
        log.error("request failed", error=type(exc).__name__, detail=exc.message)
    return problem(status, exc.message, errors=errors, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errs = exc.errors()
    bad_json = next((err for err in errs if err.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = bad_json.get("ctx", {}).get("error", "invalid JSON")
        return problem(400, f"the request body is not valid JSON: {reason}")
    if any(
        tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes)
        for err in errs
    ):
        # FastAPI leaves a body it did not parse as JSON (no or another Content-Type) as bytes.
        return problem(
            415, "the request body must be JSON, sent with Content-Type: application/json"
        )
    fields = []
    for err in errs:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        message = "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "")
        fields.append({"field": ".".join(loc) or "body", "message": message})
    return problem(422, "the request has invalid fields", errors=fields)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    detail = str(exc.detail) if exc.detail else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route for {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; a path served by
        # several routes (GET and POST /api/data-points) allows all of theirs.
        allow = headers["Allow"] = _allowed(request) or headers.get("Allow", "")
        if detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allow}"
    return problem(exc.status_code, detail, headers=headers)


def _allowed(request: Request) -> str:
    """The methods the OpenAPI document lists for the request's path (FastAPI serves no HEAD)."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if _template(template).fullmatch(request.url.path):
            methods |= {m.upper() for m in item}
    order = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else 99, m)))


@lru_cache(maxsize=512)
def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)))


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Starlette calls this outside every middleware: RequestContextMiddleware has already
    # unbound the request id from the log context and will not add its header, so both are
    # done here (the id is in the request's state).
    request_id: str | None = getattr(request.state, "request_id", None)
    log.exception("unhandled error", error=type(exc).__name__, request_id=request_id)
    headers = {"X-Request-ID": request_id} if request_id else None
    return problem(
        500, "internal error; the request id is in the X-Request-ID header", headers=headers
    )


# ---------------------------------------------------------------- the OpenAPI document

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ProblemDetails",
    "description": "RFC 9457 problem details: every error answer of the API.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "always about:blank"},
        "title": {"type": "string", "description": "the status's phrase"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what went wrong, for a person"},
        "errors": {
            "type": "array",
            "description": "422 only: each invalid field (dotted camelCase path) and why",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_WHY = {
    400: "the body is not JSON, or the request does not fit this object",
    401: "no, an unknown or an expired token (or, for a webhook, a bad signature)",
    403: "your role does not allow this",
    404: "no such object, or one you may not see",
    405: "the method is not allowed on this path (the Allow header lists those that are)",
    409: "the request conflicts with the current state",
    413: "the body is too large",
    415: "the body is not sent as application/json",
    422: "invalid fields: each is named in errors",
    429: "too many requests: wait Retry-After seconds",
    503: "a service the API needs (Redis for rate limits) is unreachable: retry after Retry-After",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "string"}}},
    503: {"Retry-After": {"schema": {"type": "string"}}},
}
# What a route answers beyond the rules of ``problem_statuses`` (by operation id).
CONFLICTS = {"metrics-create", "metrics-delete", "data-sources-sync", "marketplace-sync"}
BAD_REQUESTS = {"oauth-authorize", "oauth-callback", "marketplace-install"}
PUBLIC_CHECKED = {"auth-login", "webhooks-receive"}  # public, but they check credentials


def problem_statuses(operation: dict[str, Any]) -> set[int]:
    """The problem answers an operation can give, by what it takes: every route is rate
    limited (429, or 503 without Redis); a secured one may answer 401, 403 and 404; one that
    takes parameters 422 (and 404: an id may name nothing); one that takes a body also 400,
    413 and 415."""
    statuses = {429, 503}
    params = operation.get("parameters", [])
    if operation.get("security") or operation.get("operationId") in PUBLIC_CHECKED:
        statuses |= {401, 403, 404}
    if params or "requestBody" in operation:
        statuses |= {404, 422}
    if "requestBody" in operation:
        statuses |= {400, 413, 415}
    if operation.get("operationId") in CONFLICTS:
        statuses.add(409)
    if operation.get("operationId") in BAD_REQUESTS:
        statuses.add(400)
    return statuses


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the problem+json answers (``ProblemDetails``) to every operation of an OpenAPI
    document, in place of FastAPI's own 422 shape, which this API never sends."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetails"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    ref = {"$ref": "#/components/schemas/ProblemDetails"}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status in sorted(problem_statuses(operation)):
                answer: dict[str, Any] = {
                    "description": responses.get(str(status), {}).get("description")
                    or _WHY[status],
                    "content": {PROBLEM: {"schema": ref}},
                }
                if status in _HEADERS:
                    answer["headers"] = _HEADERS[status]
                responses[str(status)] = answer
    return schema


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.InflowError, _inflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)

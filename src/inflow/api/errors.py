"""The one mapping from errors to HTTP: RFC 9457 ``application/problem+json`` everywhere."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inflow import errors as e
from inflow.logging import get_logger

log = get_logger(__name__)

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
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


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
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        allow = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allow}"
    return problem(exc.status_code, detail, headers=dict(exc.headers or {}))


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


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.InflowError, _inflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)

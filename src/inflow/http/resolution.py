"""Classify once, near the wire: a response or a transport exception becomes a ``Resolution``.

The default table below (Airbyte's error-mapping idea) plus a connector's overrides decide
what happens next. Only this module reads status codes.

| status / exception                         | action        | raises when final         |
|--------------------------------------------|---------------|---------------------------|
| 2xx, 3xx                                   | OK            |                           |
| 401                                        | REFRESH_AUTH  | CredentialsError          |
| 403                                        | FAIL          | AccessDeniedError         |
| 404, 410                                   | FAIL          | RejectedRequestError      |
| 429                                        | RATE_LIMITED  | RateLimitedError          |
| 408, 425, 500, 502, 503, 504, other 5xx    | RETRY         | TransientProviderError    |
| other 4xx                                  | FAIL          | RejectedRequestError      |
| timeout, connect/read error, protocol err  | RETRY         | TransientProviderError    |
| undecodable or truncated body              | RETRY         | TransientProviderError    |

An override sets the action for a status; the exception follows the action (RETRY →
``TransientProviderError``, RATE_LIMITED → ``RateLimitedError``, REFRESH_AUTH →
``CredentialsError``, FAIL → ``ProviderError``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import httpx
import orjson

from inflow import errors


class Action(enum.StrEnum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH_AUTH = "refresh_auth"
    IGNORE = "ignore"
    FAIL = "fail"


class Kind(enum.StrEnum):
    """What kind of failure, which picks the exception class and the source's health."""

    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    PROVIDER = "provider"


@dataclass(frozen=True)
class Resolution:
    """What to do about one response: the action, the failure kind and a user-facing message."""

    action: Action
    kind: Kind | None = None
    message: str = ""
    retry_after: float | None = None


Classifier = Callable[[httpx.Response], Resolution | None]
ResetHook = Callable[[httpx.Response], float | None]

_EXCEPTIONS: dict[Kind, type[errors.InflowError]] = {
    Kind.AUTH: errors.CredentialsError,
    Kind.PERMISSION: errors.AccessDeniedError,
    Kind.NOT_FOUND: errors.RejectedRequestError,
    Kind.REJECTED: errors.RejectedRequestError,
    Kind.RATE_LIMITED: errors.RateLimitedError,
    Kind.TRANSIENT: errors.TransientProviderError,
    Kind.PROVIDER: errors.ProviderError,
}

_RETRY_STATUSES = frozenset({408, 425, 500, 502, 503, 504})

# An override picks the action; the kind (and so the exception when final) follows from it.
_OVERRIDE_KINDS: dict[Action, Kind] = {
    Action.RETRY: Kind.TRANSIENT,
    Action.RATE_LIMITED: Kind.RATE_LIMITED,
    Action.REFRESH_AUTH: Kind.AUTH,
    Action.FAIL: Kind.PROVIDER,
}


def provider_message(response: httpx.Response, limit: int = 300) -> str:
    """The provider's own error message from the common body shapes, shortened."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        text = response.text.strip()
        return text[:limit] if text and not text.startswith("<") else ""
    candidates: list[object] = []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            candidates += [err.get("message"), err.get("error_description"), err.get("code")]
        candidates += [body.get("error_description"), body.get("message"), body.get("detail"), err]
        candidates += [body.get("title")]
    for cand in candidates:
        if isinstance(cand, str) and cand.strip():
            return cand.strip()[:limit]
    return ""


def classify(
    response: httpx.Response,
    *,
    overrides: Mapping[int, Action] | None = None,
    classifier: Classifier | None = None,
) -> Resolution:
    """Resolve a response with the connector's classifier, then its overrides, then the table."""
    if classifier is not None:
        custom = classifier(response)
        if custom is not None:
            return custom
    status = response.status_code
    if overrides and status in overrides:
        action = overrides[status]
        kind = _OVERRIDE_KINDS.get(action)
        if kind is None:
            return Resolution(action)
        detail = provider_message(response)
        suffix = f": {detail}" if detail else ""
        return Resolution(action, kind, f"provider error ({status}){suffix}")
    if status < 400:
        return Resolution(Action.OK)
    detail = provider_message(response)
    suffix = f": {detail}" if detail else ""
    if status == 401:
        return Resolution(
            Action.REFRESH_AUTH, Kind.AUTH, f"the provider refused the credentials (401){suffix}"
        )
    if status == 403:
        return Resolution(Action.FAIL, Kind.PERMISSION, f"permission denied (403){suffix}")
    if status in (404, 410):
        return Resolution(Action.FAIL, Kind.NOT_FOUND, f"not found ({status}){suffix}")
    if status == 429:
        return Resolution(Action.RATE_LIMITED, Kind.RATE_LIMITED, f"rate limited (429){suffix}")
    if status in _RETRY_STATUSES or status >= 500:
        return Resolution(Action.RETRY, Kind.TRANSIENT, f"provider error ({status}){suffix}")
    return Resolution(Action.FAIL, Kind.REJECTED, f"request rejected ({status}){suffix}")


def classify_exception(exc: Exception) -> Resolution:
    """Transport failures are transient; anything else is not ours to classify."""
    if isinstance(exc, httpx.TimeoutException):
        return Resolution(Action.RETRY, Kind.TRANSIENT, f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return Resolution(Action.RETRY, Kind.TRANSIENT, f"connection failed ({type(exc).__name__})")
    if isinstance(exc, httpx.DecodingError):
        return Resolution(
            Action.RETRY, Kind.TRANSIENT, "the provider sent a body that cannot be decoded"
        )
    if isinstance(exc, orjson.JSONDecodeError):
        return Resolution(
            Action.RETRY, Kind.TRANSIENT, "the provider sent a malformed (truncated?) body"
        )
    raise exc


def to_error(
    resolution: Resolution, *, slug: str, method: str, url: str, status: int | None
) -> errors.InflowError:
    """The exception a final resolution raises; messages are prefixed with the provider."""
    kind = resolution.kind or Kind.PROVIDER
    cls = _EXCEPTIONS[kind]
    message = f"{slug}: {resolution.message or 'request failed'}"
    if issubclass(cls, errors.RateLimitedError):
        return cls(
            message,
            retry_after=resolution.retry_after,
            slug=slug,
            method=method,
            url=url,
            status=status,
        )
    if issubclass(cls, errors.ProviderError):
        return cls(message, slug=slug, method=method, url=url, status=status)
    return cls(message)


def with_retry_after(resolution: Resolution, seconds: float | None) -> Resolution:
    return resolution if seconds is None else replace(resolution, retry_after=seconds)

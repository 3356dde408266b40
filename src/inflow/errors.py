"""Inflow's one exception tree, grouped by what the caller should do.

```
InflowError
├── ConfigError                 fault=user: fix settings or reconnect; never retried
│   ├── CredentialsError        401, invalid_grant, revoked refresh token  → UI: "Reconnect"
│   └── AccessDeniedError       403 / missing scope                         → UI: "Grant scope X"
├── ProviderError               fault=provider; carries slug, method, redacted URL, status
│   ├── TransientProviderError  5xx, timeouts, connection resets             → retried with backoff
│   │   └── RateLimitedError    429 / quota; carries retry_after             → wait, then retry
│   ├── RejectedRequestError    other 4xx                                    → fail the stream
│   └── UnexpectedResponseError a 2xx whose body a connector cannot read     → fail the step/run
├── RecordError                 one bad record                               → skip, count, continue
├── StateError                  stored cursor unusable                       → fail; offer "reset stream"
├── ValidationFailedError       user input that fails validation (field errors)   → 422
├── AuthenticationError         no or bad Inflow credentials                 → 401
│   └── WebhookSignatureError   a pushed event's signature/token is wrong, or a replay → 401
├── PermissionDeniedError       the caller's role forbids the route          → 403
├── PayloadTooLargeError        request body over the limit                  → 413
├── BadRequestError             inconsistent request                         → 400
├── NotFoundError               missing, or not the caller's to see          → 404
├── ConflictError               duplicate or concurrent change               → 409
├── RateLimitExceededError      an Inflow route's own limit                  → 429
├── ServiceUnavailableError     a store Inflow needs (Redis) is unreachable  → 503 + Retry-After
└── VaultError                  stored credentials cannot be decrypted       → 500, operator action
SyncCancelled (not a failure): a control-flow signal.
```

Messages never hold secrets; exceptions carry their facts as attributes as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Fault = Literal["user", "provider", "system"]


@dataclass(frozen=True)
class FieldError:
    """One invalid field: dotted path (``config.apiKey``) and what is wrong with it."""

    field: str
    message: str


class InflowError(Exception):
    """Base of every error Inflow raises on purpose."""

    fault: Fault = "system"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(InflowError):
    """The user must change something (settings, credentials, permissions)."""

    fault: Fault = "user"


class CredentialsError(ConfigError):
    """The provider refused the credentials: reconnect."""


class AccessDeniedError(ConfigError):
    """Authenticated, but not allowed: grant the missing permission or scope."""


class ProviderError(InflowError):
    """The provider failed or refused a request."""

    fault: Fault = "provider"

    def __init__(
        self,
        message: str,
        *,
        slug: str | None = None,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.slug = slug
        self.method = method
        self.url = url
        self.status = status


class TransientProviderError(ProviderError):
    """A failure worth retrying (5xx, timeout, dropped connection)."""


class RateLimitedError(TransientProviderError):
    """The provider asked us to wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RejectedRequestError(ProviderError):
    """A 4xx the provider will not accept again: likely our bug."""


class UnexpectedResponseError(ProviderError):
    """The provider answered, but not in the shape the connector reads (a null in a list, a
    missing field, a number where a string belongs). Not retried: the same answer would come
    again. ``method``/``url`` name the request (query redacted), ``problem`` what was wrong
    (``value[3] is null, expected an object``); the message says both, with the provider."""

    def __init__(
        self, message: str, *, problem: str, provider: str | None = None, **kw: object
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.problem = problem
        self.provider = provider


class RecordError(InflowError):
    """One record could not be read; it is skipped and counted."""


class StateError(InflowError):
    """A stored stream cursor cannot be used."""


class ValidationFailedError(InflowError):
    """User input failed validation; ``errors`` names each bad field."""

    fault: Fault = "user"

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message)
        self.errors = errors


class AuthenticationError(InflowError):
    """The caller is not authenticated to Inflow."""

    fault: Fault = "user"


class WebhookSignatureError(AuthenticationError):
    """A webhook whose signature or token does not verify, or a replayed or stale event:
    refused with a 401 and nothing stored."""


class PermissionDeniedError(InflowError):
    """The caller's role does not allow this route (not used for objects: those are 404)."""

    fault: Fault = "user"


class PayloadTooLargeError(InflowError):
    """A request body over the configured size limit."""

    fault: Fault = "user"


class NotFoundError(InflowError):
    """The object does not exist, or it is not the caller's to see."""

    fault: Fault = "user"


class ConflictError(InflowError):
    """The request conflicts with the current state (duplicate, concurrent change)."""

    fault: Fault = "user"


class BadRequestError(InflowError):
    """The request is malformed or inconsistent (e.g. a serviceId that does not match)."""

    fault: Fault = "user"


class RateLimitExceededError(InflowError):
    """An Inflow route's own rate limit was exceeded."""

    fault: Fault = "user"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailableError(InflowError):
    """A store Inflow cannot work without (the rate-limit store, Redis) does not answer: the
    operator must bring it back; the request or run may be tried again in ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VaultError(InflowError):
    """Stored credentials cannot be decrypted with the configured keys."""


class SyncCancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised inside a run when a user cancels it."""

"""Auth for provider calls, as ``httpx.Auth`` flows.

Static schemes (``BearerAuth``, ``HeaderAuth``, ``QueryAuth``; basic is ``httpx.BasicAuth``) set a
header or parameter. ``OAuth2Auth`` takes its access token from a ``TokenSource`` and, on a 401,
asks it once for a fresh token and replays the request. Token sources:

- ``ClientCredentials``: client-credentials grant, cached until shortly before expiry.
- ``JwtBearer``: the JWT-bearer grant (RFC 7523), same caching.
- ``RefreshingTokens``: tokens from an authorization-code flow, kept in a ``TokenStore`` (the
  vault); refreshed ahead of expiry under a lock, a rotated refresh token saved at once, and an
  ``invalid_grant`` turned into ``CredentialsError`` ("reconnect").
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx

from inflow.errors import CredentialsError, UnexpectedResponseError

LEEWAY_S = 60.0


def _number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclass
class TokenSet:
    """An OAuth token response, with an absolute expiry."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    refresh_token: str | None = None
    expires_at: float | None = None
    scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    obtained_at: float | None = None

    @classmethod
    def from_response(cls, body: dict[str, Any], *, now: float | None = None) -> TokenSet:
        if not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise UnexpectedResponseError(  # a 200 without a token: not a refusal
                "the token endpoint answered without an access_token",
                problem="access_token is missing or not a string",
            )
        expires_in = body.get("expires_in")
        if expires_in is not None and not _number(expires_in):
            raise UnexpectedResponseError(
                "the token endpoint answered an expires_in that is not a number",
                problem=f"expires_in is {expires_in!r:.40}, expected a number of seconds",
            )
        if not isinstance(body.get("refresh_token"), str | None):
            raise UnexpectedResponseError(
                "the token endpoint answered a refresh_token that is not a string",
                problem="refresh_token is not a string",
            )
        now = now or time.time()
        known = {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
        return cls(
            access_token=body["access_token"],
            token_type=str(body.get("token_type") or "Bearer"),
            refresh_token=body.get("refresh_token"),
            expires_at=now + float(expires_in) if expires_in else None,
            scope=body.get("scope"),
            extra={k: v for k, v in body.items() if k not in known},
            obtained_at=now,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSet:
        return cls(**data)

    def expires_soon(self, leeway_s: float = LEEWAY_S) -> bool:
        """True within ``leeway_s`` of expiry; for a short-lived token, within half its life
        (else a token living under a minute would be refreshed before every request)."""
        if self.expires_at is None:
            return False
        if self.obtained_at is not None:
            leeway_s = min(leeway_s, (self.expires_at - self.obtained_at) / 2)
        return self.expires_at - leeway_s <= time.time()


TokenRequest = Callable[[dict[str, str]], Awaitable[TokenSet]]
"""Posts a grant (form fields) to the token endpoint and returns the tokens (see oauth.py)."""


class TokenSource(Protocol):
    async def token(self, *, stale: str | None = None) -> str:
        """A valid access token; ``stale`` is one the provider just refused (refresh it)."""
        ...


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._value
        yield request


class HeaderAuth(httpx.Auth):
    """A secret in a named header (``X-Api-Key: …``), with an optional value prefix."""

    def __init__(self, name: str, value: str) -> None:
        self._name, self._value = name, value

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers[self._name] = self._value
        yield request


class QueryAuth(httpx.Auth):
    """A secret as a query parameter (``?access_token=…``); redaction masks it in logs."""

    def __init__(self, param: str, value: str) -> None:
        self._param, self._value = param, value

    def auth_flow(self, request: httpx.Request) -> Any:
        request.url = request.url.copy_merge_params({self._param: self._value})
        yield request


class OAuth2Auth(httpx.Auth):
    """Bearer token from a ``TokenSource``; one refresh and replay on a 401.

    ``refresh_when`` names other refusals that mean "this token expired" (Power BI answers an
    expired token with 403 ``TokenExpired``); it sees error responses with their body read.
    """

    def __init__(
        self, source: TokenSource, *, refresh_when: Callable[[httpx.Response], bool] | None = None
    ) -> None:
        self.source = source
        self.refresh_when = refresh_when

    async def _expired(self, response: httpx.Response) -> bool:
        if response.status_code == 401:
            await response.aread()
            return True
        if response.status_code < 400 or self.refresh_when is None:
            return False
        await response.aread()
        return self.refresh_when(response)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if await self._expired(response):
            fresh = await self.source.token(stale=token)
            if fresh != token:
                request.headers["Authorization"] = f"Bearer {fresh}"
                yield request


# One lock per key and event loop: an asyncio.Lock must not be shared across loops (threads).
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _lock(key: str) -> asyncio.Lock:
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(key, asyncio.Lock())


class _Cached:
    """A grant whose token is cached in memory until shortly before it expires."""

    def __init__(self, key: str, request_token: TokenRequest, form: dict[str, str]) -> None:
        self._key, self._request, self._form = key, request_token, form
        self._tokens: TokenSet | None = None

    async def token(self, *, stale: str | None = None) -> str:
        async with _lock(self._key):
            current = self._tokens
            if current is None or current.expires_soon() or current.access_token == stale:
                current = self._tokens = await self._request(self._form)
            return current.access_token


class ClientCredentials(_Cached):
    """OAuth 2 client-credentials grant (e.g. a Power BI service principal)."""

    def __init__(self, key: str, request_token: TokenRequest, *, scope: str | None = None) -> None:
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        super().__init__(key, request_token, form)


class JwtBearer(_Cached):
    """RFC 7523 JWT-bearer grant with a provider-issued or self-signed assertion."""

    def __init__(self, key: str, request_token: TokenRequest, *, assertion: str) -> None:
        grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
        super().__init__(key, request_token, {"grant_type": grant, "assertion": assertion})


class TokenStore(Protocol):
    """Where a source's OAuth tokens live (the vault). ``lock`` spans processes if it can."""

    async def load(self) -> TokenSet | None: ...

    async def save(self, tokens: TokenSet) -> None: ...

    def lock(self) -> AbstractAsyncContextManager[None]: ...


class MemoryTokenStore:
    """A ``TokenStore`` in memory, for tests and one-off checks."""

    def __init__(self, tokens: TokenSet | None = None) -> None:
        self.tokens = tokens
        self.saves = 0

    async def load(self) -> TokenSet | None:
        return self.tokens

    async def save(self, tokens: TokenSet) -> None:
        self.tokens = tokens
        self.saves += 1

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        yield


class RefreshingTokens:
    """Tokens from the authorization-code flow, refreshed ahead of expiry and on a 401.

    The refresh runs under an in-process lock and the store's own lock; after taking them the
    tokens are read again, so a refresh another worker just did is used instead of repeated
    (repeating it would spend a rotated refresh token twice).
    """

    def __init__(self, key: str, store: TokenStore, request_token: TokenRequest) -> None:
        self._key, self._store, self._request = key, store, request_token

    async def token(self, *, stale: str | None = None) -> str:
        tokens = await self._store.load()
        if tokens is None:
            raise CredentialsError("this source has no OAuth tokens yet: connect it first")
        if not tokens.expires_soon() and tokens.access_token != stale:
            return tokens.access_token
        async with _lock(self._key), self._store.lock():
            tokens = await self._store.load()
            if tokens is None:
                raise CredentialsError("this source has no OAuth tokens yet: connect it first")
            if not tokens.expires_soon() and tokens.access_token != stale:
                return tokens.access_token  # someone else refreshed meanwhile
            if not tokens.refresh_token:
                raise CredentialsError(
                    "the access token expired and there is no refresh token: reconnect the source"
                )
            fresh = await self._request(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
            )
            if fresh.refresh_token is None:  # not rotated: the old one stays valid
                fresh.refresh_token = tokens.refresh_token
            await self._store.save(fresh)
            return fresh.access_token

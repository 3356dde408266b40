"""The one client factory and request loop for provider calls.

``build_client`` makes the ``httpx.AsyncClient`` (explicit timeouts, user agent, no redirects
followed, transport as the test seam). ``Requester`` sends through it: outbound rate limit,
size-capped body, classification (``resolution.py``), bounded retries (stamina's loop with
``retry.py``'s rules as its hook: backoff, ``Retry-After`` and provider reset headers, the total
budget), one auth refresh on a 401, and a timeline entry per request with the secrets taken
out. It raises only ``InflowError`` subclasses.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
import orjson

from inflow import __version__
from inflow.errors import ConfigError, ProviderError, RateLimitedError, TransientProviderError
from inflow.http.pagination import check_link
from inflow.http.ratelimit import OutboundLimiter
from inflow.http.redact import Redactor, redact_path, redact_url
from inflow.http.resolution import (
    Action,
    Classifier,
    ResetHook,
    Resolution,
    classify,
    classify_exception,
    to_error,
    with_retry_after,
)
from inflow.http.retry import (
    RetryableFailure,
    RetryBudget,
    RetryPolicy,
    parse_retry_after,
    retrying,
)

USER_AGENT = f"inflow/{__version__} (+https://github.com/inflow-hub/inflow)"


# A host name → its addresses (the SSRF check and the connection use the same one).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, each once, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class HttpOptions:
    """Service-wide HTTP settings (from ``Settings``)."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_response_bytes: int = 64 * 1024 * 1024
    allow_private_urls: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    resolver: Resolver = system_resolver  # the test seam of the SSRF guard


LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10)


def build_client(
    options: HttpOptions,
    *,
    base_url: str = "",
    auth: httpx.Auth | None = None,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with Inflow's timeouts and user agent; without a ``transport``
    (tests give theirs) every connection goes to an address the SSRF guard checked
    (``GuardedTransport``), unless an environment proxy makes the connections."""
    if transport is None and not _env_proxied():
        transport = GuardedTransport(options)
    timeout = httpx.Timeout(
        connect=options.connect_timeout_s,
        read=options.read_timeout_s,
        write=options.read_timeout_s,
        pool=options.connect_timeout_s,
    )
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        timeout=timeout,
        follow_redirects=False,
        transport=transport,
        limits=LIMITS,
    )


# ------------------------------------------------------------------ SSRF guard

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def _forbidden_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        not ip.is_global  # also shared space 100.64/10 (Alibaba Cloud metadata 100.100.100.200)
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (
            isinstance(ip, ipaddress.IPv6Address)
            and ip.ipv4_mapped is not None
            and _forbidden_ip(ip.ipv4_mapped)
        )
    )


def _private_message(host: str) -> str:
    return (
        f"{host} resolves to a private or reserved address; set "
        "INFLOW_ALLOW_PRIVATE_URLS=true to allow it"
    )


async def check_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """Refuse plain http and private, loopback, link-local and metadata addresses (SSRF).

    Everything is allowed with ``allow_private`` (``INFLOW_ALLOW_PRIVATE_URLS``, the demo).
    This is the early check, with a clear message before any request; the connection itself
    checks again the addresses it connects to (``PinnedBackend``), so a name that resolves
    elsewhere the second time (DNS rebinding) gains nothing.
    """
    if allow_private:
        return
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ConfigError(
            f"{redact_url(url)}: only https:// URLs are allowed; set "
            "INFLOW_ALLOW_PRIVATE_URLS=true for a local http:// service (the demo's sandbox)"
        )
    host = (parts.hostname or "").lower()
    if not host or host in _METADATA_HOSTS:
        raise ConfigError(f"{redact_url(url)}: this host is not allowed")
    try:
        addresses = await resolver(host, parts.port or 443)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"{host}: the host name does not resolve") from exc
    if not addresses or any(_forbidden(address) for address in addresses):
        raise ConfigError(_private_message(host))


def _forbidden(address: str) -> bool:
    try:
        return _forbidden_ip(ipaddress.ip_address(address))
    except ValueError:  # not an address at all
        return True


class BlockedAddressError(httpcore.ConnectError):
    """A connection refused by the SSRF guard: the host resolved to a forbidden address."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves a host once, checks every address, then connects to a checked address.

    httpcore hands the original host name to TLS (SNI and certificate checks) and the request
    keeps its ``Host`` header: only the TCP connection uses the address, so what was checked is
    what is reached.
    """

    def __init__(self, *, allow_private: bool, resolver: Resolver) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int, wait_s: float | None) -> Sequence[str]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        try:
            return await asyncio.wait_for(self.resolver(host, port), wait_s)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"{host}: the name did not resolve in time") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: the host name does not resolve") from exc

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        if not addresses:
            raise httpcore.ConnectError(f"{host}: the host name does not resolve")
        if not self.allow_private and any(_forbidden(a) for a in addresses):
            raise BlockedAddressError(_private_message(host))
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # noqa: S101 - at least one address was tried
        raise failure

    async def connect_unix_socket(  # httpcore's interface
        self,
        path: str,  # noqa: ARG002
        timeout: float | None = None,  # noqa: ARG002, ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("provider calls never use a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """httpx's TLS context, made once (loading the CA bundle takes a while) and shared."""
    return httpx.create_ssl_context(verify=verify)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, its connection pool on a ``PinnedBackend``."""

    def __init__(self, options: HttpOptions, *, verify: ssl.SSLContext | bool = True) -> None:
        context = verify if isinstance(verify, ssl.SSLContext) else _tls_context(verify)
        super().__init__(verify=context, limits=LIMITS)
        # The pool httpx builds, with our network backend (httpx takes no backend itself).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=PinnedBackend(
                allow_private=options.allow_private_urls, resolver=options.resolver
            ),
        )


def _env_proxied() -> bool:
    """Whether an ``HTTP(S)_PROXY``/``ALL_PROXY`` is set: httpx then connects to the proxy (which
    resolves the names) through its default transport."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("https", "http", "all"))


# ------------------------------------------------------------------ requests


@dataclass(frozen=True)
class TimelineEntry:
    """One request as a user sees it in a run: no secrets, no bodies."""

    at: float
    method: str
    path: str
    status: int | None
    ms: float
    attempt: int
    note: str = ""


TimelineHook = Callable[[TimelineEntry], None]
WaitHook = Callable[[str, float], Awaitable[None] | None]


class Requester:
    """Sends requests for one connector and one credential, with every rule of this layer."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        slug: str,
        options: HttpOptions,
        limiter: OutboundLimiter | None = None,
        rate_key: str = "",
        rate_limits: Sequence[str] = (),
        overrides: Mapping[int, Action] | None = None,
        classifier: Classifier | None = None,
        reset_hook: ResetHook | None = None,
        redactor: Redactor | None = None,
        on_timeline: TimelineHook | None = None,
        on_wait: WaitHook | None = None,
    ) -> None:
        self.client = client
        self.slug = slug
        self.options = options
        self.limiter = limiter
        self.rate_key = rate_key
        self.rate_limits = tuple(rate_limits)
        self.overrides = overrides
        self.classifier = classifier
        self.reset_hook = reset_hook
        self.redactor = redactor or Redactor()
        self.on_timeline = on_timeline
        self.on_wait = on_wait
        self._checked_hosts: set[str] = set()

    async def _guard(self, url: httpx.URL) -> None:
        origin = f"{url.scheme}://{url.host}:{url.port}"
        if origin not in self._checked_hosts:
            await check_url(
                str(url),
                allow_private=self.options.allow_private_urls,
                resolver=self.options.resolver,
            )
            self._checked_hosts.add(origin)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        cap = self.options.max_response_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise ProviderError(
                f"{self.slug}: the response is larger than {cap} bytes", slug=self.slug
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise ProviderError(
                    f"{self.slug}: the response is larger than {cap} bytes", slug=self.slug
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _announce_wait(self, reason: str, seconds: float) -> None:
        """Tell the run it waits (stamina does the waiting, right after)."""
        if self.on_wait is not None:
            maybe = self.on_wait(reason, seconds)
            if maybe is not None:
                await maybe

    def _note(
        self,
        method: str,
        url: str,
        status: int | None,
        started: float,
        attempt: int,
        note: str = "",
    ) -> None:
        if self.on_timeline is not None:
            self.on_timeline(
                TimelineEntry(
                    at=time.time(),
                    method=method,
                    path=self.redactor(redact_path(url)),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                    attempt=attempt,
                    note=self.redactor(note),
                )
            )

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        expect_json: bool = True,
        within: str | None = None,
    ) -> tuple[httpx.Response, Any]:
        """Send with retries; returns the response and its parsed JSON (or raw bytes).

        ``within``: ``url`` is a link the provider handed back, sent only if it resolves to
        the origin of ``within`` (the URL the source was read from)."""
        policy = self.options.retry
        request = self.client.build_request(
            method, url, params=params, json=json, data=data, headers=headers
        )
        if within is not None:
            check_link(str(request.url), within, provider=self.slug, redactor=self.redactor)
        await self._guard(request.url)
        shown = str(request.url)
        budget = RetryBudget(policy)
        async for attempt in retrying(policy):
            with attempt:
                return await self._try(
                    request, auth, expect_json, shown=shown, attempt=attempt.num, budget=budget
                )
        raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover

    async def _try(
        self,
        request: httpx.Request,
        auth: httpx.Auth | None,
        expect_json: bool,
        *,
        shown: str,
        attempt: int,
        budget: RetryBudget,
    ) -> tuple[httpx.Response, Any]:
        """One try inside stamina's loop: its result, the final error, or ``RetryableFailure``
        with the wait our rules planned (the run is told it waits before stamina sleeps)."""
        policy = budget.policy
        method = request.method
        if self.limiter is not None and self.rate_limits:
            budget.waited += await self.limiter.acquire(
                self.rate_limits,
                self.rate_key,
                on_wait=self.on_wait,
                max_wait_s=policy.max_retry_after_s,
            )
        started = time.perf_counter()
        response, body, resolution = await self._attempt(request, auth, expect_json)
        status = response.status_code if response is not None else None
        if resolution.action in (Action.OK, Action.IGNORE):
            # An ignored response's reason (a skipped metric, say) stays visible in the run.
            self._note(method, shown, status, started, attempt, resolution.message)
            assert response is not None  # noqa: S101 - OK/IGNORE come from a response
            return response, (body if resolution.action is Action.OK else None)
        if resolution.action is Action.RATE_LIMITED and response is not None:
            hint = parse_retry_after(response.headers.get("retry-after"))
            if hint is None and self.reset_hook is not None:
                hint = self.reset_hook(response)
            resolution = with_retry_after(resolution, hint)
        self._note(method, shown, status, started, attempt, resolution.message)
        retryable = resolution.action in (Action.RETRY, Action.RATE_LIMITED)
        delay = budget.plan(attempt, resolution.retry_after) if retryable else None
        if delay is None:
            raise self._error(resolution, method, shown, status)
        reason = (
            "rate limited by the provider"
            if resolution.action is Action.RATE_LIMITED
            else resolution.message
        )
        await self._announce_wait(reason, delay)
        raise RetryableFailure(self.redactor(reason), delay=delay)

    async def _attempt(
        self, request: httpx.Request, auth: httpx.Auth | None, expect_json: bool
    ) -> tuple[httpx.Response | None, Any, Resolution]:
        """One try: send, read the capped body, classify; transport failures are classified too."""
        try:
            kwargs: dict[str, Any] = {"stream": True}
            if auth is not None:
                kwargs["auth"] = auth
            streamed = await self.client.send(request, **kwargs)
            try:
                raw = await self._read_capped(streamed)
            finally:
                await streamed.aclose()
            headers = [
                (k, v)
                for k, v in streamed.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ]  # the body is decoded already
            response = httpx.Response(
                streamed.status_code, headers=headers, content=raw, request=request
            )
            resolution = classify(response, overrides=self.overrides, classifier=self.classifier)
            body: Any = raw
            if resolution.action is Action.OK and expect_json:
                body = orjson.loads(raw) if raw.strip() else None
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            if isinstance(exc.__cause__, BlockedAddressError):  # not worth a retry: refused
                raise ConfigError(str(exc.__cause__)) from exc
            return None, None, classify_exception(exc)
        return response, body, resolution

    def _error(
        self, resolution: Resolution, method: str, url: str, status: int | None
    ) -> Exception:
        error = to_error(
            resolution,
            slug=self.slug,
            method=method,
            url=self.redactor(redact_url(url)),
            status=status,
        )
        error.message = self.redactor(error.message)
        error.args = (error.message,)
        return error

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        _, body = await self.request("GET", url, params=params, headers=headers)
        return body


__all__ = [
    "BlockedAddressError",
    "GuardedTransport",
    "HttpOptions",
    "RateLimitedError",
    "Requester",
    "TimelineEntry",
    "TransientProviderError",
    "build_client",
    "check_url",
]

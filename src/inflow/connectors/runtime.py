"""The one interpreter: a connector spec plus a config become HTTP clients, checks and reads.

``ConnectorRuntime`` is opened per source (``async with``). It renders placeholders, builds the
auth flow, and drives pagination, incremental windows, parent streams and a stream's
``parse``/``reduce`` into ``Chunk``s of records with the checkpoint each one reaches (a window
whose query holds more than a capped endpoint serves is read in halves; with
``RateLimit.concurrent`` > 1 the next windows are read while one is processed). It never
touches storage: the sync engine decides what to keep (and passes a ``QuotaGate`` that counts
a connector's ``Quota`` calls where every process sees them).

Every call into a connector's code is where an answer of an unexpected shape surfaces: the
runtime turns what it raises into ``UnexpectedResponseError`` naming the provider, the request
and what was wrong (``answers.py``). An item ``parse`` cannot read is skipped and counted, as
is a parent item; a ``reduce`` that trips fails its window (a total without the item would be
wrong); a check that trips is a failed step.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import string
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import SecretStr

from inflow.connectors.answers import (
    SHAPE_ERRORS,
    Answer,
    absent,
    describe,
    json_type,
    lenient,
    unexpected,
    unusable_parent,
    where,
)
from inflow.connectors.records import Record
from inflow.connectors.spec import (
    ApiKey,
    AuthSpec,
    Basic,
    Bearer,
    Check,
    CheckStep,
    Connector,
    ConnectorConfig,
    Incremental,
    NoAuth,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2JwtBearer,
    Quota,
    SliceReducer,
    Stream,
    Window,
)
from inflow.errors import (
    ConfigError,
    CredentialsError,
    InflowError,
    RateLimitedError,
    RecordError,
    StateError,
    UnexpectedResponseError,
)
from inflow.http.auth import (
    BearerAuth,
    ClientCredentials,
    HeaderAuth,
    JwtBearer,
    OAuth2Auth,
    QueryAuth,
    RefreshingTokens,
    TokenStore,
)
from inflow.http.client import (
    HttpOptions,
    Requester,
    TimelineEntry,
    TimelineHook,
    WaitHook,
    build_client,
)
from inflow.http.oauth import OAuthClient, oauth_error_classifier
from inflow.http.pagination import dig
from inflow.http.ratelimit import OutboundLimiter
from inflow.http.redact import Redactor, redact_path
from inflow.http.resolution import Action
from inflow.logging import get_logger

log = get_logger(__name__)


class _Attrs(dict[str, Any]):
    """A mapping whose keys read as attributes, for ``{parent.id}`` placeholders."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def plain_values(config: ConnectorConfig) -> _Attrs:
    """The config's values for templates, secrets unwrapped."""
    values = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        values[name] = "" if value is None else value
    return _Attrs(values)


def secrets_of(config: ConnectorConfig) -> list[str]:
    """Every secret value of a config (for the redactor)."""
    return [
        v.get_secret_value()
        for name in type(config).model_fields
        if isinstance(v := getattr(config, name), SecretStr)
    ]


def credential_key(base_url: str, config: ConnectorConfig, fallback: str) -> str:
    """Who a provider's rate limit counts: the credential (its secrets, at its base URL), so
    every source of one API key shares one budget across workers; ``fallback`` (the source)
    for a config without secrets. A digest: no secret reaches the rate-limit store."""
    values = sorted(secrets_of(config))
    if not values:
        return fallback
    digest = hashlib.sha256("\x00".join([base_url, *values]).encode()).hexdigest()
    return f"cred-{digest[:24]}"


def auth_of(connector: Connector, config: Any) -> AuthSpec:
    """The scheme a config signs in with (``Connector.auth`` may be a function of the config:
    RingCentral takes a JWT grant when a JWT is given, else the user's consent)."""
    return connector.auth(config) if callable(connector.auth) else connector.auth


_FORMATTER = string.Formatter()


def placeholders(template: str) -> list[str]:
    """The field names a template uses (``config.api_key``, ``parent.id``)."""
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name]


def render(template: str, **context: Any) -> str:
    """Fill ``{config.x}``, ``{parent.x}``, ``{window.start}`` placeholders (formatting only)."""
    try:
        return template.format_map(context)
    except (KeyError, AttributeError) as exc:
        raise ConfigError(f"the template {template!r} names an unknown value: {exc}") from exc


def format_bound(moment: datetime, fmt: str) -> str:
    if fmt == "iso":
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "date":
        return moment.date().isoformat()
    if fmt == "epoch":
        return str(int(moment.timestamp()))
    return moment.strftime(fmt)


def parse_cursor(value: Any) -> datetime | None:
    """An item's cursor value as a UTC datetime (ISO datetime or date, or epoch seconds)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StateError(f"cursor value {text!r} is not a date or datetime") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _distinct(page: Sequence[Mapping[str, Any]], path: str) -> set[Any]:
    """The distinct values at ``path`` in a page's items (unhashable ones as their text)."""
    values = [item.get(path) for item in page] if "." not in path else [dig(i, path) for i in page]
    try:
        return set(values)
    except TypeError:
        return {v if isinstance(v, str | int | float) or v is None else str(v) for v in values}


_DESCRIBED = 5  # items skipped in a run with a searched reason (a run shows the first five)
_CURSOR_ERRORS: tuple[type[Exception], ...] = (StateError, *SHAPE_ERRORS)
_TOKEN_ERRORS: tuple[type[Exception], ...] = (UnexpectedResponseError, *SHAPE_ERRORS)


def _over_cap(stream: Stream, body: Any, window: Window) -> bool:
    """A window's first page says its query holds more than the endpoint serves (`ResultCap`)."""
    cap = stream.cap
    if cap is None or window.end - window.start <= cap.min_window:
        return False
    total = dig(body, cap.total)
    return isinstance(total, int) and total > cap.limit


def _midnight(moment: datetime, zone: tzinfo = UTC) -> datetime:
    """The midnight that starts ``moment``'s day in ``zone``."""
    return datetime.combine(moment.astimezone(zone).date(), datetime.min.time(), zone)


def _utc_dates(window: Window) -> Window:
    """The whole UTC days that cover a window (how a ``date`` bound can express it)."""
    start, end = _midnight(window.start), _midnight(window.end)
    return Window(start, end + timedelta(days=1) if end < window.end else end)


def days_zone(connector: Connector | None, config: Mapping[str, Any]) -> tzinfo:
    """The time zone whose days a source's data follow: the zone its streams cut days in (the
    calling platforms' ``timezone`` setting), else its config's ``timezone`` (a custom source
    reads its dates there), else UTC. ``config`` is the stored (public) config; an unknown
    zone name reads as UTC (the source's own validation names it)."""
    name = "UTC"
    declared = [s.incremental.zone for s in connector.streams if s.incremental] if connector else []
    if any(declared):
        name = next(z for z in declared if z)
        if name.startswith("{config.") and name.endswith("}"):
            name = str(config.get(name[len("{config.") : -1]) or "UTC")
    elif connector is not None and "timezone" in connector.config.model_fields:
        name = str(config.get("timezone") or "UTC")
    try:
        return UTC if name == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def windows(start: datetime, end: datetime, size: timedelta | None) -> list[Window]:
    if size is None or start >= end:
        return [Window(start, end)]
    out = []
    cursor = start
    while cursor < end:
        out.append(Window(cursor, min(cursor + size, end)))
        cursor += size
    return out


class QuotaGate(Protocol):
    """Counts the calls spent against a ``Quota`` (the database's gate is shared by processes)."""

    async def take(self, key: str, period_start: datetime, limit: int) -> int | None:
        """Spend one call: the calls used with it, or None (nothing spent) when none is left."""
        ...

    async def exhaust(self, key: str, period_start: datetime, limit: int) -> None:
        """Mark the period's calls spent (the provider answered 429)."""
        ...


class MemoryQuotaGate:
    """A ``QuotaGate`` in memory: counts one runtime's calls when no shared gate is given."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, datetime], int] = {}

    async def take(self, key: str, period_start: datetime, limit: int) -> int | None:
        used = self.used.get((key, period_start), 0)
        if used >= limit:
            return None
        self.used[(key, period_start)] = used + 1
        return used + 1

    async def exhaust(self, key: str, period_start: datetime, limit: int) -> None:
        self.used[(key, period_start)] = max(limit, self.used.get((key, period_start), 0))


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


@dataclass
class Chunk:
    """Records read, and the stream state reached once they are stored (None: no checkpoint)."""

    records: list[Record]
    state: dict[str, Any] | None = None
    items: int = 0


@dataclass
class _Context:
    runtime: ConnectorRuntime
    config: Any
    window: Window | None = None
    parent: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False  # a trial run (finding a window's bad item): skips are not counted
    answer: Answer | None = None  # the answer being read (a page; a window's first page)

    def _render(self, template: str) -> str:
        return render(
            template, config=self.config, parent=_Attrs(self.parent or {}), window=self.window
        )

    async def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        _, body = await self.runtime.send("GET", self._render(path), params=params)
        return body

    async def post_json(self, path: str, *, json: Any = None) -> Any:
        _, body = await self.runtime.send("POST", self._render(path), json=json)
        return body

    def skip(self, reason: str) -> None:
        if self.quiet:
            return
        answer = self.answer
        if answer is not None:  # the provider and the request, as every unexpected answer says
            title = self.runtime.connector.title
            reason = (
                f"{title} answered {answer.method} {answer.path} with an unexpected item: {reason}"
            )
        self.runtime.skip(reason)


def _reduced(reduce: SliceReducer, items: list[Mapping[str, Any]], ctx: _Context) -> Chunk:
    ctx.answer = ctx.runtime._first_pages.pop((reduce, ctx.window), None)
    try:
        return Chunk(list(reduce(items, ctx)), None, len(items))
    except SHAPE_ERRORS as exc:
        # A total computed without an unreadable item would be stored as a fact, wrong: the
        # window fails (its earlier windows stay checkpointed), naming the item.
        raise ctx.runtime.unexpected_item_of_window(reduce, items, ctx, exc) from exc


class _Items(list[Mapping[str, Any]]):
    """A page's items, and the answer they came in (to name the request of a bad item)."""

    answer: Answer | None = None
    single = False  # the records path held one object, not a list: its "item" is the object


Page = tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]  # (parent item, items)
_PAGES_AHEAD = 2  # pages a window read ahead may hold before its turn comes


class _ReadAhead:
    """A window's pages, read by a task of their own into a bounded queue.

    Its requests run while earlier windows are processed (the provider builds the next pages
    meanwhile); the pages, or the error that ended the read, come out in order.
    """

    def __init__(self, pages: AsyncIterator[Page]) -> None:
        self._queue: asyncio.Queue[tuple[Page | None, Exception | None]] = asyncio.Queue(
            _PAGES_AHEAD
        )
        self.task = asyncio.ensure_future(self._fill(pages))

    async def _fill(self, pages: AsyncIterator[Page]) -> None:
        try:
            async with contextlib.aclosing(pages):  # type: ignore[type-var]
                async for page in pages:
                    await self._queue.put((page, None))
        except Exception as exc:  # raised where the window's pages are taken, in turn
            await self._queue.put((None, exc))
        else:
            await self._queue.put((None, None))

    async def __aiter__(self) -> AsyncIterator[Page]:
        while True:
            page, error = await self._queue.get()
            if error is not None:
                raise error
            if page is None:
                return
            yield page


class ConnectorRuntime:
    """One connector, one config, one HTTP client: checks and stream reads."""

    def __init__(
        self,
        connector: Connector,
        config: ConnectorConfig,
        *,
        options: HttpOptions,
        key: str,
        limiter: OutboundLimiter | None = None,
        token_store: TokenStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_timeline: TimelineHook | None = None,
        on_wait: WaitHook | None = None,
        quota_gate: QuotaGate | None = None,
        on_skip: Callable[[str], None] | None = None,
    ) -> None:
        self.connector = connector
        self.config = config
        self.values = plain_values(config)
        self.options = options
        self.key = key
        self.limiter = limiter or OutboundLimiter()
        self.token_store = token_store
        self.transport = transport
        self._on_timeline = on_timeline
        self.on_wait = on_wait
        self.on_skip = on_skip
        self.skipped = 0  # items a stream could not read (``Context.skip``, ``RecordError``)
        # What the provider answered last (to say which request a connector could not read).
        self._answers: deque[Answer] = deque(maxlen=8)
        self._last_request: Answer | None = None
        self._first_pages: dict[
            tuple[Any, Window | None], Answer
        ] = {}  # a reduce window's first page
        self.redactor = Redactor(secrets_of(config))
        quota = connector.quota
        if quota is not None:  # every try of a call is spent: retry a failed one at most so often
            attempts = min(options.retry.attempts, 1 + quota.retries)
            self.options = replace(options, retry=replace(options.retry, attempts=attempts))
        base = getattr(config, "base_url", None) or connector.base_url
        self.base_url = str(base).rstrip("/")
        self.client = build_client(
            options,
            base_url=self.base_url,
            transport=transport,
            headers={k: self._render(v) for k, v in connector.headers.items()},
        )
        self.requester = self._requester(self.client)
        self.auth_spec = auth_of(connector, config)
        auth = self._auth(self.auth_spec)
        if auth is not None:
            self.client.auth = auth
        self.quota_gate: QuotaGate = quota_gate or MemoryQuotaGate()
        self.quota_account = self._render(quota.key) if quota and quota.key else key
        if quota is not None:
            self.client.event_hooks["request"].append(self._spend_quota)
            self.client.event_hooks["response"].append(self._quota_refused)
        self._not_before = 0.0  # monotonic time before which `pace` holds the next request
        if connector.pace is not None:
            self.client.event_hooks["request"].append(self._pace)
            self.client.event_hooks["response"].append(self._paced)

    # -- pacing

    async def _paced(self, response: httpx.Response) -> None:
        """A response saying the provider's budget is spent holds the next request."""
        pace = lenient(self.connector.pace)
        delay = pace(response) if pace is not None else None
        if delay:
            self._not_before = max(self._not_before, time.monotonic() + delay)

    async def _pace(self, _request: httpx.Request) -> None:
        delay = self._not_before - time.monotonic()
        if delay <= 0:
            return
        if self.on_wait is not None:
            maybe = self.on_wait("the provider's rate window is used up", delay)
            if maybe is not None:
                await maybe
        await asyncio.sleep(delay)

    # -- quota

    def _costs_quota(self, quota: Quota, url: httpx.URL) -> bool:
        base = httpx.URL(self.base_url).path.rstrip("/")
        path = url.path[len(base) :] if url.path.startswith(base) else url.path
        return not quota.paths or any(path.startswith(p) for p in quota.paths)

    async def _spend_quota(self, request: httpx.Request) -> None:
        """Before each try of a quota'd request: spend a call, or refuse without sending."""
        quota = self.connector.quota
        if quota is None or not self._costs_quota(quota, request.url):
            return
        now = datetime.now(UTC)
        start, reset = quota.period(now)
        slug = self.connector.slug
        if await self.quota_gate.take(f"{slug}:{self.quota_account}", start, quota.limit) is None:
            wait = (reset - now).total_seconds()
            raise RateLimitedError(
                f"{slug}: the quota of {quota.limit} calls per {quota.per} for "
                f"{self.quota_account} is spent; it resets at {reset:%Y-%m-%dT%H:%M:%SZ} "
                f"(in {_duration(wait)}); no request was sent",
                retry_after=wait,
                slug=slug,
                method=request.method,
                url=self.redactor(redact_path(str(request.url))),
            )

    async def _quota_refused(self, response: httpx.Response) -> None:
        """A 429 on a quota'd path: the provider's count is spent (other clients share it)."""
        quota = self.connector.quota
        if quota is None or response.status_code != 429:
            return
        if self._costs_quota(quota, response.request.url):
            start, _ = quota.period(datetime.now(UTC))
            key = f"{self.connector.slug}:{self.quota_account}"
            await self.quota_gate.exhaust(key, start, quota.limit)

    # -- building

    def _render(self, template: str) -> str:
        return render(template, config=self.values)

    def _requester(self, client: httpx.AsyncClient, *, token_endpoint: bool = False) -> Requester:
        return Requester(
            client,
            slug=self.connector.slug,
            options=self.options,
            limiter=self.limiter,
            rate_key=f"{self.connector.slug}:{credential_key(self.base_url, self.config, self.key)}",
            rate_limits=() if token_endpoint else self.connector.rate_limit.windows,
            overrides=None if token_endpoint else self.connector.errors,
            classifier=oauth_error_classifier
            if token_endpoint
            else lenient(self.connector.classify),
            reset_hook=None if token_endpoint else lenient(self.connector.reset_after),
            redactor=self.redactor,
            on_timeline=self.on_timeline,
            on_wait=self.on_wait,
        )

    def oauth_client(self) -> OAuthClient:
        auth = self.auth_spec
        if not isinstance(
            auth, OAuth2ClientCredentials | OAuth2AuthorizationCode | OAuth2JwtBearer
        ):
            raise ConfigError(f"{self.connector.slug} does not use OAuth")
        auth_base = str(getattr(self.config, "auth_url", None) or self.base_url).rstrip("/")
        return OAuthClient(
            token_url=render(auth.token_url, config=self.values, auth_url=auth_base),
            client_id=self._render(auth.client_id),
            client_secret=self._render(auth.client_secret) or None,
            auth_method=auth.auth_method,
        )

    def token_request(self) -> Any:
        # Token calls use their own client: no provider auth, no provider rate limit.
        token_client = build_client(self.options, transport=self.transport)
        self._token_client = token_client
        request = self.oauth_client().token_request(
            self._requester(token_client, token_endpoint=True)
        )

        async def named(form: dict[str, str]) -> Any:
            """A token answer that is no token names the provider and the token request."""
            try:
                return await request(form)
            except _TOKEN_ERRORS as exc:
                problem = exc.problem if isinstance(exc, UnexpectedResponseError) else None
                raise self.unexpected(exc, self._last_request, problem=problem) from exc

        return named

    def _auth(self, spec: AuthSpec) -> httpx.Auth | None:
        key = f"{self.connector.slug}:{self.key}"
        if isinstance(spec, NoAuth):
            return None
        if isinstance(spec, Bearer):
            return BearerAuth(self._render(spec.token))
        if isinstance(spec, ApiKey):
            value = self._render(spec.value)
            if spec.query_param:
                return QueryAuth(spec.query_param, value)
            return HeaderAuth(spec.header or "Authorization", value)
        if isinstance(spec, Basic):
            return httpx.BasicAuth(self._render(spec.username), self._render(spec.password))
        expired = self._token_expired if self.connector.classify else None
        if isinstance(spec, OAuth2ClientCredentials):
            source = ClientCredentials(key, self.token_request(), scope=spec.scope)
            return OAuth2Auth(source, refresh_when=expired)
        if isinstance(spec, OAuth2JwtBearer):
            assertion = self._render(spec.assertion)
            return OAuth2Auth(
                JwtBearer(key, self.token_request(), assertion=assertion), refresh_when=expired
            )
        if spec.static_token and (static := self._render(spec.static_token)):
            return BearerAuth(static)
        if self.token_store is None:
            raise CredentialsError("this source has no OAuth tokens yet: connect it first")
        tokens = RefreshingTokens(key, self.token_store, self.token_request())
        return OAuth2Auth(tokens, refresh_when=expired)

    def _token_expired(self, response: httpx.Response) -> bool:
        """A refusal the connector classifies as REFRESH_AUTH (Power BI's 403 ``TokenExpired``)
        renews the token and replays the request, as a 401 does."""
        classify = lenient(self.connector.classify)
        found = classify(response) if classify is not None else None
        return found is not None and found.action is Action.REFRESH_AUTH

    async def __aenter__(self) -> ConnectorRuntime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.client.aclose()
        token_client = getattr(self, "_token_client", None)
        if token_client is not None:
            await token_client.aclose()

    # -- answers a connector could not read

    def on_timeline(self, entry: TimelineEntry) -> None:
        """Every request, token requests included: the last one is what a failure names
        when nothing closer is known."""
        self._last_request = Answer(entry.method, entry.path)
        if self._on_timeline is not None:
            self._on_timeline(entry)

    def answered(
        self, method: str, response: httpx.Response, body: Any, records: str = ""
    ) -> Answer:
        """Remember an answer (the few last ones), to name it if a connector trips over it."""
        path = self.redactor(redact_path(str(response.request.url)))
        answer = Answer(method, path, body, records)
        self._answers.append(answer)
        return answer

    async def send(self, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, Any]:
        """A request for a connector's own function (``ctx.get_json``): its answer is kept."""
        try:
            response, body = await self.requester.request(method, url, **kwargs)
        except SHAPE_ERRORS as exc:  # e.g. a token endpoint's answer the auth flow cannot read
            raise self.unexpected(exc, self._last_request) from exc
        self.answered(method, response, body)
        return response, body

    def unexpected(
        self,
        exc: BaseException,
        answer: Answer | None = None,
        *,
        item: int | None = None,
        items: Sequence[Any] | None = None,
        problem: str | None = None,
    ) -> UnexpectedResponseError:
        """``exc`` (raised reading a provider's answer) as the error a user reads: the provider,
        the request, what was unexpected. Without ``answer``: the recent answer the failure
        is best explained by (a check function reads several)."""
        if isinstance(exc, UnexpectedResponseError) and exc.provider is not None:
            return exc  # named already
        if answer is None and problem is None:
            answer, problem = self._explain(exc)
        if isinstance(items, _Items) and items.single and problem is None:
            prefix = answer.records if answer else ""
            problem, item, items = describe(items[0], exc, prefix=prefix).text, None, None
        error = unexpected(
            self.connector.title,
            self.connector.slug,
            answer,
            exc,
            problem=problem,
            item=item,
            items=items,
        )
        error.message = self.redactor(error.message)
        error.problem = self.redactor(error.problem)
        error.args = (error.message,)
        log.warning(
            "unexpected provider answer",
            slug=self.connector.slug,
            request=f"{error.method} {error.url}",
            problem=error.problem,
            error=type(exc).__name__,
            code=where(exc),
        )
        return error

    def _explain(self, exc: BaseException) -> tuple[Answer | None, str | None]:
        """The newest recent answer that explains ``exc``, and how."""
        for answer in reversed(self._answers):
            found = describe(answer.body, exc)
            if found.sure:
                return answer, found.text
        last = self._answers[-1] if self._answers else self._last_request
        return last, None

    def unexpected_item_of_window(
        self,
        reduce: SliceReducer,
        items: list[Mapping[str, Any]],
        ctx: _Context,
        exc: BaseException,
    ) -> UnexpectedResponseError:
        """A ``reduce`` failed: the item that fails alone names the problem (tried one by one,
        only now that the window failed), with the request of the window's first page."""
        answer = ctx.answer
        trial = replace(ctx, quiet=True)
        for index, item in enumerate(items):
            try:
                for _ in reduce([item], trial):
                    pass
            except SHAPE_ERRORS:
                return self.unexpected(exc, answer, item=index, items=items)
            except Exception:  # noqa: S112 - any other failure: not the item we look for
                continue
        problem = describe(items, exc, prefix=answer.records if answer else "").text
        return self.unexpected(exc, answer, problem=problem)

    def _parents(
        self, stream: Stream, pages: Sequence[list[Mapping[str, Any]]]
    ) -> list[Mapping[str, Any]]:
        """The parent items ``stream`` is read for. One it cannot be read for (not an object,
        no usable value for a ``{parent.x}`` of its path) is skipped and counted, and the
        others are read: its children stay as stored (no deletions follow a run that skipped)."""
        keys = [n.split(".", 1)[1] for n in placeholders(stream.path) if n.startswith("parent.")]
        parents: list[Mapping[str, Any]] = []
        for page in pages:
            for index, item in enumerate(page):
                problem = unusable_parent(item, keys)
                if problem is None:
                    parents.append(item)
                    continue
                answer = page.answer if isinstance(page, _Items) else None
                error = self.unexpected(problem, answer, item=index, items=page)
                self.skip(f"{error.message}; what it holds was not read")
        return parents

    def _skip_item(self, exc: BaseException, page: Sequence[Any], index: int) -> None:
        """One item ``parse`` could not read: skipped and counted, with the request and why
        (its record stands alone: the others stay right without it)."""
        answer = page.answer if isinstance(page, _Items) else None
        if self.skipped >= _DESCRIBED and answer is not None:  # no search through the body:
            # the run shows the first reasons only, and every item may be bad (an API change)
            title, records = self.connector.title, answer.records or ""
            self.skip(
                f"{title} answered {answer.method} {answer.path} with an unexpected item: "
                f"{records}[{index}] could not be read; the item was skipped"
            )
            return
        error = self.unexpected(exc, answer, item=index, items=page)
        self.skip(f"{error.message}; the item was skipped")

    def _cursors(self, page: Sequence[Any], path: str) -> Iterator[datetime]:
        """The cursor values of a page's items. One that is no date is left out (and logged):
        the saved position then moves less far, so nothing is missed by it."""
        answer = page.answer if isinstance(page, _Items) else None
        logged = False
        for raw in _distinct([i for i in page if isinstance(i, Mapping)], path):
            try:
                seen = parse_cursor(raw)
            except _CURSOR_ERRORS as exc:
                cause = exc.__cause__ if isinstance(exc, StateError) and exc.__cause__ else exc
                if not logged:  # logged once a page; the position stays where it was
                    self.unexpected(cause, answer)
                    logged = True
                continue
            if seen is not None:
                yield seen

    def skip(self, reason: str) -> None:
        """Count an item that could not be read, and tell the run why (redacted)."""
        self.skipped += 1
        if self.on_skip is not None:
            self.on_skip(self.redactor(reason))

    def context(
        self, *, window: Window | None = None, parent: Mapping[str, Any] | None = None
    ) -> _Context:
        return _Context(self, self.values, window, parent)

    # -- checks

    async def check(self) -> list[CheckStep]:
        """Run the connector's connection test; a failing step ends it (an answer the connector
        cannot read is a failed step naming the provider, the request and what was wrong)."""
        steps: list[CheckStep] = []
        for check in self.connector.checks:
            try:
                try:
                    if isinstance(check, Check):
                        await self.send("GET", self._render(check.path), params=check.params)
                        steps.append(CheckStep(check.name, True, check.ok_message))
                    else:
                        steps.extend(await check(self.context()))
                except SHAPE_ERRORS as exc:
                    raise self.unexpected(exc) from exc
            except InflowError as exc:
                steps.append(
                    CheckStep(
                        check.name if isinstance(check, Check) else "check",
                        False,
                        exc.message,
                        reauth=isinstance(exc, CredentialsError),
                    )
                )
                break
            if steps and not steps[-1].ok:
                break
        return steps

    # -- reads

    def stream(self, name: str) -> Stream:
        for stream in self.connector.streams:
            if stream.name == name:
                return stream
        raise ConfigError(f"{self.connector.slug} has no stream {name!r}")

    async def items(
        self,
        stream: Stream,
        *,
        window: Window | None = None,
        parent: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[list[Mapping[str, Any]]]:
        """The raw items of a stream, page by page (for one window and one parent item)."""
        ctx = self.context(window=window, parent=parent)
        if stream.reader is not None:  # the connector reads the pages (a user-described API)
            try:
                async for page in stream.reader(ctx):
                    if stream.reduce is not None and self._answers:  # its first page's request
                        self._first_pages.setdefault((stream.reduce, window), self._answers[-1])
                    yield page
            except SHAPE_ERRORS as exc:
                raise self.unexpected(exc) from exc
            return
        path = stream.target(ctx) if stream.target is not None else ctx._render(stream.path)
        params: dict[str, Any] = {
            k: v(ctx) if callable(v) else ctx._render(str(v)) for k, v in stream.params.items()
        }
        inc = stream.incremental
        if inc is not None and window is not None:
            bounds = _utc_dates(window) if inc.format == "date" else window
            if inc.start_param:
                params[inc.start_param] = format_bound(bounds.start, inc.format)
            if inc.end_param:
                end = bounds.end - timedelta(days=1) if inc.end_inclusive else bounds.end
                params[inc.end_param] = format_bound(end, inc.format)
        headers = {k: ctx._render(v) for k, v in stream.headers.items()}
        step = stream.pages.first()
        origin: str | None = None  # where the first page was read: the only host links may name
        while True:
            url = step.url or path
            query: dict[str, Any] | None = {**params, **step.params} if step.url is None else {}
            if "?" in url:  # sent as written: httpx drops (or re-encodes) a query given with params
                url, query = (f"{url}&{urlencode(query)}" if query else url), None
            within = origin if step.url is not None else None
            response, body = await self.send_page(url, params=query, headers=headers, within=within)
            origin = origin or str(response.request.url)
            answer = self.answered("GET", response, body, stream.records)
            if step.page == 1 and stream.reduce is not None:
                self._first_pages.setdefault((stream.reduce, window), answer)
            with self.reading(answer):
                over = step.page == 1 and window is not None and _over_cap(stream, body, window)
            if over:
                # The API would serve only the first `limit` items: read both halves instead.
                assert window is not None  # noqa: S101 - `over` needs a window
                middle = window.start + (window.end - window.start) / 2
                for half in (Window(window.start, middle), Window(middle, window.end)):
                    async for page in self.items(stream, window=half, parent=parent):
                        yield page
                return
            items = self._records(stream, response, answer)
            yield items
            with self.reading(answer):
                next_step = stream.pages.next(step, body, len(items), response.headers)
            if next_step is None:
                return
            step = next_step

    async def send_page(self, url: str, **kwargs: Any) -> tuple[httpx.Response, Any]:
        """One page's request (its answer is kept by the caller, with where its items are)."""
        try:
            return await self.requester.request("GET", url, **kwargs)
        except SHAPE_ERRORS as exc:  # e.g. a token endpoint's answer the auth flow cannot read
            raise self.unexpected(exc, self._last_request) from exc

    @contextlib.contextmanager
    def reading(self, answer: Answer) -> Iterator[None]:
        """Code reading ``answer`` (a paginator, a total): what it trips over is named."""
        try:
            yield
        except SHAPE_ERRORS as exc:
            raise self.unexpected(exc, answer) from exc

    def _records(self, stream: Stream, response: httpx.Response, answer: Answer) -> _Items:
        """A page's items, found at the stream's ``records`` path.

        A body without that path is unexpected (an empty listing read as complete would mark
        every asset deleted), unless the provider leaves it out when there are none
        (``Stream.omits_empty``: Google's APIs); an empty body (an ignored 404) has none.
        """
        body, path = answer.body, stream.records
        items = _Items()
        items.answer = answer
        if body is None:
            if response.content.strip() == b"null":
                raise self.unexpected(ValueError(), answer, problem="the body is null")
            return items
        found = dig(body, path) if path else body
        if found is None:
            if path and not isinstance(body, Mapping):
                problem = f"the body is {json_type(body)}, expected an object with {path!r}"
            elif stream.omits_empty and absent(body, path):
                return items
            elif absent(body, path):
                problem = f"the body has no {path!r} (the list of items)"
            else:
                problem = f"{path} is null, expected a list"
            raise self.unexpected(ValueError(), answer, problem=problem)
        if isinstance(found, list):
            items.extend(found)
        elif isinstance(found, Mapping):
            items.append(found)
            items.single = True
        else:
            wanted = "a list" if path else "an object or a list"
            problem = f"{path or 'the body'} is {json_type(found)}, expected {wanted}"
            raise self.unexpected(ValueError(), answer, problem=problem)
        return items

    async def _pages(
        self, stream: Stream, window: Window | None, parents: Sequence[Mapping[str, Any] | None]
    ) -> AsyncIterator[Page]:
        """A window's pages for every parent item, each with its parent."""
        for parent in parents:
            async for page in self.items(stream, window=window, parent=parent):
                yield parent, page

    def plan(
        self, stream: Stream, state: Mapping[str, Any] | None, window: Window | None, now: datetime
    ) -> list[Window] | None:
        """The windows to read: the given one, or from the saved cursor (minus lookback) to now."""
        inc = stream.incremental
        if inc is None:
            return [window] if window is not None else None
        if window is None:
            cursor = parse_cursor((state or {}).get("cursor"))
            start = (cursor - inc.lookback) if cursor else now - inc.initial
            window = Window(start, now)
        if inc.format == "date" or stream.reduce is not None:
            # Whole days, from midnight through the day that holds `end`: a reduce computes
            # each day's totals from every item of its window, so no window may cut a day.
            zone = self.zone(inc)
            start = _midnight(window.start, zone)
            end = _midnight(window.end, zone)
            window = Window(start, end + timedelta(days=1) if end < window.end else end)
        return windows(window.start, window.end, inc.window)

    def zone(self, inc: Incremental) -> tzinfo:
        """The time zone whose days a stream's windows follow (UTC unless it names one)."""
        name = self._render(inc.zone) if inc.zone else "UTC"
        try:
            return UTC if name == "UTC" else ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"{name!r} is not a time zone (an IANA name, like Europe/Berlin)"
            ) from exc

    async def read(
        self,
        stream: Stream,
        *,
        state: Mapping[str, Any] | None = None,
        window: Window | None = None,
        now: datetime | None = None,
    ) -> AsyncIterator[Chunk]:
        """Records of a stream in chunks; each chunk's ``state`` is safe to commit with it."""
        now = now or datetime.now(UTC)
        parents: Sequence[Mapping[str, Any] | None] = [None]
        if stream.parent:
            parent_stream = self.stream(stream.parent)
            parent_pages = [page async for page in self.items(parent_stream)]
            parents = self._parents(stream, parent_pages)
        planned: Sequence[Window | None] = self.plan(stream, state, window, now) or [None]
        # With ``RateLimit.concurrent`` > 1 the next windows are read while this one is
        # processed; a window's reduce runs on a thread while the next window's pages arrive.
        # Chunks and checkpoints still come out in window order.
        concurrent = self.connector.rate_limit.concurrent
        ahead = concurrent if concurrent > 1 and len(planned) > 1 else 0
        feeds: dict[int, _ReadAhead] = {}
        reducing: asyncio.Future[Chunk] | None = None
        after: list[Chunk] = []
        try:
            for index, win in enumerate(planned):
                for later in range(index, min(index + ahead, len(planned))):
                    if later not in feeds:
                        feeds[later] = _ReadAhead(self._pages(stream, planned[later], parents))
                pages = feeds.pop(index, None) or self._pages(stream, win, parents)
                max_cursor: datetime | None = None
                collected: list[Mapping[str, Any]] = []
                inc = stream.incremental
                per_page = inc is not None and inc.sorted and not stream.parent and win is not None
                try:
                    async for parent, page in pages:
                        if stream.reduce is not None:
                            collected.extend(page)
                            continue
                        ctx = self.context(window=win, parent=parent)
                        ctx.answer = page.answer if isinstance(page, _Items) else None
                        records: list[Record] = []
                        parse = stream.parse
                        if parse is not None:
                            for at, item in enumerate(page):
                                try:
                                    records.extend(parse(item, ctx))
                                except RecordError as exc:  # one bad item: skipped and counted
                                    ctx.skip(exc.message)
                                except SHAPE_ERRORS as exc:  # the same, the runtime says why
                                    self._skip_item(exc, page, at)
                        if inc is not None:
                            # A page repeats few cursor values (many rows a day): parse each once.
                            for seen in self._cursors(page, inc.cursor):
                                if max_cursor is None or seen > max_cursor:
                                    max_cursor = seen
                        checkpoint = None
                        if per_page and max_cursor is not None:
                            checkpoint = {"cursor": format_bound(max_cursor, "iso")}
                        yield Chunk(records, checkpoint, len(page))
                except Exception:
                    if reducing is not None:  # the window before was read whole: keep it
                        yield await reducing
                        for chunk in after:
                            yield chunk
                        reducing = None
                    raise
                # The window was read to its end: the next read starts there (minus lookback).
                done: list[Chunk] = []
                if win is not None and inc is not None:
                    done.append(Chunk([], {"cursor": format_bound(min(win.end, now), "iso")}))
                if stream.reduce is None:
                    for chunk in done:
                        yield chunk
                    continue
                if reducing is not None:
                    yield await reducing
                    for chunk in after:
                        yield chunk
                ctx = self.context(window=win, parent=None)
                reducing = asyncio.ensure_future(
                    asyncio.to_thread(_reduced, stream.reduce, collected, ctx)
                )
                after = done
        finally:  # a read that stops early (an error, a closed generator) ends the reads ahead
            for feed in feeds.values():
                feed.task.cancel()
            running = [feed.task for feed in feeds.values()]
            await asyncio.gather(
                *running, *([reducing] if reducing else []), return_exceptions=True
            )
        if reducing is not None:
            yield await reducing
            for chunk in after:
                yield chunk

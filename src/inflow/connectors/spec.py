"""The declarative vocabulary of connectors.

| name | what it declares |
|---|---|
| `Connector` | identity (slug, title, category, docs), `Config` model, auth scheme, metric catalog |
| `ConnectorConfig` | base of every connector's config: camelCase JSON, secrets as `SecretStr` |
| `MetricDef` | one metric the provider really serves: key, label, unit, aggregation rule |
| `Bearer`, `ApiKey`, `Basic`, `OAuth2*` | the auth scheme, with `{config.x}` templates |
| `Stream` | one endpoint: path, records path, pagination, incremental cursor, parse/reduce |
| `PageNumber`, `Offset`, `Cursor`, `NextUrl`, `LinkHeader`, `SinglePage` | pagination |
| `Incremental` | cursor field, window parameters, lookback, slicing |
| `ResultCap` | a query serves only so many items: big windows are read in halves |
| `Check` / check functions | the connection test, step by step (`CheckStep`) |
| `RateLimit`, `Quota`, `errors`, `classify`, `reset_after` | provider budgets and error quirks |
| `Asset`, `DataPoint` | the records streams yield |
| `Webhook`, `WebhookRequest`, `WebhookEvent`, `WebhookReply` | pushed events: verify, then store |

A connector module holds one `CONNECTOR = Connector(...)` literal and a few small functions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic.alias_generators import to_camel

from inflow.connectors.records import Asset, DataPoint, Granularity, Record, today_ordinal
from inflow.errors import FieldError, ValidationFailedError
from inflow.http.pagination import (
    Cursor,
    LinkHeader,
    NextUrl,
    Offset,
    PageNumber,
    Pagination,
    SinglePage,
)
from inflow.http.resolution import Action, Classifier, Kind, ResetHook, Resolution

Category = Literal["bi", "analytics", "social", "calling"]
AuthType = Literal[
    "api_key",
    "bearer",
    "basic",
    "oauth2_client_credentials",
    "oauth2_authorization_code",
    "oauth2_jwt",
    "none",
]
Aggregation = Literal["sum", "average", "ratio", "last", "max", "min"]


class ConnectorConfig(BaseModel):
    """Base of every connector's config.

    JSON keys are camelCase (``baseUrl``); unknown keys are refused so a typo names its field.
    Fields typed ``SecretStr`` are stored encrypted and never echoed back. ``fixed_once_data``
    names fields that cannot change once the source holds data points (the stored points would
    mean something else: a time zone the days were cut in).
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )
    fixed_once_data: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def secret_fields(cls) -> list[str]:
        """The JSON (camelCase) names of the secret fields."""
        names: list[str] = []
        for name, info in cls.model_fields.items():
            annotation: object = info.annotation
            if annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ()):
                names.append(info.alias if info.alias else name)
        return names


@dataclass(frozen=True)
class MetricDef:
    """A metric in a connector's catalog.

    ``aggregation`` says how values combine across periods and dimensions: ``sum`` for counts;
    ``average``/``ratio`` are weighted by ``weight_metric`` (never summed).
    """

    key: str
    label: str
    unit: str = "count"
    description: str = ""
    aggregation: Aggregation = "sum"
    weight_metric: str | None = None


# ---------------------------------------------------------------- auth schemes
# Values are templates: ``{config.<field>}`` (secrets unwrapped only when a client is built).


@dataclass(frozen=True)
class NoAuth:
    """No credentials (public endpoints)."""


@dataclass(frozen=True)
class Bearer:
    """``Authorization: Bearer <token>``."""

    token: str = "{config.api_key}"


@dataclass(frozen=True)
class ApiKey:
    """A key in a header (``X-Api-Key: …``, ``Authorization: Token …``) or a query parameter."""

    value: str
    header: str | None = "Authorization"
    query_param: str | None = None


@dataclass(frozen=True)
class Basic:
    """HTTP Basic auth."""

    username: str
    password: str


@dataclass(frozen=True)
class OAuth2ClientCredentials:
    """Client-credentials grant; the token is cached until shortly before it expires."""

    token_url: str
    client_id: str = "{config.client_id}"
    client_secret: str = "{config.client_secret}"
    scope: str | None = None
    auth_method: Literal["basic", "post"] = "post"


@dataclass(frozen=True)
class OAuth2AuthorizationCode:
    """Authorization code + PKCE (S256); tokens come from the user's consent and are refreshed."""

    authorize_url: str
    token_url: str
    client_id: str = "{config.client_id}"
    client_secret: str = "{config.client_secret}"
    scopes: tuple[str, ...] = ()
    auth_method: Literal["basic", "post"] = "post"
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    revoke_url: str | None = None
    # A token the user pasted instead (``{config.access_token}``): when it renders non-empty
    # it is sent as a plain bearer, never refreshed, and no consent is needed.
    static_token: str | None = None


@dataclass(frozen=True)
class OAuth2JwtBearer:
    """JWT-bearer grant (RFC 7523) with an assertion from the config."""

    token_url: str
    assertion: str = "{config.jwt}"
    client_id: str = "{config.client_id}"
    client_secret: str = "{config.client_secret}"
    auth_method: Literal["basic", "post"] = "basic"


AuthSpec = (
    NoAuth
    | Bearer
    | ApiKey
    | Basic
    | OAuth2ClientCredentials
    | OAuth2AuthorizationCode
    | OAuth2JwtBearer
)
AuthChoice = Callable[[Any], AuthSpec]
"""A function of the validated config that picks the scheme (Grafana: a token or a password)."""


# ---------------------------------------------------------------- streams


@dataclass(frozen=True)
class RateLimit:
    """The provider's documented budget per credential, as ``limits`` strings.

    ``concurrent``: the requests one read may have in flight at once. Past 1, a windowed
    stream's next windows are read while the current one is processed (Twilio limits
    concurrency, not rate); chunks and checkpoints still come out in window order.
    """

    windows: tuple[str, ...] = ()
    concurrent: int = 1

    @classmethod
    def of(cls, *windows: str, concurrent: int = 1) -> RateLimit:
        return cls(tuple(windows), concurrent)


@dataclass(frozen=True)
class Quota:
    """A provider's call budget per period, shared by every client of one account.

    Clarity allows ten export calls per project per UTC day. Each request to a path starting
    with one of ``paths`` (below the base URL; every request when empty) costs one call, each
    retry included: the runtime asks its quota gate before sending and, once the period's calls
    are spent, refuses with ``RateLimitedError`` (``retry_after``: until the reset) without
    sending. A 429 from such a path marks the period spent (other clients share the count).
    ``key`` names the account (``{config.x}`` templates; empty: the source); ``retries`` caps
    the retries of a failed call, since every try costs one.
    """

    limit: int
    per: Literal["day", "hour"] = "day"
    key: str = ""
    paths: tuple[str, ...] = ()
    retries: int = 1

    def period(self, now: datetime) -> tuple[datetime, datetime]:
        """The UTC period holding ``now``: its start and the moment the quota resets."""
        moment = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if self.per == "hour":
            return moment, moment + timedelta(hours=1)
        start = moment.replace(hour=0)
        return start, start + timedelta(days=1)


@dataclass(frozen=True)
class Incremental:
    """How a stream reads only what is new.

    Args:
        cursor: the item field holding its position (an ISO datetime or date).
        start_param / end_param: query parameters taking the window's bounds.
        format: how bounds are written: ``iso`` (``2026-01-02T03:04:05Z``), ``date``,
            ``epoch`` (seconds) or a ``strftime`` pattern.
        lookback: re-read this much before the saved cursor, for late-arriving changes.
        window: read in slices of this size (each slice checkpoints on its own).
        initial: how far back a first sync reaches.
        end_inclusive: the API's end bound includes that day (dates): the runtime sends the
            last day of the window instead of the day after.
        sorted: items come in ascending cursor order with an inclusive start bound, so the
            state may be checkpointed after every page (else only at a window's end).
        zone: the time zone whose days a ``reduce`` sums (an IANA name, or a ``{config.x}``
            template; empty: UTC): windows start at its midnights. Date bounds are still sent
            as the UTC dates that cover a window (a local day spans two of them).
    """

    cursor: str
    start_param: str | None = None
    end_param: str | None = None
    format: str = "iso"
    lookback: timedelta = timedelta(0)
    window: timedelta | None = None
    initial: timedelta = timedelta(days=30)
    end_inclusive: bool = False
    sorted: bool = False
    zone: str = ""


@dataclass(frozen=True)
class Window:
    """The period a read covers: ``[start, end)``."""

    start: datetime
    end: datetime


class Context(Protocol):
    """What a connector's functions see: its config, the window, the parent item, HTTP."""

    config: Any
    window: Window | None
    parent: Mapping[str, Any] | None

    async def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any: ...

    async def post_json(self, path: str, *, json: Any = None) -> Any: ...

    def skip(self, reason: str) -> None:
        """An item that cannot be read (no value, not a number): counted and shown in the run,
        the read goes on. (A ``parse`` may raise ``RecordError`` instead.)"""
        ...


@dataclass(frozen=True)
class ResultCap:
    """An endpoint that serves at most ``limit`` items of one query and silently drops the rest
    (Aircall: the first 10,000, whatever the paging).

    The first page of a window tells the query's ``total`` (a dotted path); above ``limit`` the
    runtime reads the window's two halves instead (and theirs, down to ``min_window``), while a
    ``reduce`` still gets every item of the whole window.
    """

    total: str
    limit: int
    min_window: timedelta = timedelta(seconds=1)


ItemParser = Callable[[Mapping[str, Any], Context], Iterable[Record]]
PageReader = Callable[[Context], AsyncIterator[list[Mapping[str, Any]]]]
ParamFunction = Callable[[Context], str | int]
SliceReducer = Callable[[list[Mapping[str, Any]], Context], Iterable[Record]]


@dataclass(frozen=True)
class Stream:
    """One endpoint read to the end.

    Items are found at the dotted ``records`` path of each page; ``parse`` turns one item into
    records, or ``reduce`` turns every item of a window into records (daily totals from call
    logs). ``parent`` names a stream whose items this one is read for (``{parent.id}``).
    ``deletes``: a full read of this asset stream is complete, so an asset not seen is deleted.
    A ``params`` value may be a function of the context (Clarity's ``numOfDays`` from the window).
    ``cap``: the endpoint serves only so many items of a query, so big windows are split.
    """

    name: str
    path: str
    records: str = ""
    pages: Pagination = field(default_factory=SinglePage)
    params: Mapping[str, str | int | ParamFunction] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    incremental: Incremental | None = None
    parse: ItemParser | None = None
    reduce: SliceReducer | None = None
    parent: str | None = None
    deletes: bool = False
    fetchable: bool = True  # part of a date-range fetch (data points)
    # Builds the path (and query) per read where a template cannot, sent as written (LinkedIn's
    # Rest.li ``timeIntervals=(timeRange:(…))`` from the window, URL-encoded URNs).
    target: Callable[[Context], str] | None = None
    cap: ResultCap | None = None
    # The provider leaves the ``records`` field out when there are no items (Google's APIs
    # answer ``{}``); elsewhere a body without it is an unexpected answer, not an empty page.
    omits_empty: bool = False
    # Reads the pages itself, for an endpoint the user describes (a custom source's URL, next
    # link and records path are config): it requests through ``ctx.get_json``, yields nothing
    # when there is nothing to read, and the items go to ``parse``/``reduce`` as usual.
    reader: PageReader | None = None


@dataclass(frozen=True)
class CheckStep:
    """One line of a connection test.

    ``reauth``: the step failed because the credentials were refused (the source then needs
    the user to reconnect). ``warning``: the step passed, but something the user should know
    is wrong (the test still passes; its message says what). ``details``: structured facts a client can use (an embed
    configuration, the workspaces found); never secrets.
    """

    name: str
    ok: bool
    message: str
    reauth: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    warning: bool = False


CheckFunction = Callable[[Context], Awaitable[list[CheckStep]]]


@dataclass(frozen=True)
class Check:
    """A cheap authenticated GET that proves the credentials work."""

    path: str
    name: str = "authenticated"
    ok_message: str = "the provider accepted the credentials"
    params: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- webhooks


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's POST to ``/api/webhooks/{sourceId}`` as received.

    ``url`` is the full public URL the provider called (Twilio signs it); ``headers`` have
    lower-case names; ``form`` holds the fields of a form-encoded body (empty otherwise).
    """

    url: str
    headers: Mapping[str, str]
    body: bytes
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    """One verified event.

    ``id`` is the provider's event or delivery id: a second event with the same id is a replay
    and is refused. ``at`` is when the provider sent it (older than the webhook's ``max_age``:
    refused as stale). ``records`` are stored through the same upsert as a sync's; ``resync``
    asks for that period to be read again through the source's own sync (a call changed: the
    day's totals are recomputed from the provider's call log, never patched by hand).
    """

    id: str
    at: datetime | None = None
    records: tuple[Record, ...] = ()
    resync: Window | None = None


@dataclass(frozen=True)
class WebhookReply:
    """A handshake answered without storing anything (RingCentral echoes ``Validation-Token``)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


WebhookVerifier = Callable[[WebhookRequest, Any], "list[WebhookEvent] | WebhookReply"]
"""(request, validated config) → the events, or a handshake reply; raises
``WebhookSignatureError`` (a 401, nothing changes) when the signature or token is wrong."""


@dataclass(frozen=True)
class Webhook:
    """How a provider pushes events to Inflow and how each is verified."""

    verify: WebhookVerifier
    max_age: timedelta = timedelta(minutes=5)
    description: str = ""


@dataclass(frozen=True)
class Connector:
    """A provider, declared: identity, config model, auth scheme and metric catalog."""

    slug: str
    title: str
    category: Category
    config: type[ConnectorConfig]
    auth_type: AuthType
    description: str = ""
    docs_url: str = ""
    metrics: tuple[MetricDef, ...] = ()
    base_url: str = ""
    auth: AuthSpec | AuthChoice = field(default_factory=NoAuth)
    checks: tuple[Check | CheckFunction, ...] = ()
    streams: tuple[Stream, ...] = ()
    rate_limit: RateLimit = field(default_factory=RateLimit)
    quota: Quota | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[int, Action] = field(default_factory=dict)
    classify: Classifier | None = None
    reset_after: ResetHook | None = None
    # Reads every response's budget headers: the seconds the next request must wait before it is
    # sent (RingCentral: `X-Rate-Limit-Remaining: 0` → its `X-Rate-Limit-Window`), or None.
    pace: ResetHook | None = None
    # How far back from now the API serves data, and the longest range one read may span
    # (Clarity: the last 1-3 days): a fetch outside them is refused with the reason.
    history: timedelta | None = None
    max_range: timedelta | None = None
    # The days one backfill chunk reads (a job of its own; ``sync/backfill.py``): sized to what
    # one read of the provider serves well. None: a week, or ``max_range`` when shorter.
    backfill_chunk: timedelta | None = None
    webhook: Webhook | None = None
    # The metrics a source's own config defines: (stored public config, key) → its definition
    # (aggregation, unit), or None when the source has no such metric.
    declared: Callable[[Mapping[str, Any], str], MetricDef | None] | None = None
    # A family of connectors shown as one API type (``calling``, one member per ``platform``):
    # the family's ``variants`` are its members by the value of ``variant_field`` in a config;
    # each member names its family, is stored under its own slug and shown as the family.
    variants: Mapping[str, Connector] = field(default_factory=dict)
    variant_field: str = "platform"
    family: str | None = None
    # The provider account a source reads, from its stored (public) config: two sources of one
    # account list the same reports and dashboards (a space shows each once). None: unknown.
    account: Callable[[Mapping[str, Any]], str | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def config_schema(self) -> dict[str, Any]:
        """The JSON Schema of ``Config`` by alias: secrets are ``writeOnly`` passwords."""
        if self.variants:  # one schema per member, told apart by the variant field
            members = [v.config_schema() for v in self.variants.values()]
            return {
                "title": self.config.__name__,
                "oneOf": members,
                "discriminator": {"propertyName": self.variant_field},
            }
        schema = self.config.model_json_schema(by_alias=True)
        for name in self.config.secret_fields():
            # pydantic marks SecretStr itself, so an optional secret carries the marks only
            # inside its anyOf; clients read them on the property.
            schema["properties"][name].update(writeOnly=True, format="password")
        return schema

    def metric(self, key: str, config: Mapping[str, Any] | None = None) -> MetricDef | None:
        """A metric of the catalog or, given a source's stored (public) config, one the source
        itself declares (``declared``: a custom source names its own metrics)."""
        found = next((m for m in self.metrics if m.key == key), None)
        if found is None and config is not None and self.declared is not None:
            return self.declared(config, key)
        return found

    def member(self, config: Mapping[str, Any]) -> Connector:
        """The family member a config names (this connector when it is no family); a missing
        or unknown ``platform`` is a ``ValidationFailedError`` naming the choices."""
        if not self.variants:
            return self
        chosen = config.get(self.variant_field)
        if isinstance(chosen, str) and chosen in self.variants:
            return self.variants[chosen]
        choices = ", ".join(sorted(self.variants))
        problem = "is required" if chosen is None else f"{chosen!r} is not one"
        raise ValidationFailedError(
            "invalid config",
            [FieldError(f"config.{self.variant_field}", f"{problem}; choose one of: {choices}")],
        )


__all__ = [
    "Action",
    "ApiKey",
    "Asset",
    "AuthSpec",
    "Basic",
    "Bearer",
    "Check",
    "CheckStep",
    "Connector",
    "ConnectorConfig",
    "Context",
    "Cursor",
    "DataPoint",
    "Granularity",
    "Incremental",
    "Kind",
    "LinkHeader",
    "MetricDef",
    "NextUrl",
    "NoAuth",
    "OAuth2AuthorizationCode",
    "OAuth2ClientCredentials",
    "OAuth2JwtBearer",
    "Offset",
    "PageNumber",
    "Pagination",
    "Quota",
    "RateLimit",
    "Record",
    "Resolution",
    "ResultCap",
    "SinglePage",
    "Stream",
    "Webhook",
    "WebhookEvent",
    "WebhookReply",
    "WebhookRequest",
    "Window",
    "today_ordinal",
]

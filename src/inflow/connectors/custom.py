"""Custom source (type ``calling``, platform ``custom``): your own JSON, as data points.

Pull: Inflow reads ``apiUrl`` (optionally with one auth header, and following a next-page link
found at ``mapping.next``). Push: your system POSTs items to the source's ``webhookUrl``, signed
with ``secret``. Either way the same ``mapping`` turns each item into a reading, and readings of
one metric, period and dimension set are combined by the metric's aggregation (``sum`` unless
``mapping.aggregations`` says ``average``, ``last``, ``max`` or ``min``; the rule the series
API then uses too: `declared`).

Mapping paths are JSONPath (jsonpath-ng's extended syntax: filters such as
``$.data[?(@.kind == 'call')]`` work). ``records`` and ``next`` start at the response body; the
others start at one item (``$`` is the item, ``stats.value`` = ``$.stats.value``). ``metric`` is
a path only when it starts with ``$`` (``$.event.name``); otherwise it is the metric key itself.
A ``records`` path that finds one list means its elements. ``timestamp``: an ISO date or datetime
(a date, or a datetime without an offset, is read in ``timezone``) or epoch seconds (above
10^11: milliseconds). Each point is the period of ``granularity`` holding the timestamp, in
``timezone``. An item without a number at ``value`` (or without a metric or timestamp) is skipped
and counted in the run; a dimension whose path finds nothing is left out of that item's point.

Each read restates every period its items touch: point the URL at data whose periods are whole
(a rolling window that starts mid-week would restate that week with part of its days).

Push signature (docs/webhooks-custom.md has Python and curl/openssl examples)::

    X-Inflow-Timestamp: <unix seconds>          refused when more than 5 minutes off
    X-Inflow-Event-Id:  <your unique id>        a second delivery with this id is a replay
    X-Inflow-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{eventId}.{raw body}")>

The event id is signed with the body, so a captured delivery cannot be replayed under a new id.
The body is one item (an object picked by ``records``) or a JSON list of items. A pushed value
states its period (send totals, not increments): a later push of the same metric, period and
dimensions replaces it. A delivery with an item the mapping cannot read is refused whole (422,
naming the items) so the sender learns at once; nothing of it is stored.

Emulator: inflow.sandbox.custom
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Annotated, Any, Literal, NoReturn, Self
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import orjson
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as parse_path
from jsonpath_ng.jsonpath import Child, Fields, JSONPath, Root, This
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from inflow import bounds
from inflow.connectors import calling
from inflow.connectors.spec import (
    ApiKey,
    AuthSpec,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    DataPoint,
    MetricDef,
    NoAuth,
    Stream,
    Webhook,
    WebhookEvent,
    WebhookRequest,
)
from inflow.errors import (
    AccessDeniedError,
    ConfigError,
    CredentialsError,
    FieldError,
    InflowError,
    ValidationFailedError,
    WebhookSignatureError,
)
from inflow.http.pagination import check_link
from inflow.http.redact import redact_url

Granularity = Literal["hour", "day", "week", "month"]
Rule = Literal["sum", "average", "last", "max", "min"]
MAX_PAGES = 1000  # a next link that never ends (or loops back) stops here
SAMPLE = 20  # items the connection test maps
SIGNATURE, TIMESTAMP, EVENT_ID = "x-inflow-signature", "x-inflow-timestamp", "x-inflow-event-id"
MAX_METRIC, MAX_DIMENSIONS_KEY = 128, 512  # the store's column sizes


@lru_cache(maxsize=512)
def compiled(path: str) -> JSONPath:
    """A JSONPath, parsed once (``JSONPathError`` when it is malformed)."""
    return parse_path(path)


def _path(value: str) -> str:
    try:
        compiled(value)
    except JSONPathError as exc:  # the library's message names the position
        hint = ""
        if "(WHERE" in str(exc):  # jsonpath-ng's operators `where`/`wherenot` as field names
            hint = "; a field named where or wherenot is written quoted: $['where']"
        raise ValueError(f"{value!r} is not a JSONPath: {exc}{hint}") from exc
    return value


Path = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_path)]


class FieldMapping(BaseModel):
    """Where an item's metric, time, value and dimensions are (JSONPath; see the module)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    records: Path = Field("$", description="Where the items are in the body: `$.data[*]`, `data`.")
    metric: str = Field(
        min_length=1,
        max_length=500,
        description="A path starting with `$` (`$.event.name`), or the metric key itself.",
    )
    timestamp: Path = Field(description="ISO date or datetime, or epoch seconds.")
    value: Path = Field(description="A number (or a numeric string).")
    dimensions: dict[str, Path] = Field(default_factory=dict, description="{name: path}.")
    granularity: Granularity = "day"
    aggregations: dict[str, Rule] = Field(
        default_factory=dict, description="{metric: sum|average|last|max|min}; sum by default."
    )
    units: dict[str, Annotated[str, Field(max_length=32)]] = Field(default_factory=dict)
    next: Path | None = Field(None, description="Pull: where the next page's URL is, if any.")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value.startswith("$"):
            return _path(value)
        if len(value) > MAX_METRIC:
            raise ValueError(f"a metric key has at most {MAX_METRIC} characters")
        return value


class CustomConfig(ConnectorConfig):
    platform: Literal["custom"] = "custom"
    api_url: HttpUrl | None = Field(
        None, title="Data URL (pull)", description="A URL answering JSON; empty: push only."
    )
    header_name: str | None = Field(
        None,
        title="Auth header name",
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$",
        examples=["Authorization", "X-Api-Key"],
    )
    header_value: SecretStr | None = Field(None, title="Auth header value")
    mapping: FieldMapping
    secret: SecretStr | None = Field(
        None,
        title="Push secret",
        description="HMAC-SHA256 key your system signs pushes with (16 characters or more).",
    )
    timezone: calling.TimeZone = "UTC"  # a date or offset-less datetime is read in it
    fixed_once_data = ("timezone",)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The mapping's schema inlined: the calling type shows this schema inside its
        ``oneOf``, where a ``$ref`` to ``#/$defs/…`` would point at the family's root."""
        schema = super().model_json_schema(*args, **kwargs)
        defs = schema.pop("$defs", {})
        inlined: dict[str, Any] = _inline(schema, defs)
        return inlined

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use 16 characters or more")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        """Pull or push (or both), and an auth header with its value: errors name the field."""
        if self.api_url is None and self.secret is None:
            _refuse("secret", "give apiUrl (Inflow reads it) or a secret (you push, signed)")
        if self.header_name is not None and self.header_value is None:
            _refuse("headerValue", "required with headerName")
        if self.header_value is not None and self.header_name is None:
            _refuse("headerName", "required with headerValue")
        return self


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**defs[ref.removeprefix("#/$defs/")], **rest}, defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _refuse(field: str, message: str) -> NoReturn:
    """A validation error at ``field`` (a model validator's own errors name no field)."""
    error = PydanticCustomError("value_error", message)
    raise ValidationError.from_exception_data(
        "CustomConfig", [InitErrorDetails(type=error, loc=(field,), input=None)]
    )


# ---------------------------------------------------------------- mapping


class _Skip(Exception):  # noqa: N818 (an item the mapping cannot read: skipped, with the reason)
    pass


@dataclass(frozen=True, slots=True)
class Reading:
    """One item, mapped."""

    metric: str
    at: datetime
    value: float
    dimensions: tuple[tuple[str, str], ...]


_NOTHING = object()


@lru_cache(maxsize=512)
def _plain(path: str) -> tuple[str, ...] | None:
    """The field names of a plain chain (``$.a.b``, ``a.b``, ``$['a'].b``), else None: those
    are looked up directly, ten times faster than the general matcher, with the same result."""
    nodes: list[JSONPath] = []
    node = compiled(path)
    while isinstance(node, Child):
        nodes.insert(0, node.right)
        node = node.left
    nodes.insert(0, node)
    if isinstance(nodes[0], Root | This):
        nodes.pop(0)
    keys: list[str] = []
    for part in nodes:
        if not isinstance(part, Fields) or len(part.fields) != 1 or part.fields[0] == "*":
            return None
        keys.append(part.fields[0])
    return tuple(keys)


def first(path: str, item: Any) -> Any:
    """The first value ``path`` finds in ``item`` (``_NOTHING`` when none)."""
    keys = _plain(path)
    if keys is None:
        found = compiled(path).find(item)
        return found[0].value if found else _NOTHING
    for key in keys:
        if not isinstance(item, dict) or key not in item:
            return _NOTHING
        item = item[key]
    return item


def records_of(body: Any, path: str) -> list[Any]:
    """The items at ``path``; one list found is its elements."""
    found = [m.value for m in compiled(path).find(body)]
    if len(found) == 1 and isinstance(found[0], list):
        return list(found[0])
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _number(raw: Any, path: str) -> float:
    if raw is _NOTHING or raw is None:
        raise _Skip(f"no value at {path}")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _Skip(f"the value at {path} is {_short(raw)}, not a number")
    try:
        number = float(raw)
    except ValueError:
        raise _Skip(f"the value at {path} is {_short(raw)}, not a number") from None
    if not math.isfinite(number):
        raise _Skip(f"the value at {path} is {_short(raw)}, not a finite number")
    return number


def _moment(raw: Any, path: str, zone: tzinfo) -> datetime:
    """An ISO date/datetime (without offset: in ``zone``) or epoch seconds/milliseconds."""
    if raw is _NOTHING or raw is None or isinstance(raw, bool):
        raise _Skip(f"no timestamp at {path}")
    try:
        if isinstance(raw, int | float) or (isinstance(raw, str) and raw.isdigit()):
            seconds = float(raw)
            at = datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC)
            return _within(at, raw, path)
        text = str(raw)
        if len(text) == 10:
            return _within(datetime.combine(date.fromisoformat(text), time(), zone), raw, path)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise _Skip(f"the timestamp at {path} is {_short(raw)}: not ISO 8601 or epoch") from None
    return _within(moment if moment.tzinfo else moment.replace(tzinfo=zone), raw, path)


def _within(moment: datetime, raw: Any, path: str) -> datetime:
    # A moment where the date can be anything (``MAX_DATE`` + a zone + a month) stays
    # inside the calendar: the API's bounds (inflow/bounds.py).
    if not bounds.MIN_MOMENT <= moment <= bounds.END_MOMENT:
        raise _Skip(f"the timestamp at {path} is {_short(raw)}: not {bounds.DATE_RANGE}")
    return moment


def read_item(item: Any, mapping: FieldMapping, zone: tzinfo) -> Reading:
    """One item → a reading, or ``_Skip`` saying what is missing."""
    metric = mapping.metric
    if metric.startswith("$"):
        found = first(metric, item)
        if found is _NOTHING or found is None or found == "" or isinstance(found, dict | list):
            raise _Skip(f"no metric name at {metric}")
        metric = str(found)
        if len(metric) > MAX_METRIC:
            raise _Skip(f"the metric name at {mapping.metric} is over {MAX_METRIC} characters")
    value = _number(first(mapping.value, item), mapping.value)
    at = _moment(first(mapping.timestamp, item), mapping.timestamp, zone)
    dims: list[tuple[str, str]] = []
    for name, path in mapping.dimensions.items():
        found = first(path, item)
        if found is _NOTHING or found is None:
            continue  # left out of this point
        if isinstance(found, dict | list):
            raise _Skip(f"dimension {name!r} at {path} is {_short(found)}, not a value")
        dims.append((name, str(found).lower() if isinstance(found, bool) else str(found)))
    if "\x00" in metric or any("\x00" in v for _, v in dims):  # PostgreSQL stores no NUL
        raise _Skip("a metric name or dimension value holds a NUL character (\\u0000)")
    return Reading(metric, at, value, tuple(dims))


def read_items(
    items: Iterable[Any], mapping: FieldMapping, zone: tzinfo
) -> tuple[list[Reading], list[tuple[int, str]]]:
    """The readings of ``items`` and, for each item skipped, its index and why."""
    readings: list[Reading] = []
    skipped: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        try:
            readings.append(read_item(item, mapping, zone))
        except _Skip as exc:
            skipped.append((index, str(exc)))
    return readings, skipped


def period(moment: datetime, granularity: Granularity, zone: tzinfo) -> tuple[datetime, datetime]:
    """The ``[start, end)`` (UTC) of the hour, day, ISO week or month holding ``moment`` in
    ``zone`` (wall-clock bounds: a day across a DST change is 23 or 25 hours)."""
    local = moment.astimezone(zone)
    if granularity == "hour":
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return start, start + timedelta(hours=1)
    day = local.date()
    if granularity == "week":
        day -= timedelta(days=day.weekday())
        after = day + timedelta(days=7)
    elif granularity == "month":
        day = day.replace(day=1)
        after = (day + timedelta(days=32)).replace(day=1)
    else:
        after = day + timedelta(days=1)
    return (
        datetime.combine(day, time(), zone).astimezone(UTC),
        datetime.combine(after, time(), zone).astimezone(UTC),
    )


@dataclass
class _Total:
    count: int
    total: float
    low: float
    high: float
    last_at: datetime
    last: float

    def add(self, value: float, at: datetime) -> None:
        self.count += 1
        self.total += value
        self.low, self.high = min(self.low, value), max(self.high, value)
        if at >= self.last_at:  # the latest reading; of equal times, the later item
            self.last_at, self.last = at, value

    def value(self, rule: Rule) -> float:
        if rule == "average":
            return self.total / self.count
        if rule == "last":
            return self.last
        return {"sum": self.total, "max": self.high, "min": self.low}[rule]


def points(
    readings: Sequence[Reading],
    mapping: FieldMapping,
    zone_name: str,
    *,
    now: datetime | None = None,
    within: tuple[datetime, datetime] | None = None,
) -> list[DataPoint]:
    """One point per metric, period and dimension set, by each metric's aggregation; an
    average is weighted by its readings. ``within``: only readings at those times."""
    now = now or datetime.now(UTC)
    zone = ZoneInfo(zone_name)
    totals: dict[tuple[str, datetime, datetime, tuple[tuple[str, str], ...]], _Total] = {}
    for r in readings:
        if within is not None and not within[0] <= r.at < within[1]:
            continue
        start, end = period(r.at, mapping.granularity, zone)
        key = (r.metric, start, end, r.dimensions)
        found = totals.get(key)
        if found is None:
            totals[key] = _Total(1, r.value, r.value, r.value, r.at, r.value)
        else:
            found.add(r.value, r.at)
    out: list[DataPoint] = []
    for (metric, start, end, dims), total in totals.items():
        rule = mapping.aggregations.get(metric, "sum")
        out.append(
            DataPoint(
                metric,
                total.value(rule),
                start,
                end,
                granularity=mapping.granularity,
                dimensions=dict(dims),
                unit=mapping.units.get(metric),
                timezone=zone_name,
                complete=end <= now,
                weight=float(total.count) if rule == "average" else None,
            )
        )
    return out


def _fits(point: DataPoint) -> bool:
    return len(point.dimensions_key) <= MAX_DIMENSIONS_KEY


# ---------------------------------------------------------------- pull


def _literal(url: str) -> str:
    """A user's URL through the runtime's ``{config.x}`` templating, unchanged."""
    return url.replace("{", "{{").replace("}", "}}")


async def read_pages(ctx: Context) -> AsyncIterator[list[Mapping[str, Any]]]:
    """The items of ``apiUrl``, then of each next link (``mapping.next``); none in push mode."""
    url = str(ctx.config.api_url or "")
    mapping: FieldMapping = ctx.config.mapping
    seen = {url}
    for _ in range(MAX_PAGES):
        if not url:
            return
        body = await ctx.get_json(_literal(url))
        yield records_of(body, mapping.records)
        link = first(mapping.next, body) if mapping.next else None
        url = urljoin(url, link) if isinstance(link, str) and link else ""
        if url in seen:
            return
        if url:  # a link the API handed back: followed on apiUrl's own origin only
            check_link(url, str(ctx.config.api_url), provider="custom")
        seen.add(url)


def reduce(items: list[Mapping[str, Any]], ctx: Context) -> list[DataPoint]:
    """Every item read → the points (a fetch keeps those in its window); bad items skipped."""
    config = ctx.config
    readings, skipped = read_items(items, config.mapping, ZoneInfo(config.timezone))
    for index, reason in skipped:
        ctx.skip(f"item {index}: {reason}")
    window = (ctx.window.start, ctx.window.end) if ctx.window is not None else None
    found = points(readings, config.mapping, config.timezone, within=window)
    kept = [p for p in found if _fits(p)]
    if len(kept) < len(found):
        ctx.skip(f"{len(found) - len(kept)} points with dimensions over {MAX_DIMENSIONS_KEY} chars")
    return kept


async def check_mapping(ctx: Context) -> list[CheckStep]:
    """Read the URL (the SSRF guard first), map its first items, say what they give."""
    config = ctx.config
    if not config.api_url:
        message = "push mode: items signed with the secret are accepted at this source's webhookUrl"
        return [CheckStep("push", True, message, details={"mode": "push"})]
    url = str(config.api_url)
    shown = redact_url(url)
    try:
        body = await ctx.get_json(_literal(url))
    except (CredentialsError, AccessDeniedError) as exc:
        reauth = isinstance(exc, CredentialsError)
        hint = "; check headerName and headerValue"
        return [CheckStep("URL", False, f"{exc.message}{hint}", reauth=reauth)]
    except ConfigError as exc:  # the SSRF guard: refused before any request was sent
        message = f"Inflow does not call {shown} (SSRF protection): {exc.message}"
        return [CheckStep("URL allowed", False, message, details={"url": shown})]
    except InflowError as exc:
        return [CheckStep("URL", False, exc.message)]
    steps = [CheckStep("URL", True, f"{shown} answered with JSON")]
    mapping: FieldMapping = config.mapping
    items = records_of(body, mapping.records)
    sample = items[:SAMPLE]
    readings, skipped = read_items(sample, mapping, ZoneInfo(config.timezone))
    found = points(readings, mapping, config.timezone)
    details: dict[str, Any] = {
        "items": len(items),
        "sampled": len(sample),
        "points": len(found),
        "skipped": len(skipped),
        "firstError": f"item {skipped[0][0]}: {skipped[0][1]}" if skipped else None,
        "metrics": sorted({p.metric for p in found}),
    }
    if not items:
        keys = sorted(body)[:20] if isinstance(body, dict) else []
        message = f"records {mapping.records!r} finds no items in the response"
        steps.append(CheckStep("mapping", False, message, details={**details, "keys": keys}))
    elif not readings:
        message = (
            f"none of the first {len(sample)} items matches the mapping: {details['firstError']}"
        )
        steps.append(CheckStep("mapping", False, message, details=details))
    else:
        message = f"the first {len(sample)} of {len(items)} items give {len(found)} data points"
        if skipped:
            message += f"; {len(skipped)} skipped ({details['firstError']})"
        steps.append(CheckStep("mapping", True, message, details=details))
    return steps


def auth(config: CustomConfig) -> AuthSpec:
    """The one header the user gave for the URL, if any."""
    if config.header_name:
        return ApiKey(value="{config.header_value}", header=config.header_name)
    return NoAuth()


# ---------------------------------------------------------------- push


def signature(secret: str, timestamp: str, event_id: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``{timestamp}.{eventId}.{body}`` keyed by the secret."""
    signed = f"{timestamp}.{event_id}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(request: WebhookRequest, config: CustomConfig) -> list[WebhookEvent]:
    """Check the signature (constant time), then map the items: one event, its points."""
    if config.secret is None:
        raise WebhookSignatureError("this custom source has no secret: set one to accept pushes")
    headers = request.headers
    sent, timestamp = headers.get(SIGNATURE, ""), headers.get(TIMESTAMP, "")
    event_id = headers.get(EVENT_ID, "")
    missing = [
        n for n, v in ((SIGNATURE, sent), (TIMESTAMP, timestamp), (EVENT_ID, event_id)) if not v
    ]
    if missing:
        raise WebhookSignatureError(f"missing header(s): {', '.join(missing)}")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookSignatureError(f"{TIMESTAMP} must be unix seconds")
    try:  # 12 digits reach past the year 9999
        at = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookSignatureError(f"{TIMESTAMP} must be unix seconds") from None
    if len(event_id) > 200:
        raise WebhookSignatureError(f"{EVENT_ID} is longer than 200 characters")
    expected = signature(config.secret.get_secret_value(), timestamp, event_id, request.body)
    if not hmac.compare_digest(expected.encode(), sent.strip().lower().encode()):
        raise WebhookSignatureError(
            f"{SIGNATURE} does not match: expected sha256=<hex HMAC-SHA256 of "
            "'{timestamp}.{eventId}.{body}'> keyed with the source's secret"
        )
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailedError("invalid push", [FieldError("body", "not JSON")]) from exc
    mapping = config.mapping
    items = body if isinstance(body, list) else records_of(body, mapping.records)
    readings, skipped = read_items(items, mapping, ZoneInfo(config.timezone))
    if skipped:
        errors = [FieldError(f"body.{i}", reason) for i, reason in skipped[:20]]
        raise ValidationFailedError(
            f"{len(skipped)} pushed item(s) do not match the mapping", errors
        )
    found = points(readings, mapping, config.timezone)
    if not all(_fits(p) for p in found):
        message = f"dimensions longer than {MAX_DIMENSIONS_KEY} characters"
        raise ValidationFailedError("invalid push", [FieldError("body", message)])
    return [WebhookEvent(id=event_id, at=at, records=tuple(found))]


# ---------------------------------------------------------------- metrics


def declared(config: Mapping[str, Any], key: str) -> MetricDef | None:
    """A metric of a custom source (stored config): its constant key, one named in
    ``aggregations``, or any key when the metric comes from a path."""
    mapping = config.get("mapping")
    if not isinstance(mapping, Mapping):
        return None
    rules = mapping.get("aggregations") or {}
    metric = str(mapping.get("metric") or "")
    if not metric.startswith("$") and key != metric and key not in rules:
        return None
    rule = rules.get(key, "sum")
    unit = (mapping.get("units") or {}).get(key) or ""
    return MetricDef(key, key, unit, "Declared by the custom source's mapping.", rule)


CONNECTOR = Connector(
    slug="custom",
    title="Custom source",
    category="calling",
    family="calling",
    config=CustomConfig,
    auth_type="api_key",
    description="Your own metrics: a JSON URL Inflow reads, or signed items you push.",
    auth=auth,
    checks=(check_mapping,),
    streams=(Stream("items", "", reader=read_pages, reduce=reduce),),
    webhook=Webhook(
        verify=verify,
        description="HMAC-SHA256 of '{timestamp}.{eventId}.{body}' in X-Inflow-Signature.",
    ),
    declared=declared,
)

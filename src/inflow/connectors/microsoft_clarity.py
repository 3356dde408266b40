"""Microsoft Clarity: a project's dashboard metrics from the Data Export API (live insights).

One operation returns every metric block of the last 24, 48 or 72 hours before the call
(``numOfDays``), in UTC: there are no dates, no daily series and nothing older than 72 hours.
A point's period is that rolling window, its end floored to the hour, stored with the
granularity ``24h``, ``48h`` or ``72h`` (a sync at 00:40 UTC gives exactly the previous UTC
day; a re-sync within the hour updates the same points). A
project has ten calls a day, shared by every client of the project (``Quota``).

API docs: https://learn.microsoft.com/en-us/clarity/setup-and-installation/clarity-data-export-api
Emulator: inflow.sandbox.microsoft_clarity
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import Field, HttpUrl, SecretStr

from inflow.connectors.spec import (
    Action,
    Aggregation,
    Bearer,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    DataPoint,
    Granularity,
    Kind,
    MetricDef,
    Quota,
    Resolution,
    Stream,
)
from inflow.errors import ConfigError, RateLimitedError

PATH = "/export-data/api/v1/project-live-insights"
DAY = timedelta(days=1)
MAX_DAYS = 3  # the API's numOfDays is 1, 2 or 3: nothing older than 72 hours exists
ROLLING_OF: dict[int, Granularity] = {1: "24h", 2: "48h", 3: "72h"}
SLACK = timedelta(minutes=5)  # a fetch range checked a moment ago still fits


class ClarityConfig(ConnectorConfig):
    project_id: str = Field(title="Project ID", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    api_key: SecretStr = Field(
        title="API token",
        min_length=1,
        description="Settings → Data Export → Generate new API token (project admins only).",
    )
    base_url: HttpUrl = Field(default=HttpUrl("https://www.clarity.ms"), title="Base URL")


def _norm(name: object) -> str:
    """Clarity spells names several ways ("Scroll Depth", "ScrollDepth", "Country/Region")."""
    return re.sub(r"[\s/_-]", "", str(name)).lower()


# Row fields per block → metric key. Both spellings seen live (distinct/distant, pages/Pages).
FIELDS: dict[str, dict[str, str]] = {
    "traffic": {
        "totalsessioncount": "sessions",
        "totalbotsessioncount": "bot_sessions",
        "distinctusercount": "distinct_users",
        "distantusercount": "distinct_users",
        "pagespersessionpercentage": "pages_per_session",
    },
    "engagementtime": {"totaltime": "engagement_time", "activetime": "active_time"},
    "scrolldepth": {"averagescrolldepth": "scroll_depth"},
}
SIGNALS = {  # block → (metric, label, what one event is)
    "deadclickcount": ("dead_clicks", "Dead clicks", "a click that did nothing"),
    "rageclickcount": ("rage_clicks", "Rage clicks", "rapid repeated clicks in one place"),
    "quickbackclick": ("quickbacks", "Quickbacks", "a quick return to the previous page"),
    "excessivescroll": ("excessive_scrolls", "Excessive scrolling", "scrolling past need"),
    "scripterrorcount": ("script_errors", "Script errors", "a JavaScript error"),
    "errorclickcount": ("error_clicks", "Error clicks", "a click raising a JavaScript error"),
}
FIELDS |= {
    block: {
        "subtotal": m,
        "sessionswithmetricpercentage": f"{m}_sessions_pct",
        "pagesviews": f"{m}_page_views",
    }
    for block, (m, _, _) in SIGNALS.items()
}
TOP_LISTS = {  # block → (metric, dimension); rows are {name|url, sessionsCount|visitsCount}
    "popularpages": ("page_visits", "url"),
    "browser": ("browser_sessions", "browser"),
    "device": ("device_sessions", "device"),
    "os": ("os_sessions", "os"),
    "country": ("country_sessions", "country"),
    "countryregion": ("country_sessions", "country"),
    "pagetitle": ("page_title_sessions", "page_title"),
    "referrerurl": ("referrer_sessions", "referrer"),
}
# dimension1..3 add one key per dimension to each row ("OS": "Android", "URL"/"Url": ...).
DIMENSIONS = {
    d: d for d in ("browser", "device", "os", "source", "medium", "campaign", "channel", "url")
}
DIMENSIONS |= {"country": "country", "countryregion": "country"}


def num_of_days(ctx: Context) -> int:
    """1 (the last 24 h) for a sync; for a fetch, the fewest days reaching back to its start."""
    if ctx.window is None:
        return 1
    back = datetime.now(UTC) - ctx.window.start
    days = max(1, math.ceil((back - SLACK) / DAY))
    if days > MAX_DAYS:
        raise ConfigError(
            f"Microsoft Clarity serves only the last {MAX_DAYS * 24} hours; "
            f"{ctx.window.start:%Y-%m-%dT%H:%MZ} is further back"
        )
    return days


def _number(value: Any) -> float | None:
    """Counts come as strings ("239"), ratios as numbers; anything else is no value."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _dimensions(row: Mapping[str, Any]) -> dict[str, str]:
    return {DIMENSIONS[_norm(k)]: str(v) for k, v in row.items() if _norm(k) in DIMENSIONS and v}


def _key(dims: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dims.items()))


def _field(row: Mapping[str, Any], name: str) -> float | None:
    return next((_number(v) for k, v in row.items() if _norm(k) == name), None)


def insights(blocks: list[Mapping[str, Any]], ctx: Context) -> Iterator[DataPoint]:
    """Every metric block of one response as data points of the window the call summed."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    days = num_of_days(ctx)
    start = end - days * DAY
    rolling = ROLLING_OF[days]  # stored as what it is: the last 24/48/72 hours, not a day

    def point(
        metric: str, value: float, dims: Mapping[str, str], weight: float | None
    ) -> DataPoint:
        unit, weighted = UNITS[metric], metric in WEIGHTED_METRICS
        weight = weight if weighted else None
        return DataPoint(
            metric,
            value,
            start,
            end,
            granularity=rolling,
            dimensions=dims,
            unit=unit,
            weight=weight,
        )

    by_name = {_norm(b.get("metricName")): b.get("information") or [] for b in blocks}
    sessions = {  # the weight of averages and percentages with the same dimensions
        _key(_dimensions(row)): n
        for row in by_name.get("traffic", [])
        if (n := _field(row, "totalsessioncount")) is not None
    }
    for name, rows in by_name.items():
        if name in TOP_LISTS:
            metric, dim = TOP_LISTS[name]
            for row in rows:
                label = row.get("url") if name == "popularpages" else row.get("name")
                value = _field(row, "visitscount" if name == "popularpages" else "sessionscount")
                if value is not None:  # a null referrer is direct traffic
                    yield point(metric, value, {dim: str(label or "(none)")}, None)
            continue
        fields = FIELDS.get(name, {})  # a block the catalog does not know yields nothing
        for row in rows:
            dims = _dimensions(row)
            own = _field(row, "sessionscount")  # the base of a friction block's percentages
            weight = own if own is not None else sessions.get(_key(dims))
            for field, raw in row.items():
                mapped = fields.get(_norm(field))
                value = _number(raw)
                if mapped is not None and value is not None:
                    yield point(mapped, value, dims, weight)
                elif mapped is not None and raw is not None:  # not null, yet no number: say so
                    ctx.skip(f"{name}: {field} is {str(raw)[:40]!r}, not a number")


async def check_token(ctx: Context) -> list[CheckStep]:
    """One call (of the ten a day); a 429 still proves the token (as PostHog's check does)."""
    try:
        await ctx.get_json(PATH, params={"numOfDays": 1})
    except RateLimitedError as exc:
        if exc.status != 429:  # our own count refused: nothing was sent
            return [CheckStep("daily quota", False, exc.message)]
        return [
            CheckStep(
                "API token",
                True,
                "Clarity accepted the token, but the project's ten export calls for today are "
                "used up (429); data can be read again after 00:00 UTC",
            )
        ]
    return [
        CheckStep(
            "API token",
            True,
            f"Clarity accepted the token for project {ctx.config.project_id} (the test used "
            "one of the project's ten export calls today)",
        )
    ]


def _until_midnight() -> float:
    now = datetime.now(UTC)
    return (datetime.combine(now.date() + DAY, datetime.min.time(), UTC) - now).total_seconds()


def classify(response: httpx.Response) -> Resolution | None:
    """Clarity documents statuses, not bodies: each status says what the user must do."""
    status = response.status_code
    if status == 401:
        return Resolution(
            Action.REFRESH_AUTH,
            Kind.AUTH,
            "Clarity refused the API token (401: missing, invalid, revoked or expired); "
            "generate a new one in Clarity → Settings → Data Export",
        )
    if status == 403:  # the token is another project's, or its creator lost access
        return Resolution(
            Action.FAIL,
            Kind.AUTH,
            "Clarity refused the API token for this project (403); generate a token in the "
            "project you want to read (Settings → Data Export)",
        )
    if status == 429:  # no Retry-After: the quota is per UTC day; waiting inside a run is futile
        return Resolution(
            Action.FAIL,
            Kind.RATE_LIMITED,
            "the project's ten export calls for today are used up (429); the quota resets at "
            "00:00 UTC",
            retry_after=_until_midnight(),
        )
    return None


BY_SESSIONS = "Weighted by sessions when periods or dimension values combine."


def _by_sessions(
    key: str, label: str, unit: str, text: str, rule: Aggregation = "average"
) -> MetricDef:
    return MetricDef(key, label, unit, f"{text} {BY_SESSIONS}", rule, "sessions")


def _top(key: str, label: str, dim: str, text: str = "") -> MetricDef:
    return MetricDef(
        key, label, "count", f"{text}One point per item of Clarity's top list, in dimension {dim}."
    )


METRICS = (
    MetricDef(
        "sessions",
        "Sessions",
        "count",
        "Sessions, bots excluded. The export API has no bounce rate, so there is none here "
        "(quickbacks are the nearest signal).",
    ),
    MetricDef("bot_sessions", "Bot sessions", "count", "Sessions Clarity classed as bots."),
    MetricDef(
        "distinct_users",
        "Distinct users",
        "count",
        "Distinct users in the window: not additive (users return), so combined windows or "
        "dimension values show the largest, a lower bound.",
        "max",
    ),
    _by_sessions(
        "pages_per_session", "Pages per session", "pages", "Average page views per session."
    ),
    _by_sessions(
        "engagement_time",
        "Engagement time",
        "seconds",
        "Total time per session as the dashboard shows it (not documented further).",
    ),
    _by_sessions(
        "active_time",
        "Active time",
        "seconds",
        "Active time per session as the dashboard shows it.",
    ),
    _by_sessions("scroll_depth", "Scroll depth", "percent", "Average scroll depth."),
    *(
        metric
        for key, label, what in SIGNALS.values()
        for metric in (
            MetricDef(key, label, "count", f"Events: each is {what}."),
            _by_sessions(
                f"{key}_sessions_pct",
                f"Sessions with {label.lower()}",
                "percent",
                f"Share of sessions with {what} (without: 100 minus this).",
                "ratio",
            ),
            MetricDef(
                f"{key}_page_views",
                f"Page views with {label.lower()}",
                "count",
                f"Page views with {what} (Clarity's pagesViews).",
            ),
        )
    ),
    _top(
        "page_visits",
        "Popular pages: visits",
        "url",
        'The "Top pages" of the original product: visits per URL. ',
    ),
    _top("browser_sessions", "Sessions by browser", "browser"),
    _top("device_sessions", "Sessions by device", "device"),
    _top("os_sessions", "Sessions by operating system", "os"),
    _top("country_sessions", "Sessions by country", "country"),
    _top("page_title_sessions", "Sessions by page title", "page_title"),
    _top("referrer_sessions", "Sessions by referrer", "referrer", "Direct traffic is '(none)'. "),
)
UNITS = {m.key: m.unit for m in METRICS}
WEIGHTED_METRICS = frozenset(m.key for m in METRICS if m.weight_metric)

CONNECTOR = Connector(
    slug="microsoft_clarity",
    title="Microsoft Clarity",
    category="analytics",
    config=ClarityConfig,
    auth_type="bearer",
    description="Sessions, users, engagement, scroll depth, friction signals and popular "
    "pages of a Clarity project (the Data Export API: the last 1-3 days, ten calls a day).",
    docs_url="https://learn.microsoft.com/en-us/clarity/setup-and-installation/clarity-data-export-api",
    metrics=METRICS,
    base_url="https://www.clarity.ms",
    auth=Bearer("{config.api_key}"),
    headers={"Content-Type": "application/json"},  # the official samples send it on the GET
    checks=(check_token,),
    streams=(Stream("live_insights", PATH, params={"numOfDays": num_of_days}, reduce=insights),),
    quota=Quota(limit=10, per="day", key="{config.project_id}", paths=(PATH,), retries=1),
    classify=classify,
    history=timedelta(days=MAX_DAYS),
    max_range=timedelta(days=MAX_DAYS),
)

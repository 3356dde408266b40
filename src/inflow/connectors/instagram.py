"""Instagram: daily account insights, the profile and per-post insights of a professional account.

Graph API with Facebook Login (graph.instagram.com takes the same paths with an Instagram-Login
token). API docs: `DOCS` below. Emulator: inflow.sandbox.instagram

One request per metric: a metric the configured version no longer serves fails its whole request
(dossier §6), so it is skipped alone, noted in the run and named by the connection test. Posts are
data points (`post_*`, dimension `media`): a post's lifetime totals snapshotted per day, since
Graph keeps no per-day history of them and a post is not a report or dashboard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, HttpUrl, SecretStr

from inflow.connectors.spec import (
    Action,
    Bearer,
    Check,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    DataPoint,
    Incremental,
    Kind,
    MetricDef,
    NextUrl,
    Resolution,
    Stream,
)

if TYPE_CHECKING:
    import httpx

GRAPH = "https://graph.facebook.com"
DOCS = (
    "https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights"
)
VERSION = "{config.api_version}"
ACCOUNT = f"/{VERSION}/{{config.business_account_id}}"
REACH = {"metric": "reach", "period": "day", "metric_type": "time_series"}
DAY = timedelta(days=1)
DAY_START = timedelta(hours=7)  # insight days end at 07:00 UTC, midnight at UTC-7 (dossier §3.2)
TZ = "Etc/GMT+7"  # UTC-07:00 all year, as Graph's end_time has it
SERIES = {"reach": "reach", "follower_count": "new_followers", "impressions": "impressions"}
TOTAL_NAMES = "views accounts_engaged total_interactions likes comments shares saves replies"
TOTALS = (*TOTAL_NAMES.split(), "profile_links_taps", "profile_views", "website_clicks")
PROFILE = {"followers_count": "followers", "follows_count": "follows", "media_count": "media_count"}
POST_METRICS = ("reach", "views", "likes", "comments", "shares", "saved", "total_interactions")
RETIRED = {  # why a version refuses a metric (dossier §6), for the connection test's message
    "impressions": "deprecated from v22.0 and in every version since 2025-04-21 (use views)",
    "views": "served from v22.0 on",
}


class InstagramConfig(ConnectorConfig):
    business_account_id: str = Field(
        title="Instagram business account id",
        pattern=r"^\d{5,25}$",
        description="The IG user id (17841…) from GET /me/accounts?fields=instagram_business_"
        "account, not the Facebook Page id.",
    )
    access_token: SecretStr = Field(
        title="Access token",
        min_length=20,
        description="A long-lived user token (60 days), or a Page or system-user token, with "
        "instagram_basic, instagram_manage_insights, pages_show_list, pages_read_engagement.",
    )
    api_version: str = Field(default="v25.0", title="Graph API version", pattern=r"^v\d{2}\.0$")
    base_url: HttpUrl = Field(default=HttpUrl(GRAPH), title="Base URL")


# ---------------------------------------------------------------- records


def today() -> tuple[datetime, datetime]:
    """The Graph day under way (its UTC-7 midnight to the next)."""
    now = datetime.now(UTC) - DAY_START
    start = datetime(now.year, now.month, now.day, tzinfo=UTC) + DAY_START
    return start, start + DAY


def point(key: str, value: Any, start: datetime, **kw: Any) -> Iterator[DataPoint]:
    """A day's value; none for a day not begun or a missing value (never a made-up zero)."""
    now = datetime.now(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool) and start < now:
        end = start + DAY
        yield DataPoint(
            key, float(value), start, end, unit="count", timezone=TZ, complete=end <= now, **kw
        )


def series(item: Mapping[str, Any], _ctx: Context) -> Iterator[DataPoint]:
    """A time series: the value at `end_time` belongs to the day ending then."""
    for entry in item.get("values") or ():
        end = datetime.strptime(entry["end_time"], "%Y-%m-%dT%H:%M:%S%z")
        yield from point(SERIES[item["name"]], entry.get("value"), end - DAY)


def day_total(item: Mapping[str, Any], ctx: Context) -> Iterator[DataPoint]:
    """A total_value read for one day (`since` = `until` = that date)."""
    if ctx.window is not None:
        value = (item.get("total_value") or {}).get("value")
        yield from point(item["name"], value, ctx.window.start + DAY_START)


def profile(item: Mapping[str, Any], _ctx: Context) -> Iterator[DataPoint]:
    for field, key in PROFILE.items():
        yield from point(key, item.get(field), today()[0])


def post(item: Mapping[str, Any], ctx: Context) -> Iterator[DataPoint]:
    """A post's lifetime value (as `values[0]` or `total_value`), today's snapshot of it."""
    parent = ctx.parent or {}
    values = item.get("values")
    value = values[0].get("value") if values else (item.get("total_value") or {}).get("value")
    dims = {
        "media": str(parent.get("id")),
        "media_product_type": str(parent.get("media_product_type")),
    }
    yield from point(f"post_{item['name']}", value, today()[0], dimensions=dims)


# ---------------------------------------------------------------- errors

TOKEN_REASONS = {  # error_subcode of code 190
    463: "it has expired",
    460: "the password was changed",
    458: "the app was removed",
    459: "the user is checkpointed",
    464: "the user is unconfirmed",
    467: "it is invalid",
    492: "a Page or Business Manager role was lost",
}
PERMISSION_FIX = (
    "grant instagram_basic, instagram_manage_insights, pages_show_list and pages_read_engagement "
    "(and business_management when the Page is managed in Business Manager), then reconnect"
)
SKIPPED = (  # (#100) refusals of one metric: skip it, keep the rest of the run
    "no longer supported",
    "must be one of the following values",
    "does not support the",
    "only supports querying data for the last 30 days",
)
THROTTLE_WAIT_S = 60.0  # when no header says how long (X-App-Usage has percentages only)


def regain_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait: the largest `estimated_time_to_regain_access` (minutes) of any entry of
    `X-Business-Use-Case-Usage`, else a minute."""
    try:
        usage = json.loads(headers.get("x-business-use-case-usage") or "{}")
    except ValueError:
        usage = {}
    minutes = [
        float(entry.get("estimated_time_to_regain_access") or 0)
        for entries in (usage.values() if isinstance(usage, dict) else ())
        for entry in (entries if isinstance(entries, list) else ())
        if isinstance(entry, dict)
    ]
    return max(minutes, default=0) * 60 or THROTTLE_WAIT_S


def classify(response: httpx.Response) -> Resolution | None:
    """Graph errors by `error.code`/`error_subcode` (dossier §4), not by HTTP status."""
    if response.status_code < 400:
        return None
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    code, sub, text = error.get("code"), error.get("error_subcode"), str(error.get("message", ""))
    found = re.search(r"/(v\d+\.\d+)/", response.request.url.path)
    version = found.group(1) if found else "this version"
    if code in (102, 104, 190):
        reason = TOKEN_REASONS.get(sub if isinstance(sub, int) else 0, "it is not valid")
        return Resolution(
            Action.FAIL, Kind.AUTH, f"the access token was refused ({reason}): {text}"
        )
    if code in (4, 17, 32, 613, 80002):
        wait = regain_after(response.headers)
        return Resolution(
            Action.RATE_LIMITED, Kind.RATE_LIMITED, f"rate limited (#{code}): {text}", wait
        )
    if code in (1, 2):
        return Resolution(Action.RETRY, Kind.TRANSIENT, f"temporary Graph error: {text}")
    if code == 10 and "not enough viewers" in text.lower():
        return Resolution(Action.IGNORE, message=f"a post without insights, skipped: {text}")
    if code == 10 or (isinstance(code, int) and 200 <= code <= 299):
        return Resolution(Action.FAIL, Kind.PERMISSION, f"{text}: {PERMISSION_FIX}")
    if code == 100 and sub == 2108006:
        return Resolution(
            Action.IGNORE,
            message=f"a post from before the business conversion has no insights, skipped: {text}",
        )
    if code == 100 and any(s in text for s in SKIPPED):
        return Resolution(
            Action.IGNORE,
            message=f"metric not served by {version}, skipped (deprecated or out of range): {text}",
        )
    if code == 100 and sub == 33:
        if (
            "metric_type" not in response.request.url.params
            and "/insights" in response.request.url.path
        ):
            return Resolution(Action.IGNORE, message=f"a post is gone, skipped: {text}")
        hint = (
            "check the business account id (the IG user id, not the Page id) and the token's Page"
        )
        return Resolution(Action.FAIL, Kind.NOT_FOUND, f"{text} ({hint})")
    return Resolution(Action.FAIL, Kind.REJECTED, f"request rejected (#{code}): {text}")


# ---------------------------------------------------------------- checks and streams


async def served(ctx: Context, metrics: str, metric_type: str, day: str) -> bool:
    params = {"metric": metrics, "period": "day", "metric_type": metric_type}
    return (
        await ctx.get_json(ACCOUNT + "/insights", params={**params, "since": day, "until": day})
        is not None
    )


async def check_metrics(ctx: Context) -> list[CheckStep]:
    """Which account metrics the configured version serves (a refused one is a skipped request)."""
    day = (datetime.now(UTC) - 2 * DAY).date().isoformat()
    refused: list[str] = []
    for group, metric_type in ((SERIES, "time_series"), (TOTALS, "total_value")):
        if not await served(ctx, ",".join(group), metric_type, day):
            refused += [m for m in group if not await served(ctx, m, metric_type, day)]
    total, version = len(SERIES) + len(TOTALS), ctx.config.api_version
    if not refused:
        return [CheckStep("metrics", True, f"{version} serves all {total} account metrics")]
    why = "; ".join(f"{m}: {RETIRED.get(m, 'refused by the API')}" for m in refused)
    served_n = f"{version} serves {total - len(refused)} of {total} account metrics"
    message = f"{served_n}; deprecated, skipped in syncs: {why}"
    return [CheckStep("metrics", len(refused) < total, message)]


def insights(metric: str, metric_type: str, window: timedelta, initial: timedelta) -> Stream:
    return Stream(
        f"insights_{metric}",
        ACCOUNT + "/insights",
        records="data",
        params={"metric": metric, "period": "day", "metric_type": metric_type},
        parse=series if metric_type == "time_series" else day_total,
        # Dates are Graph's UTC-7 days; an `until` date runs to its day's end (dossier §9.4).
        # Windows, not `paging.next`: Graph's next window runs on into the future.
        incremental=Incremental(
            cursor="end_time",
            start_param="since",
            end_param="until",
            format="date",
            end_inclusive=True,
            window=window,
            lookback=timedelta(days=2),  # values settle within 48 h
            initial=initial,
        ),
    )


STREAMS = (
    # at most 30 days between since and until (29 dates, the last one running to its end)
    insights("reach", "time_series", 29 * DAY, 30 * DAY),
    insights("follower_count", "time_series", 29 * DAY, 29 * DAY),  # the last 30 days only
    *(insights(m, "total_value", DAY, 30 * DAY) for m in TOTALS),  # one total per day
    Stream(
        "profile", ACCOUNT, params={"fields": ",".join(PROFILE)}, parse=profile, fetchable=False
    ),
    Stream(
        "media",
        ACCOUNT + "/media",
        records="data",
        # posts of the last 30 days (strtotime); older posts' totals barely move
        params={
            "fields": "id,media_type,media_product_type,timestamp",
            "limit": 100,
            "since": "-30 days",
        },
        pages=NextUrl("paging.next"),
    ),
    Stream(
        "post_insights",
        f"/{VERSION}/{{parent.id}}/insights",
        records="data",
        params={"metric": ",".join(POST_METRICS)},  # what feed posts and reels all serve
        parent="media",
        parse=post,
        fetchable=False,
    ),
    # Last: when the version no longer serves it, the run's recent requests say so.
    insights("impressions", "time_series", 29 * DAY, 30 * DAY),
)

METRICS = (
    MetricDef("reach", "Reach", "count", "Accounts that saw content (unique per day).", "max"),
    MetricDef("new_followers", "New followers", "count", "follower_count: last 30 days only."),
    MetricDef("impressions", "Impressions", "count", "Up to v21.0, and only until 2025-04-21."),
    MetricDef("views", "Views", "count", "Times content was played or shown (from v22.0)."),
    MetricDef("accounts_engaged", "Accounts engaged", "count", "Unique per day.", "max"),
    MetricDef("total_interactions", "Interactions", "count", "Likes, comments, shares, saves…"),
    MetricDef("likes", "Likes"),
    MetricDef("comments", "Comments"),
    MetricDef("shares", "Shares"),
    MetricDef("saves", "Saves"),
    MetricDef("replies", "Replies", "count", "Replies to stories."),
    MetricDef("profile_links_taps", "Profile link taps", "count", "Taps on contact buttons."),
    MetricDef("profile_views", "Profile views"),
    MetricDef("website_clicks", "Website clicks"),
    MetricDef("followers", "Followers", "count", "Snapshot of the day.", "last"),
    MetricDef("follows", "Following", "count", "Accounts followed: snapshot.", "last"),
    MetricDef("media_count", "Posts", "count", "Posts published: snapshot.", "last"),
    *(
        MetricDef(f"post_{m}", f"Post {m}", "count", "Lifetime total, per post and day.", "last")
        for m in POST_METRICS
    ),
)

CONNECTOR = Connector(
    slug="instagram",
    title="Instagram",
    category="social",
    config=InstagramConfig,
    auth_type="bearer",
    description="Insights of an Instagram business or creator account through the Graph API.",
    docs_url=DOCS,
    metrics=METRICS,
    base_url=GRAPH,
    auth=Bearer("{config.access_token}"),
    checks=(
        Check(f"/{VERSION}/me", "access token", "the token is valid", {"fields": "id,name"}),
        Check(ACCOUNT, "business account", "the account is reachable", {"fields": "username"}),
        Check(ACCOUNT + "/insights", "insights permission", "insights can be read", REACH),
        check_metrics,
    ),
    streams=STREAMS,
    classify=classify,
    history=timedelta(days=730),  # insights are kept two years (dossier §7, uncertain for reach)
    max_range=timedelta(days=30),  # one read: since-until ≤ 30 days, and one call a day a metric
    backfill_chunk=timedelta(days=30),  # a backfill chunk: one read of each insight
)

"""LinkedIn: daily organic analytics of one Company Page (Community Management API).

API docs: https://learn.microsoft.com/en-us/linkedin/marketing/community-management/organizations
Emulator: inflow.sandbox.linkedin
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from inflow.connectors.spec import (
    Action,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    DataPoint,
    Incremental,
    Kind,
    MetricDef,
    OAuth2AuthorizationCode,
    Offset,
    Quota,
    Resolution,
    Stream,
)
from inflow.errors import AccessDeniedError, CredentialsError

if TYPE_CHECKING:
    import httpx

API = "https://api.linkedin.com/rest"
OAUTH = "https://www.linkedin.com"
# Versions are served about a year, then refused with 426: keep this recent (it is a setting).
VERSION = "202609"
SCOPE = "rw_organization_admin"  # the scope the statistics endpoints document
GRANT = (
    f"the member who authorises must be an ADMINISTRATOR of the Page and the app needs the "
    f"Community Management API product with the {SCOPE} scope; grant them, then reconnect"
)
URN = re.compile(r"urn:li:organization:\d+")
DAY = timedelta(days=1)


class LinkedInConfig(ConnectorConfig):
    organization_id: str = Field(
        title="Organization URN",
        description="urn:li:organization:<id>; a bare id is turned into that URN.",
        examples=["urn:li:organization:2414183"],
    )
    page_id: str | None = Field(None, title="Page id or vanity name (optional)")
    client_id: str | None = Field(None, title="OAuth client id")
    client_secret: SecretStr | None = Field(None, title="OAuth client secret")
    access_token: SecretStr | None = Field(
        None,
        title="Access token (instead of OAuth)",
        description=f"A member token with {SCOPE}; it lives 60 days and is never refreshed.",
    )
    api_version: str = Field(
        VERSION, title="LinkedIn-Version (YYYYMM)", pattern=r"^20\d{2}(0[1-9]|1[0-2])$"
    )
    base_url: HttpUrl = Field(default=HttpUrl(API), title="REST API root")
    auth_url: HttpUrl = Field(default=HttpUrl(OAUTH), title="OAuth server")

    @field_validator("organization_id", mode="before")
    @classmethod
    def _as_urn(cls, value: Any) -> Any:
        text = str(value).strip()
        if text.isdigit():  # a bare organization id: normalised to its URN
            return f"urn:li:organization:{int(text)}"
        if not URN.fullmatch(text):
            raise ValueError("must be urn:li:organization:<digits> (or just the digits)")
        return text

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        if self.access_token is None and not (self.client_id and self.client_secret):
            raise ValueError("give clientId and clientSecret (OAuth), or an accessToken")
        return self


def classify(response: httpx.Response) -> Resolution | None:
    """LinkedIn's refusals with what to do about them."""
    status = response.status_code
    if status not in (403, 426, 429):
        return None
    try:
        message = str(json.loads(response.content).get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    if status == 429:  # no Retry-After: the daily app/member quota, reset at 00:00 UTC
        text = f"LinkedIn's daily call quota is spent (429: {message}); it resets at 00:00 UTC"
        return Resolution(Action.RATE_LIMITED, Kind.RATE_LIMITED, text)
    if status == 426:  # NONEXISTENT_VERSION: the LinkedIn-Version was sunset
        hint = "set apiVersion to a current LinkedIn-Version (YYYYMM)"
        return Resolution(Action.FAIL, Kind.REJECTED, f"{message} (426): {hint}")
    return Resolution(Action.FAIL, Kind.PERMISSION, f"permission denied (403): {message}; {GRANT}")


def until_midnight(_response: httpx.Response) -> float:
    """Seconds until LinkedIn's quotas reset (00:00 UTC)."""
    return (_midnight() + DAY - datetime.now(UTC)).total_seconds()


def _days(ctx: Context) -> tuple[datetime, datetime]:
    """The window in whole UTC days (the runtime aligns it), ending with today at the latest."""
    assert ctx.window is not None  # noqa: S101 - statistics streams are always windowed
    return ctx.window.start, min(ctx.window.end, _midnight() + DAY)


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _point(metric: str, value: float, day: datetime, **extra: Any) -> DataPoint:
    complete = day < _midnight() - DAY  # the last 1-2 days are restated as data arrives
    return DataPoint(metric, float(value), day, day + DAY, complete=complete, **extra)


# LinkedIn's finders page with `start`/`count` (default count 10) and say `paging.total`;
# production integrations ask for 100 a page (a year of days is four pages a finder).
PAGES = Offset(param="start", limit_param="count", limit=100, total_path="paging.total")
Reader = Callable[[Mapping[str, Any], datetime], Iterator[DataPoint]]
# Items carry epoch-ms `timeRange`s, no ISO cursor: the state is the end of the window read.
# Data is kept 12 months; the last days are restated, so each sync re-reads a week.
DAILY = Incremental(
    cursor="day", format="date", lookback=timedelta(days=7), initial=timedelta(days=365)
)


def daily(resource: str, finder: str, reader: Reader) -> Stream:
    """A time-bound (DAY) statistics finder, read with `reader` for each day LinkedIn answers
    for: a day it leaves out (no activity, or not computed yet) and a field it leaves out are
    no point, never a zero it did not give. Paged with `start`/`count` until `paging.total`
    (or a short page). Rest.li 2.0: the URN is percent-encoded, `timeIntervals` keeps `(`,
    `:` and `,` literal (re-encoded: a 400)."""

    def target(ctx: Context) -> str:
        start, end = (int(m.timestamp() * 1000) for m in _days(ctx))
        interval = f"(timeRange:(start:{start},end:{end}),timeGranularityType:DAY)"
        urn = quote(ctx.config.organization_id, safe="")
        return f"/{resource}?q={finder}&{finder}={urn}&timeIntervals={interval}"

    def reduce(items: list[Mapping[str, Any]], ctx: Context) -> Iterator[DataPoint]:
        seen = {int(i.get("timeRange", {}).get("start", -1)): i for i in items}
        day, end = _days(ctx)
        while day < end:
            item = seen.get(int(day.timestamp() * 1000))
            if item is not None:
                yield from reader(item, day)
            day += DAY

    path = f"/{resource}"
    return Stream(
        resource,
        path,
        "elements",
        pages=PAGES,
        target=target,
        reduce=reduce,
        incremental=DAILY,
    )


def follower_gains(item: Mapping[str, Any], day: datetime) -> Iterator[DataPoint]:
    gains = item.get("followerGains") or {}
    for source in ("organic", "paid"):
        value = gains.get(f"{source}FollowerGain")
        if value is not None:
            yield _point("followers_gained", value, day, dimensions={"source": source})


def share_statistics(item: Mapping[str, Any], day: datetime) -> Iterator[DataPoint]:
    stats = item.get("totalShareStatistics") or {}
    for metric, field in COUNTS.items():
        if stats.get(field) is not None:
            yield _point(metric, stats[field], day)
    impressions = stats.get("impressionCount")
    if impressions:  # rates of a day without impressions are undefined, not zero
        if stats.get("engagement") is not None:
            yield _point("engagement_rate", stats["engagement"], day, weight=impressions)
        if stats.get("clickCount") is not None:
            yield _point("ctr", stats["clickCount"] / impressions, day, weight=impressions)


def page_views(item: Mapping[str, Any], day: datetime) -> Iterator[DataPoint]:
    views = (item.get("totalPageStatistics") or {}).get("views") or {}
    for metric, field in VIEWS.items():
        value = (views.get(field) or {}).get("pageViews")
        if value is not None:
            yield _point(metric, value, day)


def followers_total(item: Mapping[str, Any], ctx: Context) -> Iterator[DataPoint]:
    """The count now, as today's (incomplete) level: LinkedIn keeps no history of it."""
    window, today = ctx.window, _midnight()
    if window is None or window.start <= today < window.end:
        yield _point("followers_total", item["firstDegreeSize"], today)


def network_size(ctx: Context) -> str:
    urn = quote(ctx.config.organization_id, safe="")
    return f"/networkSizes/{urn}?edgeType=COMPANY_FOLLOWED_BY_MEMBER"


async def check_access(ctx: Context) -> list[CheckStep]:
    """The token works, and its member administers the configured Page."""
    org, admin_of, start = ctx.config.organization_id, [], 0
    params = {"q": "roleAssignee", "role": "ADMINISTRATOR", "state": "APPROVED", "count": 100}
    try:
        while True:
            body = await ctx.get_json("/organizationAcls", params={**params, "start": start})
            rows = body.get("elements") or []
            admin_of += [row.get("organization") for row in rows]
            if len(rows) < 100:
                break
            start += 100
    except CredentialsError as exc:
        message = f"{exc.message}; reconnect (or paste a new access token)"
        return [CheckStep("access token", False, message, reauth=True)]
    except AccessDeniedError as exc:
        return [CheckStep("access token", False, exc.message)]
    token = CheckStep("access token", True, f"accepted; ADMINISTRATOR of {len(admin_of)} Page(s)")
    if org not in admin_of:
        message = f"the member is not an ADMINISTRATOR of {org}: {GRANT}"
        return [token, CheckStep("page role", False, message, details={"pages": admin_of})]
    page = await ctx.get_json(f"/organizations/{org.rsplit(':', 1)[1]}")
    name = page.get("localizedName") or org
    details = {"organization": org, "name": name, "vanityName": page.get("vanityName")}
    return [token, CheckStep("page role", True, f"ADMINISTRATOR of {name}", details=details)]


COUNTS = {
    "impressions": "impressionCount",
    "unique_impressions": "uniqueImpressionsCount",
    "clicks": "clickCount",
    "likes": "likeCount",
    "comments": "commentCount",
    "shares": "shareCount",
}
VIEWS = {
    "page_views": "allPageViews",
    "page_views_desktop": "allDesktopPageViews",
    "page_views_mobile": "allMobilePageViews",
}
STREAMS = (
    Stream("followers_total", "/networkSizes", target=network_size, parse=followers_total),
    daily("organizationalEntityFollowerStatistics", "organizationalEntity", follower_gains),
    daily("organizationalEntityShareStatistics", "organizationalEntity", share_statistics),
    daily("organizationPageStatistics", "organization", page_views),
)
ORGANIC = "Organic posts only (sponsored activity is excluded)."
FOLLOWERS = "Followers now (networkSizes), one value a day from the first sync on."
SPAN = "Distinct members reached in a day; longer periods show their highest day (not a sum)."
RATE = "(clicks + likes + comments + shares) / impressions, as LinkedIn computes it."
METRICS = (
    MetricDef("followers_total", "Followers", "count", FOLLOWERS, aggregation="last"),
    MetricDef("followers_gained", "New followers", "count", "Per day, by source: organic, paid."),
    MetricDef("impressions", "Impressions", "count", ORGANIC),
    MetricDef("unique_impressions", "Unique impressions", "count", SPAN, aggregation="max"),
    MetricDef("clicks", "Clicks", "count", ORGANIC),
    MetricDef("likes", "Likes", "count", "Likes only (not other reactions); can be negative."),
    MetricDef("comments", "Comments", "count", ORGANIC),
    MetricDef("shares", "Shares", "count", "Reshares, without instant reposts."),
    MetricDef("engagement_rate", "Engagement rate", "ratio", RATE, "ratio", "impressions"),
    MetricDef(
        "ctr", "Click-through rate", "ratio", "Clicks / impressions.", "ratio", "impressions"
    ),
    MetricDef("page_views", "Page views", "count", "Views of the Page, all devices."),
    MetricDef("page_views_desktop", "Page views (desktop)", "count"),
    MetricDef("page_views_mobile", "Page views (mobile)", "count"),
)

CONNECTOR = Connector(
    slug="linkedin",
    title="LinkedIn",
    category="social",
    config=LinkedInConfig,
    auth_type="oauth2_authorization_code",
    description="Daily follower, post and page statistics of a LinkedIn Company Page.",
    docs_url="https://learn.microsoft.com/en-us/linkedin/marketing/community-management/organizations",
    metrics=METRICS,
    base_url=API,
    auth=OAuth2AuthorizationCode(
        authorize_url="{auth_url}/oauth/v2/authorization",
        token_url="{auth_url}/oauth/v2/accessToken",
        scopes=(SCOPE,),
        static_token="{config.access_token}",
    ),
    checks=(check_access,),
    streams=STREAMS,
    headers={"LinkedIn-Version": "{config.api_version}", "X-Restli-Protocol-Version": "2.0.0"},
    classify=classify,
    reset_after=until_midnight,
    # Development tier: 100 calls per member a day (unverified; per source here): a first
    # sync (a year, four pages a finder) is 13 calls, a later one (a week) is 4.
    quota=Quota(limit=100, per="day"),
    history=timedelta(days=365),  # statistics cover a rolling 12 months
    max_range=timedelta(days=365),  # one read spans under 14 months; history is the bound
    backfill_chunk=timedelta(days=30),  # a month a chunk: few reads, progress still visible
)

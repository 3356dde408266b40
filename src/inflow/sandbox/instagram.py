"""Emulator of Instagram's Graph API (professional accounts, Facebook Login), prefix `/instagram`.

The paths of graph.facebook.com: `/{version}/me`, `/{version}/{ig-user-id}?fields=…`,
`/{version}/{ig-user-id}/insights` (day buckets ending 07:00 UTC, `time_series` or one
`total_value` for the range, 30 days at most, `paging` moving the window),
`/{version}/{ig-user-id}/media` (newest first, cursor paging with `next`, `since`/`until` on the
post time) and `/{version}/{ig-media-id}/insights` (lifetime values, metrics per product type).
A trailing slash is ignored, as Graph does (the facebook-business SDK sends `/{id}/` for a
node), not redirected. List parameters (`fields`, `metric`, `period`) are comma lists or JSON arrays
(`metric=["reach","views"]`, `period=["day"]`, as the facebook-business SDK sends them). `since`/`until` take Unix seconds or strtotime strings (`2026-01-31` is that day in Graph's
UTC-7 days, an `until` date runs to the day's end; `-30 days`, `now`, `today`).

Graph's error envelope on every refusal; the token as `access_token=` or `Authorization: Bearer`
(104 without one, 190 for an unknown one, 190/463 once expired); metrics by version (dossier §6:
`impressions` not from v22.0 and in no version since 2025-04-21, `views` only from v22.0, no
`profile_views`/`website_clicks` time series from v21.0 or 2025-01-08); `follower_count` only for
the last 30 days and only with 100 followers; today's values partial; `X-App-Usage` and
`X-Business-Use-Case-Usage` once 1 % of the budget is used, throttling with codes 4/17/32/613/80002.

Volume keys: `followers` (below 100: no `follower_count`), `media` (posts listed), `mediaEveryHours`
(a post every N hours), `preConversion` (the oldest N listed posts predate the business
conversion: subcode 2108006), `tokenExpired` (1: the token answers 190/463), `insightsPermission`
(0: insights answer (#10)), `throttleAfter`/`throttleCalls`/`throttleCode` (the requests since
the switch was last set, the first numbered 1: numbers throttleAfter+1 … throttleAfter+throttleCalls
answer that code, 0 = 4, 17, 32, 613 in turn), `regainMinutes` (`estimated_time_to_regain_access`), `callBudget` (calls making 100 %).
Data Graph does not have (dossier §9.7: "empty instead of zero"), each "one in N" (0: none):
`missingDays` (every N-th day has no data for any metric), `missingMetrics` (each metric has no
data on every N-th day, the metrics' gaps offset) and `postGaps` (each lifetime metric is
missing from every N-th post). A day without data has no entry in
a time series' `values`, a day total over days without data has no row in `data` (never
`total_value: 0`), and a post's metric without data has no row in its insights' `data`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from inflow.sandbox.data import decode_position, encode_position, stable_hash, unit
from inflow.sandbox.emulator import Emulator, JSONObject, JSONValue, Reject, json_response
from inflow.sandbox.faults import requested_fault
from inflow.sandbox.state import EmulatorState, clock_now, get_state

SLUG = "instagram"
ACCOUNT_ID = "17841405822304914"
USER_ID = "10215241773831025"
USERNAME = "inflow.sandbox"
TOKEN = "EAAGsandboxInflowInstagramLongLivedToken0001"  # noqa: S105 (the sandbox's fake token)
EXPIRED_TOKEN = "EAAGsandboxInflowInstagramLongLivedToken0000"  # noqa: S105
DEFAULT_VERSION = "v25.0"
DAY = 86_400
DAY_START = 7 * 3600  # Graph's insight days end at 07:00 UTC (midnight at UTC-7)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
HISTORY_DAYS = 730  # insights are kept two years
CDN = "https://scontent.cdninstagram.example"
MEDIA_ORIGIN = 1_577_891_045  # 2020-01-01T15:04:05Z: the account's first post
MEDIA_ID_BASE = 17_900_000_000_000_000
LEGACY_VIDEO_END = 1_656_633_600  # 2022-07-01: later feed videos are all reels
THROTTLE_SWITCH = ("throttleAfter", "throttleCalls", "throttleCode")
VERSION_RE = re.compile(r"v(\d{1,2})\.0")
RELATIVE_RE = re.compile(r"(-)?\s*(\d+)\s+days?(\s+ago)?")
THROTTLES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80002: "(#80002) There have been too many calls to this Instagram account. Wait a bit and "
    "try again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


@dataclass(frozen=True)
class Rule:
    """When a metric is served: metric types, versions (`since` ≤ v < `until`), a last day."""

    types: tuple[str, ...] = ("total_value",)
    since: int = 0
    until: int | None = None
    gone: date | None = None  # from this day no version serves it
    gone_message: str = ""  # what Graph says then ("" → "must be one of")
    series_until: int | None = None  # its time series ends with this version …
    series_gone: date | None = None  # … and on this day for every version

    def served(self, version: int, today: date) -> bool:
        return self.since <= version < (self.until or 999) and not (
            self.gone and today >= self.gone
        )

    def metric_types(self, version: int, today: date) -> tuple[str, ...]:
        old = (self.series_until and version >= self.series_until) or (
            self.series_gone and today >= self.series_gone
        )
        return tuple(t for t in self.types if not (old and t == "time_series"))


GONE_2025 = date(2025, 4, 21)
IMPRESSIONS = (
    "(#100) Starting from version 22 and above, the impressions metric is no longer supported "
    "for the queried {node}."
)
BOTH = ("time_series", "total_value")
TOTALS = (
    "accounts_engaged total_interactions likes comments shares saves replies profile_links_taps"
)
USER_RULES: dict[str, Rule] = {
    "reach": Rule(BOTH),
    "follower_count": Rule(("time_series",)),
    "impressions": Rule(BOTH, until=22, gone=GONE_2025, gone_message=IMPRESSIONS),
    "views": Rule(since=22),
    **{m: Rule() for m in words(TOTALS)},
    **{
        m: Rule(BOTH, series_until=21, series_gone=date(2025, 1, 8))
        for m in ("profile_views", "website_clicks")
    },
}
UNIQUE = frozenset({"reach", "accounts_engaged"})  # unique accounts: a range is not the day sum
MEDIA_RULES: dict[str, Rule] = {
    "impressions": Rule(until=22, gone=GONE_2025, gone_message=IMPRESSIONS),
    **{
        m: Rule(until=22, gone=GONE_2025)
        for m in ("plays", "clips_replays_count", "ig_reels_aggregated_all_plays_count")
    },
    "video_views": Rule(until=21, gone=date(2025, 1, 8)),
}
FEED = words(
    "reach saved likes comments shares total_interactions views follows profile_visits "
    "profile_activity"
)
MEDIA_METRICS: dict[tuple[str, str], tuple[str, ...]] = {
    ("FEED", "IMAGE"): FEED,
    ("FEED", "CAROUSEL_ALBUM"): FEED,
    ("REELS", "VIDEO"): (*FEED[:7], "ig_reels_avg_watch_time", "ig_reels_video_view_total_time"),
    ("FEED", "VIDEO"): ("reach", "saved"),  # legacy feed videos
}
TITLES = {"reach": "Reach", "views": "Views", "follower_count": "Follower count", "saves": "Saves"}
USER_FIELDS = frozenset(
    words(
        "id username name followers_count follows_count media_count biography website "
        "profile_picture_url ig_id"
    )
)
MEDIA_FIELDS = frozenset(
    words(
        "id caption media_type media_product_type timestamp permalink like_count comments_count "
        "thumbnail_url media_url username shortcode"
    )
)


# ---------------------------------------------------------------- errors and envelopes


def trace_id(*parts: object) -> str:
    return f"A{stable_hash(*parts):016x}"[:12]


def graph_error(
    message: str,
    code: int,
    *,
    subcode: int | None = None,
    kind: str = "OAuthException",
    status: int = 400,
    transient: bool | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reject:
    """Graph's envelope: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`."""
    err: dict[str, JSONValue] = {"message": message, "type": kind}
    if transient is not None:
        err["is_transient"] = transient
    err["code"] = code
    if subcode is not None:
        err["error_subcode"] = subcode
    err["fbtrace_id"] = trace_id(message, time.monotonic_ns())
    return Reject(json_response({"error": err}, status, headers))


def not_found(path: str) -> tuple[int, JSONObject]:
    """Graph's answer to a path it cannot route: a 400 `OAuthException` code 2500."""
    edge = "/" + path.strip("/").rsplit("/", 1)[-1]
    message = f"Unknown path components: {edge}"
    error: JSONObject = {"message": message, "type": "OAuthException", "code": 2500}
    return 400, {"error": {**error, "fbtrace_id": trace_id(message, path)}}


def error_body(status: int, message: str) -> JSONObject:
    """Injected faults in Graph's shape (Graph throttles with codes, not 429: see `enter`)."""
    code, text = {
        429: (4, THROTTLES[4]),
        503: (2, "An unexpected error has occurred. Please retry your request later."),
    }.get(status, (1, "An unknown error has occurred."))
    fbtrace = trace_id(status, message)
    return {
        "error": {
            "message": text,
            "type": "OAuthException",
            "is_transient": True,
            "code": code,
            "fbtrace_id": fbtrace,
        }
    }


def pacific(epoch: float) -> str:
    return datetime.fromtimestamp(epoch - DAY_START, UTC).strftime("%A, %d-%b-%y %H:%M:%S PDT")


def graph_time(epoch: float) -> str:
    """Graph's timestamps: UTC with a `+0000` offset."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def usage_headers(percent: int, regain_min: int = 0) -> dict[str, str]:
    """`X-App-Usage` and `X-Business-Use-Case-Usage` (percentages; the wait is in minutes)."""
    app = {"call_count": percent, "total_cputime": percent // 3, "total_time": percent // 2}
    buc = {**app, "type": "instagram", "estimated_time_to_regain_access": regain_min}
    return {
        "X-App-Usage": orjson.dumps(app).decode(),
        "X-Business-Use-Case-Usage": orjson.dumps({ACCOUNT_ID: [buc]}).decode(),
    }


@dataclass(frozen=True)
class Call:
    """One authenticated request: the emulator state, the version number, now, reply headers."""

    state: EmulatorState
    version: int
    now: float
    headers: dict[str, str]


def enter(request: Request, version: str) -> Call:
    """Version, token and throttling, in Graph's order; the headers every reply carries."""
    state, now = get_state(request, SLUG), clock_now(request)
    found = VERSION_RE.fullmatch(version)
    if found is None:
        raise graph_error(f"Unknown path components: /{version}", 2500)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = request.query_params.get("access_token") or (
        value.strip() if scheme.lower() in ("bearer", "oauth") else ""
    )
    if not token:
        raise graph_error("An access token is required to request this resource.", 104)
    expired = token == EXPIRED_TOKEN or (
        token == TOKEN
        and (state.volume_of("tokenExpired") or requested_fault(request) == "expired_token")
    )
    if expired:
        message = (
            f"Error validating access token: Session has expired on {pacific(now - 3 * DAY)}. "
            f"The current time is {pacific(now)}."
        )
        auth = {"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'}
        raise graph_error(message, 190, subcode=463, headers=auth)
    if token != TOKEN:
        raise graph_error("Invalid OAuth access token - Cannot parse access token", 190)
    # Requests are numbered from the last time the throttle switch was set: the first call
    # after it is number 1, whatever was asked before.
    since = max(state.volume_set_at.get(key, 0) for key in THROTTLE_SWITCH)
    ordinal, after = state.stats.total - since, state.volume_of("throttleAfter")
    headers = {"facebook-api-version": version, "x-fb-trace-id": trace_id(ordinal)}
    if after < ordinal <= after + state.volume_of("throttleCalls"):
        code = state.volume_of("throttleCode") or (4, 17, 32, 613)[(ordinal - after - 1) % 4]
        regain = state.volume_of("regainMinutes")
        throttled = {**headers, **usage_headers(100, regain)}
        raise graph_error(
            THROTTLES.get(code, THROTTLES[4]), code, transient=True, headers=throttled
        )
    percent = min(99, ordinal * 100 // max(1, state.volume_of("callBudget")))
    if percent >= 1:  # Graph sends usage headers once enough calls were made
        headers.update(usage_headers(percent))
    return Call(state, int(found.group(1)), now, headers)


def list_param(request: Request, name: str, default: str = "") -> list[str]:
    """A list parameter as Graph reads one: `a,b` or a JSON array `["a","b"]` (what the
    facebook-business SDK sends for a list)."""
    raw = request.query_params.get(name, default).strip()
    if raw.startswith("["):
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise graph_error(f"(#100) Param {name} must be an array of strings", 100)
        return [i.strip() for i in items if i.strip()]
    return [part.strip() for part in raw.split(",") if part.strip()]


def fields_of(request: Request, allowed: frozenset[str], node: str, default: str) -> list[str]:
    names = list_param(request, "fields", default)
    for name in names:
        if name not in allowed:
            raise graph_error(
                f"(#100) Tried accessing nonexisting field ({name}) on node type ({node})", 100
            )
    return ["id", *(n for n in names if n != "id")]


def no_object(node: str) -> Reject:
    return graph_error(
        f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        100,
        subcode=33,
        kind="GraphMethodException",
    )


# ---------------------------------------------------------------- data


def day_start(ordinal: int) -> int:
    """The first second of Graph day `ordinal` (a date's ordinal): 07:00 UTC that date."""
    return (ordinal - EPOCH_ORDINAL) * DAY + DAY_START


def day_of(epoch: float) -> int:
    return int((epoch - DAY_START) // DAY) + EPOCH_ORDINAL


@lru_cache(maxsize=8192)
def day_values(seed: int, followers: int, ordinal: int) -> dict[str, int]:
    """A whole day's account metrics (weekends quieter; interactions add up)."""

    def u(name: str) -> float:
        return unit(stable_hash(seed, "ig-day", ordinal, name))

    weekend = date.fromordinal(ordinal).weekday() >= 5
    views = int(followers * (0.25 if weekend else 0.35) * (0.7 + 0.6 * u("views")))
    reach = int(views * (0.45 + 0.25 * u("reach")))
    likes = int(reach * (0.04 + 0.04 * u("likes")))
    comments, shares = int(likes * (0.02 + 0.06 * u("c"))), int(likes * (0.05 + 0.1 * u("s")))
    saves, replies = int(likes * (0.05 + 0.15 * u("sv"))), int(reach * (0.001 + 0.003 * u("r")))
    profile_views = int(reach * (0.02 + 0.04 * u("pv")))
    return {
        "views": views,
        "reach": reach,
        "impressions": int(views * (1.05 + 0.15 * u("impressions"))),
        "accounts_engaged": int(reach * (0.03 + 0.05 * u("engaged"))),
        "likes": likes,
        "comments": comments,
        "shares": shares,
        "saves": saves,
        "replies": replies,
        "total_interactions": likes + comments + shares + saves + replies,
        "profile_views": profile_views,
        "website_clicks": int(profile_views * (0.04 + 0.12 * u("wc"))),
        "profile_links_taps": int(profile_views * (0.02 + 0.08 * u("plt"))),
        "follower_count": int(reach * (0.002 + 0.006 * u("fc"))),
    }


def missing(state: EmulatorState, key: str, n: int, metric: str = "") -> bool:
    """Whether Graph has no data for day or post `n` (of `metric`): one in N, the volume `key`
    (0: never), each metric's gaps offset by a hash of its name."""
    every = state.volume_of(key)
    return every > 0 and (n + stable_hash("ig-missing", metric)) % every == 0


def value_on(state: EmulatorState, metric: str, ordinal: int, now: float) -> int | None:
    """A day's value as served at `now`: partial today, None before it starts, past history or
    on a day (or a metric's day) Graph has no data for."""
    start = day_start(ordinal)
    if start > now or start < now - HISTORY_DAYS * DAY:
        return None
    if missing(state, "missingDays", ordinal) or missing(state, "missingMetrics", ordinal, metric):
        return None
    full = day_values(state.seed, state.volume_of("followers"), ordinal)[metric]
    return full if start + DAY <= now else int(full * (now - start) / DAY)


@dataclass(frozen=True)
class Media:
    k: int  # the account's k-th post
    at: int
    product: str
    kind: str
    metrics: Mapping[str, int]
    hides_likes: bool

    @property
    def id(self) -> str:
        return str(MEDIA_ID_BASE + self.k)


@lru_cache(maxsize=65536)
def media(seed: int, k: int, every_h: int, followers: int) -> Media:
    h = stable_hash(seed, "ig-media", k)
    at = MEDIA_ORIGIN + k * every_h * 3600

    def u(name: str) -> float:
        return unit(stable_hash(seed, "ig-media", k, name))

    roll = h % 100
    product, kind = (
        ("REELS", "VIDEO") if roll < 45 else ("FEED", "IMAGE" if roll < 80 else "CAROUSEL_ALBUM")
    )
    if product == "REELS" and at < LEGACY_VIDEO_END:
        product = "FEED"
    reach = int(followers * (0.1 + 0.5 * u("reach")))
    likes = int(reach * (0.03 + 0.07 * u("likes")))
    comments, shares = int(likes * (0.01 + 0.09 * u("c"))), int(likes * (0.02 + 0.1 * u("s")))
    saved = int(likes * (0.05 + 0.2 * u("saved")))
    values = {
        "reach": reach,
        "views": int(reach * (1.2 + 0.8 * u("views"))),
        "likes": likes,
        "comments": comments,
        "shares": shares,
        "saved": saved,
        "total_interactions": likes + comments + shares + saved,
        "follows": int(reach * 0.004 * u("follows")),
        "profile_visits": int(reach * 0.03 * u("pv")),
        "profile_activity": int(reach * 0.01 * u("pa")),
        "ig_reels_avg_watch_time": 2000 + int(9000 * u("watch")),
        "ig_reels_video_view_total_time": reach * (2000 + int(9000 * u("watch"))),
    }
    return Media(k, at, product, kind, values, (h >> 20) % 15 == 0)


def listing(state: EmulatorState, now: float) -> list[Media]:
    """The account's listed posts, newest first (the `media` most recent, 10,000 at most)."""
    every_h = max(1, state.volume_of("mediaEveryHours"))
    newest = int((now - MEDIA_ORIGIN) // (every_h * 3600))
    count = min(state.volume_of("media"), 10_000, newest + 1)
    followers = state.volume_of("followers")
    return [media(state.seed, k, every_h, followers) for k in range(newest, newest - count, -1)]


def pre_conversion(state: EmulatorState, listed: list[Media], item: Media) -> bool:
    oldest = listed[-1].k if listed else 0
    return item.k < oldest + state.volume_of("preConversion")


def moment(raw: str | None, now: float, name: str, *, end: bool = False) -> float | None:
    """A `since`/`until` value: Unix seconds or the strtotime strings Graph is sent in practice."""
    if raw is None:
        return None
    text = raw.strip().lower()
    if text.isdigit():
        return float(text)
    if text == "now":
        return now
    if text in ("today", "yesterday"):
        return day_start(day_of(now) - (text == "yesterday"))
    relative = RELATIVE_RE.fullmatch(text)
    if relative and (relative.group(1) or relative.group(3)):
        return now - int(relative.group(2)) * DAY
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise graph_error(
            f"(#100) {name} param is not valid. Only UNIX timestamps and strtotime-parseable "
            "values are allowed",
            100,
        ) from None
    return day_start(day.toordinal() + (1 if end else 0))  # an `until` date runs to its end


# ---------------------------------------------------------------- routes

api = APIRouter(tags=[SLUG])


@api.get("/{version}/me")
@api.get("/{version}/me/", include_in_schema=False)  # Graph ignores a trailing slash
async def get_me(request: Request, version: str) -> Response:
    """The token's Facebook user."""
    call = enter(request, version)
    names = fields_of(request, frozenset({"id", "name"}), "User", "id,name")
    user: dict[str, JSONValue] = {"id": USER_ID, "name": "Inflow Sandbox"}
    return json_response({n: user[n] for n in names}, headers=call.headers)


@api.get("/{version}/{node}")
@api.get("/{version}/{node}/", include_in_schema=False)  # Graph ignores a trailing slash
async def get_node(request: Request, version: str, node: str) -> Response:
    """The IG user node (only the fields asked for)."""
    call = enter(request, version)
    if node != ACCOUNT_ID:
        raise no_object(node)
    names = fields_of(request, USER_FIELDS, "IGUser", "id")
    state = call.state
    profile: dict[str, JSONValue] = {
        "id": ACCOUNT_ID,
        "ig_id": 5822304914,
        "username": USERNAME,
        "name": "Inflow Sandbox",
        "followers_count": state.volume_of("followers"),
        "follows_count": 312,
        "media_count": len(listing(state, call.now)),
        "biography": "The Inflow sandbox's Instagram account.",
        "website": "https://inflow.example",
        "profile_picture_url": f"{CDN}/inflow.jpg",
    }
    return json_response({n: profile[n] for n in names}, headers=call.headers)


def _metrics(request: Request) -> list[str]:
    metrics = list_param(request, "metric")
    if not metrics:
        raise graph_error("(#100) The parameter metric is required", 100)
    return metrics


def _refuse_unknown(
    rules: Mapping[str, Rule], served: list[str], metrics: list[str], call: Call, node: str
) -> None:
    """A metric the version does not serve fails the whole request (Graph names the first)."""
    today = date.fromordinal(day_of(call.now))
    for i, metric in enumerate(metrics):
        rule = rules.get(metric)
        if rule.served(call.version, today) if rule is not None else metric in served:
            continue
        if rule is not None and rule.gone_message:
            raise graph_error(rule.gone_message.format(node=node), 100)
        raise graph_error(
            f"(#100) metric[{i}] must be one of the following values: {', '.join(served)}", 100
        )


@api.get("/{version}/{node}/insights")
@api.get("/{version}/{node}/insights/", include_in_schema=False)  # Graph ignores a trailing slash
async def get_insights(request: Request, version: str, node: str) -> Response:
    """Account insights (day buckets) or a post's lifetime insights."""
    call = enter(request, version)
    if call.state.volume_of("insightsPermission") == 0:
        raise graph_error("(#10) Application does not have permission for this action", 10)
    if node == ACCOUNT_ID:
        return account_insights(request, call)
    return media_insights(request, call, node)


def account_insights(request: Request, call: Call) -> Response:
    q, state, now = request.query_params, call.state, call.now
    today = date.fromordinal(day_of(now))
    metrics = _metrics(request)
    served = [m for m, r in USER_RULES.items() if r.served(call.version, today)]
    _refuse_unknown(USER_RULES, served, metrics, call, "user")
    period = list_param(request, "period")  # the SDK sends a list: `["day"]`
    if period != ["day"]:
        raise graph_error(
            "(#100) The parameter period is required and must be day for these metrics", 100
        )
    metric_type = q.get("metric_type", "default")
    wanted = "time_series" if metric_type in ("default", "time_series") else metric_type
    needs_total = [
        m for m in metrics if wanted not in USER_RULES[m].metric_types(call.version, today)
    ]
    if needs_total and wanted == "time_series":
        raise graph_error(
            f"(#100) The following metrics ({', '.join(needs_total)}) should be specified "
            "with parameter metric_type=total_value",
            100,
        )
    if needs_total:
        raise graph_error(
            f"(#100) The following metric ({needs_total[0]}) is incompatible with the metric "
            f"type ({wanted})",
            100,
        )
    until = moment(q.get("until"), now, "until", end=True) or now
    since = moment(q.get("since"), now, "since") or until - 2 * DAY
    if until - since > 30 * DAY:
        raise graph_error(
            "(#100) There cannot be more than 30 days (2592000 s) between since and until", 100
        )
    if "follower_count" in metrics and since < day_start(day_of(now)) - 30 * DAY:
        raise graph_error(
            "(#100) (follower_count) metric only supports querying data for the last 30 days "
            "excluding the current day",
            100,
        )
    # The buckets whose end lies in (since, until]: a day belongs to the bucket ending after it.
    days = range(day_of(since), day_of(until))
    data: list[JSONValue] = []
    for metric in metrics:
        if metric == "follower_count" and state.volume_of("followers") < 100:
            continue  # too few followers: no entry at all, not zeros
        row: dict[str, JSONValue] = {
            "name": metric,
            "period": "day",
            "title": TITLES.get(metric, metric.replace("_", " ").capitalize()),
        }
        served_values = [(o, value_on(state, metric, o, now)) for o in days]
        if wanted == "time_series":
            row["values"] = [
                {"value": v, "end_time": graph_time(day_start(o) + DAY)}
                for o, v in served_values
                if v is not None and not (metric == "follower_count" and day_start(o) + DAY > now)
            ]
        else:
            found = [v for _, v in served_values if v is not None]
            if not found:  # no data in the range: no row at all, not a zero (dossier §9.7)
                continue
            total = sum(found)
            if metric in UNIQUE and found:  # the same accounts come back on other days
                total = max(found) + int(0.3 * (total - max(found)))
            row["total_value"] = {"value": total}
        row["description"] = f"The {metric.replace('_', ' ')} of the account per day."
        row["id"] = f"{ACCOUNT_ID}/insights/{metric}/day"
        data.append(row)
    body: dict[str, JSONValue] = {"data": data}
    if wanted == "time_series":  # the same-length window moved back or on (into the future too)
        span = int(until - since)
        body["paging"] = {
            "previous": str(
                request.url.include_query_params(since=int(since) - span, until=int(since))
            ),
            "next": str(
                request.url.include_query_params(since=int(until), until=int(until) + span)
            ),
        }
    return json_response(body, headers=call.headers)


def media_insights(request: Request, call: Call, node: str) -> Response:
    state = call.state
    listed = listing(state, call.now)
    item = next((m for m in listed if m.id == node), None)
    if item is None:
        raise no_object(node)
    metrics = _metrics(request)
    served = sorted({m for ms in MEDIA_METRICS.values() for m in ms})
    _refuse_unknown(MEDIA_RULES, served, metrics, call, "media")
    if pre_conversion(state, listed, item):
        raise graph_error("Media posted before business account conversion", 100, subcode=2108006)
    allowed = MEDIA_METRICS[(item.product, item.kind)]
    for metric in metrics:
        if metric not in allowed:
            raise graph_error(
                f"(#100) The Media Insights API does not support the {metric} metric for this "
                "media product type.",
                100,
            )
    data: list[JSONValue] = []
    for metric in metrics:
        if missing(state, "postGaps", item.k, metric):
            continue  # no data for this metric of this post: no row, not a zero
        value = item.metrics[metric]
        # Graph gives lifetime values as `values`, and some metrics as `total_value`.
        shape: JSONObject = (
            {"total_value": {"value": value}}
            if metric == "views"
            else {"values": [{"value": value}]}
        )
        title = TITLES.get(metric, metric.replace("_", " ").capitalize())
        data.append(
            {
                "name": metric,
                "period": "lifetime",
                **shape,
                "title": title,
                "description": f"The post's {metric.replace('_', ' ')}.",
                "id": f"{node}/insights/{metric}/lifetime",
            }
        )
    return json_response({"data": data}, headers=call.headers)


@api.get("/{version}/{node}/media")
@api.get("/{version}/{node}/media/", include_in_schema=False)  # Graph ignores a trailing slash
async def get_media(request: Request, version: str, node: str) -> Response:
    """The account's posts, newest first: cursors, `next`/`previous`, `since`/`until`."""
    call = enter(request, version)
    if node != ACCOUNT_ID:
        raise no_object(node)
    q, now = request.query_params, call.now
    names = fields_of(request, MEDIA_FIELDS, "IGMedia", "id")
    since = moment(q.get("since"), now, "since")
    until = moment(q.get("until"), now, "until", end=True)
    posts = [
        m
        for m in listing(call.state, now)
        if (since is None or m.at >= since) and (until is None or m.at <= until)
    ]
    raw_limit = q.get("limit", "25")
    limit = min(100, int(raw_limit)) if raw_limit.isdigit() and int(raw_limit) > 0 else 25
    binding = (ACCOUNT_ID, q.get("since"), q.get("until"))
    cursor = q.get("after") or q.get("before")
    start = decode_position(cursor, *binding) if cursor else 0
    if start is None:
        raise graph_error("(#100) The cursor is invalid for this request", 100)
    if q.get("before") and not q.get("after"):
        start = max(0, start - limit)
    page = posts[start : start + limit]
    data = [{n: _media_field(m, n) for n in names if _media_field(m, n) is not None} for m in page]
    body: dict[str, JSONValue] = {"data": data}
    if page:
        after = encode_position(start + len(page), *binding)
        paging: dict[str, JSONValue] = {
            "cursors": {"before": encode_position(start, *binding), "after": after}
        }
        if start + len(page) < len(posts):
            paging["next"] = str(
                request.url.remove_query_params("before").include_query_params(after=after)
            )
        if start > 0:
            before = encode_position(start, *binding)
            paging["previous"] = str(
                request.url.remove_query_params("after").include_query_params(before=before)
            )
        body["paging"] = paging
    return json_response(body, headers=call.headers)


def _media_field(m: Media, name: str) -> JSONValue:
    short = f"C{m.k:09d}"
    fields: dict[str, JSONValue] = {
        "id": m.id,
        "caption": f"Post {m.k} from the sandbox",
        "media_type": m.kind,
        "media_product_type": m.product,
        "timestamp": graph_time(m.at),
        "permalink": f"https://www.instagram.com/{'reel' if m.product == 'REELS' else 'p'}/{short}",
        "like_count": None if m.hides_likes else m.metrics["likes"],
        "comments_count": m.metrics["comments"],
        "thumbnail_url": f"{CDN}/{short}.jpg" if m.kind == "VIDEO" else None,
        "media_url": f"{CDN}/{short}.{'mp4' if m.kind == 'VIDEO' else 'jpg'}",
        "username": USERNAME,
        "shortcode": short,
    }
    return fields[name]


def credentials(base_url: str) -> JSONObject:
    """A working config for an `instagram` data source against this sandbox."""
    return {
        "baseUrl": base_url,
        "businessAccountId": ACCOUNT_ID,
        "accessToken": TOKEN,
        "apiVersion": DEFAULT_VERSION,
    }


EMULATOR = Emulator(
    slug=SLUG,
    router=api,
    credentials=credentials,
    default_volume={
        "followers": 15_234,
        "media": 40,
        "mediaEveryHours": 37,
        "preConversion": 0,
        "tokenExpired": 0,
        "insightsPermission": 1,
        "throttleAfter": 0,
        "throttleCalls": 0,
        "throttleCode": 0,
        "regainMinutes": 1,
        "callBudget": 20_000,
        "missingDays": 0,
        "missingMetrics": 0,
        "postGaps": 0,
    },
    error_body=error_body,
    not_found=not_found,
)

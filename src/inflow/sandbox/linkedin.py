"""Emulator of LinkedIn's Community Management API (Page analytics), prefix `/linkedin`.

OAuth (`/oauth/v2/authorization`, `/oauth/v2/accessToken`): authorization code (PKCE optional),
access tokens of 60 days, refresh tokens of 365 days that do not rotate and whose TTL does not
reset on refresh (`refresh_token_expires_in` counts down from consent); comma-separated `scope`.
REST under `/rest` (`LinkedIn-Version: YYYYMM` required: missing → 400 `VERSION_MISSING`, sunset
or unknown → 426 `NONEXISTENT_VERSION`; a version lives until the 15th of its month a year on):
`organizationAcls` (roleAssignee finder, `start`/`count`), `organizations/{id}`,
`networkSizes/{urn}`, and the DAY statistics `organizationalEntityFollowerStatistics`,
`organizationalEntityShareStatistics`, `organizationPageStatistics` (finders page with
`start`/`count`: 10 by default, at most 100, `paging.total` and a `next` link). With
`X-Restli-Protocol-Version: 2.0.0` parameters are Rest.li 2.0 (`timeIntervals=(timeRange:(…))`
with literal structure, URNs percent-encoded); without it, Rest.li 1.0 dotted parameters. A wrong
encoding is 400 "Parameter '…' is invalid". Errors: `{"status", "serviceErrorCode", "code",
"message"}`; 401 65600/65601 for bad, expired or revoked tokens; 403 `ACCESS_DENIED` without an
admin scope or the ADMINISTRATOR role; 429 (no Retry-After) past the daily app or member quota,
reset at 00:00 UTC. MONTH granularity is not emulated.

Data: a day is final two days after it ends; yesterday shows 70 % and today 30 % of its counts.
Share statistics omit days without impressions. Volume keys: `impressions` (daily average),
`followers` (base count), `adminOrgs` (Pages the member administers), `appDailyLimit`,
`memberDailyLimit` (0: off).
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import unquote, unquote_plus

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from inflow.sandbox.data import stable_hash, unit
from inflow.sandbox.emulator import Emulator, JSONObject, JSONValue, Reject, json_response
from inflow.sandbox.faults import requested_fault
from inflow.sandbox.oauth import AUTHORIZATION_CODE, REFRESH_TOKEN, OAuthServer, TokenRejectedError
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.stats import Stats

SLUG = "linkedin"
CLIENT_ID = "86sandboxlinkedin01"
CLIENT_SECRET = "WPL_AP1.sandbox.linkedin.0001"  # noqa: S105 (the sandbox's fake key)
# Tokens from the Developer Portal's token generator (the `accessToken` config), deterministic.
STATIC_TOKEN = "AQV_sandbox_linkedin_portal_token_0001"  # noqa: S105
SOCIAL_ONLY_TOKEN = "AQV_sandbox_linkedin_social_only_0001"  # noqa: S105 (no admin scope)
ORG_ID = 2414183
ORG_URN = f"urn:li:organization:{ORG_ID}"
OTHER_ORG_ID = 1337  # a Page the sandbox member does not administer
MEMBER = "urn:li:person:sandbox01"
ADMIN_SCOPES = frozenset({"rw_organization_admin", "r_organization_admin"})
SCOPES = (*sorted(ADMIN_SCOPES), "r_organization_social", "r_organization_followers")
DAY_MS = 86_400_000
THROTTLED = "Resource level throttle limit for calls to this resource is reached."
URN_RE = re.compile(r"urn:li:organization:(\d+)")
VERSION_RE = re.compile(r"(20\d{2})(0[1-9]|1[0-2])(01)?")
EDGE_TYPES = ("COMPANY_FOLLOWED_BY_MEMBER", "CompanyFollowedByMember")  # the v2-era spelling too


class LinkedInOAuth(OAuthServer):
    """The shared server with LinkedIn's token body: no `token_type`, a comma-separated `scope`
    and `refresh_token_expires_in` (what is left of the refresh token's fixed life)."""

    def _grant(
        self,
        state: EmulatorState,
        request: Request,
        grant_type: str,
        client_id: str,
        form: dict[str, str],
    ) -> JSONObject:
        body = dict(super()._grant(state, request, grant_type, client_id, form))
        body.pop("token_type", None)
        body["scope"] = ",".join(str(body.get("scope", "")).split())
        refresh = state.tokens.refresh.get(str(body.get("refresh_token", "")))
        if refresh is not None and refresh.expires_at is not None:
            left = refresh.expires_at - clock_now(request)
            body["refresh_token_expires_in"] = max(0, round(left))
        return body


OAUTH = LinkedInOAuth(
    slug=SLUG,
    clients={CLIENT_ID: CLIENT_SECRET},
    scopes=SCOPES,
    token_ttl_s=60 * 86400,
    code_ttl_s=30 * 60,
    refresh_token_ttl_s=365 * 86400,
    rotate_refresh_tokens=False,
    require_pkce=False,
    grant_types=frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN}),
)


# ---------------------------------------------------------------- errors


def fail(
    status: int, message: str, code: str | None = None, service_code: int | None = None
) -> Reject:
    """LinkedIn's error envelope."""
    body: dict[str, JSONValue] = {"status": status}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    if code is not None:
        body["code"] = code
    body["message"] = message
    return Reject(json_response(body, status))


def invalid(name: str) -> Reject:
    return fail(400, f"Parameter '{name}' is invalid")


def error_body(status: int, message: str) -> JSONObject:
    """Body of an injected fault."""
    return {"status": status, "message": THROTTLED if status == 429 else message}


# ---------------------------------------------------------------- Rest.li 2.0 values


class RestliSyntaxError(ValueError):
    """A Rest.li 2.0 value that does not parse."""


def parse_restli(raw: str) -> JSONValue:
    """A Rest.li 2.0 query value: `(k:v,…)`, `List(…)` or a percent-encoded string.

    `(`, `)`, `,` and `:` are structure; inside strings they must be percent-encoded, so a
    fully encoded object is just a string, and a URN with literal colons does not parse.
    """
    value, end = _value(raw, 0)
    if end != len(raw):
        raise RestliSyntaxError(raw)
    return value


def _value(s: str, i: int) -> tuple[JSONValue, int]:
    if s.startswith("List(", i):
        items: list[JSONValue] = []
        i += 5
        while s[i : i + 1] != ")":
            item, i = _value(s, i)
            items.append(item)
            if s[i : i + 1] != ")":
                i = _expect(s, i, ",")
        return items, i + 1
    if s[i : i + 1] == "(":
        obj: dict[str, JSONValue] = {}
        i += 1
        while s[i : i + 1] != ")":
            key, i = _string(s, i)
            obj[key], i = _value(s, _expect(s, i, ":"))
            if s[i : i + 1] != ")":
                i = _expect(s, i, ",")
        return obj, i + 1
    return _string(s, i)


def _expect(s: str, i: int, char: str) -> int:
    if s[i : i + 1] != char:
        raise RestliSyntaxError(s)
    return i + 1


def _string(s: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(s) and s[j] not in "(),:":
        j += 1
    if j == i:
        raise RestliSyntaxError(s)
    return unquote(s[i:j]), j


@dataclass(frozen=True)
class Query:
    """A request's parameters as LinkedIn reads them (Rest.li 2.0 or 1.0)."""

    raw: dict[str, str]
    v2: bool

    @classmethod
    def of(cls, request: Request) -> Query:
        text = request.scope.get("query_string", b"").decode("latin-1")
        raw: dict[str, str] = {}
        for part in filter(None, text.split("&")):
            key, _, value = part.partition("=")
            raw.setdefault(unquote_plus(key), value)
        return cls(raw, request.headers.get("x-restli-protocol-version") == "2.0.0")

    def get(self, name: str) -> JSONValue:
        """The value of `name` (None when absent); a value that does not parse is a 400."""
        raw = self.raw.get(name)
        if raw is None:
            return None
        if not self.v2:
            return unquote_plus(raw)
        try:
            return parse_restli(raw)
        except RestliSyntaxError as exc:
            raise invalid(name) from exc

    def text(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and not isinstance(value, str):
            raise invalid(name)
        return value

    def number(self, name: str, default: int, hi: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) > hi:
            raise invalid(name)
        return int(value)

    def intervals(self) -> tuple[int, int, str] | None:
        """`timeIntervals` as (start ms, end ms, granularity), or None (a lifetime call)."""
        if self.v2:
            value = self.get("timeIntervals")
            if value is None:
                return None  # 2.0 ignores dotted 1.0 keys: a lifetime answer, as LinkedIn gives
            span = value.get("timeRange") if isinstance(value, Mapping) else None
            grain = value.get("timeGranularityType") if isinstance(value, Mapping) else None
            start = span.get("start") if isinstance(span, Mapping) else None
            end = span.get("end") if isinstance(span, Mapping) else None
        else:
            if "timeIntervals" in self.raw:
                raise invalid("timeIntervals")  # the 2.0 form without the protocol header
            keys = ("timeRange.start", "timeRange.end", "timeGranularityType")
            start, end, grain = (self.text(f"timeIntervals.{k}") for k in keys)
            if start is None and end is None and grain is None:
                return None
        if not (isinstance(start, str) and start.isdigit() and isinstance(end, str)):
            raise invalid("timeIntervals")
        if not end.isdigit() or grain not in ("DAY", "MONTH"):
            raise invalid("timeIntervals")
        return int(start), int(end), str(grain)


# ---------------------------------------------------------------- the caller


@dataclass(frozen=True)
class Caller:
    member: str
    scopes: frozenset[str]
    version: str


def _today(request: Request) -> date:
    return datetime.fromtimestamp(clock_now(request), UTC).date()


def version_of(request: Request) -> str:
    """The active `LinkedIn-Version` (YYYYMM01), or LinkedIn's 400/426."""
    raw = request.headers.get("linkedin-version", "").strip()
    if not raw:
        message = "A version must be present. Please specify a version by adding the LinkedIn-Version header."
        response = json_response(
            {"status": 400, "code": "VERSION_MISSING", "message": message}, 400
        )
        response.headers["X-Restli-Gateway-Error"] = "true"
        raise Reject(response)
    found = VERSION_RE.fullmatch(raw)
    shown = f"{found[1]}{found[2]}01" if found else raw
    today = _today(request)
    if found is not None:
        year, month = int(found[1]), int(found[2])
        if date(year, month, 1) <= today < date(year + 1, month, 15):
            return shown
    raise fail(426, f"Requested version {shown} is not active", "NONEXISTENT_VERSION")


_USAGE: weakref.WeakKeyDictionary[EmulatorState, tuple[Stats, Counter[tuple[date, str]]]] = (
    weakref.WeakKeyDictionary()
)


def spend_quota(state: EmulatorState, member: str, today: date) -> None:
    """Count a call against the app's and the member's daily quota (reset at 00:00 UTC)."""
    stats, used = _USAGE.get(state, (None, None))
    if stats is not state.stats or used is None:  # a reset made new stats: counts start over
        used = Counter()
        _USAGE[state] = (state.stats, used)
    for who, limit in (("app", "appDailyLimit"), (member, "memberDailyLimit")):
        cap = state.volume_of(limit)
        if cap and used[(today, who)] >= cap:
            raise fail(429, THROTTLED)
    used[(today, "app")] += 1
    used[(today, member)] += 1


def caller(request: Request) -> Caller:
    """Version, then token, then quota: who is calling, or LinkedIn's refusal."""
    version = version_of(request)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    scopes: frozenset[str]
    if token in (STATIC_TOKEN, SOCIAL_ONLY_TOKEN):
        if requested_fault(request) == "expired_token":
            raise _token_refused("expired")
        scopes = frozenset(SCOPES if token == STATIC_TOKEN else ("r_organization_social",))
    else:
        try:
            scopes = frozenset(OAUTH.authenticate(request).scopes)
        except TokenRejectedError as exc:
            raise _token_refused(exc.reason) from exc
    spend_quota(get_state(request, SLUG), MEMBER, _today(request))
    return Caller(MEMBER, scopes, version)


def _token_refused(reason: str) -> Reject:
    if reason == "expired":
        return fail(401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN", 65600)
    if reason == "revoked":
        message = "The token used in the request has been revoked by the user"
        return fail(401, message, "REVOKED_ACCESS_TOKEN", 65601)
    return fail(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)


CallerDep = Annotated[Caller, Depends(caller)]


# ---------------------------------------------------------------- organizations


def administered(state: EmulatorState) -> list[int]:
    """The organizations the sandbox member is ADMINISTRATOR of (the configured one first)."""
    return [ORG_ID + 1000 * k for k in range(max(1, state.volume_of("adminOrgs")))]


def organization_name(org: int) -> tuple[str, str] | None:
    """(localized name, vanity name) of an organization the sandbox knows."""
    if org == ORG_ID:
        return "Inflow Sandbox", "inflow-sandbox"
    if org == OTHER_ORG_ID:
        return "Someone Else's Page", "someone-else"
    if org > ORG_ID and (org - ORG_ID) % 1000 == 0:
        return f"Inflow Sandbox {(org - ORG_ID) // 1000 + 1}", f"inflow-sandbox-{org - ORG_ID}"
    return None


def require_admin(request: Request, who: Caller, org: int, operation: str) -> None:
    """403 unless the token has an admin scope and its member administers `org`."""
    if who.scopes & ADMIN_SCOPES and org in administered(get_state(request, SLUG)):
        return
    message = f"Not enough permissions to access: {operation}.{who.version}"
    raise fail(403, message, "ACCESS_DENIED", 100)


# ---------------------------------------------------------------- deterministic data


@dataclass(frozen=True)
class Day:
    """One day's numbers for the sandbox Page, as LinkedIn shows them at some moment."""

    organic_gain: int
    paid_gain: int
    impressions: int
    unique_impressions: int
    clicks: int
    likes: int
    comments: int
    shares: int
    desktop_views: int
    mobile_views: int

    @property
    def engagement(self) -> float:
        actions = self.clicks + self.likes + self.comments + self.shares
        return actions / self.impressions if self.impressions else 0.0


def day_numbers(state: EmulatorState, day: date, today: date) -> Day:
    """`day`'s final numbers, cut to 70 % yesterday and 30 % today (late data)."""

    def h(name: str) -> float:
        return unit(stable_hash(state.seed, SLUG, name, day.toordinal()))

    rhythm = 0.45 if day.weekday() >= 5 else 1.0
    impressions = int(state.volume_of("impressions") * rhythm * (0.5 + h("impressions")))
    if h("quiet") < 0.06:
        impressions = 0  # nothing posted lately: the day is omitted from share statistics
    likes = int(impressions * (0.005 + 0.02 * h("likes")))
    if impressions and h("unlikes") < 0.08:
        likes = -1 - int(3 * h("unlike_count"))  # organic unlikes of a sponsored post
    paid = 1 + int(3 * h("paid_count")) if h("paid") < 0.2 else 0
    final = (
        int((4 + 20 * h("gain")) * rhythm),
        paid,
        impressions,
        int(impressions * (0.55 + 0.25 * h("unique"))),
        int(impressions * (0.01 + 0.04 * h("clicks"))),
        likes,
        int(impressions * 0.004 * h("comments")),
        int(impressions * 0.003 * h("shares")),
        int(state.volume_of("impressions") * 0.3 * rhythm * (0.5 + h("desktop"))),
        int(state.volume_of("impressions") * 0.12 * rhythm * (0.5 + h("mobile"))),
    )
    share = {today: 0.3, today - timedelta(days=1): 0.7}.get(day, 1.0)
    return Day(*(int(n * share) for n in final))


def followers_total(state: EmulatorState, today: date) -> int:
    """The follower count now: the base plus the gains of the last 365 days."""
    gains = 0
    for back in range(365):
        numbers = day_numbers(state, today - timedelta(days=back), today)
        gains += numbers.organic_gain + numbers.paid_gain
    return state.volume_of("followers") + gains


def _ms(day: date) -> int:
    return (day.toordinal() - date(1970, 1, 1).toordinal()) * DAY_MS


def _day(ms: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ms // DAY_MS)


def checked_days(request: Request, query: Query) -> list[date] | None:
    """The days a time-bound call asks for (None: lifetime), or LinkedIn's 400."""
    intervals = query.intervals()
    if intervals is None:
        return None
    start, end, grain = intervals
    shown = query.raw.get("timeIntervals") or "timeIntervals"

    def refuse(reason: str) -> Reject:
        return fail(400, f"Invalid timeIntervals parameter [{unquote(shown)}]. {reason}")

    if grain != "DAY":
        raise refuse("The sandbox emulates DAY granularity only.")
    if start >= end:
        raise refuse("Start time must be before end time.")
    if start % DAY_MS or end % DAY_MS:
        raise refuse("For DAY granularity, start and end must be at 00:00 UTC.")
    first, stop = _day(start), _day(end)
    months = (stop.year - first.year) * 12 + stop.month - first.month
    if months > 14 or (months == 14 and stop.day >= first.day):
        raise refuse("Start time and end time must be less than 14 months apart.")
    today = _today(request)
    if first < today - timedelta(days=366):
        raise refuse("Start time must be within the last 12 months.")
    last = min(stop - timedelta(days=1), today)  # days to come have no data yet
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def entity(query: Query, finder: str) -> int:
    """The organization a statistics finder asks about (its URN parameter)."""
    if query.text("q") != finder:
        raise fail(400, f"Parameter 'q' must be {finder} for this resource")
    found = URN_RE.fullmatch(query.text(finder) or "")
    if found is None:
        raise invalid(finder)
    return int(found[1])


def elements(request: Request, query: Query, body: list[JSONValue]) -> Response:
    """A finder's page: `start`/`count` (default 10, at most 100) of `body`, with `paging.total`
    and a `next` link while more remain (as `organizationAcls` pages)."""
    start, count = query.number("start", 0, 1_000_000), query.number("count", 10, 100)
    links: list[JSONValue] = []
    if start + count < len(body):
        after = {**query.raw, "start": str(start + count), "count": str(count)}
        href = f"{request.url.path}?" + "&".join(f"{k}={v}" for k, v in after.items())
        links.append({"rel": "next", "type": "application/json", "href": href})
    paging: JSONObject = {"count": count, "start": start, "total": len(body), "links": links}
    return json_response({"paging": paging, "elements": body[start : start + count]})


def _range(day: date) -> JSONObject:
    return {"start": _ms(day), "end": _ms(day) + DAY_MS}


# ---------------------------------------------------------------- routes

api = APIRouter(prefix="/rest", tags=[SLUG])


@api.get("/organizationAcls")
async def organization_acls(request: Request, who: CallerDep) -> Response:
    """The Pages the member holds a role on (roleAssignee finder), paged by start/count."""
    query = Query.of(request)
    if query.text("q") != "roleAssignee":
        raise fail(400, "Parameter 'q' must be roleAssignee for this resource")
    if not who.scopes & ADMIN_SCOPES:
        operation = f"organizationAcls.FINDER-roleAssignee.{who.version}"
        raise fail(403, f"Not enough permissions to access: {operation}", "ACCESS_DENIED", 100)
    start, count = query.number("start", 0, 1_000_000), query.number("count", 10, 100)
    role, status = query.text("role"), query.text("state")
    wanted = role in (None, "ADMINISTRATOR") and status in (None, "APPROVED")
    orgs = administered(get_state(request, SLUG)) if wanted else []
    rows: list[JSONValue] = [
        {
            "organization": f"urn:li:organization:{org}",
            "roleAssignee": who.member,
            "role": "ADMINISTRATOR",
            "state": "APPROVED",
        }
        for org in orgs[start : start + count]
    ]
    links: list[JSONValue] = []
    if start + count < len(orgs):
        href = f"/rest/organizationAcls?q=roleAssignee&start={start + count}&count={count}"
        links.append({"rel": "next", "type": "application/json", "href": href})
    paging: JSONObject = {"count": count, "start": start, "total": len(orgs), "links": links}
    return json_response({"paging": paging, "elements": rows})


@api.get("/organizations/{org_id}")
async def get_organization(org_id: str, _: CallerDep) -> Response:
    """An organization's names."""
    names = organization_name(int(org_id)) if org_id.isdigit() else None
    if names is None:
        raise fail(404, f"Organization {org_id} does not exist", "NOT_FOUND", 0)
    return json_response({"id": int(org_id), "localizedName": names[0], "vanityName": names[1]})


@api.get("/networkSizes/{urn}")
async def network_size(request: Request, urn: str, _: CallerDep) -> Response:
    """The organization's follower count now (`edgeType=COMPANY_FOLLOWED_BY_MEMBER`)."""
    raw_path = bytes(request.scope.get("raw_path") or b"").split(b"?")[0].decode("latin-1")
    found = URN_RE.fullmatch(urn)
    if found is None or "urn:" in raw_path:  # the URN key must be percent-encoded in the path
        raise fail(400, f"Invalid key {raw_path.rsplit('/', 1)[-1]}: encode the URN")
    if Query.of(request).text("edgeType") not in EDGE_TYPES:
        raise invalid("edgeType")
    if organization_name(int(found[1])) is None:
        raise fail(404, f"Organization {found[1]} does not exist", "NOT_FOUND", 0)
    state = get_state(request, SLUG)
    size = followers_total(state, _today(request)) if int(found[1]) == ORG_ID else 5210
    return json_response({"firstDegreeSize": size})


@api.get("/organizationalEntityFollowerStatistics")
async def follower_statistics(request: Request, who: CallerDep) -> Response:
    """Daily follower gains (time-bound), or demographic facets (lifetime)."""
    query = Query.of(request)
    org = entity(query, "organizationalEntity")
    days = checked_days(request, query)
    require_admin(
        request, who, org, "organizationalEntityFollowerStatistics.FINDER-organizationalEntity"
    )
    urn, state, today = f"urn:li:organization:{org}", get_state(request, SLUG), _today(request)
    if days is None:
        counts = {"organicFollowerCount": followers_total(state, today), "paidFollowerCount": 0}
        facet: list[JSONValue] = [{"staffCountRange": "SIZE_2_TO_10", "followerCounts": counts}]
        return elements(
            request,
            query,
            [{"organizationalEntity": urn, "followerCountsByStaffCountRange": facet}],
        )
    rows: list[JSONValue] = []
    for day in days:
        n = day_numbers(state, day, today)
        gains = {"organicFollowerGain": n.organic_gain, "paidFollowerGain": n.paid_gain}
        rows.append({"organizationalEntity": urn, "timeRange": _range(day), "followerGains": gains})
    return elements(request, query, rows)


@api.get("/organizationalEntityShareStatistics")
async def share_statistics(request: Request, who: CallerDep) -> Response:
    """Organic post statistics per day; days without impressions are left out."""
    query = Query.of(request)
    org = entity(query, "organizationalEntity")
    days = checked_days(request, query)
    require_admin(
        request, who, org, "organizationalEntityShareStatistics.FINDER-organizationalEntity"
    )
    urn, state, today = f"urn:li:organization:{org}", get_state(request, SLUG), _today(request)
    rows: list[JSONValue] = []
    for day in days if days is not None else [today]:
        n = day_numbers(state, day, today)
        if n.impressions == 0:
            continue
        stats = {
            "uniqueImpressionsCount": n.unique_impressions,
            "impressionCount": n.impressions,
            "clickCount": n.clicks,
            "likeCount": n.likes,
            "commentCount": n.comments,
            "shareCount": n.shares,
            "engagement": n.engagement,
        }
        row: dict[str, JSONValue] = {"organizationalEntity": urn, "totalShareStatistics": stats}
        if days is not None:
            row["timeRange"] = _range(day)
        rows.append(row)
    return elements(request, query, rows)


@api.get("/organizationPageStatistics")
async def page_statistics(request: Request, who: CallerDep) -> Response:
    """Page views per day (finder `organization`, not `organizationalEntity`)."""
    query = Query.of(request)
    org = entity(query, "organization")
    days = checked_days(request, query)
    require_admin(request, who, org, "organizationPageStatistics.FINDER-organization")
    urn, state, today = f"urn:li:organization:{org}", get_state(request, SLUG), _today(request)
    rows: list[JSONValue] = []
    for day in days if days is not None else [today]:
        n = day_numbers(state, day, today)
        views = {
            "allPageViews": {"pageViews": n.desktop_views + n.mobile_views},
            "allDesktopPageViews": {"pageViews": n.desktop_views},
            "allMobilePageViews": {"pageViews": n.mobile_views},
        }
        row: dict[str, JSONValue] = {"organization": urn, "totalPageStatistics": {"views": views}}
        if days is not None:
            row["timeRange"] = _range(day)
        rows.append(row)
    return elements(request, query, rows)


# ---------------------------------------------------------------- sandbox hooks


def not_found(_path: str) -> tuple[int, JSONObject]:
    """LinkedIn's answer to a resource it does not have (Rest.li's virtual-resource miss)."""
    body: JSONObject = {
        "status": 404,
        "serviceErrorCode": 0,
        "code": "RESOURCE_NOT_FOUND",
        "message": "No virtual resource found",
    }
    return 404, body


def credentials(base_url: str) -> JSONObject:
    """A working config: the sandbox's OAuth client (tokens come from its consent flow)."""
    return {
        "organizationId": ORG_URN,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "baseUrl": f"{base_url}/rest",
        "authUrl": base_url,
    }


router = APIRouter()
router.include_router(api)
router.include_router(
    OAUTH.router(authorize_path="/oauth/v2/authorization", token_path="/oauth/v2/accessToken")  # noqa: S106
)
EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    default_volume={
        "impressions": 800,
        "followers": 219_000,
        "adminOrgs": 3,
        "appDailyLimit": 500,
        "memberDailyLimit": 100,
    },
    error_body=error_body,
    not_found=not_found,
    rate_limit_headers=None,  # LinkedIn sends no rate-limit headers, and no Retry-After
    oauth=OAUTH,
)

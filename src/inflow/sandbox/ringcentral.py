"""Emulator of RingCentral's REST API v1.0 (company call log), prefix `/ringcentral`.

OAuth under `/restapi/oauth` (`authorize` with automatic consent, `token`, `revoke`): the
JWT-bearer grant (the JWT the Developer Console "generated": `/_sandbox/credentials`), the
authorization code (60 s, PKCE optional) and refresh tokens that rotate, where a refresh ends
the old access token at once; revoking any token of a session ends the session. Clients
authenticate with HTTP Basic. Token bodies are `TokenInfo` (`token_type: bearer`, `owner_id`,
`endpoint_id`, `session_id`, `refresh_token_expires_in`); OAuth errors carry RFC 6749's `error`
and RingCentral's `errors[]` (`OAU-123` client authentication; the other OAU codes here are
unverified). `GET /restapi/v1.0/account/~` (or the account id) and
`GET /restapi/v1.0/account/~/call-log` with `dateFrom`/`dateTo` (ISO 8601; default the last
24 hours; both bounds inclusive on `startTime`), `type`, `direction`, `view` (`Simple`,
`Detailed` adds `legs`, `billing` and `lastModifiedTime`), `showDeleted`, `page` and `perPage`
(1-1000 or `max`, default 100; more is served as 1000): `{uri, records, paging, navigation}`,
newest first, no totals, absolute `navigation` URIs. Errors are `{errorCode, message, errors:
[{errorCode, message, …}]}`: 401 for a missing, unknown, expired or revoked token, 400 CMN-101
for a bad parameter, 403 CMN-408 when the app's user lacks FullCompanyCallLog (the second
sandbox app, `USER_CLIENT_ID`).

Rate limits per user (here: per OAuth client) and API group over a sliding window of
`rateWindowS` seconds (60; 0 turns enforcement off): Light 50 (account), Heavy 10 (call log),
Auth 5 (token, revoke). Every response says `X-Rate-Limit-Group`, `-Limit`, `-Remaining` and
`-Window`; past the limit a 429 `CMN-301` with `Retry-After` and a penalty of one window that
every further request in it starts again. Windows run on real (monotonic) time, whatever the
sandbox clock says. `GET /ringcentral/_sandbox/usage` shows each group's most requests in one
window.

Data: `calls` call-log records (about 2 % faxes) over the `days` UTC days ending now by the
sandbox clock, weekends quieter; a record appears 20 s after its call ends. `revision` N
re-draws a share of the last two days' calls N times (result and duration) and deletes a few
(`showDeleted=true` lists them with `deleted: true`). `POST /ringcentral/_sandbox/webhook`
answers (or delivers) the subscription's validation request, or changes one call and sends its
telephony-session `Disconnected` event with the `Verification-Token`.

`accountStatus` sets the account's `status`: 0 `Confirmed`, 1 `Unconfirmed`, 2 `Initial`,
3 `Disabled` (with a `statusInfo` reason); the call log is served whatever the status.
An unknown route is the API gateway's 404 `AGW-404`.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode
from weakref import WeakKeyDictionary

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from inflow.sandbox.data import CallDay, call_day, mix64, stable_hash
from inflow.sandbox.emulator import (
    Emulator,
    JSONObject,
    JSONValue,
    Reject,
    base_url,
    json_response,
)
from inflow.sandbox.faults import NO_FAULTS
from inflow.sandbox.oauth import (
    AUTHORIZATION_CODE,
    JWT_BEARER,
    REFRESH_TOKEN,
    OAuthError,
    OAuthServer,
    TokenRejectedError,
)
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.stats import Stats
from inflow.sandbox.webhooks import Outgoing, deliver, describe

SLUG = "ringcentral"
CLIENT_ID = "rcSandboxAdminApp0001"
CLIENT_SECRET = "rc-sandbox-admin-app-secret-0001"  # noqa: S105 (the sandbox's fake key)
USER_CLIENT_ID = "rcSandboxUserApp0002"  # an app whose user lacks FullCompanyCallLog
USER_CLIENT_SECRET = "rc-sandbox-user-app-secret-0002"  # noqa: S105
VERIFICATION_TOKEN = "rc-sandbox-verification-token-0001"  # noqa: S105
ACCOUNT_ID = 400131220008
OPERATOR = 400131221008
SUBSCRIPTION_ID = "7f3c2a1e-0b6d-4c8e-9a5f-3d2e1c0b9a87"
SCOPES = ("ReadAccounts", "ReadCallLog", "WebhookSubscriptions", "CallControl")
GROUPS = {"Light": 50, "Medium": 40, "Heavy": 10, "Auth": 5}
DAY_MS = 86_400_000
STRIDE = 100_000  # a record's number: its day (days since 1970) * STRIDE + its rank that day
APPEARS_AFTER_S = 20  # a record is listed this long after its call ends
SETTLE_MS = 900_000  # every call that started this long ago is listed (no call lasts longer)
REFRESH_TTL_S = 7 * 86_400
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_KEY = 0x9E3779B97F4A7C15  # odd: multiplying by it mod 2**64 is a bijection
ID_INVERSE = pow(ID_KEY, -1, 1 << 64)
INBOUND = (
    ("Accepted", "Accepted", 70),
    ("Missed", "Not Answered", 9),
    ("Voicemail", "No Answer", 8),
    ("Hang Up", "Hang Up", 5),
    ("Abandoned", "Hang Up", 3),
    ("Busy", "Line Busy", 2),
    ("Rejected", "Calls Not Accepted", 1),
    ("Blocked", "Number Blocked", 1),
    ("Callback requested", "Hang Up", 1),
)
OUTBOUND = (
    ("Call connected", "Accepted", 72),
    ("No Answer", "Not Answered", 12),
    ("Busy", "Line Busy", 6),
    ("Call Failed", "Failed Try Again", 4),
    ("Wrong Number", "Wrong Number", 3),
    ("Declined", "Calls Not Accepted", 3),
)
ANSWERED = frozenset({"Accepted", "Call connected"})
EXTENSIONS = tuple((OPERATOR + 1000 * k, str(101 + k)) for k in range(8))
LINES = ("+16505550100", "+16505550142", "+14155550199")
CITIES = ("San Francisco, CA", "Oakland, CA", "San Jose, CA", "Denver, CO", "Austin, TX")


def _table(rows: tuple[tuple[str, str, int], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(itertools.chain.from_iterable([(r, why)] * weight for r, why, weight in rows))


INBOUND_TABLE, OUTBOUND_TABLE = _table(INBOUND), _table(OUTBOUND)


# ---------------------------------------------------------------- errors


def error(code: str, message: str, top: str | None = None, **extra: JSONValue) -> JSONObject:
    """RingCentral's error body: `errors[]`, the first repeated at the top level."""
    entry: dict[str, JSONValue] = {"errorCode": code, "message": message, **extra}
    return {"errorCode": top or code, "message": message, "errors": [entry], **extra}


def fail(status: int, body: JSONObject, headers: Mapping[str, str] | None = None) -> Reject:
    return Reject(json_response(body, status, headers))


def invalid(name: str, value: str) -> Reject:
    message = f"Parameter [{name}] value is invalid"
    return fail(400, error("CMN-101", message, parameterName=name, parameterValue=value))


def not_found(_path: str) -> tuple[int, JSONObject]:
    """The API gateway's answer to a route it does not have."""
    return 404, error("AGW-404", "Resource not found")


def error_body(status: int, message: str) -> JSONObject:
    """Body of an injected fault."""
    if status == 429:
        return error("CMN-301", "Request rate exceeded")
    if status == 503:
        return error("CMN-211", "Service Temporary Unavailable")
    return error("CMN-201", "Service Temporary Unavailable" if status >= 500 else message)


OAU_CODES = {
    "invalid_client": "OAU-123",
    "invalid_grant": "OAU-140",
    "invalid_request": "OAU-101",
    "unsupported_grant_type": "OAU-102",
    "unauthorized_client": "OAU-251",
    "invalid_scope": "OAU-150",
}


def oauth_error_body(error_: str, description: str) -> JSONObject:
    code = OAU_CODES.get(error_, "OAU-101")
    return {
        "error": error_,
        "error_description": description,
        "errors": [{"errorCode": code, "message": description}],
    }


# ---------------------------------------------------------------- rate limits


@dataclass
class _Usage:
    accepted: int = 0
    throttled: int = 0
    max_in_window: int = 0


@dataclass
class _Live:
    """Rate windows, penalties and webhook changes (forgotten on reset)."""

    hits: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    penalty: dict[tuple[str, str], float] = field(default_factory=dict)
    usage: dict[str, _Usage] = field(default_factory=dict)
    changed: dict[int, dict[str, Any]] = field(default_factory=dict)


_LIVE: WeakKeyDictionary[Stats, _Live] = WeakKeyDictionary()


def live(state: EmulatorState) -> _Live:
    return _LIVE.setdefault(state.stats, _Live())


def throttle(state: EmulatorState, group: str, user: str) -> dict[str, str]:
    """One request of `user` in `group`: the rate headers to send, or a 429 `CMN-301`."""
    limit, span = GROUPS[group], state.volume_of("rateWindowS")
    books = live(state)
    usage = books.usage.setdefault(group, _Usage())
    headers = {
        "X-Rate-Limit-Group": group,
        "X-Rate-Limit-Limit": str(limit),
        "X-Rate-Limit-Window": str(span or 60),
    }
    key, now = (user, group), time.monotonic()
    hits = books.hits.setdefault(key, deque())
    while hits and (span <= 0 or hits[0] <= now - span):
        hits.popleft()
    if span > 0 and (now < books.penalty.get(key, 0.0) or len(hits) >= limit):
        books.penalty[key] = now + span  # a request during the penalty starts it again
        usage.throttled += 1
        headers.update({"X-Rate-Limit-Remaining": "0", "Retry-After": str(span)})
        raise fail(429, error("CMN-301", "Request rate exceeded"), headers)
    hits.append(now)
    usage.accepted += 1
    usage.max_in_window = max(usage.max_in_window, len(hits))
    headers["X-Rate-Limit-Remaining"] = str(max(0, limit - len(hits)))
    return headers


# ---------------------------------------------------------------- OAuth


class RingCentralOAuth(OAuthServer):
    """The shared server with RingCentral's token body, its Auth group and session revocation."""

    async def _token(self, request: Request) -> Response:
        headers = throttle(get_state(request, SLUG), "Auth", _basic_client(request))
        response = await super()._token(request)
        response.headers.update(headers)
        return response

    def _grant(
        self,
        state: EmulatorState,
        request: Request,
        grant_type: str,
        client_id: str,
        form: dict[str, str],
    ) -> JSONObject:
        body = dict(super()._grant(state, request, grant_type, client_id, form))
        body["token_type"] = "bearer"  # noqa: S105 (the scheme, as RingCentral spells it)
        if "refresh_token" in body:
            body["refresh_token_expires_in"] = REFRESH_TTL_S
        token = state.tokens.access[str(body["access_token"])]
        session = stable_hash("session", id(token.grant)) % 10**10
        owner = OPERATOR if client_id == CLIENT_ID else OPERATOR + 1000
        body.update(owner_id=str(owner), endpoint_id=f"ep{session:010d}", session_id=str(session))
        return body

    async def _revoke(self, request: Request) -> Response:
        """Revoking any token of a session (access or refresh) ends the whole session."""
        state = get_state(request, SLUG)
        headers = throttle(state, "Auth", _basic_client(request))
        try:
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
            client_id = self._client(request, form)
        except OAuthError as exc:
            return self._error(exc)
        value = form.get("token", "")
        found = state.tokens.refresh.get(value) or state.tokens.access.get(value)
        if found is not None and found.grant.client_id == client_id:
            found.grant.revoked = True
        return Response(status_code=200, headers=headers)


def _basic_client(request: Request) -> str:
    """The client a token request names in its Basic header (the rate limit's user)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    try:
        pair = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "anonymous"
    return pair.partition(":")[0] if scheme.lower() == "basic" else "anonymous"


OAUTH = RingCentralOAuth(
    slug=SLUG,
    clients={CLIENT_ID: CLIENT_SECRET, USER_CLIENT_ID: USER_CLIENT_SECRET},
    default_scopes=SCOPES,
    token_ttl_s=3600,
    code_ttl_s=60,
    refresh_token_ttl_s=REFRESH_TTL_S,
    rotate_refresh_tokens=True,
    revoke_access_on_refresh=True,
    require_pkce=False,
    grant_types=frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN, JWT_BEARER}),
    error_body=oauth_error_body,
)


@dataclass(frozen=True)
class Caller:
    """An authenticated API request: its state, now, the app and the rate headers to send."""

    state: EmulatorState
    now: float
    client_id: str
    headers: dict[str, str]


REFUSALS = {
    "missing": ("CMN-405", "Login required"),
    "invalid": ("OAU-149", "Invalid access token"),
    "revoked": ("OAU-149", "Invalid access token"),
    "expired": ("OAU-128", "Access token expired"),
}


def caller(group: str) -> Any:
    """A dependency: the bearer token, then one request of the caller's `group` budget."""

    def authenticated(request: Request) -> Caller:
        state = get_state(request, SLUG)
        try:
            info = OAUTH.authenticate(request)
        except TokenRejectedError as exc:
            code, message = REFUSALS[exc.reason]
            raise fail(401, error(code, message, top="TokenInvalid")) from exc
        headers = throttle(state, group, info.client_id)
        return Caller(state, clock_now(request), info.client_id, headers)

    return authenticated


LightDep = Annotated[Caller, Depends(caller("Light"))]
HeavyDep = Annotated[Caller, Depends(caller("Heavy"))]


# ---------------------------------------------------------------- data


def iso_ms(epoch_ms: int) -> str:
    """`2025-01-06T09:58:12.594Z`."""
    day, ms = divmod(epoch_ms, DAY_MS)
    seconds, ms = divmod(ms, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"


@lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()


@lru_cache(maxsize=1 << 18)
def record_id(number: int) -> str:
    """A record number as a 15-character id (`VgLcd1KWffJVzUA`-like), reversible."""
    n, out = (number * ID_KEY) & ((1 << 64) - 1), []
    for _ in range(11):
        n, digit = divmod(n, 62)
        out.append(BASE62[digit])
    return "Vg" + "".join(out) + "UA"


def record_number(text: str) -> int | None:
    """The inverse of `record_id` (None for a foreign id)."""
    if len(text) != 15 or not text.startswith("Vg") or not text.endswith("UA"):
        return None
    n = 0
    for char in reversed(text[2:13]):
        if char not in BASE62:
            return None
        n = n * 62 + BASE62.index(char)
    return (n * ID_INVERSE) & ((1 << 64) - 1)


Day = CallDay


def day_of(seed: int, number: int, per_day: float) -> Day:
    return call_day(seed, number, per_day, most=STRIDE - 1, units=DAY_MS)


@dataclass(frozen=True)
class Draw:
    """What a record's hash decides: kind, side, outcome, length, deletion."""

    h: int
    fax: bool
    inbound: bool
    result: str
    reason: str
    duration: int
    ends_ms: int  # when it becomes listable (end + APPEARS_AFTER_S), before any revision
    deleted: bool


def draw(day: Day, j: int, revision: int, recent: bool) -> Draw:
    """Record j of `day`, with `revision` late changes when the day is one of the last two."""
    h = mix64((day.salt ^ 0xA24BAED4963EE407) + j)
    fax, inbound = h % 50 == 0, (h >> 8) % 100 < 62
    ring = 4 + (h >> 24) % 25
    original = _outcome(h, fax, inbound, ring)
    ends = day.start + day.offset(j) + (original[2] + APPEARS_AFTER_S) * 1000
    result, reason, duration = original
    deleted = False
    if revision and recent:
        steps = [k for k in range(1, revision + 1) if mix64(h + k) % 5 == 0]
        if steps and not fax:
            result, reason, duration = _outcome(mix64(h ^ steps[-1]), fax, inbound, ring)
        deleted = any(mix64(h + 1000 + k) % 60 == 0 for k in range(1, revision + 1))
    return Draw(h, fax, inbound, result, reason, duration, ends, deleted)


def _outcome(h: int, fax: bool, inbound: bool, ring: int) -> tuple[str, str, int]:
    if fax:
        return ("Received" if inbound else "Sent"), "Accepted", 30 + (h >> 40) % 90
    table = INBOUND_TABLE if inbound else OUTBOUND_TABLE
    result, reason = table[(h >> 16) % len(table)]
    if result in ANSWERED:
        return result, reason, ring + 12 + (h >> 32) % 700
    if result == "Voicemail":
        return result, reason, ring + 20 + (h >> 40) % 60
    if result in ("Call Failed", "Wrong Number"):
        return result, reason, 0
    return result, reason, ring  # missed calls still ring: never answered by duration


@dataclass(frozen=True)
class Query:
    """A call-log query's filters."""

    types: frozenset[str]
    directions: frozenset[str]
    show_deleted: bool


@dataclass(frozen=True)
class Log:
    """The company call log as the sandbox clock sees it."""

    seed: int
    now_ms: int
    first: int  # first day number
    today: int
    per_day: float
    revision: int
    changed: dict[int, dict[str, Any]]

    @classmethod
    def of(cls, state: EmulatorState, now: float) -> Log:
        days = max(1, state.volume_of("days"))
        today = int(now // 86_400)
        return cls(
            seed=state.seed,
            now_ms=int(now * 1000),
            first=today - days + 1,
            today=today,
            per_day=state.volume_of("calls") / days,
            revision=state.volume_of("revision"),
            changed=live(state).changed,
        )

    def day(self, number: int) -> Day:
        return day_of(self.seed, number, self.per_day)

    def draw(self, day: Day, j: int) -> Draw:
        return draw(day, j, self.revision, day.number >= self.today - 1)

    def ranks(self, day: Day, query: Query, lo_ms: int, hi_ms: int) -> list[int]:
        """The ranks (ascending) of `day`'s listed records that match, started in [lo, hi]."""
        matching = _day_ranks(day, query, self.revision, day.number >= self.today - 1)
        if lo_ms <= day.start and hi_ms >= day.start + DAY_MS <= self.now_ms - SETTLE_MS:
            return matching  # a whole day whose calls all ended and are listed
        lo, hi = lo_ms - day.start, min(hi_ms, self.now_ms) - day.start
        first = bisect_left(matching, lo, key=day.offset)
        listed = bisect_right(
            matching, min(hi, self.now_ms - SETTLE_MS - day.start), first, key=day.offset
        )
        tail = matching[listed : bisect_right(matching, hi, listed, key=day.offset)]
        # Calls of the last minutes are listed once they ended (20 s later): checked one by one.
        return matching[first:listed] + [
            j for j in tail if self.draw(day, j).ends_ms <= self.now_ms
        ]

    def record(self, day: Day, j: int, base: str, detailed: bool) -> dict[str, JSONValue]:
        """Record j of `day` as the call log lists it."""
        d = self.draw(day, j)
        number = day.number * STRIDE + j
        change = self.changed.get(number, {})
        result = str(change.get("result", d.result))
        duration = int(change.get("duration", d.duration))
        reason = d.reason if "result" not in change else _reason_of(result)
        h, rid = d.h, record_id(number)
        start_ms = day.start + day.offset(j)
        ext_id, ext_number = EXTENSIONS[(h >> 44) % len(EXTENSIONS)]
        line = LINES[(h >> 50) % len(LINES)]
        outside = f"+1415555{(h >> 52) % 10_000:04d}"
        city = CITIES[(h >> 56) % len(CITIES)]
        session = f"{(h >> 20) % 10**12:012d}"
        tsid = f"s-a0d{h:016x}z{number:x}"
        account, extension, agent = _parties(base, ext_id, ext_number, line)
        if d.inbound:
            frm: JSONObject = {"phoneNumber": outside, "location": city}
            to: JSONObject = {"phoneNumber": line, "name": "Inflow Sandbox"}
        else:
            frm, to = agent, {"phoneNumber": outside, "location": city}
        row: dict[str, JSONValue] = {
            "uri": f"{account}/call-log/{rid}?view={'Detailed' if detailed else 'Simple'}",
            "id": rid,
            "sessionId": session,
            "telephonySessionId": tsid,
            "partyId": f"p-{tsid[2:]}-2",
            "startTime": iso_ms(start_ms),
            "duration": duration,
            "durationMs": duration * 1000 + (h >> 8) % 1000 if duration else 0,
            "type": "Fax" if d.fax else "Voice",
            "internalType": "LocalNumber" if d.inbound else "Local",
            "direction": "Inbound" if d.inbound else "Outbound",
            "action": ("Incoming Fax" if d.inbound else "Outgoing Fax")
            if d.fax
            else ("Phone Call" if d.inbound else "VoIP Call"),
            "result": result,
            "reason": reason,
            "to": to,
            "from": frm,
            "extension": extension,
            "transport": "PSTN" if d.inbound else "VoIP",
        }
        if d.deleted:
            row["deleted"] = True
        if detailed:
            modified = max(d.ends_ms, start_ms) + (3_600_000 if change or self.revision else 0)
            row["lastModifiedTime"] = iso_ms(min(modified, self.now_ms))
            row["billing"] = {"costIncluded": 0.0, "costPurchased": 0.0}
            leg_type = "Accept" if d.inbound else "FaxSent" if d.fax else "SipToPstnMetered"
            leg = {k: row[k] for k in ("startTime", "duration", "durationMs", "type")}
            leg.update({k: row[k] for k in ("direction", "action", "result", "reason")})
            leg.update(to=to, **{"from": frm}, extension=extension, transport=row["transport"])
            row["legs"] = [{**leg, "legType": leg_type, "master": True}]
        return row

    def find(self, number: int) -> tuple[Day, int] | None:
        """A listed record by number."""
        day_number, j = divmod(number, STRIDE)
        if not self.first <= day_number <= self.today:
            return None
        day = self.day(day_number)
        if j >= day.count or self.draw(day, j).ends_ms > self.now_ms:
            return None
        return day, j


@lru_cache(maxsize=256)
def _parties(
    base: str, ext_id: int, ext_number: str, line: str
) -> tuple[str, JSONObject, JSONObject]:
    """(account URI, extension, the extension as a caller): shared by every record."""
    account = f"{base}/restapi/v1.0/account/{ACCOUNT_ID}"
    extension: JSONObject = {"uri": f"{account}/extension/{ext_id}", "id": ext_id}
    agent: JSONObject = {
        "phoneNumber": line,
        "name": f"Agent {ext_number}",
        "extensionNumber": ext_number,
        "extensionId": str(ext_id),
    }
    return account, extension, agent


def _matches(d: Draw, query: Query) -> bool:
    kind = "Fax" if d.fax else "Voice"
    side = "Inbound" if d.inbound else "Outbound"
    return (
        kind in query.types and side in query.directions and (query.show_deleted or not d.deleted)
    )


@lru_cache(maxsize=2048)
def _day_ranks(day: Day, query: Query, revision: int, recent: bool) -> list[int]:
    """Every record of a day that matches, listed yet or not (the hot path of long reads)."""
    return [j for j in range(day.count) if _matches(draw(day, j, revision, recent), query)]


def _reason_of(result: str) -> str:
    for rows in (INBOUND, OUTBOUND):
        for name, reason, _ in rows:
            if name == result:
                return reason
    return "Accepted"


# ---------------------------------------------------------------- API

api = APIRouter(prefix="/restapi/v1.0/account/{account_id}", tags=[SLUG])


ACCOUNT_STATUSES = ("Confirmed", "Unconfirmed", "Initial", "Disabled")  # by `accountStatus`


def _account(account_id: str) -> None:
    if account_id not in ("~", str(ACCOUNT_ID)):
        raise fail(404, error("CMN-102", "Resource for parameter [accountId] is not found"))


@api.get("")
async def account(request: Request, account_id: str, who: LightDep) -> Response:
    """The account of the token (`~`)."""
    _account(account_id)
    root = f"{base_url(request, SLUG)}/restapi/v1.0/account/{ACCOUNT_ID}"
    body: JSONObject = {
        "uri": root,
        "id": ACCOUNT_ID,
        "serviceInfo": {
            "uri": f"{root}/service-info",
            "brand": {"id": "1210", "name": "RingCentral", "homeCountry": {"id": "1"}},
            "servicePlan": {"id": "9999", "name": "Sandbox Premium", "edition": "Premium"},
            "billingPlan": {
                "id": "9999",
                "name": "Monthly",
                "durationUnit": "Month",
                "duration": 1,
                "type": "Regular",
            },
        },
        "operator": {
            "uri": f"{root}/extension/{OPERATOR}",
            "id": OPERATOR,
            "extensionNumber": "101",
        },
        "mainNumber": LINES[0],
        "status": "Confirmed",
        "setupWizardState": "Completed",
        "federated": False,
    }
    status = ACCOUNT_STATUSES[min(get_state(request, SLUG).volume_of("accountStatus"), 3)]
    if status != "Confirmed":
        wizard = "NotStarted" if status == "Initial" else "InProgress"
        body = {**body, "status": status, "setupWizardState": wizard}
    if status == "Disabled":
        body = {
            **body,
            "setupWizardState": "Completed",
            "statusInfo": {"reason": "SuspendedInvoluntarily", "comment": "Unpaid invoice"},
        }
    return json_response(body, headers=who.headers)


def _bound(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise invalid(name, raw) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _choices(request: Request, name: str, allowed: tuple[str, ...]) -> frozenset[str]:
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    for value in values:
        if value not in allowed:
            raise invalid(name, value)
    return frozenset(values or allowed)


def _number(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if name == "perPage" and raw == "max":
        return 1000
    if not raw.isdigit() or int(raw) < 1:
        raise invalid(name, raw)
    return int(raw)


def _pick(
    log: Log, query: Query, lo_ms: int, hi_ms: int, skip: int, take: int
) -> Iterator[tuple[Day, int]]:
    """(day, rank) of the query's records `skip`..`skip + take`, newest first."""
    first = max(log.first, lo_ms // DAY_MS)
    last = min(log.today, hi_ms // DAY_MS)
    for number in range(last, first - 1, -1):
        if take <= 0:
            return
        day = log.day(number)
        ranks = log.ranks(day, query, lo_ms, hi_ms)
        if skip >= len(ranks):
            skip -= len(ranks)
            continue
        chosen = ranks[len(ranks) - 1 - skip :: -1][:take]
        yield from ((day, j) for j in chosen)
        take -= len(chosen)
        skip = 0


@api.get("/call-log")
async def call_log(request: Request, account_id: str, who: HeavyDep) -> Response:
    """The company call log, newest first (needs FullCompanyCallLog)."""
    _account(account_id)
    if who.client_id != CLIENT_ID:
        message = (
            "In order to call this API endpoint, user needs to have [FullCompanyCallLog] "
            "permission for requested resource."
        )
        body = error(
            "CMN-408", message, top="InsufficientPermissions", permissionName="FullCompanyCallLog"
        )
        raise fail(403, body, who.headers)
    view = request.query_params.get("view", "Simple")
    if view not in ("Simple", "Detailed"):
        raise invalid("view", view)
    page, per_page = _number(request, "page", 1), min(1000, _number(request, "perPage", 100))
    log = Log.of(who.state, who.now)
    hi = _bound(request, "dateTo")
    hi = log.now_ms if hi is None else hi
    lo = _bound(request, "dateFrom")
    lo = hi - DAY_MS if lo is None else lo
    show = request.query_params.get("showDeleted", "false").lower()
    if show not in ("true", "false"):
        raise invalid("showDeleted", show)
    query = Query(
        types=_choices(request, "type", ("Voice", "Fax")),
        directions=_choices(request, "direction", ("Inbound", "Outbound")),
        show_deleted=show == "true",
    )
    base = base_url(request, SLUG)
    skip = (page - 1) * per_page
    # One more than a page tells whether a next page exists (no totals are counted).
    picked = list(_pick(log, query, lo, hi, skip, per_page + 1))
    records = [log.record(day, j, base, view == "Detailed") for day, j in picked[:per_page]]
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "perPage")]
    path = f"{base}/restapi/v1.0/account/{ACCOUNT_ID}/call-log"

    def link(n: int) -> JSONObject:
        return {"uri": f"{path}?{urlencode([*params, ('page', n), ('perPage', per_page)])}"}

    paging: dict[str, JSONValue] = {"page": page, "perPage": per_page}
    if records:
        paging.update(pageStart=skip, pageEnd=skip + len(records) - 1)
    navigation: dict[str, JSONValue] = {"firstPage": link(1)}
    if len(picked) > per_page:
        navigation["nextPage"] = link(page + 1)
    if page > 1:
        navigation["previousPage"] = link(page - 1)
    body = {
        "uri": link(page)["uri"],
        "records": records,
        "paging": paging,
        "navigation": navigation,
    }
    return json_response(body, headers=who.headers)


# ---------------------------------------------------------------- sandbox routes

control = APIRouter(prefix="/_sandbox", tags=[SLUG])


@control.get("/usage", openapi_extra=NO_FAULTS)
async def usage(request: Request) -> Response:
    """Per API group: its limit, the window, and the most requests accepted in one window."""
    state = get_state(request, SLUG)
    books = live(state)
    span = state.volume_of("rateWindowS")
    groups: dict[str, JSONValue] = {
        group: {
            "limit": GROUPS[group],
            "windowS": span,
            "accepted": u.accepted,
            "throttled": u.throttled,
            "maxInWindow": u.max_in_window,
        }
        for group, u in books.usage.items()
    }
    return json_response({"groups": groups})


class WebhookIn(BaseModel):
    """`POST /ringcentral/_sandbox/webhook`: the subscription's validation request
    (`handshake`), or a change to one call and its telephony-session event.

    `callId` defaults to the last call that ended; `result` and `duration` change it (omitted:
    as it is); `verificationToken` replaces the subscription's own (forgeries), `uuid` and
    `timestamp` those of the event (replays, stale events).
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    url: str
    handshake: bool = False
    validation_token: str | None = None
    call_id: str | None = None
    result: str | None = None
    duration: int | None = None
    verification_token: str | None = VERIFICATION_TOKEN
    uuid: str | None = None
    timestamp: str | None = None
    deliver: bool = False


USER_AGENT = "RingCentral-Webhook/8.4"


@control.post("/webhook", openapi_extra=NO_FAULTS)
async def send_webhook(request: Request, body: WebhookIn) -> Response:
    """Answer (or deliver) what RingCentral would send to the subscription's address."""
    state = get_state(request, SLUG)
    now = clock_now(request)
    if body.handshake:
        token = body.validation_token or f"{stable_hash('validation', now):016x}"
        headers = {"Validation-Token": token, "User-Agent": USER_AGENT}
        return await _send(Outgoing(url=body.url, body=b"", headers=headers), body.deliver, {})
    log = Log.of(state, now)
    number = record_number(body.call_id) if body.call_id else _last_ended(log)
    found = log.find(number) if number is not None else None
    if found is None:
        return json_response({"sandboxError": f"no call {body.call_id}"}, 404)
    day, j = found
    number = day.number * STRIDE + j
    change = live(state).changed.setdefault(number, {})
    if body.result is not None:
        change["result"] = body.result
    if body.duration is not None:
        change["duration"] = body.duration
    call = log.record(day, j, base_url(request, SLUG), detailed=False)
    duration = int(change.get("duration", log.draw(day, j).duration))
    ended = day.start + day.offset(j) + duration * 1000
    payload = event_payload(call, number, iso_ms(min(ended, log.now_ms)), now, body)
    headers = {"Content-Type": "application/json; charset=UTF-8", "User-Agent": USER_AGENT}
    if body.verification_token is not None:
        headers["Verification-Token"] = body.verification_token
    outgoing = Outgoing(url=body.url, body=orjson.dumps(payload), headers=headers)
    return await _send(outgoing, body.deliver, {"call": call})


def _last_ended(log: Log) -> int | None:
    for number in range(log.today, log.first - 1, -1):
        day = log.day(number)
        query = Query(frozenset({"Voice"}), frozenset({"Inbound", "Outbound"}), False)
        ranks = log.ranks(day, query, day.start, day.start + DAY_MS)
        if ranks:
            return number * STRIDE + ranks[-1]
    return None


def event_payload(
    call: Mapping[str, JSONValue], number: int, ended: str, now: float, body: WebhookIn
) -> JSONObject:
    """A telephony-session notification: the call's party `Disconnected`."""
    inbound = call["direction"] == "Inbound"
    answered = call["result"] in ANSWERED
    extension = call["extension"]
    ext_id = extension.get("id") if isinstance(extension, Mapping) else OPERATOR
    status: dict[str, JSONValue] = {"code": "Disconnected", "rcc": False}
    if not answered:
        status["reason"] = "Voicemail" if call["result"] == "Voicemail" else "NoAnswer"
    party: dict[str, JSONValue] = {
        "accountId": str(ACCOUNT_ID),
        "extensionId": str(ext_id),
        "id": call["partyId"],
        "direction": call["direction"],
        "to": call["to"],
        "from": call["from"],
        "status": status,
        "missedCall": inbound and not answered,
        "standAlone": False,
        "muted": False,
    }
    sent = body.timestamp or iso_ms(int(now * 1000))
    return {
        "uuid": body.uuid or f"{stable_hash('event', number, now):016x}-rc-{number:x}",
        "event": f"/restapi/v1.0/account/{ACCOUNT_ID}/telephony/sessions",
        "timestamp": sent,
        "subscriptionId": SUBSCRIPTION_ID,
        "ownerId": str(OPERATOR),
        "body": {
            "sequence": 7,
            "sessionId": call["sessionId"],
            "telephonySessionId": call["telephonySessionId"],
            "serverId": "10.13.22.241.TAM",
            "eventTime": ended,
            "origin": {"type": "Call"},
            "parties": [party],
        },
    }


async def _send(outgoing: Outgoing, send: bool, extra: Mapping[str, JSONValue]) -> Response:
    described: dict[str, Any] = {"request": describe(outgoing), **extra}
    if send:
        described["delivered"] = await deliver(outgoing)
    return json_response(described)


def credentials(url: str) -> JSONObject:
    """A working config: the admin app's JWT (server-to-server, no consent needed)."""
    return {
        "platform": SLUG,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "jwt": OAUTH.jwt_credential(CLIENT_ID),
        "webhookVerificationToken": VERIFICATION_TOKEN,
        "baseUrl": url,
        "authUrl": url,
    }


router = APIRouter()
router.include_router(api)
router.include_router(control)
router.include_router(
    OAUTH.router(
        authorize_path="/restapi/oauth/authorize",
        token_path="/restapi/oauth/token",  # noqa: S106
        revoke_path="/restapi/oauth/revoke",
    )
)
EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    default_volume={
        "calls": 2_000,
        "days": 30,
        "revision": 0,
        "rateWindowS": 60,
        "accountStatus": 0,
    },
    error_body=error_body,
    not_found=not_found,
    rate_limit_headers=None,  # the handlers send X-Rate-Limit-* per group themselves
    oauth=OAUTH,
)

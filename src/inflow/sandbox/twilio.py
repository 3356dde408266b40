"""Emulator of Twilio's REST API 2010-04-01 (Voice call log), prefix `/twilio`.

Paths as on api.twilio.com: `GET /2010-04-01/Accounts.json`, `/Accounts/{Sid}.json`,
`/Accounts/{Sid}/Calls.json` and `/Accounts/{Sid}/Calls/{CallSid}.json`. HTTP Basic auth as the
account (SID + Auth Token) or an API key (`SK…` + secret; the Standard key cannot read
`/Accounts`): refusals are 401 `{"code": 20003, "message": "Authenticate", "more_info",
"status"}`, an unknown or foreign SID 404 20404. Calls are listed newest first and filtered by
`StartTime`, `StartTime>` (on/after D 00:00), `StartTime<` (at/before D 00:00), the same three
on `EndTime`, `Status`, `ParentCallSid`, `To`, `From` (dates `YYYY-MM-DD`; a time of day is cut
to its date). Paging is Twilio's: `PageSize` 1-1000 (default 50; above 1000 is served as 1000),
the envelope `page, page_size, start, end, uri, first_page_uri, next_page_uri,
previous_page_uri` with URIs relative to the API host, `PageToken` `PA<last sid>` / `PB<first
sid>`; `Page>0` without a token is 400 20001. Call fields and formats as Twilio's: RFC 2822
dates, `duration`, `price` and `queue_time` strings, `end_time`/`duration` empty unless the call
completed, `price` filled in two minutes after the end.

Twilio limits concurrent requests per account: past volume `concurrency` in-flight requests a
request is refused with 429 20429 (no Retry-After); every response says
`Twilio-Concurrent-Requests`. `serverMs` holds each request in flight that long (so clients
running in parallel meet the limit); `ratePerSecond` is the sandbox's own per-second limit.

Data: `calls` call-log entries (child `outbound-dial` legs of answered inbound calls included)
over `days` UTC days ending today by the sandbox clock, weekends quieter; a call appears when it
starts and rings, then is in progress, until it ends. `revision` N changes a deterministic
twentieth-odd of the last two days' calls N times (an answered call's duration grows, an
unanswered one turns `completed`), as late updates do. `POST /twilio/_sandbox/webhook` changes
one call and hands back (or delivers) its status callback, signed with the Auth Token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import hashlib
import hmac
import math
import weakref
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, NamedTuple
from urllib.parse import quote, unquote_plus, urlencode

import orjson
from fastapi import APIRouter, Body, Depends, Request
from starlette.responses import Response

from inflow.sandbox.data import mix64
from inflow.sandbox.emulator import (
    Emulator,
    JSONObject,
    JSONValue,
    OrjsonResponse,
    Reject,
    json_response,
)
from inflow.sandbox.faults import NO_FAULTS
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.stats import Stats
from inflow.sandbox.webhooks import Outgoing, deliver, describe

SLUG = "twilio"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "5a1dbox0" * 4
MAIN_KEY_SID = "SK" + "0" * 31 + "1"
MAIN_KEY_SECRET = "sandbox-main-api-key-secret-0001"  # noqa: S105
STANDARD_KEY_SID = "SK" + "0" * 31 + "2"
STANDARD_KEY_SECRET = "sandbox-standard-key-secret-0002"  # noqa: S105
KEYS = {MAIN_KEY_SID: (MAIN_KEY_SECRET, "main"), STANDARD_KEY_SID: (STANDARD_KEY_SECRET, "std")}
VERSION = "/2010-04-01"
DAY_S = 86_400
STATUSES = ("completed", "busy", "no-answer", "canceled", "failed")
LIVE = ("queued", "ringing", "in-progress")
KINDS = ("inbound", "outbound-api", "outbound-dial")
NUMBERS = tuple(f"+1415555{n:04d}" for n in (100, 101, 102, 103, 104))
PRICE_DELAY_S = 120
MAX_LENGTH_S = 3_600  # no call lasts longer: an EndTime bound reaches this far before it
REVISED_DAYS = 2  # `revision` changes calls of today and yesterday (a sync's lookback)
CALL_PARTS = (
    "events",
    "notifications",
    "payments",
    "recordings",
    "siprec",
    "streams",
    "transcriptions",
    "user_defined_message_subscriptions",
    "user_defined_messages",
)
ACCOUNT_PARTS = (
    "addresses",
    "applications",
    "authorized_connect_apps",
    "available_phone_numbers",
    "balance",
    "calls",
    "conferences",
    "connect_apps",
    "incoming_phone_numbers",
    "keys",
    "messages",
    "notifications",
    "outgoing_caller_ids",
    "queues",
    "recordings",
    "signing_keys",
    "sip",
    "transcriptions",
    "usage",
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# ---------------------------------------------------------------- errors


def error(status: int, code: int, message: str) -> JSONObject:
    """Twilio's error body (2010-04-01 API)."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def fail(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> Reject:
    return Reject(json_response(error(status, code, message), status, headers))


def not_found(path: str) -> tuple[int, JSONObject]:
    """Twilio's 20404 for a resource (or a route) it does not have."""
    return 404, error(404, 20404, f"The requested resource {path} was not found")


def error_body(status: int, _message: str) -> JSONObject:
    """Body of an injected fault."""
    if status == 429:
        return error(429, 20429, "Too Many Requests")
    if status == 503:
        return error(503, 20503, "Service Unavailable")
    return error(status, 20500, "Internal Server Error")


# ---------------------------------------------------------------- formats


@lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    moment = datetime.fromtimestamp(day * DAY_S, UTC)
    return (
        f"{_WEEKDAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year} "
    )


_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))


def rfc2822(epoch: int) -> str:
    """`Fri, 18 Oct 2019 17:02:00 +0000`."""
    day, rest = divmod(epoch, DAY_S)
    return f"{_day_prefix(day)}{_MINUTES[rest // 60]}{rest % 60:02d} +0000"


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """`X-Twilio-Signature`: base64 HMAC-SHA1 (Auth Token) of the URL + sorted name/values."""
    data = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def formatted(number: str) -> str:
    """A North American number for display: `(415) 555-0100`."""
    if number.startswith("+1") and len(number) == 12:
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


SID_BLOCK = 4096


@lru_cache(maxsize=64)
def _sid_block(seed: int, block: int) -> str:
    """24 random hex digits for each of `SID_BLOCK` calls (one SHAKE-128 call: C speed)."""
    return hashlib.shake_128(f"twilio-sid:{seed}:{block}".encode()).hexdigest(12 * SID_BLOCK)


def call_sid(seed: int, index: int) -> str:
    """`CA` + 32 hex; the index is recoverable (`call_index`) and the rest looks random."""
    block, k = divmod(index, SID_BLOCK)
    return f"CA{_sid_block(seed, block)[24 * k : 24 * k + 24]}{index ^ 0x5A5A5A5A:08x}"


def call_index(seed: int, sid: str) -> int | None:
    try:
        index = int(sid[26:34], 16) ^ 0x5A5A5A5A
    except ValueError:
        return None
    return index if len(sid) == 34 and index >= 0 and call_sid(seed, index) == sid else None


# ---------------------------------------------------------------- the call log


@dataclass(frozen=True)
class Layout:
    """Every call-log entry of one seed and volume, in start order (columns, built once).

    `kind`: 0 inbound, 1 outbound-api, 2 the `outbound-dial` leg of the entry before it;
    `status`: index in STATUSES of how the call ends; `ring` seconds before it is answered or
    given up; `talk`: its duration if completed; `word`: a hash for its numbers and price.
    """

    seed: int
    first_day: int  # days since the epoch
    start: array[int]
    kind: bytes
    status: bytes
    ring: array[int]
    talk: array[int]
    word: array[int]


@lru_cache(maxsize=4)
def layout(seed: int, calls: int, days: int, last_day: int) -> Layout:
    """The call log: per-day counts follow a weekly rhythm; each day's calls are spread evenly
    with jitter. One SHAKE-128 stream gives every random word (C speed: 100,000 calls ≈ 0.2 s)."""
    first_day = last_day - days + 1
    weights = []
    for d in range(days):
        weekday = (first_day + d + 3) % 7  # 1970-01-01 was a Thursday
        noise = 0.85 + 0.3 * (mix64(seed * 7919 + first_day + d) >> 11) / float(1 << 53)
        weights.append((0.45 if weekday >= 5 else 1.0) * noise)
    total_weight = sum(weights)
    words = array("Q", hashlib.shake_128(f"twilio:{seed}:{calls}".encode()).digest(8 * calls))
    start, ring, talk = array("q", [0]) * calls, array("l", [0]) * calls, array("l", [0]) * calls
    kind, status = bytearray(calls), bytearray(calls)
    j, cumulative, placed = 0, 0.0, 0
    for d, weight in enumerate(weights):
        cumulative += weight
        count = round(calls * cumulative / total_weight) - placed
        placed += count
        base = (first_day + d) * DAY_S
        for k in range(count):
            w = words[j]
            start[j] = base + (k * DAY_S + (w & 0xFFFF) * DAY_S // 65536) // count
            pm = (w >> 16) % 1000
            previous_answered = k > 0 and kind[j - 1] == 0 and status[j - 1] == 0
            if previous_answered and (w >> 26) % 10 < 3:
                kind[j] = 2
                status[j] = 0 if pm < 700 else 2 if pm < 900 else 1
            elif (w >> 30) % 100 < 65:
                kind[j] = 0
                status[j] = 0 if pm < 850 else 3 if pm < 930 else 2 if pm < 960 else 1
                status[j] = 4 if pm >= 980 else status[j]
            else:
                kind[j] = 1
                status[j] = 0 if pm < 620 else 2 if pm < 820 else 1 if pm < 920 else 3
                status[j] = 4 if pm >= 960 else status[j]
            ring[j] = 2 + (w >> 36) % 28
            talk[j] = 8 + (w >> 42) % 1190
            j += 1
    return Layout(seed, first_day, start, bytes(kind), bytes(status), ring, talk, words)


@dataclass
class Change:
    """A call changed through the webhook control: its final status and duration."""

    status: str
    duration: int | None
    at: int
    sequence: int


@dataclass
class Live:
    """One emulator's mutable extras: changed calls and the requests in flight."""

    stats: Stats
    changes: dict[int, Change] = field(default_factory=dict)
    in_flight: int = 0
    peak: int = 0


_LIVE: weakref.WeakKeyDictionary[EmulatorState, Live] = weakref.WeakKeyDictionary()


def live(state: EmulatorState) -> Live:
    """The emulator's extras (new ones after a sandbox reset, which makes new stats)."""
    found = _LIVE.get(state)
    if found is None or found.stats is not state.stats:
        found = Live(state.stats)
        _LIVE[state] = found
    return found


class Core(NamedTuple):
    """What a call is at `now`: the fields filters need."""

    status: str
    end: int | None  # end_time (completed calls only)
    duration: int | None
    updated: int


class Log:
    """The call log as the account sees it at `now` (revisions and changes applied)."""

    def __init__(self, state: EmulatorState, now: float) -> None:
        self.state, self.now = state, int(now)
        days = max(1, state.volume_of("days"))
        self.layout = layout(state.seed, max(0, state.volume_of("calls")), days, self.now // DAY_S)
        self.revision = state.volume_of("revision")
        self.revised_from = (self.now // DAY_S - REVISED_DAYS + 1) * DAY_S
        self.changes = live(state).changes
        # calls that have started by now
        self.visible = bisect.bisect_right(self.layout.start, self.now)

    def core(self, j: int) -> Core:
        lay, start = self.layout, self.layout.start[j]
        status, talk, updated_by = STATUSES[lay.status[j]], lay.talk[j], 0
        if self.revision and start >= self.revised_from:
            for k in range(1, self.revision + 1):
                h = mix64(lay.seed * 1_000_003 + j * 64 + k)
                if h % 20:
                    continue
                talk = talk + 30 + (h >> 8) % 240 if status == "completed" else 20 + (h >> 8) % 400
                status, updated_by = "completed", 60 * k
        ring, change = lay.ring[j], self.changes.get(j)
        if change is not None:  # a callback said how it ended: its duration is the whole call
            status = change.status
            finish = start + ((change.duration or 0) if status == "completed" else ring)
        else:
            finish = start + ring + (talk if status == "completed" else 0)
        if change is None and finish > self.now:  # not over yet
            live_status = "ringing" if self.now < start + ring else "in-progress"
            return Core(live_status if status == "completed" else "ringing", None, None, start)
        updated = change.at if change is not None else min(finish + 1 + updated_by, self.now)
        if status != "completed":
            return Core(status, None, None, updated)
        return Core(status, finish, finish - start, updated)

    def row(self, j: int, core: Core) -> dict[str, JSONValue]:
        """Entry `j` as Twilio's Call resource."""
        row: dict[str, JSONValue] = orjson.loads(self.encoded(j, core))
        return row

    def encoded(self, j: int, core: Core) -> str:
        """Entry `j` as JSON text, written directly (no value needs escaping): the hot path of
        a page of 1,000 calls."""
        lay, seed = self.layout, self.layout.seed
        sid, start, word, kind = call_sid(seed, j), lay.start[j], lay.word[j], lay.kind[j]
        line = (word >> 48) % len(NUMBERS)
        ours = NUMBERS[line]
        theirs = f"+1{200 + (word >> 50) % 700}555{(word >> 20) % 10000:04d}"
        parent = f'"{call_sid(seed, j - 1)}"' if kind == 2 else "null"
        if kind == 0:
            caller, callee = theirs, ours
        elif kind == 1:
            caller, callee = ours, theirs
        else:  # the agent leg the inbound call <Dial>ed
            caller, callee = ours, f"+1628555{(word >> 8) % 10000:04d}"
        price, duration, end = "null", "null", "null"
        if core.duration is not None and core.end is not None:
            duration, end = f'"{core.duration}"', f'"{rfc2822(core.end)}"'
            if self.now - core.end >= PRICE_DELAY_S:
                rate = 0.0085 if kind == 0 else 0.014
                price = f'"{-rate * math.ceil(core.duration / 60):.5f}"'
        number = "null" if kind == 2 else f'"PN{line + 1:032x}"'
        uri = f"{VERSION}/Accounts/{ACCOUNT_SID}/Calls/{sid}"
        return (
            f'{{"account_sid":"{ACCOUNT_SID}","annotation":null,"answered_by":null,'
            f'"api_version":"2010-04-01","caller_name":null,'
            f'"date_created":"{rfc2822(start - (1 if kind == 1 else 0))}",'
            f'"date_updated":"{rfc2822(core.updated)}","direction":"{KINDS[kind]}",'
            f'"duration":{duration},"end_time":{end},"forwarded_from":null,'
            f'"from":"{caller}","from_formatted":"{formatted(caller)}","group_sid":null,'
            f'"parent_call_sid":{parent},"phone_number_sid":{number},"price":{price},'
            f'"price_unit":"USD","queue_time":"0","sid":"{sid}",'
            f'"start_time":"{rfc2822(start)}","status":"{core.status}",'
            f'"subresource_uris":{_CALL_PARTS.replace("@", uri)},'
            f'"to":"{callee}","to_formatted":"{formatted(callee)}","trunk_sid":null,'
            f'"uri":"{uri}.json"}}'
        )


@lru_cache(maxsize=64)
def _camel(part: str) -> str:
    return "".join(word.capitalize() for word in part.split("_"))


# A call's `subresource_uris` as JSON, `@` standing for the call's URI.
_CALL_PARTS = "{" + ",".join(f'"{part}":"@/{_camel(part)}.json"' for part in CALL_PARTS) + "}"


# ---------------------------------------------------------------- auth and limits


@dataclass(frozen=True)
class Caller:
    """Who signed in: the account itself, or one of its API keys (`main` / `std`)."""

    username: str
    key_type: str


def caller(request: Request) -> Caller:
    """HTTP Basic as the account or an API key, or Twilio's 401 20003."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    refused = fail(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
    if scheme.lower() != "basic":
        raise refused
    try:
        username, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise refused from exc
    if username == ACCOUNT_SID and password == AUTH_TOKEN:
        return Caller(username, "account")
    key = KEYS.get(username)
    if key is not None and key[0] == password:
        return Caller(username, key[1])
    raise refused


CallerDep = Annotated[Caller, Depends(caller)]


def _account(account_sid: str) -> None:
    if account_sid != ACCOUNT_SID:
        path = f"{VERSION}/Accounts/{account_sid}"
        raise fail(404, 20404, f"The requested resource {path}.json was not found")


async def served(request: Request, work: Callable[[EmulatorState, Live], Response]) -> Response:
    """Run `work` as one in-flight request of the account (refused past `concurrency`)."""
    state = get_state(request, SLUG)
    extras = live(state)
    limit = state.volume_of("concurrency")
    if limit and extras.in_flight >= limit:
        raise fail(429, 20429, "Too Many Requests", {"Twilio-Concurrent-Requests": str(limit)})
    extras.in_flight += 1
    extras.peak = max(extras.peak, extras.in_flight)
    concurrent = extras.in_flight
    try:
        if state.volume_of("serverMs"):
            await asyncio.sleep(state.volume_of("serverMs") / 1000)
        response = work(state, extras)
    finally:
        extras.in_flight -= 1
    request_id = f"RQ{mix64(state.stats.total * 31 + state.seed):032x}"
    response.headers["Twilio-Concurrent-Requests"] = str(concurrent)
    response.headers["Twilio-Request-Id"] = request_id
    response.headers["Twilio-Request-Duration"] = "0.015"
    return response


# ---------------------------------------------------------------- query parsing


def _raw_query(request: Request) -> list[tuple[str, str]]:
    """The query's pairs with their names decoded (`StartTime%3E` → `StartTime>`)."""
    text = request.scope.get("query_string", b"").decode("latin-1")
    pairs = []
    for part in filter(None, text.split("&")):
        key, _, value = part.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def _date(name: str, value: str) -> int:
    """A filter date as the epoch second of its midnight (a time of day is cut off)."""
    text = value.strip()[:10]
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise fail(400, 20001, f"Invalid {name} parameter: {value!r} is not a date") from exc
    return int(day.timestamp())


@dataclass
class Filters:
    """The Calls list filters of one request (names as Twilio spells them)."""

    pairs: list[tuple[str, str]]
    start_lo: int | None = None  # start >= (seconds)
    start_hi: int | None = None  # start <=
    end_lo: int | None = None
    end_hi: int | None = None
    status: str | None = None
    parent: str | None = None
    to: str | None = None
    sender: str | None = None

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> Filters:
        found = cls([])
        for name, value in pairs:
            base = name.rstrip("<>")
            if base in ("StartTime", "EndTime"):
                moment = _date(name, value)
                lo, hi = ("start_lo", "start_hi") if base == "StartTime" else ("end_lo", "end_hi")
                if name.endswith(">"):
                    setattr(found, lo, moment)
                elif name.endswith("<"):
                    setattr(found, hi, moment)
                else:  # that day
                    setattr(found, lo, moment)
                    setattr(found, hi, moment + DAY_S - 1)
            elif name == "Status":
                if value not in STATUSES + LIVE:
                    raise fail(400, 20001, f"Invalid Status parameter: {value!r}")
                found.status = value
            elif name == "ParentCallSid":
                found.parent = value
            elif name == "To":
                found.to = value
            elif name == "From":
                found.sender = value
            else:
                continue
            found.pairs.append((name, value))
        return found

    def index_range(self, log: Log) -> tuple[int, int]:
        """Entries whose start could match: [first, stop) of the layout."""
        starts = log.layout.start
        lo = self.start_lo
        if self.end_lo is not None:
            lo = max(lo or 0, self.end_lo - MAX_LENGTH_S)
        hi = (
            self.start_hi if self.end_hi is None else min(self.start_hi or self.end_hi, self.end_hi)
        )
        first = bisect.bisect_left(starts, lo) if lo is not None else 0
        stop = bisect.bisect_right(starts, hi) if hi is not None else log.visible
        return first, min(stop, log.visible)

    def match(self, log: Log, j: int) -> Core | None:
        core = log.core(j)
        if self.status is not None and core.status != self.status:
            return None
        if self.end_lo is not None or self.end_hi is not None:
            if core.end is None:
                return None
            if self.end_lo is not None and core.end < self.end_lo:
                return None
            if self.end_hi is not None and core.end > self.end_hi:
                return None
        if self.parent is not None or self.to is not None or self.sender is not None:
            row = log.row(j, core)
            wanted = (("parent_call_sid", self.parent), ("to", self.to), ("from", self.sender))
            if any(v is not None and row[k] != v for k, v in wanted):
                return None
        return core


def _uri(path: str, pairs: list[tuple[str, str]], size: int, page: int, token: str | None) -> str:
    query = [*pairs, ("PageSize", str(size)), ("Page", str(page))]
    if token:
        query.append(("PageToken", token))
    return f"{path}?{urlencode(query, quote_via=quote, safe='')}"


# ---------------------------------------------------------------- routes

api = APIRouter(prefix=VERSION, tags=[SLUG])


def _account_body() -> dict[str, JSONValue]:
    uri = f"{VERSION}/Accounts/{ACCOUNT_SID}"
    return {
        "auth_token": AUTH_TOKEN,
        "date_created": "Wed, 04 Mar 2020 09:00:00 +0000",
        "date_updated": "Wed, 04 Mar 2020 09:00:00 +0000",
        "friendly_name": "Inflow Sandbox",
        "owner_account_sid": ACCOUNT_SID,
        "sid": ACCOUNT_SID,
        "status": "active",
        "subresource_uris": {part: f"{uri}/{_camel(part)}.json" for part in ACCOUNT_PARTS},
        "type": "Full",
        "uri": f"{uri}.json",
    }


def _standard_refused(who: Caller) -> None:
    if who.key_type == "std":  # Standard keys reach everything but /Accounts and /Keys
        raise fail(401, 20003, "Authenticate")


@api.get("/Accounts.json")
async def list_accounts(request: Request, who: CallerDep) -> Response:
    """The account and its subaccounts (the sandbox has none)."""
    _standard_refused(who)
    size = _page_size(request)
    path = f"{VERSION}/Accounts.json"
    first = _uri(path, [], size, 0, None)
    body: dict[str, JSONValue] = {
        "accounts": [_account_body()],
        "end": 0,
        "first_page_uri": first,
        "next_page_uri": None,
        "page": 0,
        "page_size": size,
        "previous_page_uri": None,
        "start": 0,
        "uri": first,
    }
    return await served(request, lambda *_: json_response(body))


@api.get("/Accounts/{account_sid}.json")
async def fetch_account(request: Request, account_sid: str, who: CallerDep) -> Response:
    """The account (its body holds the Auth Token: clients must never log it)."""
    _standard_refused(who)
    _account(account_sid)
    return await served(request, lambda *_: json_response(_account_body()))


def _page_size(request: Request) -> int:
    raw = request.query_params.get("PageSize", "50")
    if not raw.isdigit() or int(raw) < 1:
        raise fail(400, 20001, f"Invalid PageSize parameter: {raw!r}")
    return min(int(raw), 1000)


@api.get("/Accounts/{account_sid}/Calls.json")
async def list_calls(request: Request, account_sid: str, _: CallerDep) -> Response:
    """The call log, newest first, filtered and paged as Twilio does."""
    _account(account_sid)
    pairs = _raw_query(request)
    filters = Filters.of(pairs)
    size = _page_size(request)
    params = dict(pairs)
    page_raw, token = params.get("Page", "0"), params.get("PageToken")
    if not page_raw.isdigit():
        raise fail(400, 20001, f"Invalid Page parameter: {page_raw!r}")
    page = int(page_raw)
    if page > 0 and not token:
        raise fail(400, 20001, "PageToken is required for paging.")

    def work(state: EmulatorState, _extras: Live) -> Response:
        log = Log(state, clock_now(request))
        first, stop = filters.index_range(log)
        rows: list[tuple[int, Core]] = []
        more = False
        if token and token[:2] == "PB":  # the page before: newer calls, scanned upwards
            anchor = call_index(state.seed, token[2:])
            if anchor is None:
                raise fail(400, 20001, f"Invalid PageToken: {token!r}")
            for j in range(anchor + 1, stop):
                core = filters.match(log, j)
                if core is not None:
                    rows.append((j, core))
                    if len(rows) == size:
                        break
            rows.reverse()
            more = True
        else:
            top = stop
            if token:
                anchor = call_index(state.seed, token[2:]) if token[:2] == "PA" else None
                if anchor is None:
                    raise fail(400, 20001, f"Invalid PageToken: {token!r}")
                top = min(anchor, stop)
            for j in range(top - 1, first - 1, -1):
                core = filters.match(log, j)
                if core is None:
                    continue
                if len(rows) == size:
                    more = True
                    break
                rows.append((j, core))
        path = f"{VERSION}/Accounts/{account_sid}/Calls.json"
        calls = [orjson.Fragment(log.encoded(j, core)) for j, core in rows]
        last = call_sid(state.seed, rows[-1][0]) if rows else None
        first_sid = call_sid(state.seed, rows[0][0]) if rows else None
        nxt = _uri(path, filters.pairs, size, page + 1, f"PA{last}") if more and last else None
        prev = (
            _uri(path, filters.pairs, size, page - 1, f"PB{first_sid}")
            if page > 0 and first_sid
            else None
        )
        body: dict[str, Any] = {  # the calls are JSON already
            "calls": calls,
            "end": page * size + max(len(calls) - 1, 0),
            "first_page_uri": _uri(path, filters.pairs, size, 0, None),
            "next_page_uri": nxt,
            "page": page,
            "page_size": size,
            "previous_page_uri": prev,
            "start": page * size,
            "uri": _uri(path, filters.pairs, size, page, token),
        }
        return OrjsonResponse(body)

    return await served(request, work)


@api.get("/Accounts/{account_sid}/Calls/{sid}.json")
async def fetch_call(request: Request, account_sid: str, sid: str, _: CallerDep) -> Response:
    """One call."""
    _account(account_sid)

    def work(state: EmulatorState, _extras: Live) -> Response:
        log = Log(state, clock_now(request))
        j = call_index(state.seed, sid)
        if j is None or j >= log.visible:
            path = f"{VERSION}/Accounts/{account_sid}/Calls/{sid}.json"
            raise fail(404, 20404, f"The requested resource {path} was not found")
        return json_response(log.row(j, log.core(j)))

    return await served(request, work)


# ---------------------------------------------------------------- status callbacks


def callback(log: Log, j: int, url: str, sequence: int) -> Outgoing:
    """The status callback Twilio POSTs for entry `j` as it is now, signed with the token."""
    row = log.row(j, log.core(j))
    params: dict[str, str] = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": str(row["sid"]),
        "CallStatus": str(row["status"]),
        "CallbackSource": "call-progress-events",
        "Called": str(row["to"]),
        "Caller": str(row["from"]),
        "Direction": str(row["direction"]),
        "From": str(row["from"]),
        "SequenceNumber": str(sequence),
        "Timestamp": rfc2822(log.now),
        "To": str(row["to"]),
    }
    if row["duration"] is not None:
        params["CallDuration"] = str(row["duration"])
        params["Duration"] = str(math.ceil(int(str(row["duration"])) / 60))
    if row["parent_call_sid"]:
        params["ParentCallSid"] = str(row["parent_call_sid"])
    token = mix64(log.layout.seed * 131 + j * 1021 + sequence)
    idempotency = f"{token:016x}-{mix64(token):016x}"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "I-Twilio-Idempotency-Token": f"{idempotency[:8]}-{idempotency[8:12]}-{idempotency[17:]}",
        "User-Agent": "TwilioProxy/1.1",
        "X-Twilio-Signature": signature(AUTH_TOKEN, url, params),
    }
    return Outgoing(url=url, body=urlencode(params).encode(), headers=headers)


@dataclass(frozen=True)
class WebhookIn:
    """`POST /twilio/_sandbox/webhook`: the call (default: the newest parent call) and what
    it becomes (default `completed`, its duration plus a minute)."""

    url: str
    sid: str | None = None
    status: str = "completed"
    duration: int | None = None
    deliver: bool = False


def _newest_parent(log: Log) -> int | None:
    for j in range(log.visible - 1, -1, -1):
        if log.layout.kind[j] != 2:
            return j
    return None


control = APIRouter(prefix="/_sandbox", tags=[SLUG])


@control.post("/webhook", openapi_extra=NO_FAULTS)
async def send_webhook(request: Request, body: Annotated[dict[str, Any], Body()]) -> Response:
    """Change one call as a status callback says and hand back (or deliver) that callback."""
    try:
        wanted = WebhookIn(**body)
    except TypeError as exc:
        return json_response({"sandboxError": str(exc)}, 400)
    if wanted.status not in STATUSES:
        return json_response({"sandboxError": f"status must be one of {STATUSES}"}, 400)
    state = get_state(request, SLUG)
    log = Log(state, clock_now(request))
    j = call_index(state.seed, wanted.sid) if wanted.sid else _newest_parent(log)
    if j is None or j >= log.visible:
        return json_response({"sandboxError": f"no call {wanted.sid!r} in the log"}, 404)
    before = log.core(j)
    duration = wanted.duration
    if wanted.status == "completed" and duration is None:
        duration = (before.duration or 0) + 60
    changes = live(state).changes
    sequence = changes[j].sequence + 1 if j in changes else 3
    changes[j] = Change(
        wanted.status, duration if wanted.status == "completed" else None, log.now, sequence
    )
    outgoing = callback(log, j, wanted.url, sequence)
    answer: dict[str, JSONValue] = {"request": describe(outgoing), "call": log.row(j, log.core(j))}
    if wanted.deliver:
        answer["delivered"] = await deliver(outgoing)
    return json_response(answer)


@control.get("/concurrency", openapi_extra=NO_FAULTS)
async def concurrency(request: Request) -> OrjsonResponse:
    """The most requests the account had in flight at once (since the last reset)."""
    extras = live(get_state(request, SLUG))
    return json_response({"peak": extras.peak, "inFlight": extras.in_flight})


# ---------------------------------------------------------------- sandbox hooks


def credentials(base_url: str) -> JSONObject:
    """A working `calling` config: the account SID and its Auth Token."""
    return {
        "platform": SLUG,
        "accountSid": ACCOUNT_SID,
        "authToken": AUTH_TOKEN,
        "baseUrl": base_url,
    }


router = APIRouter()
router.include_router(api)
router.include_router(control)
EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    default_volume={
        "calls": 2_000,
        "days": 30,
        "revision": 0,
        "concurrency": 100,
        "serverMs": 0,
        "ratePerSecond": 0,
    },
    faults=frozenset(
        ("rate_limit", "server_error", "unavailable", "truncate", "drop", "slow", "mutate")
    ),
    error_body=error_body,
    not_found=not_found,
    rate_limit_headers=None,  # Twilio sends no X-RateLimit-* headers
)

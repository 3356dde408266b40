"""Emulator of Aircall's Public API v1 (calls), prefix `/aircall`.

Basic auth `api_id:api_token` (no or malformed header → 401, a wrong pair → 403; both with
Aircall's `{error, troubleshoot}` body). `GET /v1/ping` → `{"ping": "pong"}`; `GET /v1/calls`
with `from`/`to` (UNIX seconds, both inclusive, on `started_at`), `order` (`asc`, `desc`),
`page`, `per_page` (default 20, at most 50: more is served as 50) → `{"calls": [...], "meta":
{count, total, current_page, per_page, next_page_link, previous_page_link}}` with absolute
links; only the first 10,000 calls of a query are served, silently (`total` stays the true
count, the last page's `next_page_link` is null, pages past it are empty). `GET /v1/calls/{id}`
→ `{"call": {...}}` or 404. A company's budget is `rateLimit` requests (120, the API reference's) per fixed window of
`rateWindowS` seconds (60); every authenticated response carries `X-AircallApi-Limit`,
`-Remaining` and `-Reset` (epoch seconds), and past the budget a 429 (no Retry-After).

Data: `calls` calls over the `days` days ending today (UTC; weekends quieter), none after the
sandbox clock's now; a call not yet ended is `initial` or `answered` with no `ended_at`.
`peakCalls` (0: off) puts that many calls on the day `peakDay` days ago. `revision` (0..) makes
late changes: each step re-draws some calls of yesterday and today (answered or not, talk
time). `POST /aircall/_sandbox/webhook` changes one call and answers the delivery Aircall would
send for it (`inflow.sandbox.webhooks`), token in the body; with `deliver` it also posts it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode
from weakref import WeakKeyDictionary

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.responses import Response

from inflow.sandbox.data import CallDay, call_day, mix64
from inflow.sandbox.emulator import (
    Emulator,
    JSONObject,
    JSONValue,
    RateLimitHeaders,
    Reject,
    base_url,
    json_response,
)
from inflow.sandbox.faults import NO_FAULTS
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.stats import Stats
from inflow.sandbox.webhooks import Outgoing, deliver, describe

SLUG = "aircall"
API_ID = "4f2a9c0e1b7d45e8a3c6sandbox01"
API_TOKEN = "sandbox-aircall-api-token-0001"  # noqa: S105 (the sandbox's fake key)
WEBHOOK_TOKEN = "sandboxwebhooktoken0001"  # noqa: S105
CAP = 10_000
MAX_PER_PAGE, DEFAULT_PER_PAGE = 50, 20
DAY_S = 86_400
STRIDE = 100_000  # a call's id: its day (days since 1970) * STRIDE + its rank that day
REASONS = (
    "out_of_opening_hours",
    "short_abandoned",
    "abandoned_in_ivr",
    "abandoned_in_classic",
    "no_available_agent",
    "agents_did_not_answer",
)
VOICEMAIL_AFTER = frozenset({"out_of_opening_hours", "no_available_agent", "agents_did_not_answer"})
USERS = tuple(
    (456 + i, name)
    for i, name in enumerate(
        ("Madelaine Dupont", "Kofi Mensah", "Lena Vogel", "Aiko Tanaka", "Ravi Iyer", "Sofia Ruiz")
    )
)
NUMBERS = (
    (123, "Support US", "+1 650-555-0199", "US", "America/Los_Angeles"),
    (124, "Sales US", "+1 415-555-0142", "US", "America/Los_Angeles"),
    (125, "Support FR", "+33 1 84 88 00 12", "FR", "Europe/Paris"),
)
ASSETS = "https://sandbox-assets.aircall.io"  # signed, short-lived URLs in the real API
TEAMS: tuple[JSONObject, ...] = ({"id": 204848, "name": "Support"}, {"id": 204849, "name": "Sales"})


def _error(status: int, error: str, troubleshoot: str, **headers: str) -> Reject:
    return Reject(json_response({"error": error, "troubleshoot": troubleshoot}, status, headers))


def error_body(status: int, message: str) -> JSONObject:
    titles = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
    return {"error": titles.get(status, "Error"), "troubleshoot": message}


def not_found(path: str) -> tuple[int, JSONObject]:
    """Aircall's `{error, troubleshoot}` for a route the Public API does not have."""
    return 404, {
        "error": "Not Found",
        "troubleshoot": f"No route matches {path}; see developer.aircall.io",
    }


# ---------------------------------------------------------------- live bookkeeping


@dataclass
class _Live:
    """A company's rate window and the calls webhooks changed (forgotten on reset)."""

    window: int = -1
    used: int = 0
    changed: dict[int, dict[str, int | bool]] = field(default_factory=dict)


_LIVE: WeakKeyDictionary[Stats, _Live] = WeakKeyDictionary()


def live(state: EmulatorState) -> _Live:
    return _LIVE.setdefault(state.stats, _Live())


@dataclass(frozen=True)
class Company:
    """An authenticated request: the emulator's state, now, and the rate headers to send."""

    state: EmulatorState
    now: float
    headers: dict[str, str]


async def company(request: Request) -> Company:
    """Basic auth, then one request of the company's budget."""
    state = get_state(request, SLUG)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    try:
        pair = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        pair = ""
    if scheme.lower() != "basic" or ":" not in pair:
        raise _error(401, "Unauthorized", "Use Basic authentication with your API ID and token")
    api_id, _, token = pair.partition(":")
    good = hmac.compare_digest(api_id, API_ID) & hmac.compare_digest(token, API_TOKEN)
    if not good:
        raise _error(403, "Forbidden", "Verify your API ID and API token")
    now = clock_now(request)
    limit = state.volume_of("rateLimit") or 120
    span = max(1, state.volume_of("rateWindowS"))
    books, window = live(state), int(now // span)
    if books.window != window:
        books.window, books.used = window, 0
    reset = str((window + 1) * span)
    if books.used >= limit:
        raise _error(
            429,
            "Too Many Requests",
            f"Rate limit of {limit} requests per {span} s reached; retry after the reset",
            **{"X-AircallApi-Limit": str(limit), "X-AircallApi-Remaining": "0"},
            **{"X-AircallApi-Reset": reset},
        )
    books.used += 1
    headers = {
        "X-AircallApi-Limit": str(limit),
        "X-AircallApi-Remaining": str(limit - books.used),
        "X-AircallApi-Reset": reset,
    }
    return Company(state, now, headers)


CompanyDep = Annotated[Company, Depends(company)]


# ---------------------------------------------------------------- data


Day = CallDay


def day_of(seed: int, number: int, per_day: float, peak: int) -> Day:
    return call_day(seed, number, per_day, peak=peak, most=STRIDE - 1)


@dataclass(frozen=True)
class Log:
    """The company's call log as the sandbox clock sees it."""

    seed: int
    now: float
    first: int  # first day number
    today: int
    per_day: float
    peak_day: int
    peak_calls: int
    revision: int
    changed: dict[int, dict[str, int | bool]]

    @classmethod
    def of(cls, state: EmulatorState, now: float) -> Log:
        days = max(1, state.volume_of("days"))
        today = int(now // DAY_S)
        return cls(
            seed=state.seed,
            now=now,
            first=today - days + 1,
            today=today,
            per_day=state.volume_of("calls") / days,
            peak_day=today - state.volume_of("peakDay"),
            peak_calls=state.volume_of("peakCalls"),
            revision=state.volume_of("revision"),
            changed=live(state).changed,
        )

    def day(self, number: int) -> Day:
        peak = self.peak_calls if number == self.peak_day else 0
        return day_of(self.seed, number, self.per_day, peak)

    def spans(self, start: float, end: float) -> list[tuple[Day, int, int]]:
        """Per day, the ranks [j0, j1) of the calls started in [start, end] (and by now)."""
        end = min(end, self.now)
        out = []
        first, last = max(self.first, int(start // DAY_S)), min(self.today, int(end // DAY_S))
        for number in range(first, last + 1):
            day = self.day(number)
            j0 = day.first_at(start) if start > day.start else 0
            j1 = day.after(end) if end < day.start + DAY_S else day.count
            if j1 > j0:
                out.append((day, j0, j1))
        return out

    def call(self, day: Day, j: int, links: str) -> dict[str, JSONValue]:
        """Call j of `day` as `GET /v1/calls` shows it."""
        call_id = day.number * STRIDE + j
        h = mix64((day.salt ^ 0xA24BAED4963EE407) + j)
        if self.revision and day.number >= self.today - 1:  # late changes: the last two days
            steps = [k for k in range(1, self.revision + 1) if mix64(h + k) % 4 == 0]
            if steps:
                h = mix64(h ^ steps[-1])
        inbound = h % 100 < 65
        answered = (h >> 8) % 100 < (74 if inbound else 58)
        ring = 4 + (h >> 16) % 22
        talk = 15 + (h >> 24) % 540
        change = self.changed.get(call_id, {})
        answered = bool(change.get("answered", answered))
        talk = int(change.get("talk", talk))
        reason = REASONS[(h >> 32) % len(REASONS)] if inbound and not answered else None
        voicemail = reason in VOICEMAIL_AFTER and (h >> 40) % 3 > 0
        started = day.start + day.offset(j)
        answered_at = started + ring if answered else None
        ended = started + ring + (talk if answered else (30 if voicemail else 0))
        status = "done"
        if ended > self.now:
            status = (
                "answered" if answered_at is not None and answered_at <= self.now else "initial"
            )
        done = status == "done"
        user_id, user_name = USERS[(h >> 44) % len(USERS)]
        number_id, line, digits, country, zone = NUMBERS[(h >> 48) % len(NUMBERS)]
        user: JSONObject | None = None
        if answered or not inbound:
            email = user_name.lower().replace(" ", ".") + "@example.com"
            user = {
                "id": user_id,
                "direct_link": f"{links}/v1/users/{user_id}",
                "name": user_name,
                "email": email,
                "available": True,
                "availability_status": "available",
            }
        anonymous = (h >> 52) % 33 == 0
        recording = answered and done
        return {
            "id": call_id,
            "direct_link": f"{links}/v1/calls/{call_id}",
            "sid": f"CA{h:016x}{mix64(h):016x}",
            "direction": "inbound" if inbound else "outbound",
            "status": status,
            "missed_call_reason": reason if done else None,
            "started_at": started,
            "answered_at": answered_at if status != "initial" else None,
            "ended_at": ended if done else None,
            "duration": ended - started if done else 0,
            "raw_digits": "anonymous" if anonymous else f"+1 415-555-{h % 10_000:04d}",
            "voicemail": f"{ASSETS}/voicemails/{call_id}.mp3?sig=x" if voicemail and done else None,
            "recording": f"{ASSETS}/recordings/{call_id}.mp3?sig=x" if recording else None,
            "asset": f"https://assets.aircall.io/calls/{call_id}/recording" if recording else None,
            "archived": False,
            "cost": "0.0",
            "country_code_a2": country,
            "pricing_type": "pay_as_you_go",
            "user": user,
            "assigned_to": None,
            "transferred_by": None,
            "transferred_to": None,
            "contact": None,
            "number": {
                "id": number_id,
                "direct_link": f"{links}/v1/numbers/{number_id}",
                "name": line,
                "digits": digits,
                "country": country,
                "time_zone": zone,
                "open": True,
                "is_ivr": False,
            },
            "teams": [TEAMS[0] if number_id != 124 else TEAMS[1]] if inbound else [],
            "tags": [],
            "comments": [],
        }

    def find(self, call_id: int) -> tuple[Day, int] | None:
        """A call by id, if it exists by now."""
        number, j = divmod(call_id, STRIDE)
        if not self.first <= number <= self.today:
            return None
        day = self.day(number)
        if j >= day.count or day.start + day.offset(j) > self.now:
            return None
        return day, j


def _int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _error(400, "Bad Request", f"`{name}` must be an integer, got {raw!r}") from None


def _ranks(
    spans: list[tuple[Day, int, int]], skip: int, take: int, desc: bool
) -> Iterator[tuple[Day, int]]:
    """(day, rank) of calls `skip`..`skip + take` of the query, in its order."""
    ordered = reversed(spans) if desc else iter(spans)
    for day, j0, j1 in ordered:
        size = j1 - j0
        if skip >= size:
            skip -= size
            continue
        ranks = range(j1 - 1 - skip, j0 - 1, -1) if desc else range(j0 + skip, j1)
        for j in itertools.islice(ranks, take):
            yield day, j
            take -= 1
        skip = 0
        if take <= 0:
            return


# ---------------------------------------------------------------- API

api = APIRouter(tags=[SLUG])


@api.get("/v1/ping")
async def ping(who: CompanyDep) -> Response:
    return json_response({"ping": "pong"}, headers=who.headers)


@api.get("/v1/calls")
async def list_calls(request: Request, who: CompanyDep) -> Response:
    """A page of the call log, oldest first by default; the first 10,000 only."""
    page = _int(request, "page", 1) or 1
    per_page = min(MAX_PER_PAGE, max(1, _int(request, "per_page", DEFAULT_PER_PAGE) or 1))
    order = request.query_params.get("order", "asc")
    if page < 1 or order not in ("asc", "desc"):
        raise _error(400, "Bad Request", "`page` must be >= 1 and `order` asc or desc")
    log = Log.of(who.state, who.now)
    start = _int(request, "from", None)
    end = _int(request, "to", None)
    start = log.first * DAY_S if start is None else start
    spans = log.spans(start, who.now if end is None else end)
    total = sum(j1 - j0 for _, j0, j1 in spans)
    served = min(total, CAP)
    skip = (page - 1) * per_page
    take = max(0, min(per_page, served - skip))
    links = base_url(request, SLUG)
    calls = [log.call(day, j, links) for day, j in _ranks(spans, skip, take, order == "desc")]
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "per_page")]

    def link(n: int) -> str:
        return f"{links}/v1/calls?{urlencode([*query, ('page', n), ('per_page', per_page)])}"

    meta = {
        "count": len(calls),
        "total": total,
        "current_page": page,
        "per_page": per_page,
        "next_page_link": link(page + 1) if page * per_page < served else None,
        "previous_page_link": link(page - 1) if page > 1 else None,
    }
    return json_response({"calls": calls, "meta": meta}, headers=who.headers)


@api.get("/v1/calls/{call_id}")
async def get_call(request: Request, call_id: str, who: CompanyDep) -> Response:
    log = Log.of(who.state, who.now)
    found = log.find(int(call_id)) if call_id.isdigit() else None
    if found is None:
        raise _error(404, "Not found", f"Call {call_id} not found", **who.headers)
    return json_response({"call": log.call(*found, base_url(request, SLUG))}, headers=who.headers)


# ---------------------------------------------------------------- webhooks


class WebhookIn(BaseModel):
    """`POST /aircall/_sandbox/webhook`: a change to one call, and where to send its event.

    `callId` defaults to the last call that ended an hour ago or more; `answered` and
    `talkSeconds` change it (omitted: as it is); `token` replaces the webhook's own (forgeries).
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    url: str
    event: str = "call.ended"
    call_id: int | None = None
    answered: bool | None = None
    talk_seconds: int | None = None
    token: str = WEBHOOK_TOKEN
    timestamp: int | None = None
    deliver: bool = False


def event_data(call: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """A call as webhook events carry it: `sid` is `call_uuid`, participants listed."""
    data = {("call_uuid" if k == "sid" else k): v for k, v in call.items()}
    participants: list[JSONValue] = [{"phone_number": call["raw_digits"], "type": "external"}]
    user = call.get("user")
    if isinstance(user, dict):
        participants.append({"id": user["id"], "name": user["name"], "type": "user"})
    data["participants"] = participants
    return data


@api.post("/_sandbox/webhook", openapi_extra=NO_FAULTS)
async def send_webhook(request: Request, body: WebhookIn) -> Response:
    """Change a call as the event says, and answer (or deliver) Aircall's delivery of it."""
    state = get_state(request, SLUG)
    now = clock_now(request)
    log = Log.of(state, now)
    call_id = body.call_id
    if call_id is None:
        spans = log.spans(log.first * DAY_S, now - 3600)
        if not spans:
            return json_response({"sandboxError": "no call has ended yet"}, 404)
        day, _, last = spans[-1]
        call_id = day.number * STRIDE + last - 1
    found = log.find(call_id)
    if found is None:
        return json_response({"sandboxError": f"no call {call_id}"}, 404)
    change = live(state).changed.setdefault(call_id, {})
    if body.answered is not None:
        change["answered"] = body.answered
    if body.talk_seconds is not None:
        change["talk"] = body.talk_seconds
    call = log.call(*found, base_url(request, SLUG))
    payload = {
        "resource": "call",
        "event": body.event,
        "timestamp": int(now) if body.timestamp is None else body.timestamp,
        "token": body.token,
        "data": event_data(call),
    }
    outgoing = Outgoing(
        url=body.url,
        body=orjson.dumps(payload),
        headers={
            "content-type": "application/json",
            "user-agent": "axios/1.7.7",
            "aircall-origin": "webhooks",
        },
    )
    described: dict[str, Any] = dict(describe(outgoing))
    described["call"] = call
    if body.deliver:
        described["delivered"] = await deliver(outgoing)
    return json_response(described)


def credentials(url: str) -> JSONObject:
    return {
        "platform": SLUG,
        "apiId": API_ID,
        "apiToken": API_TOKEN,
        "webhookToken": WEBHOOK_TOKEN,
        "baseUrl": url,
    }


EMULATOR = Emulator(
    slug=SLUG,
    router=api,
    credentials=credentials,
    default_volume={
        "calls": 2_000,
        "days": 30,
        "revision": 0,
        "peakCalls": 0,
        "peakDay": 1,
        "rateLimit": 120,
        "rateWindowS": 60,
    },
    error_body=error_body,
    not_found=not_found,
    # Names for injected 429s (the handlers send the real window's values themselves).
    rate_limit_headers=RateLimitHeaders(
        limit=120,
        limit_header="X-AircallApi-Limit",
        remaining_header="X-AircallApi-Remaining",
        reset_header="X-AircallApi-Reset",
    ),
)

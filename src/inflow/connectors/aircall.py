"""Aircall: daily call metrics from a company's call log (Public API v1, Basic auth).

API docs: https://developer.aircall.io/api-references/   Emulator: inflow.sandbox.aircall
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field, HttpUrl, SecretStr

from inflow.connectors import calling
from inflow.connectors.calling import Call
from inflow.connectors.spec import (
    Action,
    Basic,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    Incremental,
    Kind,
    NextUrl,
    RateLimit,
    Resolution,
    ResultCap,
    Stream,
    Webhook,
    WebhookEvent,
    WebhookRequest,
    Window,
)
from inflow.errors import BadRequestError, CredentialsError, WebhookSignatureError

if TYPE_CHECKING:
    import httpx

API = "https://api.aircall.io"
DAY = timedelta(days=1)
WEEK = timedelta(days=7)  # reduce windows start at midnight: each day is read whole


class AircallConfig(ConnectorConfig):
    platform: Literal["aircall"] = "aircall"
    api_id: str = Field(title="API ID", min_length=1, description="Company Settings → API Keys.")
    api_token: SecretStr = Field(title="API token", description="Shown once, with the API ID.")
    webhook_token: SecretStr | None = Field(
        None,
        title="Webhook token",
        description="The `token` of the Aircall webhook that posts to this source's webhook URL.",
    )
    timezone: calling.TimeZone = "UTC"
    fixed_once_data = ("timezone",)
    base_url: HttpUrl = Field(default=HttpUrl(API), title="API root")


def _refusal(response: httpx.Response) -> str:
    """Aircall's ``{error, troubleshoot}`` as one line (the body may be empty or not JSON)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = (body.get("error"), body.get("troubleshoot"))
    return ": ".join(str(p) for p in parts if isinstance(p, str) and p)


def classify(response: httpx.Response) -> Resolution | None:
    """401 and 403 both mean a wrong API ID or token (Aircall uses either)."""
    status = response.status_code
    if status not in (401, 403):
        return None
    detail = _refusal(response) or "invalid credentials"
    message = f"Aircall refused the API ID and token ({status}: {detail}); create a new API key"
    return Resolution(Action.FAIL, Kind.AUTH, message)


def until_reset(response: httpx.Response) -> float | None:
    """Seconds until ``X-AircallApi-Reset`` (epoch seconds; milliseconds when that large)."""
    raw = response.headers.get("x-aircallapi-reset", "")
    try:
        reset = float(raw)
    except ValueError:
        return None
    if reset > 1e12:
        reset /= 1000
    return max(0.0, reset - time.time()) + 1.0


# Aircall's analytics split inbound calls by `missed_call_reason` and `voicemail`
# (support.aircall.io "Missed, Unanswered & Abandoned Call Classifications"): a caller who hung
# up early or in the IVR abandoned; a call ending in the closed-hours branch is out of business
# hours; otherwise a voicemail left is a voicemail; the rest (no available agent, agents did
# not answer) are the missed calls of Aircall's dashboard.
OUTCOMES = ("answered", "abandoned", "out_of_business_hours", "voicemail", "missed")
ABANDONED = frozenset({"short_abandoned", "abandoned_in_ivr", "abandoned_in_classic"})


def outcome(item: Mapping[str, Any], answered: bool) -> str:
    """An inbound call's category in Aircall's analytics."""
    reason = item.get("missed_call_reason")
    if answered:
        return "answered"
    if reason in ABANDONED:
        return "abandoned"
    if reason == "out_of_opening_hours":
        return "out_of_business_hours"
    return "voicemail" if item.get("voicemail") else "missed"


def normalize(item: Mapping[str, Any]) -> Call | None:
    """An ended call (``status`` is a lifecycle, not an outcome: ``initial``/``answered`` calls
    are still live and counted once ``done``)."""
    if item.get("status") != "done":
        return None
    started = item["started_at"]
    answered_at, ended_at = item.get("answered_at"), item.get("ended_at")
    direction = item.get("direction")
    answered = answered_at is not None
    talk = float(ended_at - answered_at) if answered and ended_at is not None else 0.0
    category = outcome(item, answered) if direction == "inbound" else None
    return Call(
        id=str(item["id"]),
        started_at=datetime.fromtimestamp(started, UTC),
        direction=direction if direction in ("inbound", "outbound") else None,
        answered=answered,
        missed=category == "missed",
        talk_seconds=max(0.0, talk),
        outcome=category,
    )


async def check_access(ctx: Context) -> list[CheckStep]:
    """The key is accepted (``/v1/ping``), and the call log is readable."""
    try:
        await ctx.get_json("/v1/ping")
    except CredentialsError as exc:
        return [CheckStep("api key", False, exc.message, reauth=True)]
    key = CheckStep("api key", True, "Aircall accepted the API ID and token")
    body = await ctx.get_json("/v1/calls", params={"per_page": 1})
    total = (body.get("meta") or {}).get("total", 0)
    details = {"calls": total}
    return [key, CheckStep("call log", True, f"{total} calls readable", details=details)]


def verify(request: WebhookRequest, config: Any) -> list[WebhookEvent]:
    """Aircall signs nothing: the payload carries the webhook's ``token``, compared in constant
    time. A call event asks for its day to be read again; other events are ignored."""
    try:
        payload = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError("the webhook body is not JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequestError("the webhook body is not a JSON object")
    secret: SecretStr | None = config.webhook_token
    if secret is None:
        raise WebhookSignatureError("this source has no webhookToken: set the Aircall webhook's")
    token = payload.get("token")
    expected = secret.get_secret_value().encode()
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), expected):
        raise WebhookSignatureError("the payload's token is not this source's webhook token")
    event, data = str(payload.get("event", "")), payload.get("data")
    if not event.startswith("call.") or not isinstance(data, dict):
        return []
    sent = payload.get("timestamp")
    at = datetime.fromtimestamp(sent, UTC) if isinstance(sent, int | float) else None
    started = data.get("started_at", sent)
    if not isinstance(started, int | float):
        return []
    day = datetime.fromtimestamp(started, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # No event id exists: a delivery is the event, the call and the second it was built.
    event_id = f"{event}:{data.get('id')}:{sent}"
    return [WebhookEvent(id=event_id, at=at, resync=Window(day, day + DAY))]


ANSWERED = "Calls with an `answered_at` (an agent picked up), inbound or outbound."
MISSED = (
    "Inbound calls missed as Aircall's dashboard counts them: not answered because no agent was "
    "available or the agents did not answer, and no voicemail left (abandoned, out of business "
    "hours and voicemail calls are their own outcomes: see inbound calls by outcome)."
)
BY_OUTCOME = (
    "Inbound calls by Aircall's analytics outcome: answered; abandoned (short abandoned, "
    "abandoned in the IVR or the queue); out_of_business_hours; voicemail (a voicemail left); "
    "missed."
)
EXTRA = (
    "Only ended calls (`status` done) count; an outbound call nobody picked up is neither "
    "answered nor missed. Talk time is `ended_at - answered_at`."
)
CALLS = Stream(
    "calls",
    "/v1/calls",
    records="calls",
    params={"order": "asc"},
    pages=NextUrl(path="meta.next_page_link", size_param="per_page", size=50),  # 50: the max
    incremental=Incremental(
        cursor="started_at",
        start_param="from",
        end_param="to",
        format="epoch",
        window=WEEK,  # a week per read: fewer requests against 120/min; the cap splits a busy one
        lookback=timedelta(days=2),  # calls end, get answered and voicemails after first seen
        initial=timedelta(days=90),
        zone="{config.timezone}",  # the days of the source's time zone
    ),
    reduce=calling.daily(normalize, OUTCOMES),
    # Aircall serves the first 10,000 calls of a query, silently; 9,000 leaves room for calls
    # made while a day is read.
    cap=ResultCap(total="meta.total", limit=9_000),
)

CONNECTOR = Connector(
    slug="aircall",
    title="Aircall",
    category="calling",
    family="calling",
    config=AircallConfig,
    auth_type="basic",
    description="Daily calls, answered and missed calls and talk time of an Aircall company.",
    docs_url="https://developer.aircall.io/api-references/",
    metrics=calling.metrics(answered=ANSWERED, missed=MISSED, extra=EXTRA, outcomes=BY_OUTCOME),
    base_url=API,
    auth=Basic(username="{config.api_id}", password="{config.api_token}"),
    checks=(check_access,),
    streams=(CALLS,),
    # 120 requests a minute per company (the API reference; support can raise it), every key
    # of it included; two spare so that arrival jitter at a window's edge costs no 429 (then
    # X-AircallApi-Reset says when to come back).
    rate_limit=RateLimit.of("118/minute"),
    classify=classify,
    reset_after=until_reset,
    webhook=Webhook(
        verify=verify,
        description="Aircall posts call events with the webhook's token in the JSON body.",
    ),
)

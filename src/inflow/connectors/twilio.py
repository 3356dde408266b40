"""Twilio: daily call metrics of one account from its call log (Voice, REST API 2010-04-01).

API docs: https://www.twilio.com/docs/voice/api/call-resource   Emulator: inflow.sandbox.twilio
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson
from pydantic import Field, HttpUrl, SecretStr, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from inflow.connectors import calling
from inflow.connectors.calling import Call
from inflow.connectors.spec import (
    Action,
    AuthSpec,
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
    Stream,
    Webhook,
    WebhookEvent,
    WebhookRequest,
    Window,
)
from inflow.errors import (
    AccessDeniedError,
    CredentialsError,
    InflowError,
    WebhookSignatureError,
)

if TYPE_CHECKING:
    import httpx

API = "https://api.twilio.com"
ACCOUNT = "/2010-04-01/Accounts/{config.account_sid}"
DAY = timedelta(days=1)


class TwilioConfig(ConnectorConfig):
    platform: Literal["twilio"] = "twilio"
    account_sid: str = Field(
        title="Account SID", pattern=r"^AC[0-9a-fA-F]{32}$", examples=["AC" + "0" * 32]
    )
    auth_token: SecretStr | None = Field(
        None,
        title="Auth Token",
        min_length=1,
        description="The account's Auth Token (it also verifies status callbacks).",
    )
    api_key_sid: str | None = Field(
        None, title="API Key SID (instead of the Auth Token)", pattern=r"^SK[0-9a-fA-F]{32}$"
    )
    api_key_secret: SecretStr | None = Field(None, title="API Key secret", min_length=1)
    timezone: calling.TimeZone = "UTC"
    fixed_once_data = ("timezone",)
    base_url: HttpUrl = Field(
        default=HttpUrl(API),
        title="API root",
        description="https://api.twilio.com, or a regional edge (https://api.dublin.ie1.twilio.com).",
    )

    @model_validator(mode="after")
    def one_pair(self) -> Self:
        """The Auth Token, or an API key SID with its secret: exactly one of the two."""
        key = self.api_key_sid is not None or self.api_key_secret is not None
        problem: tuple[str, str] | None = None
        if self.auth_token is not None and key:
            problem = ("authToken", "give the Auth Token or an API key (SID and secret), not both")
        elif self.auth_token is None and not key:
            problem = ("authToken", "give the Auth Token, or an API key SID and its secret")
        elif self.auth_token is None and self.api_key_secret is None:
            problem = ("apiKeySecret", "the secret of this API key is required")
        elif self.auth_token is None and self.api_key_sid is None:
            problem = ("apiKeySid", "the SID (SK…) of this API key secret is required")
        if problem is None:
            return self
        error = PydanticCustomError("twilio_credentials", problem[1])
        raise ValidationError.from_exception_data(
            type(self).__name__, [InitErrorDetails(type=error, loc=(problem[0],), input=None)]
        )


def sign_in(config: TwilioConfig) -> AuthSpec:
    """Basic auth as the account (SID + Auth Token) or as an API key (SK… + secret); the URL
    names the account either way."""
    if config.auth_token is not None:
        return Basic("{config.account_sid}", "{config.auth_token}")
    return Basic("{config.api_key_sid}", "{config.api_key_secret}")


# ---------------------------------------------------------------- errors

FIXES = {
    20003: "Twilio refused the credentials (20003): check the Account SID and the Auth Token "
    "or API key; a Standard API key cannot read /Accounts",
    20404: "Twilio has no such resource (20404): check the Account SID and the region's baseUrl",
    20429: "too many concurrent requests to Twilio (20429); the request was not processed",
}


def classify(response: httpx.Response) -> Resolution | None:
    """Twilio's `{code, message, more_info, status}` errors, by code first."""
    if response.status_code < 400:
        return None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    if code == 20003 or response.status_code == 401:
        return Resolution(Action.REFRESH_AUTH, Kind.AUTH, FIXES[20003])
    if code == 20429 or response.status_code == 429:  # never executed: safe to retry
        return Resolution(Action.RATE_LIMITED, Kind.RATE_LIMITED, FIXES[20429])
    if code == 20404:
        return Resolution(Action.FAIL, Kind.NOT_FOUND, f"{FIXES[20404]}: {message}")
    if isinstance(code, int) and response.status_code < 500:
        return Resolution(Action.FAIL, Kind.REJECTED, f"Twilio error {code}: {message}")
    return None


# ---------------------------------------------------------------- calls

# Parent legs only: an inbound call's <Dial>ed agent legs and an outbound call's transfers
# (parent_call_sid set) belong to a call already counted.
TERMINAL = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
NOT_ANSWERED = frozenset({"busy", "no-answer", "canceled", "failed"})
INBOUND = frozenset({"inbound", "trunking-originating"})
OUTBOUND = frozenset({"outbound-api", "outbound-dial", "trunking-terminating"})
_MONTHS = {
    m: n
    for n, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def rfc2822(text: str) -> datetime:
    """`Fri, 18 Oct 2019 17:02:00 +0000` (Twilio's UTC form fast, any other the slow way)."""
    parts = text.split()
    if len(parts) == 6 and parts[5] == "+0000" and parts[2] in _MONTHS:
        h, m, s = parts[4].split(":")
        return datetime(
            int(parts[3]), _MONTHS[parts[2]], int(parts[1]), int(h), int(m), int(s), tzinfo=UTC
        )
    return parsedate_to_datetime(text)


def normalize(item: Mapping[str, Any]) -> Call | None:
    """A parent call that has ended: answered when `completed`; missed when an inbound call
    ended `busy`, `no-answer`, `canceled` or `failed`. Calls still queued, ringing or in
    progress wait for a later sync (the lookback re-reads their day)."""
    status = item.get("status")
    if item.get("parent_call_sid") or status not in TERMINAL:
        return None
    started = item.get("start_time") or item.get("date_created")
    if not started:
        return None
    direction = item.get("direction")
    side: calling.Direction | None = (
        "inbound" if direction in INBOUND else "outbound" if direction in OUTBOUND else None
    )
    answered = status == "completed"
    duration = item.get("duration")
    return Call(
        id=str(item["sid"]),
        started_at=rfc2822(str(started)),
        direction=side,
        answered=answered,
        missed=side == "inbound" and status in NOT_ANSWERED,
        talk_seconds=float(duration) if answered and duration else 0.0,
    )


async def check(ctx: Context) -> list[CheckStep]:
    """The Account fetch; a Standard API key (no /Accounts) is proven on the call log."""
    name = "account"
    try:
        account = await ctx.get_json(ACCOUNT + ".json")
    except (CredentialsError, AccessDeniedError) as exc:
        if not ctx.config.api_key_sid:
            return [CheckStep(name, False, exc.message, reauth=isinstance(exc, CredentialsError))]
        name = "call log"
        try:
            await ctx.get_json(ACCOUNT + "/Calls.json", params={"PageSize": 1})
        except InflowError as again:
            reauth = isinstance(again, CredentialsError)
            return [CheckStep(name, False, again.message, reauth=reauth)]
        message = "the API key reads calls (a Standard key: the account itself is out of reach)"
        return [CheckStep(name, True, message)]
    except InflowError as exc:
        return [CheckStep(name, False, exc.message)]
    status, label = account.get("status"), account.get("friendly_name") or account.get("sid")
    details = {"sid": account.get("sid"), "type": account.get("type"), "status": status}
    if status != "active":
        return [CheckStep(name, False, f"the account {label!r} is {status}", details=details)]
    return [
        CheckStep(name, True, f"signed in to {label!r} ({account.get('type')})", details=details)
    ]


# ---------------------------------------------------------------- webhooks


def signature(key: str, url: str, params: Mapping[str, str]) -> str:
    """`X-Twilio-Signature`: base64 HMAC-SHA1 of the URL and the sorted POST params."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _port_variants(url: str) -> list[str]:
    # Twilio signs with or without the default port, inconsistently: its SDKs accept both.
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    ported = urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, parts.fragment))
    return [bare, ported]


def valid_signature(key: str, url: str, params: Mapping[str, str], body: bytes, sent: str) -> bool:
    """Twilio's check: form params signed after the URL, or (a JSON body) the URL alone with
    the body's SHA-256 in its `bodySHA256` query parameter."""
    if not sent:
        return False
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if "bodySHA256" in query:
        digest = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(digest, query["bodySHA256"]):
            return False
        params = {}
    return any(hmac.compare_digest(signature(key, u, params), sent) for u in _port_variants(url))


def verify(request: WebhookRequest, config: TwilioConfig) -> list[WebhookEvent]:
    """A status callback signed with the account's Auth Token: its call's day is read again."""
    if config.auth_token is None:
        raise WebhookSignatureError(
            "Twilio signs callbacks with the account's Auth Token; this source signs in with an "
            "API key, which cannot verify them: use the Auth Token to receive webhooks"
        )
    sent = request.headers.get("x-twilio-signature", "")
    if not valid_signature(
        config.auth_token.get_secret_value(), request.url, request.form, request.body, sent
    ):
        raise WebhookSignatureError("the X-Twilio-Signature header does not match the request")
    form = request.form
    call = form.get("CallSid", "")
    if form.get("AccountSid") not in (None, config.account_sid) or not call:
        raise WebhookSignatureError("the callback is not about a call of this account")
    at = rfc2822(form["Timestamp"]) if form.get("Timestamp") else None
    # Retries of one callback repeat its idempotency token (and its SequenceNumber).
    event_id = request.headers.get("i-twilio-idempotency-token") or (
        f"{call}:{form.get('SequenceNumber') or form.get('CallStatus', '')}"
    )
    # The callback carries no start time: the call began its duration (plus ringing, at most
    # an hour here) before the event, so the days from then to the event are read again.
    moment = at or datetime.now(UTC)
    began = moment - timedelta(seconds=int(form.get("CallDuration") or 0)) - timedelta(hours=1)
    start = began.replace(hour=0, minute=0, second=0, microsecond=0)
    end = moment.replace(hour=0, minute=0, second=0, microsecond=0) + DAY
    return [WebhookEvent(id=event_id, at=at, resync=Window(start, end))]


# ---------------------------------------------------------------- the connector

# No "updated since" filter: calls are read by start day, whole days, and the last two days are
# re-read every sync (a call's status, duration and price change after it is first listed).
# `StartTime<` D is "at or before D 00:00" (so not `StartTime<=D` for one day, which is empty).
CALLS = Stream(
    "calls",
    ACCOUNT + "/Calls.json",
    records="calls",
    pages=NextUrl("next_page_uri", size_param="PageSize", size=1000),  # relative to the host
    incremental=Incremental(
        cursor="start_time",
        start_param="StartTime>",
        end_param="StartTime<",
        format="date",
        window=DAY,
        lookback=timedelta(days=2),
        initial=timedelta(days=90),
        zone="{config.timezone}",  # the days of the source's time zone
    ),
    reduce=calling.daily(normalize),
)
METRICS = calling.metrics(
    answered="Calls Twilio marks `completed` (an inbound call is answered by your TwiML, so "
    "an IVR or voicemail counts).",
    missed="Inbound calls that ended `busy`, `no-answer`, `canceled` or `failed` (an "
    "unanswered outbound call is not a missed call).",
    extra="Parent calls only: the legs a call <Dial>s (parent_call_sid set) are not counted "
    "again; calls still ringing or in progress count once they end.",
)

CONNECTOR = Connector(
    slug="twilio",
    title="Twilio",
    category="calling",
    family="calling",
    config=TwilioConfig,
    auth_type="basic",
    description="Daily calls, answered and missed calls and talk time from a Twilio account.",
    docs_url="https://www.twilio.com/docs/voice/api/call-resource",
    metrics=METRICS,
    base_url=API,
    auth=sign_in,
    checks=(check,),
    streams=(CALLS,),
    # Twilio limits requests in flight per account (about 100, unverified), not requests per
    # minute: two days are read at once, so the next day's pages are built while one is reduced.
    rate_limit=RateLimit(concurrent=2),
    classify=classify,
    webhook=Webhook(
        verify=verify,
        description="Set this URL as the StatusCallback of your numbers or calls; Twilio signs "
        "each callback with the Auth Token (X-Twilio-Signature), so an API-key source cannot "
        "receive them.",
    ),
)

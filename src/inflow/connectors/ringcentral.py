"""RingCentral: daily call metrics from the company call log (REST API v1.0, OAuth 2).

API docs: https://developers.ringcentral.com/api-reference/Call-Log/readCompanyCallLog
Emulator: inflow.sandbox.ringcentral
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field, HttpUrl, SecretStr

from inflow.connectors import calling
from inflow.connectors.calling import Call
from inflow.connectors.spec import (
    Action,
    AuthSpec,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    Incremental,
    Kind,
    NextUrl,
    OAuth2AuthorizationCode,
    OAuth2JwtBearer,
    RateLimit,
    Resolution,
    Stream,
    Webhook,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
    Window,
)
from inflow.errors import (
    AccessDeniedError,
    BadRequestError,
    CredentialsError,
    InflowError,
    WebhookSignatureError,
)

if TYPE_CHECKING:
    import httpx

API = "https://platform.ringcentral.com"
ACCOUNT = "/restapi/v1.0/account/~"
CALL_LOG = ACCOUNT + "/call-log"
DAY = timedelta(days=1)
WEEK = timedelta(days=7)  # reduce windows start at midnight: each day is read whole
ADMIN = (
    "the company call log needs the user permission FullCompanyCallLog: have an administrator "
    "generate the JWT (or authorise the app), then reconnect"
)


class RingCentralConfig(ConnectorConfig):
    platform: Literal["ringcentral"] = "ringcentral"
    client_id: str = Field(title="Client ID", min_length=1, description="The app's Client ID.")
    client_secret: SecretStr = Field(title="Client secret", min_length=1)
    jwt: SecretStr | None = Field(
        None,
        title="JWT credential (server-to-server)",
        description="A JWT an administrator generated in the Developer Console; without it "
        "the source connects through the OAuth consent flow.",
    )
    webhook_verification_token: SecretStr | None = Field(
        None,
        title="Webhook verification token",
        description="The `verificationToken` of the subscription that posts to this source's "
        "webhook URL; RingCentral sends it as `Verification-Token` with every event.",
    )
    timezone: calling.TimeZone = "UTC"
    fixed_once_data = ("timezone",)
    base_url: HttpUrl = Field(default=HttpUrl(API), title="API root")
    auth_url: HttpUrl | None = Field(
        None, title="OAuth server", description="Where /restapi/oauth lives; the API root if empty."
    )


def sign_in(config: RingCentralConfig) -> AuthSpec:
    """The JWT-bearer grant when a JWT is given (no UI), else the user's OAuth consent."""
    if config.jwt is not None:
        return OAuth2JwtBearer(token_url="{auth_url}/restapi/oauth/token", auth_method="basic")
    return OAuth2AuthorizationCode(
        authorize_url="{auth_url}/restapi/oauth/authorize",
        token_url="{auth_url}/restapi/oauth/token",
        auth_method="basic",
        revoke_url="{auth_url}/restapi/oauth/revoke",
    )


# ---------------------------------------------------------------- errors


def _error(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    """(errorCode, message, first entry) of a RingCentral error body: codes live in
    `errors[]` (CMN-301, OAU-128 …), often repeated at the top level."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return "", "", {}
    if not isinstance(body, dict):
        return "", "", {}
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("errorCode") or body.get("errorCode") or "")
    message = str(first.get("message") or body.get("message") or "")
    return code, message, first


def classify(response: httpx.Response) -> Resolution | None:
    """RingCentral's refusals by `errorCode`, with what to do about them."""
    status = response.status_code
    if status < 400 or status >= 500:
        return None
    code, message, first = _error(response)
    said = f"{message} ({code})" if code else message or f"HTTP {status}"
    if status == 429:  # CMN-301..310: wait out Retry-After (each early retry resets the penalty)
        return Resolution(Action.RATE_LIMITED, Kind.RATE_LIMITED, f"rate limited: {said}")
    if status == 401:  # OAU-128 expired, OAU-129/149 bad token, CMN-405 login required
        return Resolution(Action.REFRESH_AUTH, Kind.AUTH, f"RingCentral refused the token: {said}")
    if status == 403:
        permission = first.get("permissionName")
        if code == "CMN-408" or permission == "FullCompanyCallLog":
            return Resolution(Action.FAIL, Kind.PERMISSION, f"{said}: {ADMIN}")
        hint = f"; add the app permission {permission}" if permission else ""
        return Resolution(Action.FAIL, Kind.PERMISSION, f"permission denied: {said}{hint}")
    if status == 404:
        return Resolution(Action.FAIL, Kind.NOT_FOUND, f"not found: {said}")
    return Resolution(Action.FAIL, Kind.REJECTED, f"request rejected: {said}")


def penalty(response: httpx.Response) -> float | None:
    """A 429 without `Retry-After`: the group's `X-Rate-Limit-Window` (seconds), else 60 s
    (the documented penalty)."""
    window = response.headers.get("x-rate-limit-window", "")
    return float(window) if window.isdigit() else 60.0


def spent(response: httpx.Response) -> float | None:
    """`X-Rate-Limit-Remaining: 0`: the group's window is used up (other apps of the same user
    share it), so the next request waits `X-Rate-Limit-Window` seconds instead of earning a
    429 and a penalty. A 429 itself is waited out by its `Retry-After`."""
    headers = response.headers
    if response.status_code == 429 or headers.get("x-rate-limit-remaining") != "0":
        return None
    window = headers.get("x-rate-limit-window", "")
    return float(window) if window.isdigit() else 60.0


# ---------------------------------------------------------------- calls

# `result` is an open enum in mixed case (`Call connected`, `Call Failed`): compared casefolded.
ANSWERED = frozenset({"accepted", "call connected"})
MISSED = frozenset(
    {
        "missed",
        "voicemail",
        "sent to voicemail",
        "no answer",
        "busy",
        "rejected",
        "declined",
        "abandoned",
        "hang up",
        "blocked",
        "callback requested",
        "answered not accepted",
    }
)


def timestamp(text: str) -> datetime:
    """`2025-01-06T09:58:12.594Z` (any ISO 8601 with a zone)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalize(item: Mapping[str, Any]) -> Call | None:
    """A finished voice call: answered when its `result` is `Accepted` (inbound) or `Call
    connected` (outbound); missed when an inbound call ended unanswered. Faxes, deleted records
    and calls still `In Progress` are no call (yet)."""
    result = str(item.get("result") or "").casefold()
    if item.get("type") != "Voice" or item.get("deleted") or item.get("finished") is False:
        return None
    if result in ("", "in progress"):
        return None
    direction = str(item.get("direction") or "").lower()
    side: calling.Direction | None = (
        "inbound" if direction == "inbound" else "outbound" if direction == "outbound" else None
    )
    answered = result in ANSWERED
    duration = item.get("duration")
    return Call(
        id=str(item["id"]),
        started_at=timestamp(str(item["startTime"])),
        direction=side,
        answered=answered,
        missed=side == "inbound" and result in MISSED,
        talk_seconds=float(duration) if answered and isinstance(duration, int | float) else 0.0,
    )


ACCOUNT_STATUSES = {  # RingCentral's account statuses other than Confirmed, in plain words
    "Initial": "its setup has not started (the Setup Wizard was never run)",
    "Unconfirmed": "its setup is not finished (an administrator has not confirmed it)",
    "Disabled": "it is disabled",
}


def status_reason(account: Mapping[str, Any]) -> str:
    """Why an account is not Confirmed: RingCentral's `statusInfo` when it gives one."""
    status = str(account.get("status"))
    reason = ACCOUNT_STATUSES.get(status, f"RingCentral reports it as {status}")
    info = account.get("statusInfo")
    if isinstance(info, Mapping):
        said = "; ".join(str(info[k]) for k in ("reason", "comment") if info.get(k))
        if said:
            reason += f" ({said})"
    return reason


async def check(ctx: Context) -> list[CheckStep]:
    """The account (Light group), then one call-log row: a JWT or consent of a user without
    FullCompanyCallLog is refused there (403), not during the first sync."""
    try:
        account = await ctx.get_json(ACCOUNT)
    except CredentialsError as exc:
        return [CheckStep("account", False, exc.message, reauth=True)]
    except InflowError as exc:
        return [CheckStep("account", False, exc.message)]
    details = {"id": account.get("id"), "status": account.get("status")}
    label = f"account {account.get('id')} ({account.get('mainNumber') or 'no main number'})"
    status = account.get("status")
    if status in (None, "Confirmed"):
        steps = [CheckStep("account", True, f"signed in to {label}", details=details)]
    else:  # the call log decides: a warning while it is readable, a failure when refused
        message = f"signed in to {label}, but the account is {status}: {status_reason(account)}"
        steps = [CheckStep("account", True, message, details=details, warning=True)]
    params = {"view": "Simple", "type": "Voice", "perPage": 1}
    try:
        await ctx.get_json(CALL_LOG, params=params)
    except AccessDeniedError as exc:
        return [*steps, CheckStep("company call log", False, exc.message)]
    except InflowError as exc:
        reauth = isinstance(exc, CredentialsError)
        return [*steps, CheckStep("company call log", False, exc.message, reauth=reauth)]
    return [*steps, CheckStep("company call log", True, "the company call log is readable")]


# ---------------------------------------------------------------- webhooks

LONGEST_CALL = timedelta(hours=4)  # a call ends at most this long after it starts (here)


def verify(request: WebhookRequest, config: RingCentralConfig) -> list[WebhookEvent] | WebhookReply:
    """A subscription's validation handshake is answered with its `Validation-Token`; every
    event must carry the subscription's `Verification-Token` (no HMAC: a shared secret).
    A telephony-session event has the days of its call read again."""
    handshake = request.headers.get("validation-token")
    if handshake is not None:
        return WebhookReply(
            200, {"Validation-Token": handshake, "Content-Type": "application/json"}
        )
    secret = config.webhook_verification_token
    if secret is None:
        raise WebhookSignatureError(
            "this source has no webhookVerificationToken: set the subscription's verificationToken"
        )
    sent = request.headers.get("verification-token", "").encode()
    if not hmac.compare_digest(sent, secret.get_secret_value().encode()):
        raise WebhookSignatureError("the Verification-Token header is not this source's token")
    try:
        payload = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError("the notification body is not JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("uuid"), str):
        raise BadRequestError("the notification has no uuid")
    at = _moment(payload.get("timestamp"))
    event = WebhookEvent(id=payload["uuid"], at=at)
    body = payload.get("body")
    if "/telephony/sessions" not in str(payload.get("event", "")) or not isinstance(body, dict):
        return [event]  # another subscription's event: recorded, nothing to read again
    # The event has no start time: the call began before the event, by less than LONGEST_CALL.
    moment = _moment(body.get("eventTime")) or at or datetime.now(UTC)
    start = (moment - LONGEST_CALL).replace(hour=0, minute=0, second=0, microsecond=0)
    end = moment.replace(hour=0, minute=0, second=0, microsecond=0) + DAY
    return [WebhookEvent(id=event.id, at=at, resync=Window(start, end))]


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return timestamp(value)
    except ValueError:
        return None


# ---------------------------------------------------------------- the connector

# Calls are read by start day, whole days, newest first; the last two days are re-read every
# sync (results, durations and deletions settle after a call is first listed). Without an
# explicit dateFrom the API serves only the last 24 hours.
CALLS = Stream(
    "calls",
    CALL_LOG,
    records="records",
    params={"view": "Simple", "type": "Voice"},
    pages=NextUrl("navigation.nextPage.uri", size_param="perPage", size=1000),  # 1000: the max
    incremental=Incremental(
        cursor="startTime",
        start_param="dateFrom",
        end_param="dateTo",
        window=WEEK,  # a week per read (as tap-ringcentral): Heavy allows 10 a minute
        lookback=timedelta(days=2),
        initial=timedelta(days=90),
        zone="{config.timezone}",  # the days of the source's time zone
    ),
    reduce=calling.daily(normalize),
)
METRICS = calling.metrics(
    answered="Calls whose `result` is `Accepted` (inbound, picked up) or `Call connected` "
    "(outbound, connected).",
    missed="Inbound calls that ended `Missed`, `Voicemail`, `Sent to Voicemail`, `No Answer`, "
    "`Busy`, `Rejected`, `Declined`, `Abandoned`, `Hang Up`, `Blocked`, `Callback requested` or "
    "`Answered Not Accepted` (an unanswered outbound call is not a missed call).",
    extra="Voice records of the company call log (faxes and deleted records excluded; calls "
    "`In Progress` count once finished). Talk time is the `duration` of answered calls.",
)

CONNECTOR = Connector(
    slug="ringcentral",
    title="RingCentral",
    category="calling",
    family="calling",
    config=RingCentralConfig,
    auth_type="oauth2_jwt",
    description="Daily calls, answered and missed calls and talk time of a RingCentral company.",
    docs_url="https://developers.ringcentral.com/api-reference/Call-Log/readCompanyCallLog",
    metrics=METRICS,
    base_url=API,
    auth=sign_in,
    checks=(check,),
    streams=(CALLS,),
    # Call-log endpoints are the Heavy group: 10 requests per user a minute, 60 s penalty (the
    # account check is Light). One spare, so that arrival jitter at a window's edge costs no 429.
    rate_limit=RateLimit.of("9/minute"),
    classify=classify,
    reset_after=penalty,
    pace=spent,
    webhook=Webhook(
        verify=verify,
        description="Create a WebHook subscription to /restapi/v1.0/account/~/telephony/sessions "
        "with this URL as its address and a verificationToken equal to webhookVerificationToken; "
        "RingCentral validates the URL first (Validation-Token, echoed back).",
    ),
)

"""Emulator of the Looker Studio API and Google's OAuth server, prefix `/looker_studio`.

One prefix plays two Google hosts: `datastudio.googleapis.com` (`GET /v1/assets:search`, its
real query parameters, `pageSize` default and cap 1000, opaque `nextPageToken` bound to the
query, `{}` for no results, default-valued fields left out) and `accounts.google.com`'s OAuth
endpoints (`/o/oauth2/v2/auth` consenting at once, `/o/oauth2/token`, `/o/oauth2/revoke`). As at
Google, a refresh token comes only with `access_type=offline` (a second time only with
`prompt=consent`), refreshing does not rotate it (volume `rotateRefreshTokens=1` makes it
rotate), and token errors read like Google's (`invalid_grant`: "Token has been expired or
revoked."). API errors use Google's envelope `{"error": {"code", "message", "status",
"details"}}`: 401 `UNAUTHENTICATED` for a missing, revoked or expired token (`tokenTtlS`), 403
`PERMISSION_DENIED` without a datastudio scope, 400 `INVALID_ARGUMENT`, 429
`RESOURCE_EXHAUSTED` with `Retry-After`.

Volume keys: `reports`, `dataSources`, `revision` (every 10th report retitled and updated
`revision` days later), `deletions` (that many reports gone: alternately trashed, so listed only
with `includeTrashed=true`, and deleted for good), `rotateRefreshTokens`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from inflow.sandbox.data import decode_position, encode_position, pick, stable_hash
from inflow.sandbox.emulator import Emulator, JSONObject, JSONValue, Reject, json_response
from inflow.sandbox.oauth import (
    AUTHORIZATION_CODE,
    REFRESH_TOKEN,
    OAuthServer,
    OfflineAccess,
    RejectReason,
    TokenInfo,
)
from inflow.sandbox.state import EmulatorState, get_state

SLUG = "looker_studio"
CLIENT_ID = "1234567890-inflowsandbox.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-inflow-sandbox-test-secret"  # noqa: S105 (the sandbox's fake test client)
AUTH = "https://www.googleapis.com/auth/"
DATASTUDIO = (AUTH + "datastudio", AUTH + "datastudio.readonly")
IDENTITY = ("openid", "email", "profile", AUTH + "userinfo.email", AUTH + "userinfo.profile")
SCOPES = (*DATASTUDIO, *IDENTITY)
ME = "ana@example.com"  # the account that consents
PEOPLE = (ME, "ben@example.com", "chloe@example.com", "dev@example.com")
ADJECTIVES = ("Weekly", "Monthly", "Quarterly", "Daily", "Regional", "Global", "Team", "Board")
TOPICS = ("KPIs", "funnel", "revenue", "campaigns", "retention", "traffic", "SEO", "ads spend")
SOURCES = ("BigQuery", "Google Sheets", "Google Analytics", "Search Console", "Google Ads")
PAGE_SIZE = 1000  # the documented default; also the cap here (Google publishes none; AIP-158)
DAY_MS = 86_400_000
EPOCH_MS = 1_672_531_200_000  # 2023-01-01
ORDERS = ("title", "create_time", "id", "last_viewed_by_me", "last_accessed_time")
PARAMS = {  # assets.search's own parameters (JSON names; proto names are accepted too)
    "assetTypes": "asset_types",
    "title": "title",
    "owner": "owner",
    "includeTrashed": "include_trashed",
    "orderBy": "order_by",
    "pageSize": "page_size",
    "pageToken": "page_token",
}
STANDARD = frozenset(
    ("fields", "quotaUser", "prettyPrint", "alt", "key", "access_token", "oauth_token",
     "callback", "$.xgafv", "upload_protocol", "uploadType")
)  # fmt: skip
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
MISSING = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
QUOTA = (
    "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per "
    "user' of service 'datastudio.googleapis.com' for consumer 'project_number:1234567890'."
)
INVALID = "Request contains an invalid argument."
INT32 = re.compile(r"-?\d+")
AssetBuilder = Callable[[int], JSONObject]


# ---------------------------------------------------------------- Google's error bodies


def error_info(reason: str) -> JSONObject:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "datastudio.googleapis.com"},
    }


def google_error(
    code: int,
    status: str,
    message: str,
    *details: JSONObject,
    headers: Mapping[str, str] | None = None,
) -> Reject:
    """Google's API error: `{"error": {"code", "message", "status", "details"?}}`."""
    body: dict[str, JSONValue] = {"code": code, "message": message, "status": status}
    if details:
        body["details"] = list(details)
    return Reject(json_response({"error": body}, code, headers))


def bad_request(message: str = INVALID) -> Reject:
    violation: JSONObject = {"description": message}
    detail: JSONObject = {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [violation],
    }
    return google_error(400, "INVALID_ARGUMENT", message, detail)


def not_found(path: str) -> tuple[int, JSONObject]:
    """googleapis.com's answer to a method it does not have."""
    message = f"Method not found: {path}"
    return 404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}


def error_body(status: int, message: str) -> JSONObject:
    """Injected 429/500/503 faults, as googleapis.com words them."""
    if status == 429:
        return {
            "error": {
                "code": 429,
                "message": QUOTA,
                "status": "RESOURCE_EXHAUSTED",
                "details": [error_info("RATE_LIMIT_EXCEEDED")],
            }
        }
    status_name, text = {
        500: ("INTERNAL", "Internal error encountered."),
        503: ("UNAVAILABLE", "The service is currently unavailable."),
    }.get(status, ("UNKNOWN", message))
    return {"error": {"code": status, "message": text, "status": status_name}}


def token_error(error: str, description: str) -> JSONObject:
    """The token endpoint's errors, with Google's descriptions."""
    if error == "invalid_grant" and "refresh token" in description:
        description = "Token has been expired or revoked."
    elif error == "invalid_grant":  # a code: unknown, reused, expired, or another verifier
        description = "Malformed auth code." if "unknown" in description else "Bad Request"
    elif error == "invalid_client":
        found = "authentication failed" in description
        description = "Unauthorized" if found else "The OAuth client was not found."
    return {"error": error, "error_description": description}


def refuse(reason: RejectReason) -> Response:
    """401 for a missing, unknown, revoked or expired access token."""
    realm = 'Bearer realm="https://accounts.google.com/"'
    if reason == "missing":
        return google_error(
            401, "UNAUTHENTICATED", MISSING, error_info("CREDENTIALS_MISSING"),
            headers={"WWW-Authenticate": realm},
        ).response  # fmt: skip
    details = (error_info("ACCESS_TOKEN_EXPIRED"),) if reason == "expired" else ()
    headers = {"WWW-Authenticate": realm + ', error="invalid_token"'}
    return google_error(401, "UNAUTHENTICATED", UNAUTHENTICATED, *details, headers=headers).response


OAUTH = OAuthServer(
    slug=SLUG,
    clients={CLIENT_ID: CLIENT_SECRET},
    scopes=SCOPES,
    token_ttl_s=3599,
    require_pkce=False,  # Google takes PKCE from web clients but does not demand it
    grant_types=frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN}),
    offline_access=OfflineAccess(("access_type", "offline"), ("prompt", "consent")),
    rotate_refresh_tokens=lambda state: state.volume_of("rotateRefreshTokens") == 1,
    repeat_refresh_token=False,
    error_body=token_error,
)


def datastudio_token(info: TokenInfo = Depends(OAUTH.dependency(refuse))) -> TokenInfo:
    """A live access token that carries a datastudio scope (else 403, as Google answers)."""
    if not set(info.scopes) & set(DATASTUDIO):
        challenge = f'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="{DATASTUDIO[1]}"'
        raise google_error(
            403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.",
            error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT"), headers={"WWW-Authenticate": challenge},
        )  # fmt: skip
    return info


# ---------------------------------------------------------------- seeded assets


def stamp(epoch_ms: int) -> str:
    """Google's timestamp: RFC 3339 UTC with milliseconds."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{epoch_ms % 1000:03d}Z"


def asset_id(seed: int, kind: str, n: int) -> str:
    """A report's id (a UUID, as in its URL)."""
    bits = (stable_hash(seed, kind, n) << 64) | stable_hash(seed, kind, n, "low")
    return str(uuid.UUID(int=bits, version=4))


def make_report(seed: int, revision: int, n: int, *, trashed: bool = False) -> JSONObject:
    h = stable_hash(seed, "report", n)
    bump = revision if n % 10 == 0 else 0
    owner = ME if h % 4 else pick(h >> 2, PEOPLE[1:])
    created = EPOCH_MS + (h >> 8) % (500 * DAY_MS)
    updated = created + (h >> 20) % (90 * DAY_MS) + bump * DAY_MS
    title = f"{pick(h >> 32, ADJECTIVES)} {pick(h >> 36, TOPICS)} {n}"
    asset: dict[str, JSONValue] = {
        "name": asset_id(seed, "report", n),
        "title": title + (f" (rev {bump})" if bump else ""),
        "assetType": "REPORT",
        "owner": owner,
        "creator": owner if (h >> 40) % 5 else pick(h >> 44, PEOPLE),
        "createTime": stamp(created),
        "updateTime": stamp(updated),
    }
    if (h >> 48) % 3:  # an empty description is left out, like every default value
        asset["description"] = (
            f"{title.split(' ', 1)[1]} overview for the {pick(h >> 50, TOPICS)} team"
        )
    if owner == ME:
        asset["updateByMeTime"] = stamp(max(created, updated - (h >> 52) % (3 * DAY_MS)))
    if (h >> 56) % 4:
        asset["lastViewByMeTime"] = stamp(updated + (h >> 58) * 3_600_000)
    if trashed:
        asset["trashed"] = True
    return asset


def make_data_source(seed: int, n: int) -> JSONObject:
    h = stable_hash(seed, "data_source", n)
    created = EPOCH_MS + (h >> 8) % (500 * DAY_MS)
    return {
        "name": asset_id(seed, "data_source", n),
        "title": f"{pick(h >> 32, SOURCES)}: {pick(h >> 36, TOPICS)} {n}",
        "assetType": "DATA_SOURCE",
        "owner": ME if h % 3 else pick(h >> 2, PEOPLE[1:]),
        "createTime": stamp(created),
        "updateTime": stamp(created + (h >> 20) % (90 * DAY_MS)),
    }


@lru_cache(maxsize=64)
def gone(reports: int, deletions: int) -> tuple[frozenset[int], frozenset[int]]:
    """(trashed, deleted) report numbers: `deletions` of them, spread over the listing."""
    d = min(deletions, reports)
    picks = [1 + j * reports // d + reports // d // 2 for j in range(d)] if d else []
    return frozenset(picks[0::2]), frozenset(picks[1::2])


def builder(seed: int, revision: int, asset_type: str, *, trashed: bool) -> AssetBuilder:
    """Asset number → asset, for one asset type."""
    if asset_type == "REPORT":
        return lambda n: make_report(seed, revision, n, trashed=trashed)
    return lambda n: make_data_source(seed, n)


def matches(asset: JSONObject, title: str, owner: str) -> bool:
    """The `title` search (words, plus `owner:`/`creator:` terms) and the `owner` filter."""
    if owner and asset.get("owner") != owner:
        return False
    text = f"{asset['title']} {asset.get('description', '')}".lower()
    for term in title.split():
        key, sep, value = term.partition(":")
        if sep and key in ("owner", "creator"):
            if asset.get(key) != (ME if value == "me" else value):
                return False
        elif term.lower() not in text:
            return False
    return True


def sort_key(asset: JSONObject, order: str) -> str:
    field = {"title": "title", "create_time": "createTime", "id": "name"}.get(order)
    return str(asset.get(field or "lastViewByMeTime") or "")


@dataclass(frozen=True)
class Search:
    """One assets.search query, without its page."""

    asset_type: str
    trashed: bool = False
    title: str = ""
    owner: str = ""
    order: str = ""


@lru_cache(maxsize=16)
def listing(seed: int, volume: tuple[int, int, int, int], search: Search) -> tuple[int, ...]:
    """The numbers of the assets a search finds, in order (reports by number by default)."""
    reports, data_sources, revision, deletions = volume
    if search.asset_type == "REPORT":
        in_trash, deleted = gone(reports, deletions)
        numbers = [
            n
            for n in range(1, reports + 1)
            if (n in in_trash) == search.trashed and n not in deleted
        ]
    else:
        numbers = [] if search.trashed else list(range(1, data_sources + 1))
    if not (search.title or search.owner or search.order):
        return tuple(numbers)
    build = builder(seed, revision, search.asset_type, trashed=search.trashed)
    found = [n for n in numbers if matches(build(n), search.title, search.owner)]
    if search.order:
        found.sort(key=lambda n: sort_key(build(n), search.order))
    return tuple(found)


def volume_of(state: EmulatorState) -> tuple[int, int, int, int]:
    keys = ("reports", "dataSources", "revision", "deletions")
    return tuple(state.volume_of(k) for k in keys)  # type: ignore[return-value]


# ---------------------------------------------------------------- assets.search


def search_params(request: Request) -> dict[str, list[str]]:
    """The query by JSON parameter name; an unknown parameter is refused, as Google does."""
    by_proto = {proto: name for name, proto in PARAMS.items()}
    found: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        name = key if key in PARAMS else by_proto.get(key)
        if name is not None:
            found.setdefault(name, []).append(value)
        elif key not in STANDARD:
            raise bad_request(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot bind query '
                f"parameter. Field '{key}' could not be found in request message."
            )
    return found


def parse_search(found: Mapping[str, list[str]]) -> tuple[Search, int, str]:
    """(the search, the page size, the page token), or Google's 400."""

    def last(name: str) -> str:
        return found.get(name, [""])[-1]

    types = found.get("assetTypes", [])
    for i, value in enumerate(types):
        if value not in ("ASSET_TYPE_UNSPECIFIED", "REPORT", "DATA_SOURCE"):
            raise bad_request(
                f"Invalid value at 'asset_types[{i}]' "
                f'(type.googleapis.com/google.datastudio.v1.AssetType), "{value}"'
            )
    if len(types) != 1 or types[0] == "ASSET_TYPE_UNSPECIFIED":
        raise bad_request()  # exactly one asset type per search
    raw = last("pageSize")
    if raw and (not INT32.fullmatch(raw) or not -(2**31) <= int(raw) < 2**31):
        raise bad_request(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"")
    size = int(raw or 0)
    if size < 0:
        raise bad_request()
    trashed = last("includeTrashed")
    if trashed not in ("", "true", "false", "1", "0"):
        raise bad_request(f"Invalid value at 'include_trashed' (TYPE_BOOL), \"{trashed}\"")
    order = last("orderBy").strip()
    if order and order not in ORDERS:
        raise bad_request()
    search = Search(types[0], trashed in ("true", "1"), last("title"), last("owner"), order)
    return search, min(size or PAGE_SIZE, PAGE_SIZE), last("pageToken")


api = APIRouter(tags=[SLUG])


@api.get("/v1/assets:search")
async def search_assets(request: Request, _: TokenInfo = Depends(datastudio_token)) -> Response:
    """Searches assets: one asset type, opaque page tokens, `{}` when nothing is found."""
    search, size, token = parse_search(search_params(request))
    state = get_state(request, SLUG)
    binding = (search, state.seed)
    position = decode_position(token, *binding) if token else 0
    if position is None:
        raise bad_request()  # a token from another query, or no token of ours
    volume = volume_of(state)
    numbers = listing(state.seed, volume, search)
    build = builder(state.seed, volume[2], search.asset_type, trashed=search.trashed)
    body: dict[str, JSONValue] = {}
    page = numbers[position : position + size]
    if page:
        body["assets"] = [build(n) for n in page]
    if position + size < len(numbers):
        body["nextPageToken"] = encode_position(position + size, *binding)
    return json_response(body)


@api.post("/o/oauth2/revoke")
async def revoke(request: Request) -> Response:
    """Google's revocation: the token alone (no client authentication) ends its whole grant."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    value = request.query_params.get("token") or form.get("token", "")
    tokens = get_state(request, SLUG).tokens
    rt, at = tokens.refresh.get(value), tokens.access.get(value)
    grant = rt.grant if rt is not None else at.grant if at is not None else None
    if grant is None or grant.revoked or (rt is not None and not rt.active):
        body = {"error": "invalid_token", "error_description": "Token expired or revoked"}
        return json_response(body, 400)
    grant.revoked = True
    for other in tokens.refresh.values():
        if other.grant is grant:
            other.active = False
    return json_response({})


# ---------------------------------------------------------------- the emulator


def expected(state: EmulatorState, params: Mapping[str, str]) -> JSONObject:
    """How many reports are live, trashed and deleted; `include=reports` lists the live ones."""
    reports, data_sources, revision, deletions = volume_of(state)
    in_trash, deleted = gone(reports, deletions)
    out: dict[str, JSONValue] = {
        "reports": reports - len(in_trash) - len(deleted),
        "trashedReports": len(in_trash),
        "deletedReports": len(deleted),
        "dataSources": data_sources,
        "pageSize": PAGE_SIZE,
    }
    if params.get("include") == "reports":
        build = builder(state.seed, revision, "REPORT", trashed=False)
        out["items"] = [build(n) for n in listing(state.seed, volume_of(state), Search("REPORT"))]
    return out


def credentials(base_url: str) -> JSONObject:
    """A working config: the sandbox's OAuth client; tokens come from its consent flow."""
    return {
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "baseUrl": base_url,
        "authUrl": base_url,
    }


router = APIRouter()
router.include_router(api)
router.include_router(
    OAUTH.router(authorize_path="/o/oauth2/v2/auth", token_path="/o/oauth2/token")  # noqa: S106
)
EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    expected=expected,
    default_volume={
        "reports": 120,
        "dataSources": 30,
        "revision": 0,
        "deletions": 0,
        "rotateRefreshTokens": 0,
    },
    error_body=error_body,
    not_found=not_found,
    oauth=OAUTH,
)

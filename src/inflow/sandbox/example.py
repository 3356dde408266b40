"""Emulator of the `example` provider: the sandbox's own small SaaS API, prefix `/example`.

Auth is `Authorization: Bearer <API key or OAuth access token>`. Four listings, one per
pagination style: reports (page number), dashboards (offset), folders (next URL) and metrics
(opaque cursor, up to 10,000 rows a page). Volume keys: `reports`, `dashboards`, `pages`,
`revision` (bumps every 10th report and dashboard), `ratePerSecond` (a real limit; 0 = off) and
`keys`: how many workspaces' API keys are valid (`sk_test_inflow_example_0001` … `_NNNN`, one
per customer of the API, as a real provider has; `api_key(n)`), the same data behind each.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from inflow.sandbox.data import (
    DailySeries,
    LazyRecords,
    decode_position,
    encode_position,
    iso_z,
    pick,
    stable_hash,
)
from inflow.sandbox.emulator import (
    Emulator,
    JSONObject,
    RateLimitHeaders,
    Reject,
    json_response,
)
from inflow.sandbox.faults import requested_fault
from inflow.sandbox.oauth import OAuthServer, TokenRejectedError
from inflow.sandbox.state import EmulatorState, clock_now, get_state

SLUG = "example"
KEY_PREFIX = "sk_test_inflow_example_"
KEY_RE = re.compile(re.escape(KEY_PREFIX) + r"(\d{4,6})")
OAUTH = OAuthServer(
    slug=SLUG, clients={"example-client": "example-secret"}, default_scopes=("read",)
)
FOLDERS = (
    "Sales", "Marketing", "Finance", "Product", "Engineering", "Support", "Operations",
    "People", "Legal", "Growth", "Customer Success", "Partnerships", "Data", "Design",
    "Security", "Infrastructure", "Executive", "Research", "Revenue", "Retention",
    "Onboarding", "Billing", "Quality", "Compliance", "Community",
)  # fmt: skip
ADJECTIVES = ("Weekly", "Monthly", "Quarterly", "Daily", "Regional", "Global", "Team", "Board")
NOUNS = ("revenue", "pipeline", "churn", "signups", "traffic", "conversion", "usage", "costs")
EPOCH_2024 = 1_704_067_200
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def reject(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Reject:
    """The example API's error: `{"error": {"code", "message"}}`."""
    return Reject(json_response({"error": {"code": code, "message": message}}, status, headers))


def error_body(status: int, message: str) -> JSONObject:
    """Body of an injected fault, in the example API's shape."""
    code = {429: "rate_limited", 500: "internal_error", 503: "unavailable"}.get(status, "error")
    return {"error": {"code": code, "message": message}}


def not_found(path: str) -> tuple[int, JSONObject]:
    return 404, {"error": {"code": "not_found", "message": f"No route {path}."}}


def api_key(n: int = 1) -> str:
    """The API key of workspace ``n`` (1 … the `keys` volume)."""
    return f"{KEY_PREFIX}{n:04d}"


API_KEY = api_key(1)


def valid_key(request: Request, value: str) -> bool:
    """Whether ``value`` is one of the `keys` workspaces' API keys (compared in constant time)."""
    match = KEY_RE.fullmatch(value)
    n = int(match.group(1)) if match else 1
    in_range = 1 <= n <= max(get_state(request, SLUG).volume_of("keys"), 1)
    return hmac.compare_digest(value.encode(), api_key(n).encode()) and in_range


def require_auth(request: Request) -> None:
    """Accept a workspace's API key or a live OAuth access token; refuse like the real API does."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    expired = reject(
        401, "token_expired", "The access token has expired.",
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )  # fmt: skip
    if scheme.lower() == "bearer" and valid_key(request, value.strip()):
        if requested_fault(request) == "expired_token":
            raise expired
        return
    try:
        OAUTH.authenticate(request)
    except TokenRejectedError as exc:
        if exc.reason == "expired":
            raise expired from exc
        raise reject(
            401, "unauthorized", "Invalid API key", {"WWW-Authenticate": "Bearer"}
        ) from exc


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter within [lo, hi], or a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise reject(400, "invalid_request", f"{name} must be an integer from {lo} to {hi}")
    return int(raw)


def _item(seed: int, revision: int, prefix: str, i: int) -> JSONObject:
    n = i + 1
    ident, h = f"{prefix}_{n:04d}", stable_hash(seed, prefix, n)
    bump = revision if n % 10 == 0 else 0
    title = f"{pick(h, ADJECTIVES)} {pick(h >> 8, NOUNS)} {n}" + (f" (rev {bump})" if bump else "")
    is_dashboard = prefix == "dash" or (h >> 16) % 5 == 0
    return {
        "id": ident,
        "title": title,
        "kind": "dashboard" if is_dashboard else "report",
        "url": f"https://example.test/{'d' if prefix == 'dash' else 'r'}/{ident}",
        "embed_url": f"https://example.test/embed/{ident}",
        "folder": None if (h >> 24) % 4 == 0 else pick(h >> 32, FOLDERS),
        "updated_at": iso_z(EPOCH_2024 + (h >> 40) % (300 * 86400) + bump * 86400),
        "version": 1 + bump,
    }


def items(state: EmulatorState, prefix: str, volume_key: str) -> LazyRecords[JSONObject]:
    """The reports (`rep`) or dashboards (`dash`) at the current seed and volume."""
    seed, revision = state.seed, state.volume_of("revision")
    return LazyRecords(state.volume_of(volume_key), lambda i: _item(seed, revision, prefix, i))


@lru_cache(maxsize=16)
def page_paths(pages: int) -> tuple[str, ...]:
    """`/p/0001` … for `pages` pages."""
    return tuple(f"/p/{k + 1:04d}" for k in range(pages))


def date_range(q: Mapping[str, str], today: date | None) -> tuple[date, date]:
    """`start_date`/`end_date` (both required, inclusive, not after `today`), or a 400."""
    found: list[date] = []
    for name in ("start_date", "end_date"):
        raw = q.get(name)
        if raw is None:
            raise reject(400, "invalid_request", f"{name} is required (YYYY-MM-DD)")
        try:
            day = date.fromisoformat(raw) if DATE_RE.fullmatch(raw) else None
        except ValueError:
            day = None
        if day is None:
            raise reject(400, "invalid_request", f"{name} {raw!r} is not a date (YYYY-MM-DD)")
        if today is not None and day > today:
            raise reject(400, "invalid_request", f"{name} {raw} is in the future")
        found.append(day)
    if found[0] > found[1]:
        raise reject(400, "invalid_request", "start_date is after end_date")
    return found[0], found[1]


api = APIRouter(dependencies=[Depends(require_auth)], tags=[SLUG])


@api.get("/v1/me")
async def get_me() -> Response:
    """The workspace and user of the credentials."""
    body = {"id": "u_1", "email": "owner@example.test"}
    return json_response({"workspace": {"id": "ws_demo", "name": "Demo workspace"}, "user": body})


@api.get("/v1/reports")
async def list_reports(request: Request) -> Response:
    """Reports, page-number pagination."""
    page = int_param(request, "page", 1, 1, 1_000_000)
    per_page = int_param(request, "per_page", 50, 1, 100)
    records = items(get_state(request, SLUG), "rep", "reports")
    data = records[(page - 1) * per_page : page * per_page]
    return json_response(
        {"data": data, "meta": {"page": page, "per_page": per_page, "total": len(records)}}
    )


@api.get("/v1/dashboards")
async def list_dashboards(request: Request) -> Response:
    """Dashboards, offset pagination."""
    offset = int_param(request, "offset", 0, 0, 100_000_000)
    limit = int_param(request, "limit", 25, 1, 100)
    records = items(get_state(request, SLUG), "dash", "dashboards")
    body: JSONObject = {"items": records[offset : offset + limit], "offset": offset, "limit": limit}
    return json_response({**body, "total": len(records)})


@api.get("/v1/folders")
async def list_folders(request: Request) -> Response:
    """Folders, ten a page, each page linking the next by absolute URL."""
    after = request.query_params.get("after", "fld_00")
    if not re.fullmatch(r"fld_\d{2}", after):
        raise reject(400, "invalid_request", f"after {after!r} is not a folder id")
    start = int(after[4:])
    folders = [
        {"id": f"fld_{i + 1:02d}", "name": FOLDERS[i]} for i in range(start, min(start + 10, 25))
    ]
    last = start + len(folders)
    nxt = str(request.url.include_query_params(after=f"fld_{last:02d}")) if last < 25 else None
    return json_response({"folders": folders, "next": nxt})


@api.get("/v1/metrics")
async def list_metrics(request: Request) -> Response:
    """Daily visits and signups per page, cursor pagination."""
    q = request.query_params
    start, end = date_range(q, datetime.fromtimestamp(clock_now(request), UTC).date())
    size = int_param(request, "page_size", 1000, 1, 10_000)
    token = q.get("page_token")
    pos = decode_position(token, start, end) if token else 0
    if pos is None:
        raise reject(400, "invalid_request", "page_token is invalid for this date range")
    state = get_state(request, SLUG)
    pages = state.volume_of("pages")
    series, paths = DailySeries(state.seed, pages), page_paths(pages)
    total = ((end - start).days + 1) * pages
    rows: list[dict[str, str | int]] = []
    for ordinal, first, stop in series.spans(start.toordinal(), (end - start).days + 1, pos, size):
        day = date.fromordinal(ordinal).isoformat()
        visits, signups = series.values(ordinal, first, stop)
        rows.extend(
            {"date": day, "page": p, "visits": v, "signups": s}
            for p, v, s in zip(paths[first:stop], visits, signups, strict=True)
        )
    nxt = encode_position(pos + size, start, end) if pos + size < total else None
    return json_response({"rows": rows, "next_page_token": nxt})


def expected(state: EmulatorState, params: Mapping[str, str]) -> JSONObject:
    """Totals per day for `start_date`..`end_date` (if given), and the listing sizes."""
    days: dict[str, JSONObject] = {}
    pages = state.volume_of("pages")
    if "start_date" in params or "end_date" in params:
        start, end = date_range(params, None)
        series = DailySeries(state.seed, pages)
        for offset in range((end - start).days + 1):
            day = start + timedelta(days=offset)
            visits, signups = series.values(day.toordinal(), 0, pages)
            days[day.isoformat()] = {"visits": sum(visits), "signups": sum(signups)}
    reports, dashboards = state.volume_of("reports"), state.volume_of("dashboards")
    return {"days": days, "rows": len(days) * pages, "reports": reports, "dashboards": dashboards}


def credentials(base_url: str) -> JSONObject:
    """A working config for an `example` data source against this sandbox."""
    return {"baseUrl": base_url, "apiKey": API_KEY, "workspace": "demo"}


router = APIRouter()
router.include_router(api)
router.include_router(
    OAUTH.router(
        authorize_path="/oauth/authorize",
        token_path="/oauth/token",  # noqa: S106 (a path, not a password)
        revoke_path="/oauth/revoke",
    )
)
EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    expected=expected,
    default_volume={
        "reports": 120,
        "dashboards": 40,
        "pages": 20,
        "revision": 0,
        "ratePerSecond": 0,
        "keys": 1,
    },
    error_body=error_body,
    not_found=not_found,
    rate_limit_headers=RateLimitHeaders(limit=100),
    oauth=OAUTH,
)

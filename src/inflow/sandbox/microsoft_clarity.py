"""Emulator of Microsoft Clarity's Data Export API, prefix `/microsoft_clarity`.

`GET /export-data/api/v1/project-live-insights?numOfDays=1..3[&dimension1..3=...]` with
`Authorization: Bearer <project API token>` (a JWT; the project is bound to the token, not a
parameter). The answer is a top-level array of `{metricName, information: [...]}` blocks:
counts as strings, ratios as numbers, one key per requested dimension in each row, at most
1,000 rows a block, no paging. The numbers of a call are the sum of the whole hours before it
(`numOfDays * 24` of them), so calls within one hour agree and a 72-hour total holds the
48-hour one. Ten calls per project per UTC day (an authenticated call counts, whatever its
answer); the eleventh gets `429 Exceeded daily limit` (text/plain, no Retry-After).
401/403/400/500 come with empty bodies: Clarity documents statuses only.

Volume keys: `sessionsPerDay`, `pages` (popular pages and URL values), `dailyQuota`, and
`docSpelling` (1: the official sample's field names `distantUserCount`,
`PagesPerSessionPercentage`, `Url`, and a string `activeTime`); what an answer leaves out (Clarity's
export lacks what the dashboard shows, microsoft/clarity#901), each "one in N" (0: nothing):
`missingBlocks` (every N-th metric block of the answer is absent) and `missingFields` (every
N-th number of the remaining rows is absent from its row; labels and dimensions stay). Faults: 5xx, slow, truncated
and dropped bodies (a 429 comes only from the real quota).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from inflow.sandbox.data import mix64, stable_hash, unit
from inflow.sandbox.emulator import Emulator, JSONObject, JSONValue, Reject, json_response
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.stats import Stats

SLUG = "microsoft_clarity"
PATH = "/export-data/api/v1/project-live-insights"
PROJECT = "inflowdemo"
OTHER_PROJECT = "inflowtwo"
_SIGNING_KEY = b"inflow-sandbox-clarity"
MAX_ROWS = 1000
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "Browser": ("Chrome", "ChromeMobile", "Edge", "Safari", "MobileSafari", "Firefox"),
    "Device": ("PC", "Mobile", "Tablet"),
    "Country/Region": ("United States", "Germany", "Spain", "Argentina", "India", "Japan"),
    "OS": ("Windows", "Android", "iOS", "MacOSX", "Linux"),
    "Source": ("google", "bing", "facebook", "newsletter", "(direct)"),
    "Medium": ("organic", "cpc", "referral", "email", "(none)"),
    "Campaign": ("spring_sale", "brand", "retargeting", "(none)"),
    "Channel": ("Organic search", "Direct", "Referral", "Paid search", "Social", "Email"),
    "URL": (),  # the site's pages (volume `pages`)
}
TOP_LISTS = {  # block → its values (no dimension): Clarity's top-N lists
    "Browser": DIMENSIONS["Browser"],
    "Device": DIMENSIONS["Device"],
    "OS": DIMENSIONS["OS"],
    "Country": DIMENSIONS["Country/Region"],
    "ReferrerUrl": ("https://www.google.com/", "https://www.bing.com/", "https://t.co/", None),
}
# Signal block → (share of sessions with it, events per such session)
SIGNALS = {
    "DeadClickCount": (0.15, 2.5),
    "RageClickCount": (0.02, 1.5),
    "QuickbackClick": (0.05, 1.2),
    "ExcessiveScroll": (0.01, 1.0),
    "ScriptErrorCount": (0.03, 3.0),
    "ErrorClickCount": (0.01, 1.3),
}
SECTIONS = ("pricing", "blog", "docs", "features", "about", "careers", "contact", "changelog")
# Additive per-hour quantities: everything a window's numbers are made of.
ADDITIVE = ("sessions", "bots", "page_views", "total_time", "active_time", "scroll")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(project: str, *, jti: str = "1", exp: int = 4_102_444_800) -> str:
    """A project API token as Clarity issues them: a signed JWT (here signed by the sandbox)."""
    header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    claims = {
        "jti": jti,
        "sub": f"user-{jti}",
        "iss": "clarity",
        "aud": "clarity.data-exporter",
        "exp": exp,
        "projectId": project,  # the sandbox's own claim: Clarity binds the project somehow
    }
    payload = _b64(orjson.dumps(claims))
    signature = hmac.new(_SIGNING_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


TOKEN = make_token(PROJECT)
OTHER_TOKEN = make_token(OTHER_PROJECT, jti="2")
REVOKED_TOKEN = make_token(PROJECT, jti="revoked")  # its creator was removed from the project
EXPIRED_TOKEN = make_token(PROJECT, jti="3", exp=1_700_000_000)


def _empty(status: int) -> Reject:
    return Reject(Response(status_code=status))


def project_of(request: Request) -> str:
    """The project of a valid bearer token; 401 for a bad one, 403 for a revoked one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        raise _empty(401)
    mac = hmac.new(_SIGNING_KEY, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(mac), parts[2]):
        raise _empty(401)
    claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    if claims.get("aud") != "clarity.data-exporter" or claims.get("exp", 0) < clock_now(request):
        raise _empty(401)
    if claims.get("jti") == "revoked":
        raise _empty(403)
    return str(claims["projectId"])


# Calls per (project, UTC day), kept per stats object so `/_sandbox/reset` forgets them too.
_USAGE: WeakKeyDictionary[Stats, Counter[tuple[str, str]]] = WeakKeyDictionary()


def usage(state: EmulatorState) -> Counter[tuple[str, str]]:
    return _USAGE.setdefault(state.stats, Counter())


def _day(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).date().isoformat()


# ---------------------------------------------------------------- data


def pages(state: EmulatorState) -> list[str]:
    """The site's page URLs: the home page, then a few sections' pages."""
    count = max(1, state.volume_of("pages"))
    rest = [f"https://www.example.com/{SECTIONS[i % 8]}/{i // 8 + 1}" for i in range(count - 1)]
    return ["https://www.example.com/", *rest]


def _hour(seed: int, project: str, hour: int, per_day: int) -> dict[str, float]:
    """One hour's additive quantities: a daily rhythm (quiet nights) and per-hour noise."""
    h = stable_hash(seed, project, hour)
    r = [unit(mix64(h + i)) for i in range(4 + 3 * len(SIGNALS))]
    rhythm = 0.35 + 0.65 * (1 + math.sin((hour % 24 - 9) / 24 * 2 * math.pi)) / 2
    sessions = int(per_day / 24 * 1.6 * rhythm * (0.8 + 0.4 * r[0]))
    out = {
        "sessions": sessions,
        "bots": int(sessions * (0.03 + 0.05 * r[1])),
        "page_views": int(sessions * (1.3 + 1.4 * r[2])),
        "total_time": sessions * (90 + 240 * r[3]),
        "active_time": sessions * (30 + 90 * r[3]),
        "scroll": sessions * (30 + 45 * r[2]),
    }
    for i, (name, (share, per_session)) in enumerate(SIGNALS.items()):
        a, b, c = r[4 + 3 * i : 7 + 3 * i]
        hit = int(sessions * share * (0.5 + a))
        out[f"{name}.sessions"] = hit
        out[f"{name}.events"] = int(hit * per_session * (0.8 + 0.4 * b))
        out[f"{name}.views"] = int(hit * (1 + 0.5 * c))
    return out


def totals(state: EmulatorState, project: str, days: int, as_of: float) -> dict[str, float]:
    """The sums over the `days * 24` whole hours before `as_of` (epoch seconds)."""
    end_hour = int(as_of // 3600)
    per_day = state.volume_of("sessionsPerDay")
    sums: Counter[str] = Counter()
    for hour in range(end_hour - 24 * days, end_hour):
        sums.update(_hour(state.seed, project, hour, per_day))
    return dict(sums)


def _weights(seed: int, name: str, values: Sequence[object]) -> list[float]:
    return [0.2 + 2 * unit(stable_hash(seed, name, v)) ** 2 for v in values]


def split(total: int, weights: Sequence[float]) -> list[int]:
    """`total` in parts proportional to `weights`, summing to it exactly (largest remainder)."""
    whole = sum(weights) or 1.0
    exact = [total * w / whole for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: parts[i] - exact[i])
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _blocks_for(
    state: EmulatorState, t: Mapping[str, float], combos: list[dict[str, str]], days: int
) -> list[JSONObject]:
    """The per-row blocks (traffic, engagement, scroll, signals), one row per combination."""
    docs = state.volume_of("docSpelling") == 1
    seed = state.seed
    keys = [tuple(c.items()) for c in combos]
    weights = [math.prod(_weights(seed, k, [v])[0] for k, v in key) for key in keys]
    sessions = split(int(t["sessions"]), weights)
    bots = split(int(t["bots"]), weights)

    def factor(key: tuple[tuple[str, str], ...], what: str) -> float:
        return 0.85 + 0.3 * unit(stable_hash(seed, what, key)) if key else 1.0

    users = "distantUserCount" if docs else "distinctUserCount"
    pps = "PagesPerSessionPercentage" if docs else "pagesPerSessionPercentage"
    per_session = {k: t[k] / max(1, t["sessions"]) for k in ADDITIVE}
    traffic: list[JSONObject] = []
    engagement: list[JSONObject] = []
    scroll: list[JSONObject] = []
    for key, combo, n, b in zip(keys, combos, sessions, bots, strict=True):
        traffic.append(
            {
                "totalSessionCount": str(n),
                "totalBotSessionCount": str(b),
                users: str(int(n * (0.8 - 0.05 * (days - 1)) * factor(key, "users"))),
                pps: round(per_session["page_views"] * factor(key, "pages"), 4),
                **combo,
            }
        )
        active = round(per_session["active_time"] * factor(key, "active"))
        engagement.append(
            {
                "totalTime": str(round(per_session["total_time"] * factor(key, "time"))),
                "activeTime": str(active) if docs else active,
                **combo,
            }
        )
        depth = round(min(100.0, per_session["scroll"] * factor(key, "scroll")), 2)
        scroll.append({"averageScrollDepth": depth, **combo})
    out: list[JSONObject] = [
        {"metricName": "Traffic", "information": traffic[:MAX_ROWS]},
        {"metricName": "EngagementTime", "information": engagement[:MAX_ROWS]},
        {"metricName": "ScrollDepth", "information": scroll[:MAX_ROWS]},
    ]
    for name in SIGNALS:
        hits = split(int(t[f"{name}.sessions"]), weights)
        events = split(int(t[f"{name}.events"]), weights)
        views = split(int(t[f"{name}.views"]), weights)
        rows: list[JSONObject] = []
        for combo, n, hit, ev, pv in zip(combos, sessions, hits, events, views, strict=True):
            pct = round(100 * min(hit, n) / n, 2) if n else 0
            rows.append(
                {
                    "sessionsCount": str(n),
                    "sessionsWithMetricPercentage": pct,
                    "sessionsWithoutMetricPercentage": round(100 - pct, 2) if n else 0,
                    "pagesViews": str(pv),
                    "subTotal": str(ev),
                    **combo,
                }
            )
        out.append({"metricName": name, "information": rows[:MAX_ROWS]})
    return out


def _top_lists(state: EmulatorState, t: Mapping[str, float]) -> list[JSONObject]:
    seed, sessions = state.seed, int(t["sessions"])
    out: list[JSONObject] = []
    for name, values in TOP_LISTS.items():
        counts = split(sessions, _weights(seed, name, values))
        rows = sorted(zip(values, counts, strict=True), key=_by_count)
        info = [{"name": v, "sessionsCount": str(c)} for v, c in rows]
        out.append({"metricName": name, "information": info})
    urls = pages(state)
    weights = _weights(seed, "pages", urls)
    ranked = sorted(zip(urls, split(int(t["page_views"]), weights), strict=True), key=_by_count)
    titled = sorted(zip(urls, split(sessions, weights), strict=True), key=_by_count)
    out.append(
        {
            "metricName": "PageTitle",
            "information": [{"name": _title(u), "sessionsCount": str(c)} for u, c in titled],
        }
    )
    out.append(
        {
            "metricName": "PopularPages",
            "information": [{"url": u, "visitsCount": str(c)} for u, c in ranked[:MAX_ROWS]],
        }
    )
    return out


def _by_count(pair: tuple[object, int]) -> int:
    return -pair[1]


def _title(url: str) -> str:
    path = url.removeprefix("https://www.example.com/").strip("/")
    return f"{path.replace('/', ' ').title() or 'Home'} | Example"


def insights(
    state: EmulatorState, project: str, days: int, dimensions: Sequence[str], as_of: float
) -> list[JSONObject]:
    """The response body of one call: every metric block."""
    t = totals(state, project, days, as_of)
    label = {"URL": "Url" if state.volume_of("docSpelling") == 1 else "URL"}
    values = [DIMENSIONS[d] or tuple(pages(state)) for d in dimensions]
    combos = [
        {label.get(d, d): v for d, v in zip(dimensions, combo, strict=True)}
        for combo in itertools.product(*values)
    ]
    return leave_out(state, [*_blocks_for(state, t, combos, days), *_top_lists(state, t)])


LABELS = frozenset(("name", "url", *DIMENSIONS, "Url"))  # what a row is about, never dropped


def leave_out(state: EmulatorState, blocks: list[JSONObject]) -> list[JSONObject]:
    """The answer without every `missingBlocks`-th block and every `missingFields`-th number."""
    every_block, every_field = state.volume_of("missingBlocks"), state.volume_of("missingFields")
    if every_block > 0:
        blocks = [b for i, b in enumerate(blocks, 1) if i % every_block]
    if every_field <= 0:
        return blocks
    counted = itertools.count(1)
    out: list[JSONObject] = []
    for block in blocks:
        rows = block["information"]
        kept: list[JSONValue] = [
            {k: v for k, v in row.items() if k in LABELS or next(counted) % every_field}
            for row in (rows if isinstance(rows, list) else ())
            if isinstance(row, Mapping)
        ]
        out.append({**block, "information": kept})
    return out


# ---------------------------------------------------------------- the endpoint


def parse_query(query: Mapping[str, str]) -> tuple[int, list[str]]:
    """`numOfDays` (1..3) and the dimensions (at most three, known labels), or a 400."""
    raw = query.get("numOfDays", "")
    if raw not in ("1", "2", "3"):
        raise _empty(400)
    extra = [k for k in query if k.startswith("dimension") and k not in DIM_PARAMS]
    dims = [query[k] for k in DIM_PARAMS if query.get(k)]
    if extra or any(d not in DIMENSIONS for d in dims) or len(set(dims)) != len(dims):
        raise _empty(400)
    return int(raw), dims


DIM_PARAMS = ("dimension1", "dimension2", "dimension3")
router = APIRouter(tags=[SLUG])


@router.get(PATH)
async def project_live_insights(request: Request) -> Response:
    """The project's live insights of the last 1-3 days."""
    project = project_of(request)
    state = get_state(request, SLUG)
    now = clock_now(request)
    used = usage(state)
    if used[(project, _day(now))] >= state.volume_of("dailyQuota"):
        return Response("Exceeded daily limit", status_code=429, media_type="text/plain")
    used[(project, _day(now))] += 1
    days, dims = parse_query(request.query_params)
    return json_response(insights(state, project, days, dims, now))


def credentials(base_url: str) -> JSONObject:
    """A working config for a `microsoft_clarity` data source against this sandbox."""
    return {"projectId": PROJECT, "apiKey": TOKEN, "baseUrl": base_url}


EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    default_volume={
        "sessionsPerDay": 2400,
        "pages": 12,
        "dailyQuota": 10,
        "docSpelling": 0,
        "missingBlocks": 0,
        "missingFields": 0,
    },
    faults=frozenset(("server_error", "unavailable", "slow", "truncate", "drop", "mutate")),
    error_body=lambda _status, _message: {},
)

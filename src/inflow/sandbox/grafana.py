"""Emulator of a Grafana instance's HTTP API (a 10.4 server, nested folders on), prefix `/grafana`.

The prefix plays Grafana's sub-path (`root_url` with `serve_from_sub_path`): the URLs in search
hits carry it, as a real sub-path install's do. `GET /api/health` answers without auth (its
handler runs before Grafana's auth middleware, so credentials are ignored there). Everything else
needs `Authorization: Bearer <service-account token>` (a token belongs to one org), or Basic with
a user's password (a member of orgs 1 and 2), or Basic `api_key:<token>`. `X-Grafana-Org-Id`
picks the org: empty or unparsable means none, as in Grafana's authn service; a token's org must
match (401 `api-key.organization-mismatch`). Five wrong passwords for a user within five
minutes lock it, the right password included (Grafana's brute-force protection).

`/api/search`: `type`, `query`, `tag`, `sort`, `limit` (default 1000 when missing or < 1, over
5000 is a 422) and 1-based `page` (< 1 is 1); no total, no links: a short page is the last.
`/api/folders`: `limit` (default 1000) and `page`; nested folders on, it lists the top level, or
with `parentUid` that folder's children (each with its `parentUid`; an unknown parent is a 404
`Folder not found`). `/api/folders/{uid}` one folder (404 `Folder not found`) with `parentUid`
and `parents` (root first) when nested; in search hits a nested folder carries its parent as
`folderUid`/`folderTitle`/`folderUrl`. `/api/dashboards/uid/{uid}` one dashboard's JSON and
`meta` (404 `Dashboard not found`): version 1, or `1 + revision` (`1 + edits`) for the dashboards
saved again, `updated` a day after `created` per save. `/api/frontend/settings` (signed in) has the `buildInfo` grafana-client reads. An unknown
route is Grafana's 404 `{"message": "Not found"}`. Errors are Grafana's: `{"message"}` from
handlers, the errutil shape (`messageId`, `statusCode`, `traceID`) from authentication, the 403
`accessErrorId` body from access control; faults answer `{"message"}` with `Retry-After`.
A token with no role (`NO_ROLE_TOKEN`) sees no dashboards and may not read its org (403).

Volume keys: `dashboards` (org 1; org 2 has `ORG2_DASHBOARDS`), `folders` (top-level, org 1),
`subfolders` (nested folders of org 1: folder `folders + k` is a child of folder `k`, so more
subfolders than folders nest three deep and more), `revision` (every 10th dashboard, 10, 20, ...,
saved again that many times: retitled), `edits` (dashboards 5, 15, 25, ... saved again that many
times with a panel added: search hits unchanged), `deletions` (that many dashboards deleted:
those numbered 3, 8, 13, ...), `flat` (1: nested folders off, as on a Grafana without the
feature: `/api/folders` lists every folder and ignores `parentUid`). Dashboards are spread over
the root level and every folder. Which org a user's request acts in (membership aside)
is unverified against a real server: a user asking for an org it is not in gets a 401 here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from inflow.sandbox.data import pick, stable_hash
from inflow.sandbox.emulator import (
    Emulator,
    JSONObject,
    JSONValue,
    Reject,
    base_url,
    json_response,
)
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.stats import Stats

SLUG = "grafana"
VERSION = "10.4.2"
COMMIT = "701c851be7"
TOKEN = "glsa_InflowSandboxMainOrgViewer0001_5f3c2a1e"  # noqa: S105 (the sandbox's fake token)
OPS_TOKEN = "glsa_InflowSandboxOpsOrgViewer00002_9b8d7c6e"  # noqa: S105
NO_ROLE_TOKEN = "glsa_InflowSandboxNoBasicRole000003_0a1b2c3d"  # noqa: S105
USERNAME = "inflow"
PASSWORD = "sandbox-password"  # noqa: S105 (the sandbox user's fake password)
ORGS = {1: "Main Org.", 2: "Ops"}
USER_ORGS = (1, 2)  # the user's memberships; the first is its default org
TOKENS: dict[str, tuple[int, str]] = {TOKEN: (1, "Viewer"), OPS_TOKEN: (2, "Viewer")}
TOKENS[NO_ROLE_TOKEN] = (1, "None")
ORG2_DASHBOARDS = 30
ORG2_FOLDERS = 3
MAX_LIMIT = 5000
DEFAULT_LIMIT = 1000
LOCK_ATTEMPTS = 5
LOCK_WINDOW_S = 300.0
FOLDER_NAMES = (
    "Operations", "Infrastructure", "Databases", "Kubernetes", "Networking", "Security",
    "Business KPIs", "Product", "Frontend", "Backend", "Payments", "Search", "Data Platform",
    "SRE", "On-call", "Capacity", "Edge", "Observability", "Releases", "Experiments",
)  # fmt: skip
ADJECTIVES = ("Production", "Staging", "Regional", "Global", "Service", "Cluster", "Team", "Node")
NOUNS = ("overview", "latency", "errors", "traffic", "saturation", "SLOs", "costs", "usage")
TAGS = ("prod", "staging", "sre", "k8s", "database", "business", "alerts", "team-a", "team-b")
LOCKED = (
    "too many consecutive incorrect login attempts for user - login for user temporarily blocked"
)


# ---------------------------------------------------------------- errors


def reject(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reject:
    """A handler's error as Grafana writes it (`response.Error`): `{"message"}`."""
    return Reject(json_response({"message": message}, status, headers))


def auth_error(message: str, message_id: str) -> Reject:
    """An authentication failure in Grafana's errutil shape (always a 401)."""
    body = {
        "extra": None,
        "message": message,
        "messageId": message_id,
        "statusCode": 401,
        "traceID": "",
    }
    return Reject(json_response(body, 401))


def access_denied(permission: str) -> Reject:
    """Access control's 403: the `accessErrorId` names the error, not a resource."""
    body = {
        "accessErrorId": "ACE1646206561",
        "message": (
            "You'll need additional permissions to perform this action. "
            f"Permissions needed: {permission}"
        ),
        "title": "Access denied",
    }
    return Reject(json_response(body, 403))


def not_found(_path: str) -> tuple[int, JSONObject]:
    """Grafana's answer to an unknown `/api/...` route (its router's `notFoundHandler`)."""
    return 404, {"message": "Not found"}


def error_body(_status: int, message: str) -> JSONObject:
    """An injected fault's body (a 429 from a proxy in front of Grafana, a 5xx)."""
    return {"message": message}


# ---------------------------------------------------------------- who is asking


@dataclass(frozen=True)
class Identity:
    org: int
    role: str  # "Viewer", or "None" (no basic role: sees nothing it is not granted)


# Failed password attempts per user, kept per sandbox state (a reset starts a new `Stats`).
_FAILURES: WeakKeyDictionary[Stats, dict[str, list[float]]] = WeakKeyDictionary()


def requested_org(request: Request) -> int:
    """`X-Grafana-Org-Id`; empty or unparsable is 0 (none), as in Grafana's authn service."""
    raw = request.headers.get("x-grafana-org-id", "").strip()
    return int(raw) if raw.isdigit() else 0


def token_identity(token: str, org: int) -> Identity:
    found = next((v for k, v in TOKENS.items() if hmac.compare_digest(k, token)), None)
    if found is None:  # unknown, revoked, or a Grafana Cloud access-policy token (glc_)
        raise auth_error("Invalid API key", "api-key.invalid")
    own_org, role = found
    if org and org != own_org:
        raise auth_error(
            "API key does not belong to the requested organization",
            "api-key.organization-mismatch",
        )
    return Identity(own_org, role)


def password_identity(request: Request, user: str, password: str, org: int) -> Identity:
    state = get_state(request, SLUG)
    now = clock_now(request)
    failures = _FAILURES.setdefault(state.stats, {})
    recent = [t for t in failures.get(user, []) if now - t < LOCK_WINDOW_S]
    if len(recent) >= LOCK_ATTEMPTS:  # checked before the password, so the right one fails too
        raise auth_error(LOCKED, "password-auth.failed")
    ok = hmac.compare_digest(user, USERNAME) and hmac.compare_digest(password, PASSWORD)
    if not ok:
        failures[user] = [*recent, now]
        raise auth_error("Invalid username or password", "password-auth.failed")
    failures.pop(user, None)
    if org and org not in USER_ORGS:
        raise auth_error("Unauthorized", "auth.unauthorized")
    return Identity(org or USER_ORGS[0], "Admin")


def identify(request: Request) -> Identity:
    """The org and role of the request's credentials, or Grafana's 401."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    org = requested_org(request)
    if scheme.lower() == "bearer" and value.strip():
        return token_identity(value.strip(), org)
    if scheme.lower() == "basic":
        try:
            user, sep, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            user, sep, password = "", "", ""
        if sep and user == "api_key":  # a token sent as a password
            return token_identity(password, org)
        if sep:
            return password_identity(request, user, password, org)
    raise auth_error("Unauthorized", "auth.unauthorized")


# ---------------------------------------------------------------- data


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def uid_of(seed: int, kind: str, org: int, n: int) -> str:
    """A Grafana-looking uid (letters and digits, at most 40 long), unique by its number."""
    return f"{stable_hash(seed, kind, org, n) & 0xFFFFF:05x}{kind[0]}{org}{n:06d}"


def first_id(org: int) -> int:
    """Ids are one sequence for the instance: each org's rows get their own range here."""
    return (org - 1) * 1_000_000


@dataclass(frozen=True)
class Listing:
    """One org's folders and dashboards at a seed and volume, sorted by title (alpha-asc)."""

    folders: tuple[JSONObject, ...]
    dashboards: tuple[JSONObject, ...]
    by_uid: Mapping[str, JSONObject]  # the dashboards (a sync reads each one by uid)


def is_deleted(n: int, deletions: int) -> bool:
    """Dashboards 3, 8, 13, ... are the ones deleted, `deletions` of them."""
    return n % 5 == 3 and n // 5 < deletions


def _folder(seed: int, org: int, j: int, sub_path: str, top: int = 0) -> dict[str, JSONValue]:
    """Folder number ``j``; past the ``top`` level ones (``top`` > 0) it is nested: a child of
    folder ``j - top``."""
    name = FOLDER_NAMES[(j - 1) % len(FOLDER_NAMES)]
    title = name if j <= len(FOLDER_NAMES) else f"{name} {j}"
    uid = uid_of(seed, "folder", org, j)
    url = f"{sub_path}/dashboards/f/{uid}/{slugify(title)}"
    folder: dict[str, JSONValue] = {"id": first_id(org) + j, "uid": uid, "title": title, "url": url}
    if top and j > top:
        folder["parentUid"] = uid_of(seed, "folder", org, j - top)
    return folder


def _dashboard(
    seed: int, org: int, n: int, folders: int, subfolders: int, revision: int, sub_path: str
) -> dict[str, JSONValue]:
    h = stable_hash(seed, "dashboard", org, n)
    title = f"{pick(h, ADJECTIVES)} {pick(h >> 8, NOUNS)} {n}"
    if revision and n % 10 == 0:
        title += f" (rev {revision})"
    uid = uid_of(seed, "dashboard", org, n)
    tags = sorted({pick(h >> (16 + 8 * k), TAGS) for k in range((h >> 60) % 3)}, reverse=True)
    hit: dict[str, JSONValue] = {
        "id": first_id(org) + folders + subfolders + n,  # one id sequence for folders too
        "uid": uid,
        "orgId": org,
        "title": title,
        "uri": f"db/{slugify(title)}",
        "url": f"{sub_path}/d/{uid}/{slugify(title)}",
        "slug": "",
        "type": "dash-db",
        "tags": list(tags),
        "isStarred": False,
        "sortMeta": 0,
    }
    j = (h >> 40) % (folders + subfolders + 1)  # 0: the root ("General") level, no folder fields
    if j:
        folder = _folder(seed, org, j, sub_path)
        hit.update(
            folderId=folder["id"],
            folderUid=folder["uid"],
            folderTitle=folder["title"],
            folderUrl=folder["url"],
        )
    return hit


CREATED_FROM = datetime(2024, 1, 1, tzinfo=UTC)  # dashboards and folders were made in 2024


def number_of(uid: str, kind: str, org: int) -> int | None:
    """The number a uid was made from (`uid_of`), if it has the shape of one of `kind`."""
    tail = f"{kind[0]}{org}"
    if len(uid) != 5 + len(tail) + 6 or uid[5 : 5 + len(tail)] != tail or not uid[-6:].isdigit():
        return None
    return int(uid[-6:])


def saved(seed: int, kind: str, org: int, n: int, versions: int) -> JSONObject:
    """When an object was created and last saved (a day per later save), and its version."""
    created = CREATED_FROM + timedelta(minutes=stable_hash(seed, kind, "created", org, n) % 525_600)
    updated = created + timedelta(days=versions - 1)
    return {
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": versions,
    }


def dashboard_version(n: int, revision: int, edits: int = 0) -> int:
    """Version 1, or 1 + `revision` for every 10th dashboard (saved again, retitled), 1 + `edits`
    for dashboards 5, 15, 25, ... (saved again with a panel added)."""
    if revision and n % 10 == 0:
        return 1 + revision
    return 1 + edits if edits and n % 10 == 5 else 1


def _title_key(item: JSONObject) -> tuple[str, str]:
    return str(item["title"]).lower(), str(item["uid"])


@lru_cache(maxsize=8)
def listing(
    seed: int,
    org: int,
    dashboards: int,
    folders: int,
    subfolders: int,
    revision: int,
    deletions: int,
    sub_path: str,
) -> Listing:
    """Every folder (nested ones with their `parentUid`) and live dashboard of an org, built
    once per setting (5,000+ sort fast)."""
    live = (
        _dashboard(seed, org, n, folders, subfolders, revision, sub_path)
        for n in range(1, dashboards + 1)
        if not is_deleted(n, deletions)
    )
    every = (_folder(seed, org, j, sub_path, folders) for j in range(1, folders + subfolders + 1))
    found = tuple(sorted(live, key=_title_key))
    return Listing(
        folders=tuple(sorted(every, key=_title_key)),
        dashboards=found,
        by_uid={str(d["uid"]): d for d in found},
    )


def org_listing(state: EmulatorState, org: int, sub_path: str) -> Listing:
    if org == 1:
        dashboards, folders = state.volume_of("dashboards"), state.volume_of("folders")
        subfolders = state.volume_of("subfolders")
    else:
        dashboards, folders, subfolders = ORG2_DASHBOARDS, ORG2_FOLDERS, 0
    revision, deletions = state.volume_of("revision"), state.volume_of("deletions")
    return listing(state.seed, org, dashboards, folders, subfolders, revision, deletions, sub_path)


def parents_of(folders: tuple[JSONObject, ...], folder: JSONObject) -> list[JSONObject]:
    """A folder's ancestors, the root first (`/api/folders/{uid}`'s `parents`)."""
    chain: list[JSONObject] = []
    parent = find(folders, str(folder.get("parentUid") or ""))
    while parent is not None:
        chain.insert(0, parent)
        parent = find(folders, str(parent.get("parentUid") or ""))
    return chain


def folder_hit(folders: tuple[JSONObject, ...], folder: JSONObject, org: int) -> JSONObject:
    """A folder as `/api/search?type=dash-folder` lists it (a nested one with its parent)."""
    title = str(folder["title"])
    extra: dict[str, JSONValue] = {"orgId": org, "uri": f"db/{slugify(title)}", "slug": ""}
    own = {k: folder[k] for k in ("id", "uid", "title", "url")}
    hit = {**own, **extra, "type": "dash-folder", "tags": [], "isStarred": False, "sortMeta": 0}
    parent = find(folders, str(folder.get("parentUid") or ""))
    if parent is not None:
        hit.update(
            folderId=parent["id"],
            folderUid=parent["uid"],
            folderTitle=parent["title"],
            folderUrl=parent["url"],
        )
    return hit


def find(items: tuple[JSONObject, ...], uid: str) -> JSONObject | None:
    return next((item for item in items if item["uid"] == uid), None)


def int64(request: Request, name: str) -> int:
    """Grafana's `QueryInt64`: the parameter as an integer, 0 when missing or unparsable."""
    raw = request.query_params.get(name, "")
    try:
        return int(raw)
    except ValueError:
        return 0


def sub_path(request: Request) -> str:
    """The path this emulator is served under: a sub-path Grafana writes it into its URLs."""
    return urlsplit(base_url(request, SLUG)).path.rstrip("/")


def tags_of(hit: JSONObject) -> set[str]:
    tags = hit.get("tags")
    return {str(t) for t in tags} if isinstance(tags, list) else set()


# ---------------------------------------------------------------- routes


public = APIRouter(tags=[SLUG])
api = APIRouter(tags=[SLUG])
Who = Depends(identify)


@public.get("/api/health")
async def health() -> Response:
    """Liveness and version; no auth (the handler runs before Grafana's auth middleware)."""
    return json_response({"commit": COMMIT, "database": "ok", "version": VERSION})


@api.get("/api/org")
async def current_org(who: Identity = Who) -> Response:
    """The org the credentials act in."""
    if who.role == "None":
        raise access_denied("orgs:read")
    address = dict.fromkeys(("address1", "address2", "city", "zipCode", "state", "country"), "")
    return json_response({"id": who.org, "name": ORGS[who.org], "address": address})


@api.get("/api/search")
async def search(request: Request, who: Identity = Who) -> Response:
    """Dashboards and folders the identity may view, a page at a time."""
    limit, page = int64(request, "limit"), int64(request, "page")
    if limit > MAX_LIMIT:
        raise reject(
            422,
            "Limit is above maximum allowed (5000), use page parameter to access hits beyond limit",
        )
    limit = limit if limit >= 1 else DEFAULT_LIMIT
    page = max(page, 1)
    if who.role == "None":
        return json_response([])
    q = request.query_params
    found = org_listing(get_state(request, SLUG), who.org, sub_path(request))
    folders = [folder_hit(found.folders, f, who.org) for f in found.folders]
    kind = q.get("type")
    hits: list[JSONObject] = (
        list(found.dashboards)
        if kind == "dash-db"
        else folders
        if kind == "dash-folder"
        else sorted([*folders, *found.dashboards], key=_title_key)
    )
    text = q.get("query", "").lower()
    tags = set(q.getlist("tag"))
    if text or tags:
        hits = [h for h in hits if text in str(h["title"]).lower() and tags <= tags_of(h)]
    if q.get("sort") == "alpha-desc":
        hits.reverse()
    return json_response(hits[(page - 1) * limit : page * limit])


@api.get("/api/folders")
async def folders(request: Request, who: Identity = Who) -> Response:
    """The top-level folders the identity may view, or with `parentUid` that folder's children,
    a page at a time."""
    limit, page = int64(request, "limit"), int64(request, "page")
    limit = limit if limit >= 1 else DEFAULT_LIMIT
    page = max(page, 1)
    state = get_state(request, SLUG)
    found = org_listing(state, who.org, sub_path(request)).folders
    if state.volume_of("flat"):  # nested folders off: every folder, `parentUid` ignored
        every = [{k: f[k] for k in ("id", "uid", "title")} for f in found]
        return json_response(every[(page - 1) * limit : page * limit] if who.role != "None" else [])
    parent = request.query_params.get("parentUid", "")
    if parent and (who.role == "None" or find(found, parent) is None):
        raise reject(404, "Folder not found")
    if who.role == "None":
        return json_response([])
    rows: list[JSONObject] = [
        {k: f[k] for k in ("id", "uid", "title", "parentUid") if k in f}
        for f in found
        if (f.get("parentUid") or "") == parent
    ]
    return json_response(rows[(page - 1) * limit : page * limit])


@api.get("/api/folders/{uid}")
async def folder(request: Request, uid: str, who: Identity = Who) -> Response:
    """One folder, with its permissions for the identity and when it was saved."""
    found = org_listing(get_state(request, SLUG), who.org, sub_path(request)).folders
    hit = find(found, uid) if who.role != "None" else None
    n = number_of(uid, "folder", who.org)
    if hit is None or n is None:
        raise reject(404, "Folder not found")
    can = dict.fromkeys(("canSave", "canEdit", "canAdmin", "canDelete"), False)
    when = saved(get_state(request, SLUG).seed, "folder", who.org, n, 1)
    nesting: dict[str, JSONValue] = {}
    if hit.get("parentUid"):
        chain = parents_of(found, hit)
        nesting["parents"] = [{k: p[k] for k in ("uid", "title", "url")} for p in chain]
    return json_response(
        {
            **hit,
            **nesting,
            "hasAcl": False,
            **can,
            "createdBy": "admin",
            "created": when["created"],
            "updatedBy": "admin",
            "updated": when["updated"],
            "version": when["version"],
        }
    )


@api.get("/api/dashboards/uid/{uid}")
async def dashboard(request: Request, uid: str, who: Identity = Who) -> Response:
    """One dashboard's JSON model and `meta` (version and save times included)."""
    state = get_state(request, SLUG)
    hit = org_listing(state, who.org, sub_path(request)).by_uid.get(uid)
    hit = hit if who.role != "None" else None
    n = number_of(uid, "dashboard", who.org)
    if hit is None or n is None:
        if who.role == "None" and n is not None:
            raise access_denied("dashboards:read")
        raise reject(404, "Dashboard not found")
    version = dashboard_version(n, state.volume_of("revision"), state.volume_of("edits"))
    when = saved(state.seed, "dashboard", who.org, n, version)
    h = stable_hash(state.seed, "panels", who.org, n)
    added = version - 1 if n % 10 == 5 else 0  # an edit adds a panel, nothing else
    panels: list[JSONValue] = [
        {"id": k + 1, "type": pick(h >> (4 * k), ("timeseries", "stat", "table", "gauge")),
         "title": f"Panel {k + 1}", "gridPos": {"h": 8, "w": 12, "x": 12 * (k % 2), "y": 8 * (k // 2)}}
        for k in range(1 + h % 4 + added)
    ]  # fmt: skip
    model: JSONObject = {
        "id": hit["id"],
        "uid": uid,
        "title": hit["title"],
        "tags": hit["tags"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": when["version"],
        "panels": panels,
    }
    folder = {k: hit[k] for k in ("folderId", "folderUid", "folderTitle", "folderUrl") if k in hit}
    meta: dict[str, JSONValue] = {
        "type": "db",
        "canSave": False,
        "canEdit": False,
        "canAdmin": False,
        "canStar": True,
        "canDelete": False,
        "slug": slugify(str(hit["title"])),
        "url": hit["url"],
        "expires": "0001-01-01T00:00:00Z",
        "created": when["created"],
        "updated": when["updated"],
        "updatedBy": "admin",
        "createdBy": "admin",
        "version": when["version"],
        "hasAcl": False,
        "isFolder": False,
        "folderId": 0,
        "folderUid": "",
        "folderTitle": "General",
        "folderUrl": "",
        **folder,
        "provisioned": False,
        "provisionedExternalId": "",
        "annotationsPermissions": {
            scope: dict.fromkeys(("canAdd", "canEdit", "canDelete"), False)
            for scope in ("dashboard", "organization")
        },
        "isStarred": False,
        "publicDashboardEnabled": False,
    }
    return json_response({"dashboard": model, "meta": meta})


@api.get("/api/frontend/settings")
async def frontend_settings(_who: Identity = Who) -> Response:
    """The part of the frontend settings a client reads: `buildInfo` (version, commit)."""
    build: JSONObject = {
        "hideVersion": False,
        "version": VERSION,
        "versionString": f"Grafana v{VERSION} ({COMMIT})",
        "commit": COMMIT,
        "buildstamp": 1712150000,
        "edition": "Open Source",
        "latestVersion": "",
        "hasUpdate": False,
        "env": "production",
    }
    return json_response({"appUrl": "", "appSubUrl": "", "buildInfo": build, "featureToggles": {}})


# ---------------------------------------------------------------- the emulator


def expected(state: EmulatorState, params: Mapping[str, str]) -> JSONObject:
    """Org 1's live dashboards (URLs as a root install writes them), folders and deletions;
    `org=2` for the other org."""
    org = 2 if params.get("org") == "2" else 1
    found = org_listing(state, org, "")
    total = state.volume_of("dashboards") if org == 1 else ORG2_DASHBOARDS
    deleted = [
        uid_of(state.seed, "dashboard", org, n)
        for n in range(1, total + 1)
        if is_deleted(n, state.volume_of("deletions"))
    ]
    return {
        "org": org,
        "dashboards": list(found.dashboards),
        "folders": list(found.folders),
        "deleted": deleted,
    }


def credentials(base: str) -> JSONObject:
    """A working config: the sandbox's service-account token of org 1."""
    return {"baseUrl": base, "apiKey": TOKEN}


router = APIRouter()
router.include_router(public)
router.include_router(api)
EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    expected=expected,
    default_volume={
        "dashboards": 120,
        "folders": 12,
        "subfolders": 4,
        "revision": 0,
        "edits": 0,
        "deletions": 0,
        "flat": 0,
    },
    faults=frozenset(
        ("rate_limit", "server_error", "unavailable", "truncate", "drop", "slow", "mutate")
    ),
    error_body=error_body,
    not_found=not_found,
)

"""Grafana: the dashboards of one organization of your Grafana (self-hosted or Cloud).

API docs: https://grafana.com/docs/grafana/latest/developers/http_api/   Emulator: inflow.sandbox.grafana
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import orjson
from pydantic import Field, HttpUrl, SecretStr, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from inflow.connectors.spec import (
    Action,
    Asset,
    AuthSpec,
    Basic,
    Bearer,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    Kind,
    PageNumber,
    Resolution,
    Stream,
)
from inflow.errors import CredentialsError, InflowError

if TYPE_CHECKING:
    import httpx


class GrafanaConfig(ConnectorConfig):
    base_url: HttpUrl = Field(
        title="Grafana URL",
        description="The address you open Grafana at, sub-path included "
        "(https://grafana.example.com/grafana, https://<stack>.grafana.net).",
    )
    api_key: SecretStr | None = Field(
        None,
        title="Service account token",
        min_length=1,
        description="A service account token (glsa_…) or a legacy API key; "
        "Grafana Cloud access-policy tokens (glc_…) do not work here.",
    )
    username: str | None = Field(None, title="Username", min_length=1)
    password: SecretStr | None = Field(None, title="Password", min_length=1)
    org_id: int | None = Field(
        None,
        title="Organization id",
        ge=1,
        description="Read this organization (a token's own organization; any of a user's).",
    )

    @model_validator(mode="after")
    def one_way_to_sign_in(self) -> Self:
        """A token, or a username with its password: exactly one of the two."""
        problem: tuple[str, str] | None = None
        if self.api_key is not None and (self.username or self.password):
            problem = ("apiKey", "give a token or a username and password, not both")
        elif self.api_key is None and self.username is None and self.password is None:
            problem = ("apiKey", "give a service account token, or a username and password")
        elif self.api_key is None and self.password is None:
            problem = ("password", "the password of this username is required")
        elif self.api_key is None and self.username is None:
            problem = ("username", "the username of this password is required")
        if problem is None:
            return self
        error = PydanticCustomError("grafana_sign_in", problem[1])
        raise ValidationError.from_exception_data(
            type(self).__name__, [InitErrorDetails(type=error, loc=(problem[0],), input=None)]
        )


def sign_in(config: GrafanaConfig) -> AuthSpec:
    """Bearer for a token, Basic for a user (self-hosted Grafana only)."""
    if config.api_key is not None:
        return Bearer("{config.api_key}")
    return Basic("{config.username}", "{config.password}")


# Grafana's errutil ids (pkg/services/authn/clients): say what to fix, not just "401".
REFUSALS = {
    "api-key.invalid": "the token is not valid in this Grafana: create a service account "
    "token in it (Grafana Cloud access-policy tokens, glc_…, do not work)",
    "api-key.expired": "the token has expired: create a new service account token",
    "api-key.revoked": "the token was revoked: create a new service account token",
    "api-key.organization-mismatch": "the token belongs to another organization than "
    "orgId: leave orgId empty or use a token of that organization",
    "password-auth.failed": "Grafana refused the username and password (it locks a user "
    "after repeated failures, so Inflow does not retry)",
}


def refusal(response: httpx.Response) -> Resolution | None:
    """A 401 with Grafana's `messageId` becomes a message naming the fix. A dashboard that is
    gone by the time it is read (deleted after the search listed it) is no dashboard."""
    if response.status_code == 404 and "/api/dashboards/uid/" in response.request.url.path:
        return Resolution(Action.IGNORE, Kind.NOT_FOUND, "dashboard deleted since the search")
    if response.status_code != 401:
        return None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    fix = REFUSALS.get(body.get("messageId", "")) if isinstance(body, dict) else None
    if fix is None:
        return None
    return Resolution(Action.REFRESH_AUTH, Kind.AUTH, f"{fix} ({body.get('message')})")


def absolute(base: str, path: str) -> str:
    """A hit's URL on the instance. A sub-path Grafana writes the sub-path into it already."""
    parts = urlsplit(base)
    prefix = parts.path.rstrip("/")
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        return f"{parts.scheme}://{parts.netloc}{path}"
    return base.rstrip("/") + path


def saved_at(text: str) -> datetime:
    """`meta.updated` (RFC 3339, `Z` or an offset); without one it is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def dashboard(body: Mapping[str, Any], ctx: Context) -> Iterator[Asset]:
    """One dashboard as `/api/dashboards/uid/{uid}` gives it (its search hit is the parent).

    Search hits carry no version or update time, so each dashboard is read: its `meta.version`
    and `meta.updated` make a panel-only edit an update and an unchanged dashboard unchanged.
    """
    meta, model = body["meta"], body["dashboard"]
    folder_uid = meta.get("folderUid") or None  # "" (and "General"): the root level
    yield Asset(
        external_id=model["uid"],
        kind="dashboard",
        name=model["title"],
        url=absolute(str(ctx.config.base_url), meta["url"]),
        folder=meta.get("folderTitle") if folder_uid else None,
        updated_at=saved_at(meta["updated"]),
        extra={
            "uid": model["uid"],
            "tags": sorted(model.get("tags") or []),  # the order Grafana lists tags in varies
            "folderUid": folder_uid,
            "version": meta["version"],
            # the org (its search hit's): one instance's orgs may reuse a uid
            "orgId": (ctx.parent or {}).get("orgId"),
        },
    )


def folder(item: Mapping[str, Any], ctx: Context) -> Iterator[Asset]:
    """One folder of the tree; `parentUid` names its parent folder (none: the top level)."""
    uid = item["uid"]
    yield Asset(
        external_id=uid,  # folders and dashboards share Grafana's uid space (one table)
        kind="folder",
        name=item["title"],
        url=absolute(str(ctx.config.base_url), f"/dashboards/f/{uid}/"),
        extra={"uid": uid, "parentUid": item.get("parentUid") or None},
    )


FOLDER_PAGE = 1000  # `/api/folders`' default page; it pages with `limit` and `page`


async def folder_tree(ctx: Context) -> AsyncIterator[list[Mapping[str, Any]]]:
    """Every folder, top level first, then each folder's children (`?parentUid=`), a page at a
    time: one request per folder (Grafana has no call listing a whole tree with parents).

    A Grafana with nested folders off ignores `parentUid` and lists every folder again (a
    folder has one parent, so children already seen can only mean that): the walk stops there,
    the first listing held them all."""
    queue: deque[str | None] = deque([None])
    seen: set[str] = set()
    while queue:
        parent = queue.popleft()
        page = 1
        while True:
            params: dict[str, Any] = {"limit": FOLDER_PAGE, "page": page}
            if parent is not None:
                params["parentUid"] = parent
            rows = await ctx.get_json("/api/folders", params=params)
            if parent is not None and rows and all(r.get("uid") in seen for r in rows):
                return  # nested folders off: every folder came with the top level
            fresh: list[Mapping[str, Any]] = [
                {**r, "parentUid": r.get("parentUid") or parent}
                for r in rows
                if r.get("uid") not in seen
            ]
            seen.update(str(r.get("uid")) for r in fresh)
            queue.extend(str(r["uid"]) for r in fresh if r.get("uid"))
            yield fresh
            if len(rows) < FOLDER_PAGE:
                break
            page += 1


async def check(ctx: Context) -> list[CheckStep]:
    """Health (no auth: proves only the URL), then the credentials' org, then a search."""
    steps: list[CheckStep] = []
    name = "Grafana reachable"
    try:
        health = await ctx.get_json("/api/health")
        if not isinstance(health, dict):
            return [CheckStep(name, False, "no Grafana answers at this URL (check the sub-path)")]
        version = str(health.get("version") or "unknown")
        if health.get("database") != "ok":
            return [CheckStep(name, False, f"Grafana {version} reports its database failing")]
        steps.append(CheckStep(name, True, f"Grafana {version}", details={"version": version}))
        name = "authenticated"
        org = await ctx.get_json("/api/org")
        message = f"signed in to organization {org.get('name')!r} (id {org.get('id')})"
        details = {"orgId": org.get("id"), "orgName": org.get("name")}
        steps.append(CheckStep(name, True, message, details=details))
        name = "list dashboards"
        await ctx.get_json("/api/search", params={"type": "dash-db", "limit": 1})
        steps.append(CheckStep(name, True, "dashboards can be listed"))
    except InflowError as exc:
        steps.append(CheckStep(name, False, exc.message, reauth=isinstance(exc, CredentialsError)))
    return steps


# No total and no links: a page shorter than the limit is the last. 5000 is the most Grafana
# serves a page (above: 422); without a limit it silently stops at 1000. A sync costs
# ceil((N + 1) / 5000) search pages + N dashboard reads + one folder listing per folder, and one.
STREAMS = (
    Stream(
        "folders",
        "/api/folders",
        reader=folder_tree,
        parse=folder,
        deletes=True,
        fetchable=False,
    ),
    # Read only for its hits' uids (the dashboards below).
    Stream(
        "search",
        "/api/search",
        params={"type": "dash-db"},
        pages=PageNumber(param="page", size_param="limit", size=5000),
        fetchable=False,
    ),
    Stream(
        "dashboards",
        "/api/dashboards/uid/{parent.uid}",
        parent="search",
        parse=dashboard,
        deletes=True,
        fetchable=False,
    ),
)


def account(config: Mapping[str, Any]) -> str | None:
    """The Grafana instance a source reads (its dashboards' `orgId` names the org in it)."""
    base = str(config.get("baseUrl") or "")
    if not base:
        return None
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


CONNECTOR = Connector(
    slug="grafana",
    title="Grafana",
    category="bi",
    config=GrafanaConfig,
    auth_type="bearer",
    description="Dashboards and folders of a Grafana organization.",
    docs_url="https://grafana.com/docs/grafana/latest/developers/http_api/",
    auth=sign_in,
    checks=(check,),
    streams=STREAMS,
    # Empty or unparsable is ignored by Grafana (no org asked for), so it may always be sent.
    headers={"X-Grafana-Org-Id": "{config.org_id}"},
    classify=refusal,
    account=account,
    extra={"auth_types": ["bearer", "basic"]},
)

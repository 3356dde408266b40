"""Microsoft Power BI: the reports and dashboards of workspaces, read by a service principal.

API docs: https://learn.microsoft.com/rest/api/power-bi/   Emulator: inflow.sandbox.powerbi
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from pydantic import Field, HttpUrl, SecretStr, model_validator

from inflow.connectors.records import AssetKind
from inflow.connectors.spec import (
    Action,
    Asset,
    CheckStep,
    Connector,
    ConnectorConfig,
    Context,
    ItemParser,
    Kind,
    OAuth2ClientCredentials,
    Offset,
    Resolution,
    Stream,
)
from inflow.errors import ConfigError, CredentialsError, InflowError

if TYPE_CHECKING:
    import httpx

MYORG = "/v1.0/myorg"
GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
IS_GUID = re.compile(GUID).fullmatch

# The Microsoft identity platform (Entra ID) v2 client-credentials grant, shared by Microsoft
# APIs: each takes it with its own scope, `replace(MICROSOFT_CLIENT_CREDENTIALS, scope=...)`.
MICROSOFT_CLIENT_CREDENTIALS = OAuth2ClientCredentials(
    token_url="{auth_url}/{config.tenant_id}/oauth2/v2.0/token", auth_method="post"
)
POWERBI_SCOPE = "https://analysis.windows.net/powerbi/api/.default"


class PowerBIConfig(ConnectorConfig):
    tenant_id: str = Field(
        title="Directory (tenant) ID",
        pattern=rf"^(?:{GUID}|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)$",
        description="The tenant GUID or a verified domain (contoso.onmicrosoft.com).",
    )
    client_id: str = Field(title="Application (client) ID", pattern=rf"^{GUID}$")
    client_secret: SecretStr = Field(title="Client secret (its Value)", min_length=1)
    workspace_ids: list[Annotated[str, Field(pattern=rf"^{GUID}$")]] = Field(
        default_factory=list,
        title="Workspace IDs",
        description="Only these workspaces; empty: every workspace the app is a member of.",
    )
    access_type: Literal["api", "sdk", "embed", "public"] = Field("api", title="Access type")
    embed_url: str | None = Field(None, title="Embed URL", description="For sdk and embed.")
    public_url: str | None = Field(None, title="Publish-to-web URL", description="For public.")
    base_url: HttpUrl = Field(HttpUrl("https://api.powerbi.com"), title="API URL")
    auth_url: HttpUrl = Field(HttpUrl("https://login.microsoftonline.com"), title="Login URL")

    @model_validator(mode="after")
    def _link_for_access_type(self) -> Self:
        if self.access_type == "embed" and not self.embed_url:
            raise ValueError("embedUrl is required when accessType is embed")
        if self.access_type == "public" and not self.public_url:
            raise ValueError("publicUrl is required when accessType is public")
        return self


# ---------------------------------------------------------------- errors and their fixes

ADD_TO_WORKSPACE = (
    "add the app to the workspace as Member or Admin (workspace > Manage access); new access "
    "can take a few minutes to apply"
)
SP_DISABLED = (
    "Power BI refused this service principal (PowerBINotAuthorizedException): a Fabric admin "
    "must enable the tenant setting 'Service principals can use Fabric APIs' (formerly 'Allow "
    "service principals to use Power BI APIs') for this app or a security group holding it; "
    "changes take about 15 minutes"
)
SIGN_IN_FIXES = {  # AADSTS code → what the user must change
    "7000215": "the client secret is wrong: enter the secret's Value, not its Secret ID",
    "7000222": "the client secret has expired: create a new one (Certificates & secrets)",
    "7000218": "no client secret was sent: enter the client secret",
    "700016": "no app with this client ID in this tenant: check the client and tenant IDs",
    "90002": "the tenant does not exist: check the Directory (tenant) ID",
}


def _error_code(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    return str(error.get("code") or (error.get("pbi.error") or {}).get("code") or "")


def classify(response: httpx.Response) -> Resolution | None:
    """Power BI's own refusals: an expired token is a 403 (refresh it), a refused service
    principal a 401 with a valid token (an admin setting, not a reconnect)."""
    if response.status_code not in (401, 403, 404):
        return None
    code = _error_code(response)
    if response.status_code == 403 and code == "TokenExpired":
        return Resolution(Action.REFRESH_AUTH, Kind.AUTH, "the access token expired (TokenExpired)")
    if code == "PowerBINotAuthorizedException":
        return Resolution(Action.FAIL, Kind.PERMISSION, SP_DISABLED)
    if response.status_code == 403:
        return Resolution(
            Action.FAIL, Kind.PERMISSION, f"access denied ({code}): {ADD_TO_WORKSPACE}"
        )
    if code in ("PowerBIEntityNotFound", "ItemNotFound"):  # also what an unseen item gets
        return Resolution(
            Action.FAIL, Kind.NOT_FOUND, f"not found or not visible: {ADD_TO_WORKSPACE}"
        )
    return None


def failed(name: str, exc: InflowError) -> CheckStep:
    """A failed step; an Entra ID refusal (AADSTS code) is the sign-in step, with its fix."""
    found = re.search(r"AADSTS(\d+): ([^\r\n(]*)", exc.message)
    if found is None:
        return CheckStep(name, False, exc.message, reauth=isinstance(exc, CredentialsError))
    code, text = found.groups()
    fix = SIGN_IN_FIXES.get(code, text.strip())
    message = f"Entra ID refused the app's sign-in (AADSTS{code}): {fix}"
    return CheckStep("token acquired", False, message, reauth=code in SIGN_IN_FIXES)


# ---------------------------------------------------------------- checks per access type

EMBED_HOSTS = ("app.powerbigov.us", "app.high.powerbigov.us", "app.mil.powerbigov.us")


def embed_target(url: str, config: Any, *, sdk: bool) -> tuple[str, str | None] | str:
    """(reportId, groupId) of a report embed URL, or what is wrong with it (powerbi-client's
    rules: https, a Power BI host, no `autoAuth=true` for the SDK)."""
    parts = urlsplit(url.strip())
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    host = (parts.hostname or "").lower()
    if parts.scheme != "https":
        return "the embed URL must start with https://"
    if not (host.endswith((".powerbi.com", ".fabric.microsoft.com", ".powerbi.cn"))) and (
        host not in EMBED_HOSTS
    ):
        return f"{host or 'the URL'} is not a Power BI host (app.powerbi.com)"
    if parts.path.lower() not in ("/reportembed", "/rdlembed"):
        return "the embed URL must be a report's: https://app.powerbi.com/reportEmbed?reportId=…"
    if not IS_GUID(q.get("reportId", "")):
        return "the embed URL needs a reportId=<GUID> parameter"
    if "groupId" in q and not IS_GUID(q["groupId"]):
        return "the embed URL's groupId is not a GUID"
    ctid = q.get("ctid", "")
    if ctid and IS_GUID(config.tenant_id) and ctid.lower() != config.tenant_id.lower():
        return f"the embed URL is for tenant {ctid}, the app signs in to {config.tenant_id}"
    if sdk and q.get("autoAuth", "").lower() == "true":
        return "the JS SDK refuses autoAuth=true URLs: use the report's embedUrl from the API"
    return q["reportId"].lower(), q.get("groupId")


def public_link(url: str) -> CheckStep:
    """A publish-to-web link `https://app.powerbi.com/view?r=<code>` whose code decodes."""
    src = re.search(r'src="([^"]+)"', url)  # the embed code (an iframe) works as well
    parts = urlsplit((src.group(1) if src else url).strip())
    code = parse_qs(parts.query).get("r", [""])[0]
    try:
        key = json.loads(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = None
    if parts.scheme != "https" or not (parts.hostname or "").startswith("app.powerbi"):
        message = "a publish-to-web link starts with https://app.powerbi.com/view?r="
    elif parts.path != "/view" or not isinstance(key, dict) or not IS_GUID(str(key.get("k"))):
        message = "the link's r= code is not a publish-to-web code (File > Embed > Publish to web)"
    else:
        message = (
            f"publish-to-web link for tenant {key.get('t')} is well formed; no API call made: "
            "Power BI cannot confirm a public link is still active without admin API access"
        )
        return CheckStep("publish-to-web link", True, message, details={"publicUrl": url})
    return CheckStep("publish-to-web link", False, message)


async def workspaces(ctx: Context) -> list[Mapping[str, Any]]:
    return list((await ctx.get_json(groups(ctx)))["value"])


async def find_report(ctx: Context, report_id: str, group_id: str | None) -> Mapping[str, Any]:
    """A report by id: in its workspace, or searched in every workspace the app sees."""
    if group_id:
        return dict(await ctx.get_json(f"{MYORG}/groups/{group_id}/reports/{report_id}"))
    for workspace in await workspaces(ctx):
        for item in (await ctx.get_json(f"{MYORG}/groups/{workspace['id']}/reports"))["value"]:
            if item["id"].lower() == report_id:
                return dict(item)
    raise ConfigError(f"no workspace the app can see holds report {report_id}: {ADD_TO_WORKSPACE}")


Seen = dict[str, Any]  # what earlier steps found, for later ones


async def sign_in(ctx: Context, _seen: Seen) -> list[CheckStep]:
    """A token from Entra ID, then Power BI accepting it (availableFeatures needs no scope)."""
    token = CheckStep("token acquired", True, "Entra ID issued a token for Power BI")
    try:
        await ctx.get_json(f"{MYORG}/availableFeatures")
    except InflowError as exc:
        step = failed("Power BI accepts the app", exc)
        return [step] if step.name == token.name else [token, step]
    return [token, CheckStep("Power BI accepts the app", True, "service principals are allowed")]


async def list_workspaces(ctx: Context, seen: Seen) -> list[CheckStep]:
    found = seen["workspaces"] = await workspaces(ctx)
    missing = {w.lower() for w in ctx.config.workspace_ids} - {w["id"].lower() for w in found}
    if missing or not found:
        lacking = f"workspace(s) {', '.join(sorted(missing))}" if missing else "any workspace"
        message = f"the app cannot see {lacking}: {ADD_TO_WORKSPACE}"
        return [CheckStep("workspaces listed", False, message)]
    listed = [{"id": w["id"], "name": w["name"]} for w in found]
    message = f"{len(found)} workspace(s): " + ", ".join(w["name"] for w in found[:5])
    return [CheckStep("workspaces listed", True, message, details={"workspaces": listed})]


async def list_reports(ctx: Context, seen: Seen) -> list[CheckStep]:
    first = seen["workspaces"][0]
    seen["reports"] = (await ctx.get_json(f"{MYORG}/groups/{first['id']}/reports"))["value"]
    message = f"{len(seen['reports'])} report(s) in '{first['name']}'"
    return [CheckStep("reports listed", True, message)]


async def report_exists(ctx: Context, seen: Seen) -> list[CheckStep]:
    report = seen["report"] = await find_report(ctx, *seen["target"])
    return [CheckStep("report exists", True, f"report '{report['name']}' exists")]


async def embed_token(ctx: Context, seen: Seen) -> list[CheckStep]:
    """An embed token (GenerateToken V2) and the powerbi-client embed configuration."""
    name = "embed token generated"
    if seen["target"] is not None:
        report = await find_report(ctx, *seen["target"])
    elif seen["reports"]:
        report = seen["reports"][0]
    else:
        return [CheckStep(name, False, "no report to embed in the first workspace")]
    body: dict[str, Any] = {"reports": [{"id": report["id"]}]}
    if report.get("datasetId"):  # a Power BI report's dataset must come along (RDL has none)
        body["datasets"] = [{"id": report["datasetId"]}]
    token = await ctx.post_json(f"{MYORG}/GenerateToken", json=body)
    embed = {
        "type": "report",
        "id": report["id"],
        "embedUrl": report["embedUrl"],
        "accessToken": token["token"],  # the embed token, never the Entra ID token
        "tokenType": "Embed",
        "expiration": token["expiration"],
    }
    message = f"embed token for '{report['name']}' valid until {token['expiration']}"
    return [CheckStep(name, True, message, details=embed)]


Probe = Callable[[Context, Seen], Awaitable[list[CheckStep]]]
PROBES: dict[str, tuple[tuple[str, Probe], ...]] = {  # failure step name, probe
    "api": (("workspaces listed", list_workspaces), ("reports listed", list_reports)),
    "sdk": (
        ("workspaces listed", list_workspaces),
        ("reports listed", list_reports),
        ("embed token generated", embed_token),
    ),
    "embed": (("report exists", report_exists),),
}


async def check(ctx: Context) -> list[CheckStep]:
    """Each access type is tested for what it really needs; the first failing step ends it."""
    config = ctx.config
    if config.access_type == "public":
        return [public_link(config.public_url)]
    steps: list[CheckStep] = []
    seen: Seen = {"target": None}
    if config.embed_url:
        target = embed_target(config.embed_url, config, sdk=config.access_type == "sdk")
        if isinstance(target, str):
            return [CheckStep("embed URL", False, target)]
        seen["target"] = target
        steps.append(CheckStep("embed URL", True, "the URL embeds a Power BI report"))
    for name, probe in (("token acquired", sign_in), *PROBES[config.access_type]):
        try:
            steps += await probe(ctx, seen)
        except InflowError as exc:
            steps.append(failed(name, exc))
        if not steps[-1].ok:
            break
    return steps


# ---------------------------------------------------------------- streams


def groups(ctx: Context) -> str:
    """The workspaces listing: only the chosen ones (an OData filter), or every one the app is
    a member of (a service principal never has a personal "My workspace").

    A public source's sync reads nothing while its link fails the connection test: the sync
    fails with the test's reason before any request."""
    if ctx.config.access_type == "public":
        link = public_link(ctx.config.public_url)
        if not link.ok:
            raise ConfigError(f"the publish-to-web link is not valid: {link.message}")
    chosen = " or ".join(f"id eq '{w.lower()}'" for w in ctx.config.workspace_ids)
    return f"{MYORG}/groups" + (f"?{urlencode({'$filter': chosen})}" if chosen else "")


def asset(kind: AssetKind) -> ItemParser:
    def parse(item: Mapping[str, Any], ctx: Context) -> Iterator[Asset]:
        workspace = ctx.parent or {}
        extra = {"workspaceId": workspace.get("id"), "workspaceName": workspace.get("name")}
        if kind == "report":  # dashboards say displayName; paginated reports have no dataset
            extra |= {"datasetId": item.get("datasetId"), "reportType": item.get("reportType")}
        yield Asset(
            external_id=item["id"],
            kind=kind,
            name=item.get("name") or item.get("displayName") or item["id"],
            url=item.get("webUrl"),
            embed_url=item.get("embedUrl"),
            folder=workspace.get("name"),
            extra=extra,
        )

    return parse


# Admin group listings cap $top at 5000; the member listing documents no cap, but pages alike.
GROUPS = Offset(param="$skip", limit_param="$top", limit=5000)
STREAMS = (
    Stream("workspaces", f"{MYORG}/groups", records="value", pages=GROUPS, target=groups),
    # Neither listing pages nor carries timestamps: each sync reads them whole and diffs.
    Stream(
        "reports",
        f"{MYORG}/groups/{{parent.id}}/reports",
        records="value",
        parse=asset("report"),
        parent="workspaces",
        deletes=True,
        fetchable=False,
    ),
    Stream(
        "dashboards",
        f"{MYORG}/groups/{{parent.id}}/dashboards",
        records="value",
        parse=asset("dashboard"),
        parent="workspaces",
        deletes=True,
        fetchable=False,
    ),
)


def account(config: Mapping[str, Any]) -> str | None:
    """The tenant a source reads (report and dashboard ids are GUIDs, unique in it), per cloud."""
    tenant = str(config.get("tenantId") or "").lower()
    base = str(config.get("baseUrl") or "https://api.powerbi.com").rstrip("/").lower()
    return f"{base}#tenant={tenant}" if tenant else None


CONNECTOR = Connector(
    slug="powerbi",
    title="Power BI",
    category="bi",
    config=PowerBIConfig,
    auth_type="oauth2_client_credentials",
    description="Reports and dashboards of Power BI workspaces, read by a service principal.",
    docs_url="https://learn.microsoft.com/rest/api/power-bi/",
    base_url="https://api.powerbi.com",
    auth=replace(MICROSOFT_CLIENT_CREDENTIALS, scope=POWERBI_SCOPE),
    checks=(check,),
    streams=STREAMS,
    classify=classify,
    account=account,
)

"""Emulator of the Power BI REST API and its Entra ID token endpoint, prefix `/powerbi`.

OpenID discovery: `GET /{tenant}/v2.0/.well-known/openid-configuration` (what MSAL reads first;
give it `instance_discovery=False`: its instance discovery lives on the login host's root).
Token: `POST /{tenant}/oauth2/v2.0/token` (client credentials, form or Basic client auth, scope
`https://analysis.windows.net/powerbi/api/.default`, no refresh token); refusals are Entra's
bodies with their AADSTS code. API (`Authorization: Bearer`): `GET /v1.0/myorg/availableFeatures`,
`GET /v1.0/myorg/groups` (`$filter` on `id`/`name`, `$top`, `$skip`), `GET .../groups/{id}/reports`
and `.../reports/{id}`, `GET .../groups/{id}/dashboards` (not paged), `POST
/v1.0/myorg/GenerateToken` (V2). Errors are `{"error": {"code", "message"}}`: an expired token is
403 `TokenExpired`, a missing or unknown one a bare 401 (unverified), an id the caller cannot see
404 `PowerBIEntityNotFound`, 429 `{"message"}` with `Retry-After` (seconds).

Volume keys: `workspaces`; `reports` and `dashboards` per workspace (every fifth report is a
paginated one: no `datasetId`, an `rdlEmbed` URL); `spDisabled` (1: the tenant setting "Service
principals can use Fabric APIs" is off: every API call is 401 `PowerBINotAuthorizedException`);
`spNoAccess` (1: the service principal is a member of no workspace); `secretExpired` (1:
AADSTS7000222); `ratePerSecond`.
"""

from __future__ import annotations

import base64
import hmac
import math
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated
from urllib.parse import parse_qsl, unquote

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from inflow.sandbox.data import iso_z, pick, stable_hash
from inflow.sandbox.emulator import (
    Emulator,
    JSONObject,
    JSONValue,
    Reject,
    base_url,
    json_response,
)
from inflow.sandbox.oauth import CLIENT_CREDENTIALS, OAuthServer, TokenInfo
from inflow.sandbox.state import EmulatorState, clock_now, get_state
from inflow.sandbox.tokens import AccessToken, Grant, new_token

SLUG = "powerbi"
TENANT_ID = "6f0c2a41-5d3e-4b7a-9c1d-000000000b1a"
TENANT_DOMAIN = "inflowsandbox.onmicrosoft.com"
CLIENT_ID = "2b7d9e10-4c6a-4f3b-8e2d-00000000c1d0"
CLIENT_SECRET = "pbi8Q~sandbox.client.secret.value.0001"  # noqa: S105 (the sandbox's fake key)
RESOURCE = "https://analysis.windows.net/powerbi/api"
SCOPE = f"{RESOURCE}/.default"
TOKEN_TTL_S = 3599
WEB = "https://app.powerbi.com"
ODATA = "http://wabi-west-europe-redirect.analysis.windows.net/v1.0/myorg"
TEAMS = ("Sales", "Marketing", "Finance", "Operations", "Product", "Support", "People", "Growth")
ADJECTIVES = ("Weekly", "Monthly", "Quarterly", "Regional", "Executive", "Daily")
NOUNS = ("revenue", "pipeline", "churn", "forecast", "margin", "inventory", "traffic")
# `ENTRA` only checks bearer tokens (expiry, `tokenTtlS`, the `expired_token` fault); the token
# endpoint below is Entra's own, with its tenant in the path and its AADSTS refusals.
ENTRA = OAuthServer(
    slug=SLUG,
    clients={CLIENT_ID: CLIENT_SECRET},
    scopes=(SCOPE,),
    require_pkce=False,
    grant_types=frozenset({CLIENT_CREDENTIALS}),
    token_ttl_s=TOKEN_TTL_S,
)


def guid(seed: int, *key: object) -> str:
    """A deterministic version-4 GUID for an entity."""
    value = (stable_hash(seed, *key, "hi") << 64) | stable_hash(seed, *key, "lo")
    return str(uuid.UUID(int=value, version=4))


# ---------------------------------------------------------------- errors


def api_error(status: int, code: str, message: str | None = None) -> Reject:
    """Power BI's `{"error": {"code", "message"}}` (entity and auth errors add `pbi.error`)."""
    body: dict[str, JSONValue] = {"code": code}
    if message is None:
        body["pbi.error"] = {"code": code, "parameters": {}, "details": [], "exceptionCulprit": 1}
    else:
        body["message"] = message
    return Reject(json_response({"error": body}, status, {"RequestId": str(uuid.uuid4())}))


def not_found(_path: str) -> tuple[int, JSONObject]:
    """Power BI's answer to an entity (or a route) it does not have."""
    entity: JSONObject = {
        "code": "PowerBIEntityNotFound",
        "parameters": {},
        "details": [],
        "exceptionCulprit": 1,
    }
    return 404, {"error": {"code": "PowerBIEntityNotFound", "pbi.error": entity}}


def error_body(status: int, message: str) -> JSONObject:
    """Body of an injected fault: a 429 carries only `message`, as Power BI's does."""
    if status == 429:
        return {
            "message": "You have exceeded the amount of requests allowed in the current time "
            "frame and further requests will fail."
        }
    code = {500: "InternalServerError", 503: "ServiceUnavailable"}.get(status, "Error")
    return {"error": {"code": code, "message": message}}


def entra_error(request: Request, status: int, error: str, code: int, text: str) -> Response:
    """An Entra ID token-endpoint refusal: the AADSTS code leads `error_description`."""
    when = datetime.fromtimestamp(clock_now(request), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    body: JSONObject = {
        "error": error,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {when}",
        "error_codes": [code],
        "timestamp": when,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return json_response(body, status, {"Cache-Control": "no-store"})


# ---------------------------------------------------------------- token endpoint


def _client_auth(request: Request, form: Mapping[str, str]) -> tuple[str, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(encoded, validate=True).decode()
        except ValueError:
            return "", None
        client_id, _, secret = (unquote(p) for p in pair.partition(":"))
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret")


def _refusal(request: Request, tenant: str, form: Mapping[str, str]) -> Response | None:
    """Entra's answer to a bad client-credentials request, checked in Entra's order."""
    if tenant.lower() not in (TENANT_ID, TENANT_DOMAIN):
        text = f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        return entra_error(request, 400, "invalid_request", 90002, text)
    for name in ("grant_type", "client_id", "scope"):
        if not form.get(name) and not (name == "client_id" and "authorization" in request.headers):
            text = f"The request body must contain the following parameter: '{name}'."
            return entra_error(request, 400, "invalid_request", 900144, text)
    if form["grant_type"] != CLIENT_CREDENTIALS:
        text = f"The app requested an unsupported grant type '{form['grant_type']}'."
        return entra_error(request, 400, "unsupported_grant_type", 70003, text)
    client_id, secret = _client_auth(request, form)
    if client_id != CLIENT_ID:
        text = (
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant}'. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You may have "
            "sent your authentication request to the wrong tenant."
        )
        return entra_error(request, 400, "unauthorized_client", 700016, text)
    if not secret:
        text = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
        return entra_error(request, 401, "invalid_client", 7000218, text)
    if not hmac.compare_digest(secret.encode(), CLIENT_SECRET.encode()):
        text = (
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        )
        return entra_error(request, 401, "invalid_client", 7000215, text)
    if get_state(request, SLUG).volume_of("secretExpired"):
        text = f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret"
        return entra_error(request, 401, "invalid_client", 7000222, text)
    scope = form["scope"]
    if scope != SCOPE:
        if scope.endswith("/.default"):
            text = f"The resource principal named {scope[: -len('/.default')]} was not found in the tenant named {tenant}."
            return entra_error(request, 400, "invalid_resource", 500011, text)
        text = f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
        return entra_error(request, 400, "invalid_scope", 1002012, text)
    return None


entra = APIRouter(tags=[f"{SLUG} entra"])
OIDC_CLAIMS = (
    "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
    "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
    "name", "tid", "ver", "at_hash", "c_hash", "email",
)  # fmt: skip


@entra.get("/{tenant}/v2.0/.well-known/openid-configuration")
async def openid_configuration(request: Request, tenant: str) -> Response:
    """Entra's OpenID Connect discovery document (v2), which MSAL reads before it asks for a
    token: the endpoints name the tenant's GUID whichever alias the path used."""
    if tenant.lower() not in (TENANT_ID, TENANT_DOMAIN):
        text = f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        response = entra_error(request, 400, "invalid_tenant", 90002, text)
        del response.headers["cache-control"]
        return response
    root = f"{base_url(request, SLUG)}/{TENANT_ID}"
    body: JSONObject = {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base_url(request, SLUG)}/{TENANT_ID}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": list(OIDC_CLAIMS),
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    return json_response(body)


@entra.post("/{tenant}/oauth2/v2.0/token")
async def token(request: Request, tenant: str) -> Response:
    """Entra ID v2 token endpoint: the client-credentials grant."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    refused = _refusal(request, tenant, form)
    if refused is not None:
        return refused
    state, now = get_state(request, SLUG), clock_now(request)
    ttl = state.faults.token_ttl_s or TOKEN_TTL_S
    access = new_token("eyJ0eXAiOiJKV1Qi.")
    grant = Grant(CLIENT_ID, (SCOPE,))
    state.tokens.access[access] = AccessToken(grant, issued_at=now, expires_at=now + ttl)
    body: JSONObject = {
        "token_type": "Bearer",
        "expires_in": math.ceil(ttl),
        "ext_expires_in": math.ceil(ttl),
        "access_token": access,
    }
    return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


# ---------------------------------------------------------------- data


def group(seed: int, i: int) -> JSONObject:
    dedicated = i % 2 == 0
    body: dict[str, JSONValue] = {
        "id": guid(seed, "group", i),
        "isReadOnly": False,
        "isOnDedicatedCapacity": dedicated,
        "name": f"{pick(stable_hash(seed, 'team', i), TEAMS)} analytics {i + 1}",
    }
    if dedicated:
        body |= {"capacityId": guid(seed, "capacity"), "defaultDatasetStorageFormat": "Small"}
    return body


def report(seed: int, i: int, j: int) -> JSONObject:
    gid, rid = guid(seed, "group", i), guid(seed, "report", i, j)
    h = stable_hash(seed, "report", i, j)
    name = f"{pick(h, ADJECTIVES)} {pick(h >> 8, NOUNS)} {j + 1}"
    if (j + 1) % 5 == 0:  # paginated (RDL): no dataset, its own web and embed paths
        return {
            "id": rid,
            "reportType": "PaginatedReport",
            "name": f"{name} (RDL)",
            "webUrl": f"{WEB}/groups/{gid}/rdlreports/{rid}",
            "embedUrl": f"{WEB}/rdlEmbed?reportId={rid}&groupId={gid}",
            "isOwnedByMe": False,
            "users": [],
            "subscriptions": [],
        }
    return {
        "id": rid,
        "reportType": "PowerBIReport",
        "name": name,
        "webUrl": f"{WEB}/groups/{gid}/reports/{rid}",
        "embedUrl": f"{WEB}/reportEmbed?reportId={rid}&groupId={gid}",
        "isFromPbix": True,
        "isOwnedByMe": False,
        "datasetId": guid(seed, "dataset", i, j // 2),
        "datasetWorkspaceId": gid,
        "users": [],
        "subscriptions": [],
    }


def dashboard(seed: int, i: int, k: int) -> JSONObject:
    gid, did = guid(seed, "group", i), guid(seed, "dashboard", i, k)
    return {
        "id": did,
        "displayName": f"{pick(stable_hash(seed, 'dashboard', i, k), NOUNS).title()} overview",
        "isReadOnly": False,
        "webUrl": f"{WEB}/groups/{gid}/dashboards/{did}",
        "embedUrl": f"{WEB}/dashboardEmbed?dashboardId={did}&groupId={gid}",
        "users": [],
        "subscriptions": [],
    }


@lru_cache(maxsize=32)
def group_index(seed: int, count: int) -> dict[str, int]:
    return {guid(seed, "group", i): i for i in range(count)}


def visible_groups(state: EmulatorState) -> list[JSONObject]:
    """The workspaces the service principal is a member of."""
    if state.volume_of("spNoAccess"):
        return []
    return [group(state.seed, i) for i in range(state.volume_of("workspaces"))]


def require_group(state: EmulatorState, group_id: str) -> int:
    """A visible workspace's index; Power BI answers 404 for one the caller cannot see."""
    index = group_index(state.seed, state.volume_of("workspaces")).get(group_id.lower())
    if index is None or state.volume_of("spNoAccess"):
        raise api_error(404, "PowerBIEntityNotFound")
    return index


def find_report(state: EmulatorState, report_id: str) -> tuple[int, JSONObject] | None:
    for i in range(0 if state.volume_of("spNoAccess") else state.volume_of("workspaces")):
        for j in range(state.volume_of("reports")):
            if guid(state.seed, "report", i, j) == report_id.lower():
                return i, report(state.seed, i, j)
    return None


# ---------------------------------------------------------------- API


def refuse_token(reason: str) -> Response:
    """Power BI refuses an expired Entra token with 403 `TokenExpired`, not 401."""
    if reason == "expired":
        body = {
            "error": {
                "code": "TokenExpired",
                "message": "Access token has expired, resubmit with a new access token",
            }
        }
        return json_response(body, 403)
    return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm=""'})


def caller(
    request: Request, info: Annotated[TokenInfo, Depends(ENTRA.dependency(refuse_token))]
) -> TokenInfo:
    """A valid token, and a tenant that lets service principals use the API."""
    if get_state(request, SLUG).volume_of("spDisabled"):
        raise api_error(401, "PowerBINotAuthorizedException")
    return info


Caller = Annotated[TokenInfo, Depends(caller)]
api = APIRouter(tags=[SLUG])


def odata(context: str, **body: JSONValue) -> Response:
    return json_response(
        {"@odata.context": f"{ODATA}/{context}", **body}, headers={"RequestId": str(uuid.uuid4())}
    )


def query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise api_error(400, "InvalidRequest", f"Invalid value '{raw}' for query option {name}")
    return int(raw)


FILTER_CLAUSE = re.compile(
    r"\s*(?:(?P<field>id|name)\s+eq\s+'(?P<value>[^']*)'|contains\(name,\s*'(?P<part>[^']*)'\))\s*"
)


def odata_filter(text: str) -> list[tuple[str, str]]:
    """`id eq '…'`, `name eq '…'` and `contains(name,'…')` joined by `or`."""
    clauses: list[tuple[str, str]] = []
    for clause in re.split(r"\s+or\s+", text.strip()):
        match = FILTER_CLAUSE.fullmatch(clause)
        if match is None:
            raise api_error(400, "InvalidRequest", f"Invalid OData $filter: '{text}'")
        if match["part"] is not None:
            clauses.append(("contains", match["part"]))
        else:
            clauses.append((match["field"], match["value"]))
    return clauses


def matches(item: JSONObject, clauses: Sequence[tuple[str, str]]) -> bool:
    name, ident = str(item["name"]), str(item["id"])
    for kind, value in clauses:
        if (
            (kind == "id" and ident == value.lower())
            or (kind == "name" and name == value)
            or (kind == "contains" and value.lower() in name.lower())
        ):
            return True
    return False


@api.get("/v1.0/myorg/availableFeatures")
async def available_features(_caller: Caller) -> Response:
    """Features of the caller's tenant (the cheapest "is this token accepted" probe)."""
    feature = {"name": "embedTrial", "state": "Enabled", "extendedState": "Enabled"}
    return odata("$metadata#features", features=[{**feature, "additionalInfo": {"usage": 0}}])


@api.get("/v1.0/myorg/groups")
async def get_groups(request: Request, _caller: Caller) -> Response:
    """Workspaces the caller is a member of: OData `$filter`, then `$skip` and `$top`."""
    items = visible_groups(get_state(request, SLUG))
    if "$filter" in request.query_params:
        clauses = odata_filter(request.query_params["$filter"])
        items = [g for g in items if matches(g, clauses)]
    skip, top = query_int(request, "$skip") or 0, query_int(request, "$top")
    items = items[skip : None if top is None else skip + top]
    return odata("$metadata#groups", value=items)


@api.get("/v1.0/myorg/groups/{group_id}/reports")
async def get_reports(request: Request, group_id: str, _caller: Caller) -> Response:
    """Every report of a workspace, in one response (this endpoint does not page)."""
    state = get_state(request, SLUG)
    i = require_group(state, group_id)
    value = [report(state.seed, i, j) for j in range(state.volume_of("reports"))]
    return odata(f"groups/{group_id}/$metadata#reports", value=value)


@api.get("/v1.0/myorg/groups/{group_id}/reports/{report_id}")
async def get_report(request: Request, group_id: str, report_id: str, _caller: Caller) -> Response:
    """One report of a workspace, or 404."""
    state = get_state(request, SLUG)
    i = require_group(state, group_id)
    for j in range(state.volume_of("reports")):
        if guid(state.seed, "report", i, j) == report_id.lower():
            return odata(f"groups/{group_id}/$metadata#reports/$entity", **report(state.seed, i, j))
    raise api_error(404, "PowerBIEntityNotFound")


@api.get("/v1.0/myorg/groups/{group_id}/dashboards")
async def get_dashboards(request: Request, group_id: str, _caller: Caller) -> Response:
    """Every dashboard of a workspace, in one response."""
    state = get_state(request, SLUG)
    i = require_group(state, group_id)
    value = [dashboard(state.seed, i, k) for k in range(state.volume_of("dashboards"))]
    return odata(f"groups/{group_id}/$metadata#dashboards", value=value)


def _ids(body: Mapping[str, JSONValue], key: str) -> list[str]:
    items = body.get(key) or []
    if not isinstance(items, list) or not all(
        isinstance(x, dict) and isinstance(x.get("id"), str) for x in items
    ):
        raise api_error(400, "InvalidRequest", f"'{key}' must be a list of objects with an id")
    return [str(x["id"]).lower() for x in items if isinstance(x, dict)]


@api.post("/v1.0/myorg/GenerateToken")
async def generate_token(request: Request, info: Caller) -> Response:
    """An embed token (V2) for reports and datasets; it dies with the Entra token that made it."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise api_error(400, "InvalidRequest", "The request body must be a JSON object")
    reports, datasets = _ids(body, "reports"), _ids(body, "datasets")
    if not reports and not datasets:
        raise api_error(400, "InvalidRequest", "At least one report or dataset is required")
    state = get_state(request, SLUG)
    for report_id in reports:
        found = find_report(state, report_id)
        if found is None:
            raise api_error(404, "PowerBIEntityNotFound")
        dataset = found[1].get("datasetId")
        if isinstance(dataset, str) and dataset not in datasets:
            message = f"Dataset {dataset} of report {report_id} must be listed in 'datasets'"
            raise api_error(400, "InvalidRequest", message)
    lifetime = body.get("lifetimeInMinutes")
    expires = info.expires_at
    if isinstance(lifetime, int) and lifetime > 0:
        expires = min(expires, clock_now(request) + 60 * lifetime)
    return odata(
        "$metadata#Microsoft.PowerBI.ServiceContracts.Api.V1.GenerateTokenResponse",
        token="H4sIAAAAAAAEA" + secrets.token_urlsafe(48),
        tokenId=str(uuid.uuid4()),
        expiration=iso_z(expires),
    )


def expected(state: EmulatorState, _params: Mapping[str, str]) -> JSONObject:
    """How many workspaces, reports (paginated among them) and dashboards the caller sees."""
    workspaces = len(visible_groups(state))
    per = state.volume_of("reports")
    return {
        "workspaces": workspaces,
        "reports": workspaces * per,
        "paginatedReports": workspaces * (per // 5),
        "dashboards": workspaces * state.volume_of("dashboards"),
    }


def credentials(base_url: str) -> JSONObject:
    """A working `powerbi` config: the service principal, API and login both at the sandbox."""
    return {
        "tenantId": TENANT_ID,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "workspaceIds": [],
        "accessType": "api",
        "baseUrl": base_url,
        "authUrl": base_url,
    }


router = APIRouter()
router.include_router(entra)
router.include_router(api)
EMULATOR = Emulator(
    slug=SLUG,
    router=router,
    credentials=credentials,
    expected=expected,
    default_volume={
        "workspaces": 3,
        "reports": 5,
        "dashboards": 2,
        "spDisabled": 0,
        "spNoAccess": 0,
        "secretExpired": 0,
        "ratePerSecond": 0,
    },
    error_body=error_body,
    not_found=not_found,
)

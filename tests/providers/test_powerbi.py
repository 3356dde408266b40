"""Power BI through the API against its emulator: the connection test of each access type
(working and broken, service-principal misconfigurations with their fixes), and syncs of
workspaces' reports and dashboards (complete, idempotent, deletions, chosen workspaces, a token
expiring mid-sync, a 429 storm)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from inflow.sandbox import create_app as create_sandbox
from inflow.sandbox.powerbi import CLIENT_SECRET, TENANT_ID
from inflow.storage.models import Asset
from tests.sync.helpers import (
    SandboxControl,
    create_source,
    health,
    person,
    poll_run,
    start_sync,
    sync_and_wait,
)

# The sync tests' fixtures: the API on a real database, calling the in-process sandbox.
WORKSPACES, REPORTS, DASHBOARDS = 3, 5, 2
API_CHECKS = ["token acquired", "Power BI accepts the app", "workspaces listed", "reports listed"]


class SkewClock:
    """The sandbox's clock: real time plus whatever a test adds (an hour passing mid-sync)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> SkewClock:
    return SkewClock()


@pytest.fixture
def sandbox(clock: SkewClock) -> FastAPI:
    return create_sandbox(clock=clock)


# ---------------------------------------------------------------- helpers


def configure(sb: SandboxControl, **body: Any) -> dict[str, Any]:
    response = sb.http.post("/_sandbox/powerbi/config", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stats(sb: SandboxControl) -> dict[str, Any]:
    result: dict[str, Any] = sb.http.get("/_sandbox/powerbi/stats").json()
    return result


def config(sb: SandboxControl, **override: Any) -> dict[str, Any]:
    """The sandbox's working config (its service principal), with some fields changed."""
    return {**sb.credentials()["powerbi"]["config"], **override}


def upstream(sb: SandboxControl) -> dict[str, list[dict[str, Any]]]:
    """The emulator's workspaces, and the reports and dashboards of each, read directly."""
    creds = config(sb)
    form = {
        "grant_type": "client_credentials",
        "client_id": creds["clientId"],
        "client_secret": creds["clientSecret"],
        "scope": "https://analysis.windows.net/powerbi/api/.default",
    }
    token = sb.http.post(f"/powerbi/{TENANT_ID}/oauth2/v2.0/token", data=form).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    groups = sb.http.get("/powerbi/v1.0/myorg/groups", headers=auth).json()["value"]
    out: dict[str, list[dict[str, Any]]] = {"workspaces": groups, "reports": [], "dashboards": []}
    for group in groups:
        for kind in ("reports", "dashboards"):
            url = f"/powerbi/v1.0/myorg/groups/{group['id']}/{kind}"
            items = sb.http.get(url, headers=auth).json()["value"]
            out[kind] += [{**item, "workspace": group} for item in items]
    return out


def assets(factory, source_id: str) -> dict[str, Asset]:
    with factory() as session:
        rows = session.execute(select(Asset).where(Asset.source_id == uuid.UUID(source_id)))
        return {a.external_id: a for a in rows.scalars()}


def run_check(client, headers, source_id: str) -> dict[str, Any]:
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def checks(result: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(c["name"], c["ok"]) for c in result["checks"]]


def new_source(client, factory, sb, **override: Any) -> tuple[dict[str, str], str]:
    _, headers = person(factory)
    return headers, create_source(client, headers, "powerbi", config(sb, **override))["id"]


def public_link(key: str, tenant: str = TENANT_ID) -> str:
    code = base64.b64encode(json.dumps({"k": key, "t": tenant, "c": 8}).encode()).decode()
    return f"https://app.powerbi.com/view?r={code}"


# ---------------------------------------------------------------- access type: api


def test_api_check_signs_in_and_lists_workspaces_and_reports(client, factory, sb):
    headers, source_id = new_source(client, factory, sb)

    result = run_check(client, headers, source_id)

    assert result["success"], result
    assert checks(result) == [(name, True) for name in API_CHECKS]
    assert "3 workspace(s)" in result["checks"][2]["message"]
    assert f"{REPORTS} report(s)" in result["checks"][3]["message"]
    assert health(client, headers, source_id)["status"] == "ok"


@pytest.mark.parametrize(
    ("override", "volume", "code", "fix"),
    [
        pytest.param({"clientSecret": "wrong~secret"}, {}, "7000215", "not its Secret ID",
                     id="wrong-secret"),
        pytest.param({}, {"secretExpired": 1}, "7000222", "has expired", id="expired-secret"),
        pytest.param({"clientId": "11111111-2222-4333-8444-555555555555"}, {}, "700016",
                     "check the client and tenant IDs", id="unknown-app"),
        pytest.param({"tenantId": "00000000-0000-4000-8000-00000000dead"}, {}, "90002",
                     "Directory (tenant) ID", id="unknown-tenant"),
    ],
)  # fmt: skip
def test_refused_sign_in_names_the_fix_and_needs_reauth(
    client, factory, sb, override, volume, code, fix
):
    configure(sb, volume=volume)
    headers, source_id = new_source(client, factory, sb, **override)

    result = run_check(client, headers, source_id)

    assert not result["success"]
    assert checks(result) == [("token acquired", False)]
    assert f"AADSTS{code}" in result["message"]
    assert fix in result["message"]
    assert "wrong~secret" not in json.dumps(result)
    state = health(client, headers, source_id)
    assert state["status"] == "needs_reauth"
    assert f"AADSTS{code}" in state["message"]


def test_wrong_secret_fails_the_sync_and_asks_to_reconnect(client, factory, sb):
    headers, source_id = new_source(client, factory, sb, clientSecret="wrong~secret")

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert "AADSTS7000215" in run["error"]["message"]
    assert "wrong~secret" not in json.dumps(run)
    assert health(client, headers, source_id)["status"] == "needs_reauth"


def test_service_principals_disabled_by_the_tenant_is_an_admin_fix(client, factory, sb):
    configure(sb, volume={"spDisabled": 1})
    headers, source_id = new_source(client, factory, sb)

    result = run_check(client, headers, source_id)

    assert checks(result) == [("token acquired", True), ("Power BI accepts the app", False)]
    assert "Service principals can use Fabric APIs" in result["message"]
    assert "PowerBINotAuthorizedException" in result["message"]
    state = health(client, headers, source_id)
    assert state["status"] == "failing"  # the credentials are right: an admin must act


def test_app_in_no_workspace_is_told_to_add_it(client, factory, sb):
    configure(sb, volume={"spNoAccess": 1})
    headers, source_id = new_source(client, factory, sb)

    result = run_check(client, headers, source_id)

    assert checks(result) == [(name, True) for name in API_CHECKS[:2]] + [
        ("workspaces listed", False)
    ]
    assert "cannot see any workspace" in result["message"]
    assert "Member or Admin" in result["message"]
    assert health(client, headers, source_id)["status"] == "failing"


def test_a_chosen_workspace_the_app_cannot_see_is_named(client, factory, sb):
    visible = upstream(sb)["workspaces"][0]["id"]
    hidden = "00000000-0000-4000-8000-0000000000aa"
    headers, source_id = new_source(client, factory, sb, workspaceIds=[visible, hidden])

    result = run_check(client, headers, source_id)

    assert checks(result)[-1] == ("workspaces listed", False)
    assert hidden in result["message"]
    assert visible not in result["message"]


# ---------------------------------------------------------------- access type: sdk


def install(client, headers, cfg: dict[str, Any]) -> str:
    response = client.post(
        "/api/marketplace/plugins/powerbi/install", headers=headers, json={"config": cfg}
    )
    assert response.status_code == 201, response.text
    installation: str = response.json()["id"]
    return installation


def plugin_test(client, headers, installation: str) -> dict[str, Any]:
    response = client.post(
        "/api/marketplace/plugins/powerbi/test",
        headers=headers,
        json={"installationId": installation},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def entra_tokens(sandbox: FastAPI) -> set[str]:
    return set(sandbox.state.sandbox.states["powerbi"].tokens.access)


def test_sdk_check_returns_an_embed_configuration_with_an_embed_token(client, factory, sb, sandbox):
    _, headers = person(factory)
    installation = install(client, headers, config(sb, accessType="sdk"))

    result = plugin_test(client, headers, installation)

    assert result["success"], result
    names = [c["name"] for c in result["details"]["checks"]]
    assert names == [*API_CHECKS, "embed token generated"]
    first = upstream(sb)["reports"][0]
    embed = {k: result["details"][k] for k in ("type", "id", "embedUrl", "tokenType")}
    assert embed == {
        "type": "report",
        "id": first["id"],
        "embedUrl": first["embedUrl"],
        "tokenType": "Embed",
    }
    token = result["details"]["accessToken"]
    assert token.startswith("H4sI")  # an embed token from GenerateToken ...
    assert token not in entra_tokens(sandbox)  # ... never the Entra ID access token
    assert result["details"]["expiration"].endswith("Z")
    assert stats(sb)["byEndpoint"]["POST /v1.0/myorg/GenerateToken"] == 1


def test_sdk_embeds_the_report_of_the_configured_url_even_a_paginated_one(client, factory, sb):
    paginated = next(r for r in upstream(sb)["reports"] if r["reportType"] == "PaginatedReport")
    _, headers = person(factory)
    cfg = config(sb, accessType="sdk", embedUrl=paginated["embedUrl"])

    result = plugin_test(client, headers, install(client, headers, cfg))

    assert result["success"], result
    assert result["details"]["id"] == paginated["id"]
    assert "/rdlEmbed?" in result["details"]["embedUrl"]


def test_sdk_refuses_a_secure_embed_url(client, factory, sb):
    report = upstream(sb)["reports"][0]
    url = f"https://app.powerbi.com/reportEmbed?reportId={report['id']}&autoAuth=true"
    _, headers = person(factory)
    installation = install(client, headers, config(sb, accessType="sdk", embedUrl=url))
    calls = stats(sb)["total"]

    result = plugin_test(client, headers, installation)

    assert not result["success"]
    assert [c["name"] for c in result["details"]["checks"]] == ["embed URL"]
    assert "autoAuth=true" in result["message"]
    assert "accessToken" not in result["details"]
    assert stats(sb)["total"] == calls  # refused before any call


def test_sdk_fails_when_the_service_principals_are_disabled(client, factory, sb):
    configure(sb, volume={"spDisabled": 1})
    _, headers = person(factory)

    result = plugin_test(client, headers, install(client, headers, config(sb, accessType="sdk")))

    assert not result["success"]
    assert "accessToken" not in result["details"]
    assert "Service principals can use Fabric APIs" in result["message"]


# ---------------------------------------------------------------- access type: embed


def secure_embed_url(report_id: str, tenant: str = TENANT_ID) -> str:
    return f"https://app.powerbi.com/reportEmbed?reportId={report_id}&autoAuth=true&ctid={tenant}"


def test_embed_check_validates_the_url_and_finds_the_report(client, factory, sb):
    report = upstream(sb)["reports"][7]  # in the second workspace: found by searching
    headers, source_id = new_source(
        client, factory, sb, accessType="embed", embedUrl=secure_embed_url(report["id"])
    )

    result = run_check(client, headers, source_id)

    assert result["success"], result
    assert checks(result) == [
        ("embed URL", True),
        ("token acquired", True),
        ("Power BI accepts the app", True),
        ("report exists", True),
    ]
    assert report["name"] in result["checks"][-1]["message"]


@pytest.mark.parametrize(
    ("url", "step", "says"),
    [
        pytest.param("http://app.powerbi.com/reportEmbed?reportId={id}", "embed URL", "https://",
                     id="plain-http"),
        pytest.param("https://powerbi.evil.test/reportEmbed?reportId={id}", "embed URL",
                     "not a Power BI host", id="foreign-host"),
        pytest.param("https://app.powerbi.com/reportEmbed?reportId=42", "embed URL",
                     "reportId=<GUID>", id="no-guid"),
        pytest.param("https://app.powerbi.com/groups/me/reports/{id}", "embed URL",
                     "must be a report's", id="a-web-url"),
        pytest.param(secure_embed_url("{id}", "00000000-0000-4000-8000-00000000beef"),
                     "embed URL", "is for tenant", id="other-tenant"),
        pytest.param(secure_embed_url("00000000-0000-4000-8000-0000000000ff"), "report exists",
                     "no workspace the app can see holds report", id="unknown-report"),
        pytest.param("https://app.powerbi.com/reportEmbed?reportId={id}"
                     "&groupId=00000000-0000-4000-8000-0000000000ee", "report exists",
                     "not found or not visible", id="unknown-workspace"),
    ],
)  # fmt: skip
def test_embed_check_names_what_is_wrong(client, factory, sb, url, step, says):
    report = upstream(sb)["reports"][0]
    headers, source_id = new_source(
        client, factory, sb, accessType="embed", embedUrl=url.replace("{id}", report["id"])
    )

    result = run_check(client, headers, source_id)

    assert not result["success"]
    assert checks(result)[-1] == (step, False)
    assert says in result["message"]
    assert health(client, headers, source_id)["status"] == "failing"


def test_embed_access_needs_an_embed_url(client, factory, sb):
    _, headers = person(factory)
    body = {"name": "pbi", "type": "powerbi", "config": config(sb, accessType="embed")}

    response = client.post("/api/data-sources", headers=headers, json=body)

    assert response.status_code == 422
    assert "embedUrl is required" in response.text


# ---------------------------------------------------------------- access type: public


def test_public_check_validates_the_link_without_calling_the_api(client, factory, sb):
    link = public_link("a1b2c3d4-0000-4000-8000-00000000cafe")
    headers, source_id = new_source(client, factory, sb, accessType="public", publicUrl=link)

    result = run_check(client, headers, source_id)

    assert result["success"], result
    assert checks(result) == [("publish-to-web link", True)]
    assert "no API call" in result["checks"][0]["message"]
    assert stats(sb)["total"] == 0


def test_public_check_accepts_the_iframe_embed_code(client, factory, sb):
    code = f'<iframe title="Sales" width="800" src="{public_link(str(uuid.uuid4()))}"></iframe>'
    headers, source_id = new_source(client, factory, sb, accessType="public", publicUrl=code)

    assert run_check(client, headers, source_id)["success"]


@pytest.mark.parametrize(
    "link",
    [
        pytest.param("https://app.powerbi.com/view?r=not-a-code", id="garbage-code"),
        pytest.param("https://app.powerbi.com/view", id="no-code"),
        pytest.param(public_link("x").replace("app.powerbi.com", "example.com"), id="foreign-host"),
        pytest.param(public_link("not-a-guid"), id="no-key"),
    ],
)
def test_public_check_refuses_a_malformed_link(client, factory, sb, link):
    headers, source_id = new_source(client, factory, sb, accessType="public", publicUrl=link)

    result = run_check(client, headers, source_id)

    assert checks(result) == [("publish-to-web link", False)]
    assert health(client, headers, source_id)["status"] == "failing"


def test_a_public_link_that_fails_the_test_fails_the_sync_before_any_request(client, factory, sb):
    link = "https://app.powerbi.com/view?r=not-a-code"
    headers, source_id = new_source(client, factory, sb, accessType="public", publicUrl=link)
    reason = run_check(client, headers, source_id)["checks"][0]["message"]

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "failed", run
    assert reason in run["error"]["message"]
    assert stats(sb)["total"] == 0
    assert assets(factory, source_id) == {}


def test_a_public_source_with_a_well_formed_link_syncs(client, factory, sb):
    link = public_link("a1b2c3d4-0000-4000-8000-00000000cafe")
    headers, source_id = new_source(client, factory, sb, accessType="public", publicUrl=link)

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    assert len(assets(factory, source_id)) == len(upstream(sb)["reports"]) + len(
        upstream(sb)["dashboards"]
    )


# ---------------------------------------------------------------- syncs


def test_sync_reads_every_report_and_dashboard_and_a_resync_changes_nothing(client, factory, sb):
    headers, source_id = new_source(client, factory, sb)
    seen = upstream(sb)

    first = sync_and_wait(client, headers, source_id)

    assert first["status"] == "succeeded", first
    total = len(seen["reports"]) + len(seen["dashboards"])
    assert total == WORKSPACES * (REPORTS + DASHBOARDS)
    assert first["counts"] == {"created": total, "updated": 0, "unchanged": 0, "deleted": 0}
    stored = assets(factory, source_id)
    for kind, name_key in (("reports", "name"), ("dashboards", "displayName")):
        for item in seen[kind]:
            asset = stored[item["id"]]
            workspace = item["workspace"]
            assert (asset.kind, asset.name, asset.url, asset.embed_url, asset.folder) == (
                kind[:-1],
                item[name_key],
                item["webUrl"],
                item["embedUrl"],
                workspace["name"],
            )
            assert asset.extra["workspaceId"] == workspace["id"]
            assert asset.extra["workspaceName"] == workspace["name"]
            if kind == "reports":
                assert asset.extra["datasetId"] == item.get("datasetId")  # None for RDL
                assert asset.extra["reportType"] == item["reportType"]

    second = sync_and_wait(client, headers, source_id)

    assert second["status"] == "succeeded", second
    assert second["counts"] == {"created": 0, "updated": 0, "unchanged": total, "deleted": 0}
    assert len(assets(factory, source_id)) == total
    assert health(client, headers, source_id)["status"] == "ok"


def test_assets_removed_upstream_are_marked_deleted(client, factory, sb):
    headers, source_id = new_source(client, factory, sb)
    assert sync_and_wait(client, headers, source_id)["status"] == "succeeded"
    before = upstream(sb)

    configure(sb, volume={"reports": REPORTS - 1, "dashboards": DASHBOARDS - 1})
    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    assert run["counts"]["deleted"] == 2 * WORKSPACES
    assert run["counts"]["created"] == 0
    after = upstream(sb)
    gone = {i["id"] for k in ("reports", "dashboards") for i in before[k]} - {
        i["id"] for k in ("reports", "dashboards") for i in after[k]
    }
    stored = assets(factory, source_id)
    assert {k for k, a in stored.items() if a.deleted_at is not None} == gone
    assert len(stored) == WORKSPACES * (REPORTS + DASHBOARDS)  # kept, marked


def test_only_the_chosen_workspaces_are_read(client, factory, sb):
    seen = upstream(sb)
    chosen = seen["workspaces"][1]
    headers, source_id = new_source(client, factory, sb, workspaceIds=[chosen["id"].upper()])
    before = stats(sb)["byEndpoint"]

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    stored = assets(factory, source_id)
    assert set(stored) == {
        i["id"]
        for k in ("reports", "dashboards")
        for i in seen[k]
        if i["workspace"]["id"] == chosen["id"]
    }
    assert {a.folder for a in stored.values()} == {chosen["name"]}
    calls = stats(sb)["byEndpoint"]
    for kind in ("reports", "dashboards"):  # one workspace: one listing of each
        endpoint = f"GET /v1.0/myorg/groups/{{group_id}}/{kind}"
        assert calls[endpoint] - before[endpoint] == 1
    detail = client.get(f"/api/runs/{run['id']}", headers=headers).json()
    listed = [e["path"] for e in detail["timeline"]["recent"] if "/myorg/groups?" in e["path"]]
    assert listed
    assert all("%24filter=id+eq+" in path for path in listed)


def test_a_token_expiring_mid_sync_is_renewed_and_the_sync_completes(client, factory, sb, clock):
    configure(sb, faults={"latencyMs": 100}, volume={"workspaces": 4})
    headers, source_id = new_source(client, factory, sb)
    run_id = start_sync(client, headers, source_id)
    poll_run(
        client,
        headers,
        run_id,
        until=lambda _: stats(sb)["byEndpoint"].get("GET /v1.0/myorg/groups/{group_id}/reports", 0)
        >= 2,
        every=0.01,
    )

    clock.offset += 3600  # an hour passes at Power BI: the token the sync holds has expired
    run, _ = poll_run(client, headers, run_id)

    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] == 4 * (REPORTS + DASHBOARDS)
    counts = stats(sb)
    assert counts["byStatus"]["403"] == 1  # TokenExpired, once ...
    assert counts["byEndpoint"]["POST /{tenant}/oauth2/v2.0/token"] == 2  # ... then a new token
    assert health(client, headers, source_id)["status"] == "ok"


@pytest.mark.usefixtures("fast_retries")
def test_a_429_storm_still_ends_with_complete_data(client, factory, sb):
    configure(sb, faults={"status429Burst": 4, "status429Rate": 0.3, "retryAfterS": 2})
    headers, source_id = new_source(client, factory, sb)

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] == WORKSPACES * (REPORTS + DASHBOARDS)
    assert stats(sb)["throttled"] >= 5


def test_secrets_are_not_shown_back(client, factory, sb):
    headers, source_id = new_source(client, factory, sb)

    body = client.get(f"/api/data-sources/{source_id}", headers=headers).json()

    assert body["config"]["clientSecret"] == {"set": True}
    assert CLIENT_SECRET not in json.dumps(body)


def test_marketplace_lists_the_plugin_and_syncs_an_installation(client, factory, sb):
    _, headers = person(factory)
    plugins = client.get("/api/marketplace/plugins", headers=headers).json()
    plugin = next(p for p in plugins if p["serviceId"] == "powerbi")
    assert plugin["accessTypes"] == ["api", "sdk", "embed", "public"]
    assert plugin["authTypes"] == ["oauth2_client_credentials"]
    installation = install(client, headers, config(sb))

    response = client.post(
        "/api/marketplace/plugins/powerbi/sync",
        headers=headers,
        json={"installationId": installation},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"], body
    assert body["count"] == WORKSPACES * (REPORTS + DASHBOARDS)
    assert {i["action"] for i in body["items"]} == {"created"}


def test_two_installations_of_one_tenant_list_each_report_once_in_their_space(client, factory, sb):
    """Issue 13 item 8: the same tenant installed twice (API and SDK access) into one space."""
    _, headers = person(factory)
    space = client.post("/api/spaces", headers=headers, json={"name": "BI"}).json()
    ids = []
    for name, access in (("Finance API", "api"), ("Finance SDK", "sdk")):
        body = {"name": name, "config": config(sb, accessType=access), "spaceId": space["id"]}
        made = client.post("/api/marketplace/plugins/powerbi/install", headers=headers, json=body)
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
        synced = client.post(
            "/api/marketplace/plugins/powerbi/sync",
            headers=headers,
            json={"installationId": ids[-1], "spaceId": space["id"]},
        )
        assert synced.status_code == 200, synced.text
        assert synced.json()["success"] is True, synced.json()

    items = client.get(f"/api/spaces/{space['id']}/reports", headers=headers).json()

    upstream_ids = {r["id"] for r in upstream(sb)["reports"]} | {
        d["id"] for d in upstream(sb)["dashboards"]
    }
    assert {i["externalId"] for i in items} == upstream_ids
    assert len(items) == len(upstream_ids)  # each once, not once per installation
    assert all(
        [x["sourceId"] for x in i["installations"]] == ids and i["sourceId"] == ids[0]
        for i in items
    )

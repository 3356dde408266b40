"""Grafana through the real API and database against the in-process emulator: a service-account
token or a user's password, the org header, the connection test (health proves nothing about
credentials, so a wrong token must fail it and ask to reconnect), 5,000+ dashboards over pages
of 5,000 read to the short last page, re-syncs that change nothing, dashboards retitled or
deleted upstream, a 429 storm, and base URLs the SSRF guard refuses."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors.grafana import CONNECTOR
from inflow.connectors.runtime import ConnectorRuntime
from inflow.errors import InflowError
from inflow.http.client import HttpOptions
from inflow.sandbox.grafana import NO_ROLE_TOKEN, OPS_TOKEN, PASSWORD, TOKEN, USERNAME
from inflow.storage.models import Asset
from tests.conftest import TestClient  # type: ignore[attr-defined]  # re-exported on purpose
from tests.sync.helpers import (
    SANDBOX_HOST,
    assets_of,
    health,
    person,
    poll_run,
    start_sync,
    sync_and_wait,
)

SLUG = "grafana"
URL = f"{SANDBOX_HOST}/{SLUG}"
SEARCH = "GET /api/search"
DASHBOARD = "GET /api/dashboards/uid/{uid}"
FOLDERS = "GET /api/folders"
ORG = "GET /api/org"
TOKEN_CONFIG = {"baseUrl": URL, "apiKey": TOKEN}
USER_CONFIG = {"baseUrl": URL, "username": USERNAME, "password": PASSWORD}


# ---------------------------------------------------------------- fixtures


class Grafana:
    """The emulator's control routes."""

    def __init__(self, http: TestClient) -> None:
        self.http = http

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, **body: Any) -> Any:
        return self._ok(self.http.post(f"/_sandbox/{SLUG}/config", json=body))

    def stats(self) -> Any:
        return self._ok(self.http.get(f"/_sandbox/{SLUG}/stats"))

    def calls(self, endpoint: str) -> int:
        return int(self.stats()["byEndpoint"].get(endpoint, 0))

    def expected(self, org: int = 1) -> Any:
        return self._ok(self.http.get(f"/_sandbox/{SLUG}/expected", params={"org": org}))

    def config(self) -> Any:
        return self._ok(self.http.get("/_sandbox/credentials"))[SLUG]["config"]


@pytest.fixture
def grafana(sandbox: FastAPI) -> Iterator[Grafana]:
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield Grafana(http)


@pytest.fixture
def headers(factory: sessionmaker[Session]) -> dict[str, str]:
    return person(factory)[1]


def add_source(client: TestClient, headers: dict[str, str], config: dict[str, Any]) -> str:
    body = {"name": "Grafana", "type": SLUG, "config": config}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    source_id: str = response.json()["id"]
    return source_id


def long_sync(client: TestClient, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    """A sync of thousands of dashboards: one read each, so minutes on a busy machine; polled
    slowly, so the polling does not slow it further."""
    run, _ = poll_run(client, headers, start_sync(client, headers, source_id), timeout=600, every=1)
    return run


def run_test(client: TestClient, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


Row = tuple[str, str, str | None, str | None, bool]


def dashboards(hits: list[dict[str, Any]]) -> set[Row]:
    """What the stored assets must be: (uid, title, URL, folder, deleted) per live dashboard."""
    return {(h["uid"], h["title"], URL + h["url"], h.get("folderTitle"), False) for h in hits}


def stored(factory: sessionmaker[Session], source_id: str, kind: str = "dashboard") -> set[Row]:
    out: set[Row] = set()
    for external_id, k, name, url, embed, folder, updated, deleted in assets_of(factory, source_id):
        assert embed is None
        assert (updated is not None) == (k == "dashboard")  # a dashboard's own meta.updated
        if k == kind:
            out.add((external_id, name, url, folder, deleted))
    return out


def folders(expected_folders: list[dict[str, Any]]) -> set[Row]:
    """What the stored folder assets must be: (uid, title, URL, None, deleted)."""
    return {
        (f["uid"], f["title"], f"{URL}/dashboards/f/{f['uid']}/", None, False)
        for f in expected_folders
    }


def extras(
    factory: sessionmaker[Session], source_id: str, kind: str = "dashboard"
) -> dict[str, dict[str, Any]]:
    with factory() as session:
        rows = session.execute(
            select(Asset.external_id, Asset.extra).where(
                Asset.source_id == uuid.UUID(source_id), Asset.kind == kind
            )
        )
        return {row.external_id: row.extra for row in rows}


# ---------------------------------------------------------------- signing in


# 5,018 requests a sync: once per backend with the other volume tests (scripts/check); a second
# sync's "unchanged" is the panel-only edit test's, at 120 dashboards
@pytest.mark.volume
def test_token_passes_the_test_and_syncs_5001_dashboards_over_two_pages(
    client, factory, grafana, headers
):
    grafana.configure(volume={"dashboards": 5001})
    source_id = add_source(client, headers, grafana.config())

    result = run_test(client, headers, source_id)

    assert result["success"] is True, result
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [
        ("Grafana reachable", True),
        ("authenticated", True),
        ("list dashboards", True),
    ]
    assert "Main Org." in result["checks"][1]["message"]
    assert grafana.calls(ORG) == 1

    run = long_sync(client, headers, source_id)

    assert run["status"] == "succeeded", run
    # 5,001 dashboards and 16 folders (12 at the top, 4 nested)
    assert run["counts"] == {"created": 5017, "updated": 0, "unchanged": 0, "deleted": 0}
    expected = grafana.expected()
    assert stored(factory, source_id) == dashboards(expected["dashboards"])
    assert stored(factory, source_id, "folder") == folders(expected["folders"])
    # the test's search (limit=1), then a full page of 5,000 and the short last page of 1
    assert grafana.calls(SEARCH) == 1 + 2
    # what a sync costs: one read per dashboard (search hits have no version), and one
    # folder listing for the top level and one per folder (its children)
    assert grafana.calls(DASHBOARD) == 5001
    assert grafana.calls(FOLDERS) == 1 + 16
    # the test (health, org, search), then 2 search pages, 5,001 dashboards, 17 folder lists
    assert grafana.stats()["total"] == 3 + 2 + 5001 + 17
    by_uid = {h["uid"]: h for h in expected["dashboards"]}
    for uid, extra in extras(factory, source_id).items():
        hit = by_uid[uid]
        assert extra == {
            "uid": uid,
            "tags": sorted(hit["tags"]),
            "folderUid": hit.get("folderUid"),
            "version": 1,
            "orgId": 1,
        }


def test_username_and_password_with_org_id_read_that_org(client, factory, grafana, headers):
    source_id = add_source(client, headers, {**USER_CONFIG, "orgId": 2})

    result = run_test(client, headers, source_id)
    run = sync_and_wait(client, headers, source_id)

    assert result["success"] is True, result
    assert "'Ops' (id 2)" in result["checks"][1]["message"]
    assert run["counts"]["created"] == 30 + 3, run  # dashboards and folders
    # only org 2 holds these: the X-Grafana-Org-Id header reached Grafana on every call
    assert stored(factory, source_id) == dashboards(grafana.expected(org=2)["dashboards"])


def test_without_org_id_a_user_reads_its_default_org(client, factory, grafana, headers):
    source_id = add_source(client, headers, USER_CONFIG)

    run = sync_and_wait(client, headers, source_id)

    assert run["counts"]["created"] == 120 + 16, run
    assert stored(factory, source_id) == dashboards(grafana.expected()["dashboards"])


def test_the_marketplace_test_reports_the_grafana_version_and_org(client, grafana, headers):
    body = {"name": "Ops Grafana", "config": {"baseUrl": URL, "apiKey": OPS_TOKEN, "orgId": 2}}
    install = client.post(f"/api/marketplace/plugins/{SLUG}/install", headers=headers, json=body)
    assert install.status_code == 201, install.text

    response = client.post(
        f"/api/marketplace/plugins/{SLUG}/test",
        headers=headers,
        json={"installationId": install.json()["id"]},
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is True, result
    assert result["details"]["version"] == "10.4.2"
    assert (result["details"]["orgId"], result["details"]["orgName"]) == (2, "Ops")


@pytest.mark.parametrize(
    ("config", "says"),
    [
        pytest.param({**TOKEN_CONFIG, "apiKey": "glsa_wrong"}, "not valid", id="wrong_token"),
        pytest.param({**TOKEN_CONFIG, "apiKey": "glc_eyJvIjoi"}, "glc_", id="cloud_token"),
        pytest.param({**TOKEN_CONFIG, "orgId": 2}, "another organization", id="org_mismatch"),
        pytest.param({**USER_CONFIG, "password": "wrong"}, "does not retry", id="wrong_password"),
    ],
)
def test_refused_credentials_fail_the_test_and_need_reauth(client, grafana, headers, config, says):
    source_id = add_source(client, headers, config)

    result = run_test(client, headers, source_id)

    assert result["success"] is False
    checks = [(c["name"], c["ok"]) for c in result["checks"]]
    assert checks == [("Grafana reachable", True), ("authenticated", False)]  # health passed
    assert says in result["checks"][1]["message"]
    assert health(client, headers, source_id)["status"] == "needs_reauth"
    assert grafana.stats()["byStatus"] == {"200": 1, "401": 1}  # refused once, never retried

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert health(client, headers, source_id)["status"] == "needs_reauth"


def test_a_locked_user_is_refused_even_with_the_right_password(client, grafana, headers):
    wrong = add_source(client, headers, {**USER_CONFIG, "password": "wrong"})
    right = add_source(client, headers, USER_CONFIG)
    for _ in range(5):
        assert run_test(client, headers, wrong)["success"] is False

    result = run_test(client, headers, right)

    assert result["success"] is False
    assert "temporarily blocked" in result["checks"][1]["message"]


def test_a_token_without_permission_is_failing_not_needs_reauth(client, grafana, headers):
    source_id = add_source(client, headers, {**TOKEN_CONFIG, "apiKey": NO_ROLE_TOKEN})

    result = run_test(client, headers, source_id)

    assert [(c["name"], c["ok"]) for c in result["checks"]] == [
        ("Grafana reachable", True),
        ("authenticated", False),
    ]
    assert "Permissions needed: orgs:read" in result["checks"][1]["message"]
    assert health(client, headers, source_id)["status"] == "failing"


# ---------------------------------------------------------------- changes upstream


def test_retitled_dashboards_are_counted_updated(client, factory, grafana, headers):
    source_id = add_source(client, headers, TOKEN_CONFIG)
    assert sync_and_wait(client, headers, source_id)["counts"]["created"] == 120 + 16

    grafana.configure(volume={"revision": 2})  # every 10th dashboard saved again, retitled
    run = sync_and_wait(client, headers, source_id)

    assert run["counts"] == {"created": 0, "updated": 12, "unchanged": 108 + 16, "deleted": 0}
    assert stored(factory, source_id) == dashboards(grafana.expected()["dashboards"])


def test_a_panel_only_edit_is_updated_and_the_rest_unchanged(client, factory, grafana, headers):
    source_id = add_source(client, headers, TOKEN_CONFIG)
    sync_and_wait(client, headers, source_id)
    hits_before = grafana.expected()["dashboards"]

    grafana.configure(volume={"edits": 1})  # dashboards 5, 15, ... saved with a panel added
    run = sync_and_wait(client, headers, source_id)

    assert grafana.expected()["dashboards"] == hits_before  # search cannot tell
    assert run["counts"] == {"created": 0, "updated": 12, "unchanged": 108 + 16, "deleted": 0}
    versions = {uid: extra["version"] for uid, extra in extras(factory, source_id).items()}
    assert sorted(versions.values()).count(2) == 12
    with factory() as session:
        edited = session.execute(
            select(Asset.remote_updated_at).where(
                Asset.source_id == uuid.UUID(source_id), Asset.extra["version"].as_integer() == 2
            )
        ).scalars()
        created = session.execute(
            select(Asset.remote_updated_at).where(
                Asset.source_id == uuid.UUID(source_id),
                Asset.kind == "dashboard",
                Asset.extra["version"].as_integer() == 1,
            )
        ).scalars()
        assert len(list(edited)) == 12
        assert len(list(created)) == 108

    again = sync_and_wait(client, headers, source_id)

    assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 136, "deleted": 0}


def test_dashboards_deleted_upstream_are_marked_deleted(client, factory, grafana, headers):
    source_id = add_source(client, headers, TOKEN_CONFIG)
    sync_and_wait(client, headers, source_id)
    before = {h["uid"] for h in grafana.expected()["dashboards"]}

    grafana.configure(volume={"deletions": 6})
    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    assert run["counts"] == {"created": 0, "updated": 0, "unchanged": 114 + 16, "deleted": 6}
    live = grafana.expected()["dashboards"]
    rows = stored(factory, source_id)
    assert {row[0] for row in rows if row[4]} == before - {h["uid"] for h in live}
    assert {row for row in rows if not row[4]} == dashboards(live)

    grafana.configure(volume={"deletions": 0})  # restored (Grafana's "Recently deleted")
    back = sync_and_wait(client, headers, source_id)

    assert back["counts"]["updated"] == 6, back
    assert not any(row[4] for row in stored(factory, source_id))


def test_a_429_storm_still_reads_every_dashboard(client, factory, grafana, headers, fast_retries):
    source_id = add_source(client, headers, TOKEN_CONFIG)
    grafana.configure(faults={"status429Burst": 4, "status429Rate": 0.4})

    run = sync_and_wait(client, headers, source_id)

    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] == 120 + 16
    stats = grafana.stats()
    assert stats["byStatus"]["429"] >= 4
    # every call answered once in the end, after the 429s: 17 folder lists, a search, 120 reads
    assert stats["byStatus"]["200"] == 17 + 1 + 120
    assert stored(factory, source_id) == dashboards(grafana.expected()["dashboards"])


# ---------------------------------------------------------------- config and URLs


@pytest.mark.parametrize(
    ("config", "field"),
    [
        pytest.param({"baseUrl": URL}, "config.apiKey", id="no_credentials"),
        pytest.param({**TOKEN_CONFIG, "username": "ana"}, "config.apiKey", id="both"),
        pytest.param({"baseUrl": URL, "username": "ana"}, "config.password", id="no_password"),
        pytest.param({"baseUrl": URL, "password": "pw"}, "config.username", id="no_username"),
        pytest.param({"apiKey": TOKEN}, "config.baseUrl", id="no_url"),
        pytest.param({**TOKEN_CONFIG, "orgId": 0}, "config.orgId", id="bad_org"),
    ],
)
def test_invalid_configs_name_the_field(client, headers, config, field):
    body = {"config": config}
    response = client.post(f"/api/integrations/{SLUG}/validate", headers=headers, json=body)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["valid"] is False
    assert [e["field"] for e in result["errors"]] == [field], result


def test_the_config_schema_hides_secrets_and_needs_a_url(client, headers):
    response = client.get("/api/integrations/types", headers=headers)

    assert response.status_code == 200, response.text
    grafana_type = next(t for t in response.json() if t["type"] == SLUG)
    schema = grafana_type["configSchema"]
    assert grafana_type["category"] == "bi"
    assert schema["required"] == ["baseUrl"]
    for secret in ("apiKey", "password"):
        assert schema["properties"][secret]["writeOnly"] is True
    assert "default" not in schema["properties"]["baseUrl"]


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        pytest.param("https://127.0.0.1:3000", "private or reserved", id="loopback"),
        pytest.param("https://10.20.30.40/grafana", "private or reserved", id="private"),
        pytest.param("https://169.254.169.254", "private or reserved", id="metadata"),
        pytest.param("http://grafana.example.com", "only https://", id="plain_http"),
    ],
)
def test_private_base_urls_are_refused_before_any_request(
    settings, engine, sandbox, grafana, factory, base_url, says
):
    from inflow.api.app import create_app

    guarded = settings.model_copy(update={"allow_private_urls": False})
    app = create_app(
        guarded, engine=engine, migrate=False, transport=httpx.ASGITransport(app=sandbox)
    )
    with TestClient(app) as client:
        headers = person(factory)[1]
        source_id = add_source(client, headers, {**TOKEN_CONFIG, "baseUrl": base_url})

        result = run_test(client, headers, source_id)
        run = sync_and_wait(client, headers, source_id)

    assert result["success"] is False
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [("Grafana reachable", False)]
    assert says in result["checks"][0]["message"]
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "ConfigError"
    assert grafana.stats()["total"] == 0  # nothing was sent anywhere


# ---------------------------------------------------------------- the connector on its own


def test_folders_are_read_to_the_short_last_page_and_down_the_tree(grafana, sandbox):
    grafana.configure(volume={"folders": 1001, "subfolders": 3})
    config = CONNECTOR.config.model_validate(TOKEN_CONFIG)

    async def read() -> list[list[Mapping[str, Any]]]:
        runtime = ConnectorRuntime(
            CONNECTOR,
            config,
            options=HttpOptions(allow_private_urls=True),
            key="folders",
            transport=httpx.ASGITransport(app=sandbox),
        )
        async with runtime:
            return [list(page) async for page in runtime.items(runtime.stream("folders"))]

    pages = asyncio.run(read())

    # the top level over two pages, then each folder's children (three have one each)
    assert [len(p) for p in pages[:2]] == [1000, 1]
    assert sum(len(p) for p in pages[2:]) == 3
    read_folders = {f["uid"]: f.get("parentUid") for page in pages for f in page}
    assert read_folders == {f["uid"]: f.get("parentUid") for f in grafana.expected()["folders"]}
    assert sum(1 for parent in read_folders.values() if parent) == 3
    assert grafana.calls(FOLDERS) == 2 + 1004


def test_a_grafana_with_nested_folders_off_costs_two_folder_listings(grafana, sandbox):
    grafana.configure(volume={"flat": 1})  # `parentUid` ignored: every folder, every time
    config = CONNECTOR.config.model_validate(TOKEN_CONFIG)

    async def read() -> list[list[Mapping[str, Any]]]:
        runtime = ConnectorRuntime(
            CONNECTOR,
            config,
            options=HttpOptions(allow_private_urls=True),
            key="flat",
            transport=httpx.ASGITransport(app=sandbox),
        )
        async with runtime:
            return [list(page) async for page in runtime.items(runtime.stream("folders"))]

    pages = asyncio.run(read())

    assert [len(p) for p in pages] == [16]  # all of them, once, none with a parent
    assert {f["uid"] for f in pages[0]} == {f["uid"] for f in grafana.expected()["folders"]}
    assert all(f["parentUid"] is None for f in pages[0])
    assert grafana.calls(FOLDERS) == 2  # the top level, then one child listing: stop


def test_a_dashboard_gone_before_it_is_read_is_no_dashboard_and_a_wrong_url_fails(grafana, sandbox):
    """Deleted between the search and its read: a 404 there is skipped (the sync then marks it
    deleted); a 404 anywhere else (a wrong sub-path) still fails the read."""
    config = CONNECTOR.config.model_validate(TOKEN_CONFIG)
    live = grafana.expected()["dashboards"][0]

    async def read(parent: dict[str, Any]) -> list[list[Mapping[str, Any]]]:
        runtime = ConnectorRuntime(
            CONNECTOR,
            config,
            options=HttpOptions(allow_private_urls=True),
            key="gone",
            transport=httpx.ASGITransport(app=sandbox),
        )
        async with runtime:
            stream = runtime.stream("dashboards")
            return [list(page) async for page in runtime.items(stream, parent=parent)]

    assert asyncio.run(read({"uid": "gone000000000"})) == [[]]
    [[one]] = asyncio.run(read({"uid": live["uid"]}))
    assert one["dashboard"]["uid"] == live["uid"]

    wrong = CONNECTOR.config.model_validate({**TOKEN_CONFIG, "baseUrl": f"{URL}/sub"})

    async def search() -> None:
        runtime = ConnectorRuntime(
            CONNECTOR,
            wrong,
            options=HttpOptions(allow_private_urls=True),
            key="wrong",
            transport=httpx.ASGITransport(app=sandbox),
        )
        async with runtime:
            async for _ in runtime.items(runtime.stream("search")):
                pass

    with pytest.raises(InflowError):
        asyncio.run(search())


def test_basic_auth_header_is_what_grafana_expects(grafana, sandbox):
    """The Authorization header the runtime builds from a username and password."""
    seen: list[str] = []
    config = CONNECTOR.config.model_validate(USER_CONFIG)

    async def probe(request: httpx.Request) -> None:
        seen.append(request.headers["authorization"])

    async def check() -> None:
        runtime = ConnectorRuntime(
            CONNECTOR,
            config,
            options=HttpOptions(allow_private_urls=True),
            key="basic",
            transport=httpx.ASGITransport(app=sandbox),
        )
        runtime.client.event_hooks["request"].append(probe)
        async with runtime:
            assert all(step.ok for step in await runtime.check())

    asyncio.run(check())

    basic = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert set(seen) == {basic}


# ---------------------------------------------------------------- Grafana folders, installations

GRAFANA = URL


def install(client, headers, space, name, config):
    body = {"name": name, "config": config, "spaceId": space["id"]}
    r = client.post("/api/marketplace/plugins/grafana/install", headers=headers, json=body)
    assert r.status_code == 201, r.text
    sync = client.post(
        "/api/marketplace/plugins/grafana/sync",
        headers=headers,
        json={"installationId": r.json()["id"], "spaceId": space["id"]},
    )
    assert sync.status_code == 200, sync.text
    assert sync.json()["success"] is True, sync.json()
    return r.json()


def test_spaces_two_installations_of_one_grafana_org_list_each_item_once(client, factory):
    """Item 8: a token and a user's password of one org, synced into one space."""
    headers = person(factory)[1]
    space = create_space(client, headers)
    by_token = install(client, headers, space, "By token", {"baseUrl": GRAFANA, "apiKey": TOKEN})
    by_user = install(
        client,
        headers,
        space,
        "By user",
        {"baseUrl": GRAFANA, "username": USERNAME, "password": PASSWORD},
    )

    r = client.get(f"/api/spaces/{space['id']}/reports", headers=headers)

    assert r.status_code == 200, r.text
    items = r.json()
    assert len(items) == 120 + 16  # 120 dashboards and 16 folders, each once
    assert len({i["externalId"] for i in items}) == len(items)
    both = [
        {"sourceId": by_token["id"], "name": "By token"},
        {"sourceId": by_user["id"], "name": "By user"},
    ]
    assert all(i["installations"] == both for i in items)
    assert {i["sourceId"] for i in items} == {by_token["id"]}  # the first installation's rows

    # the folder tree: folders name their parent, dashboards their folder, by item id
    by_id = {i["id"]: i for i in items}
    folders = [i for i in items if i["kind"] == "folder"]
    nested = [f for f in folders if f["parent"] is not None]
    assert len(folders) == 16
    assert len(nested) == 4
    assert all(by_id[f["parent"]]["kind"] == "folder" for f in nested)
    dashboards = [i for i in items if i["kind"] == "dashboard"]
    in_folders = [d for d in dashboards if d["folderId"] is not None]
    assert in_folders, "the sandbox spreads dashboards over its folders"
    assert all(by_id[d["folderId"]]["name"] == d["folder"] for d in in_folders)
    assert all(d["folder"] is None for d in dashboards if d["folderId"] is None)
    assert any(by_id[d["folderId"]]["parent"] for d in in_folders)  # some in a subfolder
    assert {d["version"] for d in dashboards} == {1}
    assert all(d["remoteUpdatedAt"] for d in dashboards)

    # the Spaces page: each dashboard once, from both installations, in its folder's section
    client.cookies.set("inflow_session", headers["Authorization"].removeprefix("Bearer "))
    page = client.get(f"/spaces/{space['id']}", headers={"Accept": "text/html"})
    client.cookies.clear()
    assert page.status_code == 200, page.text
    assert page.text.count('<td class="asset-name">') == 120
    assert page.text.count("Grafana · By token, By user") == 120
    assert "120 reports and dashboards in 16 folders" in page.text
    assert page.text.count('class="card folder-card subfolder"') == 4


def test_spaces_another_grafana_org_is_another_account(client, factory):
    headers = person(factory)[1]
    space = create_space(client, headers)
    install(client, headers, space, "Main", {"baseUrl": GRAFANA, "apiKey": TOKEN})
    install(client, headers, space, "Ops", {"baseUrl": GRAFANA, "apiKey": OPS_TOKEN})

    items = client.get(f"/api/spaces/{space['id']}/reports", headers=headers).json()

    assert len(items) == (120 + 16) + (30 + 3)
    assert all(len(i["installations"]) == 1 for i in items)


def create_space(client, headers):
    r = client.post("/api/spaces", headers=headers, json={"name": "Ops"})
    assert r.status_code == 201, r.text
    return r.json()

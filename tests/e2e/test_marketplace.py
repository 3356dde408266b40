"""The Marketplace and Spaces journeys in a real browser, against ``inflow sandbox`` run as a
real server: install Grafana, Test, Sync and watch it finish, see its dashboards and folders in
the space; a wrong token's failing Test; Power BI's ``sdk`` embed configuration."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from inflow.storage.db import create_db_engine, make_session_factory, upgrade
from tests.conftest import clock_env
from tests.e2e.conftest import HOST, LiveServer
from tests.e2e.ui import check_page, log_in
from tests.factories import PASSWORD, make_user
from tests.servers import INFLOW, InflowServer, free_port, inflow_env

pytestmark = pytest.mark.e2e

# A small Grafana, so the space's page reads whole: 14 dashboards in 4 top-level folders (one
# empty), 2 of them with a subfolder.
GRAFANA_VOLUME = {"dashboards": 14, "folders": 4, "subfolders": 2}
MEMBER = "market-member@example.com"  # a member with nothing of their own yet


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``inflow sandbox`` on the test clock; every emulator under ``{url}/<provider>``."""
    workdir = tmp_path_factory.mktemp("sandbox")
    port = free_port()
    log = workdir / "sandbox.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(INFLOW), "sandbox", "--port", str(port)],
            env=inflow_env(workdir / "data", **clock_env()),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(log.read_text())
            try:
                if httpx.get(f"{url}/_sandbox/credentials", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"inflow sandbox did not start:\n{log.read_text()}")
            time.sleep(0.1)
        answer = httpx.post(f"{url}/_sandbox/grafana/config", json={"volume": GRAFANA_VOLUME})
        assert answer.status_code == 200, answer.text
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``inflow serve`` on a fresh SQLite file, on the test clock, allowed to reach the
    sandbox on 127.0.0.1 (a private address it refuses by default)."""
    workdir = tmp_path_factory.mktemp("e2e-market")
    url = f"sqlite:///{workdir / 'inflow.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    admin = make_user(factory, "market-admin@example.com", role="admin")
    make_user(factory, MEMBER)
    engine.dispose()
    env = inflow_env(workdir / "data", url, INFLOW_ALLOW_PRIVATE_URLS="true", **clock_env())
    server = InflowServer("serve", env=env, workdir=workdir)
    server.start()
    try:
        yield LiveServer(f"http://{HOST}:{server.port}", admin.email, PASSWORD)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def credentials(sandbox: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{sandbox}/_sandbox/credentials").json()
    return found


def _install(page: Any, service: str, name: str, fields: dict[str, str]) -> None:
    page.goto("/marketplace")
    page.get_by_role("link", name=f"Install {service}").click()
    page.get_by_label("Installation name").fill(name)
    for label, value in fields.items():
        field = page.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name="Install", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def _grafana_faults(sandbox: str, **faults: int) -> None:
    answer = httpx.post(f"{sandbox}/_sandbox/grafana/config", json={"faults": faults})
    assert answer.status_code == 200, answer.text


def test_install_grafana_test_sync_and_see_its_dashboards_in_the_space(
    page, live_server, credentials, sandbox
):
    grafana = credentials["grafana"]["config"]
    log_in(page, live_server.email, live_server.password, next_path="/marketplace")
    expect(page.get_by_text("Nothing installed yet")).to_be_visible()
    check_page(page, "marketplace")

    page.get_by_role("link", name="Install Grafana").click()
    page.get_by_label("Grafana URL").fill("not a URL")
    page.get_by_role("button", name="Install", exact=True).click()
    expect(page.locator("[data-field=baseUrl] .field-error")).to_contain_text("URL")
    expect(page.get_by_label("Service account token")).to_have_value("")
    check_page(page, "marketplace-install-errors")

    _install(
        page,
        "Grafana",
        "Ops Grafana",
        {"Grafana URL": grafana["baseUrl"], "Service account token": grafana["apiKey"]},
    )
    expect(page.get_by_role("status").filter(has_text="Installed")).to_be_visible()
    expect(page.locator("#health")).to_contain_text("Not tested")

    page.get_by_role("button", name="Test").click()
    result = page.locator("#test-result")
    expect(result).to_contain_text("Test passed")
    expect(result.locator(".step-ok")).to_have_count(3)
    expect(result).to_contain_text("Grafana 10.4.2")
    expect(result).to_contain_text("Main Org.")
    expect(page.locator("#health")).to_contain_text("Healthy")
    expect(page.locator("#health")).to_contain_text("checked 20")

    _grafana_faults(sandbox, latencyMs=3000)  # Grafana answers slowly: the run is seen going
    try:
        page.get_by_role("button", name="Sync").click()
        run = page.locator("#sync-run")
        expect(run).to_contain_text(re.compile("Queued|Syncing"))
        expect(run).to_have_attribute("hx-trigger", "every 2s")
        check_page(page, "marketplace-sync-running")
    finally:  # a sync reads each dashboard and each folder's children: fast again now
        _grafana_faults(sandbox, latencyMs=0)
    expect(run).to_contain_text("Synced", timeout=30_000)
    expect(run).not_to_have_attribute("hx-trigger", "every 2s")  # the polling has stopped
    expect(run.locator(".counts li").nth(1)).to_contain_text("14 dashboards")
    expect(run.locator(".counts li").nth(2)).to_contain_text("6 folders")
    expect(run).to_contain_text("20 new")  # 14 dashboards and 6 folders
    check_page(page, "marketplace-installation-synced")

    run.get_by_role("link", name="See them in the space").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ops Grafana")
    tree = page.locator(".folder-tree > .folder-card")
    expect(tree).to_have_count(4)  # the top-level folders, by title (no dashboard at the root)
    expect(tree.first.get_by_role("heading", level=2)).to_have_text("Databases")
    expect(tree.first).to_contain_text("An empty folder.")
    subfolders = page.locator(".folder-card .folder-card")
    expect(subfolders).to_have_count(2)  # each inside its parent's section, a level deeper
    expect(subfolders.first.get_by_role("heading", level=3)).to_have_text("Security")
    expect(subfolders.first.locator(".card-head").get_by_role("link")).to_have_attribute(
        "href", re.compile(r"/grafana/dashboards/f/")
    )
    rows = page.locator("table.assets tbody tr:not(.preview-row)")
    expect(rows).to_have_count(14)
    first = rows.first.get_by_role("link", name=re.compile("^Open"))
    expect(first).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:\d+/grafana/d/"))
    expect(rows.first).to_contain_text("Grafana · Ops Grafana")
    check_page(page, "space-grafana")

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Spaces").click()
    expect(page.get_by_role("link", name="Ops Grafana")).to_be_visible()
    expect(page.get_by_text("14 reports and dashboards")).to_be_visible()
    check_page(page, "spaces")

    page.goto("/marketplace")
    row = page.get_by_role("row", name=re.compile("Ops Grafana"))
    expect(row).to_contain_text("Healthy")
    check_page(page, "marketplace-installed")


def test_a_wrong_token_fails_the_test_with_its_reason(page, live_server, credentials):
    grafana = credentials["grafana"]["config"]
    log_in(page, live_server.email, live_server.password, next_path="/marketplace")
    _install(
        page,
        "Grafana",
        "Grafana with a wrong token",
        {"Grafana URL": grafana["baseUrl"], "Service account token": "glsa_not_a_real_token"},
    )

    page.get_by_role("button", name="Test").click()

    result = page.locator("#test-result")
    expect(result.get_by_role("alert")).to_contain_text("Test failed")
    failed = result.locator(".step-bad")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("authenticated")
    expect(failed).to_contain_text("the token is not valid in this Grafana")
    expect(page.locator("#health")).to_contain_text("Check credentials")
    check_page(page, "marketplace-test-failed")

    page.get_by_role("button", name="Sync").click()
    run = page.locator("#sync-run")
    expect(run).to_contain_text("Sync failed", timeout=30_000)
    expect(run).to_contain_text("the token is not valid in this Grafana")
    expect(run.locator(".fix")).to_contain_text("Check the credentials")
    check_page(page, "marketplace-sync-failed")

    page.get_by_role("link", name="Edit").click()
    token = page.get_by_label("Service account token")
    expect(token).to_have_value("")  # a stored secret is never sent back
    expect(token).to_have_attribute("placeholder", "Stored; leave empty to keep it")
    expect(page.get_by_label("Grafana URL")).to_have_value(grafana["baseUrl"])
    check_page(page, "marketplace-edit")
    token.fill(grafana["apiKey"])
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    page.get_by_role("button", name="Test").click()
    expect(page.locator("#test-result")).to_contain_text("Test passed")
    expect(page.locator("#health")).to_contain_text("Healthy")


def test_power_bi_sdk_access_type_shows_its_embed_configuration(page, live_server, credentials):
    powerbi = credentials["powerbi"]["config"]
    log_in(page, live_server.email, live_server.password, next_path="/marketplace")
    page.get_by_role("link", name="Install Power BI").click()
    check_page(page, "marketplace-install-powerbi")
    _install(
        page,
        "Power BI",
        "Sales Power BI",
        {
            "Directory (tenant) ID": powerbi["tenantId"],
            "Application (client) ID": powerbi["clientId"],
            "Client secret (its Value)": powerbi["clientSecret"],
            "Access type": "sdk",
            "API URL": powerbi["baseUrl"],
            "Login URL": powerbi["authUrl"],
        },
    )
    expect(page.get_by_role("heading", name="Access type: JS SDK embed")).to_be_visible()

    page.get_by_role("button", name="Test").click()

    result = page.locator("#test-result")
    expect(result).to_contain_text("Test passed")
    expect(result).to_contain_text("embed token generated")
    expect(result).to_contain_text("shown under the access type")
    config = page.locator("#embed-config pre")
    expect(config).to_contain_text('"tokenType": "Embed"')
    expect(config).to_contain_text('"embedUrl": "https://app.powerbi.com/reportEmbed?reportId=')
    expect(config).to_contain_text('"accessToken": ')
    assert powerbi["clientSecret"] not in config.inner_text()
    check_page(page, "marketplace-powerbi-sdk")


def _publish_to_web_link(tenant: str) -> str:
    code = base64.urlsafe_b64encode(
        json.dumps({"k": "3c1e6f0a-2b4d-4e8f-9a7c-5d6e7f8a9b0c", "t": tenant}).encode()
    )
    return "https://app.powerbi.com/view?r=" + code.decode().rstrip("=")


def _power_bi(
    page: Any, powerbi: dict[str, str], name: str, space: str, access: dict[str, str]
) -> None:
    _install(
        page,
        "Power BI",
        name,
        {
            "Space": space,
            "Directory (tenant) ID": powerbi["tenantId"],
            "Application (client) ID": powerbi["clientId"],
            "Client secret (its Value)": powerbi["clientSecret"],
            **access,
            "API URL": powerbi["baseUrl"],
            "Login URL": powerbi["authUrl"],
        },
    )
    page.get_by_role("button", name="Sync").click()
    expect(page.locator("#sync-run")).to_contain_text("Synced", timeout=30_000)


def test_power_bi_embed_urls_and_public_link_are_previewed_in_the_space(
    page, live_server, credentials
):
    powerbi = credentials["powerbi"]["config"]
    link = _publish_to_web_link(powerbi["tenantId"])
    # No test reaches the internet: Power BI's pages are answered here.
    page.route(
        "https://app.powerbi.com/**",
        lambda route: route.fulfill(
            content_type="text/html",
            body="<!doctype html><html lang=en><title>Report</title><h1>A report</h1></html>",
        ),
    )
    log_in(page, live_server.email, live_server.password, next_path="/marketplace")
    public_access = {"Access type": "public", "Publish-to-web URL": link}
    _power_bi(page, powerbi, "Public Power BI", "new", public_access)
    expect(page.get_by_role("heading", name="Access type: Public link")).to_be_visible()
    expect(page.get_by_role("link", name=link)).to_be_visible()
    embed_url = "https://app.powerbi.com/reportEmbed?reportId=7cf389f1-940d-4cf3-91b7-77380c72a72a"
    embed_access = {"Access type": "embed", "Embed URL": embed_url}
    _power_bi(page, powerbi, "Embedded Power BI", "Public Power BI", embed_access)
    page.get_by_role("link", name="See them in the space").click()

    public = page.get_by_role("region", name="Public link · Public Power BI")
    public.get_by_role("button", name=re.compile("^Preview")).click()
    expect(public.locator("iframe")).to_have_attribute("src", link)
    expect(page.frame_locator(".preview iframe").first.get_by_role("heading")).to_have_text(
        "A report"
    )
    folders = page.locator(".folder-card")
    expect(folders.first.get_by_role("heading")).to_have_text("Growth analytics 1")
    # two installations of one tenant: each report once, from both; it opens in Power BI and
    # is previewed through the embedding installation
    report = page.locator("tr", has_text="Power BI · Embedded Power BI, Public Power BI").first
    expect(report.get_by_role("link", name=re.compile("^Open"))).to_have_attribute(
        "href", re.compile(r"^https://app\.powerbi\.com/groups/")
    )
    report.get_by_role("button", name=re.compile("^Preview")).click()
    frame = folders.first.locator(".preview iframe")
    expect(frame).to_have_attribute("src", re.compile(r"^https://app\.powerbi\.com/\w+Embed\?"))
    check_page(page, "space-powerbi-previews")


def test_looker_studio_connect_starts_oauth_from_the_browser(page, live_server, credentials):
    looker = credentials["looker_studio"]["config"]
    log_in(page, live_server.email, live_server.password, next_path="/marketplace")
    _install(
        page,
        "Looker Studio",
        "Team Looker Studio",
        {
            "Space": "new",
            "OAuth client ID": looker["clientId"],
            "OAuth client secret": looker["clientSecret"],
            "API base URL": looker["baseUrl"],
            "Google OAuth server URL": looker["authUrl"],
        },
    )
    expect(page.get_by_role("status").filter(has_text="Connect it to Google next")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("not connected yet")
    installation = page.url.split("?")[0]
    check_page(page, "marketplace-looker-not-connected")

    # The sandbox's consent page agrees at once and sends the browser back to the callback.
    # Where the callback then sends the browser is the OAuth route's choice, not asserted here.
    with page.expect_response(re.compile(r"/api/oauth/looker_studio/callback\?")) as callback:
        page.get_by_role("button", name="Connect", exact=True).click()
    assert callback.value.status == 302
    assert "oauth=connected" in callback.value.headers["location"]

    page.goto(installation)
    expect(page.locator("dl.facts")).to_contain_text("connected")
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()
    page.get_by_role("button", name="Test").click()
    expect(page.locator("#test-result")).to_contain_text("Test passed")
    page.get_by_role("button", name="Sync").click()
    expect(page.locator("#sync-run")).to_contain_text("Synced", timeout=30_000)
    expect(page.locator("#sync-run .counts li").first).not_to_contain_text(re.compile(r"^0 "))
    check_page(page, "marketplace-looker-connected")


def test_spaces_start_empty_and_a_new_space_says_what_to_do_first(page, live_server):
    log_in(page, MEMBER, live_server.password, next_path="/spaces")
    expect(page.get_by_text("No spaces yet.")).to_be_visible()
    check_page(page, "spaces-empty")

    page.get_by_role("button", name="Create space").click()
    expect(page.locator("[data-field=name] .field-error")).to_be_visible()
    page.get_by_label("Name").fill("Growth team")
    page.get_by_label("Description").fill("Dashboards the growth team reads every Monday")
    page.get_by_role("button", name="Create space").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Growth team")
    expect(page.get_by_text("Nothing synced into this space yet.")).to_be_visible()
    expect(page.get_by_role("link", name="Install a plugin in the Marketplace")).to_be_visible()
    check_page(page, "space-empty")
    page.goto("/marketplace/grafana/install")
    expect(page.get_by_label("Space")).to_have_value(re.compile("^[0-9a-f-]{36}$"))
    expect(page.get_by_label("Space").locator("option:checked")).to_have_text("Growth team")

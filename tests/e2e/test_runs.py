"""Runs in a real browser: a sync watched live until it succeeds (through a rate-limit wait),
a failed sync's error and its fix, cancelling a sync, and the audit log for an admin and a
member. The provider is the sandbox running as its own process (``inflow sandbox``); the
syncs run in ``inflow serve``'s worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from inflow.storage.db import create_db_engine, make_session_factory, upgrade
from tests.conftest import clock_env
from tests.e2e.conftest import HOST, LiveServer
from tests.e2e.ui import check_page, log_in, screenshot
from tests.factories import PASSWORD, make_user
from tests.servers import INFLOW, InflowServer, free_port, inflow_env

pytestmark = pytest.mark.e2e

LIVE = 60_000  # ms a run may take to reach its end in the browser (a bound, not measured)


@dataclass(frozen=True)
class RunsServer(LiveServer):
    api_url: str  # for the test's own API calls (127.0.0.1)
    member_email: str


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``inflow sandbox`` as a process of its own; its base URL."""
    workdir = tmp_path_factory.mktemp("sandbox")
    port = free_port()
    env = inflow_env(workdir / "data", **clock_env())
    with (workdir / "out").open("wb") as out, (workdir / "err").open("wb") as err:
        proc = subprocess.Popen(
            [str(INFLOW), "sandbox", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, (workdir / "err").read_text()
            try:
                if httpx.get(f"{url}/_sandbox/credentials", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the sandbox did not answer")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunsServer]:
    """``inflow serve`` (private URLs allowed: the sandbox is on 127.0.0.1) with an admin and
    a member."""
    workdir = tmp_path_factory.mktemp("e2e-runs")
    url = f"sqlite:///{workdir / 'inflow.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    admin = make_user(factory, "runs-admin@example.com", role="admin")
    member = make_user(factory, "runs-member@example.com", role="member")
    engine.dispose()
    env = inflow_env(workdir / "data", url, INFLOW_ALLOW_PRIVATE_URLS="true", **clock_env())
    server = InflowServer("serve", env=env, workdir=workdir)
    server.start()
    try:
        yield RunsServer(
            f"http://{HOST}:{server.port}", admin.email, PASSWORD, server.base_url, member.email
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api(live_server: RunsServer) -> Iterator[httpx.Client]:
    """The admin's API client (a bearer token from /api/auth/login)."""
    with httpx.Client(base_url=live_server.api_url, timeout=30) as client:
        answer = client.post(
            "/api/auth/login", json={"email": live_server.email, "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        client.headers["Authorization"] = f"Bearer {answer.json()['token']}"
        yield client


def example_source(api: httpx.Client, sandbox: str, name: str, **config: Any) -> str:
    """An ``example`` source against the sandbox; its id."""
    credentials = httpx.get(f"{sandbox}/_sandbox/credentials").json()["example"]["config"]
    answer = api.post(
        "/api/data-sources",
        json={"name": name, "type": "example", "config": {**credentials, **config}},
    )
    assert answer.status_code == 201, answer.text
    source_id: str = answer.json()["id"]
    return source_id


def sandbox_faults(sandbox: str, **faults: Any) -> None:
    answer = httpx.post(f"{sandbox}/_sandbox/example/config", json={"faults": faults})
    assert answer.status_code == 200, answer.text


def test_a_sync_started_on_the_page_is_watched_live_until_it_succeeds(
    page, live_server, api, sandbox
):
    source_id = example_source(api, sandbox, "Example analytics")
    # The provider answers the first two requests with 429 and Retry-After: 3: the run waits.
    sandbox_faults(sandbox, status429Burst=2, retryAfterS=3)
    log_in(page, live_server.email, live_server.password, next_path="/runs")
    expect(page.get_by_role("heading", name="No syncs yet")).to_be_visible()
    check_page(page, "runs-empty")

    page.get_by_label("Source to sync").select_option(label="Example analytics")
    page.get_by_role("button", name="Sync now").click()

    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name="Sync of Example analytics")).to_be_visible()
    page.evaluate("window.__samePage = true")  # gone if the page were loaded again
    live = page.locator("#run-live")
    waiting = page.locator("#run-waiting")
    expect(waiting).to_contain_text("Waiting: rate limited by the provider", timeout=LIVE)
    expect(waiting).to_contain_text(re.compile(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))
    expect(live).to_have_attribute("data-status", "running")
    expect(page.locator('.streams-table tr[data-stream="reports"]')).to_contain_text("Reading")
    expect(page.locator('.streams-table tr[data-stream="metrics"]')).to_contain_text("Pending")
    expect(page.get_by_role("button", name="Cancel sync")).to_be_visible()
    screenshot(page, "runs-run-waiting")

    expect(live).to_have_attribute("data-status", "succeeded", timeout=LIVE)
    assert page.evaluate("window.__samePage") is True
    expect(live.get_by_role("region", name="Status").get_by_role("status")).to_contain_text(
        "Succeeded"
    )
    expect(waiting).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel sync")).to_have_count(0)
    expect(page.get_by_role("button", name="Sync again")).to_be_visible()  # out of band
    created = int(
        live.locator(".tile", has_text="Created").locator("dd").inner_text().replace(",", "")
    )
    assert created > 0
    streams = page.locator(".streams-table")
    for stream in ("reports", "dashboards", "metrics"):
        expect(streams.locator(f'tr[data-stream="{stream}"]')).to_contain_text("Done")
    expect(streams.locator('tr[data-stream="metrics"]')).to_contain_text("(this run)")
    requests = page.get_by_role("table", name="Latest requests")
    expect(requests).to_contain_text("429")  # the waits are in the run's timeline
    expect(live).not_to_have_attribute("hx-trigger", re.compile("every"))  # polling stopped
    check_page(page, "runs-run-succeeded")

    # The history: this source's runs, filtered
    page.get_by_role("link", name="← All syncs of Example analytics").click()
    table = page.locator(".runs-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("Succeeded")
    expect(table).to_contain_text("Manual")
    expect(page.get_by_label("Source")).to_have_value(source_id)
    check_page(page, "runs-list")


def test_a_failed_sync_shows_its_error_and_its_fix(page, live_server, api, sandbox):
    sandbox_faults(sandbox, status429Burst=0)
    source_id = example_source(api, sandbox, "Example, wrong key", apiKey="sk_test_wrong_key")
    answer = api.post(f"/api/data-sources/{source_id}/sync")
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["runId"]
    log_in(page, live_server.email, live_server.password, next_path=f"/runs/{run_id}")

    live = page.locator("#run-live")
    expect(live).to_have_attribute("data-status", "failed", timeout=LIVE)
    error = page.get_by_role("alert")
    expect(error).to_contain_text("CredentialsError")
    expect(error).to_contain_text("your settings")
    fix = page.locator("#run-fix")
    expect(fix).to_contain_text("What to do")
    expect(fix.get_by_role("link", name="Reconnect")).to_have_attribute(
        "href", f"/sources/{source_id}"
    )
    check_page(page, "runs-run-failed")

    page.goto("/runs?status=failed")
    rows = page.locator(".runs-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Example, wrong key")
    expect(rows.first).to_contain_text("Failed")
    check_page(page, "runs-list-failed")

    # on a phone the table scrolls inside its frame; the page itself does not scroll sideways
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/runs?status=failed", f"/runs/{run_id}"):
        page.goto(path)
        expect(page.locator("main")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path


def test_a_running_sync_can_be_cancelled_with_the_keyboard(page, live_server, api, sandbox):
    source_id = example_source(api, sandbox, "Example to cancel")
    sandbox_faults(sandbox, status429Burst=2, retryAfterS=5)  # ~10 s of waiting to cancel in
    answer = api.post(f"/api/data-sources/{source_id}/sync")
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["runId"]
    log_in(page, live_server.email, live_server.password, next_path=f"/runs?source={source_id}")

    # The list polls while the run is active; the focus stays on the link it was on.
    details = page.locator(f"#run-{run_id}")
    details.focus()
    with page.expect_response(lambda r: f"/runs?source={source_id}" in r.url):
        pass
    expect(page.locator(f"#run-{run_id}")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/runs/{run_id}$"))
    expect(page.locator("#run-waiting")).to_be_visible(timeout=LIVE)

    page.get_by_role("button", name="Cancel sync").focus()
    page.keyboard.press("Enter")

    expect(page.locator("#run-actions")).to_contain_text("Cancel requested")
    expect(page.locator("#cancel-note")).to_be_focused()  # not lost with the button
    expect(page.locator("#run-live")).to_have_attribute("data-status", "cancelled", timeout=LIVE)
    expect(page.get_by_role("button", name="Sync again")).to_be_visible()
    check_page(page, "runs-run-cancelled")


def test_bad_addresses_answer_a_page_not_a_500(page, live_server):
    log_in(page, live_server.email, live_server.password)
    for path in ("/runs/not-a-run", "/runs/00000000-0000-0000-0000-000000000000"):
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == 404
        expect(page.get_by_role("heading", name="Not Found")).to_be_visible()
    answer = page.goto("/runs?source=nope&status=sideways")
    assert answer is not None
    assert answer.status == 422
    expect(page.get_by_text("choose a source from the list")).to_be_visible()
    expect(page.get_by_text("choose a status from the list")).to_be_visible()
    check_page(page, "runs-bad-filter")


def test_the_audit_log_for_an_admin_and_for_a_member(page, live_server, api):
    log_in(page, live_server.email, live_server.password, next_path="/runs/audit")
    expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()
    rows = page.locator(".audit-table tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() > 0
    expect(page.locator(".audit-table")).to_contain_text("auth.login")
    check_page(page, "runs-audit")

    page.get_by_label("Action").fill("auth.login")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=auth\.login"))
    actions = page.locator(".audit-table tbody tr td:nth-child(3)")
    expect(actions.first).to_have_text("auth.login")
    assert set(actions.all_inner_texts()) == {"auth.login"}
    ids = [
        int(x)
        for x in page.locator(".audit-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.event)"
        )
    ]
    assert ids == sorted(ids, reverse=True)  # newest first
    check_page(page, "runs-audit-filtered")

    # A member is told the log is for admins, and is shown none of it.
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server.member_email, PASSWORD, next_path="/runs/audit")
    expect(page.get_by_role("heading", name="For admins only")).to_be_visible()
    expect(page.locator(".audit-table")).to_have_count(0)
    expect(page.get_by_text(live_server.email)).to_have_count(0)
    check_page(page, "runs-audit-member")

    # ... and sees no runs of the admin's sources.
    page.goto("/runs")
    expect(page.get_by_role("heading", name="No data sources yet")).to_be_visible()
    check_page(page, "runs-member-empty")

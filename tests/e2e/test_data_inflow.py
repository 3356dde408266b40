"""Data Inflow in a real browser against the sandbox: add a Twilio source (field errors at the
fields first), Test, Fetch, review, Create All Data Points, see them stored; a failing Test."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.ui import check_page, log_in

pytestmark = pytest.mark.e2e
# What waits on a provider (Test, Fetch, Create All, the OAuth round trip) may take seconds on a
# busy machine: its expectations wait this long (ms) rather than Playwright's 5 s.
SLOW = 30_000


def box(scope, name: str):
    """A text input by its accessible name (a required field's visible "*" is not part of it)."""
    return scope.get_by_role("textbox", name=name, exact=True)


def api(page, method: str, path: str, body=None):
    """The API called by the page itself: its session cookie and its CSRF token."""
    return page.evaluate(
        """async ([method, path, body]) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const init = {method, headers: {"Content-Type": "application/json", "X-CSRF-Token": token}};
            if (body !== null) init.body = JSON.stringify(body);
            const r = await fetch(path, init);
            if (!r.ok) throw new Error(r.status + " " + await r.text());
            return await r.json();
        }""",
        [method, path, body],
    )


@pytest.fixture(scope="module")
def twilio(sandbox_url):
    config = httpx.get(f"{sandbox_url}/_sandbox/credentials").json()["twilio"]["config"]
    return {**config, "baseUrl": f"{sandbox_url}/twilio"}


def add_twilio_source(page, name: str, config: dict[str, str]) -> None:
    page.goto("/sources/new")
    page.get_by_role("navigation", name="Source types").get_by_role("link", name="Twilio").click()
    form = page.locator("#source-form")
    expect(form.get_by_role("heading", name="2. Twilio")).to_be_visible()
    box(form, "Name").fill(name)
    box(form, "Account SID").fill(config["accountSid"])
    box(form, "Auth Token").fill(config["authToken"])
    form.get_by_label("API root").fill(config["baseUrl"])
    form.get_by_role("button", name="Save source").click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()


def test_add_test_fetch_review_and_create_all(page, live_server, twilio):
    log_in(page, live_server.email, live_server.password)
    expect(page.get_by_role("heading", name="Connect your first data source")).to_be_visible()
    check_page(page, "data-inflow-empty")

    page.get_by_role("link", name="+ Add Data Source").first.click()
    types = page.get_by_role("navigation", name="Source types")
    expect(types.get_by_role("heading", name="Calling")).to_be_visible()
    check_page(page, "data-inflow-add-types")
    types.get_by_role("link", name="Twilio").click()
    expect(page).to_have_url(re.compile(r"/sources/new\?type=twilio$"))
    form = page.locator("#source-form")
    token = box(form, "Auth Token")
    expect(token).to_have_attribute("type", "password")
    check_page(page, "data-inflow-add-twilio")

    # field errors from the validation, each at its field; the secret is never sent back
    box(form, "Name").fill("")
    box(form, "Account SID").fill("not-a-sid")
    token.fill(twilio["authToken"])
    form.get_by_role("button", name="Save source").click()
    sid_error = form.locator("[data-field=accountSid] .field-error")
    expect(sid_error).to_contain_text("pattern")
    expect(form.locator("[data-field=name] .field-error")).to_contain_text("required")
    expect(box(form, "Account SID")).to_have_attribute("aria-invalid", "true")
    expect(box(form, "Auth Token")).to_have_value("")
    check_page(page, "data-inflow-add-errors")

    box(form, "Name").fill("Twilio sandbox")
    box(form, "Account SID").fill(twilio["accountSid"])
    box(form, "Auth Token").fill(twilio["authToken"])
    form.get_by_label("API root").fill(twilio["baseUrl"])
    form.get_by_role("button", name="Save source").click()
    expect(page.get_by_role("heading", level=1, name="Twilio sandbox")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/sources/[0-9a-f-]{36}\?created=1$"))
    source_id = re.search(r"/sources/([0-9a-f-]{36})", page.url).group(1)
    expect(page.get_by_label("Webhook URL")).to_have_value(
        f"{live_server.base_url}/api/webhooks/{source_id}"
    )
    expect(page.get_by_text("Stored (never shown)")).to_be_visible()
    sidebar = page.get_by_role("complementary")
    expect(sidebar.get_by_role("link", name=re.compile("Twilio sandbox"))).to_contain_text(
        "Not tested"
    )
    check_page(page, "data-inflow-source-new")

    page.get_by_role("button", name="Test", exact=True).click()
    steps = page.locator("#test-result .step")
    expect(page.locator("#test-result")).to_contain_text("Passed", timeout=SLOW)
    expect(steps.first).to_be_visible()
    expect(page.locator("#test-result .step-bad")).to_have_count(0)
    expect(sidebar.get_by_role("link", name=re.compile("Twilio sandbox"))).to_contain_text(
        "Healthy"
    )
    check_page(page, "data-inflow-test-passed")

    test_id = api(page, "POST", "/api/tests", {"name": "New IVR menu", "startDate": "2026-11-14"})[
        "id"
    ]

    page.get_by_role("button", name="Fetch", exact=True).click()
    dialog = page.get_by_role("dialog", name="Fetch data points")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("From")).not_to_have_value("")
    expect(dialog.get_by_label("To (inclusive)")).not_to_have_value("")
    check_page(page, "data-inflow-fetch-range")
    dialog.get_by_role("button", name="Fetch", exact=True).click()

    table = dialog.get_by_role("table", name="Fetched data points")
    expect(table).to_be_visible(timeout=SLOW)
    expect(
        dialog.get_by_role("heading", name=re.compile(r"Review \d+ data points"))
    ).to_be_visible()
    fetched = int(re.search(r"Review (\d+)", dialog.locator("#review-heading").inner_text())[1])
    assert fetched > 0
    metrics = table.locator("tr.total").count()  # one total per metric
    assert metrics >= 1
    expect(table.get_by_role("columnheader", name="Dimensions")).to_be_visible()
    check_page(page, "data-inflow-fetch-review")

    dialog.get_by_role("checkbox", name="New IVR menu").check()
    dialog.get_by_role("button", name="Create All Data Points").click()
    expect(dialog.get_by_role("status")).to_contain_text(f"{fetched} created", timeout=SLOW)
    expect(dialog.get_by_role("status")).to_contain_text("linked to 1 test")
    assert api(page, "GET", f"/api/tests/{test_id}")["dataPointCount"] == fetched
    check_page(page, "data-inflow-created")
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(dialog).to_be_hidden()

    stored = page.get_by_role("table", name=re.compile("^Stored data points of Twilio sandbox"))
    expect(stored).to_be_visible(timeout=SLOW)
    expect(page.locator("#stored")).to_contain_text(f"{fetched:,} in all")
    expect(page.get_by_role("table", name="By metric").get_by_role("row")).to_have_count(
        1 + metrics  # a header row and one row per fetched metric
    )
    check_page(page, "data-inflow-stored")

    # ... and see its chart: the Metrics page for this source draws what the API's series says
    page.get_by_role("link", name="See them charted on Metrics →").click()
    chart = page.locator("#chart-total_calls")
    expect(chart).to_have_attribute("data-drawn", "true", timeout=SLOW)
    drawn = json.loads(page.locator("#chart-total_calls-data").text_content())
    points = drawn["series"][0]["data"]["points"]
    series = api(page, "GET", f"/api/data-points?metric=total_calls&sourceId={source_id}")
    shown = {(p["periodStart"], p["value"]) for p in points}
    assert shown, "the chart draws the stored days"
    assert shown <= {(p["periodStart"], p["value"]) for p in series["points"]}
    check_page(page, "data-inflow-charted")


def test_a_failing_test_shows_its_reason(page, live_server, twilio):
    log_in(page, live_server.email, live_server.password)
    add_twilio_source(page, "Twilio wrong token", {**twilio, "authToken": "0" * 32})

    page.get_by_role("button", name="Test", exact=True).click()

    result = page.locator("#test-result")
    expect(result).to_contain_text("Failed", timeout=SLOW)
    failed = result.locator(".step-bad")
    expect(failed).to_have_count(1)
    assert failed.locator(".step-message").inner_text().strip()
    badge = page.locator("#health-" + page.url.split("/")[-1].split("?")[0])
    expect(badge).to_contain_text("Check credentials")  # the token was refused
    check_page(page, "data-inflow-test-failed")

    page.get_by_role("button", name="Fetch", exact=True).click()
    dialog = page.get_by_role("dialog", name="Fetch data points")
    dialog.get_by_role("button", name="Fetch", exact=True).click()
    expect(dialog.get_by_role("alert")).to_contain_text("The fetch failed", timeout=SLOW)
    expect(dialog.get_by_role("alert")).to_contain_text("20003")  # Twilio's own reason
    check_page(page, "data-inflow-fetch-failed")


def test_fetch_range_errors_are_shown_at_the_fields(page, live_server, twilio):
    log_in(page, live_server.email, live_server.password)
    add_twilio_source(page, "Twilio range", twilio)
    page.get_by_role("button", name="Fetch", exact=True).click()
    dialog = page.get_by_role("dialog", name="Fetch data points")
    dialog.get_by_label("From").fill("2030-01-02")
    dialog.get_by_label("To (inclusive)").fill("2030-01-01")

    dialog.get_by_role("button", name="Fetch", exact=True).click()

    expect(dialog.locator("[data-field=start_date] .field-error")).to_contain_text("future")
    expect(dialog.get_by_label("From")).to_have_attribute("aria-invalid", "true")
    check_page(page, "data-inflow-fetch-errors")


def test_connect_starts_oauth_from_the_browser_and_returns_to_the_source(
    page, live_server, sandbox_url
):
    config = httpx.get(f"{sandbox_url}/_sandbox/credentials").json()["linkedin"]["config"]
    log_in(page, live_server.email, live_server.password)
    page.goto("/sources/new?type=linkedin")
    form = page.locator("#source-form")
    box(form, "Name").fill("LinkedIn page")
    for name, value in config.items():
        form.locator(f"[name={name}]").fill(value)
    form.get_by_role("button", name="Save source").click()
    expect(page.get_by_role("heading", level=1, name="LinkedIn page")).to_be_visible()
    source_id = re.search(r"/sources/([0-9a-f-]{36})", page.url).group(1)

    page.get_by_role("button", name="Connect").click()  # → the sandbox's consent → callback

    expect(page).to_have_url(re.compile(rf"/sources/{source_id}\?oauth=connected$"), timeout=SLOW)
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#test-result")).to_contain_text("Passed", timeout=SLOW)
    check_page(page, "data-inflow-oauth-connected")


def test_every_types_form_renders_accessibly(page, live_server):
    log_in(page, live_server.email, live_server.password)
    page.goto("/sources/new")
    types = page.get_by_role("navigation", name="Source types").get_by_role("link")
    hrefs = [types.nth(i).get_attribute("href") for i in range(types.count())]
    assert len(hrefs) >= 10

    for href in hrefs:
        page.goto(href)
        form = page.locator("#source-form form")
        expect(form.get_by_role("button", name="Save source")).to_be_visible()
        for secret in form.locator("input[type=password]").all():
            expect(secret).to_have_value("")
        check_page(page, "data-inflow-add-" + href.rsplit("=", 1)[1])


def test_edit_keeps_a_secret_left_empty_and_shows_errors_at_the_fields(page, live_server, twilio):
    log_in(page, live_server.email, live_server.password)
    add_twilio_source(page, "Twilio to edit", twilio)
    page.get_by_role("link", name="Edit", exact=True).click()
    form = page.locator("#source-form")
    token = box(form, "Auth Token")
    expect(token).to_have_value("")  # never pre-filled
    expect(token).to_have_attribute("placeholder", "Stored; leave empty to keep it")
    expect(box(form, "Account SID")).to_have_value(twilio["accountSid"])
    check_page(page, "data-inflow-edit")

    box(form, "Name").fill("Twilio edited")
    form.get_by_role("textbox", name="Schedule (optional)").fill("every now and then")
    form.get_by_role("button", name="Save changes").click()
    expect(form.locator("[data-field=schedule] .field-error")).to_be_visible()
    expect(page.get_by_role("complementary")).not_to_contain_text("Twilio edited")
    check_page(page, "data-inflow-edit-errors")

    form.get_by_role("textbox", name="Schedule (optional)").fill("every 6h")
    form.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", level=1, name="Twilio edited")).to_be_visible()
    expect(page.get_by_text("Stored (never shown)")).to_be_visible()
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator("#test-result")).to_contain_text(
        "Passed", timeout=SLOW
    )  # the token was kept


def test_delete_asks_in_a_dialog_that_keeps_the_focus(page, live_server, twilio):
    log_in(page, live_server.email, live_server.password)
    add_twilio_source(page, "Twilio to delete", twilio)

    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog", name="Delete Twilio to delete?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    for _ in range(4):  # Tab stays among the dialog's controls
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('dialog') !== null")
    check_page(page, "data-inflow-delete-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Delete…")).to_be_focused()

    page.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete source").click()

    expect(page).to_have_url(re.compile(r"/sources\?deleted="))
    expect(page.get_by_role("status").filter(has_text="Deleted")).to_contain_text(
        "Twilio to delete"
    )
    expect(page.get_by_role("complementary")).not_to_contain_text("Twilio to delete")


def test_a_source_paused_after_failing_in_a_row_is_resumed_from_its_page(page, live_server, twilio):
    log_in(page, live_server.email, live_server.password)
    add_twilio_source(page, "Twilio keeps failing", {**twilio, "authToken": "0" * 32})
    source_id = page.url.split("/")[-1].split("?")[0]
    for _ in range(5):  # INFLOW_PAUSE_AFTER_FAILURES' default
        run_id = api(page, "POST", f"/api/data-sources/{source_id}/sync")["runId"]
        for _ in range(SLOW // 50):
            if api(page, "GET", f"/api/runs/{run_id}")["status"] in ("failed", "succeeded"):
                break
            page.wait_for_timeout(50)
        else:
            pytest.fail(f"run {run_id} did not end")

    page.reload()
    card = page.get_by_role("region", name="Sync health")
    expect(page.locator(".page-head")).to_contain_text("Paused")
    expect(card).to_contain_text("paused after 5 failed syncs in a row")
    expect(card.get_by_test_id("consecutive-failures")).to_have_text("5")
    expect(page.locator(f"#side-health-{source_id}")).to_contain_text("Paused")
    check_page(page, "data-inflow-paused")

    card.get_by_role("button", name="Resume").click()

    expect(page.get_by_text("The source is resumed")).to_be_visible()
    expect(page.get_by_role("region", name="Sync health").get_by_role("button")).to_have_count(0)
    expect(page.locator(".page-head")).not_to_contain_text("Paused")
    assert api(page, "GET", f"/api/data-sources/{source_id}")["health"]["paused"] is False

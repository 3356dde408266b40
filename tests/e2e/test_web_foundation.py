"""The web UI's shell in a real browser: log in and out, the theme, CSRF, errors, axe-core."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.ui import check_page, log_in

pytestmark = pytest.mark.e2e


def test_login_wrong_then_right_returns_to_the_page_asked_for(page, live_server):
    page.goto("/marketplace")
    expect(page).to_have_url(re.compile(r"/login\?next=/marketplace$"))
    check_page(page, "login")

    page.get_by_label("Email").fill(live_server.email)
    page.get_by_label("Password").fill("not the password")
    with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
    expect(page.get_by_label("Email")).to_have_value(live_server.email)
    check_page(page, "login-failed")

    page.get_by_label("Password").fill(live_server.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/marketplace$"))
    expect(page.get_by_role("link", name="Marketplace")).to_have_attribute("aria-current", "page")
    cookie = next(c for c in page.context.cookies() if c["name"] == "inflow_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"


def test_logout_ends_the_session(page, live_server):
    log_in(page, live_server.email, live_server.password)
    expect(page).to_have_url(re.compile(r"/sources$"))
    token = next(c for c in page.context.cookies() if c["name"] == "inflow_session")["value"]

    page.get_by_role("button", name="Log out").click()

    expect(page).to_have_url(re.compile(r"/login$"))
    assert all(c["name"] != "inflow_session" for c in page.context.cookies())
    page.goto("/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=/runs$"))
    # the token itself is gone, not only the cookie
    status = page.evaluate(
        "async t => (await fetch('/api/me', {headers: {Authorization: 'Bearer ' + t}})).status",
        token,
    )
    assert status == 401


def test_theme_toggle_persists_across_pages(page, live_server):
    page.emulate_media(color_scheme="light")
    log_in(page, live_server.email, live_server.password)
    toggle = page.get_by_role("button", name="Dark theme")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")

    toggle.click()

    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    page.goto("/spaces")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") != background
    assert page.evaluate("localStorage.getItem('inflow-theme')") == "dark"
    page.get_by_role("button", name="Dark theme").click()
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")


def test_csrf_token_is_required_for_cookie_requests_that_change_state(page, live_server):
    log_in(page, live_server.email, live_server.password)
    post = """async withToken => {
        const headers = {"Content-Type": "application/json"};
        if (withToken) headers["X-CSRF-Token"] =
            document.querySelector('meta[name="csrf-token"]').content;
        const r = await fetch("/api/tokens", {method: "POST", headers,
                                               body: JSON.stringify({name: "from-the-page"})});
        return {status: r.status, body: await r.json()};
    }"""

    refused = page.evaluate(post, False)
    accepted = page.evaluate(post, True)

    assert refused["status"] == 401
    assert "CSRF" in refused["body"]["detail"]
    assert accepted["status"] == 201, accepted


def test_unknown_page_is_an_html_404_and_the_api_keeps_problem_json(page, live_server):
    log_in(page, live_server.email, live_server.password)
    response = page.goto("/no-such-page")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not Found")
    expect(page.get_by_role("alert")).to_contain_text("/no-such-page")
    check_page(page, "not-found")
    api = page.evaluate(
        "async () => { const r = await fetch('/api/nope');"
        " return [r.status, r.headers.get('content-type')]; }"
    )
    assert api == [404, "application/problem+json"]


@pytest.mark.parametrize(
    "section", ["sources", "marketplace", "spaces", "metrics", "tests", "runs"]
)
def test_every_section_renders_accessibly(page, live_server, section):
    log_in(page, live_server.email, live_server.password, next_path=f"/{section}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    check_page(page, f"section-{section}")


@pytest.mark.parametrize("section", ["sources", "tests"])
def test_a_phone_sees_every_section_link_and_no_sideways_scroll(page, live_server, section):
    """At 390 px the top bar grows to fit: every section's link shows and can be clicked (not
    hidden under the fixed-height bar), and the page does not scroll sideways."""
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server.email, live_server.password, next_path=f"/{section}")

    nav = page.get_by_role("navigation", name="Sections")
    for name in ("Data Inflow", "Marketplace", "Spaces", "Metrics", "Tests", "Runs"):
        link = nav.get_by_role("link", name=name)
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box is not None
        hit = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.closest('a')?.textContent?.trim()",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit == name, f"{name} is covered at its place (by {hit!r})"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()


def test_the_login_page_loads_without_a_console_error(page, live_server):
    """Nothing the page asks for is missing (the browser's own /favicon.ico request was a 404
    on every page)."""
    failed: list[str] = []
    page.on("console", lambda m: m.type == "error" and failed.append(m.text))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))

    page.goto("/login")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)  # the icon is asked for after the load

    assert failed == []

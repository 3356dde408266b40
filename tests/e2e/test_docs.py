"""The API reference at /docs in a real browser, and a login made from the browser."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def block_foreign(page, base_url: str) -> None:
    # Offline a CDN request would hang until its timeout; refusing it keeps the failure quick.
    page.route(
        "**/*",
        lambda route: route.continue_()
        if route.request.url.startswith(base_url)
        else route.abort(),
    )


def browser_fetch(page, method: str, path: str, body=None, token: str | None = None) -> dict:
    """``fetch()`` run by the page itself: the browser's own networking, cookies and origin."""
    return page.evaluate(
        """async ([method, path, body, token]) => {
            const headers = {"Content-Type": "application/json"};
            if (token) headers["Authorization"] = "Bearer " + token;
            const init = {method, headers};
            if (body !== null) init.body = JSON.stringify(body);
            const response = await fetch(path, init);
            return {status: response.status, body: await response.json()};
        }""",
        [method, path, body, token],
    )


def open_docs(page) -> None:
    """Load /docs and wait until Swagger UI has rendered the operations or its error."""
    page.goto("/docs")
    page.locator(".opblock, .version-pragma, .errors-wrapper").first.wait_for()
    problem = page.locator(".version-pragma, .errors-wrapper")
    assert problem.count() == 0, problem.first.inner_text()


def test_docs_loads_swagger_ui_from_the_server_only(page, live_server):
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    block_foreign(page, live_server.base_url)

    response = page.goto("/docs")
    assert response is not None
    assert response.status == 200
    page.wait_for_load_state("networkidle")

    expect(page).to_have_title("Inflow API")
    foreign = [u for u in urls if not u.startswith(live_server.base_url)]
    assert not foreign, f"requests left the server: {foreign}"
    paths = {urlsplit(u).path for u in urls}
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"} <= paths
    assert "/openapi.json" in paths  # the bundle ran and fetched the spec
    assert not errors


def test_docs_renders_the_inflow_operations(page, live_server):
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    block_foreign(page, live_server.base_url)

    open_docs(page)

    for path in ("/api/auth/login", "/api/me", "/api/data-sources"):
        expect(page.locator(f'.opblock-summary-path[data-path="{path}"]').first).to_be_visible()
    expect(page.locator(".info .title")).to_contain_text("Inflow")
    page.wait_for_load_state("networkidle")
    assert all(u.startswith(live_server.base_url) for u in urls), urls


def test_login_through_swagger_ui_gives_a_token_for_me(page, live_server):
    open_docs(page)
    login = page.locator("#operations-auth-auth-login")
    login.locator(".opblock-summary").click()
    login.get_by_role("button", name="Try it out").click()
    login.locator("textarea.body-param__text").fill(
        json.dumps({"email": live_server.email, "password": live_server.password})
    )
    with page.expect_response("**/api/auth/login") as answer:
        login.get_by_role("button", name="Execute").click()
    assert answer.value.status == 200
    expect(login.locator(".live-responses-table tr.response .response-col_status")).to_have_text(
        "200"
    )
    token = answer.value.json()["token"]

    me = browser_fetch(page, "GET", "/api/me", token=token)
    assert me["status"] == 200
    assert me["body"]["email"] == live_server.email


def test_login_from_the_browser_then_me(page, live_server):
    page.goto("/docs")  # the fetches below run in this page, on the server's origin
    creds = {"email": live_server.email, "password": live_server.password}

    bad = browser_fetch(page, "POST", "/api/auth/login", {**creds, "password": "wrong password"})
    assert bad["status"] == 401
    login = browser_fetch(page, "POST", "/api/auth/login", creds)
    assert login["status"] == 200, login
    user = login["body"]["user"]
    assert (user["email"], user["role"]) == (live_server.email, "admin")

    me = browser_fetch(page, "GET", "/api/me", token=login["body"]["token"])
    assert me == {"status": 200, "body": user}
    assert browser_fetch(page, "GET", "/api/me")["status"] == 401

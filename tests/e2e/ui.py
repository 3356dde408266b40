"""Helpers for the web UI's browser tests: log in, check a page with axe-core, screenshot it.

``check_page(page, name)`` is what every page test calls once the page shows what it should:
it runs axe-core (from the npm package, ``node_modules/axe-core``) in the light and in the dark
theme, fails on any serious or critical violation, and saves a full-page screenshot of each
theme as ``test-results/screenshots/<name>-light.png`` / ``-dark.png`` (CI keeps the folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-results" / "screenshots"
BLOCKING = ("serious", "critical")


def log_in(page: Any, email: str, password: str, *, next_path: str = "/") -> None:
    """Log in through the form (starting at ``next_path``) and wait for the app's top bar."""
    page.goto(next_path)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Sections")).to_be_visible()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: run scripts/bootstrap (npm ci)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text())
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary),
            }));
        }"""
    )
    return [v for v in result if v["impact"] in BLOCKING]


def assert_accessible(page: Any, what: str = "") -> None:
    found = axe_violations(page)
    assert not found, f"axe-core on {what or page.url}:\n" + "\n".join(
        f"- {v['impact']} {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"][:5])
        for v in found
    )


def set_theme(page: Any, theme: str) -> None:
    """Show the page in a theme without storing a choice (as the system preference would)."""
    page.emulate_media(color_scheme=theme)
    page.evaluate("t => { document.documentElement.dataset.theme = t; }", theme)


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def check_page(page: Any, name: str) -> list[Path]:
    """axe-core clean and a screenshot, in the light theme and then the dark one (the page is
    left in the theme it had)."""
    before = page.evaluate("document.documentElement.dataset.theme || ''")
    shots = []
    for theme in ("light", "dark"):
        set_theme(page, theme)
        assert_accessible(page, f"{name} ({theme})")
        shots.append(screenshot(page, f"{name}-{theme}"))
    page.emulate_media(color_scheme="light")
    page.evaluate(
        "t => { if (t) document.documentElement.dataset.theme = t; "
        "else delete document.documentElement.dataset.theme; }",
        before,
    )
    return shots

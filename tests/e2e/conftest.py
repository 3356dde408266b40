"""Browser fixtures: Debian's Chromium through Playwright's sync API, a real ``inflow serve``.

``playwright install`` cannot download a browser here, so Playwright drives /usr/bin/chromium.
When it cannot start, ``unavailable()`` skips locally and fails under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from inflow.storage.db import create_db_engine, make_session_factory, upgrade
from tests.conftest import clock_env, unavailable
from tests.factories import PASSWORD, make_user
from tests.servers import INFLOW, InflowServer, free_port, inflow_env

CHROMIUM = os.environ.get("INFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
# The page is opened as http://inflow.test:PORT, not 127.0.0.1: Swagger UI treats localhost
# specially (no online validator badge), and a deployed server is never on localhost.
HOST = "inflow.test"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
]


@dataclass(frozen=True)
class LiveServer:
    base_url: str  # as the browser sees it
    email: str
    password: str


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the package (closed before other packages' event loops run)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed: {exc}")
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
    except Error as exc:
        pw.stop()
        unavailable(f"Chromium at {CHROMIUM} did not launch: {exc}")
    yield chromium
    chromium.close()
    pw.stop()


@pytest.fixture(scope="package")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``inflow sandbox`` (every provider's emulator) on the test clock, for the package;
    a source reaches it at ``{sandbox_url}/<provider>`` (``/_sandbox/credentials`` lists them)."""
    workdir = tmp_path_factory.mktemp("sandbox")
    port = free_port()
    env = inflow_env(workdir / "data", **clock_env())
    with (workdir / "sandbox.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(INFLOW), "sandbox", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "sandbox.log").read_text())
        try:
            if httpx.get(f"{url}/_sandbox/credentials", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("inflow sandbox did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``inflow serve`` on a fresh SQLite file with one admin, for the whole module; on the
    test clock (as the sandbox), and allowed to reach the sandbox on 127.0.0.1."""
    workdir = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{workdir / 'inflow.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    admin = make_user(make_session_factory(engine), "e2e-admin@example.com", role="admin")
    engine.dispose()
    env = inflow_env(workdir / "data", url, INFLOW_ALLOW_PRIVATE_URLS="true", **clock_env())
    server = InflowServer("serve", env=env, workdir=workdir)
    server.start()
    try:
        yield LiveServer(f"http://{HOST}:{server.port}", admin.email, PASSWORD)
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies, no cache) with the server as its base URL."""
    context = browser.new_context(base_url=live_server.base_url)
    try:
        yield context.new_page()
    finally:
        context.close()

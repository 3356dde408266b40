"""Fixtures of the conformance suite: the providers' official SDKs read the sandbox over real
HTTP, and Inflow syncs the same source against the same server in the same test.

The sandbox runs as a real server (uvicorn on a free loopback port, in a thread of the test
process): the SDKs speak HTTP to it exactly as to the vendor, through their documented base-URL
hooks, and its clock is the test's (time-machine moves ``time.time()`` for every thread), so the
SDK, the sandbox and Inflow's sync agree on "today". The SDKs are test-only dependencies: no
module under src/ imports one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from inflow.http.client import HttpOptions
from inflow.sandbox import create_app
from inflow.storage.crypto import Vault
from inflow.sync.engine import EngineDeps
from tests.servers import free_port
from tests.sync.conftest import settings, vault  # noqa: F401 (fixtures, found by name)
from tests.sync.helpers import make_source, run_direct


class LiveSandbox:
    """The sandbox over loopback: its URL, its control routes, and Inflow syncs against it."""

    def __init__(self, url: str, factory: sessionmaker[Session], keys: Vault) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        self.factory, self.vault = factory, keys

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text
        return response.json()

    def configure(self, slug: str, **body: Any) -> Any:
        """``POST /_sandbox/{slug}/config`` (``volume=…``, ``faults=…``, ``seed=…``)."""
        return self._ok(self.http.post(f"/_sandbox/{slug}/config", json=body))

    def credentials(self, slug: str) -> dict[str, Any]:
        """The emulator's working source config (and its OAuth client, when it has one)."""
        entry: dict[str, Any] = self._ok(self.http.get("/_sandbox/credentials"))[slug]
        return entry

    def stats(self, slug: str) -> Any:
        return self._ok(self.http.get(f"/_sandbox/{slug}/stats"))

    def expected(self, slug: str, **params: Any) -> Any:
        return self._ok(self.http.get(f"/_sandbox/{slug}/expected", params=params))

    def deps(self) -> EngineDeps:
        """The sync engine's dependencies, over real HTTP to this server."""
        return EngineDeps(
            factory=self.factory, vault=self.vault, options=HttpOptions(allow_private_urls=True)
        )

    def sync(self, type_: str, config: dict[str, Any]) -> uuid.UUID:
        """A source of ``type_`` made with ``config`` and synced once (it must succeed)."""
        source_id = make_source(self.factory, self.vault, type_=type_, config=config)
        result = run_direct(self.deps(), source_id)
        assert result.status == "succeeded", result
        return source_id


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """Where a test registers the SDK clients it made, closed when it ends (an SDK's session
    left open is a ResourceWarning, an error in this suite)."""
    with contextlib.ExitStack() as stack:
        yield stack


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own handlers
        pass


@pytest.fixture
def live(factory: sessionmaker[Session], vault: Vault) -> Iterator[LiveSandbox]:  # noqa: F811
    """A fresh sandbox served over loopback HTTP for one test."""
    port = free_port()
    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the sandbox stopped before it listened"
        assert time.monotonic() < deadline, "the sandbox did not start"
        time.sleep(0.01)
    sandbox = LiveSandbox(f"http://127.0.0.1:{port}", factory, vault)
    try:
        yield sandbox
    finally:
        sandbox.http.close()
        server.should_exit = True
        thread.join(timeout=10)

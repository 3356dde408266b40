"""Fixtures of the sync and OAuth integration tests: a real database (SQLite and PostgreSQL,
from tests/conftest.py), the real sandbox in-process (``httpx.ASGITransport``) or over loopback
HTTP (``python -m inflow.sandbox`` in a subprocess), and the real API and engine wired to it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors import registry
from inflow.http import retry
from inflow.http.client import HttpOptions
from inflow.sandbox import create_app as create_sandbox
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing, Vault
from inflow.storage.db import create_db_engine, make_session_factory, upgrade
from inflow.sync.engine import EngineDeps
from tests.conftest import TestClient, _truncate, clock_env, fresh_pg_database
from tests.sync.connectors import WINDOWED
from tests.sync.helpers import ROOT, SANDBOX_HOST, SandboxControl, child_env


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shared settings, plus private URLs: the sandbox is on this machine."""
    return Settings(
        data_dir=tmp_path / "data",
        rate_limit_default="10000/minute",
        log_format="console",
        allow_private_urls=True,
    )


@pytest.fixture(autouse=True)
def real_waits() -> Iterator[None]:
    """Retries wait for real unless a test asks for ``fast_retries``; nothing leaks out."""
    retry.set_testing(False)
    yield
    retry.set_testing(False)


@pytest.fixture
def fast_retries() -> None:
    """Backoff and Retry-After waits cut to zero (the attempts still happen)."""
    retry.set_testing(True, cap_s=0.0)


@pytest.fixture
def sandbox() -> FastAPI:
    """A fresh sandbox app (its own seed, volume, faults, stats and issued tokens)."""
    return create_sandbox()


@pytest.fixture
def sb(sandbox: FastAPI) -> Iterator[SandboxControl]:
    """The in-process sandbox's control routes."""
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield SandboxControl(http)


@pytest.fixture
def app(settings: Settings, engine: Engine, sandbox: FastAPI) -> FastAPI:
    """The real API, its provider calls routed in-process to ``sandbox``."""
    from inflow.api.app import create_app

    return create_app(
        settings, engine=engine, migrate=False, transport=httpx.ASGITransport(app=sandbox)
    )


@pytest.fixture
def vault(settings: Settings) -> Vault:
    """The vault of ``settings`` (the same key file the app uses)."""
    return Vault(KeyRing(settings).keys())


@pytest.fixture
def deps(factory: sessionmaker[Session], vault: Vault, sandbox: FastAPI) -> EngineDeps:
    """The engine's dependencies, without the API, against the in-process sandbox."""
    return EngineDeps(
        factory=factory,
        vault=vault,
        options=HttpOptions(allow_private_urls=True),
        transport=httpx.ASGITransport(app=sandbox),
    )


@pytest.fixture
def windowed(monkeypatch: pytest.MonkeyPatch) -> str:
    """Install the test-only ``example_windowed`` connector, as an entry point would."""
    monkeypatch.setitem(registry(), WINDOWED.slug, WINDOWED)
    return WINDOWED.slug


# ---------------------------------------------------------------- a second, fresh database


@pytest.fixture(scope="session")
def pg_ref_url() -> Iterator[str]:
    """A second PostgreSQL database (migrated once), for "a clean run into a fresh database"."""
    with fresh_pg_database("inflow_test_ref") as url:
        eng = create_db_engine(url)
        upgrade(eng)
        eng.dispose()
        yield url


@pytest.fixture
def fresh_engine(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path, sqlite_template: Path
) -> Iterator[Engine]:
    """Another empty database on the same backend as ``engine``."""
    if engine.dialect.name == "sqlite":
        path = tmp_path / "fresh.db"
        shutil.copy(sqlite_template, path)
        eng = create_db_engine(f"sqlite:///{path}")
    else:
        eng = create_db_engine(request.getfixturevalue("pg_ref_url"))
        _truncate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def fresh_factory(fresh_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(fresh_engine)


# ---------------------------------------------------------------- the sandbox over loopback


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_sandbox(args: list[str], log: Path) -> Iterator[str]:
    """A sandbox process (``python ARGS``, given a free port) until the generator closes."""
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *[a.format(port=port) for a in args]],
            cwd=ROOT,
            env={**child_env(), **clock_env()},  # the test clock, from the session's start
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/_sandbox/example/config", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the sandbox did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def live_sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m inflow.sandbox`` (uvicorn) in its own process on a free loopback port."""
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    yield from _serve_sandbox(["-m", "inflow.sandbox", "--port", "{port}"], log)


PINNED_DAYS_BACK = 2


@pytest.fixture(scope="session")
def pinned_sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sandbox over loopback, its clock standing still ``PINNED_DAYS_BACK`` days before it
    started (``tests/sync/pinned_sandbox.py``): servers and runners on real clocks see the
    same past calls at any hour, across a midnight too."""
    log = tmp_path_factory.mktemp("sandbox") / "pinned.log"
    args = ["-m", "tests.sync.pinned_sandbox", "{port}", str(PINNED_DAYS_BACK)]
    yield from _serve_sandbox(args, log)


@pytest.fixture
def live_sb(live_sandbox_url: str) -> Iterator[SandboxControl]:
    """The loopback sandbox's control routes, reset before the test."""
    with httpx.Client(base_url=live_sandbox_url, timeout=10) as http:
        control = SandboxControl(http)
        control.reset()
        yield control

"""CLI fixtures: a workspace (data dir + database) per test or module, and servers that always stop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database
from tests.servers import InflowServer, inflow_env, run_inflow


@dataclass
class Workspace:
    """Where one `inflow` installation keeps its state, and how to run commands against it."""

    root: Path
    env: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return Path(self.env["INFLOW_DATA_DIR"])

    def run(self, *args: str):  # type: ignore[no-untyped-def]
        return run_inflow(*args, env=self.env)


def make_workspace(root: Path, database_url: str | None = "sqlite") -> Workspace:
    if database_url == "sqlite":
        database_url = f"sqlite:///{root / 'inflow.db'}"
    return Workspace(root, inflow_env(root / "data", database_url))


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh SQLite file, nothing migrated yet."""
    return make_workspace(tmp_path)


@pytest.fixture(scope="module")
def shared_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One migrated SQLite workspace for the module (tests use their own user emails)."""
    ws = make_workspace(tmp_path_factory.mktemp("cli"))
    result = ws.run("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return ws


@pytest.fixture(scope="module")
def shared_server(shared_workspace: Workspace) -> Iterator[InflowServer]:
    """``inflow serve`` on the module's workspace."""
    server = InflowServer("serve", env=shared_workspace.env, workdir=shared_workspace.root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., InflowServer]]:
    """Start ``inflow serve``/``demo`` servers; every one is stopped when the test ends."""
    started: list[InflowServer] = []

    def start(command: str, env: dict[str, str]) -> InflowServer:
        server = InflowServer(command, env=env, workdir=tmp_path / "servers")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    with fresh_pg_database("inflow_cli") as url:
        yield url


@pytest.fixture
def pg_workspace(tmp_path: Path, pg_database_url: str) -> Workspace:
    """A workspace whose database is a new PostgreSQL database."""
    return make_workspace(tmp_path, pg_database_url)

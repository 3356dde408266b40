"""The data dir is 0700 and its files 0600 after a start, whatever existed before (issue 11.8).

Each test sets a umask of 022 (the usual one, under which files are created 0644) and starts the
real app on the real SQLite file of the data dir, then writes through it so that SQLite makes its
``-wal`` and ``-shm`` files.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from inflow.api.app import create_app
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing
from inflow.storage.db import make_session_factory
from inflow.storage.files import private_file, private_sqlite
from inflow.storage.keys import rotate_keys


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(folder: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in folder.iterdir()}


def start_and_write(settings: Settings) -> None:
    """One start of the app; then a write, as a request would, with the engine still open."""
    app = create_app(settings)
    engine = app.state.engine
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        names = {p.name for p in settings.data_dir.iterdir()}
        assert {"inflow.db-wal", "inflow.db-shm"} <= names  # WAL mode: both exist while open
        assert modes(settings.data_dir) == dict.fromkeys(names, 0o600)
    finally:
        engine.dispose()


def test_fresh_start_in_an_existing_0755_data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    assert mode(data) == 0o755

    start_and_write(Settings(data_dir=data, log_format="console"))

    assert mode(data) == 0o700
    assert modes(data)["inflow.db"] == 0o600
    assert modes(data)["secret.key"] == 0o600


def test_start_tightens_an_existing_0644_database_and_key_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    settings = Settings(data_dir=data, log_format="console")
    KeyRing(settings).keys()
    (data / "secret.key").chmod(0o644)
    key = (data / "secret.key").read_text()
    # A database an older version made 0644, still open: its -wal and -shm are 0644 too.
    older = sqlite3.connect(data / "inflow.db")
    try:
        older.execute("PRAGMA journal_mode=WAL")
        older.execute("CREATE TABLE old (x INTEGER)")
        older.commit()
        (data / "inflow.db").chmod(0o644)
        assert {n: mode(data / n) for n in ("inflow.db", "inflow.db-wal", "inflow.db-shm")} == {
            "inflow.db": 0o644,
            "inflow.db-wal": 0o644,
            "inflow.db-shm": 0o644,
        }

        start_and_write(settings)
    finally:
        older.close()

    assert mode(data) == 0o700
    assert (data / "secret.key").read_text() == key  # tightened, not replaced
    assert modes(data) == {"inflow.db": 0o600, "secret.key": 0o600}  # the sidecars: see above


def test_env_key_still_tightens_the_data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)

    start_and_write(Settings(data_dir=data, secret_key="k" * 40, log_format="console"))

    assert mode(data) == 0o700
    assert "secret.key" not in modes(data)


def test_key_rotation_lock_file_is_0600(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", log_format="console")
    app = create_app(settings)
    try:
        rotate_keys(make_session_factory(app.state.engine), KeyRing(settings))
    finally:
        app.state.engine.dispose()

    assert modes(settings.data_dir)["keys.lock"] == 0o600
    assert modes(settings.data_dir)["secret.key"] == 0o600


def test_private_helpers_leave_a_file_of_its_contents_and_a_custom_folder_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "x.db").write_bytes(b"kept")
    (shared / "x.db").chmod(0o644)

    private_sqlite(shared / "x.db")
    private_file(shared / "new")

    assert mode(shared) == 0o755  # a folder named by INFLOW_DATABASE_URL is not ours to close
    assert (mode(shared / "x.db"), (shared / "x.db").read_bytes()) == (0o600, b"kept")
    assert (mode(shared / "new"), (shared / "new").read_bytes()) == (0o600, b"")

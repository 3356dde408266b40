"""Shared fixtures: the test clock, settings, a real database (SQLite and PostgreSQL), the app
and its client.

No test reads the wall clock: each starts at the instant ``INFLOW_TEST_CLOCK`` names (ISO 8601,
default ``DEFAULT_CLOCK``), and time ticks on from there (time-machine moves ``time.time()``,
``datetime.now()`` and the like; ``time.monotonic()`` is left alone). CI runs the provider and
sync suites at other pinned instants too (scripts/check). Python processes a test starts run on
the same clock (tests/clock/sitecustomize.py).

Every storage/API test that takes ``engine`` (or ``app``/``client``) runs twice: on a fresh
SQLite file and on PostgreSQL (127.0.0.1:5432 unless ``INFLOW_TEST_POSTGRES_URL`` says
otherwise). Under ``CI=true`` a suite that cannot run is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
import time_machine

# argon2 at full cost makes each of the suite's thousands of logins ~0.3 s; the hashing itself
# is the library's, so the tests lower its cost (subprocesses inherit this too).
os.environ.setdefault("INFLOW_TEST_FAST_HASHING", "1")
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from inflow.settings import Settings
from inflow.storage.db import create_db_engine, make_session_factory, upgrade
from inflow.storage.models import Base

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

DEFAULT_CLOCK = "2026-11-18T12:00:00+00:00"  # a Wednesday at noon: no day changes during a test
TEST_CLOCK = datetime.fromisoformat(os.environ.get("INFLOW_TEST_CLOCK") or DEFAULT_CLOCK)
if TEST_CLOCK.tzinfo is None:
    raise ValueError(f"INFLOW_TEST_CLOCK must name its UTC offset: {TEST_CLOCK.isoformat()}")
CLOCK_FOLDER = Path(__file__).with_name("clock")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "INFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Under pytest-xdist each worker (gw0, gw1, …) empties a Redis database of its own: 15, 13, 11 …
XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = os.environ.get(
    "INFLOW_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{max(15 - 2 * XDIST_WORKER, 0)}"
)


def unavailable(reason: str) -> None:
    """Skip locally; under CI a missing service fails the run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: every suite must run)", pytrace=False)
    pytest.skip(reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        if reporter:
            reporter.write_line(f"CI=true: {skipped} skipped test(s) count as a failure", red=True)
        session.exitstatus = 1


# ---------------------------------------------------------------- the clock


def clock_env(at: datetime = TEST_CLOCK) -> dict[str, str]:
    """The environment of a Python process whose clock reads ``at`` now and ticks on
    (tests/clock/sitecustomize.py): a session's sandbox process starts on the test clock too."""
    hatch = time_machine.escape_hatch
    wall = hatch.time.time() if hatch.is_travelling() else time.time()
    path = os.environ.get("PYTHONPATH", "")
    if str(CLOCK_FOLDER) not in path.split(os.pathsep):
        path = f"{CLOCK_FOLDER}{os.pathsep}{path}" if path else str(CLOCK_FOLDER)
    return {"PYTEST_INFLOW_CLOCK": f"{at.timestamp()},{wall}", "PYTHONPATH": path}


@pytest.fixture(autouse=True)
def test_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[time_machine.Traveller]:
    """Every test starts at ``TEST_CLOCK`` and time ticks on; its child processes share it."""
    for name, value in clock_env().items():
        monkeypatch.setenv(name, value)
    with time_machine.travel(TEST_CLOCK, tick=True) as traveller:
        yield traveller


# ---------------------------------------------------------------- Redis


@contextmanager
def empty_redis(db: int | None = None) -> Iterator[str]:
    """The Redis test database's URL (or that of database ``db`` on the same server), emptied
    before and after (skip/fail without Redis)."""
    import redis

    url = REDIS_URL if db is None else REDIS_URL.rsplit("/", 1)[0] + f"/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        unavailable(f"Redis is not reachable at {url}")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once keeps tests fast)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return path


@contextmanager
def fresh_pg_database(prefix: str = "inflow_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped on exit (skip/fail without PG)."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError:
        admin.dispose()
        unavailable(f"PostgreSQL is not reachable at {make_url(PG_ADMIN_URL).host}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    with fresh_pg_database() as url:
        engine = create_db_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


def _truncate(engine: Engine) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "audit_head")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE audit_head SET seq = 0, hash = :h"), {"h": "0" * 64})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Engine]:
    """A freshly migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "inflow.db"
        shutil.copy(sqlite_template, path)
        eng = create_db_engine(f"sqlite:///{path}")
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("pg_engine")
        _truncate(eng)
        yield eng


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s


# ---------------------------------------------------------------- the app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rate_limit_default="10000/minute",
        log_format="console",
    )


@pytest.fixture
def app(settings: Settings, engine: Engine):  # type: ignore[no-untyped-def]
    from inflow.api.app import create_app

    return create_app(settings, engine=engine, migrate=False)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        yield c

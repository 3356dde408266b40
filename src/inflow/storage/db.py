"""Engine and session factories. SQLite runs in WAL mode; PostgreSQL through psycopg 3.

On SQLite, readers never wait (WAL) and writers take turns: a transaction that reads first and
writes later cannot take the write lock once another writer committed after its first read
(``SQLITE_BUSY_SNAPSHOT``: no busy timeout helps). So transactions begin ``DEFERRED`` (readers,
the API's requests) unless their connection carries ``SQLITE_BEGIN: "IMMEDIATE"``: the sessions of
``make_writer_factory`` (the sync engine, the scheduler, background writes) and the API routes
that write, which take the write lock when they begin and wait up to the busy timeout for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    """Give plain ``postgresql://`` URLs the psycopg 3 driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


SQLITE_BEGIN = "inflow_sqlite_begin"  # execution option: "DEFERRED" (default) or "IMMEDIATE"
BUSY_TIMEOUT_S = 15  # how long a SQLite writer waits for the write lock before it fails
# Connections per process: the API's requests that may use the database at once
# (Settings.db_concurrency) plus this many for the embedded worker, scheduler and flushes.
BACKGROUND_CONNECTIONS = 10


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # The driver must not open transactions on its own: ``_sqlite_begin`` does (pysqlite's
    # implicit BEGIN would ignore IMMEDIATE and begins late, at the first write).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def create_db_engine(url: str, *, connections: int = 20 + BACKGROUND_CONNECTIONS) -> Engine:
    """Build the engine for ``url``; a SQLite file's folder is created if missing.

    ``connections`` is the pool's size: it must hold every thread that may use the database at
    once (the API's ``db_concurrency`` plus ``BACKGROUND_CONNECTIONS``), so that no request ever
    waits on the pool (a QueuePool timeout is a 500)."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            if not folder.exists():
                folder.mkdir(parents=True, mode=0o700)  # the data dir holds the key file too
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            pool = {"pool_size": connections, "max_overflow": 10}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=connections, max_overflow=10)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_writer_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions like ``factory``'s whose transactions take SQLite's write lock as they begin
    (``BEGIN IMMEDIATE``, waiting up to the busy timeout): for code that writes in short
    transactions (the sync engine, the scheduler). The same on PostgreSQL."""
    bind = factory.kw["bind"]
    return sessionmaker(
        bind.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}), expire_on_commit=False
    )


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("inflow.storage") / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)

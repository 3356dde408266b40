"""Engine and session factory. SQLite runs in WAL mode; PostgreSQL through psycopg 3.

On SQLite, readers never wait (WAL) and writers take turns: the driver (pysqlite's default
transaction handling) runs reads outside a transaction and begins one at a session's first
write, which waits up to the busy timeout for the write lock. A transaction that held a read
snapshot before writing could instead fail at once whenever another writer committed in between
(``SQLITE_BUSY_SNAPSHOT``, which no wait cures), so that default is kept on purpose.
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
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from inflow.logging import get_logger
from inflow.storage.files import private_sqlite

log = get_logger(__name__)


def normalise_url(url: str) -> str:
    """Give plain ``postgresql://`` URLs the psycopg 3 driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


BUSY_TIMEOUT_S = 15  # how long a SQLite writer waits for the write lock before it fails
# Connections per process: the API's requests that may use the database at once
# (Settings.db_concurrency) plus this many for the embedded worker, scheduler and flushes.
BACKGROUND_CONNECTIONS = 10


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.close()


def create_db_engine(url: str, *, connections: int = 20 + BACKGROUND_CONNECTIONS) -> Engine:
    """Build the engine for ``url``; a SQLite file is made 0600 (its folder 0700 if missing).

    ``connections`` is the pool's size: it must hold every thread that may use the database at
    once (the API's ``db_concurrency`` plus ``BACKGROUND_CONNECTIONS``), so that no request ever
    waits on the pool (a QueuePool timeout is a 500)."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_sqlite(Path(parsed.database))  # before the first connect creates it 0644
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            pool = {"pool_size": connections, "max_overflow": 10}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=connections, max_overflow=10)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


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


_JOB_SCHEMA_LOCK = 0x1F10_0001  # pg_advisory_xact_lock key: one process applies the schema


def job_migrations() -> list[str]:
    """procrastinate's migration files of the installed version, in the order they apply
    (their names sort by version, ``pre`` before ``post``)."""
    from procrastinate.schema import SchemaManager

    folder = Path(SchemaManager.get_migrations_path())
    return sorted(p.name for p in folder.glob("*.sql"))


def apply_job_schema(engine: Engine) -> bool:
    """Create procrastinate's tables (the distributed mode's job queue, ``inflow.sync.jobs``)
    if missing, or bring them up to the installed procrastinate: the migration files it ships
    that are newer than the one stamped here are applied in order (an upgrade of the package
    needs no step of its own). PostgreSQL only, idempotent, safe when several processes start
    at once; whether it changed anything. Alembic's autogenerate leaves these tables alone
    (env.py). A queue made before the stamp existed was made by this procrastinate (3.10, the
    first one Inflow used), so it is stamped with the newest migration."""
    if engine.dialect.name != "postgresql":
        return False
    from procrastinate.schema import SchemaManager

    migrations = job_migrations()
    newest = migrations[-1] if migrations else ""
    folder = Path(SchemaManager.get_migrations_path())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _JOB_SCHEMA_LOCK})
        try:
            conn.execute(text("CREATE TABLE IF NOT EXISTS inflow_job_schema (migration text)"))
            stamp = conn.scalar(text("SELECT migration FROM inflow_job_schema"))
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            created = conn.scalar(text("SELECT to_regclass('procrastinate_jobs')")) is None
            pending: list[str] = []
            if created:
                cursor.execute(SchemaManager.get_schema())  # no parameters: '%' stay as they are
            elif stamp is not None:
                pending = [m for m in migrations if m > stamp]
            # Each migration commits on its own (a later one may use an enum value an earlier
            # one added), and the stamp after it: a start that dies midway goes on from there.
            for name in pending:
                log.info("job queue schema: applying procrastinate migration", migration=name)
                cursor.execute((folder / name).read_text())
                _stamp_job_schema(conn, name)
            if stamp != newest and not pending:
                _stamp_job_schema(conn, newest)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _JOB_SCHEMA_LOCK})
    return created or bool(pending)


def _stamp_job_schema(conn: Connection, migration: str) -> None:
    conn.execute(text("DELETE FROM inflow_job_schema"))
    conn.execute(text("INSERT INTO inflow_job_schema (migration) VALUES (:m)"), {"m": migration})

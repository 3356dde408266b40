"""The distributed mode's job queue (procrastinate's tables) on PostgreSQL: made at first start,
and brought up to the installed procrastinate when a queue was made by an older one, so that
upgrading the package needs no step of its own. The oracle is procrastinate's own ``schema.sql``:
a queue upgraded through its migration files must have the fresh queue's functions, columns and
enum values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from procrastinate.schema import SchemaManager
from sqlalchemy import Engine, text

from inflow.storage.db import apply_job_schema, create_db_engine, job_migrations
from tests.conftest import fresh_pg_database

pytestmark = pytest.mark.postgres

OLDER = "03.03"  # a queue as procrastinate 3.2 left it: its migrations before 3.3 applied


@pytest.fixture
def pg() -> Iterator[Engine]:
    with fresh_pg_database("inflow_jobs") as url:
        engine = create_db_engine(url)
        yield engine
        engine.dispose()


def shape(engine: Engine) -> dict[str, set[tuple[str, ...]]]:
    """What a queue is made of: procrastinate's functions, columns and enum values."""
    with engine.connect() as conn:
        functions = conn.execute(
            text(
                "SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc"
                " WHERE proname LIKE 'procrastinate%'"
            )
        ).all()
        columns = conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_name LIKE 'procrastinate%' AND table_schema = 'public'"
            )
        ).all()
        enums = conn.execute(
            text(
                "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                " WHERE t.typname LIKE 'procrastinate%'"
            )
        ).all()
    return {
        "functions": {tuple(r) for r in functions},
        "columns": {tuple(r) for r in columns},
        "enums": {tuple(r) for r in enums},
    }


def stamp(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT migration FROM inflow_job_schema"))


def test_a_fresh_queue_is_made_once_and_stamped_with_the_newest_migration(pg: Engine):
    assert apply_job_schema(pg) is True
    assert apply_job_schema(pg) is False  # a second start changes nothing
    assert stamp(pg) == job_migrations()[-1]
    assert ("procrastinate_jobs", "id", "bigint") in shape(pg)["columns"]


def test_a_queue_made_by_an_older_procrastinate_is_brought_up_to_the_installed_one(pg: Engine):
    with fresh_pg_database("inflow_jobs_fresh") as url:
        fresh = create_db_engine(url)
        apply_job_schema(fresh)
        expected = shape(fresh)
        fresh.dispose()

    folder = Path(SchemaManager.get_migrations_path())
    older = [m for m in job_migrations() if m < OLDER]
    with pg.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        for name in older:  # each in a transaction of its own, as procrastinate applies them
            cursor.execute((folder / name).read_text())
        conn.execute(text("CREATE TABLE inflow_job_schema (migration text)"))
        conn.execute(text("INSERT INTO inflow_job_schema VALUES (:m)"), {"m": older[-1]})
    before = shape(pg)
    assert before != expected  # 3.3 and 3.4 changed the queue
    assert not any(f[0] == "procrastinate_retry_job_v2" for f in before["functions"])

    assert apply_job_schema(pg) is True
    assert shape(pg) == expected
    assert stamp(pg) == job_migrations()[-1]
    assert apply_job_schema(pg) is False


def test_a_queue_made_before_the_stamp_existed_is_taken_as_the_installed_version(pg: Engine):
    with pg.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(SchemaManager.get_schema())  # as Inflow made it before the stamp
    assert apply_job_schema(pg) is False  # nothing to apply, nothing broken
    assert stamp(pg) == job_migrations()[-1]

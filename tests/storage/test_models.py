"""The schema on both backends: migrations, constraints, upserts, time zones, cascades, audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Engine,
    column,
    delete,
    func,
    insert,
    inspect,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from inflow.storage.audit import GENESIS, append_event, verify_chain
from inflow.storage.db import (
    alembic_config,
    create_db_engine,
    make_session_factory,
    normalise_url,
    session_scope,
    upgrade,
)
from inflow.storage.models import (
    ApiToken,
    Asset,
    AuditEvent,
    AuditHead,
    Base,
    DataPoint,
    DataSource,
    Experiment,
    ExperimentDataPoint,
    Space,
    SpaceMembership,
    StreamState,
    SyncRun,
    User,
)
from tests.conftest import fresh_pg_database

# data_points as the early revisions have it: a migration test writes through this, since the
# model's table has the columns of the head revision
OLD_POINTS = table(
    "data_points",
    *(
        column(name, DataPoint.__table__.c[name].type)
        for name in (
            *("id", "source_id", "metric", "granularity", "period_start", "period_end"),
            *("timezone", "dimensions", "dimensions_key", "value", "complete"),
            *("created_at", "updated_at"),
        )
    ),
)
OLD_SOURCES = table(  # data_sources as revision 0006 has it
    "data_sources",
    *(
        column(name, DataSource.__table__.c[name].type)
        for name in (
            *("id", "name", "type", "config", "secret_names", "owner_id"),
            *("health_status", "created_at", "updated_at"),
        )
    ),
)


def old_source(session: Session, owner: User, type_: str) -> uuid.UUID:
    """A source written through the early revisions' columns (the model has more)."""
    source_id = uuid.uuid4()
    at = datetime(2026, 11, 18, tzinfo=UTC)
    session.execute(
        insert(OLD_SOURCES).values(
            id=source_id,
            name=type_,
            type=type_,
            config={},
            secret_names=[],
            owner_id=owner.id,
            health_status="unknown",
            created_at=at,
            updated_at=at,
        )
    )
    return source_id


DAY = datetime(2025, 3, 1, tzinfo=UTC)
OUR_TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A brand-new, unmigrated database on each backend, removed afterwards."""
    if request.param == "sqlite":
        eng = create_db_engine(f"sqlite:///{tmp_path / 'blank.db'}")
        yield eng
        eng.dispose()
        return
    with fresh_pg_database("inflow_blank") as url:  # skips (fails under CI) without PG
        eng = create_db_engine(url)
        try:
            yield eng
        finally:
            eng.dispose()


def user(session: Session) -> User:
    row = User(email=f"u-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
    session.add(row)
    session.flush()
    return row


def source(session: Session, owner: User | None = None) -> DataSource:
    row = DataSource(name="s", type="example", owner_id=(owner or user(session)).id)
    session.add(row)
    session.flush()
    return row


def point(source_id: uuid.UUID, **overrides: Any) -> DataPoint:
    fields: dict[str, Any] = {
        "source_id": source_id,
        "metric": "visits",
        "granularity": "day",
        "period_start": DAY,
        "period_end": DAY + timedelta(days=1),
        "dimensions_key": "",
        "value": 1.0,
    }
    return DataPoint(**(fields | overrides))


def audit_triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            stmt = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            stmt = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        return set(conn.execute(text(stmt)).scalars())


# ---------------------------------------------------------------- migrations


def test_migrations_upgrade_downgrade_and_upgrade_again(blank_engine):
    cfg = alembic_config(blank_engine)
    head = ScriptDirectory.from_config(cfg).get_current_head()

    upgrade(blank_engine)

    assert set(inspect(blank_engine).get_table_names()) == OUR_TABLES | {"alembic_version"}
    with blank_engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert audit_triggers(blank_engine)

    command.downgrade(cfg, "base")

    assert inspect(blank_engine).get_table_names() == ["alembic_version"]
    assert audit_triggers(blank_engine) == set()
    if blank_engine.dialect.name == "postgresql":
        with blank_engine.connect() as conn:
            functions = conn.execute(
                text("SELECT proname FROM pg_proc WHERE proname LIKE 'audit%'")
            )
            assert functions.all() == []

    upgrade(blank_engine)

    assert set(inspect(blank_engine).get_table_names()) == OUR_TABLES | {"alembic_version"}
    factory = make_session_factory(blank_engine)
    with session_scope(factory) as session:
        assert session.get_one(AuditHead, 1).hash == GENESIS
        append_event(session, action="db.check", outcome="success")
    with factory() as session:
        assert verify_chain(session).ok
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(update(AuditEvent).values(outcome="failure"))


def test_clarity_points_stored_as_days_become_their_rolling_windows(blank_engine):
    cfg = alembic_config(blank_engine)
    command.upgrade(cfg, "0006")
    factory = make_session_factory(blank_engine)
    end = datetime(2026, 11, 18, 13, tzinfo=UTC)  # a window's end: any hour
    with session_scope(factory) as session:
        owner = User(email="m@example.com", password_hash="x", role="member")
        session.add(owner)
        session.flush()
        clarity, other = (old_source(session, owner, t) for t in ("microsoft_clarity", "example"))
        for source_id, days in ((clarity, 1), (clarity, 3), (other, 1)):
            session.execute(  # the table as revision 0006 has it (the model has more columns)
                insert(OLD_POINTS).values(
                    id=uuid.uuid4(),
                    source_id=source_id,
                    metric="sessions",
                    granularity="day",
                    period_start=end - timedelta(days=days),
                    period_end=end,
                    timezone="UTC",
                    dimensions={},
                    dimensions_key="",
                    value=1.0,
                    complete=True,
                    created_at=end,
                    updated_at=end,
                )
            )

    command.upgrade(cfg, "head")

    with factory() as session:
        got = sorted(
            (s.type, p.granularity)
            for p, s in session.execute(
                select(DataPoint, DataSource).join(DataSource, DataSource.id == DataPoint.source_id)
            )
        )
    assert got == [("example", "day"), ("microsoft_clarity", "24h"), ("microsoft_clarity", "72h")]


def test_points_stored_before_0012_get_their_breakdown_names(blank_engine):
    cfg = alembic_config(blank_engine)
    command.upgrade(cfg, "0008")
    factory = make_session_factory(blank_engine)
    day = datetime(2026, 11, 17, tzinfo=UTC)
    with session_scope(factory) as session:
        owner = User(email="n@example.com", password_hash="x", role="member")
        session.add(owner)
        session.flush()
        source_id = old_source(session, owner, "example")
        for dimensions, key in (
            ({}, ""),
            ({"page": "/a=b&c"}, "page=%2Fa%3Db%26c"),
            ({"device": "mobile", "country": "DE"}, "country=DE&device=mobile"),
        ):
            session.execute(
                insert(OLD_POINTS).values(
                    id=uuid.uuid4(),
                    source_id=source_id,
                    metric="visits",
                    granularity="day",
                    period_start=day,
                    period_end=day + timedelta(days=1),
                    timezone="UTC",
                    dimensions=dimensions,
                    dimensions_key=key,
                    value=1.0,
                    complete=True,
                    created_at=day,
                    updated_at=day,
                )
            )

    command.upgrade(cfg, "head")

    with factory() as session:
        got = sorted(session.execute(select(DataPoint.dimensions_key, DataPoint.dimension_names)))
    assert [tuple(r) for r in got] == [
        ("", ""),
        ("country=DE&device=mobile", "country&device"),
        ("page=%2Fa%3Db%26c", "page"),
    ]


# ---------------------------------------------------------------- engine and sessions


def test_sqlite_engine_uses_wal_and_foreign_keys_on_every_connection(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'new' / 'inflow.db'}")
    try:
        with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
    finally:
        engine.dispose()
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700


def test_normalise_url_gives_postgresql_the_psycopg_driver():
    assert normalise_url("postgresql://u:p@db/inflow") == "postgresql+psycopg://u:p@db/inflow"
    assert normalise_url("postgres://u@db/inflow") == "postgresql+psycopg://u@db/inflow"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_foreign_keys_refuse_a_source_without_owner(engine, session):
    session.add(DataSource(name="orphan", type="example", owner_id=uuid.uuid4()))
    with pytest.raises(IntegrityError):
        session.flush()


def add_user_then_fail(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        user(session)
        raise RuntimeError("boom")


def test_session_scope_rolls_back_on_error(engine, factory):
    with pytest.raises(RuntimeError):
        add_user_then_fail(factory)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


# ---------------------------------------------------------------- natural keys and upserts


def test_data_points_natural_key_refuses_duplicate(engine, factory):
    with session_scope(factory) as session:
        sid = source(session).id
        session.add(point(sid))
        # Same metric and period, another dimension or granularity: a different point.
        session.add(point(sid, dimensions_key="country=FR"))
        session.add(point(sid, granularity="week"))

    # The same instant written in another time zone is the same period.
    paris = DAY.astimezone(timezone(timedelta(hours=1)))
    for duplicate in (point(sid, value=2.0), point(sid, period_start=paris)):
        with factory() as session:
            session.add(duplicate)
            with pytest.raises(IntegrityError):
                session.flush()
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(DataPoint)) == 3


def test_assets_source_external_id_is_unique(engine, factory):
    with session_scope(factory) as session:
        first, second = source(session), source(session)
        session.add(Asset(source_id=first.id, external_id="r1", kind="report", name="a"))
        session.add(Asset(source_id=second.id, external_id="r1", kind="report", name="b"))
    with factory() as session:
        session.add(Asset(source_id=first.id, external_id="r1", kind="report", name="again"))
        with pytest.raises(IntegrityError):
            session.flush()


NATURAL_KEY = ["source_id", "metric", "granularity", "period_start", "dimensions_key"]


def upsert_point(session: Session, source_id: uuid.UUID, value: float) -> None:
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(DataPoint).values(
        id=uuid.uuid4(),
        source_id=source_id,
        metric="visits",
        granularity="day",
        period_start=DAY,
        period_end=DAY + timedelta(days=1),
        timezone="UTC",
        dimensions={},
        dimensions_key="",
        value=value,
        complete=True,
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=NATURAL_KEY,
        set_={"value": stmt.excluded["value"], "updated_at": stmt.excluded["updated_at"]},
    )
    session.execute(stmt)


def test_data_points_upsert_on_conflict_do_update(engine, factory):
    with session_scope(factory) as session:
        sid = source(session).id
        upsert_point(session, sid, 1.0)
    with factory() as session:
        first = session.execute(select(DataPoint)).scalar_one()

    with session_scope(factory) as session:
        upsert_point(session, sid, 5.0)
        upsert_point(session, sid, 7.0)

    with factory() as session:
        (stored,) = session.execute(select(DataPoint)).scalars()
    assert stored.id == first.id  # updated in place, not inserted again
    assert stored.value == 7.0
    assert stored.created_at == first.created_at
    assert stored.updated_at > first.updated_at


# ---------------------------------------------------------------- time zones


def test_datetimes_come_back_utc_aware(engine, factory):
    kolkata = timezone(timedelta(hours=5, minutes=30))
    start = datetime(2025, 3, 1, 5, 30, 0, 123456, tzinfo=kolkata)
    with session_scope(factory) as session:
        sid = source(session).id
        session.add(point(sid, period_start=start, period_end=start + timedelta(hours=1)))

    with factory() as session:
        stored = session.execute(select(DataPoint)).scalar_one()
        raw_start = session.execute(select(DataPoint.period_start)).scalar_one()
        found = session.execute(
            select(DataPoint.id).where(DataPoint.period_start == datetime(2025, 3, 1, tzinfo=UTC))
        ).scalar_one_or_none()
    for value in (stored.period_start, stored.period_end, stored.created_at, raw_start):
        assert value.utcoffset() == timedelta(0)
    assert stored.period_start == start  # the same instant
    assert stored.period_start.isoformat() == "2025-03-01T00:00:00.123456+00:00"
    assert found is None  # microseconds survive: midnight exactly is another instant


def test_naive_datetime_is_refused(engine, factory):
    with factory() as session:
        sid = source(session).id
        session.add(point(sid, period_start=datetime(2025, 3, 1)))  # noqa: DTZ001
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


# ---------------------------------------------------------------- cascades


def test_deleting_a_user_cascades_to_tokens_and_sources(engine, factory):
    with session_scope(factory) as session:
        owner, other = user(session), user(session)
        session.add(
            ApiToken(user_id=owner.id, name="cli", token_hash=uuid.uuid4().hex, prefix="inf_")
        )
        space = Space(name="team", owner_id=owner.id)
        session.add(space)
        session.flush()
        session.add(SpaceMembership(space_id=space.id, user_id=owner.id))
        owned = source(session, owner)
        kept = source(session, other)
        for sid in (owned.id, kept.id):
            dp = point(sid)
            session.add(dp)
            session.add(Asset(source_id=sid, external_id="r", kind="report", name="r"))
            session.add(SyncRun(source_id=sid, trigger="manual"))
            session.add(StreamState(source_id=sid, stream="visits"))
            session.flush()
            test = Experiment(owner_id=other.id, name="t", start_date=DAY.date())
            session.add(test)
            session.flush()
            session.add(ExperimentDataPoint(test_id=test.id, data_point_id=dp.id))
        append_event(session, action="user.create", outcome="success", target=str(owner.id))

    with session_scope(factory) as session:
        session.execute(delete(User).where(User.id == owner.id))

    with factory() as session:

        def count(model: type[Base]) -> int:
            return session.scalar(select(func.count()).select_from(model)) or 0

        assert session.get(User, owner.id) is None
        assert count(ApiToken) == 0
        assert count(Space) == 0
        assert count(SpaceMembership) == 0
        assert session.execute(select(DataSource.id)).scalars().all() == [kept.id]
        for model in (DataPoint, Asset, SyncRun, StreamState, ExperimentDataPoint):
            assert count(model) == 1, model.__name__
        assert count(Experiment) == 2  # the other user's tests stay
        assert count(AuditEvent) == 1  # the audit log outlives what it records


# ---------------------------------------------------------------- the audit log


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE audit_events SET outcome = 'failure'", id="update"),
        pytest.param("UPDATE audit_events SET details = '{}', hash = prev_hash", id="rewrite"),
        pytest.param("DELETE FROM audit_events", id="delete"),
        pytest.param(
            "DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events)",
            id="delete-last",
        ),
    ],
)
def test_audit_events_refuse_update_and_delete(engine, factory, statement):
    with session_scope(factory) as session:
        for action in ("user.login", "source.create"):
            append_event(session, action=action, outcome="success", details={"n": 1})

    with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text(statement))

    with factory() as session:
        events = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
        assert [(e.action, e.outcome) for e in events] == [
            ("user.login", "success"),
            ("source.create", "success"),
        ]
        assert verify_chain(session).ok


def test_audit_events_refuse_orm_changes(engine, factory):
    with session_scope(factory) as session:
        append_event(session, action="user.login", outcome="failure")
    for change in ("edit", "delete"):
        with factory() as session:
            event = session.execute(select(AuditEvent)).scalar_one()
            if change == "edit":
                event.outcome = "success"
            else:
                session.delete(event)
            with pytest.raises(DBAPIError, match="append-only"):
                session.commit()
    with factory() as session:
        assert session.execute(select(AuditEvent.outcome)).scalar_one() == "failure"


def test_audit_events_still_accept_appends(engine, factory: sessionmaker[Session]):
    for i in range(3):
        with session_scope(factory) as session:
            append_event(session, action=f"a.{i}", outcome="success")
    with factory() as session:
        report = verify_chain(session)
        assert (report.ok, report.events) == (True, 3)
        assert session.get_one(AuditHead, 1).seq == 3

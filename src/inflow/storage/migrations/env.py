"""Alembic environment: runs against the engine handed over by ``inflow.storage.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine

from inflow.settings import get_settings
from inflow.storage.db import normalise_url
from inflow.storage.models import Base

config = context.config
target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:  # noqa: ARG001
    # Keep autogenerate to our own tables (procrastinate's live beside them on PostgreSQL).
    if type_ == "table":
        return name in target_metadata.tables
    return True


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(normalise_url(get_settings().resolved_database_url))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_name=include_name,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()

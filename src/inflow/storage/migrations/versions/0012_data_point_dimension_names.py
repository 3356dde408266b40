"""data points name their breakdown (dimension_names), so a series adds a period up in SQL

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _names(key: str) -> str:  # as ``inflow.storage.models.dimension_names`` (frozen here)
    return "&".join(part.partition("=")[0] for part in key.split("&")) if key else ""


def upgrade() -> None:
    with op.batch_alter_table("data_points", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dimension_names", sa.String(512), nullable=True))
    bind = op.get_bind()
    points = sa.table("data_points", sa.column("dimensions_key"), sa.column("dimension_names"))
    # a source has few dimension sets: one UPDATE per distinct key
    keys: list[str] = list(bind.execute(sa.select(points.c.dimensions_key).distinct()).scalars())
    for key in keys:
        bind.execute(
            points.update()
            .where(points.c.dimensions_key == key)
            .values(dimension_names=_names(key))
        )


def downgrade() -> None:
    with op.batch_alter_table("data_points", schema=None) as batch_op:
        batch_op.drop_column("dimension_names")

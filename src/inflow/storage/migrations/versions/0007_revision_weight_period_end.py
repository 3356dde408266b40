"""data point revisions keep the replaced weight and period end; Clarity's rolling windows
stored as what they are (granularity 24h/48h/72h, not day)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ROLLING = {24: "24h", 48: "48h", 72: "72h"}  # a Clarity window's hours -> its granularity


def upgrade() -> None:
    with op.batch_alter_table("data_point_revisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weight", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("period_end", sa.DateTime(timezone=True), nullable=True))
    points = sa.table(
        "data_points",
        sa.column("id", sa.Uuid()),
        sa.column("source_id", sa.Uuid()),
        sa.column("granularity", sa.String()),
        sa.column("period_start", sa.DateTime(timezone=True)),
        sa.column("period_end", sa.DateTime(timezone=True)),
    )
    sources = sa.table("data_sources", sa.column("id", sa.Uuid()), sa.column("type", sa.String()))
    conn = op.get_bind()
    clarity = sa.select(sources.c.id).where(sources.c.type == "microsoft_clarity")
    rows = conn.execute(
        sa.select(points.c.id, points.c.period_start, points.c.period_end).where(
            points.c.granularity == "day", points.c.source_id.in_(clarity)
        )
    ).all()
    for row in rows:
        hours = round((row.period_end - row.period_start).total_seconds() / 3600)
        if hours in ROLLING:
            conn.execute(
                sa.update(points).where(points.c.id == row.id).values(granularity=ROLLING[hours])
            )


def downgrade() -> None:
    points = sa.table("data_points", sa.column("granularity", sa.String()))
    op.execute(
        sa.update(points)
        .where(points.c.granularity.in_(ROLLING.values()))
        .values(granularity="day")
    )
    with op.batch_alter_table("data_point_revisions", schema=None) as batch_op:
        batch_op.drop_column("period_end")
        batch_op.drop_column("weight")

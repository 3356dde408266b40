"""tests carry a control (difference-in-differences) and guardrail metrics

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("control", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("guardrails", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tests", schema=None) as batch_op:
        batch_op.drop_column("guardrails")
        batch_op.drop_column("control")

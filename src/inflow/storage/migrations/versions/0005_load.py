"""data points by source, metric and period (the series' and the raw listing's lookup)

The series of one user's sources read ``metric = ? AND source_id IN (...) AND period_start``
in a range. With only ``(metric, period_start)``, SQLite (and PostgreSQL on a metric shared by
many sources) walked every source's points of the metric in the range and dropped the others':
at 1,000,000 points, most of a series' time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 04:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_data_points_source_metric_period",
        "data_points",
        ["source_id", "metric", "period_start"],
    )


def downgrade() -> None:
    op.drop_index("ix_data_points_source_metric_period", table_name="data_points")

"""``series.fetched_totals``: a fetch review's totals follow each metric's rule, as a series does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inflow.api.services.series import fetched_totals
from inflow.connectors import get_connector
from inflow.connectors.records import DataPoint

DAY = datetime(2026, 11, 16, tzinfo=UTC)


def point(metric: str, value: float, day: int = 0, **dimensions: str) -> DataPoint:
    start = DAY + timedelta(days=day)
    return DataPoint(metric, value, start, start + timedelta(days=1), dimensions=dimensions)


def test_counts_add_over_days_from_the_coarsest_breakdown_and_rates_are_weighted():
    twilio = get_connector("twilio")
    points = [
        point("total_calls", 10, 0),
        point("total_calls", 6, 0, direction="inbound"),
        point("total_calls", 4, 0, direction="outbound"),
        point("total_calls", 30, 1),
        point("answer_rate", 0.5, 0),
        point("answer_rate", 0.9, 1),
        point("answer_rate", 0.0, 1, direction="inbound"),  # a breakdown: not in the total
    ]
    totals = fetched_totals(points, twilio)
    assert totals["total_calls"] == 40  # each day's provider total, not its breakdowns again
    # weighted by the day's total calls: (0.5·10 + 0.9·30) / 40, never (0.5 + 0.9) / 2
    assert totals["answer_rate"] == pytest.approx(0.8)


def test_a_metric_without_a_definition_is_summed():
    assert fetched_totals([point("visits", 2), point("visits", 3, 1)], None) == {"visits": 5}

"""A backfill's plan: the source's own days in chunks sized by the provider's declaration."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from inflow.connectors import get_connector
from inflow.sync.backfill import chunk_days, plan_chunks


@pytest.mark.parametrize(
    ("slug", "days"),
    [
        pytest.param("example", 7, id="default_a_week"),
        pytest.param("instagram", 30, id="declared_a_month"),
        pytest.param("linkedin", 30, id="declared_within_its_range"),
        pytest.param("microsoft_clarity", 3, id="cut_to_the_widest_read"),
    ],
)
def test_chunk_days_follow_the_connector(slug, days):
    assert chunk_days(get_connector(slug)) == days


def test_chunks_cover_the_days_once_in_the_source_s_zone():
    zone = ZoneInfo("America/New_York")

    chunks = plan_chunks(date(2026, 10, 26), date(2026, 11, 10), 7, zone)

    assert [(c.start, c.end) for c in chunks] == [
        (datetime(2026, 10, 26, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC)),
        (datetime(2026, 11, 2, 5, tzinfo=UTC), datetime(2026, 11, 9, 5, tzinfo=UTC)),
        (datetime(2026, 11, 9, 5, tzinfo=UTC), datetime(2026, 11, 11, 5, tzinfo=UTC)),
    ]  # New York days, the last chunk short; the clocks went back on 1 November
    (one,) = plan_chunks(date(2026, 11, 10), date(2026, 11, 10), 7, UTC)
    assert (one.start, one.end) == (
        datetime(2026, 11, 10, tzinfo=UTC),
        datetime(2026, 11, 11, tzinfo=UTC),
    )

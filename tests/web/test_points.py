"""How the pages group data points for review: totals by each metric's rule, never counting a
breakdown twice; fetched batches kept per user and source."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from inflow.connectors import get_connector
from inflow.connectors.records import DataPoint
from inflow.web.points import Batches, group_points, period_label

DAY = datetime(2026, 11, 17, tzinfo=UTC)


def point(metric: str, value: float, day: int = 0, **dimensions: str) -> DataPoint:
    start = DAY + timedelta(days=day)
    return DataPoint(metric, value, start, start + timedelta(days=1), dimensions=dimensions)


def test_a_sum_total_counts_the_overall_rows_not_their_breakdowns():
    points = [
        point("calls", 10),
        point("calls", 7, direction="inbound"),
        point("calls", 3, direction="outbound"),
        point("calls", 5, day=1),
        point("calls", 5, day=1, direction="inbound"),
    ]

    [group] = group_points(points, get_connector("twilio"))

    assert group.total == 15
    assert group.total_label == "Total"
    assert [p["period"] for p in group.points][:3] == ["2026-11-17"] * 3
    assert len(group.points) == 5


def test_a_breakdown_alone_is_summed_and_metrics_keep_the_catalog_order():
    twilio = get_connector("twilio")
    assert twilio is not None
    first, second = twilio.metrics[0].key, twilio.metrics[1].key
    points = [
        point(second, 1),
        point(first, 2, direction="inbound"),
        point(first, 4, direction="outbound"),
    ]

    groups = group_points(points, twilio)

    assert [g.metric for g in groups] == [first, second]
    assert groups[0].total == 6


def test_period_labels_read_in_the_points_time_zone():
    start = datetime(2026, 11, 16, 23, 0, tzinfo=UTC)
    assert period_label(start, "day", "Europe/Berlin") == "2026-11-17"
    assert period_label(start, "month", "UTC") == "2026-11"
    assert period_label(start, "hour", "UTC") == "2026-11-16 23:00"


def test_a_batch_is_only_found_by_its_user_for_its_source():
    batches = Batches()
    user, other, source = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = batches.put(
        user_id=user, source_id=source, points=[point("calls", 1)], start=DAY, end=DAY
    )

    assert batches.get(batch.id, user_id=user, source_id=source) is batch
    assert batches.get(batch.id, user_id=other, source_id=source) is None
    assert batches.get(batch.id, user_id=user, source_id=uuid.uuid4()) is None
    batches.discard(batch.id)
    assert batches.get(batch.id, user_id=user, source_id=source) is None


def test_old_batches_expire_and_the_oldest_make_room():
    batches = Batches(ttl_s=-1, most=2)
    user, source = uuid.uuid4(), uuid.uuid4()
    gone = batches.put(user_id=user, source_id=source, points=[], start=DAY, end=DAY)
    assert batches.get(gone.id, user_id=user, source_id=source) is None  # already stale

    full = Batches(most=2)
    first = full.put(user_id=user, source_id=source, points=[], start=DAY, end=DAY)
    full.put(user_id=user, source_id=source, points=[], start=DAY, end=DAY)
    full.put(user_id=user, source_id=source, points=[], start=DAY, end=DAY)
    assert full.get(first.id, user_id=user, source_id=source) is None


def test_the_fetch_forms_days_are_the_sources_days():
    # the page posts the form's days as they are; the API's fetch window reads them in the
    # source's own time zone
    import pytest
    from pydantic import ValidationError

    from inflow.api.routes.runs import FetchRequest, fetch_window
    from inflow.connectors import get_connector
    from inflow.connectors.runtime import days_zone

    twilio = get_connector("twilio")
    zone = days_zone(twilio, {"timezone": "Europe/Berlin"})
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)  # a frozen now
    body = FetchRequest.model_validate({"startDate": "2026-11-10", "endDate": "2026-11-16"})

    window = fetch_window(body, now, twilio, zone)

    assert window.start.astimezone(UTC) == datetime(2026, 11, 9, 23, 0, tzinfo=UTC)
    assert window.end.astimezone(UTC) == datetime(2026, 11, 16, 23, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="startDate"):  # left to validation
        FetchRequest.model_validate({"startDate": "11/10/2026", "endDate": None})

"""An ignored response keeps the classifier's reason as its timeline note (a skipped metric is
visible in the run), while plain successes and status overrides stay without one."""

from __future__ import annotations

import httpx
import pytest

from inflow.http.client import TimelineEntry
from inflow.http.resolution import Action, Resolution

from .mocks import Recorder, Reply, make_requester

pytestmark = pytest.mark.anyio
URL = "https://api.example.com/v1/insights"


def skip_gone_metrics(response: httpx.Response) -> Resolution | None:
    if response.status_code == 400:
        return Resolution(Action.IGNORE, message="metric not served, skipped")
    return None


async def test_an_ignored_response_is_noted_with_its_reason() -> None:
    timeline: list[TimelineEntry] = []
    requester = make_requester(
        Recorder(Reply(400, {"error": {"code": 100}}), Reply(200, {"data": []})),
        timeline=timeline,
        classifier=skip_gone_metrics,
    )

    _, skipped = await requester.request("GET", URL)
    _, body = await requester.request("GET", URL)

    assert skipped is None
    assert body == {"data": []}
    assert [(e.status, e.note) for e in timeline] == [
        (400, "metric not served, skipped"),
        (200, ""),
    ]


async def test_a_status_override_to_ignore_adds_no_note() -> None:
    timeline: list[TimelineEntry] = []
    requester = make_requester(
        Recorder(Reply(404, {"message": "gone"})), timeline=timeline, overrides={404: Action.IGNORE}
    )

    await requester.request("GET", URL)

    assert [(e.status, e.note) for e in timeline] == [(404, "")]

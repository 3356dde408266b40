"""facebook-business (Meta's Business SDK for Python) against the Instagram emulator.

It exercises: a `FacebookSession` whose `GRAPH` is the sandbox (the documented class attribute
naming Graph's URL) under `FacebookAdsApi(session, api_version)`, `IGUser.api_get(fields=[...])`
for one object, `IGUser.get_insights` and `IGMedia.get_insights` with list parameters sent as
JSON arrays (`metric=["reach"]`, the SDK's encoding), `IGUser.get_media` read to the end by its
own `Cursor` (following `paging.next`), and `FacebookRequestError` with Graph's codes for an
expired token (190/463), a throttled call (17, transient) and an unknown edge (2500). The
numbers it reads (daily reach, followers, each post's lifetime insights) equal what Inflow
stores from the same server.
"""

from __future__ import annotations

import contextlib
import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from facebook_business.adobjects.igmedia import IGMedia
from facebook_business.adobjects.iguser import IGUser
from facebook_business.api import FacebookAdsApi, FacebookSession
from facebook_business.exceptions import FacebookRequestError

from inflow.connectors.instagram import POST_METRICS
from inflow.sandbox.instagram import ACCOUNT_ID, DEFAULT_VERSION, EXPIRED_TOKEN
from tests.conformance.conftest import LiveSandbox
from tests.sync.helpers import points_of

SLUG = "instagram"
MEDIA = "GET /{version}/{node}/media"
DAY = timedelta(days=1)


def graph(closing: contextlib.ExitStack, url: str, token: str) -> FacebookAdsApi:
    session = FacebookSession(access_token=token)
    session.GRAPH = url  # graph.facebook.com's stand-in
    closing.callback(session.requests.close)
    return FacebookAdsApi(session, api_version=DEFAULT_VERSION)


def lifetime_value(row: dict[str, Any]) -> float:
    """A post's lifetime value: `values[0]`, or `total_value` (how Graph gives each metric)."""
    values = row.get("values")
    return float(values[0]["value"] if values else row["total_value"]["value"])


def test_the_sdk_reads_what_inflow_stores(live: LiveSandbox, closing: contextlib.ExitStack) -> None:
    live.configure(SLUG, volume={"media": 6, "mediaEveryHours": 48})
    config = live.credentials(SLUG)["config"]
    api = graph(closing, config["baseUrl"], config["accessToken"])
    user = IGUser(ACCOUNT_ID, api=api)

    me = user.api_get(fields=["id", "username", "followers_count"])
    assert me["id"] == ACCOUNT_ID
    assert live.stats(SLUG)["byStatus"] == {"200": 1}  # `/{id}/` answered, not redirected
    reach = next(
        iter(
            user.get_insights(
                params={
                    "metric": ["reach"],
                    "period": ["day"],
                    "metric_type": "time_series",
                    "since": "-10 days",
                    "until": "-2 days",
                }
            )
        )
    )
    daily = {
        datetime.strptime(v["end_time"], "%Y-%m-%dT%H:%M:%S%z") - DAY: v["value"]
        for v in reach["values"]
    }
    assert len(daily) >= 8
    media = list(
        user.get_media(
            fields=["id", "media_product_type"], params={"limit": 2, "since": "-30 days"}
        )
    )
    assert len(media) == 6
    assert live.stats(SLUG)["byEndpoint"][MEDIA] == 3  # 2 + 2 + 2, the last without `next`
    lifetime = {
        (f"post_{row['name']}", post["id"]): lifetime_value(row.export_all_data())
        for post in media
        for row in itertools.islice(
            IGMedia(post["id"], api=api).get_insights(params={"metric": list(POST_METRICS)}),
            len(POST_METRICS),
        )
    }

    source_id = live.sync(SLUG, config)
    stored = points_of(live.factory, source_id)
    assert {
        datetime.fromisoformat(start): value
        for metric, start, key, value in stored
        if metric == "reach" and key == "" and datetime.fromisoformat(start) in daily
    } == daily
    assert [v for m, _, k, v in stored if m == "followers" and k == ""] == [me["followers_count"]]
    posts = {
        (metric, dict(p.split("=", 1) for p in key.split("&"))["media"]): value
        for metric, _, key, value in stored
        if metric.startswith("post_")
    }
    assert posts == lifetime


def test_errors_are_facebook_request_errors_with_graphs_codes(
    live: LiveSandbox, closing: contextlib.ExitStack
) -> None:
    url = live.credentials(SLUG)["config"]["baseUrl"]
    token = live.credentials(SLUG)["config"]["accessToken"]

    with pytest.raises(FacebookRequestError) as expired:
        IGUser(ACCOUNT_ID, api=graph(closing, url, EXPIRED_TOKEN)).api_get(fields=["id"])
    assert (expired.value.api_error_code(), expired.value.api_error_subcode()) == (190, 463)
    assert expired.value.http_status() == 400

    api = graph(closing, url, token)
    live.configure(SLUG, volume={"throttleAfter": 0, "throttleCalls": 1, "throttleCode": 17})
    with pytest.raises(FacebookRequestError) as throttled:
        IGUser(ACCOUNT_ID, api=api).api_get(fields=["id"])
    assert throttled.value.api_error_code() == 17
    assert throttled.value.api_transient_error() is True
    assert IGUser(ACCOUNT_ID, api=api).api_get(fields=["id"])["id"] == ACCOUNT_ID  # one call

    with pytest.raises(FacebookRequestError) as unknown:
        api.call("GET", (ACCOUNT_ID, "no_such_edge"))
    assert unknown.value.api_error_code() == 2500
    assert unknown.value.api_error_message() == "Unknown path components: /no_such_edge"

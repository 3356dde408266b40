"""A full sync of the `example` source through the API, against the sandbox's own numbers."""

from __future__ import annotations

from datetime import timedelta

from tests.sync.helpers import (
    assets_of,
    create_source,
    daily_totals,
    days_back,
    person,
    points_of,
    sandbox_points,
    sync_and_wait,
    today,
)

INITIAL_DAYS = 30  # example: Incremental(initial=30 days), whole days through today
LOOKBACK_DAYS = 2


def test_full_sync_matches_the_sandbox_and_a_second_sync_changes_nothing(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    expected = sb.expected(days_back(INITIAL_DAYS), today())
    config = sb.configure()
    seed, volume = config["seed"], config["volume"]

    first = sync_and_wait(client, headers, source["id"])

    assert first["status"] == "succeeded", first
    points_expected = 2 * expected["rows"]  # visits and signups per (day, page)
    assert expected["rows"] == (INITIAL_DAYS + 1) * volume["pages"]
    assert first["counts"] == {
        "created": expected["reports"] + expected["dashboards"] + points_expected,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
    }
    assert first["error"] is None
    assert first["waiting"] is None

    stored = points_of(factory, source["id"])
    assert stored == sandbox_points(seed, volume["pages"], days_back(INITIAL_DAYS), today())
    assert daily_totals(stored) == {
        day: {"visits": float(v["visits"]), "signups": float(v["signups"])}
        for day, v in expected["days"].items()
    }
    upstream = [
        *sb.listing("/v1/reports", "data", per_page=100, page=1),
        *sb.listing("/v1/reports", "data", per_page=100, page=2),
        *sb.listing("/v1/dashboards", "items", limit=100),
    ]
    assets = assets_of(factory, source["id"])
    assert assets == {
        (
            item["id"],
            item["kind"],
            item["title"],
            item["url"],
            item["embed_url"],
            item["folder"],
            item["updated_at"].replace("Z", "+00:00"),
            False,
        )
        for item in upstream
    }
    assert len(assets) == expected["reports"] + expected["dashboards"]

    second = sync_and_wait(client, headers, source["id"])

    assert second["status"] == "succeeded", second
    reread_points = 2 * (LOOKBACK_DAYS + 1) * volume["pages"]
    assert second["counts"] == {
        "created": 0,
        "updated": 0,
        "unchanged": expected["reports"] + expected["dashboards"] + reread_points,
        "deleted": 0,
    }
    assert points_of(factory, source["id"]) == stored
    assert assets_of(factory, source["id"]) == assets


def test_second_sync_reads_from_the_saved_cursor_minus_lookback(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sync_and_wait(client, headers, source["id"])

    second = sync_and_wait(client, headers, source["id"])

    metrics_calls = [
        e["path"]
        for e in client.get(f"/api/runs/{second['id']}", headers=headers).json()["timeline"][
            "recent"
        ]
        if e["path"].startswith("/example/v1/metrics")
    ]
    start = (today() - timedelta(days=LOOKBACK_DAYS)).isoformat()
    assert metrics_calls, second
    assert f"start_date={start}" in metrics_calls[0]
    assert f"end_date={today().isoformat()}" in metrics_calls[0]

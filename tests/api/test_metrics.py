"""Custom metrics through the real API: formulas checked when saved (unknown keys, cycles,
anything but arithmetic), per-user keys, deletion, and queries through /api/data-points as a
ratio of sums with hand-computed numbers."""

from __future__ import annotations

import pytest

from tests.api.objects import assert_problem, create_source, field_errors, person
from tests.api.test_data_points import CLARITY, create_metric, point, series, store, values


def test_a_custom_metric_is_a_ratio_of_sums_across_sources(client, factory):
    _, headers = person(factory)
    shop = create_source(client, headers)
    blog = create_source(client, headers)
    create_metric(
        client,
        headers,
        key="conversion",
        label="Conversion",
        unit="ratio",
        formula="signups / visits",
    )
    store(
        client,
        headers,
        [
            point(shop, "visits", 100, "2025-03-03", dimensions={"page": "/a"}),
            point(shop, "signups", 10, "2025-03-03", dimensions={"page": "/a"}),
            point(shop, "visits", 10, "2025-03-03", dimensions={"page": "/b"}),
            point(shop, "signups", 5, "2025-03-03", dimensions={"page": "/b"}),
            point(blog, "visits", 90, "2025-03-03"),
            point(blog, "signups", 0, "2025-03-03"),
            # a day without visits: its conversion has no value (not a crash, not infinity)
            point(shop, "visits", 0, "2025-03-04"),
            point(shop, "signups", 2, "2025-03-04"),
        ],
    )

    shop_only = series(client, headers, "conversion", sourceId=shop["id"])
    everywhere = series(client, headers, "conversion")

    assert shop_only["unit"] == "ratio"
    assert shop_only["aggregation"] == "formula"
    # 15 / 110, not 10/100 + 5/10 = 0.6 (a sum of ratios) nor 0.3 (their mean)
    assert values(shop_only) == {
        "2025-03-03T00:00:00Z": pytest.approx(15 / 110),
        "2025-03-04T00:00:00Z": None,
    }
    assert values(everywhere)["2025-03-03T00:00:00Z"] == pytest.approx(15 / 200)
    weekly = series(client, headers, "conversion", sourceId=shop["id"], granularity="week")
    assert values(weekly) == {"2025-03-03T00:00:00Z": pytest.approx(17 / 110)}


def test_a_custom_metric_of_a_rate_weights_the_rate_first(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers, type="microsoft_clarity", config=CLARITY)
    create_metric(
        client, headers, key="pages_total", label="Pages", formula="pages_per_session * sessions"
    )
    store(
        client,
        headers,
        [
            point(source, "pages_per_session", 2.0, "2025-03-03", dimensions={"device": "m"}),
            point(source, "pages_per_session", 5.0, "2025-03-03", dimensions={"device": "d"}),
            point(source, "sessions", 100, "2025-03-03", dimensions={"device": "m"}),
            point(source, "sessions", 300, "2025-03-03", dimensions={"device": "d"}),
        ],
    )

    body = series(client, headers, "pages_total")

    assert values(body) == {"2025-03-03T00:00:00Z": pytest.approx(4.25 * 400)}


def test_custom_metrics_are_listed_and_deleted(client, factory):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    create_metric(client, headers, key="conversion", label="Conversion", formula="signups / visits")
    create_metric(
        client, headers, key="conversion_pct", label="Conversion %", formula="conversion * 100"
    )

    listed = client.get("/api/metrics", headers=headers).json()
    in_use = client.delete("/api/metrics/conversion", headers=headers)
    theirs = client.delete("/api/metrics/conversion", headers=stranger_headers)

    assert [(m["key"], m["metrics"]) for m in listed] == [
        ("conversion", ["signups", "visits"]),
        ("conversion_pct", ["conversion"]),
    ]
    assert client.get("/api/metrics", headers=stranger_headers).json() == []
    assert "conversion_pct" in assert_problem(in_use, 409)["detail"]
    assert_problem(theirs, 404)
    assert client.delete("/api/metrics/conversion_pct", headers=headers).status_code == 204
    assert client.delete("/api/metrics/conversion", headers=headers).status_code == 204
    assert client.get("/api/metrics", headers=headers).json() == []


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param({"formula": "signups / clickz + foo"}, "formula", "clickz, foo", id="unknown_keys"),
        pytest.param({"formula": "rate * 2", "key": "rate"}, "formula", "cycle", id="itself"),
        pytest.param({"formula": "visits ** 2"}, "formula", "'**'", id="power"),
        pytest.param({"formula": "__import__('os').system('x')"}, "formula", "not allowed", id="call"),
        pytest.param({"formula": "visits / (signups"}, "formula", "not a valid formula", id="syntax"),
        pytest.param({"key": "visits"}, "key", "connector metric", id="builtin_key"),
        pytest.param({"key": "Bad-Key"}, "key", "lowercase", id="bad_key"),
    ],
)  # fmt: skip
def test_custom_metric_formulas_are_checked_when_saved(client, factory, body, field, words):
    _, headers = person(factory)
    payload = {"key": "rate", "label": "Rate", "formula": "signups / visits", **body}

    response = client.post("/api/metrics", headers=headers, json=payload)

    errors = field_errors(response)
    assert field in errors
    assert words in errors[field]
    assert client.get("/api/metrics", headers=headers).json() == []


def test_a_custom_metric_key_is_taken_once_per_user(client, factory):
    _, headers = person(factory)
    _, other_headers = person(factory)
    body = {"key": "conversion", "label": "Conversion", "formula": "signups / visits"}
    create_metric(client, headers, **body)

    assert_problem(client.post("/api/metrics", headers=headers, json=body), 409)
    create_metric(client, other_headers, **body)  # another user's key space


def test_a_strangers_custom_metric_is_unknown(client, factory):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    create_metric(client, stranger_headers, key="conversion", label="C", formula="signups / visits")

    response = client.get("/api/data-points", headers=headers, params={"metric": "conversion"})

    assert set(field_errors(response)) == {"metric"}

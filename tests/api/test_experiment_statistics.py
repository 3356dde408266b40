"""Test results a person can decide on, through the real API on SQLite and PostgreSQL: the
weekday-aligned paired t-test of daily values, difference-in-differences against a control,
guardrails, and the checks on a test's control and guardrails.

Expected values come from scipy's own ``ttest_rel`` / ``ttest_ind`` on the daily values the
test writes (not from the code under test)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from scipy import stats as scipy_stats

from tests.api.objects import create_source, field_errors, person
from tests.api.test_data_points import point, store
from tests.api.test_experiments import create_test, results

START = date(2025, 5, 8)  # a Thursday
NOISE = [2, -1, 0, 3, -3, 1, -2, 0, 2, -1, 1, -3, 3, 0, -2, 1, 2, -1, 0, -2, 3, 1, -3, 2, 0, -1]


def day(offset: int) -> date:
    return START + timedelta(days=offset)


def write(client, headers, source, metric: str, value: Callable[[int], float], offsets, **kw):
    """One point a day, ``value(offset)`` on ``START + offset``."""
    dims = kw.pop("dimensions", {})
    store(
        client,
        headers,
        [point(source, metric, value(i), day(i), dimensions=dims) for i in offsets],
        **kw,
    )


def test_a_weekday_pattern_does_not_fool_the_comparison(client, factory):
    """A 10-day test (Thursday to the next Saturday: three weekend days) of a metric that
    halves at weekends, up 6 a day: the 10 days just before hold two weekend days, so an
    unaligned Welch's t-test sees a change of 0.5 and p = 0.97; each test day against the
    same weekday two weeks earlier finds the 6 with p < 0.001."""
    _, headers = person(factory)
    source = create_source(client, headers)
    test = create_test(client, headers, metric="visits", endDate=day(9).isoformat())

    def visits(i: int) -> float:
        weekend = day(i).weekday() >= 5
        return (40 if weekend else 100) + NOISE[i + 14] + (6 if i >= 0 else 0)

    write(client, headers, source, "visits", visits, range(-14, 10))
    during = [visits(i) for i in range(10)]
    aligned = [visits(i - 14) for i in range(10)]
    unaligned = [visits(i - 10) for i in range(10)]
    expected = scipy_stats.ttest_rel(during, aligned)
    interval = expected.confidence_interval(0.95)
    naive = scipy_stats.ttest_ind(during, unaligned, equal_var=False)

    (result,) = results(client, headers, test["id"])["metrics"]

    assert naive.pvalue > 0.5  # what an unaligned comparison would say
    assert abs(sum(during) - sum(unaligned)) / 10 < 1
    assert (result["baseline"]["from"], result["baseline"]["to"]) == ("2025-04-24", "2025-05-03")
    assert result["days"] == {"baseline": 10, "during": 10, "paired": 10, "required": 7, "lag": 14}
    assert result["effect"]["absolute"] == pytest.approx((sum(during) - sum(aligned)) / 10)
    assert result["effect"]["relative"] == pytest.approx(
        (sum(during) - sum(aligned)) / sum(aligned)
    )
    assert result["change"]["absolute"] == pytest.approx(result["effect"]["absolute"])
    assert result["interval"]["absolute"] == pytest.approx([interval.low, interval.high])
    assert result["pValue"] == pytest.approx(expected.pvalue)
    assert result["pValue"] < 0.001
    assert result["degreesOfFreedom"] == 9
    assert result["significant"] is True
    assert (
        "paired t on 10 days, each against the same weekday 14 days earlier" in (result["summary"])
    )


def _trend_test(client, headers, *, lift: float) -> tuple[dict[str, Any], list[float]]:
    """visits of /pricing (linked, the test's) and of /about (the control) both climb 2 a
    day; /pricing gains ``lift`` a day during the test (7 days, 8-14 May)."""
    source = create_source(client, headers)
    test = create_test(
        client,
        headers,
        metric="visits",
        endDate=day(6).isoformat(),
        control={"dimensions": {"page": "/about"}},
    )

    def pricing(i: int) -> float:
        return 50 + 2 * i + NOISE[i + 7] + (lift if i >= 0 else 0)

    def about(i: int) -> float:
        return 30 + 2 * i + NOISE[i + 15]

    pages = {"page": "/pricing"}
    write(client, headers, source, "visits", pricing, range(-7, 0), dimensions=pages)
    write(
        client,
        headers,
        source,
        "visits",
        pricing,
        range(7),
        dimensions=pages,
        linkToTests=[test["id"]],
    )
    write(client, headers, source, "visits", about, range(-7, 7), dimensions={"page": "/about"})
    gaps = [pricing(i) - about(i) for i in range(-7, 7)]
    return test, gaps


def test_a_control_cancels_a_common_trend(client, factory):
    _, headers = person(factory)
    test, gaps = _trend_test(client, headers, lift=0)
    expected = scipy_stats.ttest_rel(gaps[7:], gaps[:7])
    interval = expected.confidence_interval(0.95)

    (result,) = results(client, headers, test["id"])["metrics"]

    assert result["significant"] is True  # the trend alone: +14 a day a week later
    assert result["effect"]["absolute"] == pytest.approx(
        14 + (sum(NOISE[7:14]) - sum(NOISE[:7])) / 7
    )
    control = result["control"]
    assert control["metric"] == "visits"
    assert control["dimensions"] == {"page": "/about"}
    assert control["method"] == "difference-in-differences, weekday-paired-t"
    assert control["effect"]["absolute"] == pytest.approx((sum(gaps[7:]) - sum(gaps[:7])) / 7)
    assert control["interval"]["absolute"] == pytest.approx([interval.low, interval.high])
    assert control["interval"]["absolute"][0] < 0 < control["interval"]["absolute"][1]
    assert control["pValue"] == pytest.approx(expected.pvalue)
    assert control["days"]["paired"] == 7
    assert control["significant"] is False
    assert control["summary"].endswith("not significant once the control's trend is taken out.")


def test_a_control_keeps_a_real_change(client, factory):
    _, headers = person(factory)
    test, gaps = _trend_test(client, headers, lift=10)
    expected = scipy_stats.ttest_rel(gaps[7:], gaps[:7])

    body = results(client, headers, test["id"])
    (result,) = body["metrics"]

    control = result["control"]
    assert control["effect"]["absolute"] == pytest.approx((sum(gaps[7:]) - sum(gaps[:7])) / 7)
    assert control["pValue"] == pytest.approx(expected.pvalue)
    assert control["interval"]["absolute"][0] > 0
    assert control["significant"] is True
    assert control["summary"].endswith("the change is significant beyond the control's trend.")
    assert body["summary"] == f"{result['summary']} {control['summary']}"


def test_guardrails_one_breached_one_ok(client, factory):
    """signups must not fall more than 5 % (they fall 20 %: breached); visits must not rise
    more than 10 % (they stay flat: ok); a guardrail on a metric without data is
    inconclusive."""
    _, headers = person(factory)
    source = create_source(client, headers)
    test = create_test(
        client,
        headers,
        endDate=day(6).isoformat(),
        guardrails=[
            {"metric": "signups", "badDirection": "decrease", "tolerance": 0.05},
            {"metric": "visits", "badDirection": "increase", "tolerance": 0.1},
            {"metric": "clicks", "badDirection": "decrease", "tolerance": 0.1},
        ],
    )

    def signups(i: int) -> float:
        return (100 + NOISE[i + 7]) * (0.8 if i >= 0 else 1)

    def visits(i: int) -> float:
        return 200 + NOISE[i + 10]

    write(client, headers, source, "signups", signups, range(-7, 7))
    write(client, headers, source, "visits", visits, range(-7, 7))
    fell = scipy_stats.ttest_rel([signups(i) for i in range(7)], [signups(i - 7) for i in range(7)])
    fell_base = sum(signups(i - 7) for i in range(7)) / 7
    flat = scipy_stats.ttest_rel([visits(i) for i in range(7)], [visits(i - 7) for i in range(7)])
    flat_ci = flat.confidence_interval(0.95)

    body = results(client, headers, test["id"])
    signups_result, visits_result, clicks_result = body["guardrails"]

    assert signups_result["status"] == "breached"
    assert signups_result["badDirection"] == "decrease"
    assert signups_result["tolerance"] == 0.05
    assert signups_result["pValue"] == pytest.approx(fell.pvalue)
    ci = fell.confidence_interval(0.95)
    assert signups_result["interval"]["relative"] == pytest.approx(
        [ci.low / fell_base, ci.high / fell_base]
    )
    assert signups_result["interval"]["relative"][1] < -0.05  # wholly past the tolerance
    assert signups_result["summary"].startswith("signups has fallen by more than the 5.0 %")
    assert visits_result["status"] == "ok"
    assert visits_result["interval"]["relative"] == pytest.approx(
        [flat_ci.low / 200, flat_ci.high / 200], rel=1e-2
    )
    assert visits_result["interval"]["relative"][1] < 0.1
    assert visits_result["summary"].startswith("visits stayed within the 10.0 % tolerated")
    assert clicks_result["status"] == "inconclusive"
    assert clicks_result["reason"] == "Not enough days yet: 0 of 7 in the test window."
    assert body["summary"] == (
        "The test has no metric yet: name one or link data points. "
        "Guardrails breached: signups. Guardrails not yet decided: clicks."
    )


# ---------------------------------------------------------------- checks


def test_control_and_guardrails_are_stored_and_changed(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers)
    created = create_test(
        client,
        headers,
        metric="visits",
        control={"metric": "page_views", "sourceId": source["id"]},
        guardrails=[{"metric": "signups", "badDirection": "decrease", "tolerance": 0.05}],
    )
    url = f"/api/tests/{created['id']}"

    patched = client.patch(url, headers=headers, json={"control": {"dimensions": {"page": "/a"}}})
    cleared = client.patch(url, headers=headers, json={"control": None, "guardrails": []})

    assert created["control"] == {
        "metric": "page_views",
        "sourceId": source["id"],
        "dimensions": None,
    }
    assert created["guardrails"] == [
        {"metric": "signups", "badDirection": "decrease", "tolerance": 0.05}
    ]
    assert patched.status_code == 200, patched.text
    assert patched.json()["control"] == {
        "metric": None,
        "sourceId": None,
        "dimensions": {"page": "/a"},
    }
    assert patched.json()["guardrails"] == created["guardrails"]  # left out: kept
    assert cleared.json()["control"] is None
    assert cleared.json()["guardrails"] == []


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        pytest.param({"metric": "visits", "control": {"metric": "bounce_rate"}}, {"control.metric"}, id="unknown_control_metric"),
        pytest.param({"metric": "visits", "control": {}}, {"control"}, id="empty_control"),
        pytest.param({"control": {"metric": "signups"}}, {"control"}, id="control_without_metric"),
        pytest.param({"metric": "visits", "control": {"sourceId": "theirs"}}, {"control.sourceId"}, id="strangers_source"),
        pytest.param({"guardrails": [{"metric": "bounce_rate", "badDirection": "increase", "tolerance": 0.1}]}, {"guardrails.0.metric"}, id="unknown_guardrail_metric"),
        pytest.param({"guardrails": [{"metric": "signups", "badDirection": "up", "tolerance": 0.1}]}, {"guardrails.0.badDirection"}, id="bad_direction"),
        pytest.param({"guardrails": [{"metric": "signups", "badDirection": "increase", "tolerance": -1}]}, {"guardrails.0.tolerance"}, id="negative_tolerance"),
    ],
)  # fmt: skip
def test_a_bad_control_or_guardrail_is_a_422_naming_it(client, factory, fields, bad):
    _, headers = person(factory)
    _, stranger_headers = person(factory)
    theirs = create_source(client, stranger_headers)
    control = fields.get("control")
    if control and control.get("sourceId") == "theirs":
        fields = {**fields, "control": {"sourceId": theirs["id"]}}

    response = client.post(
        "/api/tests", headers=headers, json={"name": "T", "startDate": "2025-05-08", **fields}
    )

    assert set(field_errors(response)) == bad
    assert client.get("/api/tests", headers=headers).json() == []


def test_a_control_on_another_source_and_when_it_is_gone(client, factory):
    """The control is the same metric on another source (a site the change did not reach);
    once that source is deleted the control has nothing to compare with, and says so."""
    _, headers = person(factory)
    treated, other = create_source(client, headers), create_source(client, headers)
    test = create_test(
        client,
        headers,
        metric="visits",
        endDate=day(6).isoformat(),
        control={"sourceId": other["id"]},
    )

    def shop(i: int) -> float:
        return 80 + 3 * i + NOISE[i + 7]

    def blog(i: int) -> float:
        return 20 + 3 * i + NOISE[i + 12]

    write(client, headers, treated, "visits", shop, range(-7, 0))
    write(client, headers, treated, "visits", shop, range(7), linkToTests=[test["id"]])
    write(client, headers, other, "visits", blog, range(-7, 7))
    gaps = [shop(i) - blog(i) for i in range(-7, 7)]
    expected = scipy_stats.ttest_rel(gaps[7:], gaps[:7])

    (before,) = results(client, headers, test["id"])["metrics"]
    deleted = client.delete(f"/api/data-sources/{other['id']}", headers=headers)
    (after,) = results(client, headers, test["id"])["metrics"]

    assert before["during"]["value"] == pytest.approx(sum(shop(i) for i in range(7)) / 7)
    assert before["control"]["sourceId"] == other["id"]
    assert before["control"]["pValue"] == pytest.approx(expected.pvalue)
    assert before["control"]["effect"]["absolute"] == pytest.approx(
        (sum(gaps[7:]) - sum(gaps[:7])) / 7
    )
    assert before["control"]["significant"] is False
    assert deleted.status_code == 204, deleted.text
    assert after["significant"] is True  # the trend, without its control
    assert after["control"]["significant"] is None
    assert after["control"]["reason"] == "The control's source is gone: nothing to compare with."


def test_differences_past_a_doubles_range_are_not_decided(client, factory):
    """Each day's value is finite, but during minus baseline is not: no interval (which JSON
    could not carry), the reason instead."""
    _, headers = person(factory)
    source = create_source(client, headers)
    test = create_test(client, headers, metric="visits", endDate=day(6).isoformat())
    write(
        client, headers, source, "visits", lambda i: 1.7e308 if i >= 0 else -1.7e308, range(-7, 7)
    )

    (result,) = results(client, headers, test["id"])["metrics"]

    assert result["significant"] is None
    assert result["interval"] is None
    assert result["reason"] == "The daily values are too large to compare (past a double's range)."

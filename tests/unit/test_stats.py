"""The statistics of test results (inflow.api.services.stats) against a published example.

Worked example: Student's sleep data (Cushny & Peebles, 1905, as analysed by "Student",
Biometrika 6, 1908), the example of R's documentation of the ``sleep`` data set
(``?datasets::sleep``: ``with(sleep, t.test(extra[group == 1], extra[group == 2],
paired = TRUE))``), whose printed answer is:

    Paired t-test
    t = -4.0621, df = 9, p-value = 0.002833
    95 percent confidence interval: -2.4598858 -0.7001142
    mean of the differences: -1.58

(the same output is quoted in "R For Dummies", Meys & de Vries, "How to compare paired data
with R"). Here the differences are group 2 minus group 1, so the signs turn.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from inflow.api.services import stats

# extra hours of sleep of ten patients, drug 1 (group 1) and drug 2 (group 2)
GROUP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
GROUP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_the_paired_t_test_reproduces_students_sleep_example():
    result = stats.mean_difference([b - a for a, b in zip(GROUP_1, GROUP_2, strict=True)])

    assert result.mean == pytest.approx(1.58, abs=5e-3)  # printed: 1.58
    assert round(result.t, 4) == 4.0621
    assert result.df == 9
    assert round(result.p_value, 6) == 0.002833
    assert (round(result.low, 7), round(result.high, 7)) == (0.7001142, 2.4598858)
    assert result.confidence == 0.95
    assert result.significant is True


def test_the_sleep_example_through_the_pairing_of_days():
    """The same numbers when the patients are days: group 1 on ten baseline days, group 2 on
    the days 14 later (the lag of a 10-day test)."""
    first = date(2025, 5, 1)
    baseline = {first + timedelta(days=i): v for i, v in enumerate(GROUP_1)}
    during = {first + timedelta(days=14 + i): v for i, v in enumerate(GROUP_2)}
    lag = stats.baseline_lag(10)

    pairs = stats.pair(baseline, during, lag)
    result = stats.mean_difference(pairs.differences)

    assert lag == 14
    assert len(pairs.pairs) == 10
    assert round(result.t, 4) == 4.0621
    assert round(result.p_value, 6) == 0.002833
    assert (round(result.low, 7), round(result.high, 7)) == (0.7001142, 2.4598858)
    assert pairs.baseline_mean == pytest.approx(sum(GROUP_1) / 10)


@pytest.mark.parametrize(("days", "lag"), [(1, 7), (7, 7), (8, 14), (14, 14), (15, 21)])
def test_the_baseline_is_the_fewest_whole_weeks_back(days, lag):
    assert stats.baseline_lag(days) == lag


def test_pairs_leave_out_days_without_a_partner_and_values_that_are_not_finite():
    first = date(2025, 5, 8)
    during = {first: 5.0, first + timedelta(days=1): math.inf, first + timedelta(days=2): 7.0}
    baseline = {first - timedelta(days=7): 4.0, first - timedelta(days=6): 4.0}

    pairs = stats.pair(baseline, during, 7)

    assert pairs.pairs == [(first, 5.0, 4.0)]
    assert set(pairs.during) == {first, first + timedelta(days=2)}


def test_differences_without_spread():
    assert stats.mean_difference([3.0, 3.0, 3.0]).p_value == 0.0
    assert (stats.mean_difference([3.0, 3.0]).low, stats.mean_difference([3.0, 3.0]).high) == (
        3.0,
        3.0,
    )
    assert stats.mean_difference([0.0, 0.0]).p_value == 1.0
    assert stats.mean_difference([0.0, 0.0]).significant is False
    with pytest.raises(ValueError, match="two"):
        stats.mean_difference([1.0])

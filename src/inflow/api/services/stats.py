"""Statistics of a test's daily values: is the change in a metric more than its daily noise?

The method (``METHOD``): each day of the test window is paired with the same weekday in the
baseline, ``lag`` days earlier (the test window moved back by whole weeks, see
``baseline_lag``); the change is the mean of the paired differences, its confidence interval
and p-value come from Student's t distribution with ``n - 1`` degrees of freedom (a paired
t-test on same-weekday differences).

Why this and not a Welch's t-test on the two windows' daily values:
- daily aggregates of web and business metrics follow the week (weekends dip): compared
  unaligned, a window with one weekend day more than the other moves the mean without any
  change, and the weekday pattern counts as noise, hiding a real change. Pairing each day
  with the same weekday takes the weekday pattern out of both the change and the noise;
- with whole weeks the mean of the paired differences *is* the difference of the windows'
  daily means, so the interval is about the number the windows show;
- a week of pairs is enough (6 degrees of freedom), whereas a Welch's t-test whose spread
  leaves the weekday pattern out needs every weekday twice in each window;
- a block bootstrap needs many more blocks (weeks) than a test usually has.
What it assumes: the weekday pattern is the same in both windows (additive) and the paired
differences are independent. Days are not independent when a metric drifts (autocorrelation)
and a trend over the weeks shows up as a change: a control (difference-in-differences, the
same test on each day's treated minus control value) takes a trend the control shares out.

A relative change and its interval are the absolute ones over the paired baseline days' mean
(taken as known: with a noisy baseline the relative interval is a little too narrow).

Not decidable (``significant: None`` with a ``reason``): fewer than ``MIN_PAIRS`` (7, a full
week) days of the test window with data that have data on the same weekday in the baseline.
Values that are not finite (a sum past the largest double) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from scipy import stats  # type: ignore[import-untyped]

METHOD = "weekday-paired-t"
METHOD_NAME = "paired t-test, each test day against the same weekday in the baseline"
CONFIDENCE = 0.95
MIN_PAIRS = 7


def baseline_lag(days: int) -> int:
    """How far back the baseline is: the fewest whole weeks that hold a window of ``days``
    days (7 for a week or less, 14 for 8-14 days...), so each day meets its own weekday."""
    return 7 * max(1, math.ceil(days / 7))


@dataclass(frozen=True)
class TTest:
    """A t-test of the mean of ``n`` differences against 0."""

    n: int
    mean: float
    std_error: float
    df: int
    t: float
    p_value: float
    low: float
    high: float
    confidence: float

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - self.confidence


def mean_difference(differences: Sequence[float], confidence: float = CONFIDENCE) -> TTest:
    """Student's t-test of the mean of paired differences (two-sided), with its interval.

    At least two differences. Differences that are all equal have no spread: the interval is
    that value and the p-value 0 (1 when they are all 0)."""
    n = len(differences)
    if n < 2:
        raise ValueError("a t-test needs at least two differences")
    mean = math.fsum(differences) / n
    spread = math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (n - 1))
    df = n - 1
    se = spread / math.sqrt(n)
    if se == 0 or not math.isfinite(se):
        if not math.isfinite(se):
            return TTest(n, mean, se, df, math.nan, 1.0, -math.inf, math.inf, confidence)
        t = math.copysign(math.inf, mean) if mean else 0.0
        return TTest(n, mean, 0.0, df, t, 0.0 if mean else 1.0, mean, mean, confidence)
    t = mean / se
    p_value = float(2 * stats.t.sf(abs(t), df))
    margin = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return TTest(n, mean, se, df, t, p_value, mean - margin, mean + margin, confidence)


@dataclass(frozen=True)
class Pairs:
    """The days of a test window paired with the same weekday ``lag`` days earlier."""

    lag: int
    during: dict[date, float]  # the test window's days with a finite value
    baseline: dict[date, float]  # the baseline's days with a finite value
    pairs: list[tuple[date, float, float]]  # (test day, its value, the baseline day's value)

    @property
    def differences(self) -> list[float]:
        return [now - before for _, now, before in self.pairs]

    @property
    def baseline_mean(self) -> float | None:
        """The mean of the paired baseline days (what a relative change is relative to)."""
        if not self.pairs:
            return None
        return math.fsum(before for _, _, before in self.pairs) / len(self.pairs)


def pair(
    baseline: Mapping[date, float | None], during: Mapping[date, float | None], lag: int
) -> Pairs:
    """Pair each day of ``during`` with the day ``lag`` days before it in ``baseline``."""
    now = {d: v for d, v in during.items() if v is not None and math.isfinite(v)}
    before = {d: v for d, v in baseline.items() if v is not None and math.isfinite(v)}
    step = timedelta(days=lag)
    pairs = [
        (d, now[d], before[d - step])
        for d in sorted(now)
        if d.toordinal() > lag and d - step in before  # (no day before the calendar's first)
    ]
    return Pairs(lag, now, before, pairs)


def difference_series(
    treated: Mapping[date, float | None], control: Mapping[date, float | None]
) -> dict[date, float | None]:
    """Each day's treated minus control value (days where both have one)."""
    found: dict[date, float | None] = {}
    for day, value in treated.items():
        other = control.get(day)
        if value is not None and other is not None:
            found[day] = value - other
    return found

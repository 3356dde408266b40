"""Retry policy: ``Retry-After`` parsing, full-jitter backoff bounds, the test-mode cap."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from inflow.http import retry
from inflow.http.retry import RetryPolicy, parse_retry_after

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 5 ", 5.0, id="padded"),
        pytest.param("1.5", 1.5, id="fractional"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("-3", 0.0, id="negative-is-now"),
        pytest.param(
            format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0, id="future-date"
        ),
        pytest.param(format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0, id="past-date"),
        pytest.param("Fri, 14 Mar 2025 12:00:30 -0000", 30.0, id="date-without-zone"),
        pytest.param("Fri, 14 Mar 2025 13:00:00 +0100", 0.0, id="date-with-offset"),
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("Fri, 99 Foo 2025", None, id="broken-date"),
        pytest.param("nan", None, id="nan"),
        pytest.param("inf", None, id="infinity"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_date_against_the_clock() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    seconds = parse_retry_after(format_datetime(when, usegmt=True))
    assert seconds is not None
    assert 115 <= seconds <= 120


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [
        pytest.param(0, 0.5, id="attempt-0"),
        pytest.param(1, 0.5, id="attempt-1"),
        pytest.param(2, 1.0, id="attempt-2"),
        pytest.param(3, 2.0, id="attempt-3"),
        pytest.param(4, 4.0, id="attempt-4-reaches-max"),
        pytest.param(30, 4.0, id="attempt-30-capped"),
    ],
)
def test_retry_policy_backoff_is_full_jitter_under_the_ceiling(
    attempt: int, ceiling: float
) -> None:
    policy = RetryPolicy(base_s=0.5, max_s=4.0)
    rng = random.Random(7)
    delays = [policy.backoff(attempt, rng) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert min(delays) < ceiling * 0.1  # full jitter: from zero ...
    assert max(delays) > ceiling * 0.9  # ... up to the ceiling


def test_retry_policy_backoff_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy()
    first = [policy.backoff(n, random.Random(42)) for n in range(1, 7)]
    again = [policy.backoff(n, random.Random(42)) for n in range(1, 7)]
    assert first == again


def test_retry_policy_backoff_without_rng() -> None:
    assert 0.0 <= RetryPolicy(base_s=1.0, max_s=2.0).backoff(5) <= 2.0


def test_retry_policy_defaults_are_bounded() -> None:
    policy = RetryPolicy()
    assert policy.attempts > 1
    assert 0 < policy.total_s < float("inf")


@pytest.mark.parametrize(
    ("on", "cap", "delay", "expected"),
    [
        pytest.param(True, 0.0, 30.0, 0.0, id="zero-cap"),
        pytest.param(True, 0.25, 30.0, 0.25, id="capped"),
        pytest.param(True, 0.25, 0.1, 0.1, id="under-the-cap"),
        pytest.param(False, 0.0, 30.0, 30.0, id="off"),
    ],
)
def test_testing_cap(on: bool, cap: float, delay: float, expected: float) -> None:
    retry.set_testing(on, cap_s=cap)
    assert retry.testing_cap(delay) == expected


def test_the_budget_plans_the_providers_wait_else_backoff_within_the_bounds() -> None:
    budget = retry.RetryBudget(RetryPolicy(attempts=4, total_s=100.0, max_retry_after_s=60.0))
    assert budget.plan(1, retry_after=30.0) == 30.0  # Retry-After / reset header first
    assert budget.plan(2, retry_after=61.0) is None  # longer than max_retry_after_s: surfaces
    backoff = budget.plan(2)
    assert backoff is not None
    assert 0.0 <= backoff <= 1.0
    assert budget.plan(4) is None  # no tries left
    assert budget.plan(3, retry_after=71.0) is None  # past the total budget (30 + 71 > 100)
    assert budget.waited == 30.0 + backoff


def test_the_hook_retries_only_a_planned_failure_after_its_wait() -> None:
    retry.set_testing(False)
    assert retry.backoff_hook(retry.RetryableFailure("503", delay=2.5)) == 2.5
    assert retry.backoff_hook(ValueError("not ours")) is False
    retry.set_testing(True, cap_s=0.25)
    assert retry.backoff_hook(retry.RetryableFailure("503", delay=2.5)) == 0.25
    retry.set_testing(False)


async def _always_failing(policy: RetryPolicy, tries: list[int]) -> None:
    async for attempt in retry.retrying(policy):
        with attempt:
            tries.append(attempt.num)
            raise retry.RetryableFailure("down", delay=0.0)


@pytest.mark.anyio
async def test_stamina_runs_the_attempts_and_test_mode_keeps_them() -> None:
    import stamina

    policy = RetryPolicy(attempts=3)
    for on in (True, False):
        retry.set_testing(on, cap_s=0.0)
        assert stamina.is_testing() is on
        tries: list[int] = []
        with pytest.raises(retry.RetryableFailure):
            await _always_failing(policy, tries)
        assert len(tries) == policy.attempts
    retry.set_testing(False)

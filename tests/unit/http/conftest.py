"""Fixtures for the HTTP layer's unit tests: anyio on asyncio and short retry waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inflow.http import retry


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    """Every wait of the retry loop is capped at zero; the cap is lifted after the test."""
    retry.set_testing(True, cap_s=0.0)
    yield
    retry.set_testing(False)

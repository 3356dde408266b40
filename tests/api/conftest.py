"""API tests' own fixtures: an app built with settings overrides (rate limits, Redis URLs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from inflow.api.app import create_app
from inflow.settings import Settings
from tests.conftest import TestClient

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(engine: Engine, tmp_path: Path) -> Iterator[MakeClient]:
    """Builds a client for an app on the test database with the given settings overrides."""
    with ExitStack() as stack:

        def build(**overrides: Any) -> TestClient:
            settings = Settings(data_dir=tmp_path / "data", log_format="console", **overrides)
            app = create_app(settings, engine=engine, migrate=False)
            return stack.enter_context(TestClient(app))

        yield build

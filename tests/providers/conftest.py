"""Fixtures of the provider tests: the sync tests' real API, database and in-process sandbox
(a test module that needs a sandbox of its own, with a clock say, overrides ``sandbox``)."""

from tests.sync.conftest import (  # noqa: F401 (fixtures, found by name)
    app,
    deps,
    fast_retries,
    real_waits,
    sandbox,
    sb,
    settings,
    vault,
)

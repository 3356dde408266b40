"""Started in every Python process the tests start (``PYTHONPATH`` holds this folder): the
process runs on the test's clock, not the wall clock. ``INFLOW_TEST_CLOCK_SHARED`` is
``<test instant>,<wall instant>`` from the parent; the child's now is the test instant plus the
wall time that has passed since, ticking on from there."""

from __future__ import annotations

import os
import time

_shared = os.environ.get("PYTEST_INFLOW_CLOCK", "")
if _shared:
    try:
        import time_machine
    except ImportError:  # a Python without the test tools (not the venv under test)
        pass
    else:
        _at, _wall = (float(part) for part in _shared.split(","))
        time_machine.travel(_at + (time.time() - _wall), tick=True).start()

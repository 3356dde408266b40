"""The sandbox over loopback with its clock standing still, for tests of real processes.

    python -m tests.sync.pinned_sandbox PORT DAYS_BACK

Its clock stops at the instant it starts minus ``DAYS_BACK`` days. The processes a test starts
(servers, sync runners) keep their own real clocks: whatever the hour, even across a midnight,
every call the emulators list lies days in their past, the same calls for every run.
"""

from __future__ import annotations

import sys
import time

import uvicorn

from inflow.sandbox.app import create_app


def main(argv: list[str]) -> None:
    port, days_back = int(argv[0]), float(argv[1])
    at = time.time() - days_back * 86_400
    uvicorn.run(create_app(clock=lambda: at), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])

"""One sync run in its own process, for the crash test to kill.

    python -m tests.sync.crash_runner DATABASE_URL DATA_DIR RUN_ID [BATCH_SIZE]

It builds the engine's dependencies the way a worker does (database, vault from the data dir's
key file, real HTTP to the source's base URL), installs the test-only connectors and runs the
queued run to its end.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from inflow.connectors import registry
from inflow.http.client import HttpOptions
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing, Vault
from inflow.storage.db import create_db_engine, make_session_factory
from inflow.sync.engine import EngineDeps, run_sync
from tests.sync.connectors import WINDOWED


def main(argv: list[str]) -> int:
    database_url, data_dir, run_id = argv[:3]
    batch_size = int(argv[3]) if len(argv) > 3 else 5000
    settings = Settings(data_dir=Path(data_dir), allow_private_urls=True)
    registry()[WINDOWED.slug] = WINDOWED
    engine = create_db_engine(database_url)
    deps = EngineDeps(
        factory=make_session_factory(engine),
        vault=Vault(KeyRing(settings).keys()),
        options=HttpOptions(allow_private_urls=True),
        batch_size=batch_size,
    )
    result = asyncio.run(run_sync(deps, uuid.UUID(run_id)))
    engine.dispose()
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

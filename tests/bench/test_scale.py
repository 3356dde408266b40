"""``bench/scale`` runs: its smoke size in the embedded mode (SQLite), every source synced once.

A real sandbox process with its latency switch on, a real migrated SQLite file and the API's
in-process worker in a fresh process, as ``python -m bench.scale --small`` runs them. Nothing
here looks at timings: only that the bench completes and that each source got exactly one run,
which succeeded, and that the provider's request count is the sandbox's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_embedded_run_syncs_every_source_exactly_once():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--small",
            "--sources",
            "20",
            "--latency-ms",
            "20",
            "--workers",
            "0",
            "--backends",
            "sqlite",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1
    row = rows[0]
    assert (row["mode"], row["backend"], row["sources"]) == ("embedded", "sqlite", 20)
    assert row["exactly_one"] is True
    assert row["runs"] == {"succeeded": 20}
    # One metrics page, no reports, no dashboards: three answered requests per source.
    assert row["requests"] == 3 * 20
    assert row["statuses"] == {"200": 60}
    assert "| embedded | sqlite |" in out.stdout  # the markdown table

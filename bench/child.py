"""A measurement in a fresh interpreter: what every bench runs apart from its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_module(what: str, *args: str) -> dict[str, Any]:
    """``python -m *args`` from the repository's root; its last stdout line is the JSON result.
    A child that fails stops the bench with its exit code and the tail of its stderr."""
    out = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(f"{what} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result

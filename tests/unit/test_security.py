"""Password hashing runs at argon2's recommended cost unless the test switch is on."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = "from inflow.api.security import hash_password; print(hash_password('pw'))"


def _hash_with(env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_password_hashing_uses_full_cost_by_default():
    env = {k: v for k, v in os.environ.items() if k != "INFLOW_TEST_FAST_HASHING"}
    stored = _hash_with(env)
    assert stored.startswith("$argon2id$")
    assert "m=65536,t=3,p=4" in stored


def test_password_hashing_test_switch_lowers_cost():
    stored = _hash_with({**os.environ, "INFLOW_TEST_FAST_HASHING": "1"})
    assert "m=1024,t=1,p=1" in stored

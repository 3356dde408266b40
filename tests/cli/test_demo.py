"""``inflow demo`` as a person runs it, as processes: a busy port refused before any data is
touched, the banner first (the UI's address on its first line), the access log in a file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.test_cli import DEMO_ADMIN, demo_login, log_in
from tests.servers import inflow_env, run_inflow


def test_a_second_demo_on_a_busy_port_is_refused_and_leaves_the_running_one_alone(
    tmp_path: Path, spawn
):
    env = inflow_env(tmp_path / "data")
    first = spawn("demo", env)
    email, password = demo_login(first)
    assert email == DEMO_ADMIN

    second = run_inflow("demo", "--port", str(first.port), env=env, timeout=60)

    assert second.returncode == 4, (second.stdout, second.stderr)
    assert f"127.0.0.1:{first.port} is already in use" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr  # one readable line
    assert second.stdout == ""  # no banner, no new password
    assert log_in(first.base_url, email, password).status_code == 200  # the running one's works


def test_the_demo_prints_its_address_first_and_logs_requests_to_a_file(tmp_path: Path, spawn):
    data = tmp_path / "data"
    demo = spawn("demo", inflow_env(data))
    demo_login(demo)
    marker = "/api/health"
    assert httpx.get(f"{demo.base_url}{marker}", timeout=10).status_code == 200

    lines = [line for line in demo.stdout.splitlines() if line.strip()]
    assert lines[0].endswith(f"demo on {demo.base_url}/"), demo.stdout  # the UI's URL first
    log_file = data / "demo.log"
    assert f"log      : {log_file}" in demo.stdout  # the banner names the log
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    requests = [e for e in logged if e["event"] == "request"]
    assert any(e["path"] == marker and e["status"] == 200 for e in requests), requests[-5:]
    assert "Application startup complete." in log_file.read_text()  # uvicorn's own lines too
    terminal = demo.stdout + demo.stderr
    assert marker not in terminal  # no access log line on the terminal
    assert (log_file.stat().st_mode & 0o777) == 0o600

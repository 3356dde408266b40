"""The CLI's long-running commands as an operator runs them: ``inflow sandbox`` serving a
provider's API, ``inflow scheduler`` enqueuing a due source and ``inflow worker`` taking queued
syncs off PostgreSQL (``INFLOW_WORKER=external``: the API only queues them) and finishing them,
each a real process, stopped with SIGTERM and exiting cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Workspace
from tests.cli.test_cli import create_token, create_user, new_email
from tests.servers import INFLOW, InflowServer, free_port

SIGTERM_EXIT_S = 30  # how long a stopped process may take to end (a bound, not measured)


SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class Process:
    """``inflow ARGS`` in its own process group, its output in files."""

    def __init__(
        self, *args: str, env: dict[str, str], workdir: Path, ctrl_c: bool = False
    ) -> None:
        """``ctrl_c``: SIGINT reaches the process even when this one was started ignoring it
        (a background job of a non-interactive shell inherits SIGINT ignored, and so would
        ``inflow``: Ctrl-C tests start it through a line that sets SIGINT back to default)."""
        self.args = args
        workdir.mkdir(parents=True, exist_ok=True)
        name = "-".join(args[:1]) + f"-{uuid.uuid4().hex[:6]}"
        self.stdout_path, self.stderr_path = workdir / f"{name}.out", workdir / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            command = [str(INFLOW), *args]
            if ctrl_c:
                command = [sys.executable, "-c", SIGINT_DEFAULT, *command]
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        """Poll ``check`` until it holds; the process dying meanwhile fails at once."""
        deadline = time.monotonic() + timeout
        while not check():
            code = self.proc.poll()
            assert code is None, f"inflow {self.args[0]} exited ({code}):\n{self.output}"
            assert time.monotonic() < deadline, f"no {what}:\n{self.output}"
            time.sleep(0.1)

    def terminate(self) -> int:
        """SIGTERM to the process (as systemd or Docker stop it); its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=SIGTERM_EXIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"inflow {self.args[0]} ignored SIGTERM:\n{self.output}") from None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.proc.wait(timeout=10)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start ``inflow`` processes; any still running when the test ends is killed."""
    started: list[Process] = []

    def run(*args: str, env: dict[str, str]) -> Process:
        process = Process(*args, env=env, workdir=tmp_path / "processes")
        started.append(process)
        return process

    yield run
    for process in started:
        if process.proc.poll() is None:
            process.kill()


def answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    return check


def assert_stopped_cleanly(process: Process, exits: tuple[int, ...] = (0, -signal.SIGTERM)) -> None:
    """SIGTERM ends it without a traceback: exit 0, or the signal itself re-raised once the
    work is wound up (uvicorn does that after a graceful shutdown, as the convention asks)."""
    code = process.terminate()
    assert code in exits, f"inflow {process.args[0]} exited {code}:\n{process.output}"
    assert "Traceback" not in process.output, process.output


def sandbox(start: Callable[..., Process], env: dict[str, str]) -> tuple[Process, str]:
    port = free_port()
    process = start("sandbox", "--port", str(port), env=env)
    url = f"http://127.0.0.1:{port}"
    process.wait_for("sandbox listening", answers(f"{url}/_sandbox/credentials"))
    return process, url


# ---------------------------------------------------------------- the sandbox


def test_the_sandbox_serves_a_providers_api_until_sigterm(workspace: Workspace, start):
    process, url = sandbox(start, workspace.env)

    twilio = httpx.get(f"{url}/_sandbox/credentials").json()["twilio"]["config"]
    sid, secret = twilio["accountSid"], twilio["authToken"]
    calls = httpx.get(
        f"{twilio['baseUrl']}/2010-04-01/Accounts/{sid}/Calls.json",
        params={"PageSize": 5},
        auth=(sid, secret),
    )
    refused = httpx.get(f"{twilio['baseUrl']}/2010-04-01/Accounts/{sid}/Calls.json")

    assert twilio["baseUrl"].startswith(url), twilio
    assert calls.status_code == 200, calls.text
    assert len(calls.json()["calls"]) == 5
    assert all(call["account_sid"] == sid for call in calls.json()["calls"])
    assert refused.status_code == 401  # the emulator checks credentials as Twilio does

    # SIGTERM while a (slowed) request is in flight: it is answered before the process ends
    slow = httpx.post(f"{url}/_sandbox/twilio/config", json={"faults": {"latencyMs": 2000}})
    assert slow.status_code == 200, slow.text
    sent = total(url)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            httpx.get,
            f"{twilio['baseUrl']}/2010-04-01/Accounts/{sid}/Calls.json",
            auth=(sid, secret),
            timeout=30,
        )
        process.wait_for("request in flight", lambda: total(url) > sent)
        assert_stopped_cleanly(process)
        assert pending.result().status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/_sandbox/credentials", timeout=2)


def total(url: str) -> int:
    """The requests the Twilio emulator has counted (a request is counted as it arrives)."""
    return int(httpx.get(f"{url}/_sandbox/twilio/stats").json()["total"])


# ---------------------------------------------------------------- scheduler and worker


def runs_of(api: InflowServer, headers: dict[str, str], source_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{api.base_url}/api/data-sources/{source_id}/runs", headers=headers)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()  # newest first
    return runs


def test_the_scheduler_enqueues_a_due_source_and_the_worker_runs_it_on_postgresql(
    pg_workspace: Workspace, start, tmp_path: Path
):
    env = {**pg_workspace.env, "INFLOW_WORKER": "external", "INFLOW_ALLOW_PRIVATE_URLS": "true"}
    ws = Workspace(pg_workspace.root, env)
    provider, provider_url = sandbox(start, env)
    email = new_email()
    create_user(ws, email, admin=True)
    headers = {"Authorization": f"Bearer {create_token(ws, email)}"}
    api = InflowServer("serve", env=env, workdir=tmp_path / "serve").start()
    try:
        config = httpx.get(f"{provider_url}/_sandbox/credentials").json()["example"]["config"]
        body = {"name": "Scheduled", "type": "example", "config": config, "schedule": "every 1h"}
        created = httpx.post(f"{api.base_url}/api/data-sources", headers=headers, json=body)
        assert created.status_code == 201, created.text
        source_id = created.json()["id"]
        assert runs_of(api, headers, source_id) == []  # external: the API runs nothing itself

        scheduler = start("scheduler", "--tick", "1", env=env)
        scheduler.wait_for("scheduled run", lambda: bool(runs_of(api, headers, source_id)))
        time.sleep(2.5)  # two more ticks: the source is not due again for an hour
        assert_stopped_cleanly(scheduler, exits=(0,))  # its own handler: "scheduler stopped"
        assert "scheduler stopped" in scheduler.output

        [queued] = runs_of(api, headers, source_id)
        assert (queued["trigger"], queued["status"]) == ("schedule", "queued"), queued

        worker = start("worker", "--concurrency", "1", env=env)

        def finished() -> bool:
            return runs_of(api, headers, source_id)[0]["status"] not in ("queued", "running")

        worker.wait_for("finished scheduled run", finished, timeout=120)
        [done] = runs_of(api, headers, source_id)
        assert done["id"] == queued["id"]
        assert done["status"] == "succeeded", done
        assert done["counts"]["created"] > 0, done
        # a manual sync while the worker runs: queued by the API, taken by the worker
        manual = httpx.post(f"{api.base_url}/api/data-sources/{source_id}/sync", headers=headers)
        assert manual.status_code == 202, manual.text
        worker.wait_for("finished manual run", finished, timeout=120)
        latest = runs_of(api, headers, source_id)[0]
        assert (latest["trigger"], latest["status"]) == ("manual", "succeeded"), latest
        assert_stopped_cleanly(worker, exits=(0,))  # runs handed back, then "worker stopped"
        assert "worker stopped" in worker.output
    finally:
        api.stop()
    assert_stopped_cleanly(provider)

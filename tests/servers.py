"""Real ``inflow`` processes for the CLI, logging and browser tests: run a command, run a server.

Each process gets its own environment (a data dir, a database URL, no ``INFLOW_*`` from the
caller's shell). A server runs in its own process group, its output goes to files (a pipe that
nobody reads would fill up and stall it), and ``stop()`` ends the whole group.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx

INFLOW = Path(sys.executable).with_name("inflow")  # the console script of the venv under test
# Compiled bytecode shared by every process the tests start: with PYTHONDONTWRITEBYTECODE set
# (as on our machines) each `inflow` would otherwise recompile its imports, ~2 s per command.
PYCACHE = Path(tempfile.gettempdir()) / "inflow-tests-pycache"


def inflow_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment minus ``INFLOW_*``, plus a data dir and (optionally) a database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLOW_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONUNBUFFERED", None)  # output must reach a pipe without it, as in a real shell
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["COLUMNS"] = "250"  # rich wraps tables at 80 columns when stdout is not a terminal
    env["INFLOW_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        env["INFLOW_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_inflow(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``inflow ARGS`` to completion (stdin closed: a prompt fails instead of hanging)."""
    return subprocess.run(
        [str(INFLOW), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class InflowServer:
    """``inflow serve`` or ``inflow demo`` on a free port; ``start()`` waits for /api/health."""

    def __init__(
        self, command: str, *, env: dict[str, str], workdir: Path, port: int | None = None
    ) -> None:
        self.command = command
        self.env = env
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._use_port(port or free_port())

    def _use_port(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.stdout_path = self.workdir / f"{self.command}-{port}.out"
        self.stderr_path = self.workdir / f"{self.command}-{port}.err"

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def start(self, timeout: float = 60) -> InflowServer:
        """Start and wait until it listens; a port taken meanwhile (tests run in parallel on
        shared machines) is retried on another."""
        for _ in range(3):
            if self._start_once(timeout):
                return self
            self._use_port(free_port())
        raise RuntimeError(f"inflow {self.command}: no free port after 3 tries")

    def _start_once(self, timeout: float) -> bool:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(INFLOW), self.command, "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, ended as a whole by stop()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.stderr:
                    return False
                raise RuntimeError(
                    f"inflow {self.command} exited with {self.proc.returncode}\n"
                    f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
                )
            # Our own uvicorn's line first (the demo logs to a file and prints its address):
            # /api/health alone could be another server's answer.
            if "Uvicorn running on" in self.stderr or f" on {self.base_url}/" in self.stdout:
                try:
                    if httpx.get(f"{self.base_url}/api/health", timeout=1).status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"inflow {self.command} not healthy after {timeout}s:\n{self.stderr}")

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it lingers; safe to call twice."""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc.wait(timeout=10)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        """Poll ``predicate`` (e.g. "this line is in the log yet") until it holds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; stderr so far:\n{self.stderr}")
            time.sleep(0.05)

    def __enter__(self) -> InflowServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

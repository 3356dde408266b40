"""Who owns a run: this process, named the same from every thread; a process of this host is
known gone once it no longer runs (or when it was an earlier process with this pid); a process
of another host never is (its lease decides)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from inflow.sync.engine import owner_gone, process_owner


def test_the_owner_is_one_name_from_every_thread():
    with ThreadPoolExecutor(8) as pool:
        names = set(pool.map(lambda _: process_owner(), range(64)))

    assert names == {process_owner()}
    host, pid, token = process_owner().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert token
    assert not owner_gone(process_owner())


def test_a_process_of_this_host_is_gone_once_it_has_exited():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    owner = f"{socket.gethostname()}:{child.pid}:0123456789ab"
    try:
        assert not owner_gone(owner)  # alive: its run is its own
    finally:
        child.communicate(b"")
    assert owner_gone(owner)


@pytest.mark.parametrize(
    ("owner", "gone"),
    [
        pytest.param(
            f"{socket.gethostname()}:{os.getpid()}:ffffffffffff", True, id="my_pid_before"
        ),
        pytest.param("another-host.example:1:0123456789ab", False, id="another_host"),
        pytest.param(f"{socket.gethostname()}:not-a-pid:x", False, id="garbled"),
        pytest.param(None, False, id="none"),
    ],
)
def test_whose_runs_are_known_orphans(owner, gone):
    assert owner_gone(owner) is gone

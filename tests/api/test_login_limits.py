"""Login limits that cannot be turned against the owner (issue 11.6), from several addresses.

Guesses slow down the address they come from (a wait doubling per failure, per account), new
addresses stop at an account-wide ceiling, and the addresses the owner signed in from keep
working. Every test runs on the in-memory store and on Redis (two apps sharing it).

The limits' clock is a ``Clock`` the test moves: the limit modules' ``time`` is replaced (not
``time.time`` itself), so a wait ends when the test says so, and every ``Retry-After`` is exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import limits.storage.memory
import limits.storage.redis
import limits.strategies
import pytest
import uvicorn

import inflow.api.ratelimit
from inflow.api.ratelimit import Limiter, LoginGuard, LoginPolicy
from tests.conftest import TestClient, empty_redis
from tests.factories import PASSWORD, make_user
from tests.servers import free_port


class Clock:
    """``time`` for the limit modules, with ``time()`` moved by the test alone."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    modules: tuple[ModuleType, ...] = (
        inflow.api.ratelimit,
        limits.strategies,
        limits.storage.memory,
        limits.storage.redis,
    )
    for module in modules:
        monkeypatch.setattr(module, "time", fake)
    return fake


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (each app counts in memory) or a Redis URL (emptied before and after)."""
    if request.param == "memory":
        yield None
        return
    with empty_redis() as url:
        yield url


Caller = Callable[[str], TestClient]


@pytest.fixture
def build(make_client, store, clock) -> Callable[..., tuple[Caller, Caller]]:
    """Two views of the service, each a client at a given address: on Redis two apps sharing
    the store (the second answers what the first counted), in memory one app seen twice."""

    def make(**overrides: Any) -> tuple[Caller, Caller]:
        first = make_client(redis_url=store, rate_limit_default="10000/minute", **overrides)
        second = (
            make_client(redis_url=store, rate_limit_default="10000/minute", **overrides)
            if store
            else first
        )

        def at(base: TestClient) -> Caller:
            return lambda address: TestClient(base.app, client=(address, 50000))

        return at(first), at(second)

    return make


def login(client: TestClient, email: str, password: str, **headers: str) -> httpx.Response:
    response = client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers
    )
    if response.status_code == 429:
        assert response.headers["content-type"] == "application/problem+json"
    return response


def outcome(response: httpx.Response) -> tuple[int, int | None]:
    """(status, Retry-After) of one login."""
    retry = response.headers.get("retry-after")
    return response.status_code, int(retry) if retry is not None else None


def test_guesses_from_one_address_leave_the_owner_in_from_another(build, factory, clock):
    one, other = build(login_free_failures=3, login_backoff_s=30)
    owner = make_user(factory)
    attacker = one("127.0.0.2")

    guesses = [outcome(login(attacker, owner.email, f"guess-{i}")) for i in range(3)]

    assert guesses == [(401, None)] * 3
    # The guessing address waits, even with the right password and through the other app...
    assert outcome(login(other("127.0.0.2"), owner.email, PASSWORD)) == (429, 30)
    # ...while the owner, from the address they always use or from a new one, is let in.
    assert outcome(login(other("127.0.0.1"), owner.email, PASSWORD)) == (200, None)
    assert outcome(login(one("192.0.2.7"), owner.email, PASSWORD)) == (200, None)
    clock.advance(30)
    assert outcome(login(attacker, owner.email, PASSWORD)) == (200, None)


def test_the_wait_doubles_per_failure_and_a_success_resets_it(build, factory, clock):
    one, other = build(login_free_failures=2, login_backoff_s=10, login_backoff_max_s=900)
    owner = make_user(factory)
    neighbour = make_user(factory)
    here, there = one("127.0.0.2"), other("127.0.0.2")

    assert [outcome(login(here, owner.email, "guess")) for _ in range(2)] == [(401, None)] * 2
    assert outcome(login(there, owner.email, "guess")) == (429, 10)
    # The wait is for this account from this address: another account is not held up.
    assert outcome(login(there, neighbour.email, "guess")) == (401, None)
    assert outcome(login(there, neighbour.email, PASSWORD)) == (200, None)

    clock.advance(10)
    assert outcome(login(here, owner.email, "guess")) == (401, None)
    assert outcome(login(there, owner.email, PASSWORD)) == (429, 20)
    clock.advance(19)
    assert outcome(login(here, owner.email, PASSWORD)) == (429, 1)
    clock.advance(1)
    assert outcome(login(here, owner.email, "guess")) == (401, None)
    assert outcome(login(there, owner.email, "guess")) == (429, 40)
    clock.advance(40)

    assert outcome(login(there, owner.email, PASSWORD)) == (200, None)

    assert [outcome(login(here, owner.email, "guess")) for _ in range(2)] == [(401, None)] * 2
    assert outcome(login(there, owner.email, "guess")) == (429, 10)


def test_the_wait_stops_growing_at_its_ceiling(build, factory, clock):
    one, _ = build(login_free_failures=1, login_backoff_s=100, login_backoff_max_s=150)
    owner = make_user(factory)
    client = one("127.0.0.2")
    waits = []
    for _ in range(4):
        assert outcome(login(client, owner.email, "guess")) == (401, None)
        status, wait = outcome(login(client, owner.email, "guess"))
        assert status == 429
        waits.append(wait)
        clock.advance(wait or 0)

    assert waits == [100, 150, 150, 150]


def test_guesses_from_many_addresses_stop_new_addresses_not_known_ones(build, factory, clock):
    one, other = build(rate_limit_login_account="5/hour", login_free_failures=100)
    owner = make_user(factory)
    assert outcome(login(one("127.0.0.1"), owner.email, PASSWORD)) == (200, None)

    guesses = [outcome(login(one(f"10.0.0.{i}"), owner.email, "guess")) for i in range(1, 6)]

    assert guesses == [(401, None)] * 5
    status, wait = outcome(login(other("10.0.0.99"), owner.email, PASSWORD))
    assert status == 429
    assert wait is not None
    assert 0 < wait <= 3601
    assert outcome(login(other("10.0.0.1"), owner.email, "guess")) == (429, wait)
    # The owner's address was signed in from: the ceiling does not apply to it.
    assert outcome(login(other("127.0.0.1"), owner.email, PASSWORD)) == (200, None)
    clock.advance(wait)
    assert outcome(login(other("10.0.0.99"), owner.email, PASSWORD)) == (200, None)


def test_a_forged_forwarded_for_does_not_choose_the_address(build, factory, clock):
    one, other = build(login_free_failures=2, login_backoff_s=60)
    owner = make_user(factory)
    attacker = one("127.0.0.2")

    statuses = [
        outcome(login(attacker, owner.email, "guess", **{"X-Forwarded-For": f"127.0.0.{i}"}))
        for i in (1, 3, 4)
    ]

    # Each guess claimed another address; all were counted against the real one.
    assert statuses == [(401, None), (401, None), (429, 60)]
    forged = {"X-Forwarded-For": "127.0.0.1"}
    assert outcome(login(other("127.0.0.2"), owner.email, PASSWORD, **forged)) == (429, 60)
    assert outcome(login(other("127.0.0.1"), owner.email, PASSWORD)) == (200, None)


def test_behind_a_trusted_proxy_the_forwarded_address_is_limited(build, factory, clock):
    one, _ = build(login_free_failures=1, login_backoff_s=60, trust_forwarded_for=True)
    owner = make_user(factory)
    proxy = one("127.0.0.1")

    def via(address: str, password: str) -> tuple[int, int | None]:
        return outcome(login(proxy, owner.email, password, **{"X-Forwarded-For": address}))

    assert via("198.51.100.9", "guess") == (401, None)
    assert via("198.51.100.9", PASSWORD) == (429, 60)
    assert via("203.0.113.5", PASSWORD) == (200, None)


def test_the_backoff_schedule():
    guard = LoginGuard(Limiter(), LoginPolicy(free_failures=3, backoff_s=2, backoff_max_s=60))

    assert [guard.wait_s(n) for n in range(10)] == [0, 0, 0, 2, 4, 8, 16, 32, 60, 60]
    assert guard.wait_s(10_000) == 60


# ---------------------------------------------------------------- a real server, two addresses


@pytest.fixture
def serve(make_client) -> Iterator[Callable[..., str]]:
    """A real uvicorn on 127.0.0.1 serving an app built with the given settings."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> str:
        app = make_client(rate_limit_default="10000/minute", **overrides).app
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("the API server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def test_two_loopback_addresses_on_a_real_server(serve, store, clock, factory):
    url = serve(redis_url=store, login_free_failures=2, login_backoff_s=45)
    owner = make_user(factory)

    def from_address(address: str) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(base_url=url, transport=transport, timeout=10)

    with from_address("127.0.0.2") as attacker, from_address("127.0.0.1") as home:
        body = {"email": owner.email, "password": "guess"}
        spoof = {"X-Forwarded-For": "127.0.0.1"}
        guesses = [
            outcome(attacker.post("/api/auth/login", json=body, headers=spoof)) for _ in range(3)
        ]
        right = {"email": owner.email, "password": PASSWORD}
        at_home = outcome(home.post("/api/auth/login", json=right))

    assert guesses == [(401, None), (401, None), (429, 45)]
    assert at_home == (200, None)

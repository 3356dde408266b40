"""Rate limits through the real API: every route, login per account and per IP, Redis sharing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from inflow.api.services import accounts
from inflow.storage.db import session_scope
from tests.conftest import TestClient, empty_redis
from tests.factories import PASSWORD, login, make_user

LIMIT = "3/minute"


def assert_429(response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 429
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60


def attempt(client: TestClient, email: str, password: str, ip: str | None = None) -> int:
    headers = {"X-Forwarded-For": ip} if ip else {}
    response = client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers
    )
    if response.status_code == 429:
        assert_429(response)
    return response.status_code


# ---------------------------------------------------------------- every route


def test_rate_limit_guards_every_api_route(make_client):
    client = make_client(rate_limit_default="1/minute")
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
        for path, item in client.get("/openapi.json").json()["paths"].items()
        for method in item
    ]
    assert len(operations) > 10

    second = {(m, p): client.request(m, p).status_code for m, p in operations for _ in range(2)}

    assert {op: status for op, status in second.items() if status != 429} == {}


@pytest.mark.parametrize(
    ("method", "path", "body", "authenticated"),
    [
        pytest.param("GET", "/api/health", None, False, id="public"),
        pytest.param("GET", "/api/me", None, False, id="unauthenticated"),
        pytest.param("GET", "/api/me", None, True, id="me"),
        pytest.param("GET", "/api/integrations/types", None, True, id="integrations"),
        pytest.param("POST", "/api/data-sources", {"name": "x"}, True, id="invalid_body"),
        pytest.param("POST", "/api/tokens", {"name": "ci"}, True, id="create"),
    ],
)
def test_rate_limit_fourth_call_is_429(make_client, factory, method, path, body, authenticated):
    client = make_client(rate_limit_default=LIMIT)
    headers = login(client, make_user(factory).email) if authenticated else {}

    answers = [client.request(method, path, json=body, headers=headers) for _ in range(4)]

    assert all(r.status_code != 429 for r in answers[:3]), [r.status_code for r in answers]
    assert_429(answers[3])


def test_rate_limit_counts_each_route_and_caller_apart(make_client, factory):
    client = make_client(rate_limit_default=LIMIT)
    alice = login(client, make_user(factory).email)
    bob = login(client, make_user(factory).email)
    for _ in range(3):
        assert client.get("/api/me", headers=alice).status_code == 200
    assert_429(client.get("/api/me", headers=alice))

    assert client.get("/api/tokens", headers=alice).status_code == 200
    assert client.get("/api/me", headers=bob).status_code == 200


def test_rate_limit_counts_by_route_template_not_by_url(make_client, factory):
    client = make_client(rate_limit_default=LIMIT)
    headers = login(client, make_user(factory).email)

    answers = [client.get(f"/api/data-sources/{uuid.uuid4()}", headers=headers) for _ in range(4)]

    assert [r.status_code for r in answers[:3]] == [404, 404, 404]
    assert_429(answers[3])


def test_rate_limit_is_per_user_not_per_token(make_client, factory):
    client = make_client(rate_limit_default=LIMIT)
    user = make_user(factory)
    with session_scope(factory) as session:
        tokens = [accounts.issue_token(session, user=user, name=f"t{i}")[1] for i in range(4)]

    answers = [client.get("/api/me", headers={"Authorization": f"Bearer {t}"}) for t in tokens]

    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    assert_429(answers[3])


def test_rate_limit_made_up_tokens_do_not_get_fresh_windows(make_client):
    client = make_client(rate_limit_default=LIMIT)

    answers = [
        client.get("/api/health", headers={"Authorization": f"Bearer made-up-{i}"})
        for i in range(4)
    ]

    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    assert_429(answers[3])


# ---------------------------------------------------------------- login


def test_login_limited_per_account_across_ips(make_client, factory):
    client = make_client(rate_limit_login_account=LIMIT, trust_forwarded_for=True)
    victim = make_user(factory)
    other = make_user(factory)

    statuses = [attempt(client, victim.email, "guess", ip=f"10.0.0.{i}") for i in range(1, 4)]

    assert statuses == [401, 401, 401]
    assert attempt(client, victim.email, PASSWORD, ip="10.0.0.9") == 429
    assert attempt(client, victim.email.upper(), PASSWORD, ip="10.0.0.10") == 429
    assert attempt(client, other.email, PASSWORD, ip="10.0.0.1") == 200


def test_login_limited_per_ip_across_accounts(make_client, factory):
    client = make_client(rate_limit_login_ip=LIMIT, trust_forwarded_for=True)
    user = make_user(factory)

    statuses = [attempt(client, f"u{i}@example.com", "guess", ip="203.0.113.7") for i in range(3)]

    assert statuses == [401, 401, 401]
    assert attempt(client, user.email, PASSWORD, ip="203.0.113.7") == 429
    assert attempt(client, user.email, PASSWORD, ip="203.0.113.8") == 200


def test_login_ignores_forwarded_for_unless_trusted(make_client):
    client = make_client(rate_limit_login_ip=LIMIT)

    statuses = [attempt(client, "x@example.com", "guess", ip=f"10.1.0.{i}") for i in range(4)]

    assert statuses == [401, 401, 401, 429]


def test_login_success_makes_the_address_known_and_starts_it_afresh(make_client, factory):
    client = make_client(rate_limit_login_account=LIMIT, login_free_failures=3)
    user = make_user(factory)
    assert [attempt(client, user.email, "guess") for _ in range(2)] == [401, 401]

    assert attempt(client, user.email, PASSWORD) == 200

    # The account's ceiling (3 failures) no longer applies to this address; its own backoff
    # does, counted from the success: three free failures, then a wait.
    assert [attempt(client, user.email, "guess") for _ in range(4)] == [401, 401, 401, 429]


# ---------------------------------------------------------------- redis


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Redis db 15, emptied before and after the test."""
    with empty_redis() as url:
        yield url


@pytest.mark.redis
def test_rate_limit_shared_through_redis_across_apps(make_client, redis_url):
    app_a = make_client(rate_limit_default=LIMIT, redis_url=redis_url)
    app_b = make_client(rate_limit_default=LIMIT, redis_url=redis_url)

    assert [app_a.get("/api/health").status_code for _ in range(2)] == [200, 200]
    assert app_b.get("/api/health").status_code == 200

    assert_429(app_b.get("/api/health"))
    assert_429(app_a.get("/api/health"))


@pytest.mark.redis
def test_login_account_limit_shared_through_redis(make_client, factory, redis_url):
    app_a = make_client(rate_limit_login_account=LIMIT, redis_url=redis_url)
    app_b = make_client(rate_limit_login_account=LIMIT, redis_url=redis_url)
    user = make_user(factory)

    assert [attempt(app_a, user.email, "guess") for _ in range(2)] == [401, 401]
    assert attempt(app_b, user.email, "guess") == 401

    assert attempt(app_b, user.email, PASSWORD) == 429


def test_rate_limit_memory_storage_is_per_process(make_client):
    app_a = make_client(rate_limit_default=LIMIT)
    app_b = make_client(rate_limit_default=LIMIT)

    assert [app_a.get("/api/health").status_code for _ in range(3)] == [200, 200, 200]
    assert app_b.get("/api/health").status_code == 200

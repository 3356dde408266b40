"""Redis configured but not answering: the API refuses with a 503 that says so (never fail
open, never a bare 500, never the URL's password), health reports it, and a sync run fails
saying so. Port 1 on loopback refuses at once: no test waits for a timeout."""

from __future__ import annotations

import httpx
import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from inflow import __version__
from inflow.http.client import HttpOptions
from inflow.http.ratelimit import OutboundLimiter
from inflow.sandbox import create_app as create_sandbox
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing, Vault
from inflow.sync.engine import EngineDeps
from tests.conftest import REDIS_URL, unavailable
from tests.factories import PASSWORD, make_user
from tests.sync.helpers import get_run, make_source, run_direct

DEAD_REDIS = "redis://:s3cret@127.0.0.1:1/0"


def assert_store_down(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert "rate-limit store (Redis) is unreachable" in body["detail"]
    assert "s3cret" not in response.text
    assert "s3cret" not in str(response.headers)
    assert 1 <= int(response.headers["retry-after"]) <= 30


def test_login_with_redis_unreachable_is_503_that_says_so(make_client, factory):
    client = make_client(redis_url=DEAD_REDIS)
    user = make_user(factory)

    response = client.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})

    assert_store_down(response)
    assert "inflow_session" not in response.cookies  # refused, not let through


def test_other_routes_with_redis_unreachable_are_503(make_client):
    client = make_client(redis_url=DEAD_REDIS)

    assert_store_down(client.get("/api/me"))
    assert_store_down(client.get("/api/integrations/types"))


def test_health_with_redis_unreachable_is_degraded(make_client):
    client = make_client(redis_url=DEAD_REDIS)

    response = client.get("/api/health")

    assert response.status_code == 503, response.text
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "redis": "unreachable",
        "version": __version__,
    }


def test_health_without_redis_says_not_configured(make_client):
    response = make_client().get("/api/health")

    assert response.status_code == 200, response.text
    assert response.json()["redis"] == "not configured"
    assert response.json()["status"] == "ok"


@pytest.mark.redis
def test_health_with_redis_reachable_is_ok(make_client):
    probe = redis.Redis.from_url(REDIS_URL)
    try:
        probe.ping()
    except redis.RedisError:
        unavailable(f"Redis is not reachable at {REDIS_URL}")
    finally:
        probe.close()

    response = make_client(redis_url=REDIS_URL).get("/api/health")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert response.json()["redis"] == "ok"


def test_sync_with_redis_unreachable_fails_saying_so(
    settings: Settings, factory: sessionmaker[Session]
) -> None:
    vault = Vault(KeyRing(settings).keys())
    deps = EngineDeps(
        factory=factory,
        vault=vault,
        options=HttpOptions(allow_private_urls=True),
        transport=httpx.ASGITransport(app=create_sandbox()),
        limiter=OutboundLimiter(DEAD_REDIS),  # the example connector declares 50/second
    )
    source_id = make_source(factory, vault)

    result = run_direct(deps, source_id)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "ServiceUnavailableError"
    assert result.error["fault"] == "system"
    assert "rate-limit store (Redis) is unreachable" in result.error["message"]
    assert "s3cret" not in result.error["message"]
    assert get_run(factory, result.run_id).error == result.error

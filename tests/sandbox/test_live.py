"""The sandbox over real loopback HTTP (uvicorn in a thread): what only a socket can show."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sandbox.conftest import AUTH

ME = "/example/v1/me"


@pytest.fixture
def http(live_url: str):
    with httpx.Client(base_url=live_url, timeout=5) as c:
        c.post("/_sandbox/reset")
        yield c


def test_live_credentials_point_at_this_server(http, live_url):
    config = http.get("/_sandbox/credentials").json()["example"]["config"]
    assert config["baseUrl"] == f"{live_url}/example"
    r = http.get(
        config["baseUrl"] + "/v1/me", headers={"Authorization": f"Bearer {config['apiKey']}"}
    )
    assert r.status_code == 200


def test_live_drop_is_a_client_side_protocol_error(http):
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(ME, headers={**AUTH, "X-Sandbox-Fault": "drop"})
    http.post("/_sandbox/example/config", json={"faults": {"dropRate": 1.0}})
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/example/v1/reports", headers=AUTH)
    http.post("/_sandbox/example/config", json={"faults": {"dropRate": 0}})
    assert http.get(ME, headers=AUTH).status_code == 200
    assert http.get("/_sandbox/example/stats").json()["byStatus"]["200"] == 3


def test_live_truncate_is_a_short_but_complete_body(http):
    r = http.get(ME, headers={**AUTH, "X-Sandbox-Fault": "truncate"})
    assert r.status_code == 200
    assert len(r.content) == int(r.headers["content-length"])
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|JSON"):
        r.json()


def test_live_slow_trips_a_client_read_timeout(http):
    with pytest.raises(httpx.ReadTimeout):
        http.get(ME, headers={**AUTH, "X-Sandbox-Fault": "slow=1500"}, timeout=0.3)


def test_live_client_that_waits_for_retry_after_is_not_a_violation(http):
    r = http.get(ME, headers={**AUTH, "X-Sandbox-Fault": "rate_limit=1"})
    assert r.status_code == 429
    time.sleep(float(r.headers["Retry-After"]))
    assert http.get(ME, headers=AUTH).status_code == 200
    stats = http.get("/_sandbox/example/stats").json()
    assert stats["throttled"] == 1
    assert stats["retryAfterViolations"] == 0
    http.get(ME, headers={**AUTH, "X-Sandbox-Fault": "rate_limit=1"})
    http.get(ME, headers=AUTH)
    assert http.get("/_sandbox/example/stats").json()["retryAfterViolations"] == 1

"""Fault injection (per request header and per emulator config) and the stats that prove limits."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from inflow.sandbox.middleware import DroppedConnectionError
from tests.sandbox.conftest import AUTH

pytestmark = pytest.mark.anyio
ME = "/example/v1/me"


async def configure(client: httpx.AsyncClient, **body: object) -> dict:
    r = await client.post("/_sandbox/example/config", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def stats(client: httpx.AsyncClient) -> dict:
    return (await client.get("/_sandbox/example/stats")).json()


def fault(kind: str) -> dict[str, str]:
    return {**AUTH, "X-Sandbox-Fault": kind}


async def test_rate_limit_header_gives_429_with_headers(client, clock):
    r = await client.get(ME, headers=fault("rate_limit"))
    assert r.status_code == 429
    assert r.json() == {
        "error": {"code": "rate_limited", "message": "Too many requests; retry later."}
    }
    assert r.headers["Retry-After"] == "1"
    assert r.headers["X-RateLimit-Limit"] == "100"
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert r.headers["X-RateLimit-Reset"] == str(int(clock.now + 1))
    custom = await client.get(ME, headers=fault("rate_limit=7"))
    assert custom.headers["Retry-After"] == "7"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        pytest.param("server_error", 500, "internal_error", id="server_error"),
        pytest.param("unavailable", 503, "unavailable", id="unavailable"),
    ],
)
async def test_server_error_headers_give_the_providers_body(client, kind, status, code):
    r = await client.get(ME, headers=fault(kind))
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert (await client.get(ME, headers=AUTH)).status_code == 200  # one request only


async def test_unknown_fault_is_refused(client):
    r = await client.get(ME, headers=fault("meteor"))
    assert r.status_code == 400
    assert "meteor" in r.json()["sandboxError"]


async def test_burst_throttles_exactly_the_next_n_requests(client):
    config = await configure(client, faults={"status429Burst": 3, "retryAfterS": 2})
    assert config["faults"]["status429Burst"] == 3
    codes = [(await client.get(ME, headers=AUTH)).status_code for _ in range(5)]
    assert codes == [429, 429, 429, 200, 200]
    s = await stats(client)
    assert s["throttled"] == 3
    assert s["byStatus"] == {"429": 3, "200": 2}
    assert (await client.get("/_sandbox/example/config")).json()["faults"]["status429Burst"] == 0


async def test_random_429s_are_repeatable_for_a_seed(client):
    async def run() -> list[int]:
        await configure(client, faults={"status429Rate": 0.4, "retryAfterS": 0})
        return [(await client.get(ME, headers=AUTH)).status_code for _ in range(40)]

    first, second = await run(), await run()
    assert first == second
    assert 5 < first.count(429) < 30
    limited = next(
        r for r in [await client.get(ME, headers=AUTH) for _ in range(20)] if r.status_code == 429
    )
    assert limited.headers["Retry-After"] == "0"


async def test_error_rate_gives_500s_and_503s(client):
    await configure(client, faults={"errorRate": 1.0})
    codes = {(await client.get(ME, headers=AUTH)).status_code for _ in range(30)}
    assert codes == {500, 503}
    await configure(client, faults={"errorRate": 0})
    assert (await client.get(ME, headers=AUTH)).status_code == 200


async def test_truncate_gives_a_200_with_invalid_json(client):
    by_header = await client.get(ME, headers=fault("truncate"))
    await configure(client, faults={"truncateRate": 1.0})
    by_config = await client.get(ME, headers=AUTH)
    for r in (by_header, by_config):
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == len(r.content) > 0
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(r.content)


async def test_truncate_leaves_errors_alone(client):
    r = await client.get(ME, headers={"X-Sandbox-Fault": "truncate"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_drop_kills_the_response_in_process(client):
    with pytest.raises(DroppedConnectionError):
        await client.get(ME, headers=fault("drop"))
    await configure(client, faults={"dropRate": 1.0})
    with pytest.raises(DroppedConnectionError):
        await client.get(ME, headers=AUTH)


async def test_latency_delays_responses(client):
    await configure(client, faults={"latencyMs": 150})
    started = time.perf_counter()
    await client.get(ME, headers=AUTH)
    assert time.perf_counter() - started >= 0.15
    await configure(client, faults={"latencyMs": 0})
    started = time.perf_counter()
    await client.get(ME, headers=fault("slow=120"))
    assert time.perf_counter() - started >= 0.12


async def test_faults_never_touch_sandbox_routes_or_authorize(client):
    await configure(client, faults={"errorRate": 1.0})
    assert (await client.get("/_sandbox/credentials")).status_code == 200
    r = await client.get(
        "/example/oauth/authorize",
        params={"client_id": "example-client", "redirect_uri": "http://app.test/cb", "response_type": "code",
                "code_challenge": "x" * 43, "code_challenge_method": "S256"},
        headers={"X-Sandbox-Fault": "server_error"},
    )  # fmt: skip
    assert r.status_code == 302


async def test_config_merges_and_reset_restores_defaults(client):
    await configure(client, seed=9, volume={"reports": 5}, faults={"errorRate": 0.5})
    merged = await configure(client, faults={"latencyMs": 10})
    assert merged["seed"] == 9
    assert merged["volume"]["reports"] == 5
    assert merged["faults"]["errorRate"] == 0.5
    assert merged["faults"]["latencyMs"] == 10
    await client.get(ME, headers=AUTH)
    assert (await client.post("/_sandbox/reset")).status_code == 200
    config = (await client.get("/_sandbox/example/config")).json()
    assert config["seed"] == 1
    assert config["volume"]["reports"] == 120
    assert config["faults"]["errorRate"] == 0
    assert config["faults"]["retryAfterS"] == 1
    assert (await stats(client))["total"] == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"volume": {"users": 3}}, 400, id="unknown_volume_key"),
        pytest.param({"faults": {"errorRate": 2}}, 422, id="rate_above_one"),
        pytest.param({"faults": {"eror_rate_typo": 1}}, 422, id="unknown_fault"),
    ],
)
async def test_bad_config_is_refused(client, body, status):
    assert (await client.post("/_sandbox/example/config", json=body)).status_code == status


async def test_unknown_emulator_is_404(client):
    assert (await client.get("/_sandbox/nope/stats")).status_code == 404


async def test_stats_count_endpoints_statuses_and_seconds(client, clock):
    await client.get(ME, headers=AUTH)
    await client.get("/example/v1/reports", headers=AUTH)
    await client.get("/example/v1/reports")
    clock.advance(1)
    await client.get("/example/v1/reports", headers=fault("unavailable"))
    await client.get("/_sandbox/credentials")  # not counted
    s = await stats(client)
    assert s["total"] == 4
    assert s["byEndpoint"] == {"GET /v1/me": 1, "GET /v1/reports": 3}
    assert s["byStatus"] == {"200": 2, "401": 1, "503": 1}
    second = int(clock.now)
    assert s["bySecond"] == {str(second - 1): 3, str(second): 1}
    assert s["maxPerSecond"] == 3
    assert s["throttled"] == 0
    assert s["retryAfterViolations"] == 0


async def test_stats_log_each_arrival_and_the_busiest_moving_second(client, clock):
    """Calendar seconds may split a burst; ``maxInMovingSecond`` is what "N per second" means,
    and ``?arrivals=true`` gives the log itself."""
    start = clock.now
    clock.advance(0.6)
    for _ in range(2):
        await client.get("/example/v1/reports", headers=AUTH)
    clock.advance(0.6)  # the next calendar second, 0.6 s later
    for _ in range(3):
        await client.get("/example/v1/reports", headers=AUTH)
    clock.advance(1.0)
    await client.get("/example/v1/reports", headers=AUTH)
    s = await stats(client)
    assert "arrivals" not in s
    assert s["maxInMovingSecond"] == 5  # the 2 and the 3 are within one second
    logged = (await client.get("/_sandbox/example/stats", params={"arrivals": "true"})).json()
    assert logged["arrivals"] == pytest.approx(
        [start + 0.6] * 2 + [start + 1.2] * 3 + [start + 2.2], abs=1e-6
    )


async def test_retry_after_violations_count_impatient_clients_only(client, clock):
    await configure(client, faults={"retryAfterS": 2})
    patient = {"Authorization": "Bearer patient"}
    impatient = {"Authorization": "Bearer impatient"}
    for who in (patient, impatient):
        assert (
            await client.get(ME, headers={**who, "X-Sandbox-Fault": "rate_limit"})
        ).status_code == 429
    clock.advance(0.5)
    await client.get(ME, headers=impatient)  # too early
    await client.get(ME, headers=impatient)  # still too early
    clock.advance(1.5)
    await client.get(ME, headers=patient)  # exactly Retry-After later
    s = await stats(client)
    assert s["throttled"] == 2
    assert s["retryAfterViolations"] == 2


async def test_mounted_under_a_prefix_everything_still_works():
    from fastapi import FastAPI

    from inflow.sandbox import create_app

    outer = FastAPI()
    outer.mount("/sandbox", create_app())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://demo.test"
    ) as c:
        config = (await c.get("/sandbox/_sandbox/credentials")).json()["example"]["config"]
        assert config["baseUrl"] == "http://demo.test/sandbox/example"
        assert (await c.get(config["baseUrl"] + "/v1/me", headers=AUTH)).status_code == 200
        r = await c.get("/sandbox/example/v1/reports", headers=fault("unavailable"))
        assert r.status_code == 503
        s = (await c.get("/sandbox/_sandbox/example/stats")).json()
        assert s["byEndpoint"] == {"GET /v1/me": 1, "GET /v1/reports": 1}

"""``Requester``: retries, Retry-After, size caps, redaction, outbound limits, the SSRF guard,
all through ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from inflow import errors
from inflow.http import retry
from inflow.http.client import (
    USER_AGENT,
    HttpOptions,
    TimelineEntry,
    build_client,
    check_url,
)
from inflow.http.ratelimit import OutboundLimiter
from inflow.http.redact import Redactor
from inflow.http.resolution import Action
from inflow.http.retry import RetryPolicy

from .mocks import Recorder, Reply, Waits, make_requester

pytestmark = pytest.mark.anyio

URL = "https://api.example.com/v1/items"
OK = Reply(200, {"items": [1, 2]})


# ------------------------------------------------------------------ retries


async def test_requester_retries_503_then_succeeds() -> None:
    handler = Recorder(Reply(503, {"message": "busy"}), Reply(503), OK)
    timeline: list[TimelineEntry] = []
    waits = Waits()
    requester = make_requester(handler, timeline=timeline, on_wait=waits)

    response, body = await requester.request("GET", URL, params={"page": 1})

    assert body == {"items": [1, 2]}
    assert response.status_code == 200
    assert handler.hits == 3
    assert [(e.status, e.attempt) for e in timeline] == [(503, 1), (503, 2), (200, 3)]
    assert timeline[0].note == "provider error (503): busy"
    assert timeline[-1].note == ""
    assert {e.method for e in timeline} == {"GET"}
    assert {e.path for e in timeline} == {"/v1/items?page=1"}
    assert all(e.ms >= 0 and e.at > 0 for e in timeline)
    assert [reason for reason, _ in waits.calls] == [
        "provider error (503): busy",
        "provider error (503)",
    ]
    assert all(0 <= s <= 0.05 for s in waits.seconds)  # backoff under FAST's max_s


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
        pytest.param(
            httpx.RemoteProtocolError("peer closed connection"), id="remote-protocol-error"
        ),
        pytest.param(Reply(200, content=b'{"items": [1, 2'), id="truncated-json"),
        pytest.param(
            Reply(200, content=b"not gzip", headers={"Content-Encoding": "gzip"}),
            id="undecodable-gzip",
        ),
    ],
)
async def test_requester_retries_transient_failures(failure: Reply | Exception) -> None:
    handler = Recorder(failure, OK)
    requester = make_requester(handler)
    assert await requester.get_json(URL) == {"items": [1, 2]}
    assert handler.hits == 2


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        pytest.param(Reply(502), "acme: provider error (502)", id="502"),
        pytest.param(
            httpx.ConnectError("refused"), "acme: connection failed (ConnectError)", id="connect"
        ),
        pytest.param(
            Reply(200, content=b'{"items": ['),
            "acme: the provider sent a malformed (truncated?) body",
            id="truncated-json",
        ),
    ],
)
async def test_requester_gives_up_after_the_attempts(
    failure: Reply | Exception, message: str
) -> None:
    handler = Recorder(failure)
    timeline: list[TimelineEntry] = []
    requester = make_requester(
        handler, retry_policy=RetryPolicy(attempts=3, base_s=0.01, max_s=0.01), timeline=timeline
    )
    with pytest.raises(errors.TransientProviderError) as caught:
        await requester.get_json(URL)
    assert type(caught.value) is errors.TransientProviderError
    assert caught.value.message == message
    assert (caught.value.slug, caught.value.method, caught.value.url) == ("acme", "GET", URL)
    assert handler.hits == 3
    assert [e.attempt for e in timeline] == [1, 2, 3]


async def test_requester_gives_up_when_the_total_time_is_spent() -> None:
    handler = Recorder(Reply(429, headers={"Retry-After": "3"}))
    waits = Waits()
    requester = make_requester(
        handler, retry_policy=RetryPolicy(attempts=10, total_s=5.0), on_wait=waits
    )
    with pytest.raises(errors.RateLimitedError) as caught:
        await requester.get_json(URL)
    assert handler.hits == 2  # waited 3 s; another 3 s would pass total_s
    assert waits.seconds == [3.0]
    assert caught.value.retry_after == 3.0
    assert caught.value.status == 429


# ------------------------------------------------------------------ rate limits from the provider


async def test_requester_honours_retry_after_seconds() -> None:
    handler = Recorder(Reply(429, headers={"Retry-After": "7"}), OK)
    waits = Waits()
    requester = make_requester(handler, on_wait=waits)
    assert await requester.get_json(URL) == {"items": [1, 2]}
    assert waits.calls == [("rate limited by the provider", 7.0)]


async def test_requester_honours_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    handler = Recorder(Reply(429, headers={"Retry-After": format_datetime(when, usegmt=True)}), OK)
    waits = Waits()
    requester = make_requester(handler, on_wait=waits)
    await requester.get_json(URL)
    [seconds] = waits.seconds
    assert 25 <= seconds <= 30


async def test_requester_sleeps_what_it_asked_for_up_to_the_test_cap() -> None:
    retry.set_testing(True, cap_s=0.05)
    handler = Recorder(Reply(429, headers={"Retry-After": "7"}), OK)
    requester = make_requester(handler)
    started = time.perf_counter()
    await requester.get_json(URL)
    assert time.perf_counter() - started >= 0.05  # it slept (a sleep is never shorter)
    assert handler.hits == 2


async def test_requester_awaits_an_async_wait_hook() -> None:
    seen: list[float] = []

    async def on_wait(reason: str, seconds: float) -> None:
        await asyncio.sleep(0)
        seen.append(seconds)

    requester = make_requester(
        Recorder(Reply(429, headers={"Retry-After": "2"}), OK), on_wait=on_wait
    )
    await requester.get_json(URL)
    assert seen == [2.0]


async def test_requester_uses_the_reset_hook_without_retry_after() -> None:
    seen: list[httpx.Response] = []

    def reset_hook(response: httpx.Response) -> float | None:
        seen.append(response)
        return float(response.headers["X-RateLimit-Reset-After"])

    handler = Recorder(Reply(429, headers={"X-RateLimit-Reset-After": "11"}), OK)
    waits = Waits()
    requester = make_requester(handler, reset_hook=reset_hook, on_wait=waits)
    await requester.get_json(URL)
    assert waits.seconds == [11.0]
    assert [r.status_code for r in seen] == [429]


async def test_requester_prefers_retry_after_to_the_reset_hook() -> None:
    def reset_hook(response: httpx.Response) -> float | None:
        raise AssertionError("not consulted when Retry-After is present")

    waits = Waits()
    requester = make_requester(
        Recorder(Reply(429, headers={"Retry-After": "4"}), OK), reset_hook=reset_hook, on_wait=waits
    )
    await requester.get_json(URL)
    assert waits.seconds == [4.0]


async def test_requester_backs_off_on_429_without_any_hint() -> None:
    waits = Waits()
    requester = make_requester(
        Recorder(Reply(429), OK), reset_hook=lambda _response: None, on_wait=waits
    )
    await requester.get_json(URL)
    [seconds] = waits.seconds
    assert 0 <= seconds <= 0.05


async def test_requester_gives_up_on_429_after_the_attempts() -> None:
    handler = Recorder(Reply(429, {"message": "slow down"}, headers={"Retry-After": "1"}))
    requester = make_requester(handler, retry_policy=RetryPolicy(attempts=3))
    with pytest.raises(errors.RateLimitedError) as caught:
        await requester.get_json(URL)
    assert handler.hits == 3
    assert caught.value.retry_after == 1.0
    assert caught.value.message == "acme: rate limited (429): slow down"


async def test_requester_raises_a_retry_after_beyond_the_maximum_without_waiting() -> None:
    handler = Recorder(Reply(429, headers={"Retry-After": "3600"}), OK)
    waits = Waits()
    requester = make_requester(
        handler, retry_policy=RetryPolicy(max_retry_after_s=60.0), on_wait=waits
    )
    with pytest.raises(errors.RateLimitedError) as caught:
        await requester.get_json(URL)
    assert caught.value.retry_after == 3600.0
    assert handler.hits == 1
    assert waits.calls == []


# ------------------------------------------------------------------ final failures


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        pytest.param(400, errors.RejectedRequestError, id="400"),
        pytest.param(404, errors.RejectedRequestError, id="404"),
        pytest.param(422, errors.RejectedRequestError, id="422"),
        pytest.param(401, errors.CredentialsError, id="401"),
        pytest.param(403, errors.AccessDeniedError, id="403"),
    ],
)
async def test_requester_does_not_retry_a_refusal(
    status: int, cls: type[errors.InflowError]
) -> None:
    handler = Recorder(Reply(status, {"message": "no"}), OK)
    timeline: list[TimelineEntry] = []
    requester = make_requester(handler, timeline=timeline)
    with pytest.raises(cls) as caught:
        await requester.get_json(URL)
    assert type(caught.value) is cls
    assert caught.value.message.startswith("acme: ")
    assert caught.value.message.endswith(": no")
    assert handler.hits == 1
    assert [e.status for e in timeline] == [status]
    if isinstance(caught.value, errors.ProviderError):
        assert caught.value.status == status


async def test_requester_override_ignores_a_status() -> None:
    requester = make_requester(
        Recorder(Reply(404, {"message": "gone"})), overrides={404: Action.IGNORE}
    )
    response, body = await requester.request("GET", URL)
    assert response.status_code == 404
    assert body is None


async def test_requester_override_retries_a_status() -> None:
    handler = Recorder(Reply(400, {"message": "warming up"}))
    requester = make_requester(
        handler, overrides={400: Action.RETRY}, retry_policy=RetryPolicy(attempts=2, base_s=0.01)
    )
    with pytest.raises(errors.TransientProviderError, match="warming up"):
        await requester.get_json(URL)
    assert handler.hits == 2


# ------------------------------------------------------------------ bodies


class Chunks(httpx.AsyncByteStream):
    """A streamed body with no Content-Length."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def test_requester_refuses_a_declared_oversized_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "2048"}, stream=Chunks(b"{}"))

    requester = make_requester(handler, max_response_bytes=1024)
    with pytest.raises(errors.ProviderError, match="larger than 1024 bytes") as caught:
        await requester.get_json(URL)
    assert type(caught.value) is errors.ProviderError  # not retried: it would not shrink
    assert caught.value.slug == "acme"


async def test_requester_refuses_an_oversized_streamed_body() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, stream=Chunks(b"[" + b"1," * 300, b"1," * 300, b"1]"))

    requester = make_requester(handler, max_response_bytes=1024)
    with pytest.raises(errors.ProviderError, match="larger than 1024 bytes"):
        await requester.get_json(URL)
    assert calls == 1


async def test_requester_reads_a_streamed_body_under_the_cap() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Chunks(b'{"items": ', b"[1, 2]", b"}"))

    requester = make_requester(handler, max_response_bytes=1024)
    assert await requester.get_json(URL) == {"items": [1, 2]}


async def test_requester_decodes_gzip() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "gzip" in request.headers["Accept-Encoding"]
        body = gzip.compress(b'{"items": [1, 2]}')
        return httpx.Response(
            200,
            headers={"Content-Encoding": "gzip", "Content-Length": str(len(body))},
            stream=httpx.ByteStream(body),
        )

    response, body = await make_requester(handler).request("GET", URL)
    assert body == {"items": [1, 2]}
    assert "content-encoding" not in response.headers
    assert response.content == b'{"items": [1, 2]}'


@pytest.mark.parametrize(
    ("reply", "expect_json", "expected"),
    [
        pytest.param(Reply(204, content=b""), True, None, id="empty-body"),
        pytest.param(Reply(200, content=b"  \n"), True, None, id="blank-body"),
        pytest.param(Reply(200, content=b"a,b\n1,2\n"), False, b"a,b\n1,2\n", id="raw-bytes"),
    ],
)
async def test_requester_body_forms(reply: Reply, expect_json: bool, expected: Any) -> None:
    _, body = await make_requester(Recorder(reply)).request("GET", URL, expect_json=expect_json)
    assert body == expected


async def test_requester_sends_json_form_headers_and_auth() -> None:
    handler = Recorder(OK)
    requester = make_requester(handler)
    await requester.request(
        "POST", URL, json={"a": 1}, headers={"X-Trace": "t1"}, auth=httpx.BasicAuth("u", "p")
    )
    await requester.request("POST", URL, data={"grant_type": "x"})
    first, second = handler.requests
    assert first.content == b'{"a":1}'
    assert first.headers["X-Trace"] == "t1"
    assert first.headers["Authorization"].startswith("Basic ")
    assert second.content == b"grant_type=x"
    assert second.headers["Content-Type"] == "application/x-www-form-urlencoded"


# ------------------------------------------------------------------ secrets


async def test_requester_keeps_secrets_out_of_errors_and_the_timeline() -> None:
    secret = "SECRET-KEY-0042"
    handler = Recorder(Reply(400, {"error": {"message": f"API key {secret} is not valid"}}))
    timeline: list[TimelineEntry] = []
    requester = make_requester(handler, timeline=timeline, redactor=Redactor([secret]))

    with pytest.raises(errors.RejectedRequestError) as caught:
        await requester.get_json(f"{URL}?api_key={secret}&page=2")

    assert secret in str(handler.requests[0].url)  # it was sent ...
    error = caught.value
    shown = [str(error), repr(error), error.message, str(error.url), *map(str, error.args)]
    shown += [e.path for e in timeline] + [e.note for e in timeline]
    assert all(secret not in text for text in shown), shown  # ... and is never shown
    assert error.message == "acme: request rejected (400): API key *** is not valid"
    assert timeline[0].path == "/v1/items?api_key=***&page=2"


async def test_requester_masks_a_secret_in_an_unknown_parameter_even_url_encoded() -> None:
    secret = "k+y/Zq=="  # base64-like: travels percent-encoded
    handler = Recorder(Reply(503, {"message": f"upstream said {secret}"}))
    timeline: list[TimelineEntry] = []
    requester = make_requester(
        handler,
        timeline=timeline,
        redactor=Redactor([secret]),
        retry_policy=RetryPolicy(attempts=2, base_s=0.01),
    )
    with pytest.raises(errors.TransientProviderError) as caught:
        await requester.get_json(URL, params={"hapikey": secret})
    sent = str(handler.requests[0].url)
    assert secret not in sent  # encoded on the wire ...
    shown = [str(caught.value), str(caught.value.url)] + [e.path + e.note for e in timeline]
    assert all("Zq" not in text for text in shown), shown  # ... and masked in either form
    assert timeline[0].path == "/v1/items?hapikey=***"


# ------------------------------------------------------------------ outbound limits


async def test_requester_applies_the_outbound_limiter() -> None:
    limiter = OutboundLimiter()
    handler = Recorder(OK)
    waits = Waits()
    requester = make_requester(
        handler,
        limiter=limiter,
        rate_key=f"acme:{uuid.uuid4()}",
        rate_limits=("5/second",),
        on_wait=waits,
    )
    for _ in range(10):
        await requester.get_json(URL)
    assert handler.hits == 10
    assert waits.calls
    assert {reason for reason, _ in waits.calls} == {"rate limit 5/second"}
    assert all(0 < s <= 1.0 for s in waits.seconds)


async def test_requester_without_rate_limits_does_not_touch_the_limiter() -> None:
    class Exploding(OutboundLimiter):
        async def acquire(self, *_args: Any, **_kwargs: Any) -> float:
            raise AssertionError("no windows: no limiter call")

    requester = make_requester(Recorder(OK), limiter=Exploding(), rate_limits=())
    assert await requester.get_json(URL) == {"items": [1, 2]}


# ------------------------------------------------------------------ the SSRF guard


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://127.0.0.1/x", id="loopback"),
        pytest.param("https://127.1.2.3:8443/x", id="loopback-range"),
        pytest.param("https://localhost/x", id="localhost"),
        pytest.param("https://10.0.0.5/x", id="private-10"),
        pytest.param("https://172.16.3.4/x", id="private-172"),
        pytest.param("https://192.168.1.1/x", id="private-192"),
        pytest.param("https://169.254.169.254/latest/meta-data/", id="aws-metadata"),
        pytest.param("https://100.100.100.200/latest/meta-data/", id="alibaba-metadata"),
        pytest.param("https://0.0.0.0/x", id="unspecified"),
        pytest.param("https://[::1]/x", id="ipv6-loopback"),
        pytest.param("https://[fd00:ec2::254]/x", id="ipv6-unique-local"),
        pytest.param("https://[::ffff:10.0.0.1]/x", id="ipv4-mapped"),
        pytest.param("https://2130706433/x", id="decimal-ip"),
    ],
)
async def test_requester_refuses_private_addresses(url: str) -> None:
    handler = Recorder(OK)
    requester = make_requester(handler, allow_private_urls=False)
    with pytest.raises(errors.ConfigError, match="INFLOW_ALLOW_PRIVATE_URLS") as caught:
        await requester.get_json(url)
    assert type(caught.value) is errors.ConfigError
    assert caught.value.fault == "user"
    assert handler.hits == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("http://api.example.com/x", "only https:// URLs are allowed", id="plain-http"),
        pytest.param("ftp://api.example.com/x", "only https:// URLs are allowed", id="ftp"),
        pytest.param(
            "https://metadata.google.internal/x", "this host is not allowed", id="gcp-metadata"
        ),
        pytest.param("https://METADATA/x", "this host is not allowed", id="metadata-short"),
    ],
)
async def test_requester_refuses_without_resolving(url: str, message: str) -> None:
    handler = Recorder(OK)
    requester = make_requester(handler, allow_private_urls=False)
    with pytest.raises(errors.ConfigError, match=message):
        await requester.get_json(url)
    assert handler.hits == 0


async def test_plain_http_refusal_says_how_to_allow_a_local_service() -> None:
    """`inflow sources test` against the demo's sandbox (http://127.0.0.1) without the demo's
    setting: the message names the setting, as the private-address refusal does."""
    requester = make_requester(Recorder(OK), allow_private_urls=False)
    with pytest.raises(errors.ConfigError, match="INFLOW_ALLOW_PRIVATE_URLS=true"):
        await requester.get_json("http://127.0.0.1:8000/sandbox/twilio/x")


async def test_requester_plain_http_error_hides_query_secrets() -> None:
    requester = make_requester(Recorder(OK), allow_private_urls=False)
    with pytest.raises(errors.ConfigError) as caught:
        await requester.get_json("http://api.example.com/x?api_key=SECRET-9")
    assert "SECRET-9" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://127.0.0.1/x", id="loopback"),
        pytest.param("http://10.0.0.5:8080/x", id="plain-http-private"),
        pytest.param("http://localhost:9000/x", id="localhost"),
        pytest.param("https://169.254.169.254/x", id="metadata"),
    ],
)
async def test_requester_allows_private_addresses_when_configured(url: str) -> None:
    handler = Recorder(OK)
    requester = make_requester(handler, allow_private_urls=True)
    assert await requester.get_json(url) == {"items": [1, 2]}
    assert handler.hits == 1


async def test_requester_allows_a_public_address() -> None:
    handler = Recorder(OK)
    requester = make_requester(handler, allow_private_urls=False)
    await requester.get_json("https://93.184.215.14/x")
    await requester.get_json("https://93.184.215.14/y")  # the origin is checked once
    assert handler.hits == 2


def fake_dns(answers: dict[str, str]) -> Any:
    """A resolver for ``loop.getaddrinfo`` (DNS is a process boundary: no network in tests)."""

    async def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    return getaddrinfo


@pytest.mark.parametrize(
    ("host", "error"),
    [
        pytest.param("api.example.com", None, id="public"),
        pytest.param("intranet.example.com", "INFLOW_ALLOW_PRIVATE_URLS", id="resolves-private"),
        pytest.param("nothing.invalid", "does not resolve", id="unresolvable"),
    ],
)
async def test_check_url_resolves_host_names(
    monkeypatch: pytest.MonkeyPatch, host: str, error: str | None
) -> None:
    dns = {"api.example.com": "93.184.215.14", "intranet.example.com": "10.1.2.3"}
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_dns(dns))
    if error is None:
        await check_url(f"https://{host}/x", allow_private=False)
    else:
        with pytest.raises(errors.ConfigError, match=error):
            await check_url(f"https://{host}/x", allow_private=False)


# ------------------------------------------------------------------ the client factory


async def test_build_client_sets_explicit_timeouts_headers_and_no_redirects() -> None:
    options = HttpOptions(connect_timeout_s=3.0, read_timeout_s=20.0)
    handler = Recorder(Reply(302, content=b"", headers={"Location": "https://elsewhere/"}))
    async with build_client(
        options,
        base_url="https://api.example.com/v1",
        headers={"LinkedIn-Version": "202606"},
        transport=httpx.MockTransport(handler),
    ) as client:
        assert client.timeout == httpx.Timeout(connect=3.0, read=20.0, write=20.0, pool=3.0)
        assert client.follow_redirects is False
        response = await client.get("/items")
    assert response.status_code == 302
    [request] = handler.requests
    assert str(request.url) == "https://api.example.com/v1/items"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Accept"] == "application/json"
    assert request.headers["LinkedIn-Version"] == "202606"

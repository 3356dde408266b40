"""Links a provider hands back are followed only on the source's own origin (issue 11.7).

The real Twilio and RingCentral streams read from a real HTTP server on 127.0.0.1 whose first
page links to a second server (127.0.0.2, another port, another scheme...): a foreign link ends
the read with an error naming the provider and the link's host, and nothing reaches the other
server. A link on the source's own origin is followed as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from inflow.connectors import custom, ringcentral, twilio
from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import Connector, Window
from inflow.errors import ProviderError
from inflow.http.client import HttpOptions
from inflow.http.pagination import check_link
from inflow.http.retry import RetryPolicy
from tests.unit.connectors.test_custom import MAPPING, FakeContext, config, plain_values

pytestmark = pytest.mark.anyio

WINDOW = Window(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
SID = "AC" + "0" * 32


class Server:
    """A real HTTP server at ``address``: page 1 holds one item and ``self.next`` at the
    provider's link path; page 2 (``?page=2``) one more item and no link."""

    def __init__(self, address: str) -> None:
        self.requests: list[str] = []
        self.link: dict[str, Any] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                page = parse_qs(urlsplit(self.path).query).get("page", ["1"])[0]
                body = server.body(page == "2")
                raw = orjson.dumps(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # RingCentral's JWT grant: a token for any JWT
                server.requests.append(self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raw = orjson.dumps(
                    {"access_token": "at-5678", "token_type": "bearer", "expires_in": 3600}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.origin = f"http://{address}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def body(self, last: bool) -> dict[str, Any]:
        item = {"sid": "CA2" if last else "CA1", "id": "2" if last else "1"}
        if last:
            return {"calls": [item], "records": [item], "next_page_uri": None}
        return {"calls": [item], "records": [item], **self.link}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def provider() -> Iterator[Server]:
    server = Server("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture
def elsewhere() -> Iterator[Server]:
    server = Server("127.0.0.2")  # loopback too on Linux: another host to the runtime
    yield server
    server.stop()


def twilio_link(server: Server, link: str) -> tuple[Connector, Any]:
    server.link = {"next_page_uri": link}
    values = {"accountSid": SID, "authToken": "token-1234", "baseUrl": server.origin}
    return twilio.CONNECTOR, twilio.CONNECTOR.config.model_validate(values)


def ringcentral_link(server: Server, link: str) -> tuple[Connector, Any]:
    server.link = {"navigation": {"nextPage": {"uri": link}}}
    values = {
        "clientId": "client",
        "clientSecret": "secret-1234",
        "jwt": "jwt-1234",
        "baseUrl": server.origin,
    }
    return ringcentral.CONNECTOR, ringcentral.CONNECTOR.config.model_validate(values)


async def read(conn: Connector, values: Any) -> list[str]:
    runtime = ConnectorRuntime(
        conn,
        values,
        options=HttpOptions(allow_private_urls=True, retry=RetryPolicy(attempts=1)),
        key="k",
    )
    stream = next(s for s in conn.streams if s.name == "calls")
    async with runtime:
        return [
            str(item.get("sid") or item.get("id"))
            async for page in runtime.items(stream, window=WINDOW)
            for item in page
        ]


FOREIGN = {
    "another_host": "{elsewhere}/next?page=2",
    "another_port": "http://127.0.0.1:{elsewhere_port}/next?page=2",
    "another_scheme": "https://127.0.0.1:{provider_port}/next?page=2",
    "userinfo_trick": "http://127.0.0.1:{provider_port}@127.0.0.2:{elsewhere_port}/x?page=2",
}


@pytest.mark.parametrize("kind", FOREIGN)
async def test_twilio_link_to_another_origin_is_an_error_not_a_request(provider, elsewhere, kind):
    link = FOREIGN[kind].format(
        elsewhere=elsewhere.origin,
        elsewhere_port=elsewhere.origin.rsplit(":", 1)[1],
        provider_port=provider.origin.rsplit(":", 1)[1],
    )
    conn, values = twilio_link(provider, link)

    with pytest.raises(ProviderError) as caught:
        await read(conn, values)

    message = caught.value.message
    assert message.startswith("twilio handed back a next-page link to another host")
    assert f"({urlsplit(link).hostname})" in message
    assert "token-1234" not in message
    assert len(provider.requests) == 1  # the first page only
    assert elsewhere.requests == []


async def test_ringcentral_next_page_uri_elsewhere_is_refused(provider, elsewhere):
    conn, values = ringcentral_link(provider, f"{elsewhere.origin}/restapi/v1.0/x?page=2")

    with pytest.raises(ProviderError, match=r"^ringcentral .* another host \(127\.0\.0\.2\)"):
        await read(conn, values)

    assert elsewhere.requests == []


@pytest.mark.parametrize("relative", [True, False], ids=["root_relative", "absolute"])
async def test_links_on_the_own_origin_are_followed(provider, elsewhere, relative):
    path = f"/2010-04-01/Accounts/{SID}/Calls.json?page=2&PageToken=PA1"
    conn, values = twilio_link(provider, path if relative else provider.origin + path)

    assert await read(conn, values) == ["CA1", "CA2"]
    assert len(provider.requests) == 2
    assert elsewhere.requests == []


async def test_a_custom_source_link_to_another_host_is_refused():
    base = "https://metrics.example/api/items"
    bodies = {base: {"data": [{"n": 1}], "next": "https://collector.example:8443/steal?p=2"}}
    ctx = FakeContext(
        plain_values(config(apiUrl=base, mapping={**MAPPING, "next": "$.next"})), bodies
    )

    with pytest.raises(ProviderError, match=r"^custom .* another host \(collector\.example\)"):
        async for _ in custom.read_pages(ctx):  # type: ignore[arg-type]
            pass

    assert ctx.asked == [base]


@pytest.mark.parametrize(
    ("link", "same"),
    [
        ("https://API.twilio.com/2010-04-01/x", True),
        ("https://api.twilio.com:443/x", True),
        ("https://api.twilio.com:8443/x", False),
        ("http://api.twilio.com/x", False),
        ("https://api.twilio.com.evil.test/x", False),
        ("https://api.twilio.com@evil.test/x", False),
        ("https://api.twilio.com:99999/x", False),
    ],
)
def test_check_link_compares_scheme_host_and_port(link, same):
    def check() -> None:
        check_link(link, "https://api.twilio.com/2010-04-01/Accounts", provider="twilio")

    if same:
        check()
    else:
        with pytest.raises(ProviderError, match=r"^twilio handed back"):
            check()

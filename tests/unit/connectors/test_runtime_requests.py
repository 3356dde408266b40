"""How the runtime writes a stream's requests: a target built per read and a query written into
a URL are sent as written (Rest.li's literal parentheses, next-page links), page parameters are
appended; a pasted token replaces the OAuth consent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import (
    Connector,
    ConnectorConfig,
    Context,
    NextUrl,
    OAuth2AuthorizationCode,
    Offset,
    Stream,
    Window,
)
from inflow.http.client import HttpOptions

BASE = "https://api.test/rest"
WINDOW = Window(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC))


class Config(ConnectorConfig):
    client_id: str = "client"
    client_secret: SecretStr = SecretStr("secret")
    access_token: SecretStr | None = None


def interval(ctx: Context) -> str:
    window = ctx.window
    assert window is not None
    start, end = (int(m.timestamp() * 1000) for m in (window.start, window.end))
    return (
        "/stats?q=org&org=urn%3Ali%3Aorganization%3A7"
        f"&timeIntervals=(timeRange:(start:{start},end:{end}),timeGranularityType:DAY)"
    )


def connector(*streams: Stream) -> Connector:
    return Connector(
        slug="restli",
        title="Rest.li",
        category="social",
        config=Config,
        auth_type="oauth2_authorization_code",
        base_url=BASE,
        auth=OAuth2AuthorizationCode(
            authorize_url="https://auth.test/authorize",
            token_url="https://auth.test/token",
            static_token="{config.access_token}",
        ),
        streams=streams,
    )


def read(conn: Connector, config: Config, handler: Any, window: Window | None = None) -> list[Any]:
    async def go() -> list[Any]:
        runtime = ConnectorRuntime(
            conn,
            config,
            options=HttpOptions(allow_private_urls=True),
            key="k",
            transport=httpx.MockTransport(handler),
        )
        async with runtime:
            return [
                item
                async for page in runtime.items(conn.streams[0], window=window)
                for item in page
            ]

    return asyncio.run(go())


def test_target_is_sent_as_written_with_page_parameters_appended():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        start = int(request.url.params["start"])
        return httpx.Response(200, json={"elements": [{"n": start}] if start == 0 else []})

    pages = Offset(param="start", limit_param="count", limit=1)
    stream = Stream("stats", "/stats", records="elements", pages=pages, target=interval)
    config = Config(access_token=SecretStr("pasted"))

    items = read(connector(stream), config, handler, WINDOW)

    assert items == [{"n": 0}]
    assert [r.url.raw_path.decode() for r in seen] == [
        "/rest/stats?q=org&org=urn%3Ali%3Aorganization%3A7"
        "&timeIntervals=(timeRange:(start:1780272000000,end:1780444800000),"
        f"timeGranularityType:DAY)&start={n}&count=1"
        for n in (0, 1)
    ]


def test_a_next_url_keeps_its_query():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        nxt = None if "page=2" in str(request.url) else f"{BASE}/things?page=2&f=(a:1)"
        return httpx.Response(200, json={"items": [1], "next": nxt})

    stream = Stream("things", "/things", records="items", pages=NextUrl(path="next"))

    read(connector(stream), Config(access_token=SecretStr("pasted")), handler)

    assert seen == ["/rest/things", "/rest/things?page=2&f=(a:1)"]


def test_a_pasted_token_is_sent_as_a_bearer_without_consent():
    auth: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"items": []})

    stream = Stream("things", "/things", records="items")

    read(connector(stream), Config(access_token=SecretStr("pasted")), handler)

    assert auth == ["Bearer pasted"]

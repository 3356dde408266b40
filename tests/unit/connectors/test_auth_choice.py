"""A connector whose auth is a function of its config: the runtime sends the scheme it picks
(Grafana takes a token as Bearer, a username and password as Basic)."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from pydantic import SecretStr

from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import AuthSpec, Basic, Bearer, Check, Connector, ConnectorConfig
from inflow.http.client import HttpOptions


class Config(ConnectorConfig):
    base_url: str = "https://api.test"
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None


def sign_in(config: Config) -> AuthSpec:
    if config.token is not None:
        return Bearer("{config.token}")
    return Basic("{config.username}", "{config.password}")


CONNECTOR = Connector(
    slug="chooser",
    title="Chooser",
    category="bi",
    config=Config,
    auth_type="bearer",
    auth=sign_in,
    checks=(Check("/me"),),
)


def authorization_sent(config: Config) -> str:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={})

    async def run() -> None:
        runtime = ConnectorRuntime(
            CONNECTOR,
            config,
            options=HttpOptions(allow_private_urls=True),  # no DNS for api.test
            key="source",
            transport=httpx.MockTransport(handler),
        )
        async with runtime:
            steps = await runtime.check()
        assert [s.ok for s in steps] == [True]

    asyncio.run(run())
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize(
    ("config", "header"),
    [
        pytest.param(Config(token=SecretStr("t0k")), "Bearer t0k", id="token_as_bearer"),
        pytest.param(
            Config(username="ana", password=SecretStr("pw")),
            "Basic " + base64.b64encode(b"ana:pw").decode(),
            id="password_as_basic",
        ),
    ],
)
def test_auth_function_picks_the_scheme_from_the_config(config: Config, header: str) -> None:
    assert authorization_sent(config) == header

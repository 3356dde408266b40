"""A refusal the connector's classifier calls REFRESH_AUTH renews an OAuth token and replays the
request, as a 401 does (Power BI answers an expired token with 403 ``TokenExpired``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import SecretStr

from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import (
    Action,
    Check,
    Connector,
    ConnectorConfig,
    Kind,
    OAuth2ClientCredentials,
    Resolution,
)
from inflow.http.client import HttpOptions

TOKEN_URL = "https://login.test/token"


class Config(ConnectorConfig):
    client_id: str = "client"
    client_secret: SecretStr = SecretStr("secret")


class Provider:
    """Issues numbered tokens; the API refuses every token but the newest with 403."""

    def __init__(self) -> None:
        self.issued = 0
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.issued += 1
            return httpx.Response(200, json={"access_token": f"t{self.issued}", "expires_in": 3600})
        self.seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] != f"Bearer t{self.issued}" or self.issued < 2:
            return httpx.Response(403, json={"error": {"code": "TokenExpired"}})
        return httpx.Response(200, json={"ok": True})


def token_expired(response: httpx.Response) -> Resolution | None:
    if response.status_code == 403 and b"TokenExpired" in response.content:
        return Resolution(Action.REFRESH_AUTH, Kind.AUTH, "the token expired")
    return None


def connector(**overrides: Any) -> Connector:
    return Connector(
        slug="expiring",
        title="Expiring",
        category="bi",
        config=Config,
        auth_type="oauth2_client_credentials",
        base_url="https://api.test",
        auth=OAuth2ClientCredentials(token_url=TOKEN_URL),
        checks=(Check("/me"),),
        **overrides,
    )


def run_check(spec: Connector, provider: Provider) -> list[Any]:
    async def go() -> list[Any]:
        runtime = ConnectorRuntime(
            spec,
            Config(),
            options=HttpOptions(allow_private_urls=True),
            key="k",
            transport=httpx.MockTransport(provider),
        )
        async with runtime:
            return await runtime.check()

    return asyncio.run(go())


def test_a_refusal_classified_refresh_auth_gets_a_new_token_and_a_replay() -> None:
    provider = Provider()

    steps = run_check(connector(classify=token_expired), provider)

    assert [s.ok for s in steps] == [True], steps
    assert provider.seen == ["Bearer t1", "Bearer t2"]
    assert provider.issued == 2


def test_without_a_classifier_saying_so_a_403_is_final() -> None:
    provider = Provider()

    steps = run_check(connector(), provider)

    assert [s.ok for s in steps] == [False]
    assert "403" in steps[0].message
    assert provider.seen == ["Bearer t1"]
    assert provider.issued == 1

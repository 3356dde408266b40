"""OAuth through the API and the sandbox's authorization server: the consent flow with state and
PKCE, tokens in the vault, single-use expiring state, strangers and wrong services, a token
expiring mid-sync (refresh, rotated refresh token saved), revoked consent; and the
client-credentials and JWT-bearer grants through the connector runtime."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from inflow.connectors.example import OAUTH_CONNECTOR, ExampleOAuthConfig
from inflow.connectors.records import Asset, DataPoint
from inflow.connectors.runtime import ConnectorRuntime
from inflow.connectors.spec import Connector, OAuth2ClientCredentials, OAuth2JwtBearer
from inflow.http.client import HttpOptions
from inflow.storage.models import DataSource, OAuthState, utcnow
from tests.sync.helpers import (
    EXAMPLE,
    EXAMPLE_OAUTH,
    EXAMPLE_URL,
    create_source,
    health,
    person,
    sync_and_wait,
)

CALLBACK = "http://testserver/api/oauth/example_oauth/callback"


def _location(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    return response.headers["location"]


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def authorize(client, headers, source_id: str, service: str = "example_oauth") -> httpx.Response:
    return client.get(
        f"/api/oauth/{service}/authorize",
        params={"sourceId": source_id},
        headers=headers,
        follow_redirects=False,
    )


def consent(sb, authorize_url: str) -> str:
    """The sandbox's consent page: it agrees at once and redirects back with a code."""
    assert authorize_url.startswith(f"{EXAMPLE_URL}/oauth/authorize?"), authorize_url
    return _location(sb.http.get(_relative(authorize_url), follow_redirects=False))


def connect(client, headers, sb, source_id: str) -> str:
    """The whole consent flow; returns the callback URL (to replay it)."""
    callback = consent(sb, _location(authorize(client, headers, source_id)))
    done = client.get(_relative(callback), follow_redirects=False)
    assert _location(done) == f"/sources/{source_id}?oauth=connected"
    return callback


def stored_tokens(app, factory, source_id: str) -> tuple[str, dict[str, Any]]:
    """(the raw ``tokens`` column, its decrypted content)."""
    with factory() as session:
        row = session.get(DataSource, uuid.UUID(source_id))
        assert row is not None
        assert row.tokens is not None
        return row.tokens, app.state.vault.decrypt(row.tokens)


def issued(sandbox) -> Any:
    return sandbox.state.sandbox.states["example"].tokens


@pytest.fixture
def oauth_source(client, factory) -> tuple[dict[str, str], dict[str, Any]]:
    _, headers = person(factory)
    return headers, create_source(client, headers, "example_oauth", EXAMPLE_OAUTH)


# ---------------------------------------------------------------- the consent flow


def test_consent_flow_stores_tokens_encrypted(app, client, factory, sb, sandbox, oauth_source):
    headers, source = oauth_source
    assert health(client, headers, source["id"])["status"] == "unknown"

    url = _location(authorize(client, headers, source["id"]))

    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["example-client"]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256, unpadded
    assert len(query["state"][0]) >= 32
    assert query["scope"] == ["reports.read metrics.read"]

    back = consent(sb, url)
    assert back.startswith(CALLBACK + "?")
    assert parse_qs(urlsplit(back).query)["state"] == query["state"]
    done = client.get(_relative(back), follow_redirects=False)

    assert _location(done) == f"/sources/{source['id']}?oauth=connected"
    raw, tokens = stored_tokens(app, factory, source["id"])
    (access,) = issued(sandbox).access
    (refresh,) = issued(sandbox).refresh
    assert tokens["access_token"] == access
    assert tokens["refresh_token"] == refresh
    assert access not in raw  # encrypted at rest
    assert refresh not in raw
    state = health(client, headers, source["id"])
    assert state["status"] == "ok"

    test = client.post(f"/api/data-sources/{source['id']}/test", headers=headers).json()
    assert test["success"] is True, test
    run = sync_and_wait(client, headers, source["id"])
    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] > 0
    assert access not in str(run)
    assert refresh not in str(run)


def test_a_refused_consent_returns_to_the_sources_page_with_the_reason(
    client, factory, oauth_source
):
    headers, source = oauth_source
    state = parse_qs(urlsplit(_location(authorize(client, headers, source["id"]))).query)["state"]

    done = client.get(
        "/api/oauth/example_oauth/callback",
        params={"state": state[0], "error": "access_denied", "error_description": "user said no"},
        follow_redirects=False,
    )

    assert _location(done) == f"/sources/{source['id']}?oauth=failed&error=user+said+no"
    with factory() as session:
        assert session.get(DataSource, uuid.UUID(source["id"])).tokens is None


def test_a_bad_state_in_a_browser_is_an_html_page_not_json(client):
    response = client.get(
        "/api/oauth/example_oauth/callback",
        params={"state": "made-up", "code": "x"},
        headers={"Accept": "text/html"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


def test_state_is_single_use(client, factory, sb, oauth_source):
    headers, source = oauth_source
    callback = connect(client, headers, sb, source["id"])

    replay = client.get(_relative(callback), follow_redirects=False)

    assert replay.status_code == 400, replay.text
    assert "already used" in replay.json()["detail"]


def test_state_expires(client, factory, sb, oauth_source):
    headers, source = oauth_source
    callback = consent(sb, _location(authorize(client, headers, source["id"])))
    with factory() as session:
        session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()

    late = client.get(_relative(callback), follow_redirects=False)

    assert late.status_code == 400, late.text
    assert "expired" in late.json()["detail"]
    with factory() as session:
        assert session.get(DataSource, uuid.UUID(source["id"])).tokens is None


def test_unknown_state_is_refused(client):
    response = client.get(
        "/api/oauth/example_oauth/callback", params={"state": "made-up", "code": "x"}
    )
    assert response.status_code == 400, response.text


def test_a_stranger_cannot_start_the_flow_for_my_source(client, factory, oauth_source):
    _, source = oauth_source
    _, stranger = person(factory)

    response = authorize(client, stranger, source["id"])

    assert response.status_code == 404, response.text
    with factory() as session:
        assert session.query(OAuthState).count() == 0


def test_a_service_id_that_does_not_match_the_source_is_400(client, factory, sb, oauth_source):
    headers, source = oauth_source

    wrong = authorize(client, headers, source["id"], service="example")
    assert wrong.status_code == 400, wrong.text
    assert "example_oauth" in wrong.json()["detail"]

    api_key_source = create_source(client, headers, "example", EXAMPLE)
    no_oauth = authorize(client, headers, api_key_source["id"], service="example")
    assert no_oauth.status_code == 400, no_oauth.text

    # A callback arriving under another service's URL is refused, and spends the state.
    callback = consent(sb, _location(authorize(client, headers, source["id"])))
    elsewhere = _relative(callback).replace("/example_oauth/", "/example/")
    assert client.get(elsewhere, follow_redirects=False).status_code == 400
    assert client.get(_relative(callback), follow_redirects=False).status_code == 400


# ---------------------------------------------------------------- tokens during syncs


def test_token_expiring_mid_sync_is_refreshed_and_the_rotated_refresh_token_saved(
    app, client, factory, sb, sandbox, oauth_source
):
    headers, source = oauth_source
    connect(client, headers, sb, source["id"])
    _, before = stored_tokens(app, factory, source["id"])
    # Tokens now live 2 s (the one just issued too) and each request takes at least 0.4 s: six
    # requests (four pages of reports) outlast the token, and every refresh rotates.
    sb.configure(faults={"tokenTtlS": 2, "latencyMs": 400}, volume={"pages": 2, "reports": 350})

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    stats = sb.stats()
    assert stats["byStatus"].get("401", 0) >= 1  # the provider refused the expired token
    assert stats["byEndpoint"]["POST /oauth/token"] >= 1  # ... and the client refreshed
    _, after = stored_tokens(app, factory, source["id"])
    assert after["refresh_token"] != before["refresh_token"]
    assert after["access_token"] != before["access_token"]
    live = issued(sandbox).refresh
    assert live[after["refresh_token"]].active  # the one saved is the one the provider honours
    assert not live[before["refresh_token"]].active
    assert health(client, headers, source["id"])["status"] == "ok"


def test_revoked_consent_fails_the_sync_and_asks_to_reconnect(client, factory, sb, oauth_source):
    headers, source = oauth_source
    connect(client, headers, sb, source["id"])
    sb.revoke_all()  # the user withdrew consent at the provider

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert run["error"]["fault"] == "user"
    assert "invalid_grant" in run["error"]["message"]
    state = health(client, headers, source["id"])
    assert state["status"] == "needs_reauth"
    assert "reconnect" in state["message"]


def test_sync_before_connecting_needs_reauth(client, factory, oauth_source):
    headers, source = oauth_source

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert "connect it first" in run["error"]["message"]
    assert health(client, headers, source["id"])["status"] == "needs_reauth"


# ---------------------------------------------------------------- the other grants (no database)


class JwtConfig(ExampleOAuthConfig):
    jwt: SecretStr


CLIENT_CREDENTIALS: Connector = replace(
    OAUTH_CONNECTOR,
    slug="example_client_credentials",
    auth_type="oauth2_client_credentials",
    auth=OAuth2ClientCredentials(token_url="{auth_url}/oauth/token", scope="read"),
)
JWT_BEARER: Connector = replace(
    OAUTH_CONNECTOR,
    slug="example_jwt",
    auth_type="oauth2_jwt",
    config=JwtConfig,
    auth=OAuth2JwtBearer(token_url="{auth_url}/oauth/token"),
)


async def _check_and_read(
    connector: Connector, config: Any, sandbox, *, pause_s: float = 0.0
) -> tuple[list[Any], list[Any]]:
    runtime = ConnectorRuntime(
        connector,
        config,
        options=HttpOptions(allow_private_urls=True),
        key=str(uuid.uuid4()),
        transport=httpx.ASGITransport(app=sandbox),
    )
    async with runtime:
        steps = await runtime.check()
        if not all(s.ok for s in steps):
            return steps, []
        await asyncio.sleep(pause_s)  # lets a short-lived token age between check and read
        records = [
            r
            for stream in connector.streams
            async for chunk in runtime.read(stream)
            for r in chunk.records
        ]
    return steps, records


def _grant_config(sb, connector: Connector, **override: str) -> Any:
    oauth = sb.credentials()["example"]["oauth"]  # what the sandbox hands out, like test keys
    assert oauth["tokenUrl"] == f"{EXAMPLE_URL}/oauth/token"
    values = {
        "baseUrl": EXAMPLE_URL,
        "authUrl": EXAMPLE_URL,
        "clientId": oauth["clientId"],
        "clientSecret": oauth["clientSecret"],
    }
    if connector is JWT_BEARER:
        values["jwt"] = oauth["jwt"]
    return connector.config.model_validate({**values, **override})


GRANTS = pytest.mark.parametrize(
    "connector", [CLIENT_CREDENTIALS, JWT_BEARER], ids=["client_credentials", "jwt_bearer"]
)


@GRANTS
def test_machine_grants_check_and_read(sb, sandbox, connector):
    steps, records = asyncio.run(_check_and_read(connector, _grant_config(sb, connector), sandbox))

    assert [(s.name, s.ok) for s in steps] == [("authenticated", True)], steps
    assets = [r for r in records if isinstance(r, Asset)]
    points = [r for r in records if isinstance(r, DataPoint)]
    expected = sb.expected()
    assert len(assets) == expected["reports"] + expected["dashboards"]
    assert len(points) == 2 * 31 * sb.configure()["volume"]["pages"]
    stats = sb.stats()
    assert stats["byEndpoint"]["POST /oauth/token"] == 1  # one token, cached for every call
    assert "401" not in stats["byStatus"]
    (grant,) = {t.grant.client_id for t in issued(sandbox).access.values()}
    assert grant == "example-client"


@GRANTS
def test_machine_grants_get_a_new_token_when_theirs_expires(sb, sandbox, connector):
    # A token shorter-lived than the refresh leeway is used for half its life, then renewed.
    sb.configure(faults={"tokenTtlS": 2})

    steps, records = asyncio.run(
        _check_and_read(connector, _grant_config(sb, connector), sandbox, pause_s=1.5)
    )

    assert all(s.ok for s in steps), steps
    assert records
    stats = sb.stats()
    assert stats["byEndpoint"]["POST /oauth/token"] > 1
    assert "401" not in stats["byStatus"]


@pytest.mark.parametrize(
    ("connector", "override", "error"),
    [
        (CLIENT_CREDENTIALS, {"clientSecret": "not-the-secret"}, "invalid_client"),
        (JWT_BEARER, {"jwt": "eyJhbGciOiJIUzI1NiJ9.e30.forged"}, "invalid_grant"),
    ],
    ids=["client_credentials", "jwt_bearer"],
)
def test_machine_grants_with_bad_credentials_fail_the_check_clearly(
    sb, sandbox, connector, override, error
):
    config = _grant_config(sb, connector, **override)

    steps, records = asyncio.run(_check_and_read(connector, config, sandbox))

    assert records == []
    assert [(s.name, s.ok) for s in steps] == [("authenticated", False)]
    assert error in steps[0].message
    secret = next(iter(override.values()))
    assert secret not in steps[0].message

"""MSAL for Python (Microsoft's identity library) against the Power BI emulator's Entra ID.

It exercises: OpenID discovery of the tenant (`/{tenant}/v2.0/.well-known/openid-configuration`,
over HTTPS: MSAL takes only https authorities; `instance_discovery=False`, because MSAL asks a
non-Microsoft host's root for instance metadata, where no emulator lives), the client-credentials
grant for Power BI's scope, its token cache (a second call sends nothing), its parsed refusals
(an `invalid_client` result with AADSTS code 7000215; an unknown tenant refused at discovery), and
its throttling of a 429 (the next identical request within `Retry-After` is answered from its
own record, not sent). Power BI has no official Python SDK: the workspaces and reports listed
with MSAL's token over plain HTTP equal the assets Inflow stores from the same server.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import msal
import pytest
import requests

from inflow.sandbox.powerbi import CLIENT_ID, CLIENT_SECRET, SCOPE, TENANT_DOMAIN, TENANT_ID
from tests.conformance.conftest import LiveSandbox
from tests.sync.helpers import assets_of

SLUG = "powerbi"
TOKEN = "POST /{tenant}/oauth2/v2.0/token"
DISCOVERY = "GET /{tenant}/v2.0/.well-known/openid-configuration"


@pytest.fixture
def tls(
    live_tls: tuple[str, Path], closing: contextlib.ExitStack
) -> tuple[str, Path, contextlib.ExitStack]:
    return (*live_tls, closing)


def app(
    tls: tuple[str, Path, contextlib.ExitStack],
    *,
    secret: str = CLIENT_SECRET,
    tenant: str = TENANT_ID,
) -> msal.ConfidentialClientApplication:
    """An app as MSAL's docs make one. Its `http_client` (a documented parameter) is the
    requests session MSAL would make itself, trusting the sandbox's certificate, handed in so
    the test can close it."""
    url, cert, closing = tls
    session = requests.Session()
    session.verify = str(cert)
    closing.callback(session.close)
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        authority=f"{url}/{SLUG}/{tenant}",
        client_credential=secret,
        instance_discovery=False,  # its instance discovery asks the host's root (no port)
        http_client=session,
    )


def calls(live: LiveSandbox, endpoint: str) -> int:
    return int(live.stats(SLUG)["byEndpoint"].get(endpoint, 0))


def test_msal_gets_a_token_power_bi_accepts(
    live: LiveSandbox, tls: tuple[str, Path, contextlib.ExitStack]
) -> None:
    live.configure(SLUG, volume={"workspaces": 2, "reports": 4, "dashboards": 1})
    client = app(tls, tenant=TENANT_DOMAIN)  # a verified domain names the tenant too

    first = client.acquire_token_for_client(scopes=[SCOPE])
    assert first["token_type"] == "Bearer", first
    assert first["token_source"] == "identity_provider"
    assert 0 < first["expires_in"] <= 3599
    again = client.acquire_token_for_client(scopes=[SCOPE])
    assert again["token_source"] == "cache"
    assert again["access_token"] == first["access_token"]
    assert (calls(live, DISCOVERY), calls(live, TOKEN)) == (1, 1)

    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    listed: dict[str, str] = {}
    with httpx.Client(base_url=f"{live.url}/{SLUG}/v1.0/myorg", headers=bearer) as api:
        for group in api.get("/groups").json()["value"]:
            for kind, name in (("reports", "name"), ("dashboards", "displayName")):
                items = api.get(f"/groups/{group['id']}/{kind}").json()["value"]
                listed |= {item["id"]: item[name] for item in items}
    assert len(listed) == 2 * (4 + 1)

    source_id = live.sync(SLUG, live.credentials(SLUG)["config"])
    assert {row[0]: row[2] for row in assets_of(live.factory, source_id)} == listed


def test_msal_parses_entras_refusals(
    live: LiveSandbox, tls: tuple[str, Path, contextlib.ExitStack]
) -> None:
    refused = app(tls, secret="not-the-secret").acquire_token_for_client(scopes=[SCOPE])
    assert refused["error"] == "invalid_client"
    assert refused["error_codes"] == [7000215]
    assert refused["error_description"].startswith("AADSTS7000215: Invalid client secret")
    assert "access_token" not in refused

    with pytest.raises(ValueError, match="Unable to get authority configuration") as unknown:
        app(tls, tenant="no-such-tenant.onmicrosoft.com")
    assert "AADSTS90002" in str(unknown.value.__context__)  # the discovery answer MSAL read


def test_msal_holds_back_after_a_429(
    live: LiveSandbox, tls: tuple[str, Path, contextlib.ExitStack]
) -> None:
    client = app(tls)
    live.configure(SLUG, faults={"status429Burst": 1, "retryAfterS": 30})

    limited = client.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" not in limited
    held = client.acquire_token_for_client(scopes=[SCOPE])
    assert "access_token" not in held
    assert calls(live, TOKEN) == 1  # the second answer is MSAL's own record of the 429
    assert live.stats(SLUG)["byStatus"] == {"200": 1, "429": 1}  # discovery, then the 429

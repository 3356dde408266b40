"""Looker Studio through the real API, database and OAuth dance against the in-process emulator:
consent with offline access, reports over several pages, re-syncs that change nothing, a token
expiring mid-sync (refreshed; the refresh token kept, or saved when Google rotates it), revoked
consent asking to reconnect, a 429 storm, reports trashed or deleted upstream; and the emulator's
own Google semantics (offline access, scopes, paging, errors)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from inflow.connectors.looker_studio import CONNECTOR, READONLY
from inflow.connectors.runtime import ConnectorRuntime
from inflow.http.auth import MemoryTokenStore, TokenSet
from inflow.http.client import HttpOptions
from inflow.sandbox.looker_studio import CLIENT_ID, CLIENT_SECRET
from inflow.storage.models import Asset, DataSource
from tests.providers.emulator import Emulator, location, relative
from tests.sync.helpers import SANDBOX_HOST, assets_of, health, person, sync_and_wait

SLUG = "looker_studio"
URL = f"{SANDBOX_HOST}/{SLUG}"
CALLBACK = f"http://testserver/api/oauth/{SLUG}/callback"
SEARCH = "GET /v1/assets:search"
Row = tuple[str, str, str | None, str | None, bool]
TOKEN = "POST /o/oauth2/token"


# ---------------------------------------------------------------- fixtures


class Google(Emulator):
    """The emulator's control routes and its consent page."""

    slug = SLUG

    def expected(self) -> Any:
        return self._ok(self.http.get(f"/_sandbox/{SLUG}/expected", params={"include": "reports"}))

    def revoke_all(self) -> None:
        self._ok(self.http.post(f"/_sandbox/{SLUG}/oauth/revoke-all"))

    def consent(self, authorize_url: str) -> str:
        """Google's consent screen: agrees at once, back to the callback with a code."""
        assert authorize_url.startswith(f"{URL}/o/oauth2/v2/auth?"), authorize_url
        return location(self.http.get(relative(authorize_url), follow_redirects=False))


@pytest.fixture
def google(sandbox: FastAPI) -> Iterator[Google]:
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield Google(http)


@pytest.fixture
def source(client, factory, google) -> tuple[dict[str, str], dict[str, Any]]:
    """A Looker Studio source made with the sandbox's OAuth client, not yet connected."""
    _, headers = person(factory)
    body = {"name": "Looker Studio", "type": SLUG, "config": google.config()}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return headers, response.json()


def connect(
    client, google: Google, headers: dict[str, str], source_id: str
) -> dict[str, list[str]]:
    """Authorize → Google's consent → callback; the authorize URL's query."""
    start = client.get(
        f"/api/oauth/{SLUG}/authorize",
        params={"sourceId": source_id},
        headers=headers,
        follow_redirects=False,
    )
    url = location(start)
    callback = google.consent(url)
    assert callback.startswith(CALLBACK + "?"), callback
    done = client.get(relative(callback), follow_redirects=False)
    assert location(done) == f"/sources/{source_id}?oauth=connected"
    return parse_qs(urlsplit(url).query)


def stored_tokens(app: FastAPI, factory, source_id: str) -> Any:
    with factory() as session:
        row = session.get(DataSource, uuid.UUID(source_id))
        assert row is not None
        assert row.tokens is not None
        return app.state.vault.decrypt(row.tokens)


def issued(sandbox: FastAPI) -> Any:
    return sandbox.state.sandbox.states[SLUG].tokens


def reports(items: list[dict[str, Any]]) -> set[Row]:
    """What the stored assets must be: (id, title, url, updateTime, deleted) per report."""
    return {
        (
            r["name"],
            r["title"],
            f"https://lookerstudio.google.com/reporting/{r['name']}",
            datetime.fromisoformat(r["updateTime"]).isoformat(),
            False,
        )
        for r in items
    }


def stored(factory, source_id: str) -> set[Row]:
    out: set[Row] = set()
    for external_id, kind, name, url, _, _, updated, deleted in assets_of(factory, source_id):
        assert kind == "report"
        out.add((external_id, name, url, updated, deleted))
    return out


def test(client, headers: dict[str, str], source_id: str) -> Any:
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


test.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


# ---------------------------------------------------------------- through the API


def test_connect_with_offline_access_then_sync_every_page(app, client, factory, google, source):
    headers, src = source
    google.configure(volume={"reports": 2100})  # three pages of 1,000

    query = connect(client, google, headers, src["id"])

    assert query["scope"] == [READONLY]
    assert query["access_type"] == ["offline"]
    assert query["prompt"] == ["consent"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == [CLIENT_ID]
    assert stored_tokens(app, factory, src["id"])["refresh_token"]
    result = test(client, headers, src["id"])
    assert result["success"] is True, result
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [
        ("token valid", True),
        ("list reports", True),
    ]

    run = sync_and_wait(client, headers, src["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"] == {"created": 2100, "updated": 0, "unchanged": 0, "deleted": 0}
    assert stored(factory, src["id"]) == reports(google.expected()["items"])
    assert google.stats()["byEndpoint"][SEARCH] == 2 + 3  # the two checks, then three pages
    with factory() as session:
        extra = session.scalars(select(Asset.extra).where(Asset.source_id == uuid.UUID(src["id"])))
        extras = list(extra)
    assert all(e["owner"].endswith("@example.com") and "createTime" in e for e in extras)
    assert not any("lastViewByMeTime" in e for e in extras)  # per-caller: would churn

    again = sync_and_wait(client, headers, src["id"])

    assert again["status"] == "succeeded", again
    assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 2100, "deleted": 0}
    assert len(stored(factory, src["id"])) == 2100


def test_edited_reports_are_updated(client, factory, google, source):
    headers, src = source
    connect(client, google, headers, src["id"])
    assert sync_and_wait(client, headers, src["id"])["counts"]["created"] == 120

    google.configure(volume={"revision": 2})  # every 10th report retitled, updated 2 days later
    run = sync_and_wait(client, headers, src["id"])

    assert run["counts"] == {"created": 0, "updated": 12, "unchanged": 108, "deleted": 0}
    assert stored(factory, src["id"]) == reports(google.expected()["items"])


def test_reports_trashed_or_deleted_upstream_are_marked_deleted(client, factory, google, source):
    headers, src = source
    google.configure(volume={"reports": 40})
    connect(client, google, headers, src["id"])
    before = google.expected()["items"]
    sync_and_wait(client, headers, src["id"])

    google.configure(volume={"deletions": 6})  # three trashed, three deleted for good
    run = sync_and_wait(client, headers, src["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"] == {"created": 0, "updated": 0, "unchanged": 34, "deleted": 6}
    live = {r["name"] for r in google.expected()["items"]}
    rows = stored(factory, src["id"])
    assert {row[0] for row in rows if row[4]} == {r["name"] for r in before} - live
    assert {row[0] for row in rows if not row[4]} == live

    google.configure(volume={"deletions": 0})  # restored from the trash (and undeleted)
    back = sync_and_wait(client, headers, src["id"])

    assert back["counts"]["updated"] == 6, back
    assert not any(row[4] for row in stored(factory, src["id"]))


@pytest.mark.parametrize("rotates", [False, True], ids=["google_keeps_it", "rotated"])
def test_token_expiring_mid_sync_is_refreshed_and_the_refresh_token_saved(
    app, client, factory, google, sandbox, source, rotates
):
    headers, src = source
    connect(client, google, headers, src["id"])
    before = stored_tokens(app, factory, src["id"])
    # Tokens now live 0.4 s (the one just issued too) and each request takes 0.25 s: the second
    # page cannot be read with the first token.
    google.configure(
        volume={"reports": 1500, "rotateRefreshTokens": int(rotates)},
        faults={"tokenTtlS": 0.4, "latencyMs": 250},
    )

    run = sync_and_wait(client, headers, src["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] == 1500
    stats = google.stats()
    assert stats["byStatus"].get("401", 0) >= 1  # Google refused the expired token
    assert stats["byEndpoint"][TOKEN] >= 2  # the code exchange, then at least one refresh
    after = stored_tokens(app, factory, src["id"])
    assert after["access_token"] != before["access_token"]
    live = issued(sandbox).refresh
    assert live[after["refresh_token"]].active  # the one saved is the one Google honours
    if rotates:
        assert after["refresh_token"] != before["refresh_token"]
        assert not live[before["refresh_token"]].active
    else:  # Google's refresh response has no refresh_token: the old one is kept
        assert after["refresh_token"] == before["refresh_token"]
    assert health(client, headers, src["id"])["status"] == "ok"


def test_revoked_consent_needs_reauth_until_reconnected(app, client, factory, google, source):
    headers, src = source
    connect(client, google, headers, src["id"])
    google.revoke_all()  # the user removed the app at myaccount.google.com

    run = sync_and_wait(client, headers, src["id"])

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert "invalid_grant: Token has been expired or revoked." in run["error"]["message"]
    state = health(client, headers, src["id"])
    assert state["status"] == "needs_reauth"
    assert "reconnect" in state["message"]
    result = test(client, headers, src["id"])
    assert result["success"] is False
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [("token valid", False)]
    assert health(client, headers, src["id"])["status"] == "needs_reauth"

    connect(client, google, headers, src["id"])  # prompt=consent: a new refresh token again

    assert stored_tokens(app, factory, src["id"])["refresh_token"]
    assert sync_and_wait(client, headers, src["id"])["status"] == "succeeded"
    assert health(client, headers, src["id"])["status"] == "ok"


def test_a_429_storm_still_reads_every_report(client, factory, google, source, fast_retries):
    headers, src = source
    connect(client, google, headers, src["id"])
    google.configure(volume={"reports": 1500}, faults={"status429Burst": 4, "status429Rate": 0.4})

    run = sync_and_wait(client, headers, src["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] == 1500
    assert google.stats()["byStatus"]["429"] >= 5
    assert stored(factory, src["id"]) == reports(google.expected()["items"])


# ---------------------------------------------------------------- the connector on its own


def runtime(sandbox: FastAPI, tokens: TokenSet) -> ConnectorRuntime:
    config = CONNECTOR.config.model_validate(
        {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "baseUrl": URL, "authUrl": URL}
    )
    return ConnectorRuntime(
        CONNECTOR,
        config,
        options=HttpOptions(allow_private_urls=True),
        key=str(uuid.uuid4()),
        token_store=MemoryTokenStore(tokens),
        transport=httpx.ASGITransport(app=sandbox),
    )


def consented(google: Google, scope: str, **params: str) -> Any:
    """Tokens from the emulator's consent flow, as a client asking for ``scope`` gets them."""
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": scope,
        **params,
    }
    authorize = f"/{SLUG}/o/oauth2/v2/auth"
    back = location(google.http.get(authorize, params=query, follow_redirects=False))
    code = parse_qs(urlsplit(back).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    response = google.http.post(f"/{SLUG}/o/oauth2/token", data=form)
    assert response.status_code == 200, response.text
    return response.json()


async def check(sandbox: FastAPI, body: dict[str, Any]) -> list[Any]:
    async with runtime(sandbox, TokenSet.from_response(body)) as rt:
        return await rt.check()


def test_a_token_without_the_datastudio_scope_asks_to_reconnect(google, sandbox):
    body = consented(google, "openid email", access_type="offline")  # the scope was unticked

    steps = asyncio.run(check(sandbox, body))

    assert [(s.name, s.ok, s.reauth) for s in steps] == [("token valid", False, True)]
    assert "did not grant the Looker Studio scope" in steps[0].message


def test_an_empty_account_passes_the_check_and_says_so(google, sandbox):
    google.configure(volume={"reports": 0})

    steps = asyncio.run(check(sandbox, consented(google, READONLY)))

    assert [(s.name, s.ok) for s in steps] == [("token valid", True), ("list reports", True)]
    assert "no reports yet" in steps[1].message


def test_refresh_tokens_need_offline_access_and_consent_again(google):
    assert "refresh_token" not in consented(google, READONLY)  # access_type defaults to online
    first = consented(google, READONLY, access_type="offline")
    assert first["refresh_token"]
    assert "refresh_token" not in consented(google, READONLY, access_type="offline")
    again = consented(google, READONLY, access_type="offline", prompt="consent")
    assert again["refresh_token"] != first["refresh_token"]
    assert first["expires_in"] == 3599


# ---------------------------------------------------------------- the emulator's Google semantics


def search(google: Google, token: str | None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response: httpx.Response = google.http.get(
        f"/{SLUG}/v1/assets:search", params=params, headers=headers
    )
    return response


def test_search_pages_with_tokens_bound_to_the_query(google):
    google.configure(volume={"reports": 25, "dataSources": 4, "deletions": 4})
    token = consented(google, READONLY)["access_token"]

    names, page_token, pages = [], None, 0
    while True:
        params = {"assetTypes": "REPORT", "pageSize": 10}
        body = search(google, token, **params, **({"pageToken": page_token} if page_token else {}))
        assert body.status_code == 200, body.text
        names += [a["name"] for a in body.json()["assets"]]
        pages += 1
        page_token = body.json().get("nextPageToken")
        if page_token is None:
            break

    assert pages == 3
    assert len(names) == len(set(names)) == 21
    assert names == [r["name"] for r in google.expected()["items"]]
    trashed = search(google, token, assetTypes="REPORT", includeTrashed="true").json()
    assert [a["trashed"] for a in trashed["assets"]] == [True, True]  # only the trashed
    assert not set(names) & {a["name"] for a in trashed["assets"]}
    assert len(search(google, token, assetTypes="DATA_SOURCE").json()["assets"]) == 4
    first = search(google, token, assetTypes="REPORT", pageSize=10).json()
    bigger = search(google, token, assetTypes="REPORT", pageToken=first["nextPageToken"])
    assert [a["name"] for a in bigger.json()["assets"]] == names[10:]  # the size may change
    other = search(google, token, assetTypes="DATA_SOURCE", pageToken=first["nextPageToken"])
    assert other.status_code == 400  # … the query may not
    assert other.json()["error"]["status"] == "INVALID_ARGUMENT"
    google.configure(volume={"reports": 0})
    assert search(google, token, assetTypes="REPORT").json() == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Request contains an invalid argument."),
        ({"assetTypes": ["REPORT", "DATA_SOURCE"]}, "Request contains an invalid argument."),
        ({"assetTypes": "DASHBOARD"}, "Invalid value at 'asset_types[0]'"),
        ({"assetTypes": "REPORT", "pageSize": "many"}, "Invalid value at 'page_size' (TYPE_INT32)"),
        ({"assetTypes": "REPORT", "page_token": "forged"}, "Request contains an invalid argument."),
        (
            {"assetTypes": "REPORT", "limit": "5"},
            'Invalid JSON payload received. Unknown name "limit"',
        ),
    ],
    ids=["no_type", "two_types", "bad_type", "bad_page_size", "forged_token", "unknown_param"],
)
def test_search_refuses_bad_queries_like_google(google, params, message):
    token = consented(google, READONLY)["access_token"]

    response = search(google, token, **params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith(message)


def test_search_page_size_is_capped_at_1000(google):
    google.configure(volume={"reports": 1500})
    token = consented(google, READONLY)["access_token"]

    body = search(google, token, assetTypes="REPORT", pageSize=5000).json()

    assert len(body["assets"]) == 1000
    assert "nextPageToken" in body


def test_unauthenticated_and_expired_tokens_get_googles_401(google):
    token = consented(google, READONLY)["access_token"]

    missing = search(google, None, assetTypes="REPORT")
    expired = google.http.get(
        f"/{SLUG}/v1/assets:search",
        params={"assetTypes": "REPORT"},
        headers={"Authorization": f"Bearer {token}", "X-Sandbox-Fault": "expired_token"},
    )

    for response in (missing, expired):
        assert response.status_code == 401
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"].startswith('Bearer realm="https://accounts')
    reasons = [d["reason"] for d in expired.json()["error"]["details"]]
    assert reasons == ["ACCESS_TOKEN_EXPIRED"]


def test_revoke_ends_the_whole_grant(google):
    tokens = consented(google, READONLY, access_type="offline")

    revoked = google.http.post(f"/{SLUG}/o/oauth2/revoke", params={"token": tokens["access_token"]})
    again = google.http.post(f"/{SLUG}/o/oauth2/revoke", data={"token": tokens["refresh_token"]})
    refresh = google.http.post(
        f"/{SLUG}/o/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )

    assert revoked.status_code == 200
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_token"
    assert refresh.status_code == 400
    assert refresh.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    assert search(google, tokens["access_token"], assetTypes="REPORT").status_code == 401

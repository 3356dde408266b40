"""google-api-python-client (Google's discovery-based client) against the Looker Studio emulator.

It exercises: the Data Studio v1 discovery document (`build_from_document`, with the sandbox as
`client_options.api_endpoint`; the library ships no static copy of it), google-auth user
credentials from the emulator's consent flow (offline access), `assets().search()` read to the
end by the generated `search_next()` paginator (`nextPageToken`), and the library's exceptions
for a revoked consent (google-auth's `RefreshError`, `invalid_grant`, once the access token is
refused), a 429 (`HttpError`, `RESOURCE_EXHAUSTED`) and an unknown method (`HttpError` 404,
`NOT_FOUND`). The reports it lists equal the assets Inflow stores from the same server.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from inflow.connectors.looker_studio import READONLY
from inflow.http.auth import TokenSet
from inflow.sandbox.looker_studio import CLIENT_ID, CLIENT_SECRET
from inflow.storage.db import session_scope
from inflow.sync.tokens import store_tokens
from tests.conformance.conftest import LiveSandbox
from tests.sync.helpers import assets_of, make_source, run_direct

SLUG = "looker_studio"
DISCOVERY = Path(__file__).parents[1] / "contract" / "specs" / "datastudio-v1-discovery.json"
CALLBACK = "http://127.0.0.1/api/oauth/looker_studio/callback"
SEARCH = "GET /v1/assets:search"


def consent(live: LiveSandbox) -> dict[str, Any]:
    """Tokens from the emulator's consent flow (offline access: a refresh token too)."""
    base = f"{live.url}/{SLUG}"
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": READONLY,
        "access_type": "offline",
        "prompt": "consent",
    }
    back = httpx.get(f"{base}/o/oauth2/v2/auth", params=query, follow_redirects=False)
    assert back.status_code == 302, back.text
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    answer = httpx.post(f"{base}/o/oauth2/token", data=form)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def datastudio(closing: contextlib.ExitStack, live: LiveSandbox, tokens: dict[str, Any]) -> Any:
    base = f"{live.url}/{SLUG}"
    credentials = Credentials(
        tokens["access_token"],
        refresh_token=tokens.get("refresh_token"),
        token_uri=f"{base}/o/oauth2/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes=[READONLY],
    )
    service = build_from_document(
        json.loads(DISCOVERY.read_text()),
        credentials=credentials,
        client_options={"api_endpoint": f"{base}/"},
    )
    closing.callback(service.close)
    return service


def test_the_library_lists_what_inflow_stores(
    live: LiveSandbox, closing: contextlib.ExitStack
) -> None:
    live.configure(SLUG, volume={"reports": 45, "dataSources": 3})
    tokens = consent(live)
    assets = datastudio(closing, live, tokens).assets()

    listed: dict[str, str] = {}
    request = assets.search(assetTypes="REPORT", pageSize=20)
    pages = 0
    while request is not None:
        response = request.execute()
        pages += 1
        listed |= {a["name"]: a["title"] for a in response.get("assets", [])}
        request = assets.search_next(request, response)
    assert (len(listed), pages) == (45, 3)
    one = assets.search(assetTypes="REPORT", title=next(iter(listed.values()))).execute()
    assert next(iter(listed.values())) in {a["title"] for a in one["assets"]}

    config = live.credentials(SLUG)["config"]
    source_id = make_source(live.factory, live.vault, type_=SLUG, config=config)
    with session_scope(live.factory) as session:
        store_tokens(session, live.vault, source_id, TokenSet.from_response(consent(live)))
    assert run_direct(live.deps(), source_id).status == "succeeded"
    stored = {row[0]: row[2] for row in assets_of(live.factory, source_id) if row[1] == "report"}
    assert stored == listed


def test_errors_are_the_librarys_exceptions(
    live: LiveSandbox, closing: contextlib.ExitStack
) -> None:
    tokens = consent(live)
    assets = datastudio(closing, live, tokens).assets()

    live.configure(SLUG, faults={"status429Burst": 1, "retryAfterS": 1})
    with pytest.raises(HttpError) as limited:
        assets.search(assetTypes="REPORT").execute()
    assert limited.value.status_code == 429
    assert json.loads(limited.value.content)["error"]["status"] == "RESOURCE_EXHAUSTED"

    with pytest.raises(HttpError) as unknown:
        assets.get(name="assets/no-such-asset").execute()  # a method the emulator lacks
    assert unknown.value.status_code == 404
    assert json.loads(unknown.value.content)["error"]["status"] == "NOT_FOUND"

    live.http.post(f"/_sandbox/{SLUG}/oauth/revoke-all").raise_for_status()
    with pytest.raises(RefreshError, match="invalid_grant"):
        assets.search(assetTypes="REPORT").execute()

"""grafana-client (the Grafana project's Python client) against the Grafana emulator.

It exercises: `health.check()` and `version` (`/api/frontend/settings`), the search pages it is
given a page number for (grafana-client has no paginator of its own: `page` is its hook),
`dashboard.get_dashboard`, `folder.get_folder` and `folder.get_all_folders`, and its exception
types for a bad token (401 `GrafanaUnauthorizedError`), a 429 (`GrafanaClientError`) and an
unknown route (404). What it reads equals the dashboards Inflow stores from the same server.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaUnauthorizedError

from inflow.sandbox.grafana import COMMIT, VERSION
from tests.conformance.conftest import LiveSandbox
from tests.sync.helpers import assets_of

SLUG = "grafana"
PAGE = 50


def sdk(closing: contextlib.ExitStack, base_url: str, token: str) -> GrafanaApi:
    """The client as its docs make one from a URL (the sub-path is its `url_path_prefix`)."""
    api = GrafanaApi.from_url(f"{base_url}/", credential=token, timeout=10)
    closing.callback(api.client.s.close)
    return api


def all_dashboards(api: GrafanaApi) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = []
    page = 1
    while True:
        batch = api.search.search_dashboards(type_="dash-db", limit=PAGE, page=page)
        hits += batch
        if len(batch) < PAGE:
            return hits
        page += 1


def test_the_sdk_reads_what_inflow_stores(live: LiveSandbox, closing: contextlib.ExitStack) -> None:
    live.configure(SLUG, volume={"dashboards": 120, "folders": 6, "subfolders": 2, "revision": 2})
    config = live.credentials(SLUG)["config"]
    api = sdk(closing, config["baseUrl"], config["apiKey"])

    assert api.version == VERSION
    assert api.health.check()["commit"] == COMMIT

    hits = all_dashboards(api)
    assert len(hits) == 120
    assert live.stats(SLUG)["byEndpoint"]["GET /api/search"] == 3  # 50 + 50 + 20

    source_id = live.sync(SLUG, config)
    rows = [row for row in assets_of(live.factory, source_id) if not row[7]]
    stored = {row[0]: row for row in rows if row[1] == "dashboard"}
    assert {h["uid"]: (h["title"], h.get("folderTitle")) for h in hits} == {
        uid: (row[2], row[5]) for uid, row in stored.items()
    }

    saved_again = next(h for h in hits if "(rev 2)" in h["title"])
    one = api.dashboard.get_dashboard(saved_again["uid"])
    assert one["dashboard"]["uid"] == saved_again["uid"]
    assert one["dashboard"]["title"] == stored[saved_again["uid"]][2]
    assert one["meta"]["version"] == one["dashboard"]["version"] == 3  # created, saved twice
    assert one["meta"]["updated"] > one["meta"]["created"]
    assert one["meta"]["url"] == saved_again["url"]

    in_folder = next(h for h in hits if h.get("folderUid"))
    folder = api.folder.get_folder(in_folder["folderUid"])
    assert (folder["uid"], folder["title"], folder["url"]) == (
        in_folder["folderUid"],
        in_folder["folderTitle"],
        in_folder["folderUrl"],
    )
    top = api.folder.get_all_folders()  # nested folders on: the top level
    assert len(top) == 6
    stored_folders = {row[0]: row[2] for row in rows if row[1] == "folder"}
    assert {f["uid"]: f["title"] for f in top}.items() <= stored_folders.items()
    assert len(stored_folders) == 6 + 2  # and the two subfolders


def test_errors_are_the_sdks_exceptions(live: LiveSandbox, closing: contextlib.ExitStack) -> None:
    config = live.credentials(SLUG)["config"]
    api = sdk(closing, config["baseUrl"], config["apiKey"])

    with pytest.raises(GrafanaUnauthorizedError) as bad:
        sdk(closing, config["baseUrl"], "glsa_not_a_token").search.search_dashboards(limit=1)
    assert bad.value.status_code == 401
    assert bad.value.response["messageId"] == "api-key.invalid"

    live.configure(SLUG, faults={"status429Burst": 1, "retryAfterS": 7})
    with pytest.raises(GrafanaClientError) as limited:
        api.search.search_dashboards(limit=1)
    assert limited.value.status_code == 429

    with pytest.raises(GrafanaClientError) as missing:
        api.dashboard.get_dashboard("no-such-uid")
    assert missing.value.status_code == 404
    assert missing.value.response == {"message": "Dashboard not found"}

    with pytest.raises(GrafanaClientError) as unknown:
        api.client.GET("/no/such/route")
    assert unknown.value.status_code == 404
    assert unknown.value.response == {"message": "Not found"}

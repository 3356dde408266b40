"""LinkedIn through the real API, database and OAuth dance against the in-process emulator:
consent, the connection test (role and scope fixes, refused tokens), a date-range fetch equal to
what the test computes itself from the raw statistics LinkedIn's API gives (engagement rate,
CTR and page views by the dossier's definitions), syncs that re-read a week and create nothing
new, an access token expiring mid-sync (refreshed; LinkedIn's refresh token kept, its TTL not
reset), revoked or expired refresh tokens asking to reconnect, a sunset or missing
LinkedIn-Version, the daily quota, a pasted access token; and the emulator's Rest.li encodings
and window rules."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from inflow.connectors.linkedin import CONNECTOR
from inflow.sandbox import create_app as create_sandbox
from inflow.sandbox.linkedin import (
    CLIENT_ID,
    ORG_URN,
    OTHER_ORG_ID,
    SOCIAL_ONLY_TOKEN,
    STATIC_TOKEN,
)
from inflow.storage.models import DataPoint, DataSource
from tests.providers.emulator import Emulator, location, relative
from tests.providers.moments import HeldClock, assert_between
from tests.sync.helpers import SANDBOX_HOST, health, person, points_of, sync_and_wait

SLUG = "linkedin"
URL = f"{SANDBOX_HOST}/{SLUG}"
REST = f"{URL}/rest"
CALLBACK = f"http://testserver/api/oauth/{SLUG}/callback"
TOKEN = "POST /oauth/v2/accessToken"
ENC_URN = quote(ORG_URN, safe="")
DAY_MS = 86_400_000
V2 = {"X_Restli_Protocol_Version": "2.0.0"}
Table = dict[tuple[str, str, str], float]
# The dossier's fields (§4.3-§4.5, §8) → the stored metric keys, written out here.
SHARE_FIELDS = {
    "impressionCount": "impressions",
    "uniqueImpressionsCount": "unique_impressions",
    "clickCount": "clicks",
    "likeCount": "likes",
    "commentCount": "comments",
    "shareCount": "shares",
}
VIEW_FIELDS = {
    "allPageViews": "page_views",
    "allDesktopPageViews": "page_views_desktop",
    "allMobilePageViews": "page_views_mobile",
}


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def sandbox(clock: HeldClock) -> FastAPI:
    return create_sandbox(clock=clock)


class LinkedIn(Emulator):
    """The emulator itself: control routes, consent page and raw API calls."""

    slug = SLUG

    def statistics(self, finder: str, first: date, last: date) -> dict[date, dict[str, Any]]:
        """A time-bound DAY statistics finder's elements for ``first``..``last``, by day: its
        pages read with ``start``/``count`` until ``paging.total``."""
        key = "organization" if finder == "organizationPageStatistics" else "organizationalEntity"
        window = interval(first, last + timedelta(days=1))
        by_day, start = {}, 0
        while True:
            target = f"/{finder}?q={key}&{key}={ENC_URN}&timeIntervals={window}"
            response = self.get(f"{target}&start={start}&count=50", **V2)
            assert response.status_code == 200, response.text
            page = response.json()
            for element in page["elements"]:
                begin = element["timeRange"]["start"]
                assert element["timeRange"]["end"] - begin == DAY_MS
                by_day[date(1970, 1, 1) + timedelta(days=begin // DAY_MS)] = element
            start += len(page["elements"])
            if not page["elements"] or start >= page["paging"]["total"]:
                return by_day

    def oracle(self, first: date, last: date, now: date) -> Table:
        """What Inflow should store for ``first``..``last`` as the API shows it now, computed
        from the raw statistics: a day a finder leaves out, and a field an element leaves out,
        is no point (LinkedIn documents omitted days as zeros, but a zero it did not give is
        never stored: the day may be one not computed yet);
        engagement rate = (clicks + likes + comments + shares) / impressions and CTR = clicks /
        impressions, only on days with impressions; page views = allPageViews; the follower
        total (networkSizes) is the value of today (``now``, the sandbox's UTC day)."""
        last = min(last, now)
        follows = self.statistics("organizationalEntityFollowerStatistics", first, last)
        shares = self.statistics("organizationalEntityShareStatistics", first, last)
        pages = self.statistics("organizationPageStatistics", first, last)
        out: Table = {}
        day = first
        while day <= last:
            at = day.isoformat()
            gains = follows.get(day, {}).get("followerGains", {})
            for source in ("organic", "paid"):
                if (value := gains.get(f"{source}FollowerGain")) is not None:
                    out[("followers_gained", at, f"source={source}")] = float(value)
            stats = shares.get(day, {}).get("totalShareStatistics", {})
            counts = {m: float(stats[f]) for f, m in SHARE_FIELDS.items() if f in stats}
            out.update({(metric, at, ""): value for metric, value in counts.items()})
            if counts.get("impressions", 0) > 0:
                acts = sum(counts[m] for m in ("clicks", "likes", "comments", "shares"))
                out[("engagement_rate", at, "")] = acts / counts["impressions"]
                out[("ctr", at, "")] = counts["clicks"] / counts["impressions"]
            views = pages.get(day, {}).get("totalPageStatistics", {}).get("views", {})
            for field, metric in VIEW_FIELDS.items():
                if field in views:
                    out[(metric, at, "")] = float(views[field]["pageViews"])
            day += timedelta(days=1)
        if first <= now <= last:
            size = self.get(f"/networkSizes/{ENC_URN}?edgeType=COMPANY_FOLLOWED_BY_MEMBER", **V2)
            assert size.status_code == 200, size.text
            out[("followers_total", now.isoformat(), "")] = float(size.json()["firstDegreeSize"])
        return out

    def revoke_all(self) -> None:
        self._ok(self.http.post(f"/_sandbox/{SLUG}/oauth/revoke-all"))

    def consent(self, authorize_url: str) -> str:
        assert authorize_url.startswith(f"{URL}/oauth/v2/authorization?"), authorize_url
        return location(self.http.get(relative(authorize_url), follow_redirects=False))

    def get(self, target: str, token: str = STATIC_TOKEN, **headers: str) -> httpx.Response:
        """A raw call with the query string exactly as written (no client re-encoding)."""
        sent = {"Authorization": f"Bearer {token}", "LinkedIn-Version": "202609"}
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        sent = {k: v for k, v in sent.items() if v}
        response: httpx.Response = self.http.get(f"/{SLUG}/rest{target}", headers=sent)
        return response


@pytest.fixture
def li(sandbox: FastAPI) -> Iterator[LinkedIn]:
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield LinkedIn(http)


def new_source(client, headers, config: dict[str, Any]):
    body = {"name": "LinkedIn Page", "type": SLUG, "config": config}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def oauth_source(client, factory, li) -> tuple[dict[str, str], dict[str, Any]]:
    """A source made with the sandbox's OAuth client, not yet connected."""
    _, headers = person(factory)
    return headers, new_source(client, headers, li.config())


@pytest.fixture
def static_source(client, factory) -> tuple[dict[str, str], dict[str, Any]]:
    """A source with a pasted access token (no OAuth client at all)."""
    _, headers = person(factory)
    config = {"organizationId": "2414183", "accessToken": STATIC_TOKEN, "baseUrl": REST}
    return headers, new_source(client, headers, config)


def connect(client, li: LinkedIn, headers: dict[str, str], source_id: str):
    """Inflow's authorize → LinkedIn's consent → Inflow's callback; the authorize query."""
    start = client.get(
        f"/api/oauth/{SLUG}/authorize",
        params={"sourceId": source_id},
        headers=headers,
        follow_redirects=False,
    )
    url = location(start)
    callback = li.consent(url)
    assert callback.startswith(CALLBACK + "?"), callback
    done = client.get(relative(callback), follow_redirects=False)
    assert location(done) == f"/sources/{source_id}?oauth=connected"
    return parse_qs(urlsplit(url).query)


def stored_tokens(app, factory, source_id: str):
    with factory() as session:
        row = session.get(DataSource, uuid.UUID(source_id))
        assert row is not None
        assert row.tokens is not None
        return app.state.vault.decrypt(row.tokens)


def run_test(client, headers, source_id: str):
    """``POST /api/data-sources/{id}/test``."""
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def version_in(days: int) -> str:
    """A LinkedIn-Version released by the time the sandbox clock has moved on `days`."""
    moment = datetime.now(UTC) + timedelta(days=days)
    return f"{moment.year}{moment.month:02d}"


def fetch(client, headers, source_id: str, start: date, end: date):
    body = {"startDate": start.isoformat(), "endDate": end.isoformat()}
    response = client.post(f"/api/data-sources/{source_id}/fetch", headers=headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def today() -> date:
    return datetime.now(UTC).date()


def shown(li: LinkedIn, clock: HeldClock, moment: float, first: date, last: date) -> Table:
    """The oracle as LinkedIn's API showed it at ``moment`` (the sandbox's clock held there).
    The member's daily quota is lifted for the reads: they are the test's, not Inflow's."""
    li.configure(volume={"memberDailyLimit": 0, "appDailyLimit": 0})
    with clock.at(moment):
        return li.oracle(first, last, datetime.fromtimestamp(clock(), UTC).date())


def fetched(points: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for p in points:
        dims = "&".join(f"{k}={v}" for k, v in sorted(p["dimensions"].items()))
        key = (p["metric"], p["periodStart"][:10], dims)
        assert key not in out, f"{key} twice"
        out[key] = p["value"]
    return out


# ---------------------------------------------------------------- consent and the test


def test_consent_flow_then_the_connection_test_passes(app, client, factory, li, oauth_source):
    headers, source = oauth_source

    query = connect(client, li, headers, source["id"])

    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == ["rw_organization_admin"]
    assert query["redirect_uri"] == [CALLBACK]
    tokens = stored_tokens(app, factory, source["id"])
    assert tokens["expires_at"] - time.time() == pytest.approx(60 * 86400, abs=60)
    assert tokens["refresh_token"]
    assert tokens["extra"]["refresh_token_expires_in"] == pytest.approx(365 * 86400, abs=60)
    assert tokens["scope"] == "rw_organization_admin"  # comma-separated, as LinkedIn sends it
    result = run_test(client, headers, source["id"])
    assert result["success"] is True, result
    assert [c["name"] for c in result["checks"]] == ["access token", "page role"]
    assert "Inflow Sandbox" in result["checks"][1]["message"]
    assert health(client, headers, source["id"])["status"] == "ok"


def test_refused_token_asks_to_reconnect(client, factory):
    _, headers = person(factory)
    config = {"organizationId": ORG_URN, "accessToken": "AQV_made_up", "baseUrl": REST}
    source = new_source(client, headers, config)

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert "Invalid access token" in result["message"]
    state = health(client, headers, source["id"])
    assert state["status"] == "needs_reauth", state


def test_missing_scope_names_the_permission_to_grant(client, factory):
    _, headers = person(factory)
    config = {"organizationId": ORG_URN, "accessToken": SOCIAL_ONLY_TOKEN, "baseUrl": REST}
    source = new_source(client, headers, config)

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert "rw_organization_admin" in result["message"]
    assert "ADMINISTRATOR" in result["message"]
    assert health(client, headers, source["id"])["status"] == "failing"  # not a reconnect


def test_a_page_the_member_does_not_administer_fails_with_the_role_to_grant(client, factory):
    _, headers = person(factory)
    config = {"organizationId": str(OTHER_ORG_ID), "accessToken": STATIC_TOKEN, "baseUrl": REST}
    source = new_source(client, headers, config)

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [
        ("access token", True),
        ("page role", False),
    ]
    assert f"urn:li:organization:{OTHER_ORG_ID}" in result["message"]
    assert "ADMINISTRATOR" in result["message"]
    assert health(client, headers, source["id"])["status"] == "failing"


# ---------------------------------------------------------------- data


def test_fetch_gives_every_metric_as_the_api_shows_it(client, factory, li, clock, oauth_source):
    headers, source = oauth_source
    connect(client, li, headers, source["id"])
    began = time.time()
    first, last = today() - timedelta(days=20), today()

    result = fetch(client, headers, source["id"], first, last)

    ended = time.time()
    assert result["success"] is True, result
    assert li.stats()["byEndpoint"]["GET /rest/organizationalEntityShareStatistics"] == 1
    before = shown(li, clock, began, first, last)
    after = shown(li, clock, ended, first, last)
    assert_between(fetched(result["dataPoints"]), before, after)
    metrics = {p["metric"] for p in result["dataPoints"]}
    assert metrics == {m.key for m in CONNECTOR.metrics}
    day_began = datetime.fromtimestamp(began, UTC).date()
    day_ended = datetime.fromtimestamp(ended, UTC).date()
    for p in result["dataPoints"]:
        day = date.fromisoformat(p["periodStart"][:10])
        assert p["periodStart"].endswith(("T00:00:00Z", "T00:00:00+00:00")), p  # UTC days
        # late data restated: the last two days are not complete (as of when it was read)
        if day < day_began - timedelta(days=1):
            assert p["complete"] is True, p
        if day >= day_ended - timedelta(days=1):
            assert p["complete"] is False, p


def test_sync_twice_creates_nothing_new_and_stays_in_the_daily_budget(
    client, factory, li, clock, oauth_source
):
    headers, source = oauth_source
    connect(client, li, headers, source["id"])
    li.configure(volume={"memberDailyLimit": 17})  # what two syncs need: 13 + 4
    began = time.time()

    first = sync_and_wait(client, headers, source["id"])
    second = sync_and_wait(client, headers, source["id"])

    ended = time.time()
    assert first["status"] == "succeeded", first
    assert first["counts"]["created"] > 365 * 10  # a year of days, 5 to 13 values each
    assert second["status"] == "succeeded", second
    if began // 86400 == ended // 86400:  # (a new day has new points and restates the last)
        assert second["counts"]["created"] == 0, second
        assert second["counts"]["updated"] == 0, second
    stats = li.stats()
    api_calls = sum(n for name, n in stats["byEndpoint"].items() if " /rest/" in name)
    # a year is four pages of 100 days a finder (first sync), a week one page (second sync)
    assert api_calls == (1 + 3 * 4) + (1 + 3)
    assert stats["byEndpoint"]["GET /rest/organizationalEntityShareStatistics"] == 4 + 1
    stored = {
        (m, start[:10], key): value for m, start, key, value in points_of(factory, source["id"])
    }
    # a year back from the day of each read (the first sync's initial window)
    year = [datetime.fromtimestamp(t, UTC).date() - timedelta(days=365) for t in (began, ended)]
    before = shown(li, clock, began, year[0], today())
    after = shown(li, clock, ended, year[1], today())
    assert_between(stored, before, after)
    with factory() as session:
        rates = session.execute(
            select(DataPoint.metric, DataPoint.weight).where(
                DataPoint.metric.in_(("engagement_rate", "ctr"))
            )
        ).all()
    assert rates
    assert all(weight is not None and weight > 0 for _, weight in rates)  # weighted, not summed


def test_aggregation_rules():
    rule = {m.key: (m.aggregation, m.weight_metric) for m in CONNECTOR.metrics}
    assert rule["followers_total"] == ("last", None)
    assert rule["engagement_rate"] == ("ratio", "impressions")
    assert rule["ctr"] == ("ratio", "impressions")
    assert rule["unique_impressions"] == ("max", None)
    counts = ("followers_gained", "impressions", "clicks", "likes", "comments", "shares")
    assert all(rule[k] == ("sum", None) for k in (*counts, "page_views"))
    assert CONNECTOR.history == timedelta(days=365)


def test_static_access_token_mode(client, factory, li, static_source):
    headers, source = static_source

    result = run_test(client, headers, source["id"])
    data = fetch(client, headers, source["id"], today() - timedelta(days=3), today())
    run = sync_and_wait(client, headers, source["id"])

    assert result["success"] is True, result
    assert data["success"] is True, data
    assert run["status"] == "succeeded", run
    assert run["counts"]["created"] > 0
    assert TOKEN not in li.stats()["byEndpoint"]  # nothing to refresh
    assert health(client, headers, source["id"])["status"] == "ok"


# ---------------------------------------------------------------- tokens


def test_an_expired_access_token_is_refreshed_and_the_refresh_token_kept(
    app, client, factory, li, clock
):
    _, headers = person(factory)
    source = new_source(client, headers, {**li.config(), "apiVersion": version_in(200)})
    connect(client, li, headers, source["id"])
    before = stored_tokens(app, factory, source["id"])
    clock.days = 200  # the 60-day access token has expired; the refresh token lives on

    result = run_test(client, headers, source["id"])

    assert result["success"] is True, result
    stats = li.stats()
    assert stats["byStatus"]["401"] >= 1  # EXPIRED_ACCESS_TOKEN ...
    assert stats["byEndpoint"][TOKEN] == 2  # ... so the client refreshed (after the code)
    after = stored_tokens(app, factory, source["id"])
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] == before["refresh_token"]  # LinkedIn does not rotate it
    left = after["extra"]["refresh_token_expires_in"]
    assert left == pytest.approx(165 * 86400, abs=120)  # its TTL is not reset by a refresh


def test_refresh_token_past_its_year_needs_reauth(client, factory, li, clock):
    _, headers = person(factory)
    source = new_source(client, headers, {**li.config(), "apiVersion": version_in(366)})
    connect(client, li, headers, source["id"])
    clock.days = 366  # refreshes never extended the refresh token's life

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert "invalid_grant" in result["message"]
    assert health(client, headers, source["id"])["status"] == "needs_reauth"


def test_token_expiring_during_a_sync_is_refreshed(client, factory, li, oauth_source):
    headers, source = oauth_source
    connect(client, li, headers, source["id"])
    time.sleep(1.05)
    li.configure(faults={"tokenTtlS": 1, "latencyMs": 300})  # the stored token is now expired

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    stats = li.stats()
    assert stats["byStatus"]["401"] >= 1
    assert stats["byEndpoint"][TOKEN] >= 2


def test_revoked_refresh_token_fails_the_sync_and_asks_to_reconnect(
    client, factory, li, oauth_source
):
    headers, source = oauth_source
    connect(client, li, headers, source["id"])
    li.revoke_all()  # the member withdrew the app's access

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert "invalid_grant" in run["error"]["message"]
    state = health(client, headers, source["id"])
    assert state["status"] == "needs_reauth"


# ---------------------------------------------------------------- versions and limits


def test_the_emulator_refuses_a_missing_or_sunset_version(li):
    missing = li.get("/organizationAcls?q=roleAssignee", LinkedIn_Version="")
    sunset = li.get("/organizationAcls?q=roleAssignee", LinkedIn_Version="202401")
    unknown = li.get("/organizationAcls?q=roleAssignee", LinkedIn_Version="209912")

    assert missing.status_code == 400
    assert missing.json() == {
        "status": 400,
        "code": "VERSION_MISSING",
        "message": "A version must be present. Please specify a version by adding the "
        "LinkedIn-Version header.",
    }
    assert sunset.status_code == 426
    assert sunset.json() == {
        "status": 426,
        "code": "NONEXISTENT_VERSION",
        "message": "Requested version 20240101 is not active",
    }
    assert unknown.status_code == 426


def test_a_sunset_version_fails_with_the_setting_to_change(client, factory, li):
    _, headers = person(factory)
    config = {
        "organizationId": ORG_URN,
        "accessToken": STATIC_TOKEN,
        "baseUrl": REST,
        "apiVersion": "202401",
    }
    source = new_source(client, headers, config)

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert "Requested version 20240101 is not active" in result["message"]
    assert "apiVersion" in result["message"]
    assert li.stats()["byStatus"] == {"426": 1}  # not retried


def test_the_daily_quota_is_a_429_and_nothing_more_is_sent_that_day(
    client, factory, li, static_source
):
    headers, source = static_source
    li.configure(volume={"memberDailyLimit": 2})
    assert li.get("/organizations/2414183").status_code == 200
    assert li.get("/organizations/2414183").status_code == 200

    refused = li.get("/organizations/2414183")
    run = sync_and_wait(client, headers, source["id"])
    sent = li.stats()["total"]
    again = sync_and_wait(client, headers, source["id"])

    assert refused.status_code == 429
    assert "retry-after" not in refused.headers
    assert refused.json()["message"] == (
        "Resource level throttle limit for calls to this resource is reached."
    )
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "RateLimitedError"
    assert "00:00 UTC" in run["error"]["message"]
    # Not retried, waiting for midnight is futile; unless midnight was seconds away: then the
    # run waited for it and its retries were sent on the new day.
    retried = [e for e in run["timeline"]["recent"] if e["attempt"] > 1]
    assert li.stats()["byStatus"]["429"] == 2 + len(retried)
    first_day = datetime.fromisoformat(run["timeline"]["recent"][0]["at"]).date()
    assert all(datetime.fromisoformat(e["at"]).date() > first_day for e in retried), retried
    assert again["status"] == "failed", again
    assert li.stats()["total"] == sent  # the day's calls are spent: nothing was sent


# ---------------------------------------------------------------- Rest.li encodings


def interval(start: date, end: date) -> str:
    def ms(day: date) -> int:
        return (day - date(1970, 1, 1)).days * DAY_MS

    return f"(timeRange:(start:{ms(start)},end:{ms(end)}),timeGranularityType:DAY)"


SHARES = "/organizationalEntityShareStatistics?q=organizationalEntity"


def test_restli_2_parameters_must_keep_their_structure_literal(li):
    week = interval(today() - timedelta(days=9), today() - timedelta(days=2))
    v2 = {"X_Restli_Protocol_Version": "2.0.0"}
    good = li.get(f"{SHARES}&organizationalEntity={ENC_URN}&timeIntervals={week}", **v2)
    encoded = f"{SHARES}&organizationalEntity={ENC_URN}&timeIntervals={quote(week, safe='')}"
    encoded_reply = li.get(encoded, **v2)
    literal_urn = li.get(f"{SHARES}&organizationalEntity={ORG_URN}&timeIntervals={week}", **v2)
    no_header = li.get(f"{SHARES}&organizationalEntity={ENC_URN}&timeIntervals={week}")

    assert good.status_code == 200, good.text
    elements = good.json()["elements"]
    assert len(elements) <= 7
    assert all(e["organizationalEntity"] == ORG_URN for e in elements)
    assert elements[0]["timeRange"]["end"] - elements[0]["timeRange"]["start"] == DAY_MS
    assert encoded_reply.status_code == 400
    assert encoded_reply.json() == {
        "status": 400,
        "message": "Parameter 'timeIntervals' is invalid",
    }
    assert literal_urn.status_code == 400
    assert no_header.status_code == 400  # the 2.0 form without the protocol header


def test_restli_1_dotted_parameters_give_the_same_elements(li):
    first, end = today() - timedelta(days=9), today() - timedelta(days=2)
    v2 = li.get(
        f"{SHARES}&organizationalEntity={ENC_URN}&timeIntervals={interval(first, end)}",
        X_Restli_Protocol_Version="2.0.0",
    )
    start_ms = (first - date(1970, 1, 1)).days * DAY_MS
    end_ms = (end - date(1970, 1, 1)).days * DAY_MS
    dotted = li.get(
        f"{SHARES}&organizationalEntity={ENC_URN}&timeIntervals.timeGranularityType=DAY"
        f"&timeIntervals.timeRange.start={start_ms}&timeIntervals.timeRange.end={end_ms}"
    )

    assert dotted.status_code == 200, dotted.text
    assert dotted.json() == v2.json()


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        pytest.param(20 * DAY_MS + 3_600_000, 22 * DAY_MS, "00:00 UTC", id="not_midnight"),
        pytest.param(20 * DAY_MS, 20 * DAY_MS, "before end", id="empty"),
        pytest.param(0, 15 * 31 * DAY_MS, "less than 14 months apart", id="over_14_months"),
        pytest.param(0, 30 * DAY_MS, "last 12 months", id="too_old"),
    ],
)
def test_time_windows_the_api_refuses(li, start, end, reason):
    base = (today() - date(1970, 1, 1)).days * DAY_MS - 500 * DAY_MS
    if reason in ("00:00 UTC", "before end"):
        base = (today() - date(1970, 1, 1)).days * DAY_MS - 30 * DAY_MS
    window = f"(timeRange:(start:{base + start},end:{base + end}),timeGranularityType:DAY)"

    response = li.get(
        f"{SHARES}&organizationalEntity={ENC_URN}&timeIntervals={window}",
        X_Restli_Protocol_Version="2.0.0",
    )

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["message"].startswith("Invalid timeIntervals parameter")
    assert reason in body["message"]


def test_config_validation(client, factory):
    _, headers = person(factory)

    def check(config: dict[str, Any]):
        response = client.post(
            f"/api/integrations/{SLUG}/validate", headers=headers, json={"config": config}
        )
        assert response.status_code == 200, response.text
        return response.json()

    assert check({"organizationId": "2414183", "accessToken": "x"})["valid"] is True
    assert check({"organizationId": ORG_URN, "clientId": "a", "clientSecret": "b"})["valid"]
    bad_urn = check({"organizationId": "urn:li:person:1", "accessToken": "x"})
    assert bad_urn["valid"] is False
    assert bad_urn["errors"][0]["field"] == "config.organizationId", bad_urn
    assert check({"organizationId": ORG_URN})["valid"] is False  # no way in
    assert check({"organizationId": ORG_URN, "accessToken": "x", "apiVersion": "2026-09"})["errors"]
    schema = client.get("/api/integrations/types", headers=headers).json()
    linkedin = next(t for t in schema if t["type"] == SLUG)
    assert linkedin["category"] == "social"
    props = linkedin["configSchema"]["properties"]
    assert props["accessToken"]["writeOnly"] is True
    assert props["clientSecret"]["writeOnly"] is True
    assert props["baseUrl"]["default"] == "https://api.linkedin.com/rest"
    assert props["authUrl"]["default"] == "https://www.linkedin.com/"


# ---------------------------------------------------------------- payloads as the dossier has them


def shape(value: Any) -> Any:
    """Keys and JSON types of a payload, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return (
        "number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else type(value).__name__
    )


ELEMENT_RANGE = {"start": "number", "end": "number"}
# the dossier's envelope, with `total` (which LinkedIn sometimes leaves out): a week fits the
# default count of 10, so no `next` link
PAGING = {"count": "number", "start": "number", "total": "number", "links": []}


def test_payloads_have_the_dossiers_shapes(li):
    v2 = {"X_Restli_Protocol_Version": "2.0.0"}
    week = interval(today() - timedelta(days=9), today() - timedelta(days=2))
    org = f"organizationalEntity={ENC_URN}&timeIntervals={week}"
    followers = li.get(
        f"/organizationalEntityFollowerStatistics?q=organizationalEntity&{org}", **v2
    )
    shares = li.get(f"{SHARES}&{org}", **v2)
    pages = li.get(
        f"/organizationPageStatistics?q=organization&organization={ENC_URN}&timeIntervals={week}",
        **v2,
    )
    size = li.get(f"/networkSizes/{ENC_URN}?edgeType=COMPANY_FOLLOWED_BY_MEMBER", **v2)
    acls = li.get("/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED", **v2)

    assert shape(followers.json()) == {
        "paging": PAGING,
        "elements": [
            {
                "organizationalEntity": "str",
                "timeRange": ELEMENT_RANGE,
                "followerGains": {"organicFollowerGain": "number", "paidFollowerGain": "number"},
            }
        ],
    }
    share_stats = {
        "uniqueImpressionsCount": "number",
        "impressionCount": "number",
        "clickCount": "number",
        "likeCount": "number",
        "commentCount": "number",
        "shareCount": "number",
        "engagement": "number",
    }
    assert shape(shares.json()) == {
        "paging": PAGING,
        "elements": [
            {
                "organizationalEntity": "str",
                "timeRange": ELEMENT_RANGE,
                "totalShareStatistics": share_stats,
            }
        ],
    }
    views = pages.json()["elements"][0]["totalPageStatistics"]["views"]
    assert pages.json()["elements"][0]["organization"] == ORG_URN  # the finder's own key
    assert {"allPageViews", "allDesktopPageViews", "allMobilePageViews"} <= set(views)
    assert all(v == {"pageViews": "number"} for v in shape(views).values())
    assert shape(size.json()) == {"firstDegreeSize": "number"}
    assert shape(acls.json()["elements"]) == [
        {"organization": "str", "roleAssignee": "str", "role": "str", "state": "str"}
    ]
    assert acls.json()["elements"][0] == {
        "organization": ORG_URN,
        "roleAssignee": acls.json()["elements"][0]["roleAssignee"],
        "role": "ADMINISTRATOR",
        "state": "APPROVED",
    }


def test_statistics_page_by_start_and_count_until_the_total(li):
    year = interval(today() - timedelta(days=300), today() - timedelta(days=2))
    target = (
        f"/organizationPageStatistics?q=organization&organization={ENC_URN}&timeIntervals={year}"
    )
    default = li.get(target, **V2).json()
    pages = [li.get(f"{target}&start={start}&count=100", **V2).json() for start in (0, 100, 200)]
    too_many = li.get(f"{target}&count=101", **V2)

    assert len(default["elements"]) == 10  # LinkedIn's default count
    assert default["paging"]["total"] == 298  # end exclusive
    assert [len(p["elements"]) for p in pages] == [100, 100, 98]
    assert [p["paging"]["start"] for p in pages] == [0, 100, 200]
    assert [len(p["paging"]["links"]) for p in pages] == [1, 1, 0]  # a `next` link until the end
    starts = [e["timeRange"]["start"] for p in pages for e in p["elements"]]
    assert starts == sorted(set(starts))  # each day once, in order
    assert too_many.status_code == 400


def test_a_field_or_day_linkedin_leaves_out_is_no_point():
    # the connector's readers on elements as LinkedIn may send them (dossier §4.3-§4.5)
    from inflow.connectors.linkedin import follower_gains, page_views, share_statistics

    day = datetime(2026, 6, 1, tzinfo=UTC)
    stats = {"impressionCount": 200, "clickCount": 10, "likeCount": 3, "engagement": 0.07}
    shares = list(share_statistics({"totalShareStatistics": stats}, day))
    gains = list(follower_gains({"followerGains": {"organicFollowerGain": 4}}, day))
    views = list(page_views({"totalPageStatistics": {"views": {"allPageViews": {}}}}, day))

    assert {p.metric: p.value for p in shares} == {
        "impressions": 200,
        "clicks": 10,
        "likes": 3,
        "engagement_rate": 0.07,
        "ctr": 0.05,
    }  # no unique impressions, comments or shares: LinkedIn gave none
    assert [(p.dimensions, p.value) for p in gains] == [({"source": "organic"}, 4)]
    assert views == []


def test_token_endpoint_speaks_linkedin(li, clock):
    config = li.config()
    redirect = "https://app.example.com/callback"
    authorize = li.http.get(
        f"/{SLUG}/oauth/v2/authorization",
        params={
            "response_type": "code",
            "client_id": config["clientId"],
            "redirect_uri": redirect,
            "state": "xyz",
            "scope": "rw_organization_admin r_organization_social",
        },
        follow_redirects=False,
    )
    code = parse_qs(urlsplit(location(authorize)).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": config["clientId"],
        "client_secret": config["clientSecret"],
        "redirect_uri": redirect,
    }

    issued = li.http.post(f"/{SLUG}/oauth/v2/accessToken", data=form)
    clock.days = 59
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": issued.json()["refresh_token"],
        "client_id": config["clientId"],
        "client_secret": config["clientSecret"],
    }
    refreshed = li.http.post(f"/{SLUG}/oauth/v2/accessToken", data=refresh)
    reused = li.http.post(f"/{SLUG}/oauth/v2/accessToken", data=form)  # codes are single-use

    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert set(body) == {
        "access_token",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_in",
        "scope",
    }
    assert body["expires_in"] == 5_184_000
    assert body["refresh_token_expires_in"] == 31_536_000
    assert body["scope"] == "rw_organization_admin,r_organization_social"
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] == body["refresh_token"]
    assert refreshed.json()["expires_in"] == 5_184_000
    left = refreshed.json()["refresh_token_expires_in"]
    assert left == pytest.approx(306 * 86400, abs=5)  # day 59: 306 days left, not 365

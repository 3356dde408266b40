"""RingCentral (the `calling` type) through the real API and database against the in-process
emulator: the connection test (JWT, a refused JWT, a user without FullCompanyCallLog), the OAuth
consent flow with rotating refresh tokens and a revoked session, 100,000 calls over 90 days
whose daily metrics equal what the test computes itself from the raw call log, late changes
corrected by the next sync, a third sync that changes nothing, the Heavy group's 10 requests a
window never exceeded, 429s waited out, and webhooks (the validation handshake echoed, events
with the right Verification-Token read their day again, forged, stale and replayed ones
refused)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from limits import parse as parse_limit

from inflow.connectors import registry
from inflow.connectors.ringcentral import CONNECTOR
from inflow.connectors.spec import RateLimit
from inflow.sandbox import create_app as create_sandbox
from inflow.sandbox.ringcentral import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAUTH,
    USER_CLIENT_ID,
    USER_CLIENT_SECRET,
    VERIFICATION_TOKEN,
)
from tests.providers import calling
from tests.providers.calling import Table, assert_same, days_of, run_day, stored
from tests.providers.emulator import Emulator, location, relative
from tests.sync.helpers import SANDBOX_HOST, health, person, sync_and_wait

SLUG = "ringcentral"
URL = f"{SANDBOX_HOST}/{SLUG}"
CALL_LOG = f"/{SLUG}/restapi/v1.0/account/~/call-log"
TOKEN = "POST /restapi/oauth/token"
HEAVY_READS = "GET /restapi/v1.0/account/{account_id}/call-log"
CALLBACK = f"http://testserver/api/oauth/{SLUG}/callback"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# RingCentral's results, as this test reads them (compared exactly, as listed by the API).
ANSWERED = ("Accepted", "Call connected")
MISSED = (
    "Missed",
    "Voicemail",
    "Sent to Voicemail",
    "No Answer",
    "Busy",
    "Rejected",
    "Declined",
    "Abandoned",
    "Hang Up",
    "Blocked",
    "Callback requested",
    "Answered Not Accepted",
)


class Clock:
    """The sandbox clock, frozen when the test starts (the raw log and the syncs see the same
    calls). Rate windows run on real time whatever it says."""

    def __init__(self) -> None:
        self.at = time.time()
        self.running = False  # True: the wall clock (Retry-After bookkeeping needs it)

    def __call__(self) -> float:
        return time.time() if self.running else self.at


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> FastAPI:
    return create_sandbox(clock=clock)


WINDOW_S = 1  # the emulator's rate window in the tests that compress it (`rateWindowS`)
HEAVY = (10, 60)  # RingCentral's Heavy group: 10 requests a user a 60 s window (dossier §5)


def compress(limit: RateLimit, factor: float) -> RateLimit:
    """A connector's declared budget with every window ``factor`` times shorter."""
    windows = []
    for window in limit.windows:
        item = parse_limit(window)
        seconds = item.get_expiry() / factor
        assert seconds == int(seconds) >= 1, f"{window} does not compress by {factor}"
        windows.append(f"{item.amount} per {int(seconds)} second")
    return RateLimit.of(*windows, concurrent=limit.concurrent)


@pytest.fixture
def compressed(monkeypatch: pytest.MonkeyPatch, rc: RingCentral) -> None:
    """Time compressed on both sides by the same factor: the emulator's rate windows (60 s,
    as RingCentral's) shortened to ``WINDOW_S``, and the connector's own declared budget
    (``CONNECTOR.rate_limit``, whatever it says) with its windows shortened alike. A budget
    the real Heavy group would refuse is refused here too."""
    real = rc.volume()["rateWindowS"]
    rc.configure(volume={"rateWindowS": WINDOW_S})
    fast = replace(CONNECTOR, rate_limit=compress(CONNECTOR.rate_limit, real / WINDOW_S))
    monkeypatch.setitem(registry(), SLUG, fast)


def test_the_declared_budget_stays_inside_the_heavy_group():
    # The emulator's counts are held to the declared budget (`compressed`); the budget itself
    # must not exceed what RingCentral documents, or the real Heavy group would answer 429s.
    amount, window_s = HEAVY
    windows = [parse_limit(w) for w in CONNECTOR.rate_limit.windows]
    assert windows, "the connector declares no budget for the call log"
    assert min(w.amount * window_s / w.get_expiry() for w in windows) <= amount, windows


class RingCentral(Emulator):
    """The emulator: control routes, consent page and its raw call log."""

    slug = SLUG

    def volume(self) -> dict[str, Any]:
        volume: dict[str, Any] = self._ok(self.http.get(f"/_sandbox/{SLUG}/config"))["volume"]
        return volume

    def usage(self) -> dict[str, Any]:
        groups: dict[str, Any] = self._ok(self.http.get(f"/{SLUG}/_sandbox/usage"))["groups"]
        return groups

    def webhook(self, **body: Any) -> Any:
        return self._ok(self.http.post(f"/{SLUG}/_sandbox/webhook", json=body))

    def consent(self, authorize_url: str) -> str:
        assert authorize_url.startswith(f"{URL}/restapi/oauth/authorize?"), authorize_url
        return location(self.http.get(relative(authorize_url), follow_redirects=False))

    def token(self, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
        form = {"grant_type": JWT_GRANT, "assertion": OAUTH.jwt_credential(client_id)}
        body = self._ok(
            self.http.post(f"/{SLUG}/restapi/oauth/token", data=form, auth=(client_id, secret))
        )
        token: str = body["access_token"]
        return token

    def log(self, first: date) -> list[dict[str, Any]]:
        """Every voice record from ``first`` on, paged as a client pages it (navigation.nextPage);
        read with the rate limit off, then back to what it was."""
        window = self._ok(self.http.get(f"/_sandbox/{SLUG}/config"))["volume"]["rateWindowS"]
        self.configure(volume={"rateWindowS": 0})
        headers = {"Authorization": f"Bearer {self.token()}"}
        params = {"dateFrom": f"{first.isoformat()}T00:00:00.000Z", "type": "Voice"}
        body = self._ok(
            self.http.get(CALL_LOG, params={**params, "perPage": 1000}, headers=headers)
        )
        rows: list[dict[str, Any]] = body["records"]
        while "nextPage" in body["navigation"]:
            body = self._ok(self.http.get(body["navigation"]["nextPage"]["uri"], headers=headers))
            rows += body["records"]
        self.configure(volume={"rateWindowS": window})
        return rows


@pytest.fixture
def rc(sandbox: FastAPI) -> Iterator[RingCentral]:
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield RingCentral(http)


def new_source(client: Any, headers: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "RingCentral", "type": "calling", "config": config}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    return source


def run_test(client: Any, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def connect(client: Any, rc: RingCentral, headers: dict[str, str], source_id: str) -> None:
    """Inflow's authorize → RingCentral's consent → Inflow's callback."""
    start = client.get(
        f"/api/oauth/{SLUG}/authorize",
        params={"sourceId": source_id},
        headers=headers,
        follow_redirects=False,
    )
    callback = rc.consent(location(start))
    assert callback.startswith(CALLBACK + "?"), callback
    assert "code" in parse_qs(urlsplit(callback).query)
    done = client.get(relative(callback), follow_redirects=False)
    assert location(done) == f"/?oauth=connected&sourceId={source_id}"


# ---------------------------------------------------------------- the oracle


def day_of(row: dict[str, Any]) -> str:
    started = datetime.fromisoformat(row["startTime"].replace("Z", "+00:00"))
    return started.astimezone(UTC).date().isoformat()


def expected(rows: list[dict[str, Any]], first: date, last: date, zone: tzinfo = UTC) -> Table:
    """The daily metrics of ``first``..``last`` from raw voice records: answered = `Accepted`
    or `Call connected`; missed = an inbound call with a missed result; talk = the duration of
    answered calls."""
    for row in rows:
        assert row["type"] == "Voice"
        assert not row.get("deleted")
    calls = (
        (
            datetime.fromisoformat(row["startTime"].replace("Z", "+00:00")),
            row["direction"] == "Inbound",
            row["result"] in ANSWERED,
            row["direction"] == "Inbound" and row["result"] in MISSED,
            float(row["duration"]),
        )
        for row in rows
    )
    return calling.daily(calls, first, last, zone)


def utc_today(clock: Clock) -> date:
    return datetime.fromtimestamp(clock.at, UTC).date()


# ---------------------------------------------------------------- the connection test


def test_connection_test_signs_in_with_the_jwt_and_reads_the_company_log(client, factory, rc):
    _, headers = person(factory)
    source = new_source(client, headers, rc.config())

    result = run_test(client, headers, source["id"])

    assert result["success"] is True, result
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [
        ("account", True),
        ("company call log", True),
    ]
    assert source["type"] == "calling"
    assert source["config"]["platform"] == SLUG
    for secret in ("clientSecret", "jwt", "webhookVerificationToken"):
        assert source["config"][secret] == {"set": True}
    assert health(client, headers, source["id"])["status"] == "ok"
    usage = rc.usage()
    assert usage["Light"]["accepted"] == 1  # the account
    assert usage["Heavy"]["accepted"] == 1  # one call-log row
    assert usage["Auth"]["accepted"] == 1  # one JWT exchange


def test_a_refused_jwt_asks_to_reconnect_without_echoing_it(client, factory, rc):
    _, headers = person(factory)
    forged = OAUTH.jwt_credential(USER_CLIENT_ID)  # a JWT, but another app's
    source = new_source(client, headers, {**rc.config(), "jwt": forged})

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert "invalid_grant" in result["message"]
    assert forged not in str(result)
    assert health(client, headers, source["id"])["status"] == "needs_reauth"


def test_a_user_without_full_company_call_log_is_told_to_ask_an_admin(client, factory, rc):
    _, headers = person(factory)
    config = {
        **rc.config(),
        "clientId": USER_CLIENT_ID,
        "clientSecret": USER_CLIENT_SECRET,
        "jwt": OAUTH.jwt_credential(USER_CLIENT_ID),
    }
    source = new_source(client, headers, config)

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    account, log = result["checks"]
    assert account["ok"] is True
    assert log["ok"] is False
    assert "FullCompanyCallLog" in log["message"]
    assert "CMN-408" in log["message"]
    assert health(client, headers, source["id"])["status"] == "failing"


@pytest.mark.parametrize(
    ("status", "words"),
    [
        pytest.param(1, "Unconfirmed: its setup is not finished", id="unconfirmed"),
        pytest.param(2, "Initial: its setup has not started", id="initial"),
        pytest.param(3, "Disabled: it is disabled (SuspendedInvoluntarily; Unpaid", id="disabled"),
    ],
)
def test_an_account_not_confirmed_is_a_warning_while_the_call_log_reads(
    client, factory, rc, status, words
):
    _, headers = person(factory)
    rc.configure(volume={"accountStatus": status})
    source = new_source(client, headers, rc.config())

    result = run_test(client, headers, source["id"])

    assert result["success"] is True, result
    assert result["message"].startswith("connection test passed with a warning: ")
    account, log = result["checks"]
    assert (account["ok"], account["warning"]) == (True, True)
    assert words in account["message"]
    assert (log["ok"], log["warning"]) == (True, False)
    now = health(client, headers, source["id"])
    assert now["status"] == "ok"
    assert words in now["message"]


def test_an_account_not_confirmed_fails_the_test_when_the_call_log_refuses(client, factory, rc):
    _, headers = person(factory)
    rc.configure(volume={"accountStatus": 1})
    config = {
        **rc.config(),
        "clientId": USER_CLIENT_ID,
        "clientSecret": USER_CLIENT_SECRET,
        "jwt": OAUTH.jwt_credential(USER_CLIENT_ID),
    }
    source = new_source(client, headers, config)

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    account, log = result["checks"]
    assert (account["ok"], account["warning"]) == (True, True)
    assert log["ok"] is False
    assert "CMN-408" in log["message"]
    assert health(client, headers, source["id"])["status"] == "failing"


def test_consent_then_rotating_refresh_then_a_revoked_session(client, factory, rc, clock):
    _, headers = person(factory)
    config = {k: v for k, v in rc.config().items() if k != "jwt"}
    source = new_source(client, headers, config)

    connect(client, rc, headers, source["id"])
    assert run_test(client, headers, source["id"])["success"] is True
    clock.at += 3601  # an hour on: the access token has expired (the refresh token lives)
    refreshed = run_test(client, headers, source["id"])

    assert refreshed["success"] is True, refreshed
    stats = rc.stats()
    assert stats["byStatus"]["401"] >= 1  # OAU-128, then a refresh and the replay
    assert stats["byEndpoint"][TOKEN] >= 2  # the code, then at least one refresh

    rc.http.post(f"/_sandbox/{SLUG}/oauth/revoke-all")  # the user ended the session
    refused = run_test(client, headers, source["id"])

    assert refused["success"] is False
    assert "invalid_grant" in refused["message"]
    assert health(client, headers, source["id"])["status"] == "needs_reauth"


def test_a_sync_of_a_revoked_session_fails_and_asks_to_reconnect(client, factory, rc):
    _, headers = person(factory)
    config = {k: v for k, v in rc.config().items() if k != "jwt"}
    source = new_source(client, headers, config)
    connect(client, rc, headers, source["id"])
    rc.http.post(f"/_sandbox/{SLUG}/oauth/revoke-all")

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert health(client, headers, source["id"])["status"] == "needs_reauth"


# ---------------------------------------------------------------- 100,000 calls


@pytest.mark.volume
def test_100k_calls_over_90_days_then_late_changes_then_nothing(
    client, factory, rc, clock, compressed
):
    _, headers = person(factory)
    rc.configure(volume={"calls": 100_000, "days": 90})
    source = new_source(client, headers, rc.config())
    today = utc_today(clock)
    first_day = today - timedelta(days=90)  # the first sync reaches 90 days back

    first = sync_and_wait(client, headers, source["id"])

    assert first["status"] == "succeeded", first
    got = stored(factory, source["id"])
    days = days_of(got)
    # 91 days; a sync that crossed a midnight also stores the new day (no calls yet: the
    # emulator's clock stands still)
    assert days[0] == first_day
    assert days[-1] in (today, run_day(first, "finishedAt")), days[-1]
    assert first["counts"]["created"] == len(days) * 3 * 6
    usage = rc.usage()
    assert usage["Heavy"]["throttled"] == 0
    assert usage["Heavy"]["maxInWindow"] <= 10
    rows = rc.log(first_day)
    # faxes (about 2 %) are not voice, and today's calls after the sandbox's clock are not yet
    # logged: the 89 whole days alone hold about 95,000, whatever the hour
    assert 90_000 < len(rows) <= 100_000
    assert max(datetime.fromisoformat(r["startTime"]) for r in rows).timestamp() < clock.at
    # a week's calls in pages of 1,000 (the most RingCentral gives), one read per week
    assert len(rows) // 1000 <= usage["Heavy"]["accepted"] <= len(rows) // 1000 + 2 * 14 + 3
    assert_same(got, expected(rows, first_day, days[-1]))

    # Late changes: a share of today's and yesterday's calls change result or duration, a few
    # are deleted.
    rc.configure(volume={"revision": 2})
    second = sync_and_wait(client, headers, source["id"])
    before_third = stored(factory, source["id"])
    third = sync_and_wait(client, headers, source["id"])

    assert second["status"] == "succeeded", second
    # nothing new, but a day that began during a sync
    assert second["counts"]["created"] == 18 * (len(days_of(before_third)) - len(days)), second
    assert second["counts"]["updated"] > 0, second
    changed = rc.log(first_day)
    assert len(changed) < len(rows)  # deleted records are gone from the log
    got = stored(factory, source["id"])
    assert_same(got, expected(changed, first_day, days_of(got)[-1]))
    assert third["status"] == "succeeded", third
    new_days = len(days_of(got)) - len(days_of(before_third))
    assert (third["counts"]["created"], third["counts"]["updated"]) == (18 * new_days, 0), third

    stats = rc.stats()
    assert stats["throttled"] == 0, stats
    assert stats["retryAfterViolations"] == 0
    usage = rc.usage()
    assert usage["Heavy"]["throttled"] == 0
    assert usage["Heavy"]["maxInWindow"] <= 10
    assert usage["Auth"]["throttled"] == 0
    # each day read once by the first sync (one or two pages), three days by each later one
    reads = stats["byEndpoint"][HEAVY_READS]
    assert reads < 2 * 91 + 2 * 2 * 3 + 2 * 100 + 10, stats


def fetch_days(
    client: Any, headers: dict[str, str], source_id: str, first: date, last: date
) -> Table:
    """The daily points a fetch of ``first``..``last`` computes (nothing stored)."""
    body = {"startDate": f"{first}T00:00:00Z", "endDate": f"{last + timedelta(days=1)}T00:00:00Z"}
    response = client.post(f"/api/data-sources/{source_id}/fetch", headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True, response.json()
    return {
        (
            p["metric"],
            p["periodStart"][:10],
            "".join(f"{k}={v}" for k, v in p["dimensions"].items()),
        ): p["value"]
        for p in response.json()["dataPoints"]
    }


def test_days_follow_the_sources_time_zone(client, factory, rc, clock, compressed):
    _, headers = person(factory)
    zone = ZoneInfo("Australia/Sydney")  # UTC+11 in November: a day starts at 13:00 UTC
    rc.configure(volume={"calls": 5_000, "days": 10})
    source = new_source(client, headers, {**rc.config(), "timezone": "Australia/Sydney"})

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    today = datetime.fromtimestamp(clock.at, zone).date()
    first = today - timedelta(days=8)
    rows = rc.log(first - timedelta(days=1))
    want = expected(rows, first, today, zone)
    assert_same(stored(factory, source["id"], zone, first, today), want)
    assert sum(v for (m, _, k), v in want.items() if m == "total_calls" and not k) > 3_000


def test_remaining_zero_holds_the_next_request_for_the_window(
    client, factory, rc, clock, monkeypatch
):
    # Told it may send 100 a second, the connector still never meets the Heavy group's 429:
    # after the response that says `X-Rate-Limit-Remaining: 0` it waits `X-Rate-Limit-Window`.
    # (A looser budget than the declared one on purpose: it takes the declared budget out of
    # the way, so only the headers can hold the requests back. The tests using `compressed`
    # hold the emulator's counts to the declared budget.)
    fast = replace(CONNECTOR, rate_limit=RateLimit.of("100/second"))
    monkeypatch.setitem(registry(), SLUG, fast)
    _, headers = person(factory)
    # 15,000 calls in 15 days: pages of 1,000, more than the Heavy group's 10 a window
    # a window long enough that even a loaded machine sends its ten requests within it
    rc.configure(volume={"calls": 20_000, "days": 20, "rateWindowS": 5})
    source = new_source(client, headers, rc.config())
    first, last = utc_today(clock) - timedelta(days=15), utc_today(clock) - timedelta(days=1)

    got = fetch_days(client, headers, source["id"], first, last)

    usage = rc.usage()
    assert usage["Heavy"]["accepted"] >= 15
    assert usage["Heavy"]["maxInWindow"] == 10  # the whole budget, never more
    assert usage["Heavy"]["throttled"] == 0
    assert rc.stats()["throttled"] == 0
    assert_same(got, expected(rc.log(first), first, last))


def test_a_budget_spent_by_another_client_is_waited_out_by_retry_after(client, factory, rc, clock):
    # Another app of the same user has just used the Heavy budget: the connector's first
    # call-log request gets 429 CMN-301 with Retry-After, waits it out, and reads on.
    clock.running = True  # Retry-After bookkeeping needs the wall clock
    _, headers = person(factory)
    rc.configure(volume={"calls": 2_000, "days": 10, "rateWindowS": 1})
    source = new_source(client, headers, rc.config())
    first, last = utc_today(clock) - timedelta(days=5), utc_today(clock) - timedelta(days=1)
    other = {"Authorization": f"Bearer {rc.token()}"}
    for _ in range(10):
        assert rc.http.get(CALL_LOG, params={"perPage": 1}, headers=other).status_code == 200

    got = fetch_days(client, headers, source["id"], first, last)

    usage = rc.usage()
    assert usage["Heavy"]["throttled"] >= 1
    assert usage["Heavy"]["maxInWindow"] == 10
    stats = rc.stats()
    assert stats["byStatus"]["429"] == usage["Heavy"]["throttled"]
    assert stats["retryAfterViolations"] == 0
    assert_same(got, expected(rc.log(first), first, last))


def test_the_emulator_refuses_the_11th_heavy_request_with_cmn_301(rc):
    rc.configure(volume={"rateWindowS": 60})
    headers = {"Authorization": f"Bearer {rc.token()}"}

    answers = [rc.http.get(CALL_LOG, params={"perPage": 1}, headers=headers) for _ in range(12)]

    assert [a.status_code for a in answers] == [200] * 10 + [429, 429]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers[:10]] == [
        str(9 - i) for i in range(10)
    ]
    refused = answers[10]
    assert refused.json() == {
        "errorCode": "CMN-301",
        "message": "Request rate exceeded",
        "errors": [{"errorCode": "CMN-301", "message": "Request rate exceeded"}],
    }
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["X-Rate-Limit-Group"] == "Heavy"
    assert refused.headers["X-Rate-Limit-Window"] == "60"
    account = rc.http.get(f"/{SLUG}/restapi/v1.0/account/~", headers=headers)
    assert account.status_code == 200  # the Light group has its own budget
    assert account.headers["X-Rate-Limit-Group"] == "Light"


# ---------------------------------------------------------------- webhooks


def _deliver(client: Any, request: dict[str, Any]) -> httpx.Response:
    url = request["url"].removeprefix("http://testserver")
    response: httpx.Response = client.post(
        url, content=request["body"].encode(), headers=request["headers"]
    )
    return response


def test_the_subscriptions_validation_token_is_echoed(client, factory, rc):
    _, headers = person(factory)
    source = new_source(client, headers, rc.config())

    sent = rc.webhook(url=source["webhookUrl"], handshake=True, validationToken="abc-123")
    response = _deliver(client, sent["request"])

    assert response.status_code == 200, response.text
    assert response.headers["Validation-Token"] == "abc-123"
    assert response.content == b""


def test_a_telephony_event_with_the_token_reads_its_day_again(client, app, factory, rc, clock):
    _, headers = person(factory)
    rc.configure(volume={"calls": 2_000, "days": 5})
    source = new_source(client, headers, rc.config())
    today = utc_today(clock)
    call = next(r for r in rc.log(today - timedelta(days=4)) if r["result"] == "Missed")
    day = day_of(call)

    sent = rc.webhook(url=source["webhookUrl"], callId=call["id"], result="Accepted", duration=90)
    response = _deliver(client, sent["request"])

    assert response.status_code == 204, response.text
    app.state.worker.drain()
    after = {k: v for k, v in stored(factory, source["id"]).items() if k[1] == day}
    changed = rc.log(today - timedelta(days=4))
    assert next(r for r in changed if r["id"] == call["id"])["result"] == "Accepted"
    assert_same(after, expected(changed, date.fromisoformat(day), date.fromisoformat(day)))
    assert after[("talk_duration", day, "")] >= 90

    replay = _deliver(client, sent["request"])
    assert replay.status_code == 401, replay.text


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"verificationToken": "not-the-token"}, id="wrong_token"),
        pytest.param({"verificationToken": None}, id="no_token"),
        pytest.param({"timestamp": "2020-01-01T00:00:00.000Z"}, id="stale"),
    ],
)
def test_forged_or_stale_events_are_refused_and_change_nothing(client, app, factory, rc, change):
    _, headers = person(factory)
    rc.configure(volume={"calls": 500, "days": 2})
    source = new_source(client, headers, rc.config())

    sent = rc.webhook(url=source["webhookUrl"], result="Accepted", duration=60, **change)
    response = _deliver(client, sent["request"])

    assert response.status_code == 401, response.text
    assert VERIFICATION_TOKEN not in response.text
    app.state.worker.drain()
    assert stored(factory, source["id"]) == {}
    assert HEAVY_READS not in rc.stats()["byEndpoint"]  # no day read again

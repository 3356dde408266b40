"""Twilio (the `calling` type) through the real API and database against the in-process
emulator: the connection test (account, API keys, refused credentials), 100,000 calls over 90
days whose daily metrics equal what the test computes itself from the raw call log, late status
and duration changes corrected by the next sync, a third sync that changes nothing, Twilio's
concurrency limit and 429s, and signed status callbacks (a changed call's day read again;
forged and replayed callbacks refused)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dt_time
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from inflow.sandbox import create_app as create_sandbox
from inflow.sandbox.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    MAIN_KEY_SECRET,
    MAIN_KEY_SID,
    STANDARD_KEY_SECRET,
    STANDARD_KEY_SID,
)
from tests.providers import calling
from tests.providers.calling import Table, assert_same, stored
from tests.providers.emulator import Emulator
from tests.sync.helpers import SANDBOX_HOST, health, person, points_of, sync_and_wait

SLUG = "twilio"
URL = f"{SANDBOX_HOST}/{SLUG}"
CALLS = f"/{SLUG}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
ENDED = ("completed", "busy", "no-answer", "canceled", "failed")


class Clock:
    """The sandbox clock, frozen when the test starts (the raw log and the syncs see the same
    calls), moved on when a test says so."""

    def __init__(self) -> None:
        self.at = time.time()

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> FastAPI:
    return create_sandbox(clock=clock)


class Twilio(Emulator):
    """The emulator: control routes and its raw call log."""

    slug = SLUG

    def webhook(self, **body: Any) -> Any:
        return self._ok(self.http.post(f"/{SLUG}/_sandbox/webhook", json=body))

    def log(self) -> list[dict[str, Any]]:
        """Every call in the log, paged as a Twilio client pages it (next_page_uri)."""
        auth = (ACCOUNT_SID, AUTH_TOKEN)
        body = self._ok(self.http.get(CALLS, params={"PageSize": 1000}, auth=auth))
        rows: list[dict[str, Any]] = body["calls"]
        while body["next_page_uri"]:
            body = self._ok(self.http.get(f"/{SLUG}{body['next_page_uri']}", auth=auth))
            rows += body["calls"]
        return rows


@pytest.fixture
def tw(sandbox: FastAPI) -> Iterator[Twilio]:
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield Twilio(http)


def new_source(client: Any, headers: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "Twilio", "type": "calling", "config": config}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    return source


def run_test(client: Any, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# ---------------------------------------------------------------- the oracle


def expected(rows: list[dict[str, Any]], first: date, last: date, zone: tzinfo = UTC) -> Table:
    """The daily metrics of ``first``..``last`` from raw calls, by Twilio's definitions:
    parent calls that ended; answered = completed; missed = an inbound call not completed."""
    calls = (
        (
            parsedate_to_datetime(row["start_time"]),
            row["direction"] == "inbound",
            row["status"] == "completed",
            row["direction"] == "inbound" and row["status"] != "completed",
            float(row["duration"]) if row["status"] == "completed" else 0.0,
        )
        for row in rows
        if row["parent_call_sid"] is None and row["status"] in ENDED
    )
    return calling.daily(calls, first, last, zone)


def utc_today(clock: Clock) -> date:
    return datetime.fromtimestamp(clock.at, UTC).date()


# ---------------------------------------------------------------- the connection test


def test_connection_test_signs_in_to_the_account(client, factory, tw):
    _, headers = person(factory)
    source = new_source(client, headers, tw.config())

    result = run_test(client, headers, source["id"])

    assert result["success"] is True, result
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [("account", True)]
    assert "Inflow Sandbox" in result["checks"][0]["message"]
    assert source["type"] == "calling"
    assert source["config"]["authToken"] == {"set": True}
    assert health(client, headers, source["id"])["status"] == "ok"


def test_wrong_auth_token_asks_to_reconnect(client, factory, tw):
    _, headers = person(factory)
    source = new_source(client, headers, {**tw.config(), "authToken": "f" * 32})

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert "20003" in result["message"]
    assert "f" * 32 not in str(result)
    assert health(client, headers, source["id"])["status"] == "needs_reauth"


@pytest.mark.parametrize(
    ("sid", "secret", "check"),
    [
        pytest.param(MAIN_KEY_SID, MAIN_KEY_SECRET, "account", id="main_key"),
        pytest.param(STANDARD_KEY_SID, STANDARD_KEY_SECRET, "call log", id="standard_key"),
    ],
)
def test_api_keys_sign_in_a_standard_key_through_the_call_log(
    client, factory, tw, sid, secret, check
):
    _, headers = person(factory)
    config = {k: v for k, v in tw.config().items() if k != "authToken"}
    source = new_source(client, headers, {**config, "apiKeySid": sid, "apiKeySecret": secret})

    result = run_test(client, headers, source["id"])

    assert result["success"] is True, result
    assert [c["name"] for c in result["checks"]] == [check]


def test_wrong_api_key_secret_asks_to_reconnect(client, factory, tw):
    _, headers = person(factory)
    config = {k: v for k, v in tw.config().items() if k != "authToken"}
    bad = {**config, "apiKeySid": MAIN_KEY_SID, "apiKeySecret": "nope"}
    source = new_source(client, headers, bad)

    result = run_test(client, headers, source["id"])

    assert result["success"] is False
    assert health(client, headers, source["id"])["status"] == "needs_reauth"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param({"apiKeySid": MAIN_KEY_SID, "apiKeySecret": "x"}, "authToken", id="both"),
        pytest.param({"authToken": None}, "authToken", id="neither"),
        pytest.param(
            {"authToken": None, "apiKeySid": MAIN_KEY_SID}, "apiKeySecret", id="no_secret"
        ),
        pytest.param({"authToken": None, "apiKeySecret": "x"}, "apiKeySid", id="no_key_sid"),
    ],
)
def test_exactly_one_credential_pair_else_a_422_naming_the_field(client, factory, tw, extra, field):
    _, headers = person(factory)
    config = {k: v for k, v in {**tw.config(), **extra}.items() if v is not None}

    response = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "Twilio", "type": "calling", "config": config},
    )

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [f"config.{field}"]


# ---------------------------------------------------------------- 100,000 calls


@pytest.mark.volume
def test_100k_calls_over_90_days_then_late_changes_then_nothing(client, factory, tw, clock):
    _, headers = person(factory)
    tw.configure(volume={"calls": 100_000, "days": 90})
    source = new_source(client, headers, tw.config())
    today = utc_today(clock)  # the emulator's clock stands still: no call of a later day exists
    first_day = today - timedelta(days=90)  # the first sync reaches 90 days back

    first = sync_and_wait(client, headers, source["id"])

    assert first["status"] == "succeeded", first
    rows = tw.log()
    got = stored(factory, source["id"])
    days = calling.days_of(got)
    # 91 days; a sync that crossed a midnight also stores the new day (no calls yet)
    assert days[0] == first_day
    assert days[-1] in (today, calling.run_day(first, "finishedAt")), days[-1]
    assert first["counts"]["created"] == len(days) * 3 * 6
    assert_same(got, expected(rows, first_day, days[-1]))
    assert sum(1 for r in rows if r["parent_call_sid"]) > 5_000  # dialled agent legs
    now = clock.at
    clock.at = calling.midnight_after(today) - 1  # today's last second: every call has started
    assert len(tw.log()) == 100_000
    clock.at = now

    # Late updates: a share of today's and yesterday's calls change status or duration.
    tw.configure(volume={"revision": 2})
    second = sync_and_wait(client, headers, source["id"])
    before_third = stored(factory, source["id"])
    third = sync_and_wait(client, headers, source["id"])

    assert second["status"] == "succeeded", second
    assert second["counts"]["created"] == 18 * (len(calling.days_of(before_third)) - len(days))
    assert second["counts"]["updated"] > 0, second
    changed = tw.log()
    assert changed != rows
    got = stored(factory, source["id"])
    assert_same(got, expected(changed, first_day, calling.days_of(got)[-1]))
    assert third["status"] == "succeeded", third
    # nothing changed, but a day that began during the third sync
    new_days = len(calling.days_of(got)) - len(calling.days_of(before_third))
    assert (third["counts"]["created"], third["counts"]["updated"]) == (18 * new_days, 0), third
    stats = tw.stats()
    assert stats["throttled"] == 0
    assert stats["retryAfterViolations"] == 0
    assert tw.http.get(f"/{SLUG}/_sandbox/concurrency").json()["peak"] <= 2  # two days at once
    # a whole day in one or two pages of 1,000, each day read once per sync (and the test's
    # own three reads of the log, 100 pages each)
    reads = stats["byEndpoint"]["GET /2010-04-01/Accounts/{account_sid}/Calls.json"]
    assert reads < 2 * (92 + 4 + 4) + 3 * 100 + 10, stats


def test_a_call_in_progress_counts_once_it_has_ended(client, factory, tw, clock):
    _, headers = person(factory)
    clock.at -= 1800
    tw.configure(volume={"calls": 20_000, "days": 3})
    source = new_source(client, headers, tw.config())
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"
    live = [r for r in tw.log() if r["status"] in ("ringing", "in-progress")]
    assert live, "some calls of the last minutes are still going on"

    clock.at += 1800  # no call lasts half an hour: every call of then has ended
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"

    today = utc_today(clock)
    rows = tw.log()
    assert not [
        r
        for r in rows
        if r["sid"] in {c["sid"] for c in live} and r["status"] in ("ringing", "in-progress")
    ]
    got = stored(factory, source["id"])
    want = expected(rows, today - timedelta(days=2), today)
    assert_same({k: v for k, v in got.items() if k in want}, want)


# ---------------------------------------------------------------- limits


def test_the_concurrency_limit_refuses_with_twilio_20429():
    sandbox = create_sandbox()

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=sandbox)
        async with httpx.AsyncClient(transport=transport, base_url=SANDBOX_HOST) as http:
            await http.post(
                f"/_sandbox/{SLUG}/config", json={"volume": {"concurrency": 2, "serverMs": 200}}
            )
            auth = (ACCOUNT_SID, AUTH_TOKEN)
            calls = [http.get(CALLS, auth=auth) for _ in range(3)]
            return list(await asyncio.gather(*calls))

    responses = asyncio.run(run())

    assert sorted(r.status_code for r in responses) == [200, 200, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json() == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }
    assert max(int(r.headers["Twilio-Concurrent-Requests"]) for r in responses) == 2


def test_two_days_are_read_at_once(client, factory, tw):
    _, headers = person(factory)
    # Each request held 30 ms in flight, at most two at once: a third would be a 20429.
    tw.configure(volume={"calls": 6_000, "days": 8, "concurrency": 2, "serverMs": 30})
    source = new_source(client, headers, tw.config())

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    assert tw.http.get(f"/{SLUG}/_sandbox/concurrency").json()["peak"] == 2
    assert tw.stats()["throttled"] == 0
    today = datetime.now(UTC).date()
    got = stored(factory, source["id"])
    want = expected(tw.log(), today - timedelta(days=7), today)
    assert_same({k: v for k, v in got.items() if k in want}, want)


def test_days_follow_the_sources_time_zone_and_it_stays_fixed(
    client, factory, tw, clock, test_clock
):
    # 20 November 2026, at the time of day the test clock says: 1 November is within the last
    # 30 days, and New York's clocks went back that day
    now = datetime.now(UTC)
    test_clock.move_to(datetime.combine(date(2026, 11, 20), now.timetz()))
    clock.at = time.time()
    _, headers = person(factory)
    zone = ZoneInfo("America/New_York")
    tw.configure(volume={"calls": 6_000, "days": 30})
    config = {**tw.config(), "timezone": "America/New_York"}
    source = new_source(client, headers, config)

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    today = datetime.fromtimestamp(clock.at, zone).date()
    got = stored(factory, source["id"], zone)
    want = expected(tw.log(), today - timedelta(days=28), today, zone)
    assert_same({k: v for k, v in got.items() if k in want}, want)
    starts = {datetime.fromisoformat(p[1]) for p in points_of(factory, source["id"])}
    assert {s.astimezone(zone).time() for s in starts} == {dt_time(0)}  # New York midnights
    assert {s.hour for s in starts} == {4, 5}  # in UTC: 04:00 in summer, 05:00 in winter

    moved = client.patch(
        f"/api/data-sources/{source['id']}",
        headers=headers,
        json={"config": {"timezone": "Europe/Berlin"}},
    )
    assert moved.status_code == 422, moved.text
    assert [e["field"] for e in moved.json()["errors"]] == ["config.timezone"]
    renamed = client.patch(
        f"/api/data-sources/{source['id']}",
        headers=headers,
        json={"name": "Twilio NY", "config": {"timezone": "America/New_York"}},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["config"]["timezone"] == "America/New_York"


def test_a_fetch_of_seven_days_reads_seven_of_the_sources_own_days(client, factory, tw):
    _, headers = person(factory)
    zone = ZoneInfo("America/New_York")
    tw.configure(volume={"calls": 3_000, "days": 20})
    source = new_source(client, headers, {**tw.config(), "timezone": "America/New_York"})
    today = datetime.now(zone).date()
    first, last = today - timedelta(days=9), today - timedelta(days=3)

    body = {"startDate": first.isoformat(), "endDate": last.isoformat()}
    response = client.post(f"/api/data-sources/{source['id']}/fetch", headers=headers, json=body)

    assert response.status_code == 200, response.text
    result = response.json()
    days = {
        datetime.fromisoformat(p["periodStart"]).astimezone(zone).date()
        for p in result["dataPoints"]
    }
    assert sorted(days) == [first + timedelta(days=k) for k in range(7)]  # 7 New York days, not 8
    assert result["message"].endswith(f"for {first} to {last} (America/New_York)")
    want = expected(tw.log(), first, last, zone)
    got = {
        (p["metric"], datetime.fromisoformat(p["periodStart"]).astimezone(zone).date().isoformat(),
         ",".join(f"{k}={v}" for k, v in sorted(p["dimensions"].items()))): p["value"]
        for p in result["dataPoints"]
    }  # fmt: skip
    assert_same(got, want)


def test_a_time_zone_is_checked_when_the_source_is_saved(client, factory, tw):
    _, headers = person(factory)
    body = {"name": "Twilio", "type": "calling", "config": {**tw.config(), "timezone": "Mars/Base"}}

    response = client.post("/api/data-sources", headers=headers, json=body)

    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "config.timezone"
    assert "IANA" in error["message"]
    fresh = new_source(client, headers, tw.config())  # before any data it may change
    changed = client.patch(
        f"/api/data-sources/{fresh['id']}",
        headers=headers,
        json={"config": {"timezone": "Asia/Tokyo"}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"]["timezone"] == "Asia/Tokyo"


def test_429s_are_waited_out_and_the_sync_completes(client, factory, tw):
    _, headers = person(factory)
    tw.configure(volume={"calls": 3_000, "days": 5}, faults={"status429Burst": 3, "retryAfterS": 0})
    source = new_source(client, headers, tw.config())

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "succeeded", run
    stats = tw.stats()
    assert stats["throttled"] == 3
    assert stats["retryAfterViolations"] == 0
    today = datetime.now(UTC).date()
    got = stored(factory, source["id"])
    want = expected(tw.log(), today - timedelta(days=4), today)
    assert_same({k: v for k, v in got.items() if k in want}, want)


# ---------------------------------------------------------------- status callbacks


def _deliver(client: Any, request: dict[str, Any], **changes: Any) -> httpx.Response:
    url = request["url"].removeprefix("http://testserver")
    body = changes.get("body", request["body"]).encode()
    headers = {**request["headers"], **changes.get("headers", {})}
    response: httpx.Response = client.post(url, content=body, headers=headers)
    return response


def test_a_signed_status_callback_reads_its_day_again(client, app, factory, tw, clock):
    _, headers = person(factory)
    tw.configure(volume={"calls": 2_000, "days": 5})
    source = new_source(client, headers, tw.config())
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"
    today = utc_today(clock)
    before = stored(factory, source["id"])
    call = next(r for r in tw.log() if r["parent_call_sid"] is None and r["status"] == "no-answer")
    day = parsedate_to_datetime(call["start_time"]).date()

    sent = tw.webhook(url=source["webhookUrl"], sid=call["sid"], status="completed", duration=90)
    response = _deliver(client, sent["request"])

    assert response.status_code == 204, response.text
    app.state.worker.drain()
    after = stored(factory, source["id"])
    key = ("answered_calls", day.isoformat(), "")
    assert after[key] == before[key] + 1
    assert (
        after[("talk_duration", day.isoformat(), "")]
        == before[("talk_duration", day.isoformat(), "")] + 90
    )
    want = expected(tw.log(), today - timedelta(days=4), today)
    assert_same(
        {k: v for k, v in after.items() if k[1] == day.isoformat()},
        {k: v for k, v in want.items() if k[1] == day.isoformat()},
    )
    # the same callback again is a replay
    assert _deliver(client, sent["request"]).status_code == 401


@pytest.mark.parametrize("forgery", ["unsigned", "tampered", "other_token"])
def test_forged_status_callbacks_are_refused_and_change_nothing(client, app, factory, tw, forgery):
    _, headers = person(factory)
    tw.configure(volume={"calls": 1_000, "days": 3})
    source = new_source(client, headers, tw.config())
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"
    before = stored(factory, source["id"])
    sent = tw.webhook(url=source["webhookUrl"], status="completed", duration=600)
    request = sent["request"]
    changes: dict[str, Any] = {}
    if forgery == "unsigned":
        request["headers"].pop("X-Twilio-Signature")
    elif forgery == "tampered":
        changes["body"] = request["body"].replace("CallDuration=", "CallDuration=1")
    else:
        data = request["url"] + "".join(
            k + v for k, v in sorted(httpx.QueryParams(request["body"]).items())
        )
        forged = hmac.new(b"0" * 32, data.encode(), hashlib.sha1).digest()
        changes["headers"] = {"X-Twilio-Signature": base64.b64encode(forged).decode()}

    response = _deliver(client, request, **changes)

    assert response.status_code == 401, response.text
    app.state.worker.drain()
    assert stored(factory, source["id"]) == before

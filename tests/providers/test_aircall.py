"""Aircall through the real API and database against the in-process emulator: the connection
test (wrong keys ask to reconnect), 100,000 calls over 90 days equal to metrics computed here
from the raw call log, under the company's request budget (a minute scaled to a second), a
second sync that changes nothing but today, late changes corrected, a day over the silent
10,000-call cap read completely, 429s waited out until `X-AircallApi-Reset`, webhooks with the
token in the body (good → the day read again; forged, replayed or stale → 401); and the
emulator's envelope, paging, cap and error bodies as the dossier gives them."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from inflow.connectors import registry
from inflow.connectors.aircall import CONNECTOR
from inflow.connectors.spec import RateLimit
from inflow.sandbox.aircall import API_ID, API_TOKEN, STRIDE
from tests.providers import calling
from tests.providers.calling import Table, assert_same, days_of, run_day, stored, within
from tests.providers.emulator import Emulator
from tests.sync.helpers import SANDBOX_HOST, health, person, points_of, poll_run, start_sync

SLUG = "aircall"
DAY_S = 86_400
BASIC = base64.b64encode(f"{API_ID}:{API_TOKEN}".encode()).decode()
AUTH = {"Authorization": f"Basic {BASIC}"}
UNLIMITED = {"rateLimit": 10**9}


class Aircall(Emulator):
    """The emulator: control routes and its raw call log."""

    slug = SLUG

    def __init__(self, http: TestClient, app: FastAPI) -> None:
        super().__init__(http)
        self.app = app

    def configure(self, **volume: Any) -> Any:
        return super().configure(volume=volume)

    def webhook(self, **body: Any) -> Any:
        return self._ok(self.http.post(f"/{SLUG}/_sandbox/webhook", json=body))

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.http.get(
            f"/{SLUG}{path}", params=params, headers=AUTH if headers is None else headers
        )

    def calls(self, start: float, end: float) -> list[dict[str, Any]]:
        """Every call started in [start, end), paged to the end, in windows under the cap."""
        return asyncio.run(self._read([(start, end)]))

    def days(self, first: date, last: date) -> list[dict[str, Any]]:
        """The raw calls of the days `first`..`last`, one query a day."""
        starts = [midnight(first + timedelta(days=n)) for n in range((last - first).days + 1)]
        return asyncio.run(self._read([(s, s + DAY_S) for s in starts]))

    async def _read(self, windows: list[tuple[float, float]]) -> list[dict[str, Any]]:
        # httpx straight into the app: the TestClient's thread hops cost 2.5 times as much.
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, headers=AUTH) as http:
            out: list[dict[str, Any]] = []
            for start, end in windows:
                out += await self._window(http, start, end)
            return out

    async def _window(
        self, http: httpx.AsyncClient, start: float, end: float
    ) -> list[dict[str, Any]]:
        url = f"{SANDBOX_HOST}/{SLUG}/v1/calls"
        bounds = {"from": int(start), "to": int(end) - 1}
        probe = self._ok(await http.get(url, params={**bounds, "per_page": 1}))
        if probe["meta"]["total"] >= 10_000:  # one query would serve only the first 10,000
            middle = (start + end) // 2
            return await self._window(http, start, middle) + await self._window(http, middle, end)
        out: list[dict[str, Any]] = []
        response = await http.get(url, params={**bounds, "per_page": 50})
        while True:
            page = self._ok(response)
            out.extend(page["calls"])
            if page["meta"]["next_page_link"] is None:
                return out
            response = await http.get(page["meta"]["next_page_link"])


@pytest.fixture
def ac(sandbox: FastAPI) -> Iterator[Aircall]:
    with TestClient(sandbox, base_url=SANDBOX_HOST) as http:
        yield Aircall(http, sandbox)


@pytest.fixture
def per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Aircall's minute scaled to a second: the connector's budget per second (the emulator's
    window is set to 1 s by the test)."""
    windows = [w.replace("/minute", "/second") for w in CONNECTOR.rate_limit.windows]
    scaled = replace(CONNECTOR, rate_limit=RateLimit.of(*windows))
    monkeypatch.setitem(registry(), SLUG, scaled)


@pytest.fixture
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """No budget on Inflow's side (the emulator's is raised, or enforced by its 429s)."""
    monkeypatch.setitem(registry(), SLUG, replace(CONNECTOR, rate_limit=RateLimit()))


def midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def today() -> date:
    return datetime.now(UTC).date()


def new_source(client: Any, headers: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "Aircall", "type": "calling", "config": config}
    response = client.post("/api/data-sources", headers=headers, json=body)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    assert source["type"] == "calling"
    return source


def sync(client: Any, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    run, _ = poll_run(
        client, headers, start_sync(client, headers, source_id), timeout=120, every=0.25
    )
    assert run["status"] == "succeeded", run
    return run


# Aircall's analytics categories of inbound calls (support.aircall.io, "Missed, Unanswered &
# Abandoned Call Classifications"), written out here
OUTCOMES = ("answered", "abandoned", "out_of_business_hours", "voicemail", "missed")


POINTS_A_DAY = 6 * 3 + len(OUTCOMES)  # six metrics x (total, inbound, outbound) + outcomes


def category(call: dict[str, Any]) -> str:
    reason = call["missed_call_reason"]
    if call["answered_at"] is not None:
        return "answered"
    if reason in ("short_abandoned", "abandoned_in_ivr", "abandoned_in_classic"):
        return "abandoned"  # the caller hung up in the first seconds, the IVR or the queue
    if reason == "out_of_opening_hours":
        return "out_of_business_hours"
    return "voicemail" if call["voicemail"] is not None else "missed"


def expected(calls: list[dict[str, Any]], first: date, last: date, zone: tzinfo = UTC) -> Table:
    """The daily metrics of `first`..`last` computed from raw calls, by Aircall's definitions:
    ended calls only; answered: an `answered_at`; missed: inbound, no agent available or none
    answered, no voicemail left (Aircall's dashboard); inbound calls by outcome; talk time
    from `answered_at` to `ended_at`."""
    ended = [c for c in {c["id"]: c for c in calls}.values() if c["status"] == "done"]
    return calling.daily(
        (
            (
                datetime.fromtimestamp(c["started_at"], UTC),
                c["direction"] == "inbound",
                c["answered_at"] is not None,
                c["direction"] == "inbound" and category(c) == "missed",
                float(c["ended_at"] - c["answered_at"]) if c["answered_at"] is not None else 0.0,
                category(c),
            )
            for c in ended
        ),
        first,
        last,
        zone,
        OUTCOMES,
    )


def run_test(client: Any, headers: dict[str, str], source_id: str) -> dict[str, Any]:
    response = client.post(f"/api/data-sources/{source_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# ---------------------------------------------------------------- the connection test


def test_the_connection_test_pings_then_reads_the_call_log(client, factory, ac):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())

    result = run_test(client, headers, source["id"])

    assert result["success"] is True, result
    assert [(c["name"], c["ok"]) for c in result["checks"]] == [
        ("api key", True),
        ("call log", True),
    ]
    assert ac.stats()["byEndpoint"] == {"GET /v1/ping": 1, "GET /v1/calls": 1}
    assert health(client, headers, source["id"])["status"] == "ok"


@pytest.mark.parametrize("wrong", ["apiToken", "apiId"])
def test_a_wrong_key_asks_to_reconnect_and_shows_no_secret(client, factory, ac, wrong):
    _, headers = person(factory)
    secret = "not-the-token-b8e1" if wrong == "apiToken" else "0000000000"
    source = new_source(client, headers, {**ac.config(), wrong: secret})

    result = run_test(client, headers, source["id"])
    run, _ = poll_run(client, headers, start_sync(client, headers, source["id"]))

    assert result["success"] is False
    assert "Verify your API ID and API token" in result["message"]
    assert secret not in result["message"]
    assert run["status"] == "failed"
    assert run["error"]["type"] == "CredentialsError"
    assert health(client, headers, source["id"])["status"] == "needs_reauth"
    assert ac.stats()["byStatus"] == {"403": 2}  # refused once each, never retried


# ---------------------------------------------------------------- volume and limits


@pytest.mark.volume
def test_100k_calls_over_90_days_within_the_budget_then_nothing_new(
    client, factory, ac, per_second
):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    ac.configure(calls=100_000, days=90, rateWindowS=1)  # 120 a second instead of a minute

    first_run = sync(client, headers, source["id"])

    stats = ac.stats()
    assert stats["byStatus"].keys() == {"200"}, stats["byStatus"]  # never a 429
    assert stats["throttled"] == 0
    assert stats["maxPerSecond"] <= 120  # no one-second window past Aircall's budget
    requests = stats["byEndpoint"]["GET /v1/calls"]
    got = stored(factory, source["id"])
    days = days_of(got)
    began = run_day(first_run, "startedAt")
    # 91 days (6 metrics, 3 dimension sets) up to the run's today (and the next, if it crossed
    # a midnight); the days that had ended when it began were read whole
    assert days[0] == began - timedelta(days=90)
    assert days[-1] in (began, run_day(first_run, "finishedAt")), days
    assert first_run["counts"]["created"] == len(days) * POINTS_A_DAY
    first, last = today() - timedelta(days=89), began - timedelta(days=1)
    ac.configure(**UNLIMITED)  # the test's own reading
    raw = ac.days(first, last)
    want = expected(raw, first, last)
    calls = sum(v for (m, _d, k), v in want.items() if m == "total_calls" and k == "")
    assert 94_000 <= calls <= 100_000  # 88 or 89 whole days of about 100,000 over 90
    assert requests >= calls // 50  # 50 a page: the most Aircall gives
    assert_same(within(got, first, last), want)

    sent = ac.stats()["byEndpoint"]["GET /v1/calls"]
    second_run = sync(client, headers, source["id"])

    # the whole days stay as they were; only a day begun since is new
    again = stored(factory, source["id"])
    assert second_run["counts"]["created"] == POINTS_A_DAY * (len(days_of(again)) - len(days)), (
        second_run
    )
    assert within(again, first, last) == within(got, first, last)
    reads = ac.stats()["byEndpoint"]["GET /v1/calls"] - sent
    assert reads < 100  # the lookback: the last two days and today, not 90 days


def test_late_changes_are_corrected_by_the_next_sync(client, factory, ac, unlimited):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    ac.configure(calls=6_000, days=10, **UNLIMITED)
    first, last = today() - timedelta(days=9), today() - timedelta(days=1)
    sync(client, headers, source["id"])
    old = ac.days(first, last)

    ac.configure(revision=3)  # some calls of yesterday and today are re-drawn
    new = ac.days(first, last)
    run = sync(client, headers, source["id"])

    old_by_id = {c["id"]: c for c in old}
    changed = [c for c in new if c != old_by_id.get(c["id"])]
    assert len(changed) > 50
    assert {datetime.fromtimestamp(c["started_at"], UTC).date() for c in changed} == {last}
    assert expected(old, last, last) != expected(new, last, last)
    assert run["counts"]["updated"] > 0
    assert_same(stored(factory, source["id"], first=first, last=last), expected(new, first, last))


def test_days_follow_the_sources_time_zone(client, factory, ac, unlimited):
    _, headers = person(factory)
    zone = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a day starts at 18:30 UTC the day before
    source = new_source(client, headers, {**ac.config(), "timezone": "Asia/Kolkata"})
    ac.configure(calls=6_000, days=10, **UNLIMITED)

    sync(client, headers, source["id"])

    local_today = datetime.now(zone).date()
    first, last = local_today - timedelta(days=8), local_today - timedelta(days=1)
    raw = ac.days(first - timedelta(days=1), last + timedelta(days=1))
    want = expected(raw, first, last, zone)
    assert_same(stored(factory, source["id"], zone, first, last), want)
    assert sum(v for (m, _, k), v in want.items() if m == "total_calls" and not k) > 3_000


def test_inbound_calls_are_split_by_aircalls_own_outcomes(client, factory, ac, unlimited):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    ac.configure(calls=3_000, days=5, **UNLIMITED)

    sync(client, headers, source["id"])

    first, last = today() - timedelta(days=4), today() - timedelta(days=1)
    raw = [c for c in ac.days(first, last) if c["status"] == "done"]
    got = stored(factory, source["id"], first=first, last=last)
    assert_same(got, expected(raw, first, last))
    inbound = [c for c in raw if c["direction"] == "inbound"]
    split = {o: sum(v for (m, _, k), v in got.items() if k == f"outcome={o}") for o in OUTCOMES}
    assert all(split[o] > 0 for o in OUTCOMES), split  # every category occurs in 4 days
    assert sum(split.values()) == len(inbound)  # the outcomes add up to the inbound calls
    unanswered = sum(1 for c in inbound if c["answered_at"] is None)
    missed = sum(v for (m, _, k), v in got.items() if m == "missed_calls" and not k)
    # the dashboard's "missed" leaves out abandoned, closed-hours and voicemail calls
    assert missed == split["missed"] < unanswered


def test_a_day_over_the_10000_call_cap_is_read_completely(client, factory, ac, unlimited):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    ac.configure(calls=500, days=4, peakCalls=25_000, peakDay=2, **UNLIMITED)
    peak = today() - timedelta(days=2)
    one_query = ac.get("/v1/calls", **{"from": midnight(peak), "to": midnight(peak) + DAY_S - 1})

    sync(client, headers, source["id"])

    assert one_query.json()["meta"]["total"] == 25_000  # what one query would serve: 10,000
    raw = ac.calls(midnight(peak), midnight(peak) + DAY_S)
    assert len(raw) == 25_000
    want = expected(raw, peak, peak)
    assert want[("total_calls", peak.isoformat(), "")] == 25_000
    assert_same(stored(factory, source["id"], first=peak, last=peak), want)


def test_429s_are_waited_out_until_the_reset(client, factory, ac, monkeypatch):
    (stream,) = CONNECTOR.streams
    assert stream.incremental is not None
    short = replace(stream, incremental=replace(stream.incremental, initial=timedelta(days=2)))
    # No budget on Inflow's side: Aircall's 429s and reset header are all it has to go by.
    blind = replace(CONNECTOR, rate_limit=RateLimit(), streams=(short,))
    monkeypatch.setitem(registry(), SLUG, blind)
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    # 400 calls or more in the two whole days read: 8 pages or more against 2 a second
    ac.configure(calls=600, days=3, rateLimit=2, rateWindowS=1)
    first, last = today() - timedelta(days=2), today() - timedelta(days=1)

    sync(client, headers, source["id"])

    stats = ac.stats()
    assert stats["byStatus"]["429"] >= 1  # Inflow was told no budget: Aircall said when
    ac.configure(**UNLIMITED)
    assert_same(
        stored(factory, source["id"], first=first, last=last),
        expected(ac.days(first, last), first, last),
    )


# ---------------------------------------------------------------- webhooks


def _missed_call_of(ac: Aircall, day: date) -> dict[str, Any]:
    calls = ac.calls(midnight(day), midnight(day) + DAY_S)
    return next(c for c in calls if c["direction"] == "inbound" and c["answered_at"] is None)


def _deliver(client: Any, source_id: str, described: dict[str, Any], body: bytes | None = None):
    content = base64.b64decode(described["bodyBase64"]) if body is None else body
    return client.post(f"/api/webhooks/{source_id}", content=content, headers=described["headers"])


def test_a_call_event_with_the_token_reads_its_day_again(client, app, factory, ac):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    yesterday = today() - timedelta(days=1)
    missed = _missed_call_of(ac, yesterday)
    before = expected(
        ac.calls(midnight(yesterday), midnight(yesterday) + DAY_S), yesterday, yesterday
    )

    sent = ac.webhook(url=source["webhookUrl"], callId=missed["id"], answered=True, talkSeconds=300)
    response = _deliver(client, source["id"], sent)
    app.state.worker.drain()

    assert response.status_code == 204, response.text
    payload = sent["body"]
    assert '"token":"sandboxwebhooktoken0001"' in payload
    assert '"call_uuid"' in payload
    assert sent["headers"]["content-type"] == "application/json"
    after = expected(
        ac.calls(midnight(yesterday), midnight(yesterday) + DAY_S), yesterday, yesterday
    )
    key = ("answered_calls", yesterday.isoformat(), "")
    assert after[key] == before[key] + 1
    assert_same(stored(factory, source["id"], first=yesterday, last=yesterday), after)


@pytest.mark.parametrize("forgery", ["wrong token", "token in a header", "replayed", "stale"])
def test_forged_replayed_or_stale_events_are_refused(client, app, factory, ac, forgery):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    url = source["webhookUrl"]
    body: bytes | None = None
    if forgery == "wrong token":
        sent = ac.webhook(url=url, token="sandboxwebhooktoken0002")
    elif forgery == "token in a header":
        sent = ac.webhook(url=url, token="")
        sent["headers"]["x-aircall-token"] = "sandboxwebhooktoken0001"
    elif forgery == "stale":
        sent = ac.webhook(url=url, timestamp=int(time.time()) - 600)
    else:
        sent = ac.webhook(url=url)
        assert _deliver(client, source["id"], sent).status_code == 204
        app.state.worker.drain()
    points = points_of(factory, source["id"])

    response = _deliver(client, source["id"], sent, body)
    app.state.worker.drain()

    assert response.status_code == 401, response.text
    assert points_of(factory, source["id"]) == points


def test_a_body_that_is_not_json_is_a_400_and_other_events_are_ignored(client, factory, ac):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    other = ac.webhook(url=source["webhookUrl"], event="number.opened")

    garbage = client.post(f"/api/webhooks/{source['id']}", content=b"token=x", headers={})
    ignored = _deliver(client, source["id"], other)

    assert garbage.status_code == 400
    assert ignored.status_code == 204
    assert points_of(factory, source["id"]) == set()


# ---------------------------------------------------------------- the emulator


def test_the_envelope_paging_and_cap_are_aircalls(ac):
    ac.configure(calls=200, days=2, peakCalls=15_000, peakDay=1, **UNLIMITED)
    start = midnight(today() - timedelta(days=1))
    window = {"from": start, "to": start + DAY_S - 1}

    default = ac.get("/v1/calls", **window).json()
    biggest = ac.get("/v1/calls", **window, per_page=500).json()
    last = ac.get("/v1/calls", **window, per_page=50, page=200).json()
    beyond = ac.get("/v1/calls", **window, per_page=50, page=201).json()
    desc = ac.get("/v1/calls", **window, order="desc", per_page=3).json()

    assert set(default) == {"calls", "meta"}
    assert set(default["meta"]) == {
        "count",
        "total",
        "current_page",
        "per_page",
        "next_page_link",
        "previous_page_link",
    }
    total = default["meta"]["total"]
    assert total > 10_000
    assert (default["meta"]["per_page"], default["meta"]["count"]) == (20, 20)
    assert default["meta"]["previous_page_link"] is None
    assert default["meta"]["next_page_link"].startswith(f"{SANDBOX_HOST}/{SLUG}/v1/calls?")
    assert "page=2" in default["meta"]["next_page_link"]
    assert (biggest["meta"]["per_page"], len(biggest["calls"])) == (50, 50)
    assert (last["meta"]["count"], last["meta"]["next_page_link"]) == (50, None)  # 10,000th
    assert (beyond["calls"], beyond["meta"]["total"]) == ([], total)  # silently nothing more
    assert [c["started_at"] for c in default["calls"]] == sorted(
        c["started_at"] for c in default["calls"]
    )
    assert desc["calls"][0]["started_at"] >= desc["calls"][-1]["started_at"]
    call = default["calls"][0]
    assert isinstance(call["started_at"], int)
    assert call["status"] == "done"
    assert call["id"] // STRIDE == start // DAY_S
    one = ac.get(f"/v1/calls/{call['id']}").json()
    assert one == {"call": call}


def test_refusals_carry_error_and_troubleshoot(ac):
    ac.configure(rateLimit=2)
    wrong = base64.b64encode(f"{API_ID}:nope".encode()).decode()

    missing = ac.get("/v1/ping", headers={})
    forbidden = ac.get("/v1/ping", headers={"Authorization": f"Basic {wrong}"})
    ok = [ac.get("/v1/ping") for _ in range(2)]
    throttled = ac.get("/v1/ping")
    ac.configure(rateLimit=100)
    unknown = ac.get("/v1/calls/42")

    assert missing.status_code == 401
    assert set(missing.json()) == {"error", "troubleshoot"}
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "error": "Forbidden",
        "troubleshoot": "Verify your API ID and API token",
    }
    assert [r.json() for r in ok] == [{"ping": "pong"}] * 2
    assert [r.headers["x-aircallapi-remaining"] for r in ok] == ["1", "0"]
    assert throttled.status_code == 429
    assert set(throttled.json()) == {"error", "troubleshoot"}
    assert throttled.headers["x-aircallapi-limit"] == "2"
    assert int(throttled.headers["x-aircallapi-reset"]) > time.time() - 1
    assert "retry-after" not in throttled.headers
    assert unknown.status_code == 404
    assert set(unknown.json()) == {"error", "troubleshoot"}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"timestamp": 1e20}, "shape", id="a_timestamp_past_any_calendar"),
        pytest.param({"data": {"id": 1, "started_at": 32_503_680_000}}, "dates", id="year_3000"),
        pytest.param({"data": {"id": 1, "started_at": -1e300}}, "shape", id="before_any_calendar"),
    ],
)
def test_a_signed_event_of_an_unexpected_shape_is_a_400_and_stores_nothing(
    client, app, factory, ac, change, problem
):
    _, headers = person(factory)
    source = new_source(client, headers, ac.config())
    sent = ac.webhook(url=source["webhookUrl"], callId=_missed_call_of(ac, today())["id"])
    body = {**orjson.loads(sent["body"]), **change}

    response = _deliver(client, source["id"], sent, orjson.dumps(body))
    app.state.worker.drain()

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    words = {"shape": "not of the expected shape", "dates": "dates must lie"}[problem]
    assert words in response.json()["detail"]
    assert points_of(factory, source["id"]) == set()

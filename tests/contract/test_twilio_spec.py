"""The Twilio emulator's responses against Twilio's OpenAPI 3 spec (twilio_api_v2010.json, from
twilio/twilio-oai): the Account fetch, the Accounts list, the Calls list and a Call fetch. The
spec documents no error bodies: those are checked against the classic 2010-04-01 shape in the
dossier (`code`, `message`, `more_info`, `status`). Also the query forms other clients send
(dlt and tap-twilio page with PageSize and next_page_uri; Airbyte reads Accounts.json, then
Calls in EndTime>/EndTime< slices) and Twilio's paging rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from inflow.sandbox import create_app
from inflow.sandbox.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    MAIN_KEY_SECRET,
    MAIN_KEY_SID,
    STANDARD_KEY_SECRET,
    STANDARD_KEY_SID,
)
from tests.contract.spec import validate_response

pytestmark = pytest.mark.anyio
SPEC = "twilio_api_v2010.json"
ROOT = "/twilio"
ACCOUNT = f"/2010-04-01/Accounts/{ACCOUNT_SID}"
CALLS = f"{ACCOUNT}/Calls.json"
AUTH = (ACCOUNT_SID, AUTH_TOKEN)
NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)  # the sandbox clock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(clock=NOW.timestamp)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        await client.post("/_sandbox/twilio/config", json={"volume": {"calls": 3000, "days": 10}})
        yield client


async def get(http: httpx.AsyncClient, target: str, *, status: int = 200, **kwargs: Any) -> Any:
    kwargs.setdefault("auth", AUTH)
    response = await http.get(f"{ROOT}{target}", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def read_all(http: httpx.AsyncClient, target: str, **params: Any) -> list[dict[str, Any]]:
    body = await get(http, target, params=params)
    rows: list[dict[str, Any]] = body["calls"]
    while body["next_page_uri"]:
        assert body["next_page_uri"].startswith("/2010-04-01/")  # relative to the API host
        body = await get(http, body["next_page_uri"])
        rows += body["calls"]
    return rows


def started(row: dict[str, Any]) -> datetime:
    return parsedate_to_datetime(row["start_time"])


async def test_account_fetch_and_list_match_the_spec(http):
    account = await get(http, f"{ACCOUNT}.json")
    listing = await get(http, "/2010-04-01/Accounts.json")

    validate_response(SPEC, "GET", "/2010-04-01/Accounts/{Sid}.json", 200, account)
    validate_response(SPEC, "GET", "/2010-04-01/Accounts.json", 200, listing)
    assert account["sid"] == ACCOUNT_SID
    assert account["status"] == "active"
    assert account["subresource_uris"]["calls"] == CALLS
    assert listing["accounts"] == [account]


async def test_calls_list_and_fetch_match_the_spec(http):
    body = await get(http, CALLS, params={"PageSize": 1000})
    one = await get(http, f"{ACCOUNT}/Calls/{body['calls'][0]['sid']}.json")

    validate_response(SPEC, "GET", "/2010-04-01/Accounts/{AccountSid}/Calls.json", 200, body)
    validate_response(SPEC, "GET", "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", 200, one)
    assert one == body["calls"][0]
    rows = body["calls"]
    assert [started(r) for r in rows] == sorted((started(r) for r in rows), reverse=True)
    assert {r["status"] for r in rows} >= {"completed", "no-answer", "busy", "canceled"}
    assert {r["direction"] for r in rows} == {"inbound", "outbound-api", "outbound-dial"}
    done = next(r for r in rows if r["status"] == "completed" and r["price"])
    assert (
        int(done["duration"])
        == (parsedate_to_datetime(done["end_time"]) - started(done)).total_seconds()
    )
    assert float(done["price"]) < 0
    missed = next(r for r in rows if r["status"] == "no-answer")
    assert (missed["duration"], missed["end_time"], missed["price"]) == (None, None, None)
    legs = [r for r in rows if r["parent_call_sid"]]
    assert legs
    assert all(r["direction"] == "outbound-dial" for r in legs)
    assert all(started(r) <= NOW for r in rows)


async def test_paging_is_twilios(http):
    first = await get(http, CALLS, params={"PageSize": 2})
    second = await get(http, first["next_page_uri"])
    back = await get(http, second["previous_page_uri"])

    assert (first["page"], first["page_size"], first["start"], first["end"]) == (0, 2, 0, 1)
    assert (second["page"], second["start"], second["end"]) == (1, 2, 3)
    assert first["uri"] == first["first_page_uri"] == f"{CALLS}?PageSize=2&Page=0"
    assert first["previous_page_uri"] is None
    last_sid = first["calls"][-1]["sid"]
    assert first["next_page_uri"] == f"{CALLS}?PageSize=2&Page=1&PageToken=PA{last_sid}"
    assert back["calls"] == first["calls"]
    assert {"total", "num_pages", "last_page_uri"}.isdisjoint(first)  # gone since 2015


async def test_a_page_without_its_token_is_refused(http):
    body = await get(http, CALLS, status=400, params={"Page": 3, "PageSize": 50})

    assert body == {
        "code": 20001,
        "message": "PageToken is required for paging.",
        "more_info": "https://www.twilio.com/docs/errors/20001",
        "status": 400,
    }


async def test_one_utc_day_is_start_on_or_after_d_and_before_d_plus_one(http):
    day = date(2026, 3, 16)
    params = {"StartTime>": day.isoformat(), "StartTime<": (day + timedelta(days=1)).isoformat()}

    rows = await read_all(http, CALLS, PageSize=100, **params)
    everything = await read_all(http, CALLS, PageSize=1000)
    empty = await get(
        http, CALLS, params={"StartTime>": day.isoformat(), "StartTime<": day.isoformat()}
    )
    on_day = await read_all(http, CALLS, PageSize=1000, StartTime=day.isoformat())

    want = [r for r in everything if started(r).date() == day]
    assert [r["sid"] for r in rows if started(r).date() == day] == [r["sid"] for r in want]
    assert len(want) > 200
    assert [r["sid"] for r in on_day] == [r["sid"] for r in want]
    # `StartTime<=D` is "at or before D 00:00": with `StartTime>=D` only midnight itself is left
    assert all(started(r) == datetime(2026, 3, 16, tzinfo=UTC) for r in empty["calls"])
    first = await get(http, CALLS, params={"PageSize": 100, **params})
    assert first["uri"].startswith(f"{CALLS}?StartTime%3E=2026-03-16&StartTime%3C=2026-03-17&")


async def test_airbytes_endtime_slices_and_a_misencoded_filter(http):
    listing = await get(http, "/2010-04-01/Accounts.json", params={"PageSize": 1000})
    calls_path = listing["accounts"][0]["subresource_uris"]["calls"]
    params = {"EndTime>": "2026-03-15", "EndTime<": "2026-03-17", "PageSize": 1000}

    rows = await read_all(http, calls_path, **params)
    everything = await read_all(http, CALLS, PageSize=1000)
    ignored = await get(http, CALLS, params={"StartTime>=": "2030-01-01", "PageSize": 5})

    low, high = datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 3, 17, tzinfo=UTC)
    want = [
        r["sid"]
        for r in everything
        if r["end_time"] and low <= parsedate_to_datetime(r["end_time"]) <= high
    ]
    assert [r["sid"] for r in rows] == want
    assert all(r["status"] == "completed" for r in rows)  # only completed calls have an end
    assert len(ignored["calls"]) == 5  # `StartTime%3E%3D` is no filter Twilio knows


@pytest.mark.parametrize(
    ("auth", "target"),
    [
        pytest.param(None, f"{ACCOUNT}.json", id="no_credentials"),
        pytest.param((ACCOUNT_SID, "f" * 32), CALLS, id="wrong_token"),
        pytest.param((MAIN_KEY_SID, "nope"), CALLS, id="wrong_key_secret"),
        pytest.param((STANDARD_KEY_SID, STANDARD_KEY_SECRET), f"{ACCOUNT}.json", id="standard_key"),
    ],
)
async def test_refusals_are_twilios_20003(http, auth, target):
    response = await http.get(f"{ROOT}{target}", auth=auth)

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


async def test_api_keys_read_calls_and_unknown_sids_are_20404(http):
    for key in ((MAIN_KEY_SID, MAIN_KEY_SECRET), (STANDARD_KEY_SID, STANDARD_KEY_SECRET)):
        assert (await get(http, CALLS, auth=key, params={"PageSize": 1}))["calls"]
    other = "AC" + "1" * 32
    body = await get(http, f"/2010-04-01/Accounts/{other}/Calls.json", status=404)
    missing = await get(http, f"{ACCOUNT}/Calls/CA{'0' * 32}.json", status=404)

    assert body["code"] == missing["code"] == 20404
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"


async def test_an_injected_429_is_twilios_20429(http):
    response = await http.get(
        f"{ROOT}{CALLS}", auth=AUTH, headers={"X-Sandbox-Fault": "rate_limit"}
    )

    assert response.status_code == 429
    assert response.json()["code"] == 20429

"""twilio-python (Twilio's helper library) against the Twilio emulator.

It exercises: `calls.stream()` with `start_time_after`/`start_time_before` and `page_size` (its
own paginator follows `next_page_uri`), `calls(sid).fetch()` for one call, and
`TwilioRestException` with Twilio's codes for a wrong Auth Token (401, 20003), a 429 (20429)
and an unknown Call SID (404, 20404); a refused page of a list is its `TwilioException("Unable to
fetch page", response)`. The base URL is its `Api` domain's `base_url`. The daily
numbers computed from what it reads equal the points Inflow stores for the same days.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from inflow.sandbox.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.conformance.conftest import LiveSandbox
from tests.providers import calling

SLUG = "twilio"
ENDED = ("completed", "busy", "no-answer", "canceled", "failed")
CALLS = "GET /2010-04-01/Accounts/{account_sid}/Calls.json"


def sdk(closing: contextlib.ExitStack, url: str, token: str = AUTH_TOKEN) -> Client:
    client = Client(ACCOUNT_SID, token)
    client.api.base_url = url  # the documented domain attribute (https://api.twilio.com)
    closing.callback(lambda: client.http_client.session and client.http_client.session.close())
    return client


def test_the_sdk_reads_what_inflow_stores(live: LiveSandbox, closing: contextlib.ExitStack) -> None:
    live.configure(SLUG, volume={"calls": 600, "days": 4})
    config = live.credentials(SLUG)["config"]
    client = sdk(closing, config["baseUrl"])
    today = live.today
    first, last = today - timedelta(days=3), today - timedelta(days=1)  # whole past days

    before = live.stats(SLUG)["byEndpoint"].get(CALLS, 0)
    rows = list(
        client.calls.stream(
            start_time_after=datetime.combine(first, datetime.min.time(), UTC),
            start_time_before=datetime.combine(today, datetime.min.time(), UTC),
            page_size=50,
        )
    )
    pages = live.stats(SLUG)["byEndpoint"][CALLS] - before
    assert len(rows) > 100
    assert pages in (-(-len(rows) // 50), len(rows) // 50 + 1)  # every page, none twice
    calls = [
        (
            row.start_time,
            row.direction == "inbound",
            row.status == "completed",
            row.direction == "inbound" and row.status != "completed",
            float(row.duration) if row.status == "completed" else 0.0,
        )
        for row in rows
        if row.parent_call_sid is None and row.status in ENDED
    ]
    read = calling.daily(calls, first, last)

    source_id = live.sync("calling", config)
    calling.assert_same(calling.stored(live.factory, str(source_id), first=first, last=last), read)

    one = client.calls(rows[0].sid).fetch()
    assert (one.sid, one.status, one.duration, one.start_time) == (
        rows[0].sid,
        rows[0].status,
        rows[0].duration,
        rows[0].start_time,
    )
    assert isinstance(one.start_time, datetime)
    assert one.start_time.date() >= first


def test_errors_are_twilio_rest_exceptions_with_twilios_codes(
    live: LiveSandbox, closing: contextlib.ExitStack
) -> None:
    url = live.credentials(SLUG)["config"]["baseUrl"]

    bad = sdk(closing, url, token="f" * 32)
    with pytest.raises(TwilioRestException) as refused:
        bad.api.accounts(ACCOUNT_SID).fetch()
    assert (refused.value.status, refused.value.code) == (401, 20003)
    with pytest.raises(TwilioException, match="Unable to fetch page") as paged:
        bad.calls.list(limit=1)  # a list's page refused: the SDK's own wrapper, with the reply
    assert paged.value.args[1].status_code == 401

    live.configure(SLUG, faults={"status429Burst": 1, "retryAfterS": 1})
    client = sdk(closing, url)
    with pytest.raises(TwilioRestException) as limited:
        client.calls("CA" + "1" * 32).fetch()
    assert (limited.value.status, limited.value.code) == (429, 20429)

    with pytest.raises(TwilioRestException) as missing:
        client.calls("CA" + "0" * 32).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)

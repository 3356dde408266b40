"""Backfills and the schedule on a source's page in a real browser, against ``inflow sandbox``
(its own process) with the chunks run by ``inflow serve``'s worker: a bad range is named at
its field and starts nothing; a backfill started from the form is watched until its chunks are
done and the stored points show them; a long one is cancelled; the next scheduled run, and a
schedule waiting for Clarity's spent daily quota, are shown."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.test_data_inflow import api
from tests.e2e.ui import check_page, log_in

pytestmark = pytest.mark.e2e

SLOW = 60_000  # ms a backfill may take to reach its end in the browser (a bound, not measured)


def source_of(page, sandbox_url: str, type_: str, name: str, **fields: object) -> str:
    config = httpx.get(f"{sandbox_url}/_sandbox/credentials").json()[type_]["config"]
    body = {"name": name, "type": type_, "config": config, **fields}
    source_id: str = api(page, "POST", "/api/data-sources", body)["id"]
    return source_id


def ended(page, source_id: str) -> dict[str, Any]:
    """The source's one backfill once cancelled with no chunk still being read (a chunk read
    when Cancel was pressed finishes first)."""
    for _ in range(600):
        (shown,) = api(page, "GET", f"/api/data-sources/{source_id}/backfills")
        if shown["state"] == "cancelled" and all(c["state"] != "running" for c in shown["chunks"]):
            return dict(shown)
        page.wait_for_timeout(100)
    raise AssertionError(f"the backfill did not end: {shown}")


def test_a_backfill_is_started_watched_to_its_end_and_a_bad_range_starts_nothing(
    page, live_server, sandbox_url
):
    log_in(page, live_server.email, live_server.password)
    source_id = source_of(page, sandbox_url, "example", "Example shop", schedule="every 6h")
    page.goto(f"/sources/{source_id}")
    card = page.locator("#backfills")
    expect(card.get_by_role("heading", name="Backfills")).to_be_visible()
    expect(card).to_contain_text("No backfills yet")
    expect(page.get_by_test_id("next-run")).not_to_have_text("")
    check_page(page, "source-backfill-empty")

    # the last day before the first: named at the field, nothing starts
    start = card.get_by_label("From")
    end = card.get_by_label("To (inclusive)")
    start.fill("2026-10-20")
    end.fill("2026-10-10")
    card.get_by_role("button", name="Start backfill").click()
    error = card.locator("[data-field=to_date] .field-error")
    expect(error).to_contain_text("before the first")
    expect(card.get_by_label("To (inclusive)")).to_have_attribute("aria-invalid", "true")
    expect(card.get_by_label("To (inclusive)")).to_be_focused()
    expect(card).to_contain_text("No backfills yet")
    assert api(page, "GET", f"/api/data-sources/{source_id}/backfills") == []
    check_page(page, "source-backfill-error")

    # three weeks up to last week: three chunks, watched until done
    last = (datetime.now(UTC) - timedelta(days=7)).date()
    card.get_by_label("From").fill((last - timedelta(days=20)).isoformat())
    card.get_by_label("To (inclusive)").fill(last.isoformat())
    card.get_by_role("button", name="Start backfill").click()
    expect(card.get_by_role("status").first).to_contain_text("is started: 3 chunks")
    row = card.locator("tr[data-backfill]")
    expect(row).to_have_count(1)
    expect(row.locator(".chunks-done")).to_have_text("3 of 3 chunks", timeout=SLOW)
    expect(row).to_have_attribute("data-state", "succeeded")
    expect(row.get_by_role("button", name=re.compile("^Cancel"))).to_have_count(0)
    expect(row).to_contain_text("Done")
    expect(row.locator("progress")).to_have_attribute("value", "3")
    # the stored points are shown again once the last poll sees the end
    expect(page.locator("#stored")).not_to_contain_text("None yet", timeout=SLOW)
    listed = api(page, "GET", f"/api/data-sources/{source_id}/backfills")
    assert [(b["state"], b["chunksDone"]) for b in listed] == [("succeeded", 3)]
    check_page(page, "source-backfill-done")


def test_a_long_backfill_is_cancelled_from_its_row(page, live_server, sandbox_url):
    log_in(page, live_server.email, live_server.password)
    source_id = source_of(page, sandbox_url, "example", "Example archive")
    page.goto(f"/sources/{source_id}")
    card = page.locator("#backfills")
    last = (datetime.now(UTC) - timedelta(days=2)).date()
    card.get_by_label("From").fill((last - timedelta(days=3 * 365)).isoformat())
    card.get_by_label("To (inclusive)").fill(last.isoformat())
    card.get_by_role("button", name="Start backfill").click()
    row = card.locator("tr[data-backfill]")
    expect(row.locator(".chunks-done")).to_contain_text("of 157 chunks")
    expect(row).to_have_attribute("data-state", re.compile("queued|running"))
    check_page(page, "source-backfill-running")
    cancel = row.get_by_role("button", name=re.compile("^Cancel the backfill"))
    expect(cancel).to_be_in_viewport(ratio=1)  # not cut off by the card (a 1280 px window)

    cancel.click()

    expect(row).to_have_attribute("data-state", "cancelled", timeout=SLOW)
    expect(row).to_contain_text("Cancelled")
    expect(row.get_by_role("button")).to_have_count(0)
    shown = ended(page, source_id)
    assert shown["chunksDone"] < shown["chunksTotal"] == 157
    page.reload()
    expect(row.locator(".chunks-done")).to_have_text(f"{shown['chunksDone']} of 157 chunks")
    expect(row).to_have_attribute("data-state", "cancelled")
    check_page(page, "source-backfill-cancelled")


def test_a_schedule_waiting_for_clarity_s_spent_quota_is_shown(page, live_server, sandbox_url):
    log_in(page, live_server.email, live_server.password)
    source_id = source_of(
        page, sandbox_url, "microsoft_clarity", "Clarity project", schedule="@daily"
    )
    window = {"startDate": datetime.now(UTC).date().isoformat()}
    for _ in range(10):  # Clarity's ten export calls of the day, spent by fetches
        api(page, "POST", f"/api/data-sources/{source_id}/fetch", window)

    page.goto(f"/sources/{source_id}")

    notice = page.locator("#schedule-waiting")
    expect(notice).to_contain_text("Waiting for quota")
    expect(notice).to_contain_text("calls are used up until")
    expect(notice).to_contain_text("10 of 10 calls this day are used")
    reset = api(page, "GET", f"/api/data-sources/{source_id}")["scheduleWaiting"]["until"]
    shown = datetime.fromisoformat(reset).strftime("%Y-%m-%d %H:%M UTC")
    expect(notice).to_contain_text(shown)
    expect(page.get_by_test_id("next-run")).to_have_text(f"After the quota resets, at {shown}")
    check_page(page, "source-schedule-waiting")

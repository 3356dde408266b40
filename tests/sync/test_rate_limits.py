"""A 429 storm: the run waits as the provider says (Retry-After, for real), says so while it
waits, and ends with complete data."""

from __future__ import annotations

from tests.sync.helpers import (
    create_source,
    days_back,
    person,
    points_of,
    poll_run,
    sandbox_points,
    start_sync,
    today,
)


def test_429_storm_is_waited_out_and_the_data_is_complete(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    # The first request is refused, then about one in four; each 429 says "Retry-After: 1".
    sb.configure(faults={"status429Burst": 1, "status429Rate": 0.25, "retryAfterS": 1})

    run_id = start_sync(client, headers, source["id"])
    run, seen = poll_run(client, headers, run_id, timeout=60)

    assert run["status"] == "succeeded", run
    assert run["waiting"] is None
    waits = [r["waiting"] for r in seen if r["waiting"]]
    assert waits, "GET /api/runs/{id} never showed the run waiting"
    assert all(w["state"] == "waiting" for w in waits)
    assert "rate limited" in waits[0]["reason"]
    assert waits[0]["until"]
    waiting_at = next(i for i, r in enumerate(seen) if r["waiting"])
    assert seen[waiting_at]["status"] == "running"
    # ... and then it carried on: still running (no failure) until it succeeded.
    assert {r["status"] for r in seen[waiting_at:]} <= {"running", "succeeded"}

    timeline = run["timeline"]
    throttled = timeline["statuses"].get("429", 0)
    assert throttled >= 2
    assert timeline["retries"] >= throttled
    assert timeline["waitedS"] >= throttled * 1.0
    refused = [e for e in timeline["recent"] if e["status"] == 429]
    assert len(refused) == throttled
    assert all("rate limited (429)" in e["note"] for e in refused)
    assert any(e["attempt"] > 1 and e["status"] == 200 for e in timeline["recent"])

    stats = sb.stats()
    assert stats["throttled"] == throttled
    assert stats["retryAfterViolations"] == 0
    assert stats["byStatus"]["429"] == throttled

    expected = sb.expected(days_back(30), today())
    assert run["counts"]["created"] == (
        expected["reports"] + expected["dashboards"] + 2 * expected["rows"]
    )
    config = sb.configure()
    assert points_of(factory, source["id"]) == sandbox_points(
        config["seed"], config["volume"]["pages"], days_back(30), today()
    )

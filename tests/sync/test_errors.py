"""Errors and health: refused credentials ask for a reconnect, a provider that keeps failing ends
the run after bounded retries, and the API key never shows up in a run or the audit log."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from inflow.storage.models import AuditEvent, DataSource, SyncRun
from tests.sync.helpers import API_KEY, EXAMPLE, create_source, health, person, sync_and_wait

WRONG_KEY = "sk_live_wrong_key_that_must_never_leak_42"


def _everything_recorded(client, headers, factory, source_id: str) -> str:
    """The runs (with timelines), the source and every audit row, as one text."""
    runs = client.get(f"/api/data-sources/{source_id}/runs", headers=headers).json()
    full = [client.get(f"/api/runs/{r['id']}", headers=headers).json() for r in runs]
    source = client.get(f"/api/data-sources/{source_id}", headers=headers).json()
    with factory() as session:
        audit = [
            [e.actor, e.action, e.target, e.outcome, e.ip, e.request_id, e.details]
            for e in session.execute(select(AuditEvent)).scalars()
        ]
        stored_runs = [
            [r.error, r.timeline, r.waiting] for r in session.execute(select(SyncRun)).scalars()
        ]
        row = session.get(DataSource, uuid.UUID(source_id))
        columns = [row.config, row.health_message, row.tokens, row.secrets]
    return json.dumps([full, source, audit, stored_runs, columns], default=str)


def test_wrong_api_key_fails_the_test_with_a_clear_message_and_needs_reauth(client, factory):
    _, headers = person(factory)
    source = create_source(client, headers, config={**EXAMPLE, "apiKey": WRONG_KEY})

    response = client.post(f"/api/data-sources/{source['id']}/test", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is False
    assert body["checks"] == [
        {
            "name": "authenticated",
            "ok": False,
            "message": "example: the provider refused the credentials (401): Invalid API key",
            "warning": False,
        }
    ]
    assert body["message"] == body["checks"][0]["message"]
    state = health(client, headers, source["id"])
    assert state["status"] == "needs_reauth"
    assert "401" in state["message"]
    assert state["checkedAt"] is not None
    assert WRONG_KEY not in _everything_recorded(client, headers, factory, source["id"])


def test_sync_with_a_wrong_key_fails_as_a_credentials_error(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers, config={**EXAMPLE, "apiKey": WRONG_KEY})

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "CredentialsError"
    assert run["error"]["fault"] == "user"
    assert "refused the credentials (401)" in run["error"]["message"]
    assert run["counts"] == {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    assert run["finishedAt"] is not None
    assert sb.stats()["byStatus"] == {"401": 1}  # refused credentials are not retried
    state = health(client, headers, source["id"])
    assert state["status"] == "needs_reauth"
    assert "reconnect" in state["message"]
    assert WRONG_KEY not in _everything_recorded(client, headers, factory, source["id"])


def test_a_provider_that_always_fails_ends_the_run_after_bounded_retries(
    client, factory, sb, fast_retries
):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(faults={"errorRate": 1.0})

    run = sync_and_wait(client, headers, source["id"])

    assert run["status"] == "failed", run
    assert run["error"]["type"] == "TransientProviderError"
    assert run["error"]["fault"] == "provider"
    assert "provider error (50" in run["error"]["message"]
    attempts = client.app.state.engine_deps.options.retry.attempts
    stats = sb.stats()
    assert stats["total"] == attempts  # the first request, retried to the bound, then given up
    assert set(stats["byStatus"]) <= {"500", "503"}
    timeline = run["timeline"]
    assert timeline["requests"] == attempts
    assert timeline["retries"] == attempts - 1
    assert [e["attempt"] for e in timeline["recent"]] == list(range(1, attempts + 1))
    state = health(client, headers, source["id"])
    assert state["status"] == "failing"
    assert state["message"] == run["error"]["message"]
    assert API_KEY not in _everything_recorded(client, headers, factory, source["id"])


@pytest.mark.usefixtures("fast_retries")
def test_health_recovers_after_a_good_sync(client, factory, sb):
    _, headers = person(factory)
    source = create_source(client, headers)
    sb.configure(faults={"errorRate": 1.0})
    assert sync_and_wait(client, headers, source["id"])["status"] == "failed"
    assert health(client, headers, source["id"])["status"] == "failing"

    sb.configure(faults={"errorRate": 0.0}, volume={"pages": 1})
    assert sync_and_wait(client, headers, source["id"])["status"] == "succeeded"

    state = health(client, headers, source["id"])
    assert state["status"] == "ok"
    assert state["message"] == "last sync succeeded"

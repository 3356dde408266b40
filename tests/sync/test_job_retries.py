"""Retries of the distributed mode's sync jobs (``inflow.sync.jobs``): a transient failure is
not the run's end (the run is queued again, waiting for its retry, and the failure is raised
for procrastinate to retry it); any other failure ends the run as failed at once. The engine
only hears "retry at" (``run_sync(retry_at=...)``): it never knows who runs it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from procrastinate.jobs import Job

from inflow.errors import RateLimitedError, RejectedRequestError, TransientProviderError
from inflow.storage.models import DataSource, SyncRun, utcnow
from inflow.sync.engine import enqueue_run, run_sync
from inflow.sync.jobs import SYNC_ATTEMPTS, SYNC_RETRY
from tests.conftest import TestClient
from tests.sync.helpers import EXAMPLE, make_source, person


def _job(attempts: int = 0) -> Job:
    return Job(
        id=1,
        queue="syncs",
        lock=None,
        queueing_lock=None,
        task_name="inflow.sync",
        task_kwargs={},
        attempts=attempts,
    )


def test_only_transient_failures_are_retried_with_backoff_and_never_before_retry_after():
    transient = TransientProviderError("example: 503", status=503)
    first = SYNC_RETRY.get_retry_decision(exception=transient, job=_job(0))
    later = SYNC_RETRY.get_retry_decision(exception=transient, job=_job(2))
    assert first is not None
    assert later is not None
    assert first.retry_at is not None
    assert later.retry_at is not None
    assert later.retry_at > first.retry_at  # backoff grows
    assert SYNC_RETRY.get_retry_decision(exception=transient, job=_job(SYNC_ATTEMPTS)) is None
    refused = RejectedRequestError("example: 400", status=400)
    assert SYNC_RETRY.get_retry_decision(exception=refused, job=_job(0)) is None
    assert SYNC_RETRY.get_retry_decision(exception=ValueError("bug"), job=_job(0)) is None
    limited = RateLimitedError("example: 429", retry_after=3600, status=429)
    decision = SYNC_RETRY.get_retry_decision(exception=limited, job=_job(0))
    assert decision is not None
    assert decision.retry_at is not None
    assert decision.retry_at >= utcnow() + timedelta(seconds=3500)


def _run(deps, source_id, *, retry) -> tuple[str, object, SyncRun]:
    with deps.factory() as session:
        source = session.get(DataSource, source_id)
        run_id = enqueue_run(session, source=source, trigger="manual").id
        session.commit()
    result = asyncio.run(run_sync(deps, run_id, retry_at=retry))
    with deps.factory() as session:
        run = session.get(SyncRun, run_id)
        session.expunge(run)
    return result.status, result.exception, run


def test_a_transient_failure_queues_the_run_again_waiting_for_its_retry(
    app, deps, vault, sb, fast_retries
):
    owner, headers = person(deps.factory)
    source_id = make_source(deps.factory, vault, owner=owner)
    sb.configure(faults={"errorRate": 1.0})  # every request a 5xx
    until = utcnow() + timedelta(minutes=5)

    status, exception, run = _run(
        deps,
        source_id,
        retry=lambda exc: until if isinstance(exc, TransientProviderError) else None,
    )

    assert status == "queued"
    assert isinstance(exception, TransientProviderError)
    assert run.status == "queued"  # not failed: its retry is coming
    assert run.owner is None
    assert run.waiting is not None
    assert run.waiting["reason"].startswith("retry after a transient failure")
    assert run.waiting["until"] == until.isoformat()
    assert run.error is not None
    assert run.error["type"] == "TransientProviderError"
    with TestClient(app) as client:
        shown = client.get(f"/api/runs/{run.id}", headers=headers).json()
    assert shown["status"] == "queued"
    assert shown["state"] == "waiting"  # what for and until when: its waiting
    assert shown["waiting"]["until"] == until.isoformat()

    sb.configure(faults={"errorRate": 0})  # the retry: the same run, claimed again
    again = asyncio.run(run_sync(deps, run.id))
    assert again.status == "succeeded"
    with deps.factory() as session:
        done = session.get(SyncRun, run.id)
        assert (done.status, done.waiting, done.error) == ("succeeded", None, None)


def test_a_failure_the_host_does_not_retry_ends_the_run_as_failed(deps, vault):
    source_id = make_source(deps.factory, vault, config={**EXAMPLE, "apiKey": "sk_wrong_key_1234"})

    status, exception, run = _run(deps, source_id, retry=lambda _exc: None)

    assert status == "failed"
    assert exception is None
    assert run.status == "failed"
    assert run.waiting is None

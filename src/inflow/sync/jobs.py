"""Jobs: the one interface for work outside a request (syncs, webhook re-reads, housekeeping),
whichever process runs it. The engine never knows which: it runs a run (``run_sync``).

- Embedded mode (SQLite, or ``INFLOW_WORKER=embedded``): ``InProcessWorker`` runs them on its
  event loop inside the API process, and its scheduler ticks there.
- Distributed mode (PostgreSQL and ``INFLOW_WORKER=external``): each is a procrastinate job,
  run by ``inflow worker`` processes on any number of machines (``run_jobs_worker``):

  - ``sync(source_id)`` runs the source's queued run. Its procrastinate ``lock`` is the source:
    one run per source at a time across workers; its ``queueing_lock`` too: one job waiting
    per source (a second submit while one waits is the same work).
  - Retries: a transient failure (``TransientProviderError``, ``ServiceUnavailableError``) is
    retried with backoff (``SyncRetry``: exponential, at least a provider's ``Retry-After``,
    at most ``SYNC_ATTEMPTS`` tries); its run is queued again meanwhile, waiting until then.
    Any other failure ends the run as ``failed`` at once.
  - SIGTERM: a worker stops taking jobs, gives its running syncs ``GRACE_S`` to end, then
    cancels them: each run ends ``interrupted`` and its job goes back to the queue, where the
    next worker starts a ``resume`` run from the checkpoint.
  - A worker that died (SIGKILL, a lost machine) stops sending heartbeats; after ``STALLED_S``
    the ``tick`` job of a live worker marks its run ``interrupted`` and retries its job, which
    resumes from the checkpoint: within a minute.
  - ``tick`` (every ``TICK_S``, one per slot across all workers: a procrastinate periodic job)
    enqueues due schedules (``scheduler.due_runs``: a missed slot runs once, marked late),
    submits queued runs that have no job yet and recovers stalled jobs; ``housekeeping``
    (hourly) purges expired rows.

  Control jobs run on their own queue (``CONTROL``) in a second, one-slot worker of each
  process, so a worker busy with long syncs still ticks. procrastinate's schema is applied
  by ``inflow db upgrade`` and at start in this mode (``storage.db.apply_job_schema``), on
  PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import procrastinate
from procrastinate import exceptions as pexc
from procrastinate.job_context import JobContext
from procrastinate.jobs import Job
from procrastinate.retry import RetryDecision, RetryStrategy
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors.spec import Window
from inflow.errors import (
    ConflictError,
    RateLimitedError,
    ServiceUnavailableError,
    TransientProviderError,
)
from inflow.logging import get_logger
from inflow.settings import Settings
from inflow.storage.models import DataSource, RunStatus, SyncRun, utcnow
from inflow.sync import webhooks
from inflow.sync.backfill import recover_chunks
from inflow.sync.engine import (
    WORKER_LOST,
    EngineDeps,
    enqueue_run,
    recover_stale_runs,
    run_sync,
)

log = get_logger(__name__)

SYNC, RESYNC, TICK, HOUSEKEEPING = "inflow.sync", "inflow.resync", "inflow.tick", "inflow.purge"
BACKFILL = "inflow.backfill"
SYNCS, CONTROL = "syncs", "control"  # queues
TICK_S = 10
HEARTBEAT_S = 5.0
STALLED_S = 30.0  # a worker silent this long is taken for dead
GRACE_S = 8.0  # how long a stopping worker lets its syncs run (Docker kills after 10 s)
THREADS_SPARE = 4  # threads beyond one per sync: the control jobs, token saves, waits
SYNC_ATTEMPTS = 5
ORPHANED = timedelta(seconds=30)  # a queued run this old with no job gets one
TRANSIENT: tuple[type[Exception], ...] = (TransientProviderError, ServiceUnavailableError)


def distributed(settings: Settings) -> bool:
    """Whether jobs run on procrastinate: ``INFLOW_WORKER=external`` on PostgreSQL."""
    return settings.worker == "external" and is_postgres(settings.resolved_database_url)


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def conninfo(database_url: str) -> str:
    """A libpq URL for psycopg from our SQLAlchemy URL (``postgresql+psycopg://`` …)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class SyncRetry(RetryStrategy):
    """procrastinate's strategy with our rules: transient failures only (exponential backoff,
    never sooner than the provider's ``Retry-After``); a job cancelled by its worker's
    shutdown goes back to the queue at once."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError | pexc.JobAborted):
            return RetryDecision(retry_in={"seconds": 0})
        decision = super().get_retry_decision(exception=exception, job=job)
        if decision is None or not isinstance(exception, RateLimitedError):
            return decision
        if exception.retry_after:
            at = utcnow() + timedelta(seconds=exception.retry_after)
            if decision.retry_at is None or decision.retry_at < at:
                return RetryDecision(retry_at=at)
        return decision


SYNC_RETRY = SyncRetry(
    max_attempts=SYNC_ATTEMPTS, wait=5, exponential_wait=4, retry_exceptions=TRANSIENT
)
# A backfill chunk waits out rate limits, quotas and syncs holding its source (ConflictError)
# rather than failing: many more tries, each no sooner than the provider's Retry-After.
BACKFILL_RETRY = SyncRetry(
    max_attempts=100, wait=5, exponential_wait=2, retry_exceptions=(*TRANSIENT, ConflictError)
)

# The engine of the process running jobs (set by ``run_jobs_worker``).
_deps: EngineDeps | None = None


def _engine() -> EngineDeps:
    if _deps is None:
        raise RuntimeError("jobs run in `inflow worker` processes only")
    return _deps


def build_app(database_url: str) -> procrastinate.App:
    """A procrastinate app on ``database_url`` with Inflow's jobs."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo(database_url), max_size=10),
        worker_defaults={
            "update_heartbeat_interval": HEARTBEAT_S,
            "stalled_worker_timeout": STALLED_S,
        },
    )

    @app.task(name=SYNC, queue=SYNCS, pass_context=True, retry=SYNC_RETRY)
    async def sync(context: JobContext, source_id: str) -> str:
        return await sync_job(_engine(), uuid.UUID(source_id), context.job)

    @app.task(name=RESYNC, queue=SYNCS)
    async def resync(source_id: str, start: str, end: str) -> int:
        window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
        return await webhooks.resync(_engine(), uuid.UUID(source_id), window)

    @app.task(name=BACKFILL, queue=SYNCS, retry=BACKFILL_RETRY)
    async def backfill(backfill_id: str, source_id: str) -> str:
        return await backfill_job(app, _engine(), uuid.UUID(backfill_id), uuid.UUID(source_id))

    async def tick(timestamp: int) -> None:  # noqa: ARG001 (procrastinate passes it)
        await tick_job(app, _engine())

    async def purge(timestamp: int) -> None:  # noqa: ARG001
        from inflow.sync.scheduler import _purge

        await asyncio.to_thread(_purge, _engine().factory, utcnow())

    # (periodic tasks registered by hand: mypy 1.18 crashes on the stacked decorators)
    for name, cron, func in (
        (TICK, f"* * * * * */{TICK_S}", tick),
        (HOUSEKEEPING, "7 * * * *", purge),
    ):
        task: Any = app.task(name=name, queue=CONTROL)(func)
        app.periodic_registry.register_task(
            task=task, cron=cron, periodic_id="", configure_kwargs={}
        )
    return app


# ---------------------------------------------------------------- the jobs


async def sync_job(deps: EngineDeps, source_id: uuid.UUID, job: Job) -> str:
    """Run the source's queued run (a retried job whose run was interrupted: a ``resume`` run
    from the checkpoint); a transient failure is raised for procrastinate to retry."""
    run_id = await asyncio.to_thread(_next_run, deps.factory, source_id, job.attempts > 0)
    if run_id is None:
        return "nothing queued"

    def retry_at(exc: BaseException) -> datetime | None:
        decision = SYNC_RETRY.get_retry_decision(exception=exc, job=job)
        if decision is None or isinstance(exc, asyncio.CancelledError):
            return None
        return decision.retry_at or utcnow()

    result = await run_sync(deps, run_id, retry_at=retry_at)
    if result.status == RunStatus.QUEUED and result.exception is not None:
        raise result.exception  # procrastinate retries it (SYNC_RETRY)
    return str(result.status)


async def backfill_job(
    app: procrastinate.App, deps: EngineDeps, backfill_id: uuid.UUID, source_id: uuid.UUID
) -> str:
    """One chunk of a backfill; the next chunk is a job of its own, deferred from here. A
    chunk that must wait (rate limit, quota, a sync holding the source) is retried later."""
    from inflow.sync.backfill import run_chunk

    outcome = await run_chunk(deps, backfill_id)
    if outcome.kind == "wait" and isinstance(outcome.error, RateLimitedError):
        raise outcome.error  # BACKFILL_RETRY: no sooner than its Retry-After
    if outcome.kind in ("wait", "busy"):
        raise ConflictError("the source is held by a sync; the chunk is tried again")
    if outcome.kind == "more":
        await defer_backfill(app, backfill_id, source_id)
    return outcome.state


async def defer_backfill(
    app: procrastinate.App, backfill_id: uuid.UUID, source_id: uuid.UUID
) -> None:
    with contextlib.suppress(pexc.AlreadyEnqueued):  # its next chunk waits already
        await app.configure_task(
            BACKFILL, lock=f"source:{source_id}", queueing_lock=f"backfill:{backfill_id}"
        ).defer_async(backfill_id=str(backfill_id), source_id=str(source_id))


def _next_run(
    factory: sessionmaker[Session], source_id: uuid.UUID, retried: bool
) -> uuid.UUID | None:
    latest_run = (
        select(SyncRun)
        .where(SyncRun.source_id == source_id)
        .order_by(SyncRun.created_at.desc())
        .limit(1)
    )
    with factory() as session:
        latest = session.execute(latest_run).scalar_one_or_none()
        if latest is None:
            return None
        if latest.status == RunStatus.QUEUED:
            return latest.id  # (no running run beside it: one active run per source)
        if recover_stale_runs(session, source_id=source_id):  # the latest, if it was running
            session.commit()
            session.refresh(latest)
        if not (retried and latest.status == RunStatus.INTERRUPTED):
            return None
        source = session.get(DataSource, source_id)
        if source is None:
            return None
        try:  # its worker stopped or died: the next run resumes from the checkpoint
            run = enqueue_run(session, source=source, trigger="resume")
        except ConflictError:
            return None
        session.commit()
        return run.id


async def tick_job(app: procrastinate.App, deps: EngineDeps) -> None:
    """Due schedules, queued runs without a job, stalled jobs (one tick across all workers)."""
    from inflow.sync.scheduler import due_runs

    def enqueue_due() -> list[uuid.UUID]:
        """The due schedules' runs, queued; their sources (each gets its job at once)."""
        with deps.factory() as session:
            due = due_runs(session)
            session.commit()
            if not due:
                return []
            found = select(SyncRun.source_id).where(SyncRun.id.in_(due))
            return list(session.execute(found).scalars())

    due = await asyncio.to_thread(enqueue_due)
    await recover_stalled(app, deps.factory)
    orphaned = await asyncio.to_thread(_queued_sources, deps.factory)
    await defer_syncs(app, [*due, *(s for s in orphaned if s not in set(due))])


def _queued_sources(factory: sessionmaker[Session]) -> list[uuid.UUID]:
    """Sources with a queued run and no sync job waiting or running (a run queued while no
    job could be deferred, or before this mode was on): they get one."""
    with factory() as session:
        queued = set(
            session.execute(
                select(SyncRun.source_id).where(
                    SyncRun.status == RunStatus.QUEUED,
                    SyncRun.created_at < utcnow() - ORPHANED,
                )
            ).scalars()
        )
        if not queued:
            return []
        covered: list[str | None] = list(
            session.execute(
                text(
                    "SELECT DISTINCT args->>'source_id' FROM procrastinate_jobs"
                    " WHERE task_name = :task AND status IN ('todo', 'doing')"
                ),
                {"task": SYNC},
            ).scalars()
        )
        return sorted(queued - {uuid.UUID(s) for s in covered if s})


async def recover_stalled(app: procrastinate.App, factory: sessionmaker[Session]) -> int:
    """Jobs of workers silent for ``STALLED_S``: their runs end as ``interrupted`` and the
    jobs go back to the queue (a sync resumes from its checkpoint); returns how many."""
    recovered = 0
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_S):
        source_id = job.task_kwargs.get("source_id")
        if job.task_name in (SYNC, BACKFILL) and isinstance(source_id, str):
            await asyncio.to_thread(_interrupt, factory, uuid.UUID(source_id))
        try:
            await app.job_manager.retry_job(job)
        except Exception:  # another worker's tick took it first
            log.info("stalled job already handled", job_id=job.id)
            continue
        recovered += 1
    if recovered:
        log.warning("jobs of stopped workers handed back", jobs=recovered)
    return recovered


def _interrupt(factory: sessionmaker[Session], source_id: uuid.UUID) -> None:
    with factory() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.source_id == source_id, SyncRun.status == RunStatus.RUNNING)
            .values(
                status=RunStatus.INTERRUPTED,
                finished_at=utcnow(),
                lease_until=None,
                waiting=None,
                error=WORKER_LOST,
            )
        )
        recover_chunks(session, source_id=source_id)  # a chunk's backfill waits to be resumed
        session.commit()


def _sync_deferrer(app: procrastinate.App, source_id: uuid.UUID) -> Any:
    return app.configure_task(SYNC, lock=f"source:{source_id}", queueing_lock=f"sync:{source_id}")


async def defer_sync(app: procrastinate.App, source_id: uuid.UUID) -> None:
    with contextlib.suppress(pexc.AlreadyEnqueued):  # one waits already: it takes the run
        await _sync_deferrer(app, source_id).defer_async(source_id=str(source_id))


async def defer_syncs(app: procrastinate.App, source_ids: Sequence[uuid.UUID]) -> None:
    """Sync jobs for many sources in one statement (procrastinate's batch defer; each job with
    its source's locks). A source with a job waiting already makes procrastinate refuse the
    whole batch: then each is deferred on its own, that one skipped."""
    if len(source_ids) < 2:
        for source_id in source_ids:
            await defer_sync(app, source_id)
        return
    jobs = [_sync_deferrer(app, s).make_new_job(source_id=str(s)) for s in source_ids]
    try:
        await app.job_manager.batch_defer_jobs_async(jobs)
    except pexc.AlreadyEnqueued:
        for source_id in source_ids:
            await defer_sync(app, source_id)


# ---------------------------------------------------------------- submitting (API processes)


class JobQueue:
    """The distributed side of the job interface, for a process that submits jobs (the API):
    ``InProcessWorker`` routes ``submit`` and ``resync`` here in distributed mode."""

    def __init__(self, database_url: str) -> None:
        self.app = build_app(database_url)
        self._open = False
        self._lock = threading.Lock()

    def _opened(self) -> procrastinate.App:
        with self._lock:
            if not self._open:
                self.app.open()
                self._open = True
        return self.app

    def submit_run(self, factory: sessionmaker[Session], run_id: uuid.UUID) -> None:
        with factory() as session:
            source_id = session.scalar(select(SyncRun.source_id).where(SyncRun.id == run_id))
        if source_id is not None:
            self.submit_sync(source_id)

    def submit_sync(self, source_id: uuid.UUID) -> None:
        with contextlib.suppress(pexc.AlreadyEnqueued):  # one waits already: it takes the run
            self._opened().configure_task(
                SYNC, lock=f"source:{source_id}", queueing_lock=f"sync:{source_id}"
            ).defer(source_id=str(source_id))

    def submit_backfill(self, backfill_id: uuid.UUID, source_id: uuid.UUID) -> None:
        """The backfill's next chunk, a job holding the source's lock (as a sync does)."""
        with contextlib.suppress(pexc.AlreadyEnqueued):
            self._opened().configure_task(
                BACKFILL, lock=f"source:{source_id}", queueing_lock=f"backfill:{backfill_id}"
            ).defer(backfill_id=str(backfill_id), source_id=str(source_id))

    def submit_resync(self, source_id: uuid.UUID, window: Window, delay_s: float) -> Future[int]:
        """A burst of events for one window becomes one read (its queueing lock)."""
        start, end = window.start.isoformat(), window.end.isoformat()
        with contextlib.suppress(pexc.AlreadyEnqueued):
            self._opened().configure_task(
                RESYNC,
                queueing_lock=f"resync:{source_id}:{start}:{end}",
                schedule_in={"seconds": int(delay_s)},
            ).defer(source_id=str(source_id), start=start, end=end)
        done: Future[int] = Future()
        done.set_result(0)  # read by a worker; nothing to wait for here
        return done

    def close(self) -> None:
        with self._lock:
            if self._open:
                self.app.close()
                self._open = False


# ---------------------------------------------------------------- `inflow worker`


async def run_jobs_worker(
    deps: EngineDeps,
    database_url: str,
    *,
    concurrency: int = 2,
    once: bool = False,
    grace_s: float = GRACE_S,
) -> None:
    """Run jobs until cancelled (SIGTERM): a worker of ``concurrency`` syncs and a one-slot
    worker for control jobs (ticks, housekeeping). Cancelled, each stops taking jobs and
    gives running ones ``grace_s``; then they are cancelled and handed back."""
    global _deps
    _deps = deps
    # Every sync hops to a thread for its database work: the loop's default pool (cores + 4
    # threads) would queue the hops of ``concurrency`` syncs behind each other.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(concurrency + THREADS_SPARE, thread_name_prefix="inflow-db")
    )
    app = build_app(database_url)
    options: dict[str, Any] = {
        "shutdown_graceful_timeout": grace_s,
        "install_signal_handlers": False,
        "fetch_job_polling_interval": 2.0,
        "wait": not once,  # once: stop when no job is left
    }
    async with app.open_async():
        await asyncio.gather(
            app.run_worker_async(queues=[SYNCS], concurrency=concurrency, name="syncs", **options),
            app.run_worker_async(queues=[CONTROL], concurrency=1, name="control", **options),
        )

"""Workers: the embedded one inside the API process, and ``inflow worker`` for scale-out.

- ``InProcessWorker``: an event loop on its own thread. API routes stay synchronous (a thread
  each) and hand coroutines to it: background runs with ``submit``, request-scoped calls
  (connection tests, fetch previews) with ``call``. At most ``concurrency`` syncs and backfill
  chunks run at once (``INFLOW_EMBEDDED_CONCURRENCY``); the others stay ``queued`` and start in
  the order they were submitted as slots free.
- ``run_worker``: a separate process polling the database for queued runs and unfinished
  backfills (one chunk at a time, a run holding the source as elsewhere); claims are atomic
  (queued → running in one conditional UPDATE), leases are renewed while a run lives, and a
  crashed worker's run is interrupted once its lease lapses (at once when that worker ran on
  this host), the next run resuming from the checkpoint (a chunk's backfill shows it waits to
  be resumed, and the next worker reads that chunk again). Any number of workers on any number
  of machines share one database.

Either stops by cancelling its runs: each ends as ``interrupted`` with what it committed, so a
sync of its source can start as soon as a process is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors.spec import Window
from inflow.logging import get_logger
from inflow.settings import EMBEDDED_CONCURRENCY
from inflow.storage.models import Backfill, RunStatus, SyncRun, utcnow
from inflow.sync import backfill, webhooks
from inflow.sync.engine import (
    EngineDeps,
    RunResult,
    recover_stale_runs,
    release_runs,
    run_sync,
)
from inflow.sync.jobs import JobQueue
from inflow.sync.scheduler import run_scheduler

log = get_logger(__name__)
T = TypeVar("T")


class InProcessWorker:
    """The job interface of an API process (``submit`` a run, ``resync`` a window): run here
    (embedded: ``concurrency`` at a time), or handed to ``inflow worker`` processes (external:
    as procrastinate jobs when ``jobs`` is given, PostgreSQL; else left queued for
    ``run_worker`` to poll)."""

    def __init__(
        self,
        deps: EngineDeps,
        *,
        external: bool = False,
        jobs: JobQueue | None = None,
        concurrency: int = EMBEDDED_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.deps = deps
        self.concurrency = concurrency
        self.external = external or jobs is not None  # runs are for `inflow worker` processes
        self.jobs = jobs
        self.runs: dict[uuid.UUID, Future[RunResult]] = {}
        self.backfills: dict[uuid.UUID, Future[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None  # of this loop: runs and chunks at once
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Webhook resyncs not started yet, by (source, period): a burst of events for one day
        # becomes one read of that day.
        self._resyncs: dict[tuple[uuid.UUID, Window], Future[int]] = {}
        self._resync_lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The loop's thread starts on first use, so an app that never syncs costs nothing."""
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=loop.run_forever, name="inflow-worker", daemon=True
                )
                self._thread.start()
                self._slots = asyncio.Semaphore(self.concurrency)
                self._loop = loop
            return self._loop

    def _slotted(self) -> asyncio.Semaphore:
        self._ensure_loop()
        assert self._slots is not None  # noqa: S101 (made with the loop)
        return self._slots

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 300.0) -> T:
        """Run ``coro`` on the worker loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result(timeout)

    def start_scheduler(self, tick_s: float = 30.0) -> None:
        """Run the embedded scheduler on this loop: due sources get a run every tick."""
        asyncio.run_coroutine_threadsafe(
            run_scheduler(self.deps.factory, self.submit, tick_s=tick_s), self._ensure_loop()
        )

    def submit(self, run_id: uuid.UUID) -> Future[RunResult] | None:
        """Start a queued run in the background once a slot is free, in the order of the
        submissions (external mode: leave it to the workers). Until it starts it stays
        ``queued``; cancelled meanwhile, it is not started."""
        if self.jobs is not None:
            self.jobs.submit_run(self.deps.factory, run_id)
            return None
        if self.external:
            return None
        slots = self._slotted()  # (Semaphore waiters are served first come, first served)
        future = asyncio.run_coroutine_threadsafe(self._run(slots, run_id), self._ensure_loop())
        self.runs[run_id] = future
        future.add_done_callback(lambda _f: self.runs.pop(run_id, None))
        return future

    async def _run(self, slots: asyncio.Semaphore, run_id: uuid.UUID) -> RunResult:
        async with slots:
            return await run_sync(self.deps, run_id)

    def backfill(self, backfill_id: uuid.UUID, source_id: uuid.UUID) -> Future[str] | None:
        """Run a backfill's chunks in the background, one after another, each in a slot as a
        run (external mode: each chunk a job of the workers')."""
        if self.jobs is not None:
            self.jobs.submit_backfill(backfill_id, source_id)
            return None
        if self.external:
            return None
        with self._resync_lock:  # one loop per backfill (a second start resumes the same)
            running = self.backfills.get(backfill_id)
            if running is not None and not running.done():
                return running
            future = asyncio.run_coroutine_threadsafe(
                backfill.run_backfill(self.deps, backfill_id, slots=self._slotted()),
                self._ensure_loop(),
            )
            self.backfills[backfill_id] = future
        return future

    def resync(self, source_id: uuid.UUID, window: Window, *, delay_s: float = 1.0) -> Future[int]:
        """Read ``window`` of a source again in the background, after ``delay_s`` (events of
        a burst arriving meanwhile join this read instead of starting their own)."""
        if self.jobs is not None:
            return self.jobs.submit_resync(source_id, window, delay_s)
        key = (source_id, window)
        with self._resync_lock:
            pending = self._resyncs.get(key)
            if pending is not None:
                return pending
            future = asyncio.run_coroutine_threadsafe(
                self._resync(key, delay_s), self._ensure_loop()
            )
            self._resyncs[key] = future
        return future

    async def _resync(self, key: tuple[uuid.UUID, Window], delay_s: float) -> int:
        await asyncio.sleep(delay_s)
        with self._resync_lock:  # from here on a new event needs a read of its own
            self._resyncs.pop(key, None)
        try:
            return await webhooks.resync(self.deps, *key)
        except Exception:
            log.exception("webhook resync failed", source_id=str(key[0]))
            return 0

    def drain(self, timeout: float = 60.0) -> None:
        """Wait for the pending webhook resyncs (tests, shutdown)."""
        with self._resync_lock:
            pending = list(self._resyncs.values())
        for future in pending:
            future.result(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop at once: running syncs are cancelled and end as ``interrupted`` (what they
        committed stays; the next run resumes from it), then the loop stops.

        A sync may take far longer than a service manager waits after SIGTERM (10 s for
        Docker): waiting for it would end in a SIGKILL, leaving its run to the lease."""
        started = list(self.runs)
        if self.jobs is not None:
            self.jobs.close()
        if self._loop is not None and self._thread is not None:
            try:  # runs, resyncs and the scheduler end; the limiter's Redis connections
                self.call(_cancel_others(), timeout)  # belong to this loop
                self.call(self.deps.limiter.aclose(), timeout)
            except Exception:  # shutting down: a failed close must not block it
                log.warning("stopping the worker loop failed")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
            self._loop = self._slots = None
        try:  # any run its task could not mark (its claim was in flight, say)
            release_runs(self.deps.factory, started)
        except Exception:
            log.warning("could not hand back this process's runs", exc_info=True)


async def _cancel_others() -> None:
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


@dataclass(frozen=True)
class _Work:
    """What a polling worker takes next: a queued ``run``, or a chunk of a ``backfill``."""

    kind: Literal["run", "backfill"]
    id: uuid.UUID
    since: datetime


def _todo(factory: sessionmaker[Session], limit: int) -> list[_Work]:
    """The oldest queued runs and unfinished backfills not waiting (a rate limit's reset, a
    sync holding the source), oldest first: a backfill keeps its place while chunks remain."""
    now = utcnow()
    with factory() as session:
        runs = session.execute(
            select(SyncRun.id, SyncRun.created_at)
            .where(SyncRun.status == RunStatus.QUEUED)
            .order_by(SyncRun.created_at)
            .limit(limit)
        ).all()
        backfills = session.execute(  # (all: a few, some of them waiting)
            select(Backfill.id, Backfill.created_at, Backfill.waiting)
            .where(Backfill.state.in_(backfill.UNFINISHED))
            .order_by(Backfill.created_at)
        ).all()
    work = [_Work("run", run_id, at) for run_id, at in runs]
    work += [
        _Work("backfill", row.id, row.created_at)
        for row in backfills
        if not _waits(row.waiting, now)
    ]
    return sorted(work, key=lambda w: w.since)[:limit]


def _waits(waiting: dict[str, Any] | None, now: datetime) -> bool:
    until = (waiting or {}).get("until")
    if not isinstance(until, str):
        return False
    try:
        return datetime.fromisoformat(until) > now
    except ValueError:
        return False


async def run_worker(
    deps: EngineDeps, *, concurrency: int = 2, poll_s: float = 2.0, once: bool = False
) -> int:
    """Claim and run queued runs and backfill chunks, ``concurrency`` at a time; returns how
    many it ran (syncs and chunks read).

    A backfill is read a chunk at a time, each a job of its own: the chunk holds its source
    as a run (one writer per source across workers); a chunk that must wait (a rate limit,
    a sync holding the source) is tried again once the wait is over. ``once``: stop when
    nothing is left to start now (for scripts and tests). Cancelled (the process is
    stopping), it cancels its runs and chunks, which end as ``interrupted``."""
    ran = 0
    active: dict[asyncio.Task[Any], _Work] = {}
    later: dict[uuid.UUID, float] = {}  # backfills told to wait, until (this loop's clock)
    loop = asyncio.get_running_loop()
    try:
        while True:
            await asyncio.to_thread(_recover, deps)
            taken = {w.id for w in active.values()}
            for work in await asyncio.to_thread(_todo, deps.factory, concurrency * 2):
                if len(active) >= concurrency:
                    break
                if work.id in taken or later.get(work.id, 0.0) > loop.time():
                    continue
                job: Coroutine[Any, Any, Any] = (
                    run_sync(deps, work.id)
                    if work.kind == "run"
                    else backfill.run_chunk(deps, work.id)
                )
                active[asyncio.create_task(job)] = work
                taken.add(work.id)
            if not active:
                if once:
                    return ran
                await asyncio.sleep(poll_s)
                continue
            done, _ = await asyncio.wait(
                active, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                work = active.pop(task)
                result = task.result()
                if isinstance(result, backfill.ChunkOutcome):
                    ran += result.read
                    if result.kind in ("wait", "busy"):
                        later[work.id] = loop.time() + result.wait_s
                else:
                    ran += result.status != "not_claimed"
    finally:
        for task in active:
            task.cancel()
        await asyncio.gather(*active, return_exceptions=True)
        runs = [w.id for w in active.values() if w.kind == "run"]
        await asyncio.to_thread(release_runs, deps.factory, runs)


async def until_stopped(coro: Coroutine[Any, Any, T]) -> T | None:
    """Run ``coro`` until it ends, or until SIGTERM or SIGINT cancels it (its cleanup runs:
    ``run_worker`` hands its runs back); None when stopped so."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def stop() -> None:
        stopped.set()
        task.cancel()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
            loop.add_signal_handler(sig, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if not stopped.is_set():
            raise
        return None
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def _recover(deps: EngineDeps) -> None:
    with deps.factory() as session:
        recover_stale_runs(session)
        backfill.recover_chunks(session)  # their backfills say they wait to be resumed
        session.commit()

"""Backfills: a past range of a source's days read again, chunk by chunk.

A backfill is planned once (``plan_chunks``: the source's own days, in chunks of the
connector's ``backfill_chunk``, a week by default, never wider than its ``max_range``) and
stored with one row per chunk. Each chunk is a job of its own (``run_chunk``), run through the
one job interface: embedded, ``InProcessWorker.backfill`` runs them one after another
(``run_backfill``); distributed, each is a procrastinate ``inflow.backfill`` job holding the
source's lock, which defers the next.

- One writer per source: a chunk holds the source the way a sync does, with a run
  (``trigger="backfill"``) under the one-active-run-per-source index, owned by this process and
  its lease renewed; while a sync holds the source, the chunk waits (and a sync asked for
  meanwhile is refused as for any run in progress).
- The chunk's points go through the sync's upsert (``repo.upsert_data_points``); they, the
  chunk's ``done`` and its run's end commit in one transaction, so a chunk done is never read
  again and a crash resumes with the chunks not done.
- A provider's rate limit or spent quota (``RateLimitedError``) makes the backfill wait until
  the reset (its ``waiting`` says until when), never fail; any other error fails it, with the
  chunks done kept.
- A chunk whose process stopped is never shown ``running``: once its run is known to be a
  stopped process's (``recover_stale_runs``: at once on this host, else when its lease lapses;
  a procrastinate worker's silence), ``recover_chunks`` puts the chunk back to ``pending`` and
  the backfill ``waiting`` to be resumed (saying why); the next process reads the chunk
  again (embedded: at its start; ``inflow worker``: its next poll; procrastinate: the stalled
  job retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors.records import DataPoint
from inflow.connectors.spec import Connector, Window
from inflow.errors import ConflictError, NotFoundError, RateLimitedError
from inflow.logging import get_logger
from inflow.storage import repo
from inflow.storage.models import (
    Backfill,
    BackfillChunk,
    DataSource,
    RunStatus,
    SyncRun,
    utcnow,
)
from inflow.sync.engine import (
    LEASE,
    SHUT_DOWN,
    EngineDeps,
    RunRecorder,
    _error_record,
    _finish_in,
    _keep_lease,
    _mine,
    fetch_points,
    process_owner,
    recover_stale_runs,
)

log = get_logger(__name__)

DEFAULT_CHUNK = timedelta(days=7)
BUSY_WAIT_S = 5.0  # a source held by a sync: look again after this long
UNFINISHED = ("queued", "running", "waiting")
FINAL = ("succeeded", "failed", "cancelled")


def chunk_days(connector: Connector | None) -> int:
    """Days per chunk: the connector's ``backfill_chunk`` (else a week), within ``max_range``."""
    size = (connector.backfill_chunk if connector else None) or DEFAULT_CHUNK
    if connector is not None and connector.max_range is not None:
        size = min(size, connector.max_range)
    return max(1, size.days)


def midnight(day: date, zone: tzinfo) -> datetime:
    """The instant (UTC) a day of ``zone`` starts."""
    return datetime.combine(day, time.min, zone).astimezone(UTC)


def plan_chunks(first: date, last: date, days: int, zone: tzinfo) -> list[Window]:
    """``first`` … ``last`` (included) as windows of ``days`` whole days of ``zone``."""
    out: list[Window] = []
    day = first
    while day <= last:
        upto = min(day + timedelta(days=days), last + timedelta(days=1))
        out.append(Window(midnight(day, zone), midnight(upto, zone)))
        day = upto
    return out


def create_backfill(
    session: Session,
    *,
    source: DataSource,
    first: date,
    last: date,
    chunks: list[Window],
    created_by: str | None,
) -> Backfill:
    """A queued backfill with its chunks (the caller commits and submits it)."""
    backfill = Backfill(
        source_id=source.id, first_day=first, last_day=last, state="queued", created_by=created_by
    )
    backfill.chunks = [
        BackfillChunk(seq=i, start=w.start, end=w.end, state="pending")
        for i, w in enumerate(chunks)
    ]
    session.add(backfill)
    session.flush()
    return backfill


def unfinished(session: Session, *, source_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Backfills not yet ended (oldest first): what a restarted process resumes."""
    stmt = select(Backfill.id).where(Backfill.state.in_(UNFINISHED))
    if source_id is not None:
        stmt = stmt.where(Backfill.source_id == source_id)
    return list(session.execute(stmt.order_by(Backfill.created_at)).scalars())


def cancel(backfill: Backfill) -> None:
    """Ask a backfill to stop: at once when no chunk runs, else after its current chunk.

    Its row is locked and read again first (PostgreSQL): a chunk starting meanwhile either
    sees the cancel or is seen running, never overwrites it (``_begin`` locks it too)."""
    session = Session.object_session(backfill)
    if session is not None:
        session.refresh(backfill, with_for_update=True)
    if backfill.state in FINAL:
        return
    backfill.cancel_requested = True
    if not any(c.state == "running" for c in backfill.chunks):
        _end_cancelled(backfill)


def restart(backfill: Backfill) -> None:
    """A failed or cancelled backfill queued again: its chunks not done are read, no other."""
    backfill.state, backfill.error, backfill.waiting = "queued", None, None
    backfill.cancel_requested, backfill.finished_at = False, None
    for chunk in backfill.chunks:
        if chunk.state != "done":
            chunk.state = "pending"


def _end_cancelled(backfill: Backfill) -> None:
    backfill.state = "cancelled"
    backfill.waiting = None
    backfill.finished_at = utcnow()
    for chunk in backfill.chunks:
        if chunk.state in ("pending", "running"):
            chunk.state = "cancelled"


# ---------------------------------------------------------------- one chunk (the job)


@dataclass(frozen=True)
class ChunkOutcome:
    """What a chunk job did: ``more`` chunks remain; the backfill ``ended`` (its ``state``);
    it must ``wait`` ``wait_s`` (rate limit, quota, or a sync holding the source: ``busy``)."""

    kind: Literal["more", "ended", "wait", "busy"]
    state: str = ""
    wait_s: float = 0.0
    error: BaseException | None = None
    read: bool = False  # a chunk was read and stored


@dataclass(frozen=True)
class _Held:
    run_id: uuid.UUID
    source_id: uuid.UUID
    seq: int
    window: Window


def _hold_source(session: Session, source_id: uuid.UUID) -> uuid.UUID:
    """A running run of this process on the source (its one writer), or ``ConflictError``."""
    recover_stale_runs(session, source_id=source_id)  # a stopped process's run (and chunk)
    recover_chunks(session, source_id=source_id)
    session.commit()
    now = utcnow()
    run = SyncRun(
        source_id=source_id,
        trigger="backfill",
        status=RunStatus.RUNNING,
        started_at=now,
        lease_until=now + LEASE,
        owner=process_owner(),
    )
    session.add(run)
    try:
        session.flush()
    except IntegrityError as exc:  # a sync (or another chunk) holds the source
        session.rollback()
        raise ConflictError("a sync of this source is queued or running") from exc
    # Held from now: a run that ended just before took its end time before its commit, which
    # may be after the ``now`` above (a thread between its clock and its insert).
    run.started_at = utcnow()
    run.lease_until = run.started_at + LEASE
    session.flush()
    return run.id


def _settled(backfill: Backfill) -> ChunkOutcome | None:
    """The backfill's end when it has no chunk to read (ended, cancelled, or all done)."""
    if backfill.state in FINAL:
        return ChunkOutcome("ended", backfill.state)
    if backfill.cancel_requested:
        _end_cancelled(backfill)
        return ChunkOutcome("ended", backfill.state)
    if all(c.state == "done" for c in backfill.chunks):
        _end(backfill, "succeeded")
        return ChunkOutcome("ended", backfill.state)
    return None


def _begin(factory: sessionmaker[Session], backfill_id: uuid.UUID) -> _Held | ChunkOutcome:
    with factory() as session:
        backfill = session.get(Backfill, backfill_id)
        if backfill is None:
            raise NotFoundError(f"backfill {backfill_id} not found")
        settled = _settled(backfill)
        if settled is not None:
            session.commit()
            return settled
        source_id = backfill.source_id
        try:
            run_id = _hold_source(session, source_id)
        except ConflictError:
            backfill = session.get(Backfill, backfill_id)  # (rolled back: loaded again)
            if backfill is not None and not (
                backfill.state in FINAL or any(c.state == "running" for c in backfill.chunks)
            ):
                until = utcnow() + timedelta(seconds=BUSY_WAIT_S)
                backfill.state = "waiting"
                backfill.waiting = _waiting("a sync of this source is running", until)
                session.commit()
            return ChunkOutcome("busy", "waiting", BUSY_WAIT_S)
        # Holding the source, read the chunks again: a writer before us may have done one.
        session.expire_all()
        backfill = session.get_one(Backfill, backfill_id, with_for_update=True)  # (``cancel``)
        settled = _settled(backfill)
        if settled is not None:
            session.execute(delete(SyncRun).where(SyncRun.id == run_id))  # nothing to hold it for
            session.commit()
            return settled
        chunk = next(c for c in backfill.chunks if c.state != "done")
        chunk.state, chunk.run_id = "running", run_id
        backfill.state, backfill.waiting = "running", None
        session.commit()
        return _Held(run_id, source_id, chunk.seq, Window(chunk.start, chunk.end))


def _waiting(reason: str, until: datetime) -> dict[str, Any]:
    return {"state": "waiting", "reason": reason[:500], "until": until.isoformat()}


def _resumed(seq: int, error: dict[str, Any] | None) -> dict[str, Any]:
    """The wait of a backfill whose chunk's process stopped: until a process resumes it."""
    how = "shut down" if (error or {}).get("type") == "ShutDown" else "killed or crashed"
    return {
        "state": "waiting",
        "reason": f"the process reading chunk {seq + 1} stopped ({how}); "
        "the next process to run the backfill reads that chunk again",
        "interrupted": True,
    }


def recover_chunks(session: Session, *, source_id: uuid.UUID | None = None) -> int:
    """Chunks shown ``running`` whose run no longer runs (its process stopped: the run was
    recovered as ``interrupted``) go back to ``pending``, and their backfill waits to be
    resumed (cancelled if that was asked); returns how many. The caller commits."""
    stmt = (
        select(BackfillChunk, SyncRun.error)
        .outerjoin(SyncRun, SyncRun.id == BackfillChunk.run_id)
        .where(
            BackfillChunk.state == "running",
            or_(SyncRun.id.is_(None), SyncRun.status != RunStatus.RUNNING),
        )
    )
    if source_id is not None:
        stmt = stmt.join(Backfill, Backfill.id == BackfillChunk.backfill_id).where(
            Backfill.source_id == source_id
        )
    found = session.execute(stmt).all()
    for row in found:
        chunk, error = row.BackfillChunk, row.error
        backfill = session.get_one(Backfill, chunk.backfill_id)
        chunk.state = "pending"
        if backfill.state in FINAL:
            continue
        if backfill.cancel_requested:
            _end_cancelled(backfill)
        else:  # (a live process ending its chunk meanwhile writes its own end over this)
            backfill.state, backfill.waiting = "waiting", _resumed(chunk.seq, error)
    if found:
        session.flush()
        log.warning("chunks of stopped processes handed back", chunks=len(found))
    return len(found)


def _end(backfill: Backfill, state: str, error: dict[str, Any] | None = None) -> None:
    backfill.state, backfill.error, backfill.waiting = state, error, None
    backfill.finished_at = utcnow()


def _complete(
    factory: sessionmaker[Session],
    backfill_id: uuid.UUID,
    held: _Held,
    points: list[DataPoint],
    recorder: RunRecorder,
) -> ChunkOutcome:
    """The chunk's points, its ``done``, its run's end: one transaction."""
    with factory() as session:
        counts = repo.upsert_data_points(session, source_id=held.source_id, points=points)
        ended = session.execute(
            update(SyncRun)
            .where(*_mine(held.run_id))
            .values(
                status=RunStatus.SUCCEEDED,
                finished_at=utcnow(),
                lease_until=None,
                created=counts.created,
                updated=counts.updated,
                unchanged=counts.unchanged,
                timeline=recorder.as_dict(),
            )
        )
        if not ended.rowcount:  # type: ignore[attr-defined]
            # recovered as a stopped process's meanwhile: another writer may hold the source
            session.rollback()
            return ChunkOutcome("busy", "waiting", BUSY_WAIT_S)
        backfill = session.get(Backfill, backfill_id)
        if backfill is None:  # deleted with its source
            session.rollback()
            return ChunkOutcome("ended", "cancelled")
        chunk = next(c for c in backfill.chunks if c.seq == held.seq)
        chunk.state, chunk.points, chunk.finished_at = (
            "done",
            counts.created + counts.updated,
            utcnow(),
        )
        left = any(c.state != "done" for c in backfill.chunks)
        if not left:
            _end(backfill, "succeeded")
        elif backfill.cancel_requested:
            _end_cancelled(backfill)
        session.commit()
        return ChunkOutcome(
            "more" if left and backfill.state == "running" else "ended", backfill.state, read=True
        )


def _stopped(
    factory: sessionmaker[Session],
    backfill_id: uuid.UUID,
    held: _Held,
    recorder: RunRecorder,
    *,
    run_status: str,
    run_error: dict[str, Any] | None,
    state: str,
    waiting: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    """A chunk that did not finish: its run ends, the chunk goes back to pending (or failed),
    in one transaction. A run recovered as a stopped process's meanwhile is left as the
    recovery left it, chunk included (another writer may hold the source by now)."""
    with factory() as session:
        if not _finish_in(session, held.run_id, run_status, recorder, repo.Counts(), run_error):
            session.rollback()
            return
        backfill = session.get(Backfill, backfill_id)
        if backfill is None:
            session.commit()
            return
        chunk = next(c for c in backfill.chunks if c.seq == held.seq)
        chunk.state = "failed" if state == "failed" else "pending"
        if state == "failed":
            _end(backfill, "failed", error)
        else:
            backfill.state, backfill.waiting = state, waiting
        session.commit()


async def run_chunk(deps: EngineDeps, backfill_id: uuid.UUID) -> ChunkOutcome:
    """Read and store the backfill's first chunk not done (one job)."""
    held = await asyncio.to_thread(_begin, deps.factory, backfill_id)
    if isinstance(held, ChunkOutcome):
        return held
    recorder = RunRecorder()
    heartbeat = asyncio.create_task(_keep_lease(deps.factory, held.run_id))
    try:
        points = await fetch_points(deps, held.source_id, held.window, recorder=recorder)
        return await asyncio.to_thread(_complete, deps.factory, backfill_id, held, points, recorder)
    except asyncio.CancelledError:  # the process is stopping: the chunk is read again later
        await asyncio.to_thread(
            _stopped,
            deps.factory,
            backfill_id,
            held,
            recorder,
            run_status=RunStatus.INTERRUPTED,
            run_error=SHUT_DOWN,
            state="waiting",
            waiting=_resumed(held.seq, SHUT_DOWN),
        )
        raise
    except RateLimitedError as exc:  # the provider's limit or quota: wait for its reset
        wait_s = max(exc.retry_after or BUSY_WAIT_S, 1.0)
        until = utcnow() + timedelta(seconds=wait_s)
        await asyncio.to_thread(
            _stopped,
            deps.factory,
            backfill_id,
            held,
            recorder,
            run_status=RunStatus.CANCELLED,
            run_error=_error_record(exc),
            state="waiting",
            waiting=_waiting(f"{exc.message}; the chunk is read again then", until),
        )
        log.warning("backfill waits for a rate limit", backfill_id=str(backfill_id), s=wait_s)
        return ChunkOutcome("wait", "waiting", wait_s, exc)
    except Exception as exc:  # the worker boundary: recorded, the chunks done are kept
        error = _error_record(exc)
        if not isinstance(exc, NotFoundError | RateLimitedError):
            log.warning("backfill chunk failed", backfill_id=str(backfill_id), exc_info=True)
        await asyncio.to_thread(
            _stopped,
            deps.factory,
            backfill_id,
            held,
            recorder,
            run_status=RunStatus.FAILED,
            run_error=error,
            state="failed",
            error=error,
        )
        return ChunkOutcome("ended", "failed", error=exc)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat


async def run_backfill(
    deps: EngineDeps,
    backfill_id: uuid.UUID,
    *,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
    slots: asyncio.Semaphore | None = None,
) -> str:
    """Run the backfill's chunks one after another here (embedded mode, the CLI), waiting
    out rate limits and syncs holding the source; returns its final state. ``slots``: each
    chunk takes one as a run does (the embedded worker's cap), none while it waits."""
    while True:
        async with slots or contextlib.nullcontext():
            outcome = await run_chunk(deps, backfill_id)
        if on_chunk is not None:
            on_chunk(outcome)
        if outcome.kind == "ended":
            return outcome.state
        if outcome.kind in ("wait", "busy"):
            await asyncio.sleep(outcome.wait_s)

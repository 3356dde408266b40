"""The sync engine: streams → batches → one transaction per batch (upsert + checkpoint).

- Records stream through a bounded queue: the next page is fetched while a batch is written
  (in a worker thread), so memory stays flat and network and disk overlap.
- Each batch and the stream state it reaches commit together; a crash resumes from the last
  checkpoint with nothing lost and nothing doubled (upserts are idempotent).
- One run per source at a time: a partial unique index allows one queued/running run.
- A run belongs to the process that claimed it (``owner``) while its lease is renewed. A run
  whose process is gone ends as ``interrupted`` (at once when that process was on this host,
  else once its lease lapses), and a stopping process hands its runs back the same way, so a
  new run can start and resume from the checkpoint.
- A run keeps a timeline of its requests and says when it waits on a rate limit; its counts,
  error (classified, redacted) and the source's health are recorded when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import secrets
import socket
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from inflow.connectors import get_connector
from inflow.connectors.records import Asset, AssetKind, DataPoint, Record
from inflow.connectors.runtime import Chunk, ConnectorRuntime
from inflow.connectors.spec import CheckStep, Connector, ConnectorConfig, Stream, Window
from inflow.errors import (
    ConfigError,
    ConflictError,
    CredentialsError,
    InflowError,
    NotFoundError,
    RateLimitedError,
    SyncCancelled,
    UnexpectedResponseError,
)
from inflow.http.client import HttpOptions, TimelineEntry
from inflow.http.ratelimit import OutboundLimiter
from inflow.logging import get_logger
from inflow.storage import repo
from inflow.storage.crypto import Vault
from inflow.storage.models import DataSource, HealthStatus, RunStatus, SyncRun, utcnow
from inflow.storage.quota import DbQuotaGate
from inflow.sync.attention import AlertOptions, Outcome, alert, record_outcome
from inflow.sync.tokens import SourceTokenStore

log = get_logger(__name__)
LEASE = timedelta(seconds=90)  # renewed every third of it while the run lives
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
RESUMES = "the next sync resumes from the last checkpoint"
WORKER_LOST = {
    "type": "WorkerLost",
    "fault": "system",
    "message": f"the process running this sync stopped (killed or crashed); {RESUMES}",
}
SHUT_DOWN = {
    "type": "ShutDown",
    "fault": "system",
    "message": f"the server stopped during this sync (shut down); {RESUMES}",
}


@dataclass
class EngineDeps:
    """What the engine needs from its host process."""

    factory: sessionmaker[Session]
    vault: Vault
    options: HttpOptions = field(default_factory=HttpOptions)
    limiter: OutboundLimiter = field(default_factory=OutboundLimiter)
    transport: httpx.AsyncBaseTransport | None = None  # test seam / in-process sandbox
    batch_size: int = 5000
    alerts: AlertOptions = field(default_factory=AlertOptions)  # failures that get attention


# ---------------------------------------------------------------- runs


def enqueue_run(
    session: Session, *, source: DataSource, trigger: str, scheduled_for: datetime | None = None
) -> SyncRun:
    """A queued run, or ``ConflictError`` naming the run already queued or running
    (``scheduled_for``: the slot of a scheduled run)."""
    recover_stale_runs(session, source_id=source.id)
    active = session.execute(
        select(SyncRun.id).where(SyncRun.source_id == source.id, SyncRun.status.in_(ACTIVE))
    ).scalar_one_or_none()
    if active is not None:
        raise ConflictError(f"a sync of this source is already queued or running (run {active})")
    run = SyncRun(
        source_id=source.id,
        trigger=trigger,
        status=RunStatus.QUEUED,
        scheduled_for=scheduled_for,
    )
    session.add(run)
    try:
        session.flush()
    except IntegrityError as exc:  # another process enqueued between our check and insert
        session.rollback()
        raise ConflictError("a sync of this source is already queued or running") from exc
    return run


# ---------------------------------------------------------------- owners

_HOST = socket.gethostname()
_TOKEN = secrets.token_hex(6)  # made once, at import: every thread sees the same


def process_owner() -> str:
    """This process as the owner of the runs it claims: ``host:pid:token``.

    The random token tells this process from an earlier one that had the same pid (PID 1 of
    a restarted container); a forked child has a pid, so an owner, of its own.
    """
    return f"{_HOST}:{os.getpid()}:{_TOKEN}"


def owner_gone(owner: str | None) -> bool:
    """Whether the process that owns a run is known to be gone: a process of this host that
    no longer runs (or an earlier process that had this one's pid). A process of another host
    is never known to be gone: its lease decides."""
    if not owner or owner == process_owner():
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid == os.getpid() or not _running(pid)


def _running(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill would end the process there: ask the lease instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:  # a killed process its parent has not reaped yet (a zombie) runs no more
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def recover_stale_runs(session: Session, *, source_id: uuid.UUID | None = None) -> int:
    """Runs whose process is gone end as ``interrupted``; returns how many.

    A run whose owner was a process of this host that no longer runs is recovered at once
    (a server restarted after a kill); any other only when its lease lapsed, since its process
    renews the lease while it lives: a live process's run is never taken. The next run
    resumes from the checkpoint the interrupted one committed.
    """
    now = utcnow()
    stmt = select(SyncRun.id, SyncRun.owner, SyncRun.lease_until).where(
        SyncRun.status == RunStatus.RUNNING
    )
    if source_id is not None:
        stmt = stmt.where(SyncRun.source_id == source_id)
    recovered = 0
    for run_id, owner, lease in session.execute(stmt).all():
        if not (lease is not None and lease < now) and not owner_gone(owner):
            continue
        # Only as it was seen: a lease renewed meanwhile keeps the run with its process.
        seen = SyncRun.lease_until.is_(None) if lease is None else SyncRun.lease_until == lease
        result = session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.status == RunStatus.RUNNING, seen)
            .values(
                status=RunStatus.INTERRUPTED,
                finished_at=now,
                lease_until=None,
                waiting=None,
                error=WORKER_LOST,
            )
        )
        recovered += int(result.rowcount or 0)  # type: ignore[attr-defined]
    if recovered:
        log.warning("runs of stopped processes recovered as interrupted", runs=recovered)
    return recovered


def release_runs(factory: sessionmaker[Session], run_ids: Sequence[uuid.UUID]) -> int:
    """Runs of this process that are still running end as ``interrupted`` (it is stopping):
    a restarted server, or another worker, may start the next run at once; returns how many."""
    if not run_ids:
        return 0
    with factory() as session:
        result = session.execute(
            update(SyncRun)
            .where(
                SyncRun.id.in_(run_ids),
                SyncRun.status == RunStatus.RUNNING,
                SyncRun.owner == process_owner(),
            )
            .values(
                status=RunStatus.INTERRUPTED,
                finished_at=utcnow(),
                lease_until=None,
                waiting=None,
                error=SHUT_DOWN,
            )
        )
        session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _mine(run_id: uuid.UUID) -> tuple[ColumnElement[bool], ...]:
    """The run, while it is running and this process's (what a run's own writes are bound to)."""
    return (
        SyncRun.id == run_id,
        SyncRun.status == RunStatus.RUNNING,
        SyncRun.owner == process_owner(),
    )


class _RunLost(Exception):  # noqa: N818 (a signal, not an error)
    """The run is no longer this process's (recovered as interrupted): stop, record nothing."""


class RunRecorder:
    """A run's timeline (last requests), request totals, waiting state and skipped items,
    without secrets.

    ``persist`` stores the waiting state as soon as a wait begins, so the run says it is
    waiting while it waits (batches, which store everything else, are rare during a wait).
    """

    def __init__(
        self,
        keep: int = 200,
        *,
        persist: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.persist = persist
        self.entries: deque[TimelineEntry] = deque(maxlen=keep)
        self.requests = 0
        self.retries = 0
        self.statuses: Counter[str] = Counter()
        self.waited_s = 0.0
        self.waiting: dict[str, Any] | None = None
        self.skipped = 0  # items a stream could not read, skipped (the first reasons kept)
        self.skip_reasons: list[str] = []
        self.records = 0  # records read so far (for a live view; not stored)

    def on_timeline(self, entry: TimelineEntry) -> None:
        self.entries.append(entry)
        self.requests += 1
        self.retries += entry.attempt > 1
        self.statuses[str(entry.status) if entry.status else "error"] += 1
        if entry.status is not None and entry.status < 400:
            self.waiting = None

    def on_skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.skip_reasons) < 5:
            self.skip_reasons.append(reason[:300])

    def on_wait(self, reason: str, seconds: float) -> Awaitable[None] | None:
        self.waited_s += seconds
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        self.waiting = {"state": "waiting", "reason": reason, "until": until.isoformat()}
        return self.persist(self.waiting) if self.persist is not None else None

    def as_dict(self) -> dict[str, Any]:
        # a copy taken in one step: the run's loop may append while a writer thread reads
        entries = tuple(self.entries)
        skipped = {"skipped": {"items": self.skipped, "reasons": self.skip_reasons}}
        return {
            **(skipped if self.skipped else {}),
            "requests": self.requests,
            "retries": self.retries,
            "statuses": dict(self.statuses),
            "waitedS": round(self.waited_s, 3),
            "recent": [
                {
                    "at": datetime.fromtimestamp(e.at, UTC).isoformat(),
                    "method": e.method,
                    "path": e.path,
                    "status": e.status,
                    "ms": e.ms,
                    "attempt": e.attempt,
                    **({"note": e.note} if e.note else {}),
                }
                for e in entries
            ],
        }


# ---------------------------------------------------------------- runtime


def load_config(
    deps: EngineDeps, source_id: uuid.UUID, connector: Connector | None = None
) -> tuple[DataSource, Connector, ConnectorConfig]:
    """A stored source, its connector and its decrypted config (only to call the provider)."""
    with deps.factory() as session:
        return _load_config(session, deps, source_id, connector)


def _load_config(
    session: Session, deps: EngineDeps, source_id: uuid.UUID, connector: Connector | None = None
) -> tuple[DataSource, Connector, ConnectorConfig]:
    source = session.get(DataSource, source_id)
    if source is None:
        raise NotFoundError(f"data source {source_id} not found")
    connector = connector or get_connector(source.type)
    if connector is None:
        raise ConfigError(f"no connector is installed for type {source.type!r}")
    config = decrypted_config(source, connector, deps.vault)
    session.expunge(source)
    return source, connector, config


def decrypted_config(source: DataSource, connector: Connector, vault: Vault) -> ConnectorConfig:
    """The full config of a stored source, its secrets decrypted (only to call the provider)."""
    secrets = vault.decrypt(source.secrets) if source.secrets else {}
    return connector.config.model_validate({**source.config, **secrets})


def open_runtime(
    deps: EngineDeps,
    source_id: uuid.UUID,
    recorder: RunRecorder | None = None,
    *,
    connector: Connector | None = None,
    loaded: tuple[DataSource, Connector, ConnectorConfig] | None = None,
) -> tuple[DataSource, ConnectorRuntime]:
    """A runtime for a stored source: its config decrypted, its tokens from the vault.

    ``loaded``: what ``load_config`` returned, read off the event loop by an async caller (a
    worker's loop runs many syncs: a blocking read would stall them all)."""
    source, connector, config = loaded or load_config(deps, source_id, connector)
    runtime = ConnectorRuntime(
        connector,
        config,
        options=deps.options,
        key=str(source_id),
        limiter=deps.limiter,
        token_store=SourceTokenStore(deps.factory, deps.vault, source_id),
        transport=deps.transport,
        on_timeline=recorder.on_timeline if recorder else None,
        on_wait=recorder.on_wait if recorder else None,
        on_skip=recorder.on_skip if recorder else None,
        quota_gate=DbQuotaGate(deps.factory),  # a provider's daily calls, counted for all processes
    )
    return source, runtime


def _health_for(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, CredentialsError):
        return HealthStatus.NEEDS_REAUTH, f"{exc.message} — reconnect the source"
    if isinstance(exc, InflowError):
        return HealthStatus.FAILING, exc.message
    return HealthStatus.FAILING, "internal error; see the server log"


def set_health(
    factory: sessionmaker[Session], source_id: uuid.UUID, status: str, message: str
) -> None:
    with factory() as session:
        session.execute(
            update(DataSource)
            .where(DataSource.id == source_id)
            .values(health_status=status, health_message=message[:2000], health_checked_at=utcnow())
        )
        session.commit()


async def test_source(deps: EngineDeps, source_id: uuid.UUID) -> list[CheckStep]:
    """Run the connection test and record the source's health."""
    try:
        _, runtime = open_runtime(deps, source_id)
        async with runtime:
            steps = await runtime.check()
    except InflowError as exc:
        status, message = _health_for(exc)
        await asyncio.to_thread(set_health, deps.factory, source_id, status, message)
        return [CheckStep("configuration", False, message)]
    failed = next((s for s in steps if not s.ok), None)
    warned = next((s for s in steps if s.ok and s.warning), None)
    if failed is None:
        status, message = HealthStatus.OK, "connection test passed"
        if warned is not None:
            message = f"connection test passed with a warning: {warned.message}"
    else:
        status = HealthStatus.NEEDS_REAUTH if failed.reauth else HealthStatus.FAILING
        message = failed.message
    await asyncio.to_thread(set_health, deps.factory, source_id, status, message)
    return steps


async def fetch_points(
    deps: EngineDeps, source_id: uuid.UUID, window: Window, *, recorder: RunRecorder | None = None
) -> list[DataPoint]:
    """Data points of a date range, read live and stored nowhere (the fetch preview; a
    backfill chunk, which stores them)."""
    _, runtime = open_runtime(deps, source_id, recorder)
    points: list[DataPoint] = []
    async with runtime:
        for stream in runtime.connector.streams:
            if not stream.fetchable or (stream.parse is None and stream.reduce is None):
                continue
            async for chunk in runtime.read(stream, window=window):
                points.extend(r for r in chunk.records if isinstance(r, DataPoint))
    return points


# ---------------------------------------------------------------- the run


class _Writer:
    """Writes batches in a thread: upsert + checkpoint + progress in one transaction."""

    def __init__(
        self,
        deps: EngineDeps,
        run_id: uuid.UUID,
        source: DataSource,
        started: datetime,
        recorder: RunRecorder,
    ) -> None:
        self.deps, self.run_id, self.source, self.started, self.recorder = (
            deps,
            run_id,
            source,
            started,
            recorder,
        )
        self.counts = repo.Counts()
        self.changes: list[tuple[uuid.UUID, str]] = []
        self.partial_listing = False  # assets came from a stream that is not a full listing

    def write(
        self, stream: Stream, records: Sequence[Record], state: dict[str, Any] | None
    ) -> None:
        points = [r for r in records if isinstance(r, DataPoint)]
        assets = [r for r in records if isinstance(r, Asset)]
        with self.deps.factory() as session:
            if points:
                self.counts.add(
                    repo.upsert_data_points(session, source_id=self.source.id, points=points)
                )
            if assets:
                counts, changes = repo.upsert_assets(
                    session,
                    source_id=self.source.id,
                    space_id=self.source.space_id,
                    assets=assets,
                    seen_at=self.started,
                )
                self.counts.add(counts)
                self.changes.extend(changes)
                self.partial_listing |= not stream.deletes
            if state is not None:
                repo.save_state(session, source_id=self.source.id, stream=stream.name, state=state)
            cancel = self._progress(session)  # a lost run raises: its batch is rolled back
            session.commit()
        if cancel:
            raise SyncCancelled

    def _progress(self, session: Session) -> bool:
        """The run's counts and timeline, with its batch; whether a cancel was asked for.

        One conditional UPDATE: a run recovered as interrupted meanwhile (no longer running,
        or no longer this process's) raises ``_RunLost`` and its batch is rolled back."""
        counts = self.counts
        stored = session.execute(
            update(SyncRun)
            .where(*_mine(self.run_id))
            .values(
                created=counts.created,
                updated=counts.updated,
                unchanged=counts.unchanged,
                deleted=counts.deleted,
                lease_until=utcnow() + LEASE,
                waiting=self.recorder.waiting,
                timeline=self.recorder.as_dict(),
            )
            .returning(SyncRun.cancel_requested)
        ).first()
        if stored is None:
            if session.get(SyncRun, self.run_id) is None:
                raise SyncCancelled  # deleted with its source
            raise _RunLost
        return bool(stored.cancel_requested)

    def finish_run(self, streams: Sequence[Stream]) -> None:
        """After every stream was read to its end: assets not seen in this run vanished upstream.

        Only when the assets came from complete listings (``deletes`` streams) read whole: an
        empty listing then means every asset is gone; an item skipped as unreadable means the
        listing is not complete."""
        if not any(s.deletes for s in streams) or self.partial_listing or self.recorder.skipped:
            return  # (a skipped item, or a parent skipped with its children: not complete)
        with self.deps.factory() as session:
            self.counts.deleted += repo.mark_unseen_assets_deleted(
                session,
                source_id=self.source.id,
                kinds=get_args(AssetKind),
                seen_since=self.started,
            )
            self._progress(session)
            session.commit()


async def _sync_stream(
    runtime: ConnectorRuntime,
    stream: Stream,
    writer: _Writer,
    batch_size: int,
    state: dict[str, Any] | None,
) -> None:
    """Read one stream from its checkpoint ``state`` (None: from the start) to its end."""
    queue: asyncio.Queue[Chunk | None] = asyncio.Queue(maxsize=8)

    async def produce() -> None:
        async for chunk in runtime.read(stream, state=state):
            await queue.put(chunk)
        await queue.put(None)

    producer = asyncio.create_task(produce())
    pending: list[Record] = []
    latest: dict[str, Any] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                producer.result()  # re-raises the reader's error
                continue
            chunk = getter.result()
            if chunk is None:
                break
            writer.recorder.records += len(chunk.records)
            pending.extend(chunk.records)
            if chunk.state is not None:
                latest = chunk.state
            # A reduce stream's checkpoint closes a finished window (a calling day): its points
            # and the cursor commit together at once, so a crash resumes from the last day.
            if len(pending) >= batch_size or (stream.reduce is not None and chunk.state):
                await asyncio.to_thread(writer.write, stream, pending, latest)
                pending, latest = [], None
        if pending or latest is not None:
            await asyncio.to_thread(writer.write, stream, pending, latest)
        await producer
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer


def _save_waiting(
    factory: sessionmaker[Session], run_id: uuid.UUID, waiting: dict[str, Any]
) -> None:
    with factory() as session:
        session.execute(update(SyncRun).where(*_mine(run_id)).values(waiting=waiting))
        session.commit()


def _renew_lease(factory: sessionmaker[Session], run_id: uuid.UUID) -> None:
    try:
        with factory() as session:
            session.execute(
                update(SyncRun).where(*_mine(run_id)).values(lease_until=utcnow() + LEASE)
            )
            session.commit()
    except SQLAlchemyError:  # the next beat tries again; the run itself goes on
        log.warning("could not renew the run's lease", run_id=str(run_id), exc_info=True)


async def _keep_lease(factory: sessionmaker[Session], run_id: uuid.UUID) -> None:
    """Renew a live run's lease every third of it.

    Batches renew it too, but a slow page or a long ``Retry-After`` may keep a run from writing
    for longer than the lease; without this beat it would be taken for a dead worker's run,
    interrupted by ``recover_stale_runs`` and a second run started beside it.
    """
    while True:
        await asyncio.sleep(LEASE.total_seconds() / 3)
        await asyncio.to_thread(_renew_lease, factory, run_id)


def _claim(session: Session, run_id: uuid.UUID) -> SyncRun:
    """Queued → running, atomically: of several workers trying, exactly one succeeds (and
    becomes the run's owner). One statement: the run comes back with the UPDATE."""
    now = utcnow()
    run = session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.RUNNING,
            started_at=now,
            lease_until=now + LEASE,
            owner=process_owner(),
            waiting=None,  # a retried run no longer waits
        )
        .returning(SyncRun)
    ).scalar_one_or_none()
    if run is None:
        found = session.get(SyncRun, run_id)
        if found is None:
            raise NotFoundError(f"run {run_id} not found")
        raise ConflictError(f"run {run_id} is {found.status}, not queued")
    session.commit()
    return run


Loaded = tuple[DataSource, Connector, ConnectorConfig]


@dataclass
class _Start:
    """What a run starts from, read in one thread hop: the claimed run, its source's config
    (or why it could not be loaded: the run records that as its failure) and every stream's
    checkpoint."""

    run: SyncRun
    loaded: Loaded | Exception
    states: dict[str, dict[str, Any]]

    def config(self) -> Loaded:
        """The source's config; raises what kept it from loading."""
        if isinstance(self.loaded, Exception):
            raise self.loaded
        return self.loaded


def _start(deps: EngineDeps, run_id: uuid.UUID) -> _Start:
    with deps.factory() as session:
        run = _claim(session, run_id)
        try:
            loaded: Loaded | Exception = _load_config(session, deps, run.source_id)
        except Exception as exc:
            return _Start(run, exc, {})
        return _Start(run, loaded, repo.load_states(session, source_id=run.source_id))


def queued_runs(factory: sessionmaker[Session], limit: int = 10) -> list[uuid.UUID]:
    """The oldest queued runs, for workers to claim."""
    with factory() as session:
        return list(
            session.execute(
                select(SyncRun.id)
                .where(SyncRun.status == RunStatus.QUEUED)
                .order_by(SyncRun.created_at)
                .limit(limit)
            ).scalars()
        )


def _finish(
    factory: sessionmaker[Session],
    run_id: uuid.UUID,
    status: str,
    recorder: RunRecorder,
    counts: repo.Counts,
    error: dict[str, Any] | None,
) -> None:
    with factory() as session:
        _finish_in(session, run_id, status, recorder, counts, error)
        session.commit()


def _finish_in(
    session: Session,
    run_id: uuid.UUID,
    status: str,
    recorder: RunRecorder,
    counts: repo.Counts,
    error: dict[str, Any] | None,
) -> bool:
    """The run's end, in the caller's transaction; a run recovered as interrupted meanwhile
    keeps that end (returns False: nothing was ended)."""
    result = session.execute(
        update(SyncRun)
        .where(*_mine(run_id))
        .values(
            status=status,
            finished_at=utcnow(),
            lease_until=None,
            waiting=None,
            **_committed(recorder, counts, error),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _committed(
    recorder: RunRecorder, counts: repo.Counts, error: dict[str, Any] | None
) -> dict[str, Any]:
    """What a run that stops (for good, or until its retry) writes of what it did."""
    return {
        "created": counts.created,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "deleted": counts.deleted,
        "error": error,
        "timeline": recorder.as_dict(),
    }


@dataclass
class RunResult:
    run_id: uuid.UUID
    status: str
    counts: repo.Counts
    changes: list[tuple[uuid.UUID, str]]
    error: dict[str, Any] | None = None
    # A failure its host retries (``run_sync(retry_at=...)``): the run is queued again.
    exception: BaseException | None = field(default=None, repr=False)


RetryAt = Callable[[BaseException], datetime | None]


def _requeue(
    factory: sessionmaker[Session],
    run_id: uuid.UUID,
    until: datetime,
    recorder: RunRecorder,
    counts: repo.Counts,
    error: dict[str, Any],
) -> bool:
    """Running → queued again, waiting until ``until`` for its retry (a transient failure its
    host retries); False when the run is no longer this process's."""
    waiting = {
        "state": "waiting",
        "reason": f"retry after a transient failure: {error['message']}"[:500],
        "until": until.isoformat(),
    }
    with factory() as session:
        result = session.execute(
            update(SyncRun)
            .where(*_mine(run_id))
            .values(
                status=RunStatus.QUEUED,
                owner=None,
                lease_until=None,
                waiting=waiting,
                **_committed(recorder, counts, error),
            )
        )
        session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def run_sync(
    deps: EngineDeps,
    run_id: uuid.UUID,
    recorder: RunRecorder | None = None,
    *,
    retry_at: RetryAt | None = None,
) -> RunResult:
    """Execute a queued run to its end: succeeded, failed (classified) or cancelled; a run
    whose task is cancelled (the process is stopping) ends as interrupted. A ``recorder``
    given by the caller shows the run live (records read, requests, what it waits for).

    ``retry_at``: when the host (a job queue) will try a failure again, or None. A failure
    with a time is not the run's end: the run is queued again, waiting until then (what it
    committed stays; its retry resumes from the checkpoint), and the result carries the
    exception for the host to raise."""
    # A thread's future, not a task: a stopping loop cancels its tasks, and the claim in the
    # thread goes on regardless; its end is awaited to end the run it claimed.
    starting = asyncio.get_running_loop().run_in_executor(
        None, contextvars.copy_context().run, _start, deps, run_id
    )
    try:
        start = await asyncio.shield(starting)
    except ConflictError:  # cancelled, or taken by another worker, before it started
        return RunResult(run_id, "not_claimed", repo.Counts(), [])
    except asyncio.CancelledError:  # the process stops as the run starts: once claimed, it ends
        with contextlib.suppress(Exception):
            await starting
        await asyncio.to_thread(
            _finish, deps.factory, run_id, RunStatus.INTERRUPTED, RunRecorder(), repo.Counts(),
            SHUT_DOWN,
        )  # fmt: skip
        raise
    run = start.run

    async def persist_waiting(waiting: dict[str, Any]) -> None:
        await asyncio.to_thread(_save_waiting, deps.factory, run_id, waiting)

    recorder = recorder or RunRecorder()
    recorder.persist = persist_waiting
    started = time.perf_counter()
    writer: _Writer | None = None
    heartbeat = asyncio.create_task(_keep_lease(deps.factory, run_id))
    try:
        source, runtime = open_runtime(deps, run.source_id, recorder, loaded=start.config())
        writer = _Writer(deps, run_id, source, run.started_at or utcnow(), recorder)
        async with runtime:
            for stream in runtime.connector.streams:
                if stream.parse is None and stream.reduce is None:
                    continue  # a parent-only stream: read for its children
                state = start.states.get(stream.name)
                await _sync_stream(runtime, stream, writer, deps.batch_size, state)
            await asyncio.to_thread(writer.finish_run, runtime.connector.streams)
    except SyncCancelled:
        counts = writer.counts if writer else repo.Counts()
        await asyncio.to_thread(
            _finish, deps.factory, run_id, RunStatus.CANCELLED, recorder, counts, None
        )
        return RunResult(run_id, RunStatus.CANCELLED, counts, [])
    except _RunLost:
        log.warning("the run was recovered as a stopped process's: it stops", run_id=str(run_id))
        counts = writer.counts if writer else repo.Counts()
        return RunResult(run_id, RunStatus.INTERRUPTED, counts, [])
    except asyncio.CancelledError:  # the process is stopping: what was committed stays
        counts = writer.counts if writer else repo.Counts()
        await asyncio.to_thread(
            _finish, deps.factory, run_id, RunStatus.INTERRUPTED, recorder, counts, SHUT_DOWN
        )
        raise
    except Exception as exc:  # the worker boundary: every failure is recorded, none escapes
        counts = writer.counts if writer else repo.Counts()
        error = _error_record(exc)
        if not isinstance(exc, InflowError):
            log.exception("sync failed", run_id=str(run_id))
        until = retry_at(exc) if retry_at is not None else None
        if until is not None and await asyncio.to_thread(
            _requeue, deps.factory, run_id, until, recorder, counts, error
        ):
            log.warning("sync failed; retried later", run_id=str(run_id), until=str(until))
            return RunResult(run_id, RunStatus.QUEUED, counts, [], error, exception=exc)
        # a rate limit or a spent quota is a wait, not the source failing: not counted
        end = _End(RunStatus.FAILED, counts, error, _health_for(exc))
        await _end_run(deps, run, end, recorder, counted=not isinstance(exc, RateLimitedError))
        return RunResult(run_id, RunStatus.FAILED, counts, [], error)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    end = _End(RunStatus.SUCCEEDED, writer.counts, None, (HealthStatus.OK, "last sync succeeded"))
    await _end_run(deps, run, end, recorder)
    log.info(
        "sync finished",
        run_id=str(run_id),
        seconds=round(time.perf_counter() - started, 2),
        **writer.counts.as_dict(),
    )
    return RunResult(run_id, RunStatus.SUCCEEDED, writer.counts, writer.changes)


@dataclass(frozen=True)
class _End:
    """How a run ends: its status, counts and error, and its source's health after it."""

    status: str
    counts: repo.Counts
    error: dict[str, Any] | None
    health: tuple[str, str]


def _settle(
    deps: EngineDeps, run: SyncRun, end: _End, recorder: RunRecorder, *, counted: bool
) -> tuple[Outcome, dict[str, Any], bool]:
    """The source's health and its count of failures in a row (``attention``), and the run's
    end, in one transaction: whoever sees the run ended sees its source's count too. When the
    count calls for alerts the run's end waits for them (returns False: not ended yet)."""
    message = end.error["message"] if end.error else end.health[1]
    with deps.factory() as session:
        source = session.get(DataSource, run.source_id)
        if source is not None:
            source.health_status, source.health_message = end.health[0], end.health[1][:2000]
            source.health_checked_at = utcnow()
        outcome, shown = record_outcome(
            source,
            ok=end.error is None,
            message=message,
            stored=end.counts.created + end.counts.updated > 0,
            pause_after=deps.alerts.pause_after,
            counted=counted,
        )
        ended = not outcome.events
        if ended:
            _finish_in(session, run.id, end.status, recorder, end.counts, end.error)
        session.commit()
    return outcome, shown, ended


async def _end_run(
    deps: EngineDeps, run: SyncRun, end: _End, recorder: RunRecorder, *, counted: bool = True
) -> None:
    """Record a run's end (``_settle``) and send the alerts it calls for, before the run shows
    as ended. Counting never changes how a run ends: if it fails, the run still ends."""
    try:
        outcome, shown, ended = await asyncio.to_thread(
            _settle, deps, run, end, recorder, counted=counted
        )
    except Exception:
        log.exception("could not record the run's end on its source", source=str(run.source_id))
        outcome, shown, ended = Outcome((), 0, None), {}, False
    await alert(
        deps.alerts,
        outcome,
        shown,
        run_id=run.id,
        ok=end.error is None,
        message=end.error["message"] if end.error else end.health[1],
    )
    if not ended:
        await asyncio.to_thread(
            _finish, deps.factory, run.id, end.status, recorder, end.counts, end.error
        )


def _error_record(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
        until = datetime.now(UTC) + timedelta(seconds=exc.retry_after)
        retry_at = until.replace(microsecond=0).isoformat()
        return {
            "type": type(exc).__name__,
            "fault": exc.fault,
            "message": exc.message,
            "retryAt": retry_at,
        }
    if isinstance(exc, UnexpectedResponseError):  # the request and what was wrong, apart too
        request = f"{exc.method} {exc.url}" if exc.method else None
        return {
            "type": type(exc).__name__,
            "fault": exc.fault,
            "message": exc.message,
            **({"request": request} if request else {}),
            "problem": exc.problem,
        }
    if isinstance(exc, InflowError):
        return {"type": type(exc).__name__, "fault": exc.fault, "message": exc.message}
    return {
        "type": "InternalError",
        "fault": "system",
        "message": "internal error; see the server log",
    }

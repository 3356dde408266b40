"""Syncs at scale: many sources queued at once against a slow provider, embedded and distributed.

    .venv/bin/python -m bench.scale [--sources 1000] [--latency-ms 50] [--workers 0,1x2,1,2,4]
                                    [--concurrency 8] [--backends sqlite,postgres] [--small]
                                    [--keys per-source|shared]

One sandbox (``python -m inflow.sandbox``) runs in its own process with ``latencyMs`` set on the
``example`` emulator (every request sleeps that long before it is answered). For each mode a
fresh migrated database gets ``--sources`` ``example`` sources of one user (one request per
stream: one metrics page, no reports, no dashboards), the sandbox's stats are zeroed, then every
source gets a queued run in one transaction and the clock starts. ``--keys per-source`` (the
default) gives each source its own workspace's API key (the sandbox's ``keys`` volume), as 1,000
customers of a provider have; ``--keys shared`` gives them all one key, and so one outbound budget
(the connector's 50/s, filled to 45/s): then the provider's limit bounds the throughput.

- ``--workers 0`` (embedded): a fresh process builds the API's ``InProcessWorker`` and hands it
  every run (``submit``), as the API does; on each of ``--backends``. Its concurrency is the
  API's cap, ``INFLOW_EMBEDDED_CONCURRENCY`` (the environment's, else the default), or every
  run when there are fewer.
- ``--workers N`` or ``NxC`` (distributed, PostgreSQL): N ``inflow worker --concurrency C``
  processes (``INFLOW_WORKER=external``; C defaults to ``--concurrency``) are started and
  waited for (their procrastinate workers registered); then the runs are queued and their jobs
  deferred as the workers' tick defers them (``jobs.defer_syncs``). Concurrency = N x C.

Wall = the last run's ``finished_at`` - the moment before the enqueue (submitting included).
Ideal = provider requests (the sandbox's count) x latency / concurrency. CPU per sync is the
measured processes' user + system time (``/proc/PID/stat``) over the timed part / sources;
peak RSS is each process's ``VmHWM``. Every source must end with exactly one run, succeeded:
otherwise the bench fails. ``--json`` prints each result as a JSON line too (the smoke test
reads it; ``--table FILE`` prints such a file's table again). ``--profile DIR``: cProfile dumps
of the embedded process's main thread and of each worker (slower: not for figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.child import run_module
from bench.sync_throughput import Databases, sandbox, versions

INFLOW = Path(sys.executable).with_name("inflow")
CORES = os.cpu_count() or 1
SECRET = "bench-scale-secret-key-0123456789abcdef"  # noqa: S105 (a throwaway database's key)
VOLUME = {"pages": 1, "reports": 0, "dashboards": 0}


def peak_mb(pid: int | str = "self") -> float:
    """A process's peak resident set (VmHWM), in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int | str = "self") -> float:
    """A process's CPU time so far (user + system, all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> float:
    """CPU time the whole machine spent busy so far (every core: /proc/stat's first line,
    all but idle and iowait), in seconds: the workers, PostgreSQL, the sandbox, the bench."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def settings(db_url: str, data_dir: Path) -> Any:
    from pydantic import SecretStr

    from inflow.settings import Settings

    return Settings(
        data_dir=data_dir,
        database_url=db_url,
        secret_key=SecretStr(SECRET),
        allow_private_urls=True,
        log_level="WARNING",
    )


def worker_env(db_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLOW_")}
    env.update(
        INFLOW_DATABASE_URL=db_url,
        INFLOW_DATA_DIR=str(data_dir),
        INFLOW_SECRET_KEY=SECRET,
        INFLOW_ALLOW_PRIVATE_URLS="true",
        INFLOW_LOG_LEVEL="WARNING",
        INFLOW_WORKER="external",
    )
    return env


def seed(db_url: str, data_dir: Path, config: dict[str, Any], n: int, keys: str) -> None:
    """One user and ``n`` ``example`` sources of theirs (the API's own service); each with its
    own API key (``keys="per-source"``) or all with the config's."""
    from inflow.api.services import accounts
    from inflow.api.services.sources import create_source
    from inflow.sandbox.example import api_key
    from inflow.storage.crypto import KeyRing, Vault
    from inflow.storage.db import create_db_engine, make_session_factory, session_scope

    engine = create_db_engine(db_url)
    factory = make_session_factory(engine)
    vault = Vault.from_keyring(KeyRing(settings(db_url, data_dir)))
    with session_scope(factory) as session:
        user = accounts.create_user(session, email="scale@example.com", password=uuid.uuid4().hex)
        for i in range(n):
            own = {**config, "apiKey": api_key(i + 1)} if keys == "per-source" else config
            create_source(
                session, owner=user, name=f"scale {i}", type_="example", config=own, vault=vault
            )
    engine.dispose()


def enqueue_all(factory: Any) -> list[uuid.UUID]:
    """A queued run for every source, in one transaction: their ids."""
    from sqlalchemy import select

    from inflow.storage.db import session_scope
    from inflow.storage.models import DataSource
    from inflow.sync.engine import enqueue_run

    with session_scope(factory) as session:
        sources = session.execute(select(DataSource)).scalars().all()
        return [enqueue_run(session, source=s, trigger="manual").id for s in sources]


def outcome(db_url: str, started: datetime) -> dict[str, Any]:
    """Runs per source and status, and the wall time to the last finished run."""
    from sqlalchemy import func, select

    from inflow.storage.db import create_db_engine, make_session_factory
    from inflow.storage.models import DataSource, SyncRun

    engine = create_db_engine(db_url)
    with make_session_factory(engine)() as session:
        sources = session.scalar(select(func.count()).select_from(DataSource)) or 0
        per_source = dict(
            session.execute(
                select(SyncRun.source_id, func.count()).group_by(SyncRun.source_id)
            ).all()
        )
        statuses = dict(
            session.execute(select(SyncRun.status, func.count()).group_by(SyncRun.status)).all()
        )
        last = session.scalar(select(func.max(SyncRun.finished_at)))
        spans = session.execute(select(SyncRun.started_at, SyncRun.finished_at)).all()
    engine.dispose()
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return {
        "sources": sources,
        "exactly_one": sum(1 for c in per_source.values() if c == 1) == sources == len(per_source),
        "statuses": {str(k): v for k, v in statuses.items()},
        "wall_s": (last - started).total_seconds() if last else float("nan"),
        "run_s": sum((b - a).total_seconds() for a, b in spans if a and b) / max(len(spans), 1),
    }


def finished(db_url_engine: Any, total: int) -> bool:
    from sqlalchemy import func, select

    from inflow.storage.models import SyncRun

    with db_url_engine.connect() as conn:
        done = conn.scalar(
            select(func.count())
            .select_from(SyncRun)
            .where(SyncRun.status.in_(("succeeded", "failed", "cancelled", "interrupted")))
        )
    return (done or 0) >= total


# ---------------------------------------------------------------- the embedded mode


def child_embedded(p: dict[str, Any]) -> dict[str, Any]:
    """A fresh process: the API's ``InProcessWorker`` runs every queued run (``submit``)."""
    from sqlalchemy import event

    from inflow.api.app import engine_deps
    from inflow.storage.crypto import KeyRing, Vault
    from inflow.storage.db import BACKGROUND_CONNECTIONS, create_db_engine, make_session_factory
    from inflow.sync.worker import InProcessWorker

    s = settings(p["db_url"], Path(p["data_dir"]))
    engine = create_db_engine(p["db_url"], connections=s.db_concurrency + BACKGROUND_CONNECTIONS)
    factory = make_session_factory(engine)
    worker = InProcessWorker(
        engine_deps(s, factory, Vault.from_keyring(KeyRing(s))), concurrency=s.embedded_concurrency
    )
    statements = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def count(*_args: Any) -> None:
        statements[0] += 1

    httpx.get(p["warm_url"]).raise_for_status()  # httpx's lazy imports, as a live process has
    profile = None
    if p.get("profile"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    cpu_before, machine_before = cpu_s(), machine_cpu_s()
    started = datetime.now(UTC)
    run_ids = enqueue_all(factory)
    statements[0] = 0
    futures = [worker.submit(run_id) for run_id in run_ids]
    for future in futures:
        assert future is not None  # noqa: S101 (embedded: submit runs it here)
        future.result(timeout=3600)
    cpu, machine = cpu_s() - cpu_before, machine_cpu_s() - machine_before
    if profile is not None:
        profile.disable()
        profile.dump_stats(Path(p["profile"]) / "embedded.prof")
    worker.shutdown()
    engine.dispose()
    return {
        "started": started.isoformat(),
        "rss": {"embedded (API process)": peak_mb()},
        "statements_per_sync": statements[0] / max(len(run_ids), 1),
        "cpu_s": cpu,
        "machine_cpu_s": machine,
        "concurrency": worker.concurrency,
    }


def run_embedded(
    db_url: str, data_dir: Path, warm_url: str, profile: str | None = None
) -> dict[str, Any]:
    params = {"db_url": db_url, "data_dir": str(data_dir), "warm_url": warm_url, "profile": profile}
    return run_module("embedded run", "bench.scale", "--child", json.dumps(params))


# ---------------------------------------------------------------- the distributed mode


def run_distributed(
    db_url: str,
    data_dir: Path,
    workers: int,
    concurrency: int,
    log: Path,
    profile: str | None = None,
) -> dict[str, Any]:
    """``workers`` ``inflow worker`` processes drain the runs, submitted as procrastinate jobs."""
    from inflow.storage.db import apply_job_schema, create_db_engine, make_session_factory

    engine = create_db_engine(db_url)
    apply_job_schema(engine)
    factory = make_session_factory(engine)
    env = worker_env(db_url, data_dir)
    procs: list[subprocess.Popen[bytes]] = []
    with log.open("ab") as out, ExitStack() as stack:
        for n in range(workers):
            command = [str(INFLOW), "worker", "--concurrency", str(concurrency)]
            if profile:  # (cProfile writes its file when SIGTERM stops the worker)
                out_file = str(Path(profile) / f"worker-{workers}-{n}.prof")
                command = [sys.executable, "-m", "cProfile", "-o", out_file, *command]
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=out,
            )
            procs.append(proc)
            stack.callback(_stop, proc)
        wait_ready(engine, procs, log)
        cpu_before = [cpu_s(p.pid) for p in procs]
        machine_before = machine_cpu_s()
        started = datetime.now(UTC)
        total = len(enqueue_all(factory))
        submitted = asyncio.run(defer_all(db_url, factory))
        deadline = time.monotonic() + 3600
        while not finished(engine, total):
            if time.monotonic() > deadline:
                raise SystemExit("the runs did not finish within an hour")
            time.sleep(0.2)
        rss = {"inflow worker (each, max)": max(peak_mb(p.pid) for p in procs)}
        cpu = sum(cpu_s(p.pid) for p in procs) - sum(cpu_before)
        machine = machine_cpu_s() - machine_before
    engine.dispose()
    return {
        "started": started.isoformat(),
        "rss": rss,
        "submit_s": (submitted - started).total_seconds(),
        "cpu_s": cpu,
        "machine_cpu_s": machine,
    }


def wait_ready(engine: Any, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    """Until every worker process has both its procrastinate workers (syncs, control) up."""
    from sqlalchemy import text

    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as conn:
            up = conn.scalar(text("SELECT count(*) FROM procrastinate_workers")) or 0
        if up >= 2 * len(procs):
            return
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(f"inflow worker did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


async def defer_all(db_url: str, factory: Any) -> datetime:
    """Every queued run's sync job, deferred as the workers' tick defers them
    (``jobs.defer_syncs``: one batch); when the last one was in."""
    from sqlalchemy import select

    from inflow.storage.models import SyncRun
    from inflow.sync.jobs import build_app, defer_syncs

    with factory() as session:
        sources = list(session.execute(select(SyncRun.source_id)).scalars())
    app = build_app(db_url)
    async with app.open_async():
        await defer_syncs(app, sources)
    return datetime.now(UTC)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------- the run


def sandbox_stats(url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{url}/_sandbox/example/stats").json()
    return stats


def prepare_sandbox(url: str, latency_ms: int, keys: int) -> dict[str, Any]:
    """Defaults, zeroed stats, then the volume, ``keys`` workspaces and latency; the example
    source config."""
    httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    body = {"volume": VOLUME | {"keys": keys}, "faults": {"latencyMs": latency_ms}}
    httpx.post(f"{url}/_sandbox/example/config", json=body).raise_for_status()
    config: dict[str, Any] = httpx.get(f"{url}/_sandbox/credentials").json()["example"]["config"]
    return config


def measure(
    mode: str,
    backend: str,
    workers: int,
    per_worker: int,
    args: argparse.Namespace,
    dbs: Databases,
    url: str,
    tmp: Path,
    sandbox_pid: int,
) -> dict[str, Any]:
    db_url, _ = dbs.fresh(backend)
    data_dir = tmp / uuid.uuid4().hex[:8]
    data_dir.mkdir()
    config = prepare_sandbox(url, args.latency_ms, args.sources)
    seed(db_url, data_dir, config, args.sources, args.keys)
    before = sandbox_stats(url)["total"]
    sandbox_cpu = cpu_s(sandbox_pid)
    if workers == 0:
        result = run_embedded(db_url, data_dir, f"{url}/_sandbox/credentials", args.profile)
        cap = int(result["concurrency"])
        concurrency = min(cap, args.sources)
        what = "every run" if cap >= args.sources else "INFLOW_EMBEDDED_CONCURRENCY"
    else:
        result = run_distributed(
            db_url, data_dir, workers, per_worker, tmp / "workers.log", args.profile
        )
        concurrency, what = workers * per_worker, f"{workers} x {per_worker}"
    stats = sandbox_stats(url)
    got = outcome(db_url, datetime.fromisoformat(result["started"]))
    dbs.drop(db_url)
    requests = stats["total"] - before
    ideal = requests * args.latency_ms / 1000 / concurrency
    row = {
        "mode": mode,
        "backend": backend,
        "workers": workers,
        "concurrency": concurrency,
        "concurrency_is": what,
        "sources": args.sources,
        "keys": args.keys,
        "requests": requests,
        "statuses": stats["byStatus"],
        "wall_s": got["wall_s"],
        "ideal_s": ideal,
        "ratio": got["wall_s"] / ideal if ideal else float("nan"),
        # The wall time were every core busy with nothing else: no run can beat it.
        "cpu_floor_s": result["machine_cpu_s"] / CORES,
        "machine_cpu_ms_per_sync": 1000 * result["machine_cpu_s"] / args.sources,
        "run_s": got["run_s"],
        "statements_per_sync": result.get("statements_per_sync"),
        "submit_s": result.get("submit_s"),
        "cpu_ms_per_sync": 1000 * result["cpu_s"] / args.sources,
        "sandbox_cpu_ms_per_sync": 1000 * (cpu_s(sandbox_pid) - sandbox_cpu) / args.sources,
        "syncs_per_s": args.sources / got["wall_s"],
        "rss": result["rss"] | {"sandbox": peak_mb(sandbox_pid)},
        "exactly_one": got["exactly_one"],
        "runs": got["statuses"],
        "load": os.getloadavg()[0],
    }
    ok = got["exactly_one"] and got["statuses"] == {"succeeded": args.sources}
    row["ok"] = ok
    return row


def table(rows: list[dict[str, Any]], latency_ms: int) -> str:
    out = [
        "| mode | database | concurrency | provider requests | wall (s) | ideal (s) | wall / ideal "
        "| CPU floor (s) | wall / max(ideal, floor) "
        "| syncs/s | of which submitting (s) | mean run (s) | CPU per sync, worker/API "
        "process (ms) | sandbox CPU per sync (ms) | machine CPU per sync (ms) | peak RSS (MB) "
        "| one succeeded run each |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r["rss"].items())
        submit = f"{r['submit_s']:.1f}" if r.get("submit_s") is not None else "-"
        floor = r.get("cpu_floor_s", 0.0)
        out.append(
            f"| {r['mode']} | {r['backend']} | {r['concurrency']:,} ({r['concurrency_is']}) | "
            f"{r['requests']:,} | {r['wall_s']:.1f} | {r['ideal_s']:.2f} | {r['ratio']:.1f} | "
            f"{floor:.1f} | {r['wall_s'] / max(r['ideal_s'], floor):.1f} | "
            f"{r['syncs_per_s']:.1f} | {submit} | {r['run_s']:.2f} | "
            f"{r['cpu_ms_per_sync']:.0f} | {r['sandbox_cpu_ms_per_sync']:.1f} | "
            f"{r.get('machine_cpu_ms_per_sync', float('nan')):.0f} | {rss} | "
            f"{'yes' if r['ok'] else 'NO: ' + json.dumps(r['runs'])} |"
        )
    return (
        f"{rows[0]['sources']:,} sources ({rows[0].get('keys', 'shared')} API keys), "
        f"{latency_ms} ms per provider request; "
        f"ideal = requests x {latency_ms} ms / concurrency; CPU floor = the machine's busy CPU "
        f"time over the run / its {CORES} cores\n\n" + "\n".join(out)
        if rows
        else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument(
        "--workers",
        default="0,1x2,1,2,4",
        help="0 = embedded; N = N workers of --concurrency; NxC = N workers of concurrency C",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="each worker's --concurrency")
    parser.add_argument("--backends", default="sqlite,postgres", help="of the embedded mode")
    parser.add_argument("--small", action="store_true", help="50 sources: a smoke run")
    parser.add_argument(
        "--keys",
        choices=("per-source", "shared"),
        default="per-source",
        help="an API key per source (default) or one for all (one outbound budget)",
    )
    parser.add_argument("--json", action="store_true", help="each result as a JSON line too")
    parser.add_argument("--profile", metavar="DIR", help="cProfile dumps (not for figures)")
    parser.add_argument(
        "--table", metavar="FILE", help="print the table of a run's --json output again"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_embedded(json.loads(args.child))))
        return
    if args.table:
        lines = Path(args.table).read_text().splitlines()
        print(table([json.loads(x) for x in lines if x.startswith("{")], args.latency_ms))
        return
    if args.small:
        args.sources = min(args.sources, 50)
    workers = [
        (int(n), int(c or args.concurrency))
        for n, _, c in (w.strip().partition("x") for w in args.workers.split(","))
    ]
    backends = [b.strip() for b in args.backends.split(",")]
    plan = [("embedded", b, 0, 0) for b in backends if (0, args.concurrency) in workers]
    plan += [
        (f"distributed, {n} worker{'s' if n > 1 else ''}", "postgres", n, c)
        for n, c in workers
        if n > 0
    ]
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="inflow-scale-") as tmp_dir:
        dbs = Databases(Path(tmp_dir))
        try:
            with sandbox() as url:
                pid = _sandbox_pid()
                for mode, backend, n, c in plan:
                    row = measure(mode, backend, n, c, args, dbs, url, Path(tmp_dir), pid)
                    rows.append(row)
                    print(json.dumps(row) if args.json else f"{mode} {backend}: {row}", flush=True)
        finally:
            dbs.close()
    machine = versions(["postgres"] if "postgres" in str(plan) else ["sqlite"])
    print("\n" + "\n".join(line for line in machine if not line.startswith("page size")))
    print(f"load average after: {os.getloadavg()}")
    print("\n" + table(rows, args.latency_ms))
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    if not all(r["ok"] for r in rows):
        raise SystemExit("some source did not get exactly one succeeded run")


def _sandbox_pid() -> int:
    """The sandbox's pid: this process's one child while no measurement runs (its peak RSS)."""
    children = [
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    return children[0] if len(children) == 1 else 0


if __name__ == "__main__":
    main()

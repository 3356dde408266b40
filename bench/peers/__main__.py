"""Inflow's Twilio sync next to the tools a user would pick instead, on one call log.

    .venv/bin/python -m bench.peers [--calls 100000] [--days 90] [--backends sqlite,postgres]
                                    [--tools raw,inflow,dlt,tap-twilio,airbyte] [--rounds 1]

One fake Twilio (``bench.peers.server``: the sandbox's emulator at the host root, its clock
frozen) serves the same call log to every tool, each run in its own process, one after another:

- ``raw``: ``httpx`` + ``orjson`` paging ``Calls.json`` (``PageSize`` 1000, ``next_page_uri``),
  nothing built or stored: the limit of reading these pages on this machine.
- ``inflow``: a ``calling`` source (platform ``twilio``) synced by ``enqueue_run`` +
  ``run_sync`` into a fresh migrated SQLite or PostgreSQL database (daily call metrics).
- ``dlt``: dlt's ``rest_api`` source into duckdb, ``loader_file_format="jsonl"``.
- ``tap-twilio``: the Singer tap, its messages written to a file (no target).
- ``airbyte``: airbyte-source-twilio's ``read``, its messages written to a file (no destination).

Each peer lives in its own venv under ``~/.cache/inflow/bench-peers/<tool>`` (or
``$INFLOW_BENCH_PEERS_DIR``), created and installed with pip on first use, reused after.
records/s = call records the fake served to the tool (counted on the server) / the tool's run
time, from the end of its imports to the end of its run (each tool also reports its own
count). Peak RSS is the process's ``ru_maxrss`` from ``wait4`` (its children included). See
BENCHMARKS.md for the method and a reading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.peers.marks import mark
from bench.sync_throughput import Databases, new_source, one_sync, sandbox, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PAGE_SIZE = 1000  # Twilio's largest page, and the Inflow connector's
CALLS_PATH = "/2010-04-01/Accounts/{sid}/Calls.json"
CACHE = Path(
    os.environ.get("INFLOW_BENCH_PEERS_DIR", Path.home() / ".cache" / "inflow" / "bench-peers")
)
TERMINAL = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})


@dataclass(frozen=True)
class Peer:
    """A peer's venv: its folder name, pinned packages, and the distributions to report."""

    name: str
    packages: tuple[str, ...]
    report: tuple[str, ...]

    @property
    def root(self) -> Path:
        return CACHE / self.name

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


PEERS = {
    "dlt": Peer("dlt", ("dlt[duckdb]==1.31.0", "duckdb==2.0.0"), ("dlt", "duckdb")),
    "tap-twilio": Peer("tap-twilio", ("tap-twilio==0.2.2",), ("tap-twilio", "singer-python")),
    "airbyte": Peer(
        "airbyte-source-twilio",
        ("airbyte-source-twilio==0.16.0",),
        ("airbyte-source-twilio", "airbyte-cdk"),
    ),
}


def ensure_venv(peer: Peer) -> Path:
    """The peer's venv python, created and installed once (a stamp names what was installed)."""
    stamp = peer.root / ".inflow-bench-packages"
    wanted = "\n".join(peer.packages)
    if peer.python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return peer.python
    print(f"installing {' '.join(peer.packages)} into {peer.root} ...", flush=True)
    if not peer.python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(peer.root)], check=True)
    subprocess.run(
        [
            str(peer.python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *peer.packages,
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return peer.python


def installed(peer: Peer) -> str:
    code = (
        "import importlib.metadata as m, sys; "
        "print(', '.join(f'{d} {m.version(d)}' for d in sys.argv[1:]))"
    )
    out = subprocess.run(
        [str(peer.python), "-c", code, *peer.report], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


# ---------------------------------------------------------------- measuring one process


@dataclass
class Run:
    """One tool's run: what the server served it, its own timing marks and its process."""

    tool: str
    seconds: float = 0.0  # from the end of its imports to the end of its run
    wall: float = 0.0  # process start to exit
    rss_mb: float = 0.0
    records: int = 0  # call records the fake served during the run
    requests: int = 0  # API requests the fake answered
    server_s: float = 0.0  # seconds the fake spent answering its Calls.json requests
    own: str = ""  # the tool's own count
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def run_process(
    tool: str,
    argv: Sequence[str],
    tmp: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: Path | None = None,
) -> tuple[Run, str]:
    """Run ``argv`` to its end; returns its Run (marks, wall, peak RSS) and its stdout text
    (empty when it went to the file ``stdout``)."""
    marks = tmp / f"marks-{uuid.uuid4().hex[:8]}"
    environ = {**os.environ, **(env or {}), "INFLOW_BENCH_MARKS": str(marks)}
    out_path = stdout or tmp / f"out-{uuid.uuid4().hex[:8]}"
    err_path = tmp / f"err-{uuid.uuid4().hex[:8]}"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd or ROOT, env=environ, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace")[-4000:]
        raise SystemExit(f"{tool} failed ({proc.returncode}):\n{tail}")
    del usage  # its ru_maxrss counts the forked copy of this process before the exec
    marked = dict(line.split() for line in marks.read_text().splitlines())
    run = Run(
        tool,
        seconds=float(marked["end"]) - float(marked["start"]),
        wall=wall,
        rss_mb=max(int(marked["rss_kib"]), int(marked["children_rss_kib"])) / 1024,
    )
    text = "" if stdout else out_path.read_text()
    return run, text


def served(url: str, *, reset: bool = False) -> dict[str, float]:
    import httpx

    response = httpx.post(f"{url}/_bench/served") if reset else httpx.get(f"{url}/_bench/served")
    response.raise_for_status()
    answer: dict[str, float] = response.json()
    return answer


# ---------------------------------------------------------------- children in this venv


def child_raw(p: dict[str, Any]) -> dict[str, Any]:
    """Every page of the call log, parsed and counted, nothing else."""
    import httpx
    import orjson

    async def read() -> int:
        records = 0
        auth = (p["account_sid"], p["auth_token"])
        async with httpx.AsyncClient(base_url=p["base_url"], auth=auth) as client:
            url: str | None = CALLS_PATH.format(sid=p["account_sid"])
            params: dict[str, Any] | None = {"PageSize": PAGE_SIZE}
            while url:
                response = await client.get(url, params=params)
                response.raise_for_status()
                body = orjson.loads(response.content)
                records += len(body["calls"])
                url, params = body["next_page_uri"], None
        return records

    warm_up(p)
    mark("start")
    records = asyncio.run(read())
    mark("end")
    return {"records": records}


def expected_total_calls(fake: Fake) -> int:
    """What Inflow's ``total_calls`` must add up to, from the raw log (parent calls that
    have ended), read in this process outside every measurement."""
    import httpx

    parents = 0
    with httpx.Client(base_url=fake.url, auth=(fake.account_sid, fake.auth_token)) as client:
        url: str | None = CALLS_PATH.format(sid=fake.account_sid)
        params: dict[str, Any] | None = {"PageSize": PAGE_SIZE}
        while url:
            body = client.get(url, params=params).raise_for_status().json()
            parents += sum(
                1 for c in body["calls"] if not c["parent_call_sid"] and c["status"] in TERMINAL
            )
            url, params = body["next_page_uri"], None
    return parents


def warm_up(p: dict[str, Any]) -> None:
    """One request through httpx before the clock starts (it loads its transport lazily)."""
    import httpx

    async def get() -> None:
        auth = (p["account_sid"], p["auth_token"])
        async with httpx.AsyncClient(base_url=p["base_url"], auth=auth) as client:
            (await client.get("/2010-04-01/Accounts.json")).raise_for_status()

    asyncio.run(get())


def child_inflow(p: dict[str, Any]) -> dict[str, Any]:
    """A real sync of the prepared ``calling`` source; then its stored points, counted."""
    from sqlalchemy import func, select

    from inflow.storage.models import DataPoint

    result, factory, engine = one_sync(
        p, warm=lambda: warm_up(p), start=lambda: mark("start"), tag="inflow"
    )
    mark("end")
    if result.status != "succeeded":
        raise SystemExit(f"sync {result.status}: {result.error}")
    mine = DataPoint.source_id == uuid.UUID(p["source_id"])
    with factory() as session:
        points = session.execute(select(func.count()).where(mine)).scalar_one()
        total = session.execute(
            select(func.sum(DataPoint.value)).where(
                mine, DataPoint.metric == "total_calls", DataPoint.dimensions_key == ""
            )
        ).scalar_one()
    engine.dispose()
    return {"points": points, "total_calls": int(total or 0)}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "raw": child_raw,
    "inflow": child_inflow,
}


def run_child(
    tool: str, kind: str, params: dict[str, Any], tmp: Path
) -> tuple[Run, dict[str, Any]]:
    argv = [sys.executable, "-m", "bench.peers", "--child", kind, json.dumps(params)]
    run, text = run_process(tool, argv, tmp)
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return run, result


def prepare_inflow(db_url: str, vault_key: str, config: dict[str, Any]) -> str:
    """A user and a ``calling`` source on the fake (its first sync reads the initial span)."""
    return new_source(db_url, vault_key, "calling", config)


# ---------------------------------------------------------------- the peers


def singer_count(path: Path, stream: str) -> tuple[int, int]:
    """(records, distinct sids) of ``stream`` in a file of Singer or Airbyte messages."""
    import orjson

    rows, sids = 0, set()
    with path.open("rb") as lines:
        for line in lines:
            if b'"RECORD"' not in line[:60]:
                continue
            message = orjson.loads(line)
            record = message.get("record", {})
            if message.get("stream") == stream:  # Singer
                rows += 1
                sids.add(record.get("sid"))
            elif record.get("stream") == stream:  # Airbyte
                rows += 1
                sids.add(record.get("data", {}).get("sid"))
    return rows, len(sids)


@dataclass
class Fake:
    """The fake Twilio: its root URL, the account, and the first day of the log."""

    url: str
    account_sid: str
    auth_token: str
    start: datetime

    @property
    def login(self) -> dict[str, Any]:
        return {
            "base_url": self.url,
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
        }


def run_dlt(fake: Fake, tmp: Path) -> Run:
    python = PEERS["dlt"].python
    work = tmp / "dlt"
    shutil.rmtree(work, ignore_errors=True)  # a fresh pipelines_dir and database each run
    work.mkdir()
    params = {
        **fake.login,
        "base_url": fake.url + "/",
        "page_size": PAGE_SIZE,
        "pipelines_dir": str(work / "pipelines"),
        "database": str(work / "calls.duckdb"),
    }
    env = {"RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "WARNING"}
    argv = [str(python), str(HERE / "run_dlt.py"), json.dumps(params)]
    run, text = run_process("dlt", argv, tmp, cwd=work, env=env)
    counted = json.loads(text.strip().splitlines()[-1])
    run.own = f"{counted['rows']:,} rows ({counted['distinct']:,} distinct) in duckdb"
    return run


def tap_setup(fake: Fake, tmp: Path) -> tuple[Path, Path]:
    """The tap's config, and its discovered catalog with only `calls` selected."""
    python = PEERS["tap-twilio"].python
    folder = tmp / "tap"
    folder.mkdir(exist_ok=True)
    config = folder / "config.json"
    config.write_text(
        json.dumps(
            {
                "account_sid": fake.account_sid,
                "auth_token": fake.auth_token,
                "start_date": fake.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "user_agent": "inflow-bench",
                "date_window_days": 30,
            }
        )
    )
    env = {"INFLOW_BENCH_API_URL": fake.url}
    found = subprocess.run(
        [str(python), str(HERE / "run_tap_twilio.py"), "--config", str(config), "--discover"],
        capture_output=True,
        check=True,
        env={**os.environ, **env},
    )
    catalog = json.loads(found.stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "calls"
    path = folder / "catalog.json"
    path.write_text(json.dumps(catalog))
    return config, path


def run_messages(
    tool: str,
    argv: Sequence[str],
    tmp: Path,
    out: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Run a peer whose messages (Singer or Airbyte, one JSON line each) go to ``out``; its
    own count is the ``calls`` RECORD messages there (the file is removed after)."""
    run, _ = run_process(tool, argv, tmp, cwd=cwd, env=env, stdout=out)
    rows, distinct = singer_count(out, "calls")
    run.own = f"{rows:,} RECORD messages ({distinct:,} distinct)"
    out.unlink()
    return run


def run_tap(fake: Fake, tmp: Path, config: Path, catalog: Path) -> Run:
    python = PEERS["tap-twilio"].python
    out = tmp / "tap" / "messages.jsonl"
    env = {"INFLOW_BENCH_API_URL": fake.url, "INFLOW_BENCH_PAGE_SIZE": str(PAGE_SIZE)}
    argv = [
        str(python),
        str(HERE / "run_tap_twilio.py"),
        "--config",
        str(config),
        "--catalog",
        str(catalog),
    ]
    return run_messages("tap-twilio", argv, tmp, out, env=env)


def airbyte_setup(fake: Fake, tmp: Path) -> tuple[Path, Path]:
    """The run folder (the installed manifest, its host replaced), config and catalog."""
    peer = PEERS["airbyte"]
    folder = tmp / "airbyte"
    folder.mkdir(exist_ok=True)
    (installed_manifest,) = peer.root.glob("lib/python*/site-packages/source_twilio/manifest.yaml")
    text = installed_manifest.read_text()
    (folder / "manifest.yaml").write_text(text.replace("https://api.twilio.com", fake.url))
    config = folder / "config.json"
    config.write_text(
        json.dumps(
            {
                "account_sid": fake.account_sid,
                "auth_token": fake.auth_token,
                "start_date": fake.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    )
    found = subprocess.run(
        [str(peer.python), str(HERE / "run_airbyte.py"), "discover", "--config", str(config)],
        capture_output=True,
        check=True,
        cwd=folder,
    )
    streams = next(
        message["catalog"]["streams"]
        for line in found.stdout.splitlines()
        if line.startswith(b"{") and (message := json.loads(line)).get("type") == "CATALOG"
    )
    calls = next(s for s in streams if s["name"] == "calls")
    catalog = folder / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "stream": calls,
                        "sync_mode": "incremental",
                        "cursor_field": calls.get("default_cursor_field", ["end_time"]),
                        "destination_sync_mode": "append",
                    }
                ]
            }
        )
    )
    return config, catalog


def run_airbyte(fake: Fake, tmp: Path, config: Path, catalog: Path) -> Run:
    del fake  # the host is in the run folder's manifest
    python = PEERS["airbyte"].python
    folder = tmp / "airbyte"
    out = folder / "messages.jsonl"
    argv = [
        str(python),
        str(HERE / "run_airbyte.py"),
        "read",
        "--config",
        str(config),
        "--catalog",
        str(catalog),
    ]
    return run_messages("airbyte", argv, tmp, out, cwd=folder)


# ---------------------------------------------------------------- the run


TITLES = {
    "raw": "raw paging (httpx + orjson, nothing stored)",
    "inflow-sqlite": "**Inflow** sync → daily metrics (SQLite)",
    "inflow-postgres": "**Inflow** sync → daily metrics (PostgreSQL)",
    "dlt": "dlt `rest_api` → duckdb (jsonl)",
    "tap-twilio": "tap-twilio → Singer messages to a file",
    "airbyte": "airbyte-source-twilio `read` → messages to a file",
}


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[(len(runs) - 1) // 2]


def report(results: dict[str, list[Run]]) -> str:
    raw = median_run(results["raw"]) if results.get("raw") else None
    peers = [median_run(results[t]) for t in ("dlt", "tap-twilio", "airbyte") if results.get(t)]
    fastest = max(peers, key=lambda r: r.rate) if peers else None
    lines = [
        "| tool | records read | the tool's own count | requests | run s | of which the fake's "
        "| records/s | ÷ raw paging | Inflow (SQLite) ÷ tool | peak RSS (MB) | "
        "wall s with start-up |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    inflow = median_run(results["inflow-sqlite"]) if results.get("inflow-sqlite") else None
    for tool, runs in results.items():
        if not runs:
            continue
        r = median_run(runs)
        vs_raw = f"{r.rate / raw.rate:.3f}" if raw else "-"
        vs_inflow = f"{inflow.rate / r.rate:.1f}" if inflow and r.rate else "-"
        lines.append(
            f"| {TITLES[tool]} | {r.records:,} | {r.own} | {r.requests:,} | {r.seconds:.1f} | "
            f"{r.server_s:.1f} | {r.rate:,.0f} | {vs_raw} | {vs_inflow} | {r.rss_mb:.0f} | {r.wall:.1f} |"
        )
    if inflow and fastest:
        lines.append(
            f"\nInflow (SQLite) ÷ fastest peer ({fastest.tool}) = "
            f"**{inflow.rate / fastest.rate:.1f}x** (target ≥ 5x)"
        )
    if inflow and fastest and len(results[fastest.tool]) > 1:
        pairs = zip(results["inflow-sqlite"], results[fastest.tool], strict=True)
        lines.append(
            f"Inflow (SQLite) ÷ {fastest.tool}, each round: "
            + ", ".join(f"{i.rate / f.rate:.2f}" for i, f in pairs)
        )
    if len(next(iter(results.values()))) > 1:
        lines.append(
            "\nrounds' rates: "
            + "; ".join(
                f"{t}: {', '.join(f'{r.rate:,.0f}' for r in runs)}" for t, runs in results.items()
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tools", default="raw,inflow,dlt,tap-twilio,airbyte")
    parser.add_argument("--backends", default="sqlite,postgres", help="Inflow's databases")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (the median is shown)")
    parser.add_argument(
        "--profile", metavar="DIR", help="dump a cProfile of each Inflow sync (not for figures)"
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, params = args.child
        print(json.dumps(CHILDREN[kind](json.loads(params))))
        return

    from cryptography.fernet import Fernet

    tools = [t.strip() for t in args.tools.split(",")]
    backends = [b.strip() for b in args.backends.split(",")]
    for tool in tools:
        if tool in PEERS:
            ensure_venv(PEERS[tool])
    # The sandbox clock stops at the last second of today (UTC): every call of the log has
    # started, and every tool sees the same log.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frozen = today + timedelta(days=1, seconds=-1)
    vault_key = Fernet.generate_key().decode()
    load = os.getloadavg()
    results: dict[str, list[Run]] = {}
    began = time.perf_counter()
    argv = ("-m", "bench.peers.server", "--now", str(frozen.timestamp()))
    with tempfile.TemporaryDirectory(prefix="inflow-peers-") as tmp_name, sandbox(argv) as url:
        import httpx

        tmp = Path(tmp_name)
        volume = {"calls": args.calls, "days": args.days}
        httpx.post(f"{url}/_sandbox/twilio/config", json={"volume": volume}).raise_for_status()
        config = httpx.get(f"{url}/_sandbox/credentials").json()["twilio"]["config"]
        fake = Fake(url, config["accountSid"], config["authToken"], today - timedelta(days=91))
        inflow_config = {**config, "baseUrl": url}
        # The server's first request builds its route table and the log: part of no run.
        login = (fake.account_sid, fake.auth_token)
        httpx.get(
            url + CALLS_PATH.format(sid=fake.account_sid),
            params={"PageSize": 1},
            auth=login,
        ).raise_for_status()
        dbs = Databases(tmp)
        tap = tap_setup(fake, tmp) if "tap-twilio" in tools else None
        airbyte = airbyte_setup(fake, tmp) if "airbyte" in tools else None
        check = expected_total_calls(fake)
        try:
            for _ in range(args.rounds):
                for tool in tools:
                    names = [f"inflow-{b}" for b in backends] if tool == "inflow" else [tool]
                    for name in names:
                        prepared: tuple[str, str] | None = None
                        if name.startswith("inflow-"):
                            db_url, _ = dbs.fresh(name.removeprefix("inflow-"))
                            source_id = prepare_inflow(db_url, vault_key, inflow_config)
                            prepared = (db_url, source_id)
                        served(url, reset=True)
                        if name == "raw":
                            run, result = run_child(name, "raw", fake.login, tmp)
                            run.own = f"{result['records']:,} records"
                        elif prepared is not None:
                            params = {
                                **fake.login,
                                "db_url": prepared[0],
                                "source_id": prepared[1],
                                "vault_key": vault_key,
                                "profile": args.profile,
                            }
                            run, result = run_child(name, "inflow", params, tmp)
                            run.own = (
                                f"{result['points']:,} daily points; total_calls "
                                f"{result['total_calls']:,}"
                            )
                            if result["total_calls"] != check:
                                run.own += f" (expected {check:,}!)"
                            dbs.drop(prepared[0])
                        elif name == "dlt":
                            run = run_dlt(fake, tmp)
                        elif name == "tap-twilio" and tap:
                            run = run_tap(fake, tmp, *tap)
                        elif name == "airbyte" and airbyte:
                            run = run_airbyte(fake, tmp, *airbyte)
                        else:
                            raise SystemExit(f"unknown tool {name!r}")
                        counts = served(url)
                        run.records, run.requests = int(counts["records"]), int(counts["requests"])
                        run.server_s = counts["seconds"]
                        results.setdefault(name, []).append(run)
                        print(
                            f"{name}: {run.records:,} records in {run.seconds:.1f} s = "
                            f"{run.rate:,.0f}/s, peak RSS {run.rss_mb:.0f} MB ({run.own})",
                            flush=True,
                        )
        finally:
            dbs.close()
    print("\n" + "\n".join(versions(["postgres"] if "postgres" in backends else [])[:-1]))
    for tool in tools:
        if tool in PEERS:
            print(installed(PEERS[tool]))
    print(f"sandbox clock frozen at {frozen:%Y-%m-%d %H:%M:%S} UTC; {args.calls:,} calls over")
    print(f"{args.days} days; load average at the start: {load}")
    print("\n" + report(results))
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()

"""``inflow sources test|fetch|sync|list`` as processes, against a Twilio source pointed at the
sandbox (``inflow sandbox``, a process too) and a real SQLite file; the API's own answers
(``inflow serve``) are what the CLI is held to."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from inflow.api.services import accounts
from inflow.api.services import sources as svc
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing, Vault
from inflow.storage.db import create_db_engine, make_session_factory, session_scope
from inflow.storage.models import (
    Backfill,
    DataPoint,
    DataSource,
    ExperimentDataPoint,
    SyncRun,
    User,
)
from inflow.sync.engine import enqueue_run
from tests.cli.conftest import Workspace, make_workspace
from tests.cli.test_cli import PASSWORD, create_token, new_email
from tests.cli.test_processes import Process, answers
from tests.conftest import clock_env
from tests.servers import InflowServer, free_port, run_inflow

FROM, TO = "2026-11-10", "2026-11-16"  # a week before the test clock (2026-11-18)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = make_workspace(tmp_path_factory.mktemp("sources"))
    env = {**base.env, **clock_env(), "INFLOW_ALLOW_PRIVATE_URLS": "true"}
    workspace = Workspace(base.root, env)
    assert workspace.run("db", "upgrade").returncode == 0
    return workspace


@pytest.fixture(scope="module")
def sandbox_url(ws: Workspace) -> Iterator[str]:
    port = free_port()
    process = Process("sandbox", "--port", str(port), env=ws.env, workdir=ws.root / "sandbox")
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for("sandbox listening", answers(f"{url}/_sandbox/credentials"))
        yield url
    finally:
        process.kill()


@pytest.fixture(scope="module")
def db(ws: Workspace) -> Iterator[Any]:
    settings = Settings(data_dir=ws.data_dir, database_url=ws.env["INFLOW_DATABASE_URL"])
    engine = create_db_engine(settings.resolved_database_url)
    yield make_session_factory(engine), Vault.from_keyring(KeyRing(settings))
    engine.dispose()


@pytest.fixture(scope="module")
def admin(ws: Workspace) -> tuple[str, str]:
    email = new_email()
    assert ws.run("users", "create", email, "--password", PASSWORD, "--admin").returncode == 0
    return email, create_token(ws, email)


def twilio_source(db: Any, sandbox_url: str, email: str, **changes: str) -> str:
    """A Twilio source of ``email`` against the sandbox, made as the API makes one."""
    factory, vault = db
    config = httpx.get(f"{sandbox_url}/_sandbox/credentials").json()["twilio"]["config"]
    with session_scope(factory) as session:
        owner = accounts.get_user_by_email(session, email=email)
        assert isinstance(owner, User)
        source = svc.create_source(
            session,
            owner=owner,
            name=f"Twilio {uuid.uuid4().hex[:6]}",
            type_="twilio",
            config={**config, **changes},
            vault=vault,
        )
        return str(source.id)


def assert_one_line_error(result: Any, code: int, message: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def stored(
    db: Any, source_id: str
) -> set[tuple[str, datetime, tuple[tuple[str, str], ...], float]]:
    factory, _ = db
    with factory() as session:
        rows = session.execute(
            select(DataPoint).where(DataPoint.source_id == uuid.UUID(source_id))
        ).scalars()
        return {
            (
                r.metric,
                r.period_start.replace(tzinfo=None),
                tuple(sorted(r.dimensions.items())),
                r.value,
            )
            for r in rows
        }


# ---------------------------------------------------------------- list and test


def test_sources_list_shows_the_api_type_of_a_calling_platform(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0])
    result = ws.run("sources", "list")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if source_id[:8] in line)
    assert " calling " in row  # as the API's `type`, not the stored slug
    assert "twilio" not in row.replace("Twilio", "")


def test_sources_list_prints_whole_ids_to_copy_even_in_a_narrow_pipe(ws, db, sandbox_url, admin):
    """The id is what `sources test|fetch|sync ID` take: a pipe (80 columns) never cuts it."""
    source_id = twilio_source(db, sandbox_url, admin[0])
    with session_scope(db[0]) as session:
        session.get(DataSource, uuid.UUID(source_id)).name = "A source with a long name " * 4
    result = run_inflow("sources", "list", env={**ws.env, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert source_id in result.stdout


def test_sources_test_prints_each_step_and_exits_0_when_it_passes(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0])
    result = ws.run("sources", "test", source_id)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "✓ account: signed in to 'Inflow Sandbox'" in result.stdout
    assert result.stdout.rstrip().endswith("connection test passed")
    listed = ws.run("sources", "list").stdout
    assert " ok " in next(line for line in listed.splitlines() if source_id[:8] in line)


def test_sources_test_exits_1_with_the_failed_step_on_bad_credentials(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0], authToken="wrong-token-0000")
    result = ws.run("sources", "test", source_id)
    assert_one_line_error(result, 1, "connection test failed at account:")
    assert "✗ account:" in result.stdout
    listed = ws.run("sources", "list").stdout
    row = next(line for line in listed.splitlines() if source_id[:8] in line)
    assert " ok " not in row


# ---------------------------------------------------------------- fetch


def test_fetch_create_stores_what_the_apis_fetch_reads(ws, db, sandbox_url, admin, tmp_path):
    source_id = twilio_source(db, sandbox_url, admin[0])
    headers = {"Authorization": f"Bearer {admin[1]}"}
    with InflowServer("serve", env=ws.env, workdir=tmp_path / "serve") as api:
        read = httpx.post(
            f"{api.base_url}/api/data-sources/{source_id}/fetch",
            headers=headers,
            json={"startDate": FROM, "endDate": TO},
            timeout=60,
        )
        test = httpx.post(
            f"{api.base_url}/api/tests",
            headers=headers,
            json={"name": "CLI link", "metric": "total_calls", "startDate": FROM},
        )
    assert read.status_code == 200, read.text
    assert read.json()["success"], read.text
    assert test.status_code == 201, test.text
    expected = {
        (
            p["metric"],
            datetime.fromisoformat(p["periodStart"]).replace(tzinfo=None),
            tuple(sorted(p["dimensions"].items())),
            p["value"],
        )
        for p in read.json()["dataPoints"]
    }
    assert stored(db, source_id) == set()

    preview = ws.run("sources", "fetch", source_id, "--from", FROM, "--to", TO)
    assert preview.returncode == 0, preview.stderr
    assert f"{len(expected)} data points for {FROM} to {TO} (UTC)" in preview.stdout
    assert "total" in preview.stdout
    assert "direction=inbound" in preview.stdout
    assert stored(db, source_id) == set()  # a preview stores nothing

    created = ws.run(
        "sources", "fetch", source_id, "--from", FROM, "--to", TO, "--create",
        "--experiment", test.json()["id"],
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"stored: {len(expected)} created, 0 updated, 0 unchanged" in created.stdout
    assert stored(db, source_id) == expected
    factory, _ = db
    with factory() as session:
        links = session.scalar(
            select(func.count())
            .select_from(ExperimentDataPoint)
            .where(ExperimentDataPoint.test_id == uuid.UUID(test.json()["id"]))
        )
    assert links == len(expected)

    again = ws.run("sources", "fetch", source_id, "--from", FROM, "--to", TO, "--create")
    assert f"stored: 0 created, 0 updated, {len(expected)} unchanged" in again.stdout


def test_backfill_stores_in_chunks_what_a_fetch_of_the_range_reads(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0])
    first = "2026-10-27"  # three weeks through TO: three chunks

    result = ws.run("sources", "backfill", source_id, "--from", first, "--to", TO)

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"{first} to {TO} in 3 chunk(s)" in result.stdout
    assert "chunk 3/3 done" in result.stdout
    assert "backfill succeeded: 3 chunk(s)" in result.stdout
    points = stored(db, source_id)
    assert points
    again = ws.run("sources", "fetch", source_id, "--from", first, "--to", TO, "--create")
    assert again.returncode == 0, again.stderr
    assert f"stored: 0 created, 0 updated, {len(points)} unchanged" in again.stdout
    factory, _ = db
    with factory() as session:
        runs = session.execute(
            select(SyncRun.trigger, SyncRun.status).where(SyncRun.source_id == uuid.UUID(source_id))
        ).all()
        backfill = session.execute(
            select(Backfill).where(Backfill.source_id == uuid.UUID(source_id))
        ).scalar_one()
        assert backfill.state == "succeeded"
        assert [c.state for c in backfill.chunks] == ["done"] * 3
    assert sorted(runs) == [("backfill", "succeeded")] * 3


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        pytest.param("2026-11-16", "2026-11-10", "--to: the last day (2026-11-10) is before", id="reversed"),
        pytest.param("2026-11-10", "2026-11-25", "--to: the end is in the future", id="future"),
    ],
)  # fmt: skip
def test_backfill_refuses_a_bad_range_with_exit_2(ws, db, sandbox_url, admin, first, last, message):
    source_id = twilio_source(db, sandbox_url, admin[0])
    result = ws.run("sources", "backfill", source_id, "--from", first, "--to", last)
    assert_one_line_error(result, 2, message)


def test_fetch_totals_add_counts_and_weigh_rates(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0])
    result = ws.run("sources", "fetch", source_id, "--from", "2026-11-16", "--to", "2026-11-16")
    assert result.returncode == 0, result.stderr
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines()]
    rows = [r for r in rows if len(r) == 4]

    def group(metric: str) -> list[list[str]]:
        start = next(i for i, r in enumerate(rows) if r[0] == metric)
        end = next(i for i in range(start, len(rows)) if rows[i][1].startswith("total"))
        return rows[start : end + 1]

    calls = group("total_calls")
    answered = group("answered_calls")
    total_of = {r[2]: float(r[3].replace(",", "")) for r in calls[:-1]}
    assert float(calls[-1][3].replace(",", "")) == total_of[""]  # the provider's own total
    assert total_of[""] == total_of["direction=inbound"] + total_of["direction=outbound"]
    rate = next(r for r in group("answer_rate") if r[1].startswith("total"))
    assert abs(float(rate[3]) - float(answered[-1][3]) / total_of[""]) < 1e-3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["test", "not-an-id"], 2, "not a data source id: 'not-an-id'", id="bad_id"),
        pytest.param(["sync", str(uuid.UUID(int=7))], 3, "not found", id="unknown_id"),
        pytest.param(["fetch", "SOURCE", "--from", "2026-11-32"], 2, "--from:", id="bad_date"),
        pytest.param(["fetch", "SOURCE", "--to", "16/11/2026"], 2, "--to:", id="bad_format"),
        pytest.param(
            ["fetch", "SOURCE", "--from", "2026-11-16", "--to", "2026-11-10"],
            2,
            "--to: the end must be after the start",
            id="from_after_to",
        ),
        pytest.param(
            ["fetch", "SOURCE", "--from", "1969-12-31"],
            2,
            "--from: the date must be between 1970-01-01 and 2999-12-31",
            id="before_bounds",
        ),
        pytest.param(
            ["fetch", "SOURCE", "--to", "3000-01-01"],
            2,
            "--to: the date must be between 1970-01-01 and 2999-12-31",
            id="after_bounds",
        ),
        pytest.param(
            ["fetch", "SOURCE", "--from", "2026-12-01"],
            2,
            "the start is in the future",
            id="future",
        ),
        pytest.param(
            ["fetch", "SOURCE", "--experiment", str(uuid.UUID(int=9))],
            3,
            f"test {uuid.UUID(int=9)} not found",
            id="unknown_test",
        ),
    ],
)
def test_bad_input_gets_one_line_and_its_exit_code(ws, db, sandbox_url, admin, args, code, message):
    source_id = twilio_source(db, sandbox_url, admin[0])
    result = ws.run("sources", *[source_id if a == "SOURCE" else a for a in args])
    assert_one_line_error(result, code, message)
    assert stored(db, source_id) == set()


# ---------------------------------------------------------------- sync


def test_sync_runs_to_the_end_and_exits_0_then_4_while_one_is_queued(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0])
    result = ws.run("sources", "sync", source_id)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "records read" in result.stdout  # the progress line
    assert "sync succeeded:" in result.stdout
    factory, _ = db
    with factory() as session:
        (run,) = session.execute(
            select(SyncRun).where(SyncRun.source_id == uuid.UUID(source_id))
        ).scalars()
        assert (run.trigger, run.status) == ("manual", "succeeded")
        assert run.created > 0
        assert f"sync succeeded: {run.created} created" in result.stdout
        assert f"(run {run.id})" in result.stdout.replace("\n", "")
    assert len(stored(db, source_id)) > 0

    with session_scope(factory) as session:  # a sync queued elsewhere (the API, the scheduler)
        queued = enqueue_run(
            session, source=session.get_one(DataSource, uuid.UUID(source_id)), trigger="manual"
        )
        queued_id = queued.id
    result = ws.run("sources", "sync", source_id)
    assert_one_line_error(result, 4, f"already queued or running (run {queued_id})")


def test_a_failing_sync_exits_1_with_its_reason(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0], authToken="wrong-token-0000")
    result = ws.run("sources", "sync", source_id)
    assert_one_line_error(result, 1, "sync failed:")
    factory, _ = db
    with factory() as session:
        status = session.scalar(
            select(SyncRun.status).where(SyncRun.source_id == uuid.UUID(source_id))
        )
    assert status == "failed"


def test_a_rate_limited_sync_waits_retries_and_says_so(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0])
    faults = {"faults": {"status429Burst": 2, "retryAfterS": 1}}
    assert httpx.post(f"{sandbox_url}/_sandbox/twilio/config", json=faults).status_code == 200
    try:
        result = ws.run("sources", "sync", source_id)
    finally:
        reset = {"faults": {"status429Burst": 0, "retryAfterS": 1}}
        httpx.post(f"{sandbox_url}/_sandbox/twilio/config", json=reset)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "(2 retried)" in result.stdout
    assert "sync succeeded:" in result.stdout


def test_ctrl_c_ends_the_sync_as_interrupted_and_exits_130(ws, db, sandbox_url, admin, tmp_path):
    source_id = twilio_source(db, sandbox_url, admin[0])
    factory, _ = db

    def status() -> str | None:
        with factory() as session:
            return session.scalar(
                select(SyncRun.status).where(SyncRun.source_id == uuid.UUID(source_id))
            )

    slow = {"faults": {"latencyMs": 3000}}
    assert httpx.post(f"{sandbox_url}/_sandbox/twilio/config", json=slow).status_code == 200
    try:
        env = {**ws.env, "PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps every thread's stack
        sync = Process("sources", "sync", source_id, env=env, workdir=tmp_path, ctrl_c=True)
        sync.wait_for("a running sync", lambda: status() == "running")
        sync.proc.send_signal(signal.SIGINT)
        try:
            code = sync.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sync.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sync.proc.wait(timeout=10)
            sync.kill()
            raise AssertionError(f"Ctrl-C did not stop the sync:\n{sync.output}") from None
    finally:
        httpx.post(f"{sandbox_url}/_sandbox/twilio/config", json={"faults": {"latencyMs": 0}})
    assert code == 130, sync.output
    assert "sync interrupted; the next one resumes from the last checkpoint" in sync.output
    assert "Traceback" not in sync.output
    assert status() == "interrupted", sync.output


# ---------------------------------------------------------------- resume


def test_resume_lifts_the_pause_of_a_source_that_failed_in_a_row(ws, db, sandbox_url, admin):
    source_id = twilio_source(db, sandbox_url, admin[0], authToken="wrong-token-0000")
    pause_at_once = {**ws.env, "INFLOW_PAUSE_AFTER_FAILURES": "1"}
    assert_one_line_error(run_inflow("sources", "sync", source_id, env=pause_at_once), 1, "sync")
    factory, _ = db
    with factory() as session:
        source = session.get(DataSource, uuid.UUID(source_id))
        assert source is not None
        assert source.consecutive_failures == 1
        assert source.paused_at is not None
        assert (source.paused_reason or "").startswith("paused after 1 failed syncs in a row")

    result = ws.run("sources", "resume", source_id)

    assert result.returncode == 0, result.stderr
    assert f"resumed {source_id}" in result.stdout
    with factory() as session:
        source = session.get(DataSource, uuid.UUID(source_id))
        assert source is not None
        assert source.paused_at is None
        assert source.paused_reason is None
    again = ws.run("sources", "resume", source_id)
    assert again.returncode == 0, again.stderr
    assert "was not paused" in again.stdout
    assert_one_line_error(ws.run("sources", "resume", "nope"), 2, "not a data source id")
    assert_one_line_error(ws.run("sources", "resume", str(uuid.uuid4())), 3, "not found")

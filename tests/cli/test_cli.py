"""``inflow`` as an operator runs it: real subprocesses against SQLite files and PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from contextlib import closing

import httpx
import pytest
from alembic.script import ScriptDirectory

from inflow.storage.db import alembic_config, create_db_engine
from tests.factories import EXAMPLE_CONFIG
from tests.servers import inflow_env

PASSWORD = "a long enough password"
DEMO_ADMIN = "admin@inflow.local"


def new_email() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}@example.com"


def create_user(ws, email: str, *, admin: bool = False) -> None:
    result = ws.run("users", "create", email, "--password", PASSWORD, *(["--admin"] * admin))
    assert result.returncode == 0, result.stderr
    assert f"created {'admin' if admin else 'member'} {email}" in result.stdout


def create_token(ws, email: str, name: str = "cli-test") -> str:
    result = ws.run("tokens", "create", email, "--name", name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"stdout must hold the token alone: {result.stdout!r}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", lines[0]), lines[0]
    return lines[0]


def assert_clean_failure(result, message: str) -> None:
    """Exit 1, the message on stderr, nothing on stdout, no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def me(base_url: str, token: str) -> httpx.Response:
    return httpx.get(f"{base_url}/api/me", headers={"Authorization": f"Bearer {token}"})


# ---------------------------------------------------------------- database


def test_db_upgrade_creates_the_schema_and_is_idempotent(workspace):
    db = workspace.root / "inflow.db"
    for _ in range(2):
        result = workspace.run("db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert "database is up to date" in result.stdout
    with closing(sqlite3.connect(db)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"users", "api_tokens", "audit_events", "data_sources"} <= tables
    engine = create_db_engine(f"sqlite:///{db}")
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    engine.dispose()
    assert version == head


# ---------------------------------------------------------------- users and tokens


def test_admin_token_from_the_cli_authenticates_against_the_api(shared_workspace, shared_server):
    email = new_email()
    create_user(shared_workspace, email, admin=True)
    token = create_token(shared_workspace, email, name="deploy-bot")

    response = me(shared_server.base_url, token)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == email
    assert response.json()["role"] == "admin"
    tokens = httpx.get(
        f"{shared_server.base_url}/api/tokens", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert [t["name"] for t in tokens] == ["deploy-bot"]
    assert me(shared_server.base_url, token[:-2] + "xx").status_code == 401


def test_users_are_members_unless_admin_is_given(shared_workspace, shared_server):
    email = new_email()
    create_user(shared_workspace, email)
    response = me(shared_server.base_url, create_token(shared_workspace, email))
    assert response.status_code == 200
    assert response.json()["role"] == "member"


def test_users_create_refuses_a_duplicate_email(shared_workspace):
    email = new_email()
    create_user(shared_workspace, email)
    result = shared_workspace.run("users", "create", email.upper(), "--password", PASSWORD)
    assert_clean_failure(result, f"a user with email {email} already exists")


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        pytest.param(
            "not-an-email", PASSWORD, "email: Value error, not an email address", id="bad_email"
        ),
        pytest.param(
            None, "short", "password: String should have at least 8 characters", id="short_pw"
        ),
    ],
)
def test_users_create_rejects_bad_input_clearly(shared_workspace, email, password, message):
    email = email or new_email()
    result = shared_workspace.run("users", "create", email, "--password", password)
    assert_clean_failure(result, message)
    assert "pydantic.dev" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one readable line
    # and nothing was created
    assert_clean_failure(shared_workspace.run("tokens", "create", email), "no user with email")


def test_tokens_create_for_an_unknown_user_prints_no_token(shared_workspace):
    result = shared_workspace.run("tokens", "create", "nobody@example.com")
    assert_clean_failure(result, "no user with email nobody@example.com")


# ---------------------------------------------------------------- connectors and sources


def test_connectors_lists_the_example_connector(shared_workspace):
    result = shared_workspace.run("connectors")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if re.search(r"\bexample\b", line))
    assert "apiKey*" in row  # secret fields are starred
    assert "visits" in row  # and metrics listed


def test_sources_list_shows_a_source_created_through_the_api(shared_workspace, shared_server):
    email = new_email()
    create_user(shared_workspace, email)
    token = create_token(shared_workspace, email)
    name = f"listed-{uuid.uuid4().hex[:6]}"
    created = httpx.post(
        f"{shared_server.base_url}/api/data-sources",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": name, "type": "example", "config": EXAMPLE_CONFIG},
    )
    assert created.status_code == 201, created.text

    result = shared_workspace.run("sources", "list")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if name in line)
    assert created.json()["id"] in row
    assert email in row
    assert re.search(r"\bexample\b", row)
    assert re.search(r"\bunknown\b", row)  # health before any test
    assert EXAMPLE_CONFIG["apiKey"] not in result.stdout


# ---------------------------------------------------------------- audit


def test_audit_verify_passes_then_finds_a_tampered_event(workspace):
    email = new_email()
    create_user(workspace, email)  # user.create
    create_token(workspace, email)  # token.create
    result = workspace.run("audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "audit chain intact: 2 events" in result.stdout

    with closing(sqlite3.connect(workspace.root / "inflow.db")) as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")  # what an attacker with the file can do
        (first,) = conn.execute("SELECT min(id) FROM audit_events").fetchone()
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = ?", (first,))
        conn.commit()
    result = workspace.run("audit", "verify")
    assert_clean_failure(result, f"audit chain broken at event {first}: content altered")


# ---------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_the_cli_works_against_postgresql(pg_workspace, spawn):
    ws = pg_workspace
    assert ws.run("db", "upgrade").returncode == 0
    email = new_email()
    create_user(ws, email, admin=True)
    assert_clean_failure(ws.run("users", "create", email, "--password", PASSWORD), "already exists")
    token = create_token(ws, email)

    server = spawn("serve", ws.env)
    response = me(server.base_url, token)
    assert response.status_code == 200, response.text
    assert (response.json()["email"], response.json()["role"]) == (email, "admin")
    verified = ws.run("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact: 2 events" in verified.stdout
    assert not (ws.data_dir / "inflow.db").exists()  # nothing went to SQLite


# ---------------------------------------------------------------- demo


DEMO_URL = re.compile(r"demo on (http://\S+)")
DEMO_LOGIN = re.compile(r"login\s*:\s*(\S+)\s+/\s+(\S+)")


def demo_login(server) -> tuple[str, str]:
    """The URL and credentials `inflow demo` printed, checked against where it listens."""
    # The demo prints its login once it answers, so the login is never for a dead server.
    server.wait_for(lambda: DEMO_LOGIN.search(server.stdout) is not None, timeout=30)
    out = server.stdout
    url = DEMO_URL.search(out)
    login = DEMO_LOGIN.search(out)
    assert url, out
    assert login, out
    assert url.group(1) == f"{server.base_url}/"  # the UI's address
    return login.group(1), login.group(2)


def log_in(base_url: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{base_url}/api/auth/login", json={"email": email, "password": password})


def wait_for_run(base_url: str, auth: dict[str, str], source_id: str) -> str:
    deadline = time.monotonic() + 180  # RingCentral: 10 call-log reads a minute
    while time.monotonic() < deadline:
        runs = httpx.get(
            f"{base_url}/api/data-sources/{source_id}/runs", headers=auth, timeout=10
        ).json()
        if runs and runs[0]["status"] in ("succeeded", "failed", "cancelled"):
            return str(runs[0]["status"])
        time.sleep(0.5)
    return "still running"


def test_demo_prints_a_working_login_and_a_new_password_each_start(tmp_path, spawn):
    env = inflow_env(tmp_path / "data")  # the demo's default: SQLite in the data dir

    first = spawn("demo", env)
    email, old_password = demo_login(first)
    assert email == DEMO_ADMIN
    response = log_in(first.base_url, email, old_password)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["role"] == "admin"
    token = response.json()["token"]
    assert me(first.base_url, token).status_code == 200
    # The demo shows real data flowing: a source per sandbox connector, synced from the
    # sandbox the demo mounts, on a schedule.
    auth = {"Authorization": f"Bearer {token}"}
    sources = httpx.get(f"{first.base_url}/api/data-sources", headers=auth, timeout=10).json()
    assert {s["type"] for s in sources} >= {"example"}
    example = next(s for s in sources if s["type"] == "example")
    assert example["config"]["baseUrl"] == f"{first.base_url}/sandbox/example"
    assert example["schedule"]
    assert wait_for_run(first.base_url, auth, example["id"]) == "succeeded"
    runs = httpx.get(
        f"{first.base_url}/api/data-sources/{example['id']}/runs", headers=auth, timeout=10
    ).json()
    assert runs[0]["counts"]["created"] > 0
    # Every provider of the sandbox is there and synced, the OAuth ones connected by consent;
    # the BI plugins' reports and dashboards land in the demo space.
    credentials = httpx.get(f"{first.base_url}/sandbox/_sandbox/credentials", timeout=10).json()
    # (a calling platform's source is shown as type `calling` with its `platform`)
    shown = {s["config"]["platform"] if s["type"] == "calling" else s["type"] for s in sources}
    assert shown == set(credentials)
    assert {"twilio", "ringcentral", "aircall", "custom"} <= shown
    for source in sources:
        status = wait_for_run(first.base_url, auth, source["id"])
        assert status == "succeeded", (source["type"], source["health"])
    # the terminal's view of the demo's syncs: a line as each one ends (no terminal here)
    first.wait_for(lambda: "Demo Example (sandbox) (example): sync succeeded" in first.stdout)
    assert '"request"' not in first.stdout + first.stderr  # access logs go to demo.log
    (space,) = httpx.get(f"{first.base_url}/api/spaces", headers=auth, timeout=10).json()
    reports = httpx.get(
        f"{first.base_url}/api/spaces/{space['id']}/reports", headers=auth, timeout=10
    ).json()
    assert {r["serviceId"] for r in reports} == {"powerbi", "grafana", "looker_studio"}
    # ... and a test (experiment) linked to weeks of LinkedIn impressions, with results.
    deadline, tests = time.monotonic() + 30, []
    while not tests and time.monotonic() < deadline:
        tests = httpx.get(f"{first.base_url}/api/tests", headers=auth, timeout=10).json()
        time.sleep(0.3)
    (test,) = tests
    assert test["dataPointCount"] >= 28, test
    results = httpx.get(
        f"{first.base_url}/api/tests/{test['id']}/results", headers=auth, timeout=10
    ).json()
    assert [m["metric"] for m in results["metrics"]] == ["impressions"], results
    first.stop()
    assert (tmp_path / "data" / "inflow.db").exists()

    second = spawn("demo", env)
    email, new_password = demo_login(second)
    assert email == DEMO_ADMIN
    assert new_password != old_password
    assert log_in(second.base_url, email, new_password).status_code == 200
    assert log_in(second.base_url, email, old_password).status_code == 401

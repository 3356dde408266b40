"""The credential vault and key rotation, on real databases, real key files and real processes.

Every test that takes ``engine`` runs on a fresh SQLite file and on PostgreSQL. Secrets are made
unique per test (``uuid4``) so a search of the raw storage can only find them if they leaked.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from inflow.api.services.sources import create_source, load_config, update_source
from inflow.errors import VaultError
from inflow.settings import Settings
from inflow.storage.audit import verify_chain
from inflow.storage.crypto import KeyRing, Vault, derive_key
from inflow.storage.db import make_session_factory, session_scope
from inflow.storage.keys import rotate_keys
from inflow.storage.models import AuditEvent, Base, DataSource, OAuthState, User, utcnow
from tests.factories import user_headers

INFLOW = Path(sys.executable).with_name("inflow")
SUBPROCESS_TIMEOUT_S = 120


@dataclass(frozen=True)
class Created:
    """A source as created, with the plain values the database must never show."""

    id: uuid.UUID
    name: str
    workspace: str
    api_key: str
    tokens: dict[str, str] | None


def create_sources(
    factory: sessionmaker[Session],
    vault: Vault,
    count: int,
    *,
    with_tokens: bool = True,
) -> list[Created]:
    """``count`` example sources with unique secrets (every other one with OAuth tokens too)."""
    made: list[Created] = []
    with session_scope(factory) as session:
        # An owner who never logs in: a plain row spares the suite an argon2 hash per test.
        owner = User(email=f"owner-{uuid.uuid4().hex[:8]}@example.com", password_hash="!")
        session.add(owner)
        session.flush()
        for i in range(count):
            tag = uuid.uuid4().hex
            api_key = f"sk-live-{tag}"
            workspace = f"ws-{tag[:12]}"
            name = f"source {i} {tag[:8]}"
            source = create_source(
                session,
                owner=owner,
                name=name,
                type_="example",
                config={"apiKey": api_key, "workspace": workspace},
                vault=vault,
            )
            tokens = None
            if with_tokens and i % 2 == 0:
                tokens = {"access_token": f"at-{tag}", "refresh_token": f"rt-{tag}"}
                source.tokens = vault.encrypt(tokens)
            made.append(Created(source.id, name, workspace, api_key, tokens))
    return made


def stored_values(engine: Engine) -> dict[tuple[uuid.UUID, str], str]:
    """Every ciphertext in the database, by (source id, column)."""
    with make_session_factory(engine)() as session:
        rows = session.execute(select(DataSource.id, DataSource.secrets, DataSource.tokens))
        values: dict[tuple[uuid.UUID, str], str] = {}
        for source_id, secrets, tokens in rows:
            if secrets:
                values[source_id, "secrets"] = secrets
            if tokens:
                values[source_id, "tokens"] = tokens
    return values


def assert_all_readable(engine: Engine, vault: Vault, made: list[Created]) -> None:
    """Each source's config and tokens decrypt, through ``vault``, to what was stored."""
    with make_session_factory(engine)() as session:
        for expected in made:
            source = session.get_one(DataSource, expected.id)
            config: Any = load_config(source, vault)
            assert config.api_key.get_secret_value() == expected.api_key
            assert config.workspace == expected.workspace
            tokens = vault.decrypt(source.tokens) if source.tokens else None
            assert tokens == expected.tokens


def key_lines(settings: Settings) -> list[str]:
    return [ln for ln in settings.key_file.read_text().splitlines() if ln.strip()]


def cli_env(settings: Settings, engine: Engine, **extra: str) -> dict[str, str]:
    """The environment of a real ``inflow`` process pointed at this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLOW_")}
    env |= {
        "INFLOW_DATA_DIR": str(settings.data_dir),
        "INFLOW_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "INFLOW_LOG_FORMAT": "console",
        "COLUMNS": "200",
    }
    return env | extra


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INFLOW), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


def rotate_events(engine: Engine) -> list[AuditEvent]:
    with make_session_factory(engine)() as session:
        stmt = select(AuditEvent).where(AuditEvent.action == "keys.rotate").order_by(AuditEvent.id)
        return list(session.execute(stmt).scalars())


# ---------------------------------------------------------------- secrets at rest


def raw_storage(engine: Engine) -> bytes:
    """What the database holds, as raw as a test can read it."""
    if engine.dialect.name == "sqlite":
        db = Path(engine.url.database or "")
        wal = db.with_name(db.name + "-wal")
        assert wal.stat().st_size > 0, "the write should still sit in the WAL file"
        return db.read_bytes() + wal.read_bytes()
    with engine.connect() as conn:
        rows = [
            row
            for table in Base.metadata.sorted_tables
            for row in conn.execute(text(f"SELECT t::text FROM {table.name} t")).scalars()
        ]
    return "\n".join(rows).encode()


def test_vault_secrets_never_stored_in_clear(engine, factory, settings, client):
    vault = Vault.from_settings(settings)
    made = create_sources(factory, vault, 4)
    _, headers = user_headers(client, factory)
    api_key = f"sk-api-{uuid.uuid4().hex}"
    response = client.post(
        "/api/data-sources",
        headers=headers,
        json={"name": "via api", "type": "example", "config": {"apiKey": api_key}},
    )
    assert response.status_code == 201, response.text
    assert api_key not in response.text

    raw = raw_storage(engine)

    # The scan sees clear text (names and public config are stored plainly)...
    for expected in made:
        assert expected.name.encode() in raw
        assert expected.workspace.encode() in raw
    assert b"source.create" in raw  # the API's audit event
    # ...and no secret is among it.
    secrets = [api_key] + [m.api_key for m in made]
    secrets += [t for m in made if m.tokens for t in m.tokens.values()]
    assert len(secrets) == 1 + 4 + 2 * 2
    leaked = [s for s in secrets if s.encode() in raw]
    assert leaked == []
    assert_all_readable(engine, vault, made)


def test_vault_config_roundtrips_through_load_config(engine, factory, settings):
    made = create_sources(factory, Vault.from_settings(settings), 2)
    with factory() as session:
        source = session.get_one(DataSource, made[0].id)
        assert source.secret_names == ["apiKey"]
        assert "apiKey" not in source.config
        assert source.config["workspace"] == made[0].workspace
    # A vault built afresh from the same settings (another process) reads it back.
    assert_all_readable(engine, Vault.from_settings(settings), made)


# ---------------------------------------------------------------- where the keys live


def test_keyring_creates_key_file_0600_in_a_0700_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path / "fresh" / "data")
    assert not settings.data_dir.exists()

    vault = Vault.from_settings(settings)

    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    (line,) = key_lines(settings)
    Fernet(line.encode())  # a real Fernet key, not a passphrase
    assert sorted(p.name for p in settings.data_dir.iterdir()) == ["secret.key"]
    # The next start reads the same key instead of making a new one.
    assert KeyRing(settings).keys() == [line.encode()]
    assert Vault.from_settings(settings).decrypt(vault.encrypt({"a": "b"})) == {"a": "b"}


RACE_SCRIPT = """
import sys, time
from pathlib import Path
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing
data_dir, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
print(KeyRing(Settings(data_dir=data_dir)).keys()[0].decode())
"""


def test_keyring_concurrent_first_starts_agree_on_one_key(tmp_path):
    """Processes starting together on an empty data dir (API + workers) share one key."""
    data_dir, go = tmp_path / "data", tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLOW_")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACE_SCRIPT,
                str(data_dir),
                str(tmp_path / f"ready{i}"),
                str(go),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
            assert time.monotonic() < deadline, "the processes did not start"
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=SUBPROCESS_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
    keys = {out.strip() for out, _ in outputs}
    assert keys == {key_lines(Settings(data_dir=data_dir))[0]}
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret.key"]  # no temp file left


def test_keyring_uses_secret_key_from_env_and_writes_no_key_file(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr("a long passphrase"))

    vault = Vault.from_settings(settings)
    token = vault.encrypt({"apiKey": "sk-env"})

    assert not settings.data_dir.exists()
    assert KeyRing(settings).from_env
    assert Vault([derive_key("a long passphrase")]).decrypt(token) == {"apiKey": "sk-env"}
    fernet_key = Fernet.generate_key()
    assert derive_key(fernet_key.decode()) == fernet_key  # a Fernet key is used as is
    with pytest.raises(VaultError):
        Vault.from_settings(Settings(data_dir=tmp_path / "other")).decrypt(token)


@pytest.mark.parametrize(
    ("secret_key", "key_file_text"),
    [
        pytest.param("another passphrase", None, id="other-env-key"),
        pytest.param(None, Fernet.generate_key().decode() + "\n", id="other-key-file"),
        pytest.param(None, "not a fernet key\n", id="garbage-key-file"),
    ],
)
def test_vault_wrong_key_raises_vault_error(engine, factory, settings, secret_key, key_file_text):
    made = create_sources(factory, Vault.from_settings(settings), 1)
    if key_file_text is not None:
        settings.key_file.write_text(key_file_text)
    wrong = Settings(data_dir=settings.data_dir, secret_key=secret_key)

    with factory() as session, pytest.raises(VaultError) as info:
        load_config(session.get_one(DataSource, made[0].id), Vault.from_settings(wrong))

    assert "cannot be decrypted" in info.value.message
    assert made[0].api_key not in str(info.value)
    assert isinstance(info.value.__cause__, InvalidToken)  # translated, not leaked


@pytest.mark.parametrize(
    ("secret_key", "key_file_text", "message"),
    [
        pytest.param(" , ", None, "INFLOW_SECRET_KEY is set but empty", id="empty-env"),
        pytest.param(None, "\n  \n", "holds no key", id="empty-key-file"),
    ],
)
def test_keyring_without_a_key_raises_vault_error(tmp_path, secret_key, key_file_text, message):
    settings = Settings(data_dir=tmp_path, secret_key=secret_key)
    if key_file_text is not None:
        settings.key_file.write_text(key_file_text)
    with pytest.raises(VaultError, match=message):
        Vault.from_settings(settings)


# ---------------------------------------------------------------- rotation


def test_rotate_keys_reencrypts_everything_and_retires_old_key(engine, factory, settings):
    made = create_sources(factory, Vault.from_settings(settings), 5)
    (old,) = key_lines(settings)
    before = stored_values(engine)
    assert len(before) == 5 + 3

    report = rotate_keys(factory, KeyRing(settings))

    (new,) = key_lines(settings)
    assert new != old
    assert report.resumed is False
    assert (report.rows, report.reencrypted) == (5, 8)
    after = stored_values(engine)
    assert after.keys() == before.keys()
    only_new = Vault([new.encode()])
    for place, value in after.items():
        assert value != before[place]
        assert only_new.is_current(value)
        with pytest.raises(VaultError):
            Vault([old.encode()]).decrypt(value)
    assert_all_readable(engine, only_new, made)


class StopRotationError(Exception):
    pass


def interrupt_after_first_batch(rows: int) -> None:
    raise StopRotationError(f"stopped after {rows} rows")


def test_rotate_keys_interrupted_stays_readable_and_resumes(engine, factory, settings):
    made = create_sources(factory, Vault.from_settings(settings), 20)
    (old,) = key_lines(settings)
    values = len(stored_values(engine))

    with pytest.raises(StopRotationError, match="after 3 rows"):
        rotate_keys(
            factory, KeyRing(settings), batch_size=3, after_batch=interrupt_after_first_batch
        )

    new, kept = key_lines(settings)
    assert kept == old
    current = [v for v in stored_values(engine).values() if Vault([new.encode()]).is_current(v)]
    assert 0 < len(current) < values  # the first batch only
    assert_all_readable(engine, Vault.from_settings(settings), made)

    report = rotate_keys(factory, KeyRing(settings), batch_size=3)

    assert report.resumed is True
    assert report.rows == 20
    assert report.reencrypted == values - len(current)
    assert key_lines(settings) == [new]
    assert all(Vault([new.encode()]).is_current(v) for v in stored_values(engine).values())
    assert_all_readable(engine, Vault.from_settings(settings), made)


def test_rotate_keys_single_env_key_refuses_with_instruction(engine, factory, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr("old passphrase"))
    create_sources(factory, Vault.from_settings(settings), 3)
    before = stored_values(engine)

    with pytest.raises(VaultError, match="'NEW_KEY,OLD_KEY'"):
        rotate_keys(factory, KeyRing(settings))

    assert stored_values(engine) == before
    assert not settings.data_dir.exists()


def test_rotate_keys_env_new_old_reencrypts_under_new(engine, factory, tmp_path):
    old = Settings(data_dir=tmp_path / "data", secret_key=SecretStr("old passphrase"))
    made = create_sources(factory, Vault.from_settings(old), 4)
    both = Settings(data_dir=old.data_dir, secret_key=SecretStr("new passphrase,old passphrase"))

    report = rotate_keys(factory, KeyRing(both))

    assert report.reencrypted == 4 + 2
    only_new = Vault([derive_key("new passphrase")])
    assert all(only_new.is_current(v) for v in stored_values(engine).values())
    assert_all_readable(engine, only_new, made)
    assert not old.data_dir.exists()  # env keys are the operator's: no key file appears


def test_rotate_keys_keeps_a_secret_changed_during_its_batch(engine, factory, settings):
    """A PATCH committed by another process while a batch is open is not overwritten."""
    made = create_sources(factory, Vault.from_settings(settings), 3)
    target = made[1]
    replacement = f"sk-rotated-meanwhile-{uuid.uuid4().hex}"
    rotation_factory = make_session_factory(engine)
    patched: list[bool] = []

    @event.listens_for(rotation_factory, "do_orm_execute")
    def patch_after_first_read(state: ORMExecuteState) -> Any:
        if patched or not state.is_select:
            return None
        patched.append(True)
        rows = state.invoke_statement().freeze()  # the rotation has read its batch...
        with session_scope(factory) as other:  # ...then a user changes the secret
            update_source(
                other,
                source=other.get_one(DataSource, target.id),
                vault=Vault.from_settings(settings),
                config={"apiKey": replacement},
            )
        return rows()

    rotate_keys(rotation_factory, KeyRing(settings))

    assert patched == [True]
    with factory() as session:
        config: Any = load_config(
            session.get_one(DataSource, target.id), Vault.from_settings(settings)
        )
    assert config.api_key.get_secret_value() == replacement
    assert len(key_lines(settings)) == 1
    assert_all_readable(engine, Vault.from_settings(settings), [made[0], made[2]])


def test_rotate_keys_covers_pending_oauth_verifiers(engine, factory, settings):
    """A PKCE verifier waiting for its callback must survive the old key's retirement."""
    vault = Vault.from_settings(settings)
    (made,) = create_sources(factory, vault, 1, with_tokens=False)
    verifier = f"pkce-{uuid.uuid4().hex}"
    with session_scope(factory) as session:
        owner_id = session.get_one(DataSource, made.id).owner_id
        session.add(
            OAuthState(
                state_hash=uuid.uuid4().hex,
                source_id=made.id,
                user_id=owner_id,
                code_verifier=vault.encrypt({"v": verifier}),
                redirect_uri="http://127.0.0.1:8000/api/oauth/example/callback",
                expires_at=utcnow() + timedelta(minutes=10),
            )
        )

    report = rotate_keys(factory, KeyRing(settings))

    assert report.reencrypted == 2
    (new,) = key_lines(settings)
    with factory() as session:
        stored = session.execute(select(OAuthState.code_verifier)).scalar_one()
    assert Vault([new.encode()]).decrypt(stored) == {"v": verifier}


# ---------------------------------------------------------------- real processes


def test_cli_keys_rotate_rotates_and_records_audit_event(engine, factory, settings):
    made = create_sources(factory, Vault.from_settings(settings), 3)
    (old,) = key_lines(settings)

    result = run_cli(cli_env(settings, engine), "keys", "rotate")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "rotated to a new key: 5 values in 3 sources" in " ".join(result.stdout.split())
    (new,) = key_lines(settings)
    assert new != old
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    assert all(Vault([new.encode()]).is_current(v) for v in stored_values(engine).values())
    assert_all_readable(engine, Vault.from_settings(settings), made)
    (audit,) = rotate_events(engine)
    assert (audit.actor, audit.outcome) == ("cli", "success")
    assert audit.details == {"rows": 3, "reencrypted": 5, "resumed": False}
    with factory() as session:
        assert verify_chain(session).ok


def test_cli_keys_rotate_wrong_keys_fail_cleanly_and_record_failure(engine, factory, settings):
    """Keys that cannot read the store: a one-line error and a failure event, no traceback."""
    message = "a stored credential cannot be decrypted"
    made = create_sources(factory, Vault.from_settings(settings), 2)
    before = stored_values(engine)

    result = run_cli(
        cli_env(settings, engine, INFLOW_SECRET_KEY="new key,wrong key"), "keys", "rotate"
    )

    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert f"error: {message}" in output
    assert stored_values(engine) == before
    assert_all_readable(engine, Vault.from_settings(settings), made)
    (audit,) = rotate_events(engine)
    assert audit.outcome == "failure"
    assert message in audit.details["error"]


ROTATE_SLOWLY = """
import sys, time
from pathlib import Path
from sqlalchemy import event
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing
from inflow.storage.db import create_db_engine, make_session_factory
from inflow.storage.keys import rotate_keys

progress = Path(sys.argv[1])
settings = Settings()
engine = create_db_engine(settings.resolved_database_url)
commits = updates = 0

def report():
    progress.write_text(f"{commits} {updates}")

@event.listens_for(engine, "commit")
def committed(conn):
    global commits
    commits += 1
    report()

@event.listens_for(engine, "after_cursor_execute")
def slow_down(conn, cursor, statement, *args):
    # Each re-encrypted value is an UPDATE inside its batch's open transaction: pausing there
    # makes the kill land mid-batch, with a transaction half done.
    global updates
    if statement.lstrip().upper().startswith("UPDATE"):
        updates += 1
        report()
        time.sleep(0.02)

rotate_keys(make_session_factory(engine), KeyRing(settings), batch_size=4)
"""


def read_progress(path: Path) -> tuple[int, int]:
    """(commits, updates) the slow rotation has reported; (0, 0) before its first report."""
    text = path.read_text() if path.exists() else ""
    commits, _, updates = text.partition(" ")
    return (int(commits), int(updates)) if updates else (0, 0)


def test_rotate_keys_survives_sigkill_and_a_rerun_finishes(engine, factory, settings, tmp_path):
    made = create_sources(factory, Vault.from_settings(settings), 40)
    (old,) = key_lines(settings)
    values = len(stored_values(engine))
    progress, stderr = tmp_path / "progress", tmp_path / "rotate.stderr"

    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", ROTATE_SLOWLY, str(progress)],
            env=cli_env(settings, engine),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
        # Kill mid-batch once at least one batch has committed: an UPDATE after a commit.
        committed_at = None
        while True:
            commits, updates = read_progress(progress)
            if commits and committed_at is None:
                committed_at = updates
            if committed_at is not None and updates > committed_at:
                break
            assert proc.poll() is None, f"ended before the kill: {stderr.read_text()}"
            assert time.monotonic() < deadline, "the rotation made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _, updates_sent = read_progress(progress)

    new, kept = key_lines(settings)
    assert kept == old
    current = sum(map(Vault([new.encode()]).is_current, stored_values(engine).values()))
    assert 0 < current <= updates_sent < values  # committed batches only: the last one is lost
    assert_all_readable(engine, Vault.from_settings(settings), made)

    report = rotate_keys(factory, KeyRing(settings))

    assert report.resumed is True
    assert report.reencrypted == values - current
    assert key_lines(settings) == [new]
    assert all(Vault([new.encode()]).is_current(v) for v in stored_values(engine).values())
    assert_all_readable(engine, Vault.from_settings(settings), made)

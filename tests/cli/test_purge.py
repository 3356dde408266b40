"""``inflow purge`` as an operator runs it: a real subprocess against a SQLite file."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from inflow.api.services import accounts
from inflow.storage.db import create_db_engine, make_session_factory, session_scope
from inflow.storage.models import ApiToken, utcnow
from tests.cli.test_cli import create_token, create_user, new_email


def test_purge_deletes_expired_sessions_and_keeps_api_tokens(workspace):
    email = new_email()
    create_user(workspace, email)
    create_token(workspace, email)  # an API token: no expiry
    engine = create_db_engine(f"sqlite:///{workspace.root / 'inflow.db'}")
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        user = accounts.get_user_by_email(session, email=email)
        expired, _ = accounts.issue_token(
            session, user=user, name="login", kind="session", ttl_s=60
        )
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == expired.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    result = workspace.run("purge")

    assert result.returncode == 0, result.stderr
    printed = " ".join(result.stdout.split())  # rich may wrap the line
    assert printed == ("purged 1 expired login session(s) and 0 finished OAuth flow(s)")
    with factory() as session:
        assert session.execute(select(ApiToken.kind)).scalars().all() == ["api"]
    engine.dispose()

"""The authorization-code flow for a stored source: start (state + PKCE), then complete.

State lives server-side, hashed, with its PKCE verifier in the vault; it expires after ten
minutes and can be used once. Tokens obtained land encrypted in the source's ``tokens``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from inflow.connectors.runtime import auth_of, plain_values, render
from inflow.connectors.spec import OAuth2AuthorizationCode
from inflow.errors import BadRequestError, ConfigError
from inflow.http.oauth import exchange_code, start_authorization
from inflow.storage.models import DataSource, HealthStatus, OAuthState, utcnow
from inflow.sync.engine import EngineDeps, load_config, open_runtime
from inflow.sync.tokens import store_tokens

STATE_TTL = timedelta(minutes=10)


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def begin(
    deps: EngineDeps, session: Session, *, source: DataSource, user_id: uuid.UUID, redirect_uri: str
) -> str:
    """The provider URL to send the user to; the pending state is added to ``session``."""
    _, connector, config = load_config(deps, source.id)
    auth = auth_of(connector, config)
    if not isinstance(auth, OAuth2AuthorizationCode):
        raise BadRequestError(f"{source.type} does not connect through an OAuth consent flow")
    values = plain_values(config)
    base = str(getattr(config, "base_url", None) or connector.base_url)
    auth_base = str(getattr(config, "auth_url", None) or base).rstrip("/")
    start = start_authorization(
        render(auth.authorize_url, config=values, auth_url=auth_base),
        client_id=render(auth.client_id, config=values),
        redirect_uri=redirect_uri,
        scopes=auth.scopes,
        extra_params=auth.authorize_params,
    )
    session.add(
        OAuthState(
            state_hash=_hash(start.state),
            source_id=source.id,
            user_id=user_id,
            code_verifier=deps.vault.encrypt({"v": start.code_verifier}),
            redirect_uri=redirect_uri,
            expires_at=utcnow() + STATE_TTL,
        )
    )
    return start.url


def claim_state(session: Session, state: str) -> OAuthState:
    """The pending flow of ``state``, marked used; refused when unknown, used or expired."""
    row = session.get(OAuthState, _hash(state)) if state else None
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise BadRequestError("the OAuth state is unknown, already used or expired: start again")
    row.used_at = utcnow()
    return row


async def complete(
    deps: EngineDeps, *, source_id: uuid.UUID, code: str, code_verifier: str, redirect_uri: str
) -> None:
    """Trade the code for tokens and keep them (encrypted) on the source."""
    _, runtime = open_runtime(deps, source_id)
    async with runtime:
        tokens = await exchange_code(
            runtime.token_request(),
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
        )

    def save() -> None:
        with deps.factory() as session:
            store_tokens(session, deps.vault, source_id, tokens)
            source = session.get(DataSource, source_id)
            if source is None:
                raise ConfigError("the source was deleted during the OAuth flow")
            source.health_status = HealthStatus.OK
            source.health_message = "connected"
            source.health_checked_at = utcnow()
            session.commit()

    await asyncio.to_thread(save)

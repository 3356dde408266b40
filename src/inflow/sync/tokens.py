"""A data source's OAuth tokens in the vault, as the ``TokenStore`` the HTTP layer refreshes.

The lock spans processes on PostgreSQL (an advisory lock on a dedicated connection) so two
workers never refresh one source at once; on SQLite (one host) the in-process lock suffices.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from inflow.errors import NotFoundError
from inflow.http.auth import TokenSet
from inflow.storage.crypto import Vault
from inflow.storage.models import DataSource


def load_tokens(session: Session, vault: Vault, source_id: uuid.UUID) -> TokenSet | None:
    source = session.get(DataSource, source_id)
    if source is None:
        raise NotFoundError(f"data source {source_id} not found")
    return TokenSet.from_dict(vault.decrypt(source.tokens)) if source.tokens else None


def store_tokens(
    session: Session, vault: Vault, source_id: uuid.UUID, tokens: TokenSet | None
) -> None:
    source = session.get(DataSource, source_id)
    if source is None:
        raise NotFoundError(f"data source {source_id} not found")
    source.tokens = vault.encrypt(tokens.to_dict()) if tokens is not None else None


class SourceTokenStore:
    """Tokens of one data source, encrypted in its ``tokens`` column."""

    def __init__(self, factory: sessionmaker[Session], vault: Vault, source_id: uuid.UUID) -> None:
        self.factory, self.vault, self.source_id = factory, vault, source_id

    def _load(self) -> TokenSet | None:
        with self.factory() as session:
            return load_tokens(session, self.vault, self.source_id)

    def _save(self, tokens: TokenSet) -> None:
        with self.factory() as session:
            store_tokens(session, self.vault, self.source_id, tokens)
            session.commit()

    async def load(self) -> TokenSet | None:
        return await asyncio.to_thread(self._load)

    async def save(self, tokens: TokenSet) -> None:
        await asyncio.to_thread(self._save, tokens)

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        engine = self.factory.kw["bind"]
        if engine.dialect.name != "postgresql":
            yield
            return
        key = zlib.crc32(b"inflow-oauth:" + self.source_id.bytes)
        conn = await asyncio.to_thread(engine.connect)
        try:
            await asyncio.to_thread(conn.execute, text("SELECT pg_advisory_lock(:k)"), {"k": key})
            yield
        finally:
            await asyncio.to_thread(conn.execute, text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await asyncio.to_thread(conn.close)

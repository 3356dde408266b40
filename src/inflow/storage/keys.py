"""Key rotation: re-encrypt every stored credential under a new key, safe to interrupt.

1. The new key is put first in the key ring (the key file keeps the old ones after it).
2. Rows are re-encrypted in batches, each batch its own transaction; a row already under the
   new key is skipped, so a rerun after an interruption only does what is left.
3. When every row reads with the new key alone, the old keys are retired.
Until step 3 finishes, every value still decrypts: the old keys remain in the ring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from inflow.errors import VaultError
from inflow.storage.crypto import KeyRing, Vault
from inflow.storage.models import DataSource

ENCRYPTED_COLUMNS = ("secrets", "tokens")


@dataclass(frozen=True)
class RotationReport:
    resumed: bool
    rows: int
    reencrypted: int


def rotate_keys(
    factory: sessionmaker[Session],
    keyring: KeyRing,
    *,
    batch_size: int = 200,
    after_batch: Callable[[int], None] | None = None,
) -> RotationReport:
    """Rotate to a new key (or finish a pending rotation) and retire the old keys."""
    resumed = not keyring.begin_rotation()
    vault = Vault(keyring.keys())
    rows = reencrypted = 0
    last_id = None
    while True:
        with factory() as session:
            stmt = (
                select(DataSource)
                .where(or_(DataSource.secrets.is_not(None), DataSource.tokens.is_not(None)))
                .order_by(DataSource.id)
                .limit(batch_size)
            )
            if last_id is not None:
                stmt = stmt.where(DataSource.id > last_id)
            batch = list(session.execute(stmt).scalars())
            if not batch:
                break
            for source in batch:
                rows += 1
                for column in ENCRYPTED_COLUMNS:
                    value = getattr(source, column)
                    if value and not vault.is_current(value):
                        setattr(source, column, vault.rotate(value))
                        reencrypted += 1
            last_id = batch[-1].id
            session.commit()
        if after_batch is not None:
            after_batch(rows)
    _check_all_current(factory, vault)
    keyring.finish_rotation()
    return RotationReport(resumed=resumed, rows=rows, reencrypted=reencrypted)


def _check_all_current(factory: sessionmaker[Session], vault: Vault) -> None:
    with factory() as session:
        for secrets, tokens in session.execute(select(DataSource.secrets, DataSource.tokens)):
            for value in (secrets, tokens):
                if value and not vault.is_current(value):
                    raise VaultError(
                        "a credential is still under an old key; run the rotation again"
                    )

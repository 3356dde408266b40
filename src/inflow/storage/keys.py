"""Key rotation: re-encrypt every stored credential under a new key, safe to interrupt.

1. The new key is put first in the key ring (the key file keeps the old ones after it).
2. Rows are re-encrypted in batches, each batch its own transaction; a row already under the
   new key is skipped, so a rerun after an interruption only does what is left.
3. When every row reads with the new key alone, the old keys are retired.
Until step 3 finishes, every value still decrypts: the old keys remain in the ring.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, inspect, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from inflow.errors import VaultError
from inflow.storage.crypto import KeyRing, Vault
from inflow.storage.files import private_dir, private_file
from inflow.storage.models import Base, DataSource, OAuthState

# Every column that holds vault ciphertext: a value left out here is lost when old keys retire.
ENCRYPTED: tuple[tuple[type[Base], tuple[str, ...]], ...] = (
    (DataSource, ("secrets", "tokens")),
    (OAuthState, ("code_verifier",)),
)


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
    """Rotate to a new key (or finish a pending rotation) and retire the old keys.

    One rotation at a time per key file: a second one is refused while the first holds the lock.
    """
    if keyring.from_env:  # nothing on disk to guard: the operator holds the keys
        return _rotate(factory, keyring, batch_size=batch_size, after_batch=after_batch)
    with _exclusive(keyring.path.parent / "keys.lock"):
        return _rotate(factory, keyring, batch_size=batch_size, after_batch=after_batch)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    private_dir(path.parent)
    private_file(path)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise VaultError("another key rotation is running; wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _rotate(
    factory: sessionmaker[Session],
    keyring: KeyRing,
    *,
    batch_size: int,
    after_batch: Callable[[int], None] | None,
) -> RotationReport:
    resumed = not keyring.begin_rotation()
    vault = Vault(keyring.keys())
    rows = reencrypted = 0
    for model, columns in ENCRYPTED:
        for batch_rows, batch_values in _rotate_table(factory, vault, model, columns, batch_size):
            rows += batch_rows
            reencrypted += batch_values
            if after_batch is not None:
                after_batch(rows)
    _check_all_current(factory, vault)
    keyring.finish_rotation()
    return RotationReport(resumed=resumed, rows=rows, reencrypted=reencrypted)


def _rotate_table(
    factory: sessionmaker[Session],
    vault: Vault,
    model: type[Base],
    columns: tuple[str, ...],
    batch_size: int,
) -> Iterator[tuple[int, int]]:
    """Re-encrypt ``columns`` of ``model``, one committed batch at a time: (rows, values) each."""
    (key,) = inspect(model).primary_key
    encrypted = [getattr(model, name) for name in columns]
    last: Any = None
    while True:
        with factory() as session:
            stmt = (
                select(key, *encrypted)
                .where(or_(*(column.is_not(None) for column in encrypted)))
                .order_by(key)
                .limit(batch_size)
            )
            if last is not None:
                stmt = stmt.where(key > last)
            batch = session.execute(stmt).all()
            if not batch:
                return
            values = 0
            for row in batch:
                stored: tuple[str | None, ...] = tuple(row[1:])
                for column, value in zip(encrypted, stored, strict=True):
                    if value and not vault.is_current(value):
                        new = vault.rotate(value)
                        values += _replace(session, model, key, row[0], column, value, new)
            last = batch[-1][0]
            session.commit()
        yield len(batch), values


def _replace(
    session: Session,
    model: type[Base],
    key: ColumnElement[Any],
    pk: Any,
    column: Any,
    old: str,
    new: str,
) -> int:
    """Store ``new`` only where ``old`` still is: a secret saved meanwhile (a PATCH in another
    process) is kept, never overwritten; if it was under an old key, the final check says so."""
    stmt = update(model).where(key == pk, column == old).values({column: new})
    return session.connection().execute(stmt).rowcount


def _check_all_current(factory: sessionmaker[Session], vault: Vault) -> None:
    with factory() as session:
        for model, columns in ENCRYPTED:
            for row in session.execute(select(*(getattr(model, name) for name in columns))):
                for value in row:
                    if value and not vault.is_current(value):
                        raise VaultError(
                            "a credential is still under an old key; run the rotation again"
                        )

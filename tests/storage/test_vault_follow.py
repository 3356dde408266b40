"""A running server's vault follows the key file that `inflow keys rotate` rewrites."""

from __future__ import annotations

import fcntl

import pytest

from inflow.errors import VaultError
from inflow.settings import Settings
from inflow.storage.crypto import KeyRing, Vault
from inflow.storage.keys import rotate_keys
from inflow.storage.models import DataSource, User


def test_vault_follows_rotation_done_by_another_process(tmp_path, factory):
    settings = Settings(data_dir=tmp_path / "data")
    server_vault = Vault.from_keyring(KeyRing(settings))  # what a running server holds
    with factory() as session:
        user = User(email="o@example.com", password_hash="x")
        session.add(user)
        session.flush()
        source = DataSource(
            name="s",
            type="example",
            owner_id=user.id,
            secrets=server_vault.encrypt({"apiKey": "before-rotation"}),
        )
        session.add(source)
        session.commit()
        source_id = source.id

    rotate_keys(factory, KeyRing(settings))  # as `inflow keys rotate` would, elsewhere

    with factory() as session:
        stored = session.get(DataSource, source_id).secrets
    assert server_vault.decrypt(stored) == {"apiKey": "before-rotation"}
    fresh = server_vault.encrypt({"apiKey": "after-rotation"})
    # Written under the new key: readable by a vault that knows only the key file's key now.
    assert Vault(KeyRing(settings).keys()).is_current(fresh)


def test_rotate_keys_refuses_while_another_rotation_holds_the_lock(tmp_path, factory):
    settings = Settings(data_dir=tmp_path / "data")
    keyring = KeyRing(settings)
    keyring.keys()
    with (settings.data_dir / "keys.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(VaultError, match="another key rotation is running"):
            rotate_keys(factory, keyring)
    assert len(keyring.keys()) == 1  # nothing was started

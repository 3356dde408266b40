"""The credential vault: secret config fields and OAuth tokens encrypted at rest.

Keys come from ``INFLOW_SECRET_KEY`` (one or more comma-separated keys, newest first) or from a
key file in the data dir, created with mode 0600 on first start (one key per line, newest first).
Encryption is Fernet (AES-128-CBC + HMAC-SHA256) through ``MultiFernet``: the first key encrypts,
every key decrypts, so a rotation that is interrupted leaves every value readable.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from inflow.errors import VaultError
from inflow.settings import Settings
from inflow.storage.files import private_dir, private_file


def derive_key(material: str) -> bytes:
    """A Fernet key from ``material``: used as is when it is one, else derived with SHA-256."""
    raw = material.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:  # already a Fernet key
            return raw
    except (binascii.Error, ValueError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(b"inflow-vault:" + raw).digest())


def _write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 from the first byte.

    With ``exclusive`` an existing ``path`` is left as it is: of processes starting together on
    an empty data dir, the first to link its file wins and the others read that key.
    """
    private_dir(path.parent)
    # A temp file of our own (mkstemp: 0600), so concurrent writers never share one.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            with contextlib.suppress(FileExistsError):
                path.hardlink_to(tmp)  # atomic create-if-absent, complete from the first read
        else:
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


class KeyRing:
    """Where the vault's keys live, and how a rotation adds and retires them."""

    def __init__(self, settings: Settings) -> None:
        self.from_env = settings.secret_key is not None
        self._env = settings.secret_key.get_secret_value() if settings.secret_key else ""
        self.path = settings.key_file

    def keys(self) -> list[bytes]:
        """The keys, newest first; the key file is created (0600) when there is none."""
        if self.from_env:
            if self.path.parent.exists():  # the data dir may hold the SQLite file all the same
                private_dir(self.path.parent)
            keys = [derive_key(k) for k in self._env.split(",") if k.strip()]
            if not keys:
                raise VaultError("INFLOW_SECRET_KEY is set but empty")
            return keys
        private_dir(self.path.parent)
        if self.path.exists():
            private_file(self.path)  # a key file made 0644 by hand or by an older version
        else:
            _write_private(self.path, Fernet.generate_key().decode() + "\n", exclusive=True)
        lines = [ln.strip() for ln in self.path.read_text().splitlines() if ln.strip()]
        if not lines:
            raise VaultError(f"the key file {self.path} holds no key")
        return [derive_key(line) for line in lines]

    def stamp(self) -> int | None:
        """Changes whenever the key file is rewritten (None for env keys, which never change)."""
        if self.from_env:
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns ^ st.st_ino

    def begin_rotation(self) -> bool:
        """Put a new key first (key file only). False when a rotation is already pending."""
        keys = self.keys()
        if len(keys) > 1:
            return False
        if self.from_env:
            raise VaultError(
                "INFLOW_SECRET_KEY holds a single key: set it to 'NEW_KEY,OLD_KEY' and run "
                "`inflow keys rotate` again; remove OLD_KEY once it has finished"
            )
        _write_private(
            self.path, "\n".join(k.decode() for k in [Fernet.generate_key(), *keys]) + "\n"
        )
        return True

    def finish_rotation(self) -> None:
        """Retire every key but the newest (key file only; env keys are the operator's)."""
        if not self.from_env:
            _write_private(self.path, self.keys()[0].decode() + "\n")


class Vault:
    """Encrypts and decrypts JSON-able secret blobs."""

    def __init__(self, keys: list[bytes], *, keyring: KeyRing | None = None) -> None:
        self._keyring = keyring
        self._stamp: int | None = None
        self._load(keys)

    def _load(self, keys: list[bytes]) -> None:
        if not keys:
            raise VaultError("the vault needs at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._primary = Fernet(keys[0])

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls.from_keyring(KeyRing(settings))

    @classmethod
    def from_keyring(cls, keyring: KeyRing) -> Vault:
        """A vault that follows its key file: after ``inflow keys rotate`` (in another process)
        a running server encrypts with the new key and still reads the old values."""
        vault = cls(keyring.keys(), keyring=keyring)
        vault._stamp = keyring.stamp()
        return vault

    def _follow(self) -> None:
        if self._keyring is None:
            return
        stamp = self._keyring.stamp()
        if stamp != self._stamp:
            self._load(self._keyring.keys())
            self._stamp = stamp

    def encrypt(self, value: dict[str, Any]) -> str:
        self._follow()
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        self._follow()
        try:
            data: dict[str, Any] = orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise VaultError(
                "stored credentials cannot be decrypted with the configured keys "
                "(INFLOW_SECRET_KEY or the key file changed?)"
            ) from exc
        return data

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise VaultError("a stored credential cannot be decrypted: rotation stopped") from exc

    def is_current(self, token: str) -> bool:
        """True when ``token`` decrypts with the newest key alone."""
        try:
            self._primary.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

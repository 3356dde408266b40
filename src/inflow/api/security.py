"""Passwords (argon2), API/session tokens (random, stored as SHA-256) and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "ifl_"  # noqa: S105 - a public prefix, not a secret


def _make_hasher() -> PasswordHasher:
    """argon2id with the library's recommended cost; ``INFLOW_TEST_FAST_HASHING=1`` (the test
    suite's switch, never for production) lowers it so thousands of test logins stay quick.
    Hashes record their own parameters, so either kind verifies under either setting."""
    if os.environ.get("INFLOW_TEST_FAST_HASHING") == "1":
        logging.getLogger(__name__).warning("INFLOW_TEST_FAST_HASHING is on: weak password hashes")
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


_hasher = _make_hasher()
# Verifying against this keeps an unknown email as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("inflow-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check; ``None`` (no such user) still pays for one verification."""
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def new_token() -> str:
    """A fresh bearer token: 256 bits of randomness with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are high-entropy, so a plain SHA-256 is a safe way to store and look them up."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str, key: bytes) -> str:
    """The CSRF token bound to a web session (double-submit, HMAC'd with the server's key)."""
    return hmac.new(key, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()

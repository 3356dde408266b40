"""Passwords (argon2), API/session tokens (random, stored as SHA-256) and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "ifl_"  # noqa: S105 - a public prefix, not a secret
_hasher = PasswordHasher()
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
